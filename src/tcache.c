/* numamalloc — thread caches: the slow half of the hot path.
 *
 * Each thread has, per size class, a bin with a loaded and a previous magazine
 * (Bonwick 2001). malloc pops from the loaded one, free pushes onto it; only when it
 * is empty (malloc) or full (free) do we get here:
 *   malloc miss: previous has rounds -> swap; else the depot has a full magazine ->
 *                previous (empty) goes to the depot, loaded becomes previous, the full
 *                one is loaded; else fill the loaded magazine straight from slabs.
 *   free miss:   previous is empty -> swap; else previous (full) goes to the depot,
 *                loaded becomes previous, an empty one from the depot is loaded.
 * so a thread touches its depot's lock at most once per magazine of operations.
 * Blocks of another domain (freed by a thread that is not on their node) never
 * enter this thread's bins: they collect in per-(domain, class) magazines and go
 * home to their own depot when full (origin-aware, batched).
 *
 * Counters: fast-path operations are counted by the bins (budget/period for
 * allocations, nfree for frees) and reconciled into the thread's plain counters
 * here, at every slow event for that bin.
 *
 * Locks: only depot locks (src/depot.c) and what they nest. The thread cache itself
 * is touched only by its thread. */
#include <errno.h>
#include <string.h>

#include "numamalloc/internal.h"
#include "numamalloc/fastpath.h"

const nm_tcache_t nm_tcache_empty = { .state = NM_T_NEW };
const nm_tcache_t nm_tcache_dead = { .state = NM_T_DEAD };
NM_TLS nm_tcache_t *nm_tcp = (nm_tcache_t *)&nm_tcache_empty;

#define NM_BUDGET_MAX ((int64_t)1 << 62)

uint64_t *nm_gdom;                 /* global per-domain counters [ndomains][N] (stats.c) */
uint64_t nm_gcls[NM_NUM_CLASSES][NM_CLASS_CTR_N];
uint64_t nm_gthr[NM_THREAD_CTR_N];

/* ---- counting ------------------------------------------------------------------- */

void nm_count_domain_global(uint32_t dom, int id, uint64_t v)
{
    if (nm_gdom) __atomic_fetch_add(&nm_gdom[dom * NM_DOMAIN_CTR_N + id], v, __ATOMIC_RELAXED);
}

void nm_count_thread_global(int id, uint64_t v)
{
    __atomic_fetch_add(&nm_gthr[id], v, __ATOMIC_RELAXED);
}

static void count_class(nm_tcache_t *tc, unsigned cls, int id, uint64_t v)
{
    if (tc && tc->state == NM_T_ACTIVE) tc->ctr.cls[cls][id] += v;
    else __atomic_fetch_add(&nm_gcls[cls][id], v, __ATOMIC_RELAXED);
}

/* an allocation of `bytes` from domain dom, by a thread whose CPU is on cpu_node */
static void count_alloc(nm_tcache_t *tc, uint32_t dom, uint64_t n, uint64_t bytes)
{
    nm_count_domain(tc, dom, NM_C_alloc_count, n);
    nm_count_domain(tc, dom, NM_C_alloc_bytes, bytes);
    if (tc && dom != nm_dom_interleave && (int)dom != tc->cpu_node) nm_count_domain(tc, dom, NM_C_remote_alloc, n);
}

static void count_free(nm_tcache_t *tc, uint32_t dom, uint64_t n, uint64_t bytes)
{
    nm_count_domain(tc, dom, NM_C_free_count, n);
    nm_count_domain(tc, dom, NM_C_free_bytes, bytes);
}

static int64_t budget_new(nm_tcache_t *tc, unsigned cls)
{
    return nm_prof_on ? nm_prof_next_blocks(tc, cls) : NM_BUDGET_MAX;
}

/* Account the bin's fast-path operations since the last call. Returns true if the
 * budget ran out: the allocation that brought us here is the profiler's sample. */
static bool bin_reconcile(nm_tcache_t *tc, unsigned cls)
{
    nm_bin_t *b = &tc->bins[cls];
    if (b->period == 0) return false;             /* not set up (check mode, or dead) */
    bool expired = b->budget <= 0;
    uint64_t fast = (uint64_t)(b->period - b->budget) - (expired ? 1 : 0);
    uint64_t frees = b->nfree;
    b->nfree = 0;
    if (expired) b->budget = budget_new(tc, cls);
    b->period = b->budget;
    if (fast | frees) {
        size_t size = nm_class_size[cls];
        tc->ctr.cls[cls][NM_C_alloc_fast] += fast;
        tc->ctr.cls[cls][NM_C_free_fast] += frees;
        count_alloc(tc, tc->domain, fast, fast * size);
        count_free(tc, tc->domain, frees, frees * size);
    }
    return expired;
}

