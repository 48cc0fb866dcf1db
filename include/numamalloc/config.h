/* numamalloc — compile-time constants.
 *
 * Everything here is a build knob with a reason next to it. Runtime tuning lives in
 * options.h (NUMAMALLOC_* environment variables); nothing in this file is read from
 * the environment.
 */
#ifndef NM_CONFIG_H
#define NM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

/* ---- page map ----------------------------------------------------------------
 * One entry per 64 KiB granule of the 48-bit user address space: 32 index bits,
 * split 16 (root, a static array) + 16 (leaves of 512 KiB mapped on demand, each
 * covering 4 GiB). 64 KiB is the smallest alignment every origin we register
 * guarantees: slabs are 64 KiB multiples inside 4 MiB-aligned segments, and large
 * mappings are at least 64 KiB long (so no two start in the same granule). */
#define NM_GRANULE_SHIFT   16
#define NM_GRANULE         ((uintptr_t)1 << NM_GRANULE_SHIFT)
#define NM_VA_BITS         48
#define NM_PM_LEAF_BITS    16
#define NM_PM_ROOT_BITS    (NM_VA_BITS - NM_GRANULE_SHIFT - NM_PM_LEAF_BITS)
#define NM_PM_ROOT_LEN     ((uintptr_t)1 << NM_PM_ROOT_BITS)
#define NM_PM_LEAF_LEN     ((uintptr_t)1 << NM_PM_LEAF_BITS)

/* ---- segments and slabs -----------------------------------------------------
 * A segment is 4 MiB, aligned to 4 MiB, bound to one NUMA domain, and split into
 * 64 pages of 64 KiB (one bit each in a 64-bit mask). A slab is 1..16 consecutive
 * pages holding blocks of one size class. */
#define NM_SEGMENT_SHIFT   22
#define NM_SEGMENT_SIZE    ((uintptr_t)1 << NM_SEGMENT_SHIFT)
#define NM_SEG_PAGES       (NM_SEGMENT_SIZE >> NM_GRANULE_SHIFT)   /* 64 */
/* Never-touched pages for new slabs come from segments of the carving CPU's lane
 * (CPU mod this): threads running at once then fault in different 2 MiB page-table
 * pages, whose kernel lock they would otherwise queue on (src/segment.c). */
#define NM_SEG_LANES       8
/* Segments are mapped a reservation at a time, the first of one segment, each next
 * twice the last up to this many (src/segment.c). */
#define NM_SEG_RESERVE_MAX 16
#define NM_SLAB_MAX_PAGES  16

/* ---- size classes -----------------------------------------------------------
 * Small: 16-byte steps up to 128, then four classes per doubling up to 32 KiB (40
 * classes); a small malloc is served inline (fastpath.h). Medium: four per doubling
 * above 32 KiB up to 1 MiB (20 classes, 40 KiB .. 1 MiB), used below
 * NUMAMALLOC_LARGE_THRESHOLD; they live in the same node-bound slabs, each slab a
 * whole number of blocks without waste (40 KiB: 8 blocks in 5 pages; from 256 KiB:
 * one block, a run of pages). Worst-case internal waste per class is (size -
 * previous size - 1) / size: 46.9 % for 32 (a 17-byte request, forced by 16-byte
 * alignment), below 20 % from 144 bytes up, every medium class included. */
#define NM_SMALL_MAX       32768
#define NM_SMALL_CLASSES   40
#define NM_MEDIUM_MAX      ((size_t)1 << 20)
#define NM_NUM_CLASSES     60
#define NM_QUANTUM_SHIFT   4
#define NM_MAG_MAX_CAP     64        /* rounds in a magazine of a class of 128 bytes or more */
#define NM_MAG_BYTES       32768     /* such a magazine caches about this many bytes ... */
#define NM_MAG_MIN_CAP     8         /* ... but never fewer rounds than this */
/* Tiny classes (16-112 bytes): up to 128 rounds within 8 KiB. A magazine exchange
 * costs the same lock round trip and cache-line transfers whatever the block size,
 * and tiny blocks are the ones programs hand between threads by the thousand (a
 * producer filling batches of 64-byte messages exchanged 64 rounds at a time); 8
 * KiB keeps what a thread or depot caches of them small. */
