/* numamalloc — routing: malloc, free, calloc, realloc and malloc_usable_size, and the
 * slow halves of the hot path.
 *
 * The small-block fast paths are include/numamalloc/fastpath.h (inlined into every
 * exported entry point); everything else comes here and is routed by size
 *   n <= 32 KiB                       small classes: the thread's magazines (tcache.c)
 *   32 KiB < n < LARGE_THRESHOLD      medium classes (up to 1 MiB): the same, in bytes
 *   n >= LARGE_THRESHOLD (or bigger   an own NUMA-bound mapping, huge pages when
 *   than the medium classes)          possible (large.c)
 * and, for a pointer, by the page map's kind: slab (small and medium), large or
 * huge; anything else is a block the fallback arena served (while booting, or when
 * our own memory was refused), or not ours, in which case it is counted and left
 * alone (NUMAMALLOC_CHECK=1 aborts with a message instead). A plain large malloc,
 * and the free of a valid large block, first try the thread's kept blocks
 * (nm_large_take_kept / nm_large_free_kept): a scratch buffer taken per request
 * then costs about what glibc's heap top does.
 * Every slow path gives decay its turn (nm_decay_tick; a kept large block's round
 * trip once, at its free). When memory cannot be had,
 * nm_reclaim gives back everything idle and the request is tried once more; only
 * then does a small or medium request go to the fallback arena, and a NULL (ENOMEM)
 * reach the program. The process boots on the first call of any thread; allocations
 * made while it boots go to the fallback arena. No locks here. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "numamalloc/internal.h"
#include "numamalloc/fastpath.h"

void *nm_malloc(size_t n) { return nm_malloc_fast(n); }
void nm_free(void *p) { nm_free_fast(p); }

nm_tcache_t *nm_thread_ready(void)
{
    if (NM_UNLIKELY(nm_load_acquire(&nm_pstate) != NM_P_READY) && !nm_process_init()) return NULL;
    return nm_thread_cache();
}

void *nm_bootstrap_alloc(size_t n, size_t align, bool zero)
{
    if (n > PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
    nm_gstat_add(NM_C_bootstrap_allocs, 1);
    return nm_fallback_alloc(NULL, n, align, zero);
}

static void tick(nm_tcache_t *tc)
{
    if (tc->state == NM_T_ACTIVE) nm_decay_tick(tc);
}

/* the domain a request of tc goes to */
static uint32_t domain_of(nm_tcache_t *tc)
{
    return tc->state == NM_T_ACTIVE ? tc->domain : nm_policy_domain_for(nm_topo_cpu_node(nm_os_cpu()));
}

/* a slab block (small or medium class cls) for n bytes; on no memory, reclaim and try
 * again, then the fallback arena */
static void *slab_alloc(nm_tcache_t *tc, unsigned cls, size_t n, size_t align, bool zero, bool may_sample)
{
    void *p = nm_small_alloc(tc, cls, n, may_sample);
    if (NM_UNLIKELY(p == NULL)) {
        if (nm_reclaim(tc)) p = nm_small_alloc(tc, cls, n, may_sample);
        if (p == NULL) {
            /* mimalloc maps memory too: the fault-injection build fails it with ours */
            p = nm_fault_hit(NM_FAULT_MMAP) ? NULL : nm_fallback_alloc(tc, n, align, zero);
            if (p) nm_fallback_count(NM_FB_OWN_MEMORY, ENOMEM);
            else errno = ENOMEM;
            return p;
        }
    }
    if (zero) nm_zero_block(p, n);
    return p;
}

static void *large_alloc(nm_tcache_t *tc, size_t n, size_t align, bool zero)
{
    uint32_t dom = domain_of(tc);
    void *p = nm_large_alloc(tc, dom, n, align, zero);
    if (p == NULL && nm_reclaim(tc)) p = nm_large_alloc(tc, dom, n, align, zero);
    if (p == NULL) errno = ENOMEM;           /* (not what a failed call inside reclaim left) */
    return p;
}

