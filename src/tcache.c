/* numamalloc — thread caches (the slow half of the hot path) and the lifecycle of
 * threads and of the process state.
 *
 * Small classes: per class, a bin with a loaded and a previous magazine (Bonwick
 * 2001). malloc pops from the loaded one, free pushes onto it; only when it is empty
 * (malloc) or full (free) do we get here:
 *   malloc miss: previous has rounds -> swap; else the depot has a full magazine ->
 *                previous (empty) goes to the depot, loaded becomes previous, the full
 *                one is loaded; else fill the loaded magazine straight from slabs.
 *   free miss:   previous is empty -> swap; else previous (full) goes to the depot,
 *                loaded becomes previous, an empty one from the depot is loaded.
 * Medium classes (above 32 KiB) use the same bins with one magazine each and no
 * previous: their magazines hold 1..6 blocks. Either way a thread touches its depot's
 * lock at most once per magazine of operations.
 * Budget: the capacity (rounds x size) of every magazine in a thread's bins counts
 * against the thread's budget (NM_TC_MIN_BYTES, grown by doubling out of a pool
 * shared by all threads, to NM_TC_MAX_BYTES; config.h). A bin that needs one more
 * magazine beyond it first grows the budget if the pool allows, else gives back the
 * magazines of the bin used least recently (a medium bin first makes room among the
 * medium bins: together they hold at most NM_TC_MED_BYTES of it); a small bin may
 * then work without its previous magazine, a bin without any sends its blocks
 * straight to the slabs. At its decay tick a thread gives back the bins it did not
 * use since the last one and half of a budget it does not need. So one thread caches what it uses, and many
 * threads at once hold a bounded total.
 * Blocks of another domain (freed by a thread that is not on their node) never enter
 * this thread's bins: they collect in per-(domain, class) magazines and go home to
 * their own depot when full (origin-aware, batched). Blocks of the profiler's
 * pseudo-domain (sampled) skip every cache: their free forgets the sample.
 *
 * Counters: fast-path operations are counted by the bins (budget/period for
 * allocations, the distance cur moved from mark for frees) and reconciled into the
 * thread's counters here, at every slow event for that bin.
 *
 * Lifecycle. Process: UNINIT -> BOOTING -> READY (src/init.c drives it; the state
 * lives here so that everything above may read it). Thread (nm_tcache_t.state): NEW
 * (the read-only empty cache) -> ACTIVE on the first slow path -> DEAD in the pthread
 * key destructor, which gives the thread's blocks back and merges its counters. A
 * DEAD thread still allocates and frees (later key destructors, glibc's own thread
 * cleanup), straight from the slabs. Thread start and exit call nothing that takes
 * the loader's lock: a thread started by a constructor while dlopen holds it must be
 * able to allocate. A thread whose exit handler never runs (its first allocation in
 * glibc's last key-destructor round) leaves its cache linked but valid: it is retired
 * when its thread id is seen again, or by the next decay pass or dump that finds the
 * thread gone.
 *
 * Locks: depot locks (src/depot.c) and what they nest; nm_threads_lock (the thread
 * list) before any depot lock. The thread cache itself is touched only by its thread
 * (its kept large blocks excepted: atomic slots, src/large.c). */
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "numamalloc/internal.h"

const nm_tcache_t nm_tcache_empty = { .state = NM_T_NEW };
const nm_tcache_t nm_tcache_dead = { .state = NM_T_DEAD };
NM_TLS nm_tcache_t *nm_tcp = (nm_tcache_t *)&nm_tcache_empty;

int nm_pstate;
NM_GLOBAL_LOCK nm_lock_t nm_init_lock = NM_LOCK_INIT;
uint64_t nm_start_ms;
NM_GLOBAL_LOCK nm_lock_t nm_threads_lock = NM_LOCK_INIT;
nm_tcache_t *nm_threads;
static pthread_key_t thread_key;

/* Without the profiler, a bin's budget is a ticker: every NM_TICK_ALLOCS allocations
 * of a class one takes the slow path, so that a thread living on the fast path still
 * counts its work and gives decay its turn (src/alloc.c); the fast path pays nothing
 * more, it decrements the budget anyway. */
#define NM_TICK_ALLOCS 4096

/* ---- counting -------------------------------------------------------------------------- */

/* an allocation of n blocks, `bytes` in all, from domain dom */
static void count_alloc(nm_tcache_t *tc, uint32_t dom, uint64_t n, uint64_t bytes)
{
    nm_counters_t *c = nm_tc_ctr(tc);
    nm_count(c, NM_CT_DOMAIN, dom, NM_C_alloc_count, n);
    nm_count(c, NM_CT_DOMAIN, dom, NM_C_alloc_bytes, bytes);
    if (tc && tc->state == NM_T_ACTIVE &&
        nm_node_is_remote(dom == tc->domain ? tc->domain_node : nm_domain_node(dom), tc->cpu_node))
        nm_count(c, NM_CT_DOMAIN, dom, NM_C_remote_alloc, n);
}

static void count_free(nm_tcache_t *tc, uint32_t dom, uint64_t n, uint64_t bytes)
{
    nm_counters_t *c = nm_tc_ctr(tc);
    nm_count(c, NM_CT_DOMAIN, dom, NM_C_free_count, n);
    nm_count(c, NM_CT_DOMAIN, dom, NM_C_free_bytes, bytes);
}

