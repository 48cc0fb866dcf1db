/* numamalloc — cross-file prototypes, grouped under the file that owns them, from
 * the ground floor of the library up (the tower: a file calls only files listed
 * above its own section here; `make check` verifies it on the objects). Include
 * this, nothing else. */
#ifndef NM_INTERNAL_H
#define NM_INTERNAL_H

#include <string.h>

#include "numamalloc/base.h"
#include "numamalloc/stats.h"
#include "numamalloc/types.h"
#include "numamalloc/pagemap.h"
#include "numamalloc/sizeclass.h"
#include "numamalloc/options.h"
#include "numamalloc/out.h"
#include "numamalloc/os.h"
#include "numamalloc/topology.h"
#include "numamalloc/policy.h"

/* ---- counters.c: stats.h; out.c, emit.c: out.h; os.c: os.h; options.c: options.h ---- */

/* ---- dest.c: where dumps and profiles go -------------------------------------------- */
/* expand %p, %t and %% of pattern into path (false, with one line naming var and what
 * happens instead, if it does not fit); open path to append, O_NOFOLLOW | O_NONBLOCK,
 * regular files only, created with mode 0600 (-1, with one such line, when refused).
 * A refusal is said once per *warned flag (the caller's, one per variable). */
#define NM_DEST_MAX 1024
bool nm_dest_expand(const char *var, const char *pattern, char *path, size_t cap, const char *instead, int *warned);
int  nm_dest_open(const char *var, const char *path, const char *instead, int *warned);

/* ---- check.c: misuse reports, NUMAMALLOC_CHECK=1 canaries and verdicts -------------- */
/* report misuse of pointer p by function fn; aborts under NUMAMALLOC_CHECK=1 */
void   nm_invalid_pointer(const char *fn, const void *p, const char *why);
/* bytes [req, min(usable, req + NM_CANARY_MAX)) of a block hold a pattern that
 * depends on the offset; check returns the offset of the first byte that differs, or
 * NM_CANARY_OK */
#define NM_CANARY_MAX 4096
void   nm_canary_fill(void *p, size_t req, size_t usable);
size_t nm_canary_check(const void *p, size_t req, size_t usable);
/* act on a verdict about p in function fn: an invalid pointer is reported
 * (nm_invalid_pointer), an overwritten canary aborts with its own message; returns
 * true if p is good */
bool   nm_verdict_ok(const char *fn, const void *p, nm_verdict_t v);

/* ---- meta.c: metadata memory ----------------------------------------------------------- */
extern nm_lock_t nm_meta_lock;
void *nm_meta_alloc(size_t size);          /* zeroed, 64-byte aligned */
void  nm_meta_free(void *p, size_t size);

/* ---- pagemap.c ------------------------------------------------------------------------- */
extern nm_lock_t nm_pm_lock;
bool nm_pagemap_set_range(uintptr_t start, size_t len, nm_pme_t e);
bool nm_pagemap_set(uintptr_t a, nm_pme_t e);
void nm_pagemap_clear_range(uintptr_t start, size_t len);
/* map the live-map leaf covering address a (medium slabs); false: no memory */
bool nm_pagemap_live_ready(uintptr_t a);

/* ---- topology.c: topology.h; policy.c: policy.h ----------------------------------------- */

/* ---- segment.c ------------------------------------------------------------------------- */
/* segments a reservation maps at most: NM_SEG_RESERVE_MAX, or 1 where the kernel
 * never overcommits or the address space is limited (set by nm_segment_init at
 * boot) */
extern uint32_t nm_seg_reserve_max;
void nm_segment_init(void);
/* a slab of npages pages in domain d (seg_lock taken inside); untouched pages it
 * needs come from lane's segments first (0 .. NM_SEG_LANES-1: slab.c passes the
 * CPU's); NULL when out of memory */
nm_slab_t *nm_segment_alloc_slab(uint32_t d, unsigned npages, unsigned lane);
/* give slab s's pages back to its segment; the last `untouched` of them were never
 * written (they stay clean: nothing to purge) */
void nm_segment_free_slab(uint32_t d, nm_slab_t *s, unsigned untouched);
/* purge free pages idle since before cutoff_ms (all if cutoff_ms == UINT64_MAX) and
 * unmap segments idle that long; returns bytes returned to the OS */
