/* numamalloc — the exported malloc family, all of it, each a one-line forward.
 *
 * An incomplete family is a crash waiting to happen (a pvalloc or
 * malloc_usable_size reaching glibc with our pointer), so everything glibc 2.36
 * exports for allocation is here, with its __libc_* aliases, plus C23's free_sized
 * and free_aligned_sized and every C++ operator new/delete (plain, array, sized,
 * aligned, nothrow), so a C++ program never mixes allocators.
 *
 * operator new must throw std::bad_alloc (after trying the new-handler) when memory
 * runs out. We do not link libstdc++ (C programs should not load it): the few
 * libstdc++ symbols needed are weak references, present exactly when the program is
 * C++ and so can call operator new at all. This file is compiled with -fexceptions
 * so the exception can unwind through it. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include "numamalloc/internal.h"
#include "numamalloc/fastpath.h"
#include "numamalloc.h"

#define API NM_EXPORT

/* not declared by glibc 2.36's headers (or not without feature macros) */
void  cfree(void *p);
void  free_sized(void *p, size_t n);
void  free_aligned_sized(void *p, size_t a, size_t n);
void *__libc_malloc(size_t n);
void  __libc_free(void *p);
void *__libc_calloc(size_t n, size_t m);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t a, size_t n);
void *__libc_valloc(size_t n);
void *__libc_pvalloc(size_t n);
int   __posix_memalign(void **o, size_t a, size_t n);

API void *malloc(size_t n)                        { return nm_malloc_fast(n); }
API void  free(void *p)                           { nm_free_fast(p); }
API void  cfree(void *p)                          { nm_free_fast(p); }
API void *calloc(size_t n, size_t m)              { return nm_calloc(n, m); }
API void *realloc(void *p, size_t n)              { return nm_realloc(p, n); }
API void *reallocarray(void *p, size_t n, size_t m) { return nm_reallocarray(p, n, m); }
API int   posix_memalign(void **out, size_t a, size_t n) { return nm_posix_memalign(out, a, n); }
API void *aligned_alloc(size_t a, size_t n)       { return nm_aligned_alloc(a, n); }
API void *memalign(size_t a, size_t n)            { return nm_memalign(a, n); }
API void *valloc(size_t n)                        { return nm_valloc(n); }
API void *pvalloc(size_t n)                       { return nm_pvalloc(n); }
API size_t malloc_usable_size(void *p)            { return nm_usable_size(p); }
API void  free_sized(void *p, size_t n)           { (void)n; nm_free_fast(p); }
API void  free_aligned_sized(void *p, size_t a, size_t n) { (void)a; (void)n; nm_free_fast(p); }
API int   malloc_trim(size_t pad)                 { return nm_malloc_trim(pad); }
API struct mallinfo2 mallinfo2(void)              { return nm_mallinfo2(); }
API struct mallinfo mallinfo(void)                { return nm_mallinfo(); }
API int   mallopt(int param, int value)           { return nm_mallopt(param, value); }
API void  malloc_stats(void)                      { nm_malloc_stats(); }
API int   malloc_info(int options, FILE *fp)      { return nm_malloc_info(options, fp); }

API void *__libc_malloc(size_t n)                 { return nm_malloc_fast(n); }
API void  __libc_free(void *p)                    { nm_free_fast(p); }
API void *__libc_calloc(size_t n, size_t m)       { return nm_calloc(n, m); }
API void *__libc_realloc(void *p, size_t n)       { return nm_realloc(p, n); }
API void *__libc_memalign(size_t a, size_t n)     { return nm_memalign(a, n); }
API void *__libc_valloc(size_t n)                 { return nm_valloc(n); }
API void *__libc_pvalloc(size_t n)                { return nm_pvalloc(n); }
API int   __posix_memalign(void **o, size_t a, size_t n) { return nm_posix_memalign(o, a, n); }