static int64_t budget_new(nm_tcache_t *tc, unsigned cls)
{
    return nm_prof_on ? nm_prof_next_blocks(tc, cls) : NM_TICK_ALLOCS;
}

/* Account the bin's fast-path operations since the last call. Returns true if the
 * profiler's budget ran out: the allocation that brought us here is its sample. */
static bool bin_reconcile(nm_tcache_t *tc, unsigned cls)
{
    nm_bin_t *b = &tc->bins[cls];
    if (b->period == 0) return false;             /* not set up (dead) */
    bool expired = b->budget <= 0;
    uint64_t fast = (uint64_t)(b->period - b->budget) - (expired ? 1 : 0);
    uint64_t frees = (uint64_t)(nm_bin_moved(b->cur, b->mark) + (int64_t)fast);
    b->mark = (intptr_t)b->cur;
    if (expired) b->budget = budget_new(tc, cls);
    b->period = b->budget;
    if (fast | frees) {
        size_t size = nm_class_size[cls];
        tc->ctr.cls[cls][NM_C_alloc_fast] += fast;
        tc->ctr.cls[cls][NM_C_free_fast] += frees;
        count_alloc(tc, tc->domain, fast, fast * size);
        count_free(tc, tc->domain, frees, frees * size);
    }
    return expired && nm_prof_on;
}

static void bin_reconcile_all(nm_tcache_t *tc)
{
    for (unsigned c = 0; c < NM_NUM_CLASSES; c++) bin_reconcile(tc, c);
}

/* ---- magazines in bins ------------------------------------------------------------------ */

/* Every change of a bin's cur outside the fast path goes through here or through
 * bin_pop/bin_push, which keep the fast-path free count (nm_bin_t.mark) true. The
 * slow paths reconcile a bin before they change its magazines; if one did not, the
 * reconciliation here keeps the count (a budget cannot have run out here: that
 * diverts a malloc, whose slow path reconciles first). */
static void bin_load(nm_tcache_t *tc, nm_bin_t *b, nm_mag_t *m)
{
    if (NM_UNLIKELY(nm_bin_moved(b->cur, b->mark) != 0)) bin_reconcile(tc, (unsigned)(b - tc->bins));
    b->loaded = m;
    if (m) {
        m->holder = tc->tid;
        b->base = m->rounds;
        b->cur = m->rounds + m->count;
        b->end = m->rounds + m->cap;
    } else {
        b->base = b->cur = b->end = NULL;
    }
    b->mark = (intptr_t)b->cur;
}

/* a slow-path pop or push: counted by the caller, not as a fast-path free */
static void *bin_pop(nm_bin_t *b)
{
    b->mark -= (intptr_t)sizeof(void *);
    return *--b->cur;
}

static void bin_push(nm_bin_t *b, void *p)
{
    b->mark += (intptr_t)sizeof(void *);
    *b->cur++ = p;
}

static void bin_sync(nm_bin_t *b)
{
    if (b->loaded) b->loaded->count = (uint32_t)(b->cur - b->base);
}

/* Bonwick: exchange the loaded and the previous magazine */
static void bin_swap(nm_tcache_t *tc, nm_bin_t *b)
{
    nm_mag_t *m = b->prev;
    b->prev = b->loaded;
    bin_load(tc, b, m);
}

/* an empty magazine of class cls: the depot's, or a new one; NULL when metadata is out */
static nm_mag_t *empty_mag(nm_depot_t *d, unsigned cls)
{
    nm_depot_lock(d);
    nm_mag_t *m = nm_depot_take_empty_locked(d);
    nm_unlock(&d->lock);
    if (m == NULL) m = nm_mag_new(cls);
    if (m) m->count = 0;
    return m;
}

/* fill the empty magazine m from d's slabs, d's lock held on entry and released
 * here (a refill that found no full magazine takes one lock hold, not two: with 64
 * threads on 2 CPUs the second hold was a second queue); the blocks it got. A
 * medium magazine takes one block: a medium block is worth the depot lock, and
 * blocks taken ahead would sit untouched in the thread's cache, counted as held. A
 * small one takes the bin's fill (slow start): a bin evicted after a few
 * allocations gave most of a full magazine straight back to the slabs, both ways
 * under the depot lock. */
static unsigned fill_from_slabs_unlock(nm_tcache_t *tc, nm_depot_t *d, nm_mag_t *m)
{
    unsigned cls = nm_depot_cls(d), want = 1;
    if (!nm_class_is_medium(cls)) {
        want = tc->fill[cls] ? tc->fill[cls] : NM_FILL_START;
        if (want > m->cap) want = m->cap;
        tc->fill[cls] = (uint8_t)NM_MIN(2 * want, m->cap);
    }
    unsigned got = nm_slab_alloc_batch_locked(d, m->rounds, want);
    nm_unlock(&d->lock);
    m->count = got;
    tc->ctr.cls[cls][NM_C_slab_fill]++;
    return got;
}

/* ---- the budget --------------------------------------------------------------------------- */

static size_t mag_bytes(unsigned cls) { return (size_t)nm_class_mag_cap[cls] * nm_class_size[cls]; }
static unsigned bin_mags(const nm_bin_t *b) { return (b->loaded != NULL) + (b->prev != NULL); }

