/* numamalloc — returning idle memory.
 *
 * A decay pass gives back what stayed unused for NUMAMALLOC_DECAY_MS: the depots'
 * surplus magazines (Bonwick's working set: the fewest held during an interval were
 * not needed), spare slabs and the pages of free medium blocks, free segment pages
 * (MADV_DONTNEED) and whole segments (munmap), cached large mappings, and the large
 * blocks threads keep after freeing them (from every thread, idle ones included);
 * it also retires the caches of threads that died without running their exit. A
 * pass runs
 *   - from the slow paths of every thread (nm_decay_tick: a counter, and a clock read
 *     every 32 slow events; whichever thread finds a pass due runs it), so memory
 *     goes back whatever the program does: small, medium or large, malloc or free;
 *   - from the background thread (NUMAMALLOC_BACKGROUND=1), so that a process that
 *     makes no allocator calls at all gives memory back too; started lazily by the
 *     first tick, again in a forked child;
 *   - at once and for everything idle from malloc_trim, and before a NULL reaches the
 *     program (nm_reclaim).
 * What no pass can take: blocks in other threads' magazines, which their owners
 * change without locks; each thread gives its own back at exit, on malloc_trim, when
 * it migrates and, for bins it stopped using, at its own ticks; it holds at most its
 * budget (src/tcache.c).
 * Locks: nm_decay_lock (tried by periodic passes, taken by forced ones) ->
 * nm_threads_lock -> depot, segment and large-cache locks. */
#include <errno.h>
#include <time.h>

#include "numamalloc/internal.h"

NM_GLOBAL_LOCK nm_lock_t nm_decay_lock = NM_LOCK_INIT;
static uint64_t next_decay_ms;

/* memory given back so far, by every route */
static uint64_t released_so_far(void)
{
    return nm_gstat_get(NM_C_segments_unmapped) + nm_gstat_get(NM_C_large_cache_evict) +
           nm_gstat_get(NM_C_slab_pages_purged) + nm_gstat_get(NM_C_medium_bytes_purged) +
           nm_gstat_get(NM_C_meta_bytes);
}

/* a pass at time now (ms), if one is due or forced */
static void decay_at(uint64_t now, bool force)
{
    if (!force && now < nm_load_relaxed(&next_decay_ms)) return;
    if (force) nm_lock(&nm_decay_lock);
    else if (!nm_trylock(&nm_decay_lock)) return;
    uint64_t interval = nm_opt.decay_ms ? nm_opt.decay_ms : 1;
    nm_store_relaxed(&next_decay_ms, now + interval);
    uint64_t cutoff = force ? UINT64_MAX : (now > nm_opt.decay_ms ? now - nm_opt.decay_ms : 0);

    /* threads: dead ones retired, kept large blocks that aged out (all when forced) */
    nm_lock(&nm_threads_lock);
    nm_threads_reap_locked(false);
    bool marked = false;
    for (nm_tcache_t *tc = nm_threads; tc; tc = tc->next) if (tc != nm_tcp) marked |= nm_large_kept_mark(tc);
    bool fenced = marked && nm_large_kept_fence();
    for (nm_tcache_t *tc = nm_threads; tc; tc = tc->next) {
        if (tc == nm_tcp) nm_large_tcache_release(tc, cutoff);
        else nm_large_kept_release(tc, cutoff, fenced);
    }
    nm_unlock(&nm_threads_lock);

    for (uint32_t dom = 0; dom < nm_ndomains; dom++) {
        nm_domain_t *dm = &nm_domains[dom];
        /* (an extra domain never set up has pages never touched: not even a look) */
        if (!nm_domain_used(dom) ||
            (nm_load_relaxed(&dm->nsegments) == 0 && nm_load_relaxed(&dm->cache_bytes) == 0)) continue;
        for (unsigned c = 0; c < NM_NUM_CLASSES; c++) nm_depot_decay(nm_depot(dom, c), cutoff, force);
        nm_segment_purge(dom, cutoff);
        nm_large_decay(dom, cutoff);
    }
    nm_gstat_add(NM_C_decay_runs, 1);
    nm_unlock(&nm_decay_lock);
}

void nm_decay(bool force) { decay_at(nm_os_now_ms(), force); }

bool nm_reclaim(nm_tcache_t *tc)
{
    uint64_t before = released_so_far();
    if (tc && tc->state == NM_T_ACTIVE) nm_tcache_flush_all(tc);
    nm_decay(true);
    nm_fallback_collect(true);
    return released_so_far() != before;
}

/* ---- the background thread ---------------------------------------------------------------
 * One thread, started on the first tick that finds NUMAMALLOC_BACKGROUND=1 (never at
 * load: a process that never frees never gets it), with every signal blocked (they
 * belong to the program's threads). It runs a pass when one is due, waking twice per
 * decay interval (at least every 20 ms, at most every second). A forked child has
 * none: the flag is reset there, and its first tick starts its own. */
enum { BG_NONE, BG_RUNNING, BG_FAILED };
static int bg_state;

static void *background_main(void *arg)
{
    (void)arg;
    uint64_t ms = nm_opt.decay_ms / 2;
    if (ms < 20) ms = 20;
    if (ms > 1000) ms = 1000;
    for (;;) {
        struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
        nm_gstat_add(NM_C_background_runs, 1);
        nm_decay(false);
    }
    return NULL;
}

static void background_start(void)
{
    int expect = BG_NONE;
    if (!nm_cas_acq_rel(&bg_state, &expect, BG_RUNNING)) return;
    int rc = nm_os_thread_start(background_main, "numamalloc-bg");
    if (rc != 0) {
        nm_store_relaxed(&bg_state, BG_FAILED);
        nm_warn("NUMAMALLOC_BACKGROUND=1: cannot start the background thread (error %d): idle memory is "
                "returned only when the program calls the allocator", rc);
    }
}

void nm_decay_tick_slow(nm_tcache_t *tc)
{
    int saved = errno;                               /* the short free routes do not save it */
    tc->slow_ticks = 0;
    nm_large_settle_owed(tc);
    if (NM_UNLIKELY(nm_opt.background) && nm_load_relaxed(&bg_state) == BG_NONE) background_start();
    uint64_t now = nm_os_now_ms();
    tc->now_ms = now;
    nm_store_relaxed(&tc->busy_ms, now);
    if (now >= tc->trim_due_ms) {                    /* the thread's own bins, once per interval */
        tc->trim_due_ms = now + (nm_opt.decay_ms ? nm_opt.decay_ms : 1);
        nm_tcache_trim(tc);
        nm_large_settle(tc);                         /* bounds the uncounted round trips */
    }
    decay_at(now, false);                            /* the clock read once a tick */
    errno = saved;
}

void nm_decay_fork_child(void)
{
    if (nm_load_relaxed(&bg_state) == BG_RUNNING) nm_store_relaxed(&bg_state, BG_NONE);
}
