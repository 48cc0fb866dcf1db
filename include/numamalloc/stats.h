/* numamalloc — every counter: the lists, their storage (src/counters.c) and the one
 * way to add to them. Depends on nothing of ours but config.h and base.h, so every
 * file may count; the dump (src/stats.c) reads them all from the top.
 *
 * Two kinds:
 *  - nm_counters_t tables (per class, per domain, per thread, per large-block
 *    backing): each live thread has its own copy in its cache and adds to it with
 *    plain increments; anything counted without a live thread (booting, exited
 *    threads, other domains' work) goes atomically into the global copy, which also
 *    receives a thread's copy when the thread exits. A dump sums the global copy and
 *    every live thread's. nm_count() is that rule, the only way to add.
 *  - global counters (NM_GLOBAL_COUNTERS, fallback reasons): relaxed atomics, for
 *    process-wide facts (segments mapped, system calls, large bytes out).
 * Fast-path allocations and frees are not counted one by one: the bins count them
 * (budget, mark) and src/tcache.c adds them here at every slow event of the bin. */
#ifndef NM_STATS_H
#define NM_STATS_H

#include "numamalloc/base.h"

/* per size class */
#define NM_CLASS_COUNTERS(X) \
    X(alloc_fast, "allocations served by the loaded magazine")                       \
    X(alloc_slow, "allocations that took the slow path")                             \
    X(free_fast,  "frees pushed into the loaded magazine")                           \
    X(free_slow,  "frees that took the slow path")                                   \
    X(depot_get,  "full magazines taken from the depot")                             \
    X(depot_put,  "full magazines handed to the depot")                              \
    X(slab_fill,  "magazines filled straight from slabs")

/* per domain (NUMA node, or the interleaved pseudo-node) */
#define NM_DOMAIN_COUNTERS(X) \
    X(alloc_count,  "blocks allocated from this domain")                             \
    X(alloc_bytes,  "bytes allocated from this domain (usable size)")                \
    X(free_count,   "blocks of this domain freed")                                   \
    X(free_bytes,   "bytes of this domain freed")                                    \
    X(remote_alloc, "allocations by threads running on another node")                \
    X(remote_free,  "frees by threads running on another node (sent home)")          \
    X(hugetlb_alloc_bytes, "large-block bytes mapped on hugetlb pages, in total")     \
    X(hugetlb_free_bytes,  "of which freed")                                         \
    X(thp_alloc_bytes,     "large-block bytes mapped for transparent huge pages")     \
    X(thp_free_bytes,      "of which freed")

/* per thread, everything else counted per call on a slow path */
#define NM_THREAD_COUNTERS(X) \
    X(arena_alloc,       "blocks from the fallback arena (mimalloc)")                \
    X(arena_alloc_bytes, "bytes from the fallback arena")                            \
    X(arena_free,        "fallback-arena blocks freed")                              \
    X(arena_free_bytes,  "fallback-arena bytes freed")                               \
    X(foreign_free,      "frees of pointers that are not ours (left alone)")         \
    X(realloc_inplace,   "reallocs answered without moving")                         \
    X(realloc_move,      "reallocs that moved the block")                            \
    X(node_moves,        "times a thread was found on another node")                 \
    X(large_cache_hit,   "large allocations served from the mapping cache")          \
    X(large_cache_miss,  "large allocations that needed a new mapping")              \
    X(cache_evictions,   "bins whose magazines went back to make room within a thread's budget") \
    X(cache_grows,       "times a thread's cache budget grew out of the shared pool")

/* per large-block backing (enum nm_backing), a row of NM_BACK_COUNT each */
#define NM_BACKING_COUNTERS(X) \
    X(bk_alloc,  "large blocks mapped on this backing")                              \
    X(bk_free,   "of which freed")                                                   \
    X(bk_abytes, "bytes mapped on this backing")                                     \
    X(bk_fbytes, "of which freed")