static void touch(nm_tcache_t *tc, unsigned cls) { tc->used[cls] = ++tc->clock; }

_Static_assert(NM_NUM_CLASSES <= 64, "a bit of tc->mag_bins per class");

/* give bin cls's magazines back to its depot */
static void bin_evict(nm_tcache_t *tc, unsigned cls)
{
    nm_bin_t *b = &tc->bins[cls];
    unsigned k = bin_mags(b);
    tc->mag_bins &= ~((uint64_t)1 << cls);
    if (k == 0) return;
    bin_reconcile(tc, cls);
    bin_sync(b);
    if (tc->fill[cls] > NM_FILL_START) tc->fill[cls] /= 2;
    nm_depot_t *d = nm_depot(tc->domain, cls);
    nm_depot_return(d, b->loaded);
    nm_depot_return(d, b->prev);
    b->prev = NULL;
    bin_load(tc, b, NULL);
    tc->held -= k * mag_bytes(cls);
}

/* grow the budget (doubling) out of the shared pool; false if it cannot */
static bool budget_grow(nm_tcache_t *tc)
{
    if (tc->budget >= NM_TC_MAX_BYTES) return false;
    uint64_t step = NM_MIN(tc->budget, NM_TC_MAX_BYTES - tc->budget);
    uint64_t used = nm_gstat_get(NM_C_cache_pool_used);
    do {
        if (used + step > NM_TC_POOL_BYTES) return false;
    } while (!nm_cas_acq_rel(&nm_gctr[NM_C_cache_pool_used], &used, used + step));
    tc->budget += step;
    tc->ctr.thr[NM_C_cache_grows]++;
    return true;
}

/* give back to the pool what the budget has above `keep` (at least the minimum) */
static void budget_shrink(nm_tcache_t *tc, uint64_t keep)
{
    if (keep < NM_TC_MIN_BYTES) keep = NM_TC_MIN_BYTES;
    if (tc->budget <= keep) return;
    nm_gstat_sub(NM_C_cache_pool_used, tc->budget - keep);
    tc->budget = keep;
}

/* the bins of the medium classes (one bit per class in tc->mag_bins) */
#define MEDIUM_BINS (~(uint64_t)0 << NM_SMALL_CLASSES)

/* bytes of the magazines the bins in mask hold */
static size_t held_by(const nm_tcache_t *tc, uint64_t mask)
{
    size_t bytes = 0;
    for (uint64_t m = tc->mag_bins & mask; m; m &= m - 1) {
        unsigned c = (unsigned)__builtin_ctzll(m);
        bytes += bin_mags(&tc->bins[c]) * mag_bytes(c);
    }
    return bytes;
}

/* give back the bins in mask used least recently until `over` bytes went back or
 * none is left, and return the bytes that went: one pass over the bins that may
 * hold magazines (a cache line each; with 256 threads on a 512 KiB budget, looking
 * at all 60 was a quarter of the allocator's instructions), then the oldest first */
static size_t evict_lru(nm_tcache_t *tc, uint64_t mask, size_t over)
{
    uint8_t cand[NM_NUM_CLASSES];
    uint32_t age[NM_NUM_CLASSES];
    unsigned k = 0;
    for (uint64_t m = tc->mag_bins & mask; m; m &= m - 1) {
        unsigned c = (unsigned)__builtin_ctzll(m);
        if (bin_mags(&tc->bins[c]) == 0) { tc->mag_bins &= ~((uint64_t)1 << c); continue; }
        cand[k] = (uint8_t)c;
        age[k++] = tc->clock - tc->used[c];
    }
    size_t before = tc->held, goal = before > over ? before - over : 0;
    while (k > 0 && tc->held > goal) {
        unsigned o = 0;
        for (unsigned i = 1; i < k; i++) if (age[i] > age[o]) o = i;
        bin_evict(tc, cand[o]);
        tc->evictions++;
        tc->ctr.thr[NM_C_cache_evictions]++;
        cand[o] = cand[--k];
        age[o] = age[k];
    }
    return before - tc->held;
}

/* may bin cls take one more magazine? Grows the budget, else gives back the bins used
 * least recently; false if neither makes room */
static bool admit(nm_tcache_t *tc, unsigned cls)
{
    size_t need = mag_bytes(cls);
    uint64_t others = ~((uint64_t)1 << cls);
    if (nm_class_is_medium(cls)) {
        /* the medium magazines together hold at most NM_TC_MED_BYTES (config.h), or
         * one alone that is bigger (a single block of 640 KiB to 1 MiB): the least
         * recently used of them make room, not the small bins */
        uint64_t med_bins = MEDIUM_BINS & others;
        size_t med = held_by(tc, med_bins);
        if (med > 0 && med + need > NM_TC_MED_BYTES) {
            med -= evict_lru(tc, med_bins, need >= NM_TC_MED_BYTES ? med : med + need - NM_TC_MED_BYTES);
            if (med > 0 && med + need > NM_TC_MED_BYTES) return false;
        }
    }
    while (tc->held + need > tc->budget && budget_grow(tc)) {}
    /* a magazine worth more than a quarter of the budget does not push others out:
     * one 320 KiB block's magazine evicted every small bin of a thread at its
     * 512 KiB minimum, again and again (many threads, mixed sizes) */
    if (tc->held + need > tc->budget && need > tc->budget / 4) return false;
    if (tc->held + need > tc->budget) {
        /* down to three quarters of the budget, so that the next admissions find
         * room without a pass */
        evict_lru(tc, others, tc->held + need + tc->budget / 4 - tc->budget);
        if (tc->held + need > tc->budget) return false;
    }
    tc->held += need;
    tc->mag_bins |= (uint64_t)1 << cls;
    return true;
}