void nm_bin_reconcile_all(nm_tcache_t *tc)
{
    for (unsigned c = 0; c < NM_NUM_CLASSES; c++) bin_reconcile(tc, c);
}

/* ---- magazines in bins ------------------------------------------------------------ */

static void bin_load(nm_bin_t *b, nm_mag_t *m)
{
    b->loaded = m;
    if (m) {
        b->base = m->rounds;
        b->cur = m->rounds + m->count;
        b->end = m->rounds + m->cap;
    } else {
        b->base = b->cur = b->end = NULL;
    }
}

static void bin_sync(nm_bin_t *b)
{
    if (b->loaded) b->loaded->count = (uint32_t)(b->cur - b->base);
}

/* malloc miss: make the loaded magazine non-empty. false: out of memory. */
static bool bin_refill(nm_tcache_t *tc, unsigned cls)
{
    nm_tcache_tick(tc);                      /* may move the thread to another domain */
    nm_bin_t *b = &tc->bins[cls];
    bin_sync(b);
    if (b->prev && b->prev->count > 0) {
        nm_mag_t *m = b->prev;
        b->prev = b->loaded;
        bin_load(b, m);
        return true;
    }
    nm_depot_t *d = nm_depot(tc->domain, cls);
    nm_lock(&d->lock);
    if (b->loaded == NULL && d->empty) {
        b->loaded = d->empty;
        d->empty = b->loaded->next;
        d->nempty--;
        if (d->nempty < d->nempty_min) d->nempty_min = d->nempty;
    }
    nm_mag_t *full = nm_depot_take_full_locked(d);
    if (full) {
        if (b->loaded) {
            if (b->prev) nm_depot_push_empty_locked(d, b->prev);
            b->prev = b->loaded;
        }
        nm_unlock(&d->lock);
        bin_load(b, full);
        tc->ctr.cls[cls][NM_C_depot_get]++;
        return true;
    }
    if (b->loaded == NULL) {
        nm_unlock(&d->lock);
        nm_mag_t *m = nm_mag_new(cls);
        if (m == NULL) return false;
        b->loaded = m;
        nm_lock(&d->lock);
    }
    unsigned got = nm_slab_alloc_batch_locked(d, b->loaded->rounds, b->loaded->cap);
    nm_unlock(&d->lock);
    b->loaded->count = got;
    bin_load(b, b->loaded);
    tc->ctr.cls[cls][NM_C_slab_fill]++;
    return got > 0;
}

/* free miss: make room in the loaded magazine (it is full, or there is none).
 * false: no empty magazine could be had (metadata exhausted); the caller then
 * frees straight to the slabs. */
static bool bin_flush(nm_tcache_t *tc, unsigned cls)
{
    nm_bin_t *b = &tc->bins[cls];
    bin_sync(b);
    if (b->prev && b->prev->count == 0) {           /* Bonwick: swap with an empty previous */
        nm_mag_t *m = b->prev;
        b->prev = b->loaded;
        bin_load(b, m);
        return true;
    }
    nm_depot_t *d = nm_depot(tc->domain, cls);
    nm_mag_t *empty = NULL;
    if (b->prev) {                                   /* previous is full: it goes to the depot */
        if (b->prev->count == b->prev->cap) {
            empty = nm_depot_put_full(d, b->prev);
            tc->ctr.cls[cls][NM_C_depot_put]++;
        } else {
            nm_depot_return(d, b->prev);
        }
        b->prev = NULL;
    }
    if (empty == NULL) {
        nm_lock(&d->lock);
        empty = d->empty;
        if (empty) {
            d->empty = empty->next;
            d->nempty--;
            if (d->nempty < d->nempty_min) d->nempty_min = d->nempty;
        }
        nm_unlock(&d->lock);
    }
    if (empty == NULL && (empty = nm_mag_new(cls)) == NULL) return false;
    b->prev = b->loaded;                             /* the full one becomes previous */
    empty->count = 0;
    bin_load(b, empty);
    return true;
}

/* ---- node migration and periodic work -------------------------------------------- */