void *nm_alloc_any(nm_tcache_t *tc, size_t n, size_t align, bool zero)
{
    if (NM_UNLIKELY(n > PTRDIFF_MAX)) { errno = ENOMEM; return NULL; }
    if (align <= 16) align = 0;
    tick(tc);
    size_t cn = n + nm_opt.check;           /* NUMAMALLOC_CHECK=1: a byte of canary at least */
    if (cn <= NM_SMALL_MAX || (cn <= NM_MEDIUM_MAX && n < nm_opt.large_threshold)) {
        unsigned cls = align ? nm_size_class_aligned(cn, align) : nm_class_of(cn);
        if (cls < NM_NUM_CLASSES) {
            if (cls >= NM_SMALL_CLASSES && tc->state == NM_T_ACTIVE) nm_tcache_node_check(tc);
            return slab_alloc(tc, cls, n, align, zero, align == 0);
        }
        if (n < nm_opt.large_threshold) nm_fallback_count(NM_FB_LARGE_ALIGN, 0);
    }
    if (tc->state == NM_T_ACTIVE) nm_tcache_node_check(tc);   /* large blocks follow a migrated thread at once */
    bool sample = nm_prof_on && align == 0 && !tc->busy && tc->state == NM_T_ACTIVE && nm_prof_tick_bytes(tc, n);
    void *p = large_alloc(tc, n, align, zero);
    if (p && sample) {
        nm_prof_record(tc, p, n, nm_prof_weight_bytes(n));
        ((nm_large_t *)nm_pme_desc(nm_pagemap_get((uintptr_t)p)))->sampled = 1;   /* its free forgets it */
    }
    return p;
}

/* everything but a medium block popped from the thread's bin (kept out of line so
 * that nm_malloc_slow stays a leaf for that case) */
static NM_NOINLINE void *malloc_slower(size_t n)
{
    nm_tcache_t *tc = nm_tcp;
    if (NM_UNLIKELY(tc->state != NM_T_ACTIVE) && (tc = nm_thread_ready()) == NULL) return nm_bootstrap_alloc(n, 0, false);
    bool slab = n <= NM_SMALL_MAX || (n <= NM_MEDIUM_MAX && n < nm_opt.large_threshold);
    if (!slab && NM_LIKELY(!nm_opt.check && !nm_prof_on && tc->state == NM_T_ACTIVE)) {
        /* a block this thread freed and kept: no mapping, lock or page-map store (a
         * thread past its exit, or while it starts, has no slots). Cheaper than
         * going through nm_alloc_any (43 instructions a 2 MiB pair under callgrind);
         * a miss goes there, which ticks (once) and checks the node (one compare) */
        nm_tcache_node_check(tc);           /* large blocks follow a migrated thread at once */
        void *p = nm_large_take_kept(tc, n);
        if (p) return p;                    /* its free ticked: one tick a round trip */
    }
    if (NM_UNLIKELY(nm_opt.check) || !slab) return nm_alloc_any(tc, n, 0, false);
    tick(tc);
    return slab_alloc(tc, (unsigned)nm_class_of(n), n, 0, false, true);
}

void *nm_malloc_slow(size_t n)
{
    if (NM_LIKELY(n > NM_SMALL_MAX && n <= NM_MEDIUM_MAX && n < nm_opt.large_threshold))
        NM_MEDIUM_POP_RETURN(nm_tcp, nm_medium_class(n));
    return malloc_slower(n);
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
    nm_tcache_t *tc = nm_thread_ready();
    if (tc == NULL) return nm_bootstrap_alloc(total, 0, true);
    return nm_alloc_any(tc, total, 0, true);
}

/* ---- free --------------------------------------------------------------------------------- */