void nm_tcache_trim(nm_tcache_t *tc)
{
    if (tc->state != NM_T_ACTIVE) return;
    for (unsigned c = 0; c < NM_NUM_CLASSES; c++)                 /* bins idle since the last trim */
        if (bin_mags(&tc->bins[c]) && (int32_t)(tc->used[c] - tc->trimmed_at) <= 0) bin_evict(tc, c);
    if (tc->evictions == 0) budget_shrink(tc, NM_MAX(tc->held, tc->budget / 2));
    tc->evictions = 0;
    tc->trimmed_at = tc->clock;
}

/* A full magazine from the depot that another thread filled: its blocks' lines sit
 * in that thread's cache, and the program will write each block soon after its
 * malloc. Asking for them all now (for writing) overlaps the transfers instead of
 * paying one at every malloc. Not for the thread's own magazines, whose blocks are
 * most likely still in its cache, where the loop is only extra work. Call before
 * bin_load, which makes the magazine name this thread. */
static void prefetch_if_foreign(const nm_tcache_t *tc, const nm_mag_t *m)
{
    if (m->holder == tc->tid) return;
    for (unsigned i = 0; i < m->count; i++) NM_PREFETCH_WRITE(m->rounds[i]);
}

/* small malloc miss: make the loaded magazine non-empty. 1: done; 0: the budget has
 * no room for a magazine (allocate directly); -1: no memory */
static int small_refill(nm_tcache_t *tc, unsigned cls)
{
    nm_bin_t *b = &tc->bins[cls];
    touch(tc, cls);
    bin_sync(b);
    if (b->prev && b->prev->count > 0) { bin_swap(tc, b); return 1; }
    /* a full magazine from the depot, kept with the one we have as previous if the
     * budget allows; without any magazine yet, one is needed first */
    bool keep_prev = b->loaded != NULL && b->prev == NULL && admit(tc, cls);
    if (b->loaded == NULL && !admit(tc, cls)) return 0;
    nm_depot_t *d = nm_depot(tc->domain, cls);
    nm_depot_lock(d);
    nm_mag_t *full = nm_depot_take_full_locked(d, tc->tid);
    if (full) {
        if (b->loaded) {
            if (b->prev) nm_depot_push_empty_locked(d, b->prev);
            else if (!keep_prev) { nm_depot_push_empty_locked(d, b->loaded); b->loaded = NULL; }
            if (b->loaded) b->prev = b->loaded;
        }
        nm_unlock(&d->lock);
        prefetch_if_foreign(tc, full);
        bin_load(tc, b, full);
        tc->ctr.cls[cls][NM_C_depot_get]++;
        return 1;
    }
    if (keep_prev) tc->held -= mag_bytes(cls);                      /* not used after all */
    if (b->loaded == NULL) b->loaded = nm_depot_take_empty_locked(d);
    if (b->loaded == NULL) {                       /* a new magazine: metadata, not under d's lock */
        nm_unlock(&d->lock);
        if ((b->loaded = nm_mag_new(cls)) == NULL) { tc->held -= mag_bytes(cls); return -1; }
        nm_depot_lock(d);
    }
    unsigned got = fill_from_slabs_unlock(tc, d, b->loaded);
    bin_load(tc, b, b->loaded);
    return got > 0 ? 1 : -1;
}

/* small free miss: make room in the loaded magazine (it is full, or there is none).
 * false: no room can be had (budget, metadata); the caller then frees straight to
 * the slabs. */
static bool small_flush(nm_tcache_t *tc, unsigned cls)
{
    nm_bin_t *b = &tc->bins[cls];
    touch(tc, cls);
    bin_sync(b);
    if (b->prev && b->prev->count == 0) { bin_swap(tc, b); return true; }
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
        tc->held -= mag_bytes(cls);
    }
    /* the full loaded one becomes previous (one more magazine: the budget decides),
     * or goes to the depot for an empty one */
    if (b->loaded && !admit(tc, cls)) {
        if (empty) nm_depot_return(d, empty);
        empty = nm_depot_put_full(d, b->loaded);
        tc->ctr.cls[cls][NM_C_depot_put]++;
        bin_load(tc, b, NULL);
        tc->held -= mag_bytes(cls);
        if (!admit(tc, cls)) { if (empty) nm_depot_return(d, empty); return false; }
    } else if (b->loaded == NULL && !admit(tc, cls)) {
        if (empty) nm_depot_return(d, empty);
        return false;
    }
    if (empty == NULL && (empty = empty_mag(d, cls)) == NULL) {
        tc->held -= mag_bytes(cls);
        return false;
    }
    empty->count = 0;
    b->prev = b->loaded;
    bin_load(tc, b, empty);
    return true;
}

/* medium malloc miss. 1: loaded has rounds; 0: the cache cannot take a magazine now
 * (allocate directly); -1: no memory */
