/* tests/fuzz/broken.c — a deliberately wrong malloc for the oracle self-test: preloaded over
 * glibc, it breaks one promise chosen by NMF_BREAK, and tests/fuzz/oracle-selftest.sh checks
 * that the fuzz engine (nmf_replay) aborts naming that promise. Each break forwards to
 * glibc's __libc_* entry points, so everything it does not break stays correct. */
#include <dlfcn.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t m);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t a, size_t n);
void  __libc_free(void *p);

enum { B_NONE, B_REALLOC, B_CALLOC, B_USABLE, B_ALIGN, B_ERRNO, B_FREE_ERRNO, B_OVERLAP };
static int brk = -1;

static int mode(void)
{
    if (brk < 0) {
        static const char *const names[] = { "none", "realloc", "calloc", "usable", "align", "errno", "free-errno", "overlap" };
        const char *v = getenv("NMF_BREAK");
        brk = B_NONE;
        for (int i = 0; v && i < (int)(sizeof(names) / sizeof(names[0])); i++)
            if (strcmp(v, names[i]) == 0) brk = i;
    }
    return brk;
}

void *malloc(size_t n)
{
    static void *last;
    if (mode() == B_OVERLAP && n == 33) {                /* every malloc(33): the same block */
        if (last == NULL) last = __libc_malloc(n);
        return last;
    }
    return __libc_malloc(n);
}

void free(void *p)
{
    __libc_free(p);
    if (mode() == B_FREE_ERRNO && p) errno = EIO;
}

void *calloc(size_t n, size_t m)
{
    size_t t;
    if (__builtin_mul_overflow(n, m, &t)) {
        if (mode() == B_ERRNO) { errno = EINVAL; return NULL; }
        return __libc_calloc(n, m);
    }
    if (mode() != B_CALLOC || t > PTRDIFF_MAX) return __libc_calloc(n, m);
    void *p = __libc_malloc(t);                          /* not zeroed */
    if (p) memset(p, 0xa5, t);
    return p;
}

void *realloc(void *p, size_t n)
{
    void *q = __libc_realloc(p, n);
    if (mode() == B_REALLOC && p && q && n > 1) ((unsigned char *)q)[0] ^= 1;   /* contents not kept */
    return q;
}

void *aligned_alloc(size_t a, size_t n)
{
    if (mode() == B_ALIGN) return __libc_malloc(n);      /* alignment ignored */
    return __libc_memalign(a, n);
}

size_t malloc_usable_size(void *p)
{
    static size_t (*next)(void *);
    if (next == NULL) next = (size_t (*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
    if (mode() == B_USABLE && p) return 0;               /* less than asked for */
    return next(p);
}