#define NM_MAG_TINY_CAP    128
#define NM_MAG_TINY_BYTES  8192
#define NM_ZERO_PROBE_MIN  (256 << 10) /* calloc of a reused block this big reads /proc/self/pagemap
                                        and zeroes only the pages that may hold data */
#define NM_DIRTY_MIN       (1 << 20) /* free slab pages and spare slabs a domain keeps for reuse:
                                        beyond this and an eighth of the heap they go back once idle */
#define NM_DIRTY_AGE_MS    50        /* ... this long, not after the decay time (at once when a
                                        thread exits and no other thread of its node is busy) */
#define NM_SPARE_ALWAYS    (256 << 10) /* a wholly free slab this small is always kept as its
                                        class's spare; bigger ones within the bound above */
#define NM_FP_BATCH        (32 << 10) /* a depot adds its footprint change to the global
                                        counter in steps of this (the peak may miss it) */
#define NM_FILL_START      4         /* a bin's first fill from the slabs: slow start, so a
                                        thread that touches a class a few times between
                                        evictions does not carve and return a magazine */
#define NM_SETTLE_BATCH    32        /* slabs a batch free marks before settling their counts
                                        and lists (src/slab.c): one settle per slab, not per run */
/* A medium magazine holds about NM_MED_MAG_BYTES (at least one block). */
#define NM_MED_MAG_BYTES   ((size_t)256 << 10)
/* What a thread's bins may hold, counted as the capacity of the magazines they have
 * (src/tcache.c): every thread may hold NM_TC_MIN_BYTES; a thread that needs more
 * grows its budget (doubling, to NM_TC_MAX_BYTES) out of one pool of NM_TC_POOL_BYTES
 * shared by all threads, and gives it back as it idles or exits. One thread alone
 * caches as much as it uses; many threads busy at once hold at most 512 KiB each
 * plus the pool, which lets 32 threads use their maximum at once and 256 threads
 * 1 MiB each on average: cached blocks are resident pages, which every thread that
 * caches them keeps from the others, while a thread below a quarter of a magazine's
 * worth of budget takes that class's blocks one lock round trip at a time. */
#define NM_TC_MIN_BYTES    ((size_t)512 << 10)
#define NM_TC_MAX_BYTES    ((size_t)4 << 20)
#define NM_TC_POOL_BYTES   ((size_t)128 << 20)
/* Of a thread's budget, its medium magazines (blocks of 40 KiB to 1 MiB) hold at most
 * this much together, or one alone that is bigger: each is one to six blocks that cost
 * their pages while cached, and without a bound of their own they pushed the small
 * bins out and grew every budget to its maximum (64 threads of mixed sizes: 120 MiB
 * cached at their peak). */
#define NM_TC_MED_BYTES    ((size_t)512 << 10)
/* large blocks a thread keeps after freeing them (large.c), without a lock; each at
 * most half of NUMAMALLOC_LARGE_CACHE (0 turns this off with the cache) */
#define NM_LCACHE_SLOTS    2

/* ---- NUMA -------------------------------------------------------------------
 * Node ids go up to what the system reports (nodeN under /sys); the page-map tag
 * has 12 bits for the domain, Linux allows at most 1024 nodes (NODES_SHIFT 10). */
#define NM_MAX_DOMAINS     4096
#define NM_DOMAIN_BITS     12
/* Domains beyond one per node (src/policy.c): the interleaved and the profiler's
 * pseudo-domains, a strictly bound (MPOL_BIND, faulted in at allocation) twin of
 * every node, and up to NM_EXTRA_DOMAINS interleaved domains over node sets that
 * per-thread policies ask for (interleave:1,3), created on first use. A process
 * uses at most NM_THREAD_POLICIES distinct per-thread policies. */
#define NM_EXTRA_DOMAINS   8
#define NM_THREAD_POLICIES 31

/* ---- large blocks -------------------------------------------------------------- */
#define NM_PAGE_2M         ((size_t)2 << 20)
#define NM_PAGE_1G         ((size_t)1 << 30)

/* ---- debug ------------------------------------------------------------------- */
#ifndef NM_DEBUG
#define NM_DEBUG 0
#endif
static const bool nm_config_debug = NM_DEBUG;

#endif