static int med_refill(nm_tcache_t *tc, unsigned cls)
{
    nm_bin_t *b = &tc->bins[cls];
    touch(tc, cls);
    if (b->loaded == NULL && !admit(tc, cls)) return 0;
    bin_sync(b);
    nm_depot_t *d = nm_depot(tc->domain, cls);
    nm_depot_lock(d);
    nm_mag_t *full = nm_depot_take_full_locked(d, tc->tid);
    if (full) {
        if (b->loaded) nm_depot_push_empty_locked(d, b->loaded);
        nm_unlock(&d->lock);
        prefetch_if_foreign(tc, full);
        bin_load(tc, b, full);
        tc->ctr.cls[cls][NM_C_depot_get]++;
        return 1;
    }
    nm_mag_t *m = b->loaded ? b->loaded : nm_depot_take_empty_locked(d);
    if (m == NULL) {                               /* a new magazine: metadata, not under d's lock */
        nm_unlock(&d->lock);
        if ((m = nm_mag_new(cls)) == NULL) { tc->held -= mag_bytes(cls); return -1; }
        nm_depot_lock(d);
    }
    unsigned got = fill_from_slabs_unlock(tc, d, m);
    bin_load(tc, b, m);
    return got > 0 ? 1 : -1;
}

/* medium free miss: room in the loaded magazine, or false (free directly) */
static bool med_flush(nm_tcache_t *tc, unsigned cls)
{
    nm_bin_t *b = &tc->bins[cls];
    touch(tc, cls);
    nm_depot_t *d = nm_depot(tc->domain, cls);
    nm_mag_t *empty;
    if (b->loaded == NULL) {
        if (!admit(tc, cls)) return false;
        empty = empty_mag(d, cls);
    } else {
        bin_sync(b);
        empty = nm_depot_put_full(d, b->loaded);
        tc->ctr.cls[cls][NM_C_depot_put]++;
        if (empty == NULL) empty = nm_mag_new(cls);
    }
    if (empty == NULL) {
        bin_load(tc, b, NULL);
        tc->held -= mag_bytes(cls);
        return false;
    }
    empty->count = 0;
    bin_load(tc, b, empty);
    return true;
}

/* ---- node migration --------------------------------------------------------------------- */

void nm_tcache_set_domain(nm_tcache_t *tc, uint32_t nd)
{
    if (nd == tc->domain) return;
    /* everything cached belongs to the old domain: send it home first */
    nm_tcache_flush_all(tc);
    nm_large_settle(tc);                             /* counted under the old domain */
    nm_store_relaxed(&tc->domain, nd);               /* (read by exiting threads) */
    tc->domain_node = nm_domain_node(nd);
    tc->free_tag_hi = (uint64_t)nm_pme_tag_make(nd, NM_KIND_SLAB) << NM_PME_TAG_SHIFT;
}

void nm_tcache_cpu_moved(nm_tcache_t *tc, int cpu)
{
    tc->cpu = cpu;
    int node = nm_topo_cpu_node(cpu);
    if (node != tc->cpu_node) {
        tc->ctr.thr[NM_C_node_moves]++;
        nm_large_settle(tc);                         /* its remote count is the old node's */
        nm_tcache_set_domain(tc, nm_policy_domain_for_thread(tc->tpol, node));
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
        bin_load(tc, b, NULL);
    }
    tc->held = 0;
    tc->mag_bins = 0;
    if (tc->remote) {
        for (uint32_t dom = 0; dom < nm_ndomains; dom++) {
            for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
                nm_mag_t **slot = &tc->remote[dom * NM_NUM_CLASSES + c];
                if (*slot) { nm_depot_return(nm_depot(dom, c), *slot); *slot = NULL; }
            }
        }
    }
    nm_large_tcache_release(tc, UINT64_MAX);
    nm_large_settle_owed(tc);
}

/* ---- allocation ------------------------------------------------------------------------- */

void *nm_small_alloc_direct(uint32_t dom, unsigned cls, size_t n)
{
    nm_depot_t *d = nm_depot(dom, cls);
    void *p = NULL;
    nm_depot_lock(d);
    unsigned got = nm_slab_alloc_batch_locked(d, &p, 1);
    if (got && nm_opt.check) nm_slab_set_req_locked(nm_pme_desc(nm_pagemap_get((uintptr_t)p)), p, n);
    nm_unlock(&d->lock);
    if (got == 0) { errno = ENOMEM; return NULL; }
    if (nm_opt.check) {
        memset(p, 0xa5, n);                          /* uninitialised reads show */
        nm_canary_fill(p, n, nm_class_size[cls]);    /* and writes past n are caught at free */
    }
    return nm_class_is_medium(cls) ? nm_medium_out(p) : p;
}

/* straight from the slabs of the thread's domain (its current node's if it has no
 * active cache), counted */
static void *alloc_direct(nm_tcache_t *tc, unsigned cls, size_t n)
{
    uint32_t dom = tc->state == NM_T_ACTIVE ? tc->domain : nm_policy_domain_for(nm_topo_cpu_node(nm_os_cpu()));
    void *p = nm_small_alloc_direct(dom, cls, n);
    if (p) {
        nm_count(nm_tc_ctr(tc), NM_CT_CLASS, cls, NM_C_alloc_slow, 1);
        count_alloc(tc, dom, 1, nm_class_size[cls]);
    }
    return p;
}