void nm_tcache_tick(nm_tcache_t *tc)
{
    nm_tcache_node_check(tc);
    if (++tc->slow_ticks >= 32) {
        tc->slow_ticks = 0;
        nm_decay(false);
        if (tc->lcount) {                            /* large blocks kept too long go on */
            uint64_t now = nm_os_now_ms();
            if (now > nm_opt.decay_ms) nm_large_tcache_flush(tc, now - nm_opt.decay_ms);
        }
    }
}

/* a thread found on another node allocates there from now on (one rseq load when
 * it has not moved) */
void nm_tcache_node_check(nm_tcache_t *tc)
{
    int node = nm_topo_cpu_node(nm_os_cpu());
    if (NM_UNLIKELY(node != tc->cpu_node)) {
        tc->ctr.thr[NM_C_node_moves]++;
        uint32_t nd = nm_policy_domain_for(node);
        if (nd != tc->domain) {
            /* everything cached belongs to the old domain: send it home first */
            nm_tcache_flush_all(tc);
            tc->domain = nd;
            tc->free_tag_hi = (uint64_t)nm_pme_tag_make(nd, NM_KIND_SLAB) << NM_PME_TAG_SHIFT;
        }
        tc->cpu_node = node;
    }
}

void nm_tcache_flush_all(nm_tcache_t *tc)
{
    for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
        nm_bin_t *b = &tc->bins[c];
        bin_reconcile(tc, c);
        bin_sync(b);
        nm_depot_t *d = nm_depot(tc->domain, c);
        nm_depot_return(d, b->loaded);
        nm_depot_return(d, b->prev);
        b->prev = NULL;
        bin_load(b, NULL);
    }
    if (tc->remote) {
        for (uint32_t dom = 0; dom < nm_ndomains; dom++) {
            for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
                nm_mag_t **slot = &tc->remote[dom * NM_NUM_CLASSES + c];
                if (*slot) { nm_depot_return(nm_depot(dom, c), *slot); *slot = NULL; }
            }
        }
    }
    nm_large_tcache_flush(tc, UINT64_MAX);
}

/* ---- small allocation ------------------------------------------------------------- */

/* domain for a thread without an active cache (dead, or booting) */
static uint32_t current_domain(void)
{
    return nm_policy_domain_for(nm_topo_cpu_node(nm_os_cpu()));
}

void *nm_small_alloc_direct(uint32_t dom, unsigned cls, size_t n)
{
    nm_depot_t *d = nm_depot(dom, cls);
    void *p = NULL;
    unsigned got = 0;
    /* once more after a reclaim (see nm_reclaim) */
    for (int attempt = 0; attempt < 2 && got == 0; attempt++) {
        if (attempt && !nm_reclaim(nm_tcp)) break;
        nm_lock(&d->lock);
        got = nm_slab_alloc_batch_locked(d, &p, 1);
        if (got && nm_opt.check) nm_slab_set_req_locked(nm_pme_desc(nm_pagemap_get((uintptr_t)p)), p, n);
        nm_unlock(&d->lock);
    }
    if (got == 0) { errno = ENOMEM; return NULL; }
    if (nm_opt.check) {
        memset(p, 0xa5, n);                          /* uninitialised reads show */
        nm_canary_fill(p, n, nm_class_size[cls]);    /* and writes past n are caught at free */
    }
    return p;
}

void *nm_small_alloc(nm_tcache_t *tc, unsigned cls, size_t n, bool may_sample)
{
    size_t size = nm_class_size[cls];
    if (NM_UNLIKELY(tc->state != NM_T_ACTIVE || nm_opt.check)) {
        uint32_t dom = tc->state == NM_T_ACTIVE ? tc->domain : current_domain();
        void *p = nm_small_alloc_direct(dom, cls, n);
        if (p) { count_class(tc, cls, NM_C_alloc_slow, 1); count_alloc(tc, dom, 1, size); }
        return p;
    }
    nm_bin_t *b = &tc->bins[cls];
    bool sample = bin_reconcile(tc, cls);
    if (nm_prof_on && !sample) {
        /* this allocation is not on the fast path but is part of the class's byte
         * stream all the same: it uses up budget too, or the profiler would never
         * see the first allocation of a class nor any that found the bin empty */
        if (--b->budget <= 0) { sample = true; b->budget = budget_new(tc, cls); }
        b->period = b->budget;
    }
    if (NM_UNLIKELY(sample) && may_sample && !tc->busy) {
        /* the profiler's sample: served by the fallback arena, whose frees take
         * the slow path where the sample is forgotten */
        void *p = nm_fallback_alloc(tc, size, 0, false);
        if (p) { nm_prof_record(tc, p, size, nm_prof_weight_small(cls)); return p; }
    }
    if (b->cur == b->base && !bin_refill(tc, cls) && (!nm_reclaim(tc) || !bin_refill(tc, cls))) {
        errno = ENOMEM;
        return NULL;
    }
    tc->ctr.cls[cls][NM_C_alloc_slow]++;
    count_alloc(tc, tc->domain, 1, size);
    return *--b->cur;
}

