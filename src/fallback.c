/* numamalloc — the fallback arena: mimalloc 2.0.9 (Debian's libmimalloc2.0), for what
 * our own memory cannot serve. The only file that includes mimalloc.h.
 *
 * It serves, and nothing else:
 *   - allocations made while the allocator boots (libnuma's constructor and our own
 *     set-up allocate before we can): mimalloc works before any constructor;
 *   - small and medium requests when no segment can be mapped even after nm_reclaim
 *     released everything idle (counted as own_memory_refused, with errno).
 * Never a hot path. Its blocks are not in the page map: free, realloc and
 * malloc_usable_size find them with mi_is_in_heap_region once the page map said
 * "none" (a look-up in mimalloc's own segment map).
 *
 * What stays of working around mimalloc:
 *   - aligned requests are checked: 2.0.9 misaligns size == alignment for 256, 512
 *     and 1024 (an upstream bug of that version), so that shape is never asked for;
 *   - the fork gate: 2.0.9 has no fork handlers, and a cross-thread free into a full
 *     page sets a mark (MI_DELAYED_FREEING) that only the same call clears; a fork at
 *     that moment leaves it set in the child, where whatever waits for it spins for
 *     ever. Every call into mimalloc passes a gate that fork's prepare handler closes
 *     after the threads inside have left (src/fork.c);
 *   - options: mimalloc read MIMALLOC_* while it loaded. We switch off what would
 *     print or reserve memory, and warn once naming any MIMALLOC_* variable set.
 * Locks: gate_lock, held by a forking thread from prepare to parent/child; no lock of
 * ours is taken inside the gate. */
#include <errno.h>
#include <mimalloc.h>
#include <sched.h>

#include "numamalloc/internal.h"

extern char **environ;

/* ---- fork gate --------------------------------------------------------------------------
 * Threads inside mimalloc are counted in stripes chosen by CPU (no line bounces
 * between threads on different CPUs); a thread keeps its stripe from enter to exit.
 * Dekker-style: the caller increments, then reads closed; the closer sets closed,
 * then reads the counts; both sequentially consistent, so one of them sees the
 * other. A caller that finds the gate closed backs out and waits on gate_lock. */
#define GATE_STRIPES 16
static struct { unsigned n; } NM_ALIGNED(64) gate[GATE_STRIPES];
static int gate_closed;
NM_GLOBAL_LOCK static nm_lock_t gate_lock = NM_LOCK_INIT;

static unsigned gate_enter(void)
{
    unsigned s = (unsigned)nm_os_cpu() % GATE_STRIPES;
    for (;;) {
        __atomic_fetch_add(&gate[s].n, 1, __ATOMIC_SEQ_CST);
        if (NM_LIKELY(!__atomic_load_n(&gate_closed, __ATOMIC_SEQ_CST))) return s;
        __atomic_fetch_sub(&gate[s].n, 1, __ATOMIC_RELEASE);
        nm_lock(&gate_lock);                  /* until the fork is done */
        nm_unlock(&gate_lock);
    }
}

static void gate_exit(unsigned s) { __atomic_fetch_sub(&gate[s].n, 1, __ATOMIC_RELEASE); }

void nm_fallback_fork_close(void)
{
    nm_lock(&gate_lock);
    __atomic_store_n(&gate_closed, 1, __ATOMIC_SEQ_CST);
    for (unsigned s = 0; s < GATE_STRIPES; s++)
        while (__atomic_load_n(&gate[s].n, __ATOMIC_SEQ_CST) != 0) sched_yield();
}

void nm_fallback_fork_open(bool child)
{
    if (child) {
        /* a caller that had just incremented (and would have backed out) is not here */
        for (unsigned s = 0; s < GATE_STRIPES; s++) __atomic_store_n(&gate[s].n, 0, __ATOMIC_RELAXED);
        nm_lock_reinit(&gate_lock);
        __atomic_store_n(&gate_closed, 0, __ATOMIC_SEQ_CST);
        return;
    }
    __atomic_store_n(&gate_closed, 0, __ATOMIC_SEQ_CST);
    nm_unlock(&gate_lock);
}