size_t nm_segment_purge(uint32_t d, uint64_t cutoff_ms);
/* would d's free dirty pages and spare slabs, plus extra bytes, be over NM_DIRTY_MIN
 * and an eighth of the heap? (the bound on memory kept free for reuse) */
bool   nm_segment_over_bound(uint32_t d, size_t extra);
/* a thread of domain d exited: if d's free pages and spare slabs are more than
 * NM_DIRTY_MIN and an eighth of the heap, purge the free pages freed at or before
 * cutoff_ms (UINT64_MAX: however new) now (the segments stay mapped until decay).
 * No locks held. */
void   nm_segment_exit_trim(uint32_t d, uint64_t cutoff_ms);
NM_INLINE nm_segment_t *nm_slab_segment(nm_slab_t *s)
{
    return (nm_segment_t *)(void *)(s - s->page);
}

/* ---- fallback.c: mimalloc, for what our own memory cannot serve ------------------------ */
void   nm_fallback_init(void);
/* a block from mimalloc, counted in tc's counters (NULL: the global ones) */
void  *nm_fallback_alloc(nm_tcache_t *tc, size_t n, size_t align, bool zero);
void   nm_fallback_free(nm_tcache_t *tc, void *p);
size_t nm_fallback_usable(const void *p);
bool   nm_fallback_owns(const void *p);
void   nm_fallback_collect(bool force);
uint64_t nm_fallback_committed(void);      /* bytes mimalloc has committed */
/* fork (src/fork.c): close waits until no thread is inside mimalloc and keeps new
 * callers out; open lets them in again (child: forgets callers that are not there) */
void   nm_fallback_fork_close(void);
void   nm_fallback_fork_open(bool child);

/* ---- profile.c: the sampling heap profiler --------------------------------------------- */
extern bool nm_prof_on;
extern nm_lock_t nm_prof_lock;
void    nm_prof_init(void);
void    nm_prof_prime(void);
int64_t nm_prof_next_blocks(nm_tcache_t *tc, unsigned cls);   /* budget for a bin */
/* large: subtract n from the byte countdown; true if this one is sampled */
bool    nm_prof_tick_bytes(nm_tcache_t *tc, size_t n);
void    nm_prof_record(nm_tcache_t *tc, void *p, size_t n, size_t weight);
bool    nm_prof_forget(void *p);           /* on free of a possibly sampled block */
size_t  nm_prof_weight_small(unsigned cls);
size_t  nm_prof_weight_bytes(size_t n);
/* the numbers of the top sites, copied under the profiler lock; their frames named
 * (symbolize) afterwards with no lock of ours held, or left as addresses (signal handlers) */
#define NM_PROF_TOP 10
/* the top lists: by live bytes, allocated bytes, remote frees, huge-page fallbacks */
enum { NM_PROF_BY_LIVE, NM_PROF_BY_ALLOC, NM_PROF_BY_REMOTE, NM_PROF_BY_HUGE_FB, NM_PROF_LISTS };
typedef struct nm_prof_top {
    uint32_t site;
    uint64_t live_bytes, live_blocks, alloc_bytes, alloc_blocks, samples;
    uint64_t remote_frees, remote_free_bytes, huge_fallbacks;
} nm_prof_top_t;
typedef struct nm_prof_snap {
    bool     on, busy;           /* profiling on; lock busy (signal handler): nothing copied */
    uint64_t samples, dropped, leak_bytes, leak_blocks, leak_sites;
    uint64_t remote_frees, remote_free_bytes, huge_fallbacks;     /* estimates, every site */
    int      n[NM_PROF_LISTS];   /* sites in each top list */
    nm_prof_top_t top[NM_PROF_LISTS][NM_PROF_TOP];
    void    *names;              /* frame names (metadata memory), or NULL */
} nm_prof_snap_t;
void    nm_prof_snapshot(nm_prof_snap_t *ps, bool symbolize);
void    nm_prof_snap_release(nm_prof_snap_t *ps);
void    nm_prof_report(nm_buf_t *b, int mode, const nm_prof_snap_t *ps);
void    nm_prof_dump_exit(void);
/* every site, for the profile files (src/pprof.c): the numbers copied under the
 * profiler lock (only tried from a signal handler: -1 when busy); pc points at the
 * site's frames, innermost first, which never change once recorded */