void *nm_malloc_slow(size_t n)
{
    nm_tcache_t *tc = nm_thread_cache();
    if (NM_UNLIKELY(tc == NULL)) return nm_bootstrap_alloc(n, 0, false);
    if (NM_UNLIKELY(nm_opt.check)) return nm_alloc_any(tc, n, 0, false);   /* canary room */
    if (n <= NM_SMALL_MAX) return nm_small_alloc(tc, nm_size_class(n), n, true);
    /* a medium block this thread freed; below the large threshold only, as in
     * nm_alloc_any (a cached 1 MiB block served malloc(1 MiB), found by tests/fuzz) */
    if (n <= NM_MED_MAX && n < nm_opt.large_threshold && tc->state == NM_T_ACTIVE) {
        void *p = nm_fallback_cached(tc, n);
        if (p) return p;
    }
    return nm_alloc_any(tc, n, 0, false);
}

/* ---- small free --------------------------------------------------------------------- */

void nm_small_free_direct(void *p, nm_pme_t e)
{
    nm_tcache_t *tc = nm_tcp;
    uint32_t dom = nm_pme_domain(e);
    unsigned cls = nm_pme_class(e);
    nm_depot_t *d = nm_depot(dom, cls);
    nm_verdict_t v = { .bad = NM_CANARY_OK };
    nm_lock(&d->lock);
    if (nm_opt.check) v = nm_slab_free_checked_locked(d, nm_pme_desc(e), p);
    else nm_slab_free_batch_locked(d, &p, 1);
    nm_unlock(&d->lock);
    if (!nm_verdict_ok("free", p, v)) return;
    count_class(tc, cls, NM_C_free_slow, 1);
    count_free(tc, dom, 1, nm_class_size[cls]);
}

const char *nm_small_check(const void *p, nm_pme_t e)
{
    nm_depot_t *d = nm_depot(nm_pme_domain(e), nm_pme_class(e));
    nm_lock(&d->lock);
    const char *why = nm_slab_check_locked(nm_pme_desc(e), p);
    nm_unlock(&d->lock);
    return why;
}

nm_verdict_t nm_small_verdict(const void *p, nm_pme_t e)
{
    nm_depot_t *d = nm_depot(nm_pme_domain(e), nm_pme_class(e));
    nm_lock(&d->lock);
    nm_verdict_t v = nm_slab_verdict_locked(nm_pme_desc(e), p);
    nm_unlock(&d->lock);
    return v;
}

static void remote_free(nm_tcache_t *tc, uint32_t dom, unsigned cls, void *p)
{
    if (tc->remote == NULL) {
        tc->remote = nm_meta_alloc((size_t)nm_ndomains * NM_NUM_CLASSES * sizeof(nm_mag_t *));
        if (tc->remote == NULL) { nm_small_free_direct(p, nm_pagemap_get((uintptr_t)p)); return; }
    }
    nm_mag_t **slot = &tc->remote[dom * NM_NUM_CLASSES + cls];
    nm_mag_t *m = *slot;
    if (m == NULL && (m = *slot = nm_mag_new(cls)) == NULL) {
        nm_small_free_direct(p, nm_pagemap_get((uintptr_t)p));
        return;
    }
    m->rounds[m->count++] = p;
    tc->ctr.cls[cls][NM_C_free_slow]++;
    count_free(tc, dom, 1, nm_class_size[cls]);
    nm_count_domain(tc, dom, NM_C_remote_free, 1);
    if (m->count == m->cap) {
        *slot = nm_depot_put_full(nm_depot(dom, cls), m);
        if (*slot) (*slot)->count = 0;
    }
}