void *nm_small_alloc(nm_tcache_t *tc, unsigned cls, size_t n, bool may_sample)
{
    size_t size = nm_class_size[cls];
    if (NM_UNLIKELY(tc->state != NM_T_ACTIVE || nm_opt.check)) return alloc_direct(tc, cls, n);
    nm_bin_t *b = &tc->bins[cls];
    touch(tc, cls);
    bool sample = bin_reconcile(tc, cls);
    if (nm_prof_on && !sample) {
        /* this allocation is not on the fast path but is part of the class's byte
         * stream all the same: it uses up budget too, or the profiler would never
         * see the first allocation of a class nor any that found the bin empty */
        if (--b->budget <= 0) { sample = true; b->budget = budget_new(tc, cls); }
        b->period = b->budget;
    }
    if (NM_UNLIKELY(sample) && may_sample && !tc->busy) {
        /* the profiler's sample comes from its own pseudo-domain, whose blocks never
         * match a thread's free tag: their free takes the slow path and forgets it */
        void *p = nm_small_alloc_direct(nm_dom_sampled, cls, size);
        if (p) {
            tc->ctr.cls[cls][NM_C_alloc_slow]++;
            count_alloc(tc, nm_dom_sampled, 1, size);
            nm_prof_record(tc, p, size, nm_prof_weight_small(cls));
            return p;
        }
    }
    if (b->cur == b->base) {
        nm_tcache_node_check(tc);                    /* may move the thread to another domain */
        int r = nm_class_is_medium(cls) ? med_refill(tc, cls) : small_refill(tc, cls);
        if (r == 0) return alloc_direct(tc, cls, n);
        if (r < 0) { errno = ENOMEM; return NULL; }
    }
    tc->ctr.cls[cls][NM_C_alloc_slow]++;
    count_alloc(tc, tc->domain, 1, size);
    void *p = bin_pop(b);
    return nm_class_is_medium(cls) ? nm_medium_out(p) : p;
}

/* ---- free --------------------------------------------------------------------------------- */

/* straight into the slabs (a sampled block forgets its sample first), counted */
static void free_direct(nm_tcache_t *tc, void *p, nm_pme_t e)
{
    uint32_t dom = nm_pme_domain(e);
    unsigned cls = nm_pme_class(e);
    if (dom == nm_dom_sampled) nm_prof_forget(p);
    nm_depot_t *d = nm_depot(dom, cls);
    nm_verdict_t v = { .bad = NM_CANARY_OK };
    nm_depot_lock(d);
    if (nm_opt.check) v = nm_slab_free_checked_locked(d, nm_pme_desc(e), p);
    else nm_slab_free_batch_locked(d, &p, 1);
    nm_unlock(&d->lock);
    if (!nm_verdict_ok("free", p, v)) return;
    nm_count(nm_tc_ctr(tc), NM_CT_CLASS, cls, NM_C_free_slow, 1);
    count_free(tc, dom, 1, nm_class_size[cls]);
}

const char *nm_small_check(const void *p, nm_pme_t e)
{
    nm_depot_t *d = nm_depot(nm_pme_domain(e), nm_pme_class(e));
    nm_depot_lock(d);
    const char *why = nm_slab_check_locked(nm_pme_desc(e), p);
    nm_unlock(&d->lock);
    return why;
}

nm_verdict_t nm_small_verdict(const void *p, nm_pme_t e)
{
    nm_depot_t *d = nm_depot(nm_pme_domain(e), nm_pme_class(e));
    nm_depot_lock(d);
    nm_verdict_t v = nm_slab_verdict_locked(nm_pme_desc(e), p);
    nm_unlock(&d->lock);
    return v;
}

static void remote_free(nm_tcache_t *tc, uint32_t dom, unsigned cls, void *p, nm_pme_t e)
{
    if (tc->remote == NULL) {
        tc->remote = nm_meta_alloc((size_t)nm_ndomains * NM_NUM_CLASSES * sizeof(nm_mag_t *));
        if (tc->remote == NULL) { free_direct(tc, p, e); return; }
    }
    nm_mag_t **slot = &tc->remote[dom * NM_NUM_CLASSES + cls];
    nm_mag_t *m = *slot;
    if (m == NULL && (m = *slot = nm_mag_new(cls)) == NULL) { free_direct(tc, p, e); return; }
    m->rounds[m->count++] = p;
    tc->ctr.cls[cls][NM_C_free_slow]++;
    count_free(tc, dom, 1, nm_class_size[cls]);
    nm_count(&tc->ctr, NM_CT_DOMAIN, dom, NM_C_remote_free, 1);
    if (m->count == m->cap) {
        m->holder = tc->tid;                         /* its rounds are this thread's frees */
        *slot = nm_depot_put_full(nm_depot(dom, cls), m);
        if (*slot) (*slot)->count = 0;
    }
}

void nm_medium_free(nm_tcache_t *tc, void *p, nm_pme_t e)
{
    if (NM_UNLIKELY(nm_opt.check)) { free_direct(tc, p, e); return; }   /* validates, then takes it back */
    const char *why = nm_medium_take_back(nm_pme_desc(e), p);
    if (NM_UNLIKELY(why != NULL)) { nm_invalid_pointer("free", p, why); return; }
    nm_small_free(tc, p, e);
}