/* global, relaxed atomics */
#define NM_GLOBAL_COUNTERS(X) \
    X(threads_seen,       "threads that used the allocator")                         \
    X(threads_live,       "threads alive now")                                       \
    X(large_out_bytes,    "bytes of large mappings out of the node caches: live, or kept by a thread") \
    X(large_peak_bytes,   "peak of large_out_bytes")                                 \
    X(large_cache_evict,  "cached large mappings released (decay, bound or trim)")   \
    X(large_cache_split,  "cached mappings split to fit a smaller request")          \
    X(large_cache_grow,   "cached mappings grown with mremap to fit a larger request") \
    X(large_cache_merge,  "cached mappings merged with a neighbour")                 \
    X(large_tcache_bytes, "bytes of large mappings kept by the threads that freed them, plus their lc_owed") \
    X(large_mremap,       "large reallocs done with mremap")                         \
    X(large_judged_dense, "new unpopulated large mappings found written densely (at their thread's next mapping or their free)") \
    X(large_judged_sparse,"new unpopulated large mappings found written sparsely (at their thread's next mapping or their free)") \
    X(large_populated,    "bytes of large mappings populated at allocation because the node's blocks were used densely") \
    X(footprint,          "bytes held by the heap: out of slabs, large mappings (cached too), fallback blocks") \
    X(footprint_peak,     "peak of footprint")                                       \
    X(segments,           "slab segments mapped now")                                \
    X(cache_pool_used,    "bytes of the shared pool thread caches have grown their budgets by") \
    X(segments_peak,      "peak of segments")                                        \
    X(segments_reserved,  "segments mapped ahead in reservations, not yet used (address space only)") \
    X(slab_pages_purged,  "slab pages returned with MADV_DONTNEED")                  \
    X(slab_pages_refaulted,"slab pages purged at the purge age, carved into a slab again") \
    X(segments_unmapped,  "segments returned with munmap")                           \
    X(medium_bytes_purged,"bytes of free medium blocks inside slabs returned with MADV_DONTNEED") \
    X(threads_reaped,     "caches of threads that died without running their exit retired") \
    X(background_runs,    "passes of the background thread (NUMAMALLOC_BACKGROUND=1)")   \
    X(pagemap_bytes,      "bytes of page-map leaves")                                \
    X(meta_bytes,         "bytes of allocator metadata (descriptors, magazines)")    \
    X(mmap_calls,  "mmap calls")       X(mmap_fail,  "mmap failures")                \
    X(munmap_calls,"munmap calls")     X(munmap_fail,"munmap failures")              \
    X(madvise_calls,"madvise calls")   X(madvise_fail,"madvise failures")            \
    X(mbind_calls, "mbind calls")      X(mbind_fail, "mbind failures")               \
    X(mremap_calls,"mremap calls")     X(mremap_fail,"mremap failures")              \
    X(move_pages_calls,"move_pages calls (residency queries)") X(move_pages_fail,"move_pages failures") \
    X(decay_runs,         "decay passes")                                            \
    X(trim_calls,         "malloc_trim calls")                                       \
    X(invalid_free,       "invalid pointers reported")                               \
    X(bootstrap_allocs,   "allocations served by the fallback while booting")        \
    X(prof_samples,       "allocations sampled by the profiler")

/* Why a request did not get what the policy asked for. Every fallback is counted
 * under exactly one reason, with the last errno where a system call failed. */
#define NM_FALLBACK_REASONS(X) \
    X(HUGE_OFF,          "huge_off",          "huge pages disabled by NUMAMALLOC_HUGEPAGES") \
    X(SIZE_TOO_SMALL,    "size_too_small",    "block too small for a huge page without waste") \
    X(NO_HUGETLB_POOL,   "no_hugetlb_pool",   "no hugetlb pages reserved (nr_hugepages = 0)") \
    X(NO_FREE_HUGETLB,   "no_free_hugetlb_on_node", "target node has too few free hugetlb pages") \
    X(HUGETLB_WASTE,     "hugetlb_rounding_waste",  "rounding up to whole hugetlb pages would waste over 1/8 (THP or 4 KiB pages used instead)") \
    X(HUGETLB_MMAP,      "hugetlb_mmap_failed",     "mmap(MAP_HUGETLB) failed") \
    X(HUGETLB_MBIND,     "hugetlb_mbind_failed",    "mbind of a hugetlb mapping failed") \
    X(HUGETLB_POPULATE,  "hugetlb_populate_failed", "hugetlb pages could not be faulted in on the node") \
    X(NO_1G_POOL,        "no_1g_pool",        "1 GiB pages requested but none free") \
    X(THP_DISABLED,      "thp_disabled",      "transparent huge pages set to never") \
    X(THP_MADVISE,       "thp_madvise_failed","madvise(MADV_HUGEPAGE) failed") \
    X(MBIND,             "mbind_failed",      "mbind of a segment or mapping failed") \
    X(OWN_MEMORY,        "own_memory_refused","no segment could be mapped, even after releasing idle memory: served by the fallback arena") \
    X(LARGE_ALIGN,       "large_alignment",   "alignment above 64 KiB below the large threshold: block mapped on its own") \
    X(STRICT_NODE_FULL,  "strict_node_full",  "a strictly bound slab or mapping was refused: its node had no room (NULL, or the fallback arena for a thread's own blocks)")

#define NM_CTR_ENUM(name, desc) NM_C_##name,
enum { NM_CLASS_COUNTERS(NM_CTR_ENUM) NM_CLASS_CTR_N };
enum { NM_DOMAIN_COUNTERS(NM_CTR_ENUM) NM_DOMAIN_CTR_N };
enum { NM_THREAD_COUNTERS(NM_CTR_ENUM) NM_THREAD_CTR_N };
enum { NM_BACKING_COUNTERS(NM_CTR_ENUM) NM_BACKING_CTR_N };
enum { NM_GLOBAL_COUNTERS(NM_CTR_ENUM) NM_GLOBAL_CTR_N };
#undef NM_CTR_ENUM
#define NM_FB_ENUM(id, key, desc) NM_FB_##id,
enum { NM_FALLBACK_REASONS(NM_FB_ENUM) NM_FB_N };
#undef NM_FB_ENUM