#define NM_PROF_SITES 4096
typedef struct nm_prof_site_copy {
    uint64_t live_samples, live_raw;     /* sampled blocks still live, their sizes summed */
    uint64_t alloc_samples, alloc_raw;   /* all sampled blocks, their sizes summed */
    void *const *pc;
    uint32_t depth;
} nm_prof_site_copy_t;
int     nm_prof_copy_sites(nm_prof_site_copy_t *out, bool from_signal);
/* a site's bytes as pprof computes them from the file: raw_bytes / (1 - exp(-(raw_bytes
 * / samples) / NUMAMALLOC_PROF_SAMPLE)), rounded */
uint64_t nm_prof_unsampled(uint64_t raw_bytes, uint64_t samples);
/* the function of return address ret (symbol, else object+0xoffset, else the
 * address) into out; calls the loader: never under our locks, never from a signal
 * handler. The cache keeps ELF files mapped between calls; release it after. */
#define NM_PROF_ELF_CACHE 4
typedef struct nm_prof_elf_cache {
    const unsigned char *map[NM_PROF_ELF_CACHE];
    size_t size[NM_PROF_ELF_CACHE];
    char   path[NM_PROF_ELF_CACHE][256];
    int    next;
} nm_prof_elf_cache_t;
void    nm_prof_frame_label(void *ret, char *out, size_t cap, nm_prof_elf_cache_t *cache);
void    nm_prof_elf_cache_release(nm_prof_elf_cache_t *cache);

/* ---- pprof.c: the profile files (NUMAMALLOC_PROF_FILE) --------------------------------- */
/* write NUMAMALLOC_PROF_FILE and its .collapsed companions; why is "exit", "signal"
 * or "interval" */
void    nm_prof_write_files(const char *why, bool from_signal);

/* ---- large.c: own mappings ------------------------------------------------------------- */
/* own mapping for n bytes in domain dom aligned to align; NULL (ENOMEM) when it cannot
 * be mapped: the caller may reclaim and try again */
void  *nm_large_alloc(nm_tcache_t *tc, uint32_t dom, size_t n, size_t align, bool zero);
/* NULL if p is a live large block of L, else why not (interior, already freed) */
const char *nm_large_check(const nm_large_t *L, const void *p);
void   nm_large_free(nm_tcache_t *tc, nm_large_t *L, void *p);
/* the short routes of a thread's kept blocks (malloc without alignment, zeroing or
 * sampling; free of a valid, unsampled block), for an active tc outside check mode:
 * NULL / false sends the caller down the whole path. Both keep errno. */
void  *nm_large_take_kept(nm_tcache_t *tc, size_t n);
bool   nm_large_free_kept(nm_tcache_t *tc, nm_large_t *L, void *p);
/* resize in place or by mremap; NULL if neither works (the caller moves the block) */
void  *nm_large_resize(nm_tcache_t *tc, nm_large_t *L, void *p, size_t n);
/* NUMAMALLOC_CHECK=1: the bytes requested and the canary after them */
nm_verdict_t nm_large_verdict(const nm_large_t *L);
size_t nm_large_usable(const nm_large_t *L);
/* release cached mappings of domain dom freed at or before cutoff_ms (UINT64_MAX: all) */
void   nm_large_decay(uint32_t dom, uint64_t cutoff_ms);
/* blocks tc keeps, freed at or before cutoff_ms (UINT64_MAX: all), go to their node's
 * cache; from any thread (a slot is emptied by exchange; the caller keeps tc alive);
 * returns the bytes released */
size_t nm_large_tcache_release(nm_tcache_t *tc, uint64_t cutoff_ms);
/* kept blocks of a live thread other than the caller (large.c: the owner may be using
 * its slots with plain accesses): mark every such thread (true: marked, it keeps
 * something), run the fence once if any was marked, then release each (fenced: the
 * fence ran and succeeded; a thread inside its section keeps its blocks this time).
 * Threads lock held. */
bool   nm_large_kept_mark(nm_tcache_t *tc);
bool   nm_large_kept_fence(void);
size_t nm_large_kept_release(nm_tcache_t *tc, uint64_t cutoff_ms, bool fenced);
/* in a forked child (self: the forking thread's cache, or NULL): membarrier
 * registered again, or the owners' plain slot accesses are turned off */