void nm_small_free(nm_tcache_t *tc, void *p, nm_pme_t e)
{
    uint32_t dom = nm_pme_domain(e);
    if (tc->state != NM_T_ACTIVE || NM_UNLIKELY(nm_opt.check)) { free_direct(tc, p, e); return; }
    unsigned cls = nm_pme_class(e);
    if (dom != tc->domain) {                         /* (a thread's domain is never the sampled one) */
        if (dom == nm_dom_sampled) free_direct(tc, p, e);
        else remote_free(tc, dom, cls, p, e);
        return;
    }
    nm_bin_t *b = &tc->bins[cls];
    if (tc->used[cls] == 0 && !nm_class_is_medium(cls) && small_refill(tc, cls) == 1 && b->cur != b->end) {
        /* The thread's first touch of a small class is a free: the block was made by
         * another thread, whose blocks are likely its neighbours on the cache line.
         * Handed out first (a magazine is LIFO), it would put this thread's writes on
         * that line (passive false sharing). So the magazine is filled as for a
         * malloc miss and the block goes to its bottom, to be handed out last. */
        bin_push(b, *b->base);
        *b->base = p;
        tc->ctr.cls[cls][NM_C_free_slow]++;
        count_free(tc, dom, 1, nm_class_size[cls]);
        return;
    }
    touch(tc, cls);
    if (b->cur == b->end) {
        bin_reconcile(tc, cls);
        if (!(nm_class_is_medium(cls) ? med_flush(tc, cls) : small_flush(tc, cls))) { free_direct(tc, p, e); return; }
    }
    bin_push(b, p);
    tc->ctr.cls[cls][NM_C_free_slow]++;
    count_free(tc, dom, 1, nm_class_size[cls]);
}

/* ---- thread start and exit ---------------------------------------------------------------- */

static NM_TLS uint8_t thread_starting;

static void key_destructor(void *arg) { nm_thread_exit(arg); }

bool nm_tcache_init(void)
{
    return pthread_key_create(&thread_key, key_destructor) == 0;
}

static size_t dom_ctr_bytes(void) { return (size_t)nm_ndomains * NM_DOMAIN_CTR_N * sizeof(uint64_t); }

/* free a cache's own arrays and the cache itself (it is unlinked) */
static void tcache_free(nm_tcache_t *tc)
{
    budget_shrink(tc, 0);
    if (tc->remote) nm_meta_free(tc->remote, (size_t)nm_ndomains * NM_NUM_CLASSES * sizeof(nm_mag_t *));
    if (tc->ctr.dom) nm_meta_free(tc->ctr.dom, dom_ctr_bytes());
    nm_meta_free(tc, sizeof *tc);
}

static void unlink_locked(nm_tcache_t *tc)
{
    if (tc->prev) tc->prev->next = tc->next; else nm_threads = tc->next;
    if (tc->next) tc->next->prev = tc->prev;
    tc->next = tc->prev = NULL;
}

/* retire the cache of a thread that no longer runs: its counters go into the
 * globals, its kept large blocks to their node's cache (atomic slots: a block in a
 * slot is wholly kept, even in a forked child's copy) and, when `give_back`, its
 * magazines to the depots. Threads lock held (-> depots: in order). */
static void retire_locked(nm_tcache_t *tc, bool give_back)
{
    if (give_back) nm_tcache_flush_all(tc);
    else nm_large_tcache_release(tc, UINT64_MAX);
    nm_large_settle(tc);
    bin_reconcile_all(tc);
    nm_counters_merge(&tc->ctr, nm_ndomains);
    unlink_locked(tc);
    tcache_free(tc);
    nm_gstat_sub(NM_C_threads_live, 1);
}

nm_tcache_t *nm_thread_start(void)
{
    if (thread_starting || nm_pstate != NM_P_READY) return NULL;
    thread_starting = 1;
    int saved = errno;
    nm_tcache_t *tc = nm_meta_alloc(sizeof *tc);
    if (tc == NULL) { thread_starting = 0; errno = saved; return NULL; }
    tc->ctr.dom = nm_meta_alloc(dom_ctr_bytes());
    if (tc->ctr.dom == NULL) { nm_meta_free(tc, sizeof *tc); thread_starting = 0; errno = saved; return NULL; }
    tc->tid = (int32_t)syscall(SYS_gettid);
    tc->cpu = nm_os_cpu();
    tc->cpu_node = nm_topo_cpu_node(tc->cpu);
    tc->domain = nm_policy_domain_for(tc->cpu_node);
    tc->domain_node = nm_domain_node(tc->domain);
    tc->rng = (uint64_t)(uintptr_t)tc ^ nm_os_now_ns() ^ 0x9e3779b97f4a7c15ull;
    tc->now_ms = nm_os_now_ms();
    tc->state = NM_T_ACTIVE;
    tc->budget = NM_TC_MIN_BYTES;
    for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
        nm_bin_t *b = &tc->bins[c];
        b->budget = b->period = budget_new(tc, c);
    }
    if (nm_prof_on) nm_prof_tick_bytes(tc, 0);
    tc->free_tag_hi = (uint64_t)nm_pme_tag_make(tc->domain, NM_KIND_SLAB) << NM_PME_TAG_SHIFT;
    nm_lock(&nm_threads_lock);
    /* thread ids are unique among live threads: a cache with ours belongs to a dead one */
    for (nm_tcache_t *t = nm_threads, *next; t; t = next) {
        next = t->next;
        if (t->tid == tc->tid) { retire_locked(t, true); nm_gstat_add(NM_C_threads_reaped, 1); }
    }
    tc->next = nm_threads;
    if (nm_threads) nm_threads->prev = tc;
    nm_threads = tc;
    nm_unlock(&nm_threads_lock);
    nm_gstat_add(NM_C_threads_seen, 1);
    nm_gstat_add(NM_C_threads_live, 1);
    nm_tcp = tc;
    /* may allocate (a key beyond the first 32 takes a block): the cache is active now */
    pthread_setspecific(thread_key, tc);
    thread_starting = 0;
    errno = saved;
    return tc;
}