API const char *numamalloc_version(void)          { return nm_api_version(); }
API void *numamalloc_alloc_onnode(size_t n, int node) { return nm_api_alloc_onnode(n, node); }
API void *numamalloc_alloc_interleaved(size_t n)  { return nm_api_alloc_interleaved(n); }
API int   numamalloc_node_of(const void *p)       { return nm_api_node_of(p); }
API void *numamalloc_alloc_onnode_flags(size_t n, int node, int flags) { return nm_api_alloc_onnode_flags(n, node, flags); }
API int   numamalloc_resident_node(const void *p) { return nm_api_resident_node(p); }
API int   numamalloc_thread_policy_set(const char *s) { return nm_api_thread_policy_set(s); }
API int   numamalloc_thread_policy_get(char *b, size_t n) { return nm_api_thread_policy_get(b, n); }
API int   numamalloc_nodes_with_memory(int *nodes, int len) { return nm_api_nodes_with_memory(nodes, len); }
API int   numamalloc_node_of_cpu(int cpu)         { return nm_api_node_of_cpu(cpu); }
API int   numamalloc_current_node(void)           { return nm_api_current_node(); }
API int   numamalloc_node_distance(int a, int b)  { return nm_api_node_distance(a, b); }
API int   numamalloc_block_info(const void *p, struct numamalloc_block_info *i) { return nm_api_block_info(p, i); }
API size_t numamalloc_stats_print(char *b, size_t n) { return nm_api_stats_print(b, n); }
API size_t numamalloc_stats_json(char *b, size_t n)  { return nm_api_stats_json(b, n); }
API const char *numamalloc_option_get(const char *name) { return nm_api_option_get(name); }

/* ---- C++ -------------------------------------------------------------------------------- */

typedef void (*nm_new_handler_t)(void);
extern nm_new_handler_t _ZSt15get_new_handlerv(void) __attribute__((weak));   /* std::get_new_handler() */
extern void *__cxa_allocate_exception(size_t) __attribute__((weak));
extern void __cxa_throw(void *, void *, void (*)(void *)) __attribute__((weak));
extern char _ZTISt9bad_alloc[] __attribute__((weak));                          /* typeinfo for std::bad_alloc */
extern void *_ZTVSt9bad_alloc[] __attribute__((weak));                         /* vtable for std::bad_alloc */
extern void _ZNSt9bad_allocD1Ev(void *) __attribute__((weak));                 /* std::bad_alloc::~bad_alloc() */

static void *cxx_try(size_t n, size_t align)
{
    return align > 16 ? nm_aligned_alloc(align, nm_align_up(n ? n : 1, align)) : nm_malloc_fast(n);
}

/* the standard's loop: call the new-handler until memory comes or there is none;
 * then throw std::bad_alloc (or return NULL for the nothrow forms) */
NM_NOINLINE static void *cxx_new_failed(size_t n, size_t align, bool nothrow)
{
    for (;;) {
        nm_new_handler_t h = _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
        if (h == NULL) break;
        h();
        void *p = cxx_try(n, align);
        if (p) return p;
    }
    if (nothrow) return NULL;
    if (__cxa_allocate_exception && __cxa_throw && _ZTISt9bad_alloc && _ZTVSt9bad_alloc) {
        void **e = __cxa_allocate_exception(sizeof(void *));
        *e = &_ZTVSt9bad_alloc[2];                 /* object = its vtable pointer */
        __cxa_throw(e, _ZTISt9bad_alloc, _ZNSt9bad_allocD1Ev);
    }
    nm_fatal("operator new(%lu): out of memory, and no C++ runtime to throw std::bad_alloc", (unsigned long)n);
}

NM_INLINE void *cxx_new(size_t n, size_t align, bool nothrow)
{
    void *p = cxx_try(n, align);
    return NM_LIKELY(p != NULL) ? p : cxx_new_failed(n, align, nothrow);
}

typedef struct { char c; } nm_nothrow_t;     /* std::nothrow_t, passed by reference */