void   nm_large_fork_child(nm_tcache_t *self);
/* give back tc->lc_owed (every decay tick, every flush); nm_large_settle also counts
 * the slots' round trips (tc->lc_pend: once per decay interval, not per tick, where
 * it cost 6 % of a 2 MiB pair loop); by the owner, or for a thread that no longer
 * runs */
void   nm_large_settle_owed(nm_tcache_t *tc);
void   nm_large_settle(nm_tcache_t *tc);
/* add tc's uncounted slot round trips to c (a dump reading a live thread: racy) */
void   nm_large_pending_add(const nm_tcache_t *tc, nm_counters_t *c);
void   nm_large_init(void);
extern uint64_t nm_large_backing_total[NM_BACK_COUNT];   /* mappings ever made per backing */
extern int nm_thp_mode;                                  /* 0 never, 1 madvise, 2 always */

/* ---- slab.c (depot lock held) ---------------------------------------------------------- */
/* block index at byte offset off of a slab whose class has reciprocal recip */
NM_INLINE size_t nm_block_at(uint64_t off, uint64_t recip) { return (size_t)((off * recip) >> 32); }
/* index of the block of slab s that starts at p (no division); for a p inside a
 * block it may read one high in the block's last bytes (from 20 KiB classes up):
 * callers pass block starts, or only ask whether p is one */
NM_INLINE size_t nm_slab_index(const nm_slab_t *s, const void *p)
{
    return nm_block_at((uint64_t)((const char *)p - s->start), nm_class_recip[s->cls]);
}
/* medium blocks: p goes to the program; the live map says so */
/* zero a block for calloc: from NM_ZERO_PROBE_MIN up, only the pages that may hold
 * data (a reused block whose last user touched few pages stays sparse) */
NM_INLINE void nm_zero_block(void *p, size_t n)
{
    if (n >= NM_ZERO_PROBE_MIN) nm_os_zero_resident(p, n);
    else memset(p, 0, n);
}

NM_INLINE void *nm_medium_out(void *p)
{
    nm_live_set(p);
    return p;
}
/* medium blocks: NULL if p is the start of a block the program holds, which it gives
 * back now (its bit cleared), else why not; nothing changes then */
const char *nm_medium_take_back(const nm_slab_t *s, const void *p);
/* medium blocks: NULL if p is the start of a block the program holds, else why not */
const char *nm_medium_check(const nm_slab_t *s, const void *p);
unsigned nm_slab_alloc_batch_locked(nm_depot_t *d, void **out, unsigned n);
void nm_slab_free_batch_locked(nm_depot_t *d, void **blocks, unsigned n);
/* NUMAMALLOC_CHECK=1: validate p against its slab (pointer and canary) and free it
 * if both are good; nothing changes otherwise */
nm_verdict_t nm_slab_free_checked_locked(nm_depot_t *d, nm_slab_t *s, void *p);
/* NULL if p is the start of a block of slab s (and, under NUMAMALLOC_CHECK=1, an
 * allocated one), else why not */
const char *nm_slab_check_locked(const nm_slab_t *s, const void *p);
/* NUMAMALLOC_CHECK=1: the pointer check plus the bytes requested and the canary */
nm_verdict_t nm_slab_verdict_locked(const nm_slab_t *s, const void *p);
/* NUMAMALLOC_CHECK=1: remember that block p was allocated for n bytes */
void nm_slab_set_req_locked(nm_slab_t *s, const void *p, size_t n);
/* decay: release the spare slab if idle since before cutoff; medium classes: return
 * the pages of free blocks that stayed free for a whole pass */
void nm_slab_decay_locked(nm_depot_t *d, uint64_t cutoff_ms, bool all);

/* ---- depot.c ----------------------------------------------------------------------------- */
NM_INLINE nm_depot_t *nm_depot(uint32_t dom, unsigned cls) { return &nm_depots[(size_t)dom * NM_NUM_CLASSES + cls]; }
/* a depot's domain and class, from where it sits (not stored: writing them into every
 * depot of every domain at start-up touched 48 KiB a process never used) */