/* how a large block's pages are backed */
enum nm_backing {
    NM_BACK_NORMAL = 0,  /* 4 KiB pages */
    NM_BACK_THP,         /* 2 MiB aligned, madvise(MADV_HUGEPAGE) */
    NM_BACK_HUGETLB_2M,  /* MAP_HUGETLB, 2 MiB pages */
    NM_BACK_HUGETLB_1G,  /* MAP_HUGETLB, 1 GiB pages */
    NM_BACK_COUNT
};

typedef struct nm_counters {
    uint64_t cls[NM_NUM_CLASSES][NM_CLASS_CTR_N];
    uint64_t thr[NM_THREAD_CTR_N];
    uint64_t bk[NM_BACKING_CTR_N][NM_BACK_COUNT];
    uint64_t *dom;           /* [nm_ndomains][NM_DOMAIN_CTR_N], mapped at thread start */
} nm_counters_t;

/* the tables of nm_count */
enum nm_ctr_table { NM_CT_THREAD, NM_CT_CLASS, NM_CT_DOMAIN, NM_CT_BACKING };

/* ---- storage (src/counters.c) ------------------------------------------------------ */
extern nm_counters_t nm_global_ctr;          /* exited threads and counts made without one */
extern uint64_t nm_gctr[NM_GLOBAL_CTR_N];
extern uint64_t nm_fallback[NM_FB_N];
extern int      nm_fallback_errno[NM_FB_N];
/* set up the global copy's per-domain table (ndomains domains); false: no memory */
bool nm_counters_init(uint32_t ndomains);
/* add a thread's counters to the global copy and zero them (at its exit) */
void nm_counters_merge(nm_counters_t *c, uint32_t ndomains);
/* sum into dst (plain adds) the counters of src, read racily (a live thread's) */
void nm_counters_sum(nm_counters_t *dst, const nm_counters_t *src, uint32_t ndomains);

NM_INLINE uint64_t *nm_ctr_at(nm_counters_t *c, int table, unsigned index, int id)
{
    switch (table) {
    case NM_CT_THREAD: return &c->thr[id];
    case NM_CT_CLASS:  return &c->cls[index][id];
    case NM_CT_DOMAIN: return &c->dom[(size_t)index * NM_DOMAIN_CTR_N + (unsigned)id];
    default:           return &c->bk[id][index];
    }
}

/* Add v to counter id of table (index: the class, domain or backing) in c, a live
 * thread's own counters, with a plain add; with c == NULL (no live thread), to the
 * global copy, atomically. The only way the tables are counted. */
NM_INLINE void nm_count(nm_counters_t *c, int table, unsigned index, int id, uint64_t v)
{
    if (NM_LIKELY(c != NULL)) { *nm_ctr_at(c, table, index, id) += v; return; }
    if (table == NM_CT_DOMAIN && nm_global_ctr.dom == NULL) return;    /* before boot */
    __atomic_fetch_add(nm_ctr_at(&nm_global_ctr, table, index, id), v, __ATOMIC_RELAXED);
}

NM_INLINE void nm_gstat_add(int id, uint64_t v) { __atomic_fetch_add(&nm_gctr[id], v, __ATOMIC_RELAXED); }
NM_INLINE void nm_gstat_sub(int id, uint64_t v) { __atomic_fetch_sub(&nm_gctr[id], v, __ATOMIC_RELAXED); }
NM_INLINE uint64_t nm_gstat_get(int id) { return __atomic_load_n(&nm_gctr[id], __ATOMIC_RELAXED); }
/* raise peak counter `peak` to at least v */
NM_INLINE void nm_gstat_max(int peak, uint64_t v)
{
    uint64_t cur = __atomic_load_n(&nm_gctr[peak], __ATOMIC_RELAXED);
    while (v > cur && !__atomic_compare_exchange_n(&nm_gctr[peak], &cur, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
}
/* add v, then raise peak to the new value */
NM_INLINE void nm_gstat_add_peak(int id, int peak, uint64_t v)
{
    nm_gstat_max(peak, __atomic_add_fetch(&nm_gctr[id], v, __ATOMIC_RELAXED));
}
/* the heap's footprint (live + cached bytes) and its peak */
NM_INLINE void nm_footprint_add(int64_t v)
{
    if (v > 0) nm_gstat_add_peak(NM_C_footprint, NM_C_footprint_peak, (uint64_t)v);
    else nm_gstat_sub(NM_C_footprint, (uint64_t)-v);
}
/* count a fallback under its reason; err = errno of the failed call, or 0 */
NM_INLINE void nm_fallback_count(int reason, int err)
{
    __atomic_fetch_add(&nm_fallback[reason], 1, __ATOMIC_RELAXED);
    if (err) __atomic_store_n(&nm_fallback_errno[reason], err, __ATOMIC_RELAXED);
}

#endif
