/* numamalloc — malloc, free, calloc, realloc and malloc_usable_size.
 *
 * The small-block fast paths are include/numamalloc/fastpath.h (inlined into every
 * exported entry point); this file routes everything else by size and by the page
 * map's answer for a pointer:
 *   size <= 32 KiB            slab blocks through the thread cache (tcache.c)
 *   32 KiB .. threshold       the fallback arena (mimalloc on NUMA-bound arenas)
 *   >= LARGE_THRESHOLD        own NUMA-bound mapping, huge pages when possible
 * and a pointer's origin is never guessed: the page map says slab, large, huge or
 * arena; anything else is either a block mimalloc served while we were booting, or
 * not ours, in which case it is counted and left alone (NUMAMALLOC_CHECK=1 aborts
 * with a message instead). No locks here.
 *
 * NUMAMALLOC_CHECK=1 also catches writes past the end of a block: every block is
 * taken with at least one byte to spare (a small request that fills its class takes
 * the next class; medium and large ones ask for one byte more), and the first up to
 * NM_CANARY_MAX spare bytes get a pattern that free and realloc verify. The pattern
 * depends on the offset and always has its top bit set, so an off-by-one NUL or
 * ASCII byte always shows. The size asked for is remembered where it is cheap: per
 * block beside the slab (small), in the block's header (medium, src/fallback.c), in
 * the mapping's descriptor (large); malloc_usable_size then answers that size, as
 * AddressSanitizer's does, so a program that writes up to it stays correct. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "numamalloc/internal.h"
#include "numamalloc/fastpath.h"

void *nm_malloc(size_t n) { return nm_malloc_fast(n); }
void nm_free(void *p) { nm_free_fast(p); }

void nm_invalid_pointer(const char *fn, const void *p, const char *why)
{
    nm_gstat_add(NM_C_invalid_free, 1);
    if (nm_opt.check)
        nm_fatal("%s(): invalid pointer %p: %s (NUMAMALLOC_CHECK=1: aborting)", fn, p, why);
}

/* ---- NUMAMALLOC_CHECK=1 canaries ------------------------------------------------- */

static inline unsigned char canary_byte(size_t off) { return (unsigned char)(0x80 | ((off * 37) & 0x7f)); }

void nm_canary_fill(void *p, size_t req, size_t usable)
{
    unsigned char *b = p;
    size_t end = usable - req > NM_CANARY_MAX ? req + NM_CANARY_MAX : usable;
    for (size_t i = req; i < end; i++) b[i] = canary_byte(i);
}

size_t nm_canary_check(const void *p, size_t req, size_t usable)
{
    const unsigned char *b = p;
    size_t end = usable - req > NM_CANARY_MAX ? req + NM_CANARY_MAX : usable;
    for (size_t i = req; i < end; i++)
        if (b[i] != canary_byte(i)) return i;
    return NM_CANARY_OK;
}

bool nm_verdict_ok(const char *fn, const void *p, nm_verdict_t v)
{
    if (v.why) { nm_invalid_pointer(fn, p, v.why); return false; }
    if (v.bad != NM_CANARY_OK) {
        nm_gstat_add(NM_C_invalid_free, 1);
        nm_fatal("%s(): heap buffer overflow past %lu-byte block %p: byte at offset %lu overwritten "
                 "(NUMAMALLOC_CHECK=1: aborting)", fn, (unsigned long)v.req, p, (unsigned long)v.bad);
    }
    return true;
}

void *nm_alloc_any(nm_tcache_t *tc, size_t n, size_t align, bool zero)
{
    if (NM_UNLIKELY(n > PTRDIFF_MAX)) { errno = ENOMEM; return NULL; }
    if (align <= 16) align = 0;
    size_t cn = n + nm_opt.check;           /* NUMAMALLOC_CHECK=1: a byte of canary at least */
    if (cn <= NM_SMALL_MAX && align <= NM_SMALL_MAX) {
        unsigned cls = align ? nm_size_class_aligned(cn, align) : nm_size_class(cn);
        if (cls < NM_NUM_CLASSES) {
            void *p = nm_small_alloc(tc, cls, n, align == 0);
            if (p && zero) memset(p, 0, n);
            return p;
        }
    }
    if (tc->state == NM_T_ACTIVE) nm_tcache_node_check(tc);   /* medium and large follow a migrated thread at once */
    bool sample = nm_prof_on && align == 0 && !tc->busy && tc->state == NM_T_ACTIVE && nm_prof_tick_bytes(tc, n);
    void *p = NULL;
    if (n < nm_opt.large_threshold) {
        if (align <= NM_SMALL_MAX) {
            p = nm_fallback_alloc(tc, n, align, zero);
            if (p == NULL) nm_fallback_count(NM_FB_ARENA_FULL, errno);
        } else {
            nm_fallback_count(NM_FB_LARGE_ALIGN, 0);
        }
    }
    if (p == NULL) {
        uint32_t dom = tc->state == NM_T_ACTIVE ? tc->domain : nm_policy_domain_for(nm_topo_cpu_node(nm_os_cpu()));
        p = nm_large_alloc(tc, dom, n, align, zero);
    }
    if (p && sample) {
        nm_prof_record(tc, p, n, nm_prof_weight_bytes(n));
        nm_pme_t e = nm_pagemap_get((uintptr_t)p);       /* large frees forget only if marked */
        if (nm_pme_kind(e) == NM_KIND_LARGE || nm_pme_kind(e) == NM_KIND_HUGE) ((nm_large_t *)nm_pme_desc(e))->sampled = 1;
    }
    return p;
}