static void free_unknown(nm_tcache_t *tc, void *p)
{
    if (nm_fallback_owns(p)) { nm_fallback_free(tc, p); return; }
    nm_count(nm_tc_ctr(tc), NM_CT_THREAD, 0, NM_C_foreign_free, 1);
    nm_invalid_pointer("free", p, "not allocated by numamalloc");
}

/* everything but a medium block pushed into the thread's bin */
static NM_NOINLINE void free_slower(void *p, nm_pme_t e)
{
    if (p == NULL) return;
    unsigned kind = nm_pme_kind(e);
    nm_tcache_t *t = nm_tcp;
    if ((kind == NM_KIND_LARGE || kind == NM_KIND_HUGE) && t->state == NM_T_ACTIVE &&
        nm_large_free_kept(t, nm_pme_desc(e), p)) {
        tick(t);                         /* (keeps errno too) */
        return;
    }
    int saved = errno;                   /* free preserves errno (glibc manual) */
    nm_tcache_t *tc = nm_thread_ready(); /* a thread's first free starts it too */
    if (tc == NULL) tc = (nm_tcache_t *)&nm_tcache_empty;
    switch (nm_pme_kind(e)) {
    case NM_KIND_SLAB:   nm_small_free(tc, p, e); break;
    case NM_KIND_MEDIUM: nm_medium_free(tc, p, e); break;
    case NM_KIND_LARGE:
    case NM_KIND_HUGE:   nm_large_free(tc, nm_pme_desc(e), p); break;
    default:             free_unknown(tc, p); break;
    }
    tick(tc);
    errno = saved;
}

void nm_free_slow(void *p, nm_pme_t e)
{
    if (NM_LIKELY(nm_medium_free_fast(nm_tcp, p, e))) return;
    free_slower(p, e);
}

/* ---- realloc ------------------------------------------------------------------------------- */

/* move p (`old` bytes worth keeping) to a new block of n bytes; p is untouched if
 * that fails, as C requires */
static void *realloc_move(nm_tcache_t *tc, void *p, size_t old, size_t n)
{
    void *q = nm_malloc_fast(n);            /* the new block takes malloc's fast path */
    if (q == NULL) return NULL;
    memcpy(q, p, NM_MIN(old, n));
    nm_free_fast(p);
    nm_count(nm_tc_ctr(tc), NM_CT_THREAD, 0, NM_C_realloc_move, 1);
    return q;
}

static void *realloc_refused(const char *why, void *p, size_t n)
{
    nm_invalid_pointer("realloc", p, why);
    nm_warn("realloc(%p, %lu): %s; returning NULL and leaving it alone", p, (unsigned long)n, why);
    errno = EINVAL;
    return NULL;
}

/* a block of class cls stays where it is for n bytes when it still fits, would not
 * waste more than half and is still a size slabs serve (at or above the large
 * threshold it moves to a mapping, as malloc would route it) */
static bool keeps(size_t n, unsigned cls)
{
    size_t size = nm_class_size[cls];
    return n <= size && (n > size / 2 || size <= 16) && (cls < NM_SMALL_CLASSES || n < nm_opt.large_threshold);
}

/* Kept in place needs no thread cache: a block of a slab exists only once the
 * process is READY, and the count goes to the thread's counters if it has started,
 * else to the global ones. */
static void *kept(void *p)
{
    nm_count(nm_tc_ctr(nm_tcp), NM_CT_THREAD, 0, NM_C_realloc_inplace, 1);
    return p;
}

