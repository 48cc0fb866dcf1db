/* numamalloc — the counter lists. Each list names every counter once; the lists
 * generate the structs, the merge and both printers (src/stats.c).
 *
 * Large blocks are counted per thread too (an atomic add costs ~20 cycles, and a
 * large malloc+free pair did 17 of them); only the live bytes and their peak are
 * global atomics.
 * Per-thread counters (nm_counters_t) are plain increments on slow paths (fast-path
 * allocations and frees are counted through the bin's budget/nfree and reconciled
 * here at magazine exchanges); they are merged into the global copy with atomic
 * adds when a thread exits, and summed over live threads when a dump is made.
 * Global-only counters (nm_gcounters) are relaxed atomics on slow paths. */
#ifndef NM_STATS_H
#define NM_STATS_H

#include <stdint.h>
#include "numamalloc/config.h"

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
    X(large_alloc,       "large blocks allocated")                                   \
    X(large_free,        "large blocks freed")                                       \
    X(large_alloc_bytes, "bytes of large blocks allocated (mapped length)")          \
    X(large_free_bytes,  "bytes of large blocks freed")                              \
    X(large_cache_hit,   "large allocations served from the mapping cache")          \
    X(large_cache_miss,  "large allocations that needed a new mapping")              \
    X(bk_alloc_4k,  "large blocks on 4 KiB pages")    X(bk_alloc_thp, "on THP")        \
    X(bk_alloc_h2m, "on hugetlb 2 MiB")               X(bk_alloc_h1g, "on hugetlb 1 GiB") \
    X(bk_free_4k,   "freed, 4 KiB")   X(bk_free_thp, "freed, THP")                   \
    X(bk_free_h2m,  "freed, 2 MiB")   X(bk_free_h1g, "freed, 1 GiB")                 \
    X(bk_abytes_4k, "bytes, 4 KiB")   X(bk_abytes_thp, "bytes, THP")                 \
    X(bk_abytes_h2m, "bytes, 2 MiB")  X(bk_abytes_h1g, "bytes, 1 GiB")               \
    X(bk_fbytes_4k, "freed bytes, 4 KiB")  X(bk_fbytes_thp, "freed bytes, THP")      \
    X(bk_fbytes_h2m, "freed bytes, 2 MiB") X(bk_fbytes_h1g, "freed bytes, 1 GiB")    \
    X(medium_cache_hit,  "medium allocations served from the thread's cache")

/* global, relaxed atomics */
#define NM_GLOBAL_COUNTERS(X) \
    X(threads_seen,       "threads that used the allocator")                         \
    X(threads_live,       "threads alive now")                                       \
    X(large_live_bytes,   "bytes in live large mappings")                            \
    X(large_peak_bytes,   "peak of large_live_bytes")                                \
    X(large_cache_evict,  "cached large mappings released (decay, bound or trim)")   \
    X(large_cache_split,  "cached mappings split to fit a smaller request")          \
    X(large_cache_grow,   "cached mappings grown with mremap to fit a larger request") \
    X(large_cache_merge,  "cached mappings merged with a neighbour")                 \
    X(large_tcache_bytes, "bytes of large mappings kept by the threads that freed them") \
    X(large_mremap,       "large reallocs done with mremap")                         \
    X(footprint,          "bytes held by the heap: out of slabs, large mappings (cached too), arena blocks") \
    X(footprint_peak,     "peak of footprint")                                       \
    X(medium_cached,      "bytes of medium blocks kept in thread caches (to 256 KiB per thread)") \
    X(segments,           "slab segments mapped now")                                \
    X(segments_peak,      "peak of segments")                                        \
    X(slab_pages_purged,  "slab pages returned with MADV_DONTNEED")                  \
    X(segments_unmapped,  "segments returned with munmap")                           \
    X(pagemap_bytes,      "bytes of page-map leaves")                                \
    X(meta_bytes,         "bytes of allocator metadata (descriptors, magazines)")    \
    X(mmap_calls,  "mmap calls")       X(mmap_fail,  "mmap failures")                \
    X(munmap_calls,"munmap calls")     X(munmap_fail,"munmap failures")              \
    X(madvise_calls,"madvise calls")   X(madvise_fail,"madvise failures")            \
    X(mbind_calls, "mbind calls")      X(mbind_fail, "mbind failures")               \
    X(mremap_calls,"mremap calls")     X(mremap_fail,"mremap failures")              \
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
    X(HUGETLB_WASTE,     "hugetlb_rounding_waste",  "rounding up to whole hugetlb pages would waste over 1/8 (THP used instead)") \
    X(HUGETLB_MMAP,      "hugetlb_mmap_failed",     "mmap(MAP_HUGETLB) failed") \
    X(HUGETLB_MBIND,     "hugetlb_mbind_failed",    "mbind of a hugetlb mapping failed") \
    X(HUGETLB_POPULATE,  "hugetlb_populate_failed", "hugetlb pages could not be faulted in on the node") \
    X(NO_1G_POOL,        "no_1g_pool",        "1 GiB pages requested but none free") \
    X(THP_DISABLED,      "thp_disabled",      "transparent huge pages set to never") \
    X(THP_MADVISE,       "thp_madvise_failed","madvise(MADV_HUGEPAGE) failed") \
    X(MBIND,             "mbind_failed",      "mbind of a segment or mapping failed") \
    X(ARENA_FULL,        "arena_full",        "fallback arena full or unavailable: block mapped on its own") \
    X(ARENA_OUTSIDE,     "arena_outside",     "mimalloc served a block outside our bound arenas") \
    X(LARGE_ALIGN,       "large_alignment",   "alignment above 32 KiB: block mapped on its own")

#define NM_CTR_ENUM(name, desc) NM_C_##name,
enum { NM_CLASS_COUNTERS(NM_CTR_ENUM) NM_CLASS_CTR_N };
enum { NM_DOMAIN_COUNTERS(NM_CTR_ENUM) NM_DOMAIN_CTR_N };
enum { NM_THREAD_COUNTERS(NM_CTR_ENUM) NM_THREAD_CTR_N };
enum { NM_GLOBAL_COUNTERS(NM_CTR_ENUM) NM_GLOBAL_CTR_N };
#undef NM_CTR_ENUM
#define NM_FB_ENUM(id, key, desc) NM_FB_##id,
enum { NM_FALLBACK_REASONS(NM_FB_ENUM) NM_FB_N };
#undef NM_FB_ENUM

typedef struct nm_counters {
    uint64_t cls[NM_NUM_CLASSES][NM_CLASS_CTR_N];
    uint64_t thr[NM_THREAD_CTR_N];
    uint64_t *dom;           /* [nm_ndomains][NM_DOMAIN_CTR_N], mapped at thread start */
} nm_counters_t;

#endif