static void free_small_slow(nm_tcache_t *tc, void *p, nm_pme_t e)
{
    if (tc == NULL || tc->state != NM_T_ACTIVE) { nm_small_free_direct(p, e); return; }
    if (NM_UNLIKELY(nm_opt.check)) { nm_small_free_direct(p, e); return; }
    uint32_t dom = nm_pme_domain(e);
    unsigned cls = nm_pme_class(e);
    if (dom != tc->domain) { remote_free(tc, dom, cls, p); return; }
    nm_bin_t *b = &tc->bins[cls];
    if (b->cur == b->end) {
        bin_reconcile(tc, cls);
        if (!bin_flush(tc, cls)) { nm_small_free_direct(p, e); return; }
    }
    *b->cur++ = p;
    tc->ctr.cls[cls][NM_C_free_slow]++;
    count_free(tc, dom, 1, nm_class_size[cls]);
}

static void free_unknown(nm_tcache_t *tc, void *p)
{
    if (nm_fallback_owns(p)) {           /* served by mimalloc while we were booting */
        nm_fallback_free(tc, p, 0);
        return;
    }
    nm_count_thread(tc, NM_C_foreign_free, 1);
    nm_invalid_pointer("free", p, "not allocated by numamalloc");
}

void nm_free_slow(void *p, nm_pme_t e)
{
    if (p == NULL) return;
    int saved = errno;                   /* free preserves errno (glibc manual) */
    nm_tcache_t *tc = nm_thread_cache(); /* a thread's first free starts it too */
    switch (nm_pme_kind(e)) {
    case NM_KIND_SLAB:  free_small_slow(tc, p, e); break;
    case NM_KIND_LARGE:
    case NM_KIND_HUGE:  nm_large_free(tc, nm_pme_desc(e), p); break;
    case NM_KIND_ARENA: nm_fallback_free(tc, p, e); break;
    default:            free_unknown(tc, p); break;
    }
    errno = saved;
}

/* ---- decay ------------------------------------------------------------------------- */

nm_lock_t nm_decay_lock = NM_LOCK_INIT;
static uint64_t next_decay_ms;

void nm_decay(bool force)
{
    uint64_t now = nm_os_now_ms();
    if (!force && now < __atomic_load_n(&next_decay_ms, __ATOMIC_RELAXED)) return;
    if (force) nm_lock(&nm_decay_lock);
    else if (!nm_trylock(&nm_decay_lock)) return;
    uint64_t interval = nm_opt.decay_ms ? nm_opt.decay_ms : 1;
    __atomic_store_n(&next_decay_ms, now + interval, __ATOMIC_RELAXED);
    uint64_t cutoff = force ? UINT64_MAX : (now > nm_opt.decay_ms ? now - nm_opt.decay_ms : 0);
    for (uint32_t dom = 0; dom < nm_ndomains; dom++) {
        nm_domain_t *dm = &nm_domains[dom];
        if (__atomic_load_n(&dm->nsegments, __ATOMIC_RELAXED) == 0 &&
            __atomic_load_n(&dm->cache_bytes, __ATOMIC_RELAXED) == 0) continue;
        for (unsigned c = 0; c < NM_NUM_CLASSES; c++) nm_depot_decay(&dm->depots[c], cutoff, force);
        nm_segment_purge(dom, cutoff);
        nm_large_decay(dom, cutoff);
    }
    nm_gstat_add(NM_C_decay_runs, 1);
    nm_unlock(&nm_decay_lock);
}

/* Memory is short: a segment, mapping or metadata chunk could not be mapped. Before
 * a NULL reaches the program, give back everything idle, as malloc_trim does: the
 * calling thread's magazines and medium cache, the depots' spare magazines and
 * slabs, wholly free segments, the large-mapping cache and mimalloc's free pages.
 * Found by the fault suite: under ulimit -v (RLIMIT_AS 1 GiB), after 920 MiB of
 * small blocks were freed, every malloc(8 MiB) returned NULL for as long as decay
 * had not yet unmapped the empty segments (glibc malloc got 123 such blocks).
 * Returns true if something was released; the caller then tries once more. */
static uint64_t released_so_far(void)
{
    return nm_gstat_get(NM_C_segments_unmapped) + nm_gstat_get(NM_C_large_cache_evict) +
           nm_gstat_get(NM_C_slab_pages_purged) + nm_gstat_get(NM_C_meta_bytes);
}

bool nm_reclaim(nm_tcache_t *tc)
{
    uint64_t before = released_so_far();
    if (tc && tc->state == NM_T_ACTIVE) {
        nm_tcache_flush_all(tc);
        nm_fallback_cache_flush(tc);
    }
    nm_decay(true);
    nm_fallback_collect(true);
    return released_so_far() != before;
}