/* p is a slab or medium block (entry e) */
static void *realloc_slab(void *p, size_t n, nm_pme_t e)
{
    unsigned cls = nm_pme_class(e);
    size_t size = nm_class_size[cls];
    if (NM_UNLIKELY(nm_opt.check)) {
        /* always move: the free of the old block validates it once more */
        nm_verdict_t v = nm_small_verdict(p, e);
        if (!nm_verdict_ok("realloc", p, v)) { errno = EINVAL; return NULL; }
        return realloc_move(nm_thread_ready(), p, v.req, n);
    }
    if (nm_pme_kind(e) == NM_KIND_MEDIUM && !nm_medium_held(p)) {
        const char *why = nm_medium_check(nm_pme_desc(e), p);    /* says which */
        if (why) return realloc_refused(why, p, n);
    }
    if (keeps(n, cls)) return kept(p);
    /* a block grown by realloc is likely to grow again (a buffer appended to): growing
     * by less than a quarter takes a quarter, so that appends move it a logarithmic
     * number of times, not once per class */
    size_t want = n;
    if (n > size && n - size < size / 4 && size + size / 4 < nm_opt.large_threshold) want = size + size / 4;
    return realloc_move(nm_thread_ready(), p, size, want);
}

/* p (not NULL) has entry e; 0 < n <= PTRDIFF_MAX */
static NM_NOINLINE void *realloc_entry(void *p, size_t n, nm_pme_t e)
{
    unsigned kind = nm_pme_kind(e);
    if (kind == NM_KIND_SLAB || kind == NM_KIND_MEDIUM) return realloc_slab(p, n, e);
    nm_tcache_t *tc = nm_thread_ready();
    if (tc == NULL) tc = (nm_tcache_t *)&nm_tcache_empty;
    if (kind == NM_KIND_LARGE || kind == NM_KIND_HUGE) {
        nm_large_t *L = nm_pme_desc(e);
        const char *why = nm_large_check(L, p);
        if (why) { nm_invalid_pointer("realloc", p, why); errno = EINVAL; return NULL; }
        if (NM_UNLIKELY(nm_opt.check)) {
            if (!nm_verdict_ok("realloc", p, nm_large_verdict(L))) { errno = EINVAL; return NULL; }
            return realloc_move(tc, p, L->req, n);
        }
        if (L->sampled) { nm_prof_forget(p); L->sampled = 0; }   /* the block may move */
        if (n >= nm_opt.large_threshold) {
            void *q = nm_large_resize(tc, L, p, n);
            if (q) return q;
        }
        return realloc_move(tc, p, nm_large_usable(L), n);
    }
    if (nm_fallback_owns(p)) return realloc_move(tc, p, nm_fallback_usable(p), n);
    return realloc_refused("not allocated by numamalloc", p, n);
}

static NM_NOINLINE void *realloc_edge(void *p, size_t n)
{
    if (p == NULL) return nm_malloc_fast(n);
    if (n == 0) { nm_free_fast(p); return NULL; } /* glibc: realloc(p, 0) frees, returns NULL */
    errno = ENOMEM;                                 /* n > PTRDIFF_MAX */
    return NULL;
}

/* The common case up front, with nothing to save: a small block that stays. */
void *nm_realloc(void *p, size_t n)
{
    if (NM_UNLIKELY(p == NULL || n - 1 >= PTRDIFF_MAX)) return realloc_edge(p, n);
    nm_pme_t e = nm_pagemap_get((uintptr_t)p);
    if (nm_pme_kind(e) == NM_KIND_SLAB && !nm_opt.check && keeps(n, nm_pme_class(e))) return kept(p);
    return realloc_entry(p, n, e);
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
    case NM_KIND_MEDIUM:
        if (!nm_opt.check) {
            const char *why = nm_medium_held(p) ? NULL : nm_medium_check(nm_pme_desc(e), p);
            if (why) { nm_invalid_pointer("malloc_usable_size", p, why); return 0; }
            return nm_class_size[nm_pme_class(e)];
        }
        __attribute__((fallthrough));
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
        const char *why = nm_large_check(L, p);
        if (why) { nm_invalid_pointer("malloc_usable_size", p, why); return 0; }
        return nm_opt.check ? L->req : nm_large_usable(L);
    }
    default:
        if (nm_fallback_owns(p)) return nm_fallback_usable(p);
        nm_invalid_pointer("malloc_usable_size", p, "not allocated by numamalloc");
        return 0;
    }
}