void *nm_calloc(size_t n, size_t m)
{
    size_t total;
    if (NM_UNLIKELY(__builtin_mul_overflow(n, m, &total) || total > PTRDIFF_MAX)) {
        errno = ENOMEM;
        return NULL;
    }
    if (total <= NM_SMALL_MAX) {
        void *p = nm_malloc_fast(total);
        if (p) memset(p, 0, total);
        return p;
    }
    nm_tcache_t *tc = nm_thread_cache();
    if (tc == NULL) return nm_bootstrap_alloc(total, 0, true);
    return nm_alloc_any(tc, total, 0, true);
}

/* move p (usable bytes `old`) to a new block of n bytes */
static void *realloc_move(nm_tcache_t *tc, void *p, size_t old, size_t n)
{
    void *q = nm_malloc_fast(n);            /* the new block takes malloc's fast path */
    if (q == NULL) return NULL;                    /* p is untouched, as C requires */
    memcpy(q, p, NM_MIN(old, n));
    nm_free_fast(p);
    if (tc) nm_count_thread(tc, NM_C_realloc_move, 1);
    return q;
}

void *nm_realloc(void *p, size_t n)
{
    if (p == NULL) return nm_malloc_fast(n);
    if (n == 0) { nm_free_fast(p); return NULL; } /* glibc: realloc(p, 0) frees, returns NULL */
    if (NM_UNLIKELY(n > PTRDIFF_MAX)) { errno = ENOMEM; return NULL; }
    nm_tcache_t *tc = nm_thread_cache();
    nm_pme_t e = nm_pagemap_get((uintptr_t)p);
    switch (nm_pme_kind(e)) {
    case NM_KIND_SLAB: {
        size_t size = nm_class_size[nm_pme_class(e)];
        if (NM_UNLIKELY(nm_opt.check)) {
            /* always move: the free of the old block validates it once more */
            nm_verdict_t v = nm_small_verdict(p, e);
            if (!nm_verdict_ok("realloc", p, v)) { errno = EINVAL; return NULL; }
            return realloc_move(tc, p, v.req, n);
        }
        /* keep it when it still fits and would not waste more than half */
        if (n <= size && (n > size / 2 || size <= 16)) {
            if (tc) nm_count_thread(tc, NM_C_realloc_inplace, 1);
            return p;
        }
        return realloc_move(tc, p, size, n);
    }
    case NM_KIND_LARGE:
    case NM_KIND_HUGE: {
        nm_large_t *L = nm_pme_desc(e);
        if (p != L->user) { nm_invalid_pointer("realloc", p, "interior pointer into a large block"); errno = EINVAL; return NULL; }
        if (L->tcached) { nm_invalid_pointer("realloc", p, "large block already freed"); errno = EINVAL; return NULL; }
        if (NM_UNLIKELY(nm_opt.check)) {
            if (!nm_verdict_ok("realloc", p, nm_large_verdict(L))) { errno = EINVAL; return NULL; }
            return realloc_move(tc, p, L->req, n);
        }
        if (L->sampled) { nm_prof_forget(p); L->sampled = 0; }   /* the block may move */
        if (tc && n >= nm_opt.large_threshold) return nm_large_realloc(tc, L, p, n);
        return realloc_move(tc, p, nm_large_usable(L), n);
    }
    case NM_KIND_ARENA:
        return nm_fallback_realloc(tc, p, n);
    default:
        if (nm_fallback_owns(p)) return nm_fallback_realloc(tc, p, n);
        nm_invalid_pointer("realloc", p, "not allocated by numamalloc");
        nm_warn("realloc(%p, %lu): pointer not allocated by numamalloc; returning NULL and leaving it alone",
                p, (unsigned long)n);
        errno = EINVAL;
        return NULL;
    }
}

void *nm_reallocarray(void *p, size_t n, size_t m)
{
    size_t total;
    if (__builtin_mul_overflow(n, m, &total) || total > PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
    return nm_realloc(p, total);
}

size_t nm_usable_size(const void *p)
{
    if (p == NULL) return 0;
    nm_pme_t e = nm_pagemap_get((uintptr_t)p);
    switch (nm_pme_kind(e)) {
    case NM_KIND_SLAB:
        if (NM_UNLIKELY(nm_opt.check)) {          /* the size asked for: the rest is canary */
            nm_verdict_t v = nm_small_verdict(p, e);
            if (v.why) { nm_invalid_pointer("malloc_usable_size", p, v.why); return 0; }
            return v.req;
        }
        return nm_class_size[nm_pme_class(e)];
    case NM_KIND_LARGE:
    case NM_KIND_HUGE: {
        const nm_large_t *L = nm_pme_desc(e);
        if (p != L->user) { nm_invalid_pointer("malloc_usable_size", p, "interior pointer into a large block"); return 0; }
        if (L->tcached) { nm_invalid_pointer("malloc_usable_size", p, "large block already freed"); return 0; }
        return nm_opt.check ? L->req : nm_large_usable(L);
    }
    case NM_KIND_ARENA: {
        const char *why = nm_fallback_check(p);
        if (why) { nm_invalid_pointer("malloc_usable_size", p, why); return 0; }
        return nm_fallback_usable(p);
    }
    default:
        if (nm_fallback_owns(p)) return nm_fallback_usable(p);
        nm_invalid_pointer("malloc_usable_size", p, "not allocated by numamalloc");
        return 0;
    }
}