NM_INLINE uint32_t nm_depot_domain(const nm_depot_t *d) { return (uint32_t)((size_t)(d - nm_depots) / NM_NUM_CLASSES); }
NM_INLINE unsigned nm_depot_cls(const nm_depot_t *d) { return (unsigned)((size_t)(d - nm_depots) % NM_NUM_CLASSES); }
/* a depot's lock (marks its domain's locks used: src/policy.h) */
NM_INLINE void nm_depot_lock(nm_depot_t *d) { nm_domain_lock(nm_depot_domain(d), &d->lock); }
nm_mag_t *nm_mag_new(unsigned cls);
void nm_mag_delete(nm_mag_t *m);
nm_mag_t *nm_depot_take_full_locked(nm_depot_t *d, int32_t tid);
nm_mag_t *nm_depot_take_empty_locked(nm_depot_t *d);
void nm_depot_push_empty_locked(nm_depot_t *d, nm_mag_t *m);
/* hand a full magazine to d; returns an empty one (from d, or `full` itself emptied
 * into the slabs when d holds enough), or NULL */
nm_mag_t *nm_depot_put_full(nm_depot_t *d, nm_mag_t *full);
/* return magazine m (any fill) to d: full -> full list, else rounds back to slabs */
void nm_depot_return(nm_depot_t *d, nm_mag_t *m);
/* decay: release what stayed unused for a whole interval */
void nm_depot_decay(nm_depot_t *d, uint64_t cutoff_ms, bool all);

/* ---- tcache.c: thread caches and the lifecycle of threads and the process -------------- */
/* the calling thread's cache: one initial-exec TLS pointer. It starts at
 * nm_tcache_empty and ends at nm_tcache_dead, read-only caches whose empty bins send
 * every fast path to the slow path, which never writes to them. */
extern NM_TLS nm_tcache_t *nm_tcp;
extern const nm_tcache_t nm_tcache_empty;
extern const nm_tcache_t nm_tcache_dead;
enum nm_pstate { NM_P_UNINIT = 0, NM_P_BOOTING = 1, NM_P_READY = 2 };
extern int nm_pstate;                      /* written by src/init.c */
extern nm_lock_t nm_init_lock;
extern uint64_t nm_start_ms;               /* when the process booted */
extern nm_lock_t nm_threads_lock;
extern nm_tcache_t *nm_threads;            /* live thread caches */
/* the pthread key whose destructor runs a thread's exit (at boot) */
bool nm_tcache_init(void);
/* start the calling thread's cache (the process must be READY); NULL if it cannot */
NM_COLD nm_tcache_t *nm_thread_start(void);
/* the calling thread's cache: active (started now if need be), or the read-only dead
 * cache of a thread past its exit; the process must be READY */
NM_INLINE nm_tcache_t *nm_thread_cache(void)
{
    nm_tcache_t *tc = nm_tcp;
    if (NM_LIKELY(tc->state != NM_T_NEW)) return tc;
    nm_tcache_t *t = nm_thread_start();
    return t ? t : (nm_tcache_t *)&nm_tcache_empty;
}
/* the counters a thread adds to with plain adds; NULL (the global copy, atomically)
 * for a cache that is not active */
NM_INLINE nm_counters_t *nm_tc_ctr(nm_tcache_t *tc)
{
    return NM_LIKELY(tc && tc->state == NM_T_ACTIVE) ? &tc->ctr : NULL;
}
/* rounds a bin's cur moved past its mark (nm_bin_t): fast-path frees minus fast-path
 * allocations since the last reconciliation */
NM_INLINE int64_t nm_bin_moved(void **cur, intptr_t mark)
{
    return ((intptr_t)cur - mark) / (intptr_t)sizeof(void *);
}
/* a thread's exit, run by the pthread key destructor (also used by tests) */
void nm_thread_exit(nm_tcache_t *tc);
/* what an exiting thread of domain dom purges (nm_segment_exit_trim's cutoff): pages
 * free NM_DIRTY_AGE_MS if a listed thread of dom made a decay check that recently
 * (busy: its next slabs may reuse them), else all (UINT64_MAX). Threads lock held. */
uint64_t nm_thread_exit_cutoff_locked(uint32_t dom, uint64_t now);
/* retire caches whose threads are gone without running nm_thread_exit; exact: also
 * threads already exiting (reads /proc; dumps) (threads lock held) */
void nm_threads_reap_locked(bool exact);
/* fork child: only the calling thread exists; drop the other caches */
void nm_tcache_fork_child(void);
/* a small or medium block of class cls for a request of n bytes (slow path:
 * reconcile, refill, sample; NUMAMALLOC_CHECK=1: canary after n); NULL when the
 * slabs have no memory: the caller may reclaim and try again */