/* ---- set-up ---------------------------------------------------------------------------- */

void nm_fallback_init(void)
{
    mi_option_set(mi_option_show_errors, 0);
    mi_option_set(mi_option_show_stats, 0);
    mi_option_set(mi_option_verbose, 0);
    mi_option_set(mi_option_large_os_pages, 0);
    mi_option_set(mi_option_reserve_huge_os_pages, 0);
    mi_option_set(mi_option_reserve_os_memory, 0);
    /* what it frees goes back on the same schedule as the rest of the heap */
    mi_option_set(mi_option_decommit_delay, (long)NM_MIN(nm_opt.decay_ms, 1000000u));

    char names[256];
    nm_buf_t b;
    nm_buf_init(&b, names, sizeof names, -1);
    unsigned found = 0;
    for (char **e = environ; e && *e; e++) {
        if (nm_strncmp(*e, "MIMALLOC_", 9) != 0) continue;
        const char *eq = *e;
        while (*eq && *eq != '=') eq++;
        if (found++) nm_buf_puts(&b, ", ");
        nm_buf_put(&b, *e, (size_t)(eq - *e));
    }
    nm_buf_finish(&b);
    if (found)
        nm_warn("%s ignored: numamalloc sets the options of its fallback arena (mimalloc); "
                "MIMALLOC_RESERVE_* may have acted while mimalloc loaded", names);
}

/* ---- blocks ---------------------------------------------------------------------------- */

static void count(nm_tcache_t *tc, size_t usable, bool freed)
{
    nm_counters_t *c = nm_tc_ctr(tc);
    nm_count(c, NM_CT_THREAD, 0, freed ? NM_C_arena_free : NM_C_arena_alloc, 1);
    nm_count(c, NM_CT_THREAD, 0, freed ? NM_C_arena_free_bytes : NM_C_arena_alloc_bytes, usable);
    nm_footprint_add(freed ? -(int64_t)usable : (int64_t)usable);
}

void *nm_fallback_alloc(nm_tcache_t *tc, size_t n, size_t align, bool zero)
{
    void *p;
    unsigned g = gate_enter();
    if (align <= 16) {
        p = zero ? mi_zalloc(n) : mi_malloc(n);
    } else {
        size_t ask = n == align ? n + 1 : n;             /* 2.0.9 misaligns size == align */
        p = zero ? mi_zalloc_aligned(ask, align) : mi_malloc_aligned(ask, align);
        if (p && ((uintptr_t)p & (align - 1)) != 0) { mi_free(p); p = NULL; }
    }
    size_t u = p ? mi_usable_size(p) : 0;
    gate_exit(g);
    if (p == NULL) { errno = ENOMEM; return NULL; }
    count(tc, u, false);
    return p;
}

void nm_fallback_free(nm_tcache_t *tc, void *p)
{
    unsigned g = gate_enter();
    count(tc, mi_usable_size(p), true);
    mi_free(p);
    gate_exit(g);
}

size_t nm_fallback_usable(const void *p)
{
    unsigned g = gate_enter();
    size_t u = mi_usable_size(p);
    gate_exit(g);
    return u;
}

bool nm_fallback_owns(const void *p)
{
    unsigned g = gate_enter();
    bool mine = mi_is_in_heap_region(p);
    gate_exit(g);
    return mine;
}

void nm_fallback_collect(bool force)
{
    unsigned g = gate_enter();
    mi_collect(force);
    gate_exit(g);
}

uint64_t nm_fallback_committed(void)
{
    size_t elapsed, user, sys, rss, peak_rss, commit = 0, peak_commit, faults;
    unsigned g = gate_enter();
    mi_process_info(&elapsed, &user, &sys, &rss, &peak_rss, &commit, &peak_commit, &faults);
    gate_exit(g);
    return commit;
}