API void *cxx_new_1(size_t n)                                   __asm__("_Znwm");
API void *cxx_new_2(size_t n)                                   __asm__("_Znam");
API void *cxx_new_3(size_t n, const nm_nothrow_t *t)            __asm__("_ZnwmRKSt9nothrow_t");
API void *cxx_new_4(size_t n, const nm_nothrow_t *t)            __asm__("_ZnamRKSt9nothrow_t");
API void *cxx_new_5(size_t n, size_t a)                         __asm__("_ZnwmSt11align_val_t");
API void *cxx_new_6(size_t n, size_t a)                         __asm__("_ZnamSt11align_val_t");
API void *cxx_new_7(size_t n, size_t a, const nm_nothrow_t *t)  __asm__("_ZnwmSt11align_val_tRKSt9nothrow_t");
API void *cxx_new_8(size_t n, size_t a, const nm_nothrow_t *t)  __asm__("_ZnamSt11align_val_tRKSt9nothrow_t");
API void cxx_del_1(void *p)                                     __asm__("_ZdlPv");
API void cxx_del_2(void *p)                                     __asm__("_ZdaPv");
API void cxx_del_3(void *p, size_t n)                           __asm__("_ZdlPvm");
API void cxx_del_4(void *p, size_t n)                           __asm__("_ZdaPvm");
API void cxx_del_5(void *p, const nm_nothrow_t *t)              __asm__("_ZdlPvRKSt9nothrow_t");
API void cxx_del_6(void *p, const nm_nothrow_t *t)              __asm__("_ZdaPvRKSt9nothrow_t");
API void cxx_del_7(void *p, size_t a)                           __asm__("_ZdlPvSt11align_val_t");
API void cxx_del_8(void *p, size_t a)                           __asm__("_ZdaPvSt11align_val_t");
API void cxx_del_9(void *p, size_t n, size_t a)                 __asm__("_ZdlPvmSt11align_val_t");
API void cxx_del_10(void *p, size_t n, size_t a)                __asm__("_ZdaPvmSt11align_val_t");
API void cxx_del_11(void *p, size_t a, const nm_nothrow_t *t)   __asm__("_ZdlPvSt11align_val_tRKSt9nothrow_t");
API void cxx_del_12(void *p, size_t a, const nm_nothrow_t *t)   __asm__("_ZdaPvSt11align_val_tRKSt9nothrow_t");

API void *cxx_new_1(size_t n)                                  { return cxx_new(n, 0, false); }
API void *cxx_new_2(size_t n)                                  { return cxx_new(n, 0, false); }
API void *cxx_new_3(size_t n, const nm_nothrow_t *t)           { (void)t; return cxx_new(n, 0, true); }
API void *cxx_new_4(size_t n, const nm_nothrow_t *t)           { (void)t; return cxx_new(n, 0, true); }
API void *cxx_new_5(size_t n, size_t a)                        { return cxx_new(n, a, false); }
API void *cxx_new_6(size_t n, size_t a)                        { return cxx_new(n, a, false); }
API void *cxx_new_7(size_t n, size_t a, const nm_nothrow_t *t) { (void)t; return cxx_new(n, a, true); }
API void *cxx_new_8(size_t n, size_t a, const nm_nothrow_t *t) { (void)t; return cxx_new(n, a, true); }
API void cxx_del_1(void *p)                                    { nm_free_fast(p); }
API void cxx_del_2(void *p)                                    { nm_free_fast(p); }
API void cxx_del_3(void *p, size_t n)                          { (void)n; nm_free_fast(p); }
API void cxx_del_4(void *p, size_t n)                          { (void)n; nm_free_fast(p); }
API void cxx_del_5(void *p, const nm_nothrow_t *t)             { (void)t; nm_free_fast(p); }
API void cxx_del_6(void *p, const nm_nothrow_t *t)             { (void)t; nm_free_fast(p); }
API void cxx_del_7(void *p, size_t a)                          { (void)a; nm_free_fast(p); }
API void cxx_del_8(void *p, size_t a)                          { (void)a; nm_free_fast(p); }
API void cxx_del_9(void *p, size_t n, size_t a)                { (void)n; (void)a; nm_free_fast(p); }
API void cxx_del_10(void *p, size_t n, size_t a)               { (void)n; (void)a; nm_free_fast(p); }
API void cxx_del_11(void *p, size_t a, const nm_nothrow_t *t)  { (void)a; (void)t; nm_free_fast(p); }
API void cxx_del_12(void *p, size_t a, const nm_nothrow_t *t)  { (void)a; (void)t; nm_free_fast(p); }