uint64_t nm_thread_exit_cutoff_locked(uint32_t dom, uint64_t now)
{
    for (const nm_tcache_t *t = nm_threads; t; t = t->next)
        if (nm_load_relaxed(&t->domain) == dom && nm_load_relaxed(&t->busy_ms) + NM_DIRTY_AGE_MS > now)
            return now - NM_DIRTY_AGE_MS;
    return UINT64_MAX;
}

void nm_thread_exit(nm_tcache_t *tc)
{
    if (tc != nm_tcp || tc->state != NM_T_ACTIVE) return;
    tc->busy = 1;
    nm_tcache_flush_all(tc);
    /* merge and unlink under the thread-list lock: a dump (which reads the globals
     * and the live threads under it) sees this thread's counters exactly once */
    nm_lock(&nm_threads_lock);
    nm_large_settle(tc);
    bin_reconcile_all(tc);
    nm_counters_merge(&tc->ctr, nm_ndomains);
    unlink_locked(tc);
    uint32_t dom = tc->domain;
    uint64_t cutoff = nm_thread_exit_cutoff_locked(dom, nm_os_now_ms());
    nm_unlock(&nm_threads_lock);
    nm_tcp = (nm_tcache_t *)&nm_tcache_dead;
    tcache_free(tc);
    nm_gstat_sub(NM_C_threads_live, 1);
    /* what it freed goes back over the bound now, unless other threads were busy in
     * the last NM_DIRTY_AGE_MS (their last decay check): their next slabs may reuse it */
    nm_segment_exit_trim(dom, cutoff);
}

/* Has thread tid of this process stopped running user code for good? Gone (tgkill:
 * ESRCH), or (exact) exiting: pthread_join returns once the kernel cleared the
 * thread's tid, a moment before the thread disappears; the kernel flags a thread
 * PF_EXITING (0x4 in field 9 of /proc/.../stat) before it clears the tid, so a dump
 * right after a join counts it out, as it should. */
static bool thread_gone(int pid, int tid, bool exact)
{
    if (syscall(SYS_tgkill, pid, tid, 0) != 0) return errno == ESRCH;
    if (!exact) return false;
    char path[48] = "/proc/self/task/", buf[512];
    size_t n = 16;
    char digits[12];
    int k = 0;
    for (unsigned v = (unsigned)tid; k == 0 || v; v /= 10) digits[k++] = (char)('0' + v % 10);
    while (k) path[n++] = digits[--k];
    memcpy(path + n, "/stat", 6);
    long len = nm_os_read_file(path, buf, sizeof buf - 1);
    if (len <= 0) return true;                          /* gone between the two calls */
    buf[len] = 0;
    const char *f = NULL;                               /* the last ')': the name may hold one */
    for (const char *c = buf; *c; c++) if (*c == ')') f = c;
    if (f == NULL) return false;
    int field = 2;                                      /* ")" ends field 2; each space starts the next */
    for (f++; *f && field < 9; f++) if (*f == ' ') field++;
    unsigned long flags = 0;
    for (; *f >= '0' && *f <= '9'; f++) flags = flags * 10 + (unsigned long)(*f - '0');
    return field == 9 && (flags & 0x4) != 0;            /* PF_EXITING */
}

void nm_threads_reap_locked(bool exact)
{
    int saved = errno;
    int pid = nm_os_getpid();
    nm_tcache_t *self = nm_tcp;
    for (nm_tcache_t *tc = nm_threads, *next; tc; tc = next) {
        next = tc->next;
        if (tc != self && thread_gone(pid, tc->tid, exact)) {
            retire_locked(tc, true);
            nm_gstat_add(NM_C_threads_reaped, 1);
        }
    }
    errno = saved;
}

/* The other threads' caches are dropped, not given back. Their owners kept running
 * through the fork, and a cache is changed without a lock, so the child's copy may
 * show its owner stopped anywhere: between a depot call and the update of its bin,
 * say (a magazine the depot already owns still in the bin: given back again, it
 * would sit twice in the depot, its blocks handed out twice). Their cached blocks
 * are lost to the child, as glibc's and jemalloc's thread caches are; their kept
 * large blocks are not (see retire_locked). */
void nm_tcache_fork_child(void)
{
    nm_tcache_t *self = nm_tcp;
    if (self->state == NM_T_ACTIVE) self->tid = (int32_t)syscall(SYS_gettid);
    nm_lock(&nm_threads_lock);
    for (nm_tcache_t *tc = nm_threads, *next; tc; tc = next) {
        next = tc->next;
        if (tc != self) retire_locked(tc, false);
    }
    nm_unlock(&nm_threads_lock);
}