void *nm_small_alloc(nm_tcache_t *tc, unsigned cls, size_t n, bool may_sample);
/* block of class cls for n bytes straight from domain dom's slabs (no thread cache) */
void *nm_small_alloc_direct(uint32_t dom, unsigned cls, size_t n);
/* free of a slab block that missed the fast path (other domain, bin full, sampled,
 * medium: validated by nm_medium_free first) */
void  nm_small_free(nm_tcache_t *tc, void *p, nm_pme_t e);
/* free of a medium block: refused (counted, reported) unless the program holds it */
void  nm_medium_free(nm_tcache_t *tc, void *p, nm_pme_t e);
/* NULL if p is a valid slab block (start, allocated under CHECK), else why not */
const char *nm_small_check(const void *p, nm_pme_t e);
/* NUMAMALLOC_CHECK=1: nm_small_check plus the bytes requested and the canary */
nm_verdict_t nm_small_verdict(const void *p, nm_pme_t e);
/* give every cached block of tc back: magazines to depots, kept large blocks to their
 * node's cache */
void  nm_tcache_flush_all(nm_tcache_t *tc);
/* tc allocates from domain nd from now on (its cached blocks go home first) */
void  nm_tcache_set_domain(nm_tcache_t *tc, uint32_t nd);
/* a thread found on another node allocates there from now on: one load and a compare
 * while it stays on its CPU, which every large allocation pays */
void  nm_tcache_cpu_moved(nm_tcache_t *tc, int cpu);
NM_INLINE void nm_tcache_node_check(nm_tcache_t *tc)
{
    int cpu = nm_os_cpu_now();
    if (NM_UNLIKELY(cpu != tc->cpu)) nm_tcache_cpu_moved(tc, cpu);
}
/* the thread's decay tick: bins unused since the last one go back, and half of a
 * budget it did not need */
void  nm_tcache_trim(nm_tcache_t *tc);

/* ---- decay.c: returning idle memory ------------------------------------------------------ */
extern nm_lock_t nm_decay_lock;
/* run a decay pass now if one is due (force: now, releasing everything idle) */
void  nm_decay(bool force);
/* every slow path of an active thread: a decay pass at most once per decay interval */
void  nm_decay_tick_slow(nm_tcache_t *tc);
NM_INLINE void nm_decay_tick(nm_tcache_t *tc)
{
    if (NM_UNLIKELY(++tc->slow_ticks >= 32)) nm_decay_tick_slow(tc);
}
/* give back everything idle, as malloc_trim does: the calling thread's caches, every
 * thread's kept large blocks, depots, free pages and segments, the mapping caches,
 * mimalloc's free pages; true if anything was released. No locks may be held. */
bool  nm_reclaim(nm_tcache_t *tc);
/* fork child: helper threads (background) are not there; they restart lazily */
void  nm_decay_fork_child(void);

/* ---- residency.c: where our memory really is (move_pages query mode) ------------------ */
enum { NM_RES_SLAB, NM_RES_LARGE_LIVE, NM_RES_LARGE_CACHED, NM_RES_KINDS };
#define NM_RES_SAMPLE_PAGES 16384    /* pages queried per range kind, at most */
/* bytes of one range kind on one node, scaled up from the samples */
typedef struct nm_res_cell {
    uint64_t resident;       /* ours, resident on this node */
    uint64_t placed;         /* ... and meant for it */
    uint64_t foreign;        /* ... but meant for another node */
    uint64_t interleaved;    /* ... from interleaved domains */
    uint64_t sampled;        /* ... from the profiler's domain (first touch) */
    uint64_t misplaced;      /* meant for this node, resident on another */
    uint64_t spilled;        /* of which from a domain allowed to spill (MPOL_PREFERRED) */
} nm_res_cell_t;
typedef struct nm_res_kind {
    uint64_t ranges, candidate_bytes, stride_bytes, sampled_pages, resident, misplaced;
    bool     partial;        /* a domain was busy (signal handler): skipped */
} nm_res_kind_t;
typedef struct nm_residency {
    bool        measured;
    const char *why;         /* not measured: why */
    int         err;
    bool        partial;
    uint64_t    elapsed_ns;
    uint64_t    resident, misplaced, spilled, bound;   /* bound: resident bytes of node domains */
    nm_res_kind_t kind[NM_RES_KINDS];
} nm_residency_t;
bool nm_residency_init(void);
/* measure into r and the cell table (nm_res_cell); the dump lock serialises callers */
void nm_residency_measure(nm_residency_t *r, bool from_signal);
nm_res_cell_t *nm_res_cell(int kind, int node);
const char *nm_residency_kind_name(int kind);

/* ---- stats.c: the dump ---------------------------------------------------------------- */
extern nm_lock_t nm_stats_dump_lock;
bool nm_stats_init(void);
void nm_stats_start_triggers(void);
/* fork child: the interval thread is not there; it restarts lazily */
void nm_stats_fork_child(void);
/* write a dump (mode text or json) to fd, without allocating */
void nm_stats_dump_fd(int fd, int mode, const char *why);
/* dump to the configured destination (NUMAMALLOC_STATS_FILE or stderr) */
void nm_stats_dump(const char *why);
size_t nm_stats_print(char *buf, size_t len, int mode);
/* the allocator's own numbers, for mallinfo and malloc_info */
typedef struct nm_heap_numbers {
    uint64_t live;             /* heap: in use, or cached for reuse (magazines, large caches) */
    uint64_t held_free;        /* held but free: free space inside slabs, unpurged free pages */
    uint64_t releasable;       /* what malloc_trim would return now */
    uint64_t cached_large;     /* large mappings cached (nodes, threads): in `live` */
    uint64_t large_live_count, large_live_bytes, footprint_peak;
} nm_heap_numbers_t;
void nm_stats_heap_numbers(nm_heap_numbers_t *h);
void nm_verbose_print(void);

/* ---- fork.c ---------------------------------------------------------------------------- */
void nm_fork_init(void);

/* ---- init.c: booting the process ------------------------------------------------------- */
/* make the process ready; false while another (or this) thread is booting it */
bool nm_process_init(void);

/* ---- alloc.c: routing by size and by page-map kind ------------------------------------- */
void  *nm_malloc(size_t n);
void   nm_free(void *p);
void  *nm_calloc(size_t n, size_t m);
void  *nm_realloc(void *p, size_t n);
void  *nm_reallocarray(void *p, size_t n, size_t m);
size_t nm_usable_size(const void *p);
void  *nm_malloc_slow(size_t n);
/* e: p's page-map entry */
void   nm_free_slow(void *p, nm_pme_t e);
/* the calling thread's cache once the process is ready, or NULL while it boots */
nm_tcache_t *nm_thread_ready(void);
/* allocations while booting: served by the fallback arena, counted */
void  *nm_bootstrap_alloc(size_t n, size_t align, bool zero);
/* any size: small, medium or large; align <= 16 means none */
void  *nm_alloc_any(nm_tcache_t *tc, size_t n, size_t align, bool zero);

/* ---- aligned.c ------------------------------------------------------------------------- */
void *nm_memalign(size_t align, size_t n);
int   nm_posix_memalign(void **out, size_t align, size_t n);
void *nm_aligned_alloc(size_t align, size_t n);
void *nm_valloc(size_t n);
void *nm_pvalloc(size_t n);

/* ---- api.c ----------------------------------------------------------------------------- */
struct numamalloc_block_info;
struct mallinfo;
struct mallinfo2;
int  nm_malloc_trim(size_t pad);
struct mallinfo2 nm_mallinfo2(void);
struct mallinfo nm_mallinfo(void);
int  nm_mallopt(int param, int value);
void nm_malloc_stats(void);
int  nm_malloc_info(int options, void *fp);
const char *nm_api_version(void);
void *nm_api_alloc_onnode(size_t size, int node);
void *nm_api_alloc_onnode_flags(size_t size, int node, int flags);
void *nm_api_alloc_interleaved(size_t size);
int   nm_api_node_of(const void *p);
int   nm_api_resident_node(const void *p);
int   nm_api_thread_policy_set(const char *text);
int   nm_api_thread_policy_get(char *buf, size_t len);
int   nm_api_nodes_with_memory(int *nodes, int len);
int   nm_api_node_of_cpu(int cpu);
int   nm_api_current_node(void);
int   nm_api_node_distance(int a, int b);
int   nm_api_block_info(const void *p, struct numamalloc_block_info *info);
size_t nm_api_stats_print(char *buf, size_t len);
size_t nm_api_stats_json(char *buf, size_t len);
const char *nm_api_option_get(const char *name);

#endif
