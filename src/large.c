/* numamalloc — large blocks: one NUMA-bound mapping each, on huge pages when we can.
 *
 * A request of at least NUMAMALLOC_LARGE_THRESHOLD (default 1 MiB: below it slabs
 * pack blocks without per-block system calls; at it, a mapping of its own lets the
 * block sit on its node and be released whole) gets, in order:
 *   1. MAP_HUGETLB pages (1 GiB with NUMAMALLOC_HUGEPAGES=1g when the size allows,
 *      else 2 MiB) if the target node's free_hugepages covers it. Reservations are
 *      global, so a mapping bound to a node without free pages would mmap fine and
 *      SIGBUS on first touch; we check the node, mbind before touching, and fault
 *      the pages in with MADV_POPULATE_WRITE, which returns an error instead of a
 *      signal. No SIGBUS, ever: a failure unmaps and falls through.
 *   2. with NUMAMALLOC_HUGEPAGES=thp or ...+thp only: a 2 MiB-aligned mapping with
 *      madvise(MADV_HUGEPAGE) (THP in madvise mode). Not by default: a THP fault
 *      zeroes 2 MiB (measured here: ~0.8 ms against ~3 us for a 4 KiB page) and makes
 *      the whole 2 MiB resident, so a block touched sparsely costs 250x the time and
 *      memory (one byte per 2 MiB of 512 MiB: 251 ms and 513 MiB against 0.8 ms and
 *      2 MiB); densely used blocks gain ~20 % on random access (TLB);
 *   3. normal 4 KiB pages.
 * Sizes under 2 MiB, or whose rounding to 2 MiB would waste more than 1/8, stay on
 * normal pages. Every step down is counted by reason (stats.h NM_FALLBACK_REASONS).
 *
 * New 4 KiB mappings are populated in one madvise(MADV_POPULATE_WRITE) when the
 * program writes its large blocks densely (NUMAMALLOC_PREFAULT=auto: learned per
 * node, see "Populating" below; 1: always): a page fault per 4 KiB page costs more.
 *
 * Freed mappings wait in a per-domain cache (NUMAMALLOC_LARGE_CACHE bytes, newest
 * first) for reuse, and are unmapped after NUMAMALLOC_DECAY_MS idle. realloc of a
 * 4 KiB or THP-backed block uses mremap (no copy; the binding moves with the VMA).
 * Descriptors (nm_large_t) are metadata; the page map holds the granule of the
 * pointer handed out.
 *
 * NUMAMALLOC_CHECK=1: a mapping is at least one byte longer than asked for (a
 * request of whole pages takes one page more), the descriptor keeps the size asked
 * for, and the first up to NM_CANARY_MAX bytes past it hold the canary that free
 * verifies (src/alloc.c); realloc then always moves (src/alloc.c).
 *
 * A mapping that cannot be made returns NULL; the caller (src/alloc.c) may reclaim
 * idle memory and try again. A strict domain's mapping (src/policy.c) is faulted in
 * when it is made, or refused when its node has no room; it is never grown with
 * mremap (its new tail would not be).
 *
 * Lock: nm_domain_t.large_lock guards the domain's cache list and cache_bytes
 * (cache_bytes is also read without it, so it is written with relaxed atomics). The
 * blocks threads keep are in atomic slots of their caches, not under a lock. */
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "numamalloc/internal.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
#ifndef MAP_HUGE_SHIFT
#define MAP_HUGE_SHIFT 26
#endif
#define NM_MAP_HUGE_2MB (21 << MAP_HUGE_SHIFT)
#define NM_MAP_HUGE_1GB (30 << MAP_HUGE_SHIFT)

uint64_t nm_large_backing_total[NM_BACK_COUNT];
int nm_thp_mode = 1;
static int lc_fence;                    /* 1: kept-block owners use plain accesses (below) */

static long pool_2m = -1, pool_1g = -1;         /* global hugetlb pool sizes, refreshed */
static uint64_t pool_checked_ms;

void nm_large_init(void)
{
    char buf[128];
    lc_fence = nm_os_membarrier_register();
    nm_thp_mode = 1;
    if (nm_os_read_file("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof buf) > 0) {
        if (nm_strstr(buf, "[never]")) nm_thp_mode = 0;
        else if (nm_strstr(buf, "[always]")) nm_thp_mode = 2;
    } else {
        nm_thp_mode = 0;                         /* no THP support in this kernel */
    }
}

/* pool sizes change rarely (an administrator writes nr_hugepages): re-read them at
 * most once a second (re-reading an empty pool on every miss cost two file reads
 * per large allocation) */
static void refresh_pools(void)
{
    uint64_t now = nm_os_now_ms();
    if (pool_2m >= 0 && now - __atomic_load_n(&pool_checked_ms, __ATOMIC_RELAXED) < 1000) return;
    __atomic_store_n(&pool_2m, nm_topo_nr_hugepages(-1, 2048), __ATOMIC_RELAXED);
    __atomic_store_n(&pool_1g, nm_topo_nr_hugepages(-1, 1048576), __ATOMIC_RELAXED);
    __atomic_store_n(&pool_checked_ms, now, __ATOMIC_RELAXED);
}

/* the counters of n mappings of `bytes` in all, of one backing and domain, coming
 * (freed == 0) or going, into c */
NM_INLINE void count_mappings(nm_counters_t *c, uint32_t dom, int backing, uint64_t n, uint64_t bytes, int freed)
{
    nm_count(c, NM_CT_BACKING, (unsigned)backing, freed ? NM_C_bk_free : NM_C_bk_alloc, n);
    nm_count(c, NM_CT_BACKING, (unsigned)backing, freed ? NM_C_bk_fbytes : NM_C_bk_abytes, bytes);
    if (backing == NM_BACK_HUGETLB_2M || backing == NM_BACK_HUGETLB_1G)
        nm_count(c, NM_CT_DOMAIN, dom, freed ? NM_C_hugetlb_free_bytes : NM_C_hugetlb_alloc_bytes, bytes);
    else if (backing == NM_BACK_THP)
        nm_count(c, NM_CT_DOMAIN, dom, freed ? NM_C_thp_free_bytes : NM_C_thp_alloc_bytes, bytes);
}

/* n large blocks of one backing and domain, `bytes` in all, handed out (freed == 0) or
 * freed: every counter of them into c, remote allocations judged by cpu_node (the
 * large totals of the dump are the sums over the backings) */
NM_INLINE void count_blocks(nm_counters_t *c, uint32_t dom, int backing, int cpu_node,
                            uint64_t n, uint64_t bytes, int freed)
{
    nm_count(c, NM_CT_DOMAIN, dom, freed ? NM_C_free_count : NM_C_alloc_count, n);
    nm_count(c, NM_CT_DOMAIN, dom, freed ? NM_C_free_bytes : NM_C_alloc_bytes, bytes);
    if (!freed && c && nm_domain_is_remote(dom, cpu_node))
        nm_count(c, NM_CT_DOMAIN, dom, NM_C_remote_alloc, n);
    count_mappings(c, dom, backing, n, bytes, freed);
}

NM_INLINE void count_block(nm_tcache_t *tc, const nm_large_t *L, int freed)
{
    count_blocks(nm_tc_ctr(tc), L->domain, L->backing, tc->cpu_node, 1, L->map_len, freed);
}

/* does domain dom have `pages` free hugetlb pages of size_kb? */
static bool node_has_free_huge(uint32_t dom, size_t pages, unsigned long size_kb)
{
    int node = nm_domain_node(dom);
    if (node >= 0 || !nm_topo.sysfs) {
        long f = nm_topo_free_hugepages(nm_topo.sysfs ? node : -1, size_kb);
        return f >= 0 && (size_t)f >= pages;
    }
    /* interleaved: every node it spans must take its share */
    int spans = 0;
    for (int n = 0; n <= nm_topo.max_node; n++) spans += nm_domain_spans(dom, n);
    size_t share = (pages + (size_t)NM_MAX(spans, 1) - 1) / (size_t)NM_MAX(spans, 1);
    for (int n = 0; n <= nm_topo.max_node; n++) {
        if (!nm_domain_spans(dom, n)) continue;
        long f = nm_topo_free_hugepages(n, size_kb);
        if (f < 0 || (size_t)f < share) return false;
    }
    return true;
}

/* 1.: hugetlb. Returns the mapping or NULL with *reason set. */
static char *map_hugetlb(uint32_t dom, size_t len, size_t page, int *reason, int *err)
{
    unsigned long kb = (unsigned long)(page >> 10);
    if (!node_has_free_huge(dom, len / page, kb)) {
        *reason = page == NM_PAGE_1G ? NM_FB_NO_1G_POOL : NM_FB_NO_FREE_HUGETLB;
        return NULL;
    }
    char *p = nm_os_map(len, MAP_HUGETLB | (page == NM_PAGE_1G ? NM_MAP_HUGE_1GB : NM_MAP_HUGE_2MB));
    if (p == NULL) { *reason = NM_FB_HUGETLB_MMAP; *err = nm_os_last_errno[NM_OS_MMAP]; return NULL; }
    if (!nm_policy_bind(dom, p, len)) {
        *reason = NM_FB_HUGETLB_MBIND; *err = nm_os_last_errno[NM_OS_MBIND];
        nm_os_unmap(p, len);
        return NULL;
    }
    if (!nm_os_advise(p, len, MADV_POPULATE_WRITE)) {
        *reason = NM_FB_HUGETLB_POPULATE; *err = nm_os_last_errno[NM_OS_MADVISE];
        nm_os_unmap(p, len);
        return NULL;
    }
    return p;
}

/* Large blocks are mapped without MAP_NORESERVE: the kernel's overcommit policy then
 * judges each one as it judges glibc's mmap chunks, and malloc(64 TiB) is NULL with
 * ENOMEM instead of a pointer the OOM killer collects on first touch (found by the
 * differential test in tests/fuzz). */
#define LARGE_MAP_FLAGS 0

/* a strict domain's mapping (not hugetlb: its pages are faulted in already) is
 * faulted in now, or unmapped: NULL */
static char *strict_fault(uint32_t dom, char *p, size_t len)
{
    if (nm_policy_populate(dom, p, len)) return p;
    nm_os_unmap(p, len);
    return NULL;
}

/* a fallback of a new mapping: counted, and remembered in *huge_fb (NM_FB_* + 1) for
 * the block's profile attribution */
static void fallback(int *huge_fb, int reason, int err)
{
    nm_fallback_count(reason, err);
    *huge_fb = reason + 1;
}

/* a new mapping; *huge_fb: the last fallback counted for it (NM_FB_* + 1), or 0 */
static char *map_new(uint32_t dom, size_t n, size_t align, size_t *len_out, int *backing, int *huge_fb)
{
    size_t len = nm_align_up(n, nm_os_page);
    size_t len2m = nm_align_up(n, NM_PAGE_2M);
    int mode = nm_opt.hugepages;
    char *p = NULL;
    *huge_fb = 0;

    if (mode == NM_HUGE_OFF) {
        if (len >= NM_PAGE_2M) fallback(huge_fb, NM_FB_HUGE_OFF, 0);
    } else if (len < NM_PAGE_2M) {
        fallback(huge_fb, NM_FB_SIZE_TOO_SMALL, 0);
    } else {
        if (mode != NM_HUGE_THP && align <= NM_PAGE_2M) {
            int reason = -1, err = 0;
            refresh_pools();
            if (mode == NM_HUGE_1G) {
                /* the waste rule alone decides: 1 GiB - 4 KiB is one 1 GiB page */
                size_t len1g = nm_align_up(n, NM_PAGE_1G);
                if (len1g - len <= len / 8) {
                    if (pool_1g > 0) p = map_hugetlb(dom, len1g, NM_PAGE_1G, &reason, &err);
                    else reason = NM_FB_NO_1G_POOL;
                    if (p) { *len_out = len1g; *backing = NM_BACK_HUGETLB_1G; return p; }
                    fallback(huge_fb, reason, err);
                }
            }
            if (len2m - len > len / 8) {
                /* hugetlb pages are whole: a 3.1 MiB block on 4 MiB would waste 29 % */
                reason = NM_FB_HUGETLB_WASTE;
            } else if (pool_2m <= 0) {
                reason = NM_FB_NO_HUGETLB_POOL;
            } else {
                p = map_hugetlb(dom, len2m, NM_PAGE_2M, &reason, &err);
                if (p) { *len_out = len2m; *backing = NM_BACK_HUGETLB_2M; return p; }
            }
            fallback(huge_fb, reason, err);
        }
        if (mode == NM_HUGE_THP || nm_opt.thp_fallback) {
            if (nm_thp_mode == 0) {
                fallback(huge_fb, NM_FB_THP_DISABLED, 0);
            } else {
                /* 2 MiB-aligned start; the 2 MiB ranges inside get huge pages, a tail
                 * under 2 MiB stays on 4 KiB pages: nothing is rounded up or wasted */
                p = nm_os_map_aligned(len, NM_MAX(align, NM_PAGE_2M), LARGE_MAP_FLAGS);
                if (p == NULL) return NULL;
                nm_policy_bind(dom, p, len);
                *len_out = len;
                if (nm_os_advise(p, len, MADV_HUGEPAGE)) { *backing = NM_BACK_THP; return strict_fault(dom, p, len); }
                fallback(huge_fb, NM_FB_THP_MADVISE, nm_os_last_errno[NM_OS_MADVISE]);
                *backing = NM_BACK_NORMAL;
                return strict_fault(dom, p, len);
            }
        }
    }
    /* on a page-map granule: a pointer a little way into the block (an interior
     * free) then finds the block's entry and is reported as such */
    p = nm_os_map_aligned(len, NM_MAX(align, (size_t)NM_GRANULE), LARGE_MAP_FLAGS);
    if (p == NULL) return NULL;
    nm_policy_bind(dom, p, len);
    *len_out = len;
    *backing = NM_BACK_NORMAL;
    return strict_fault(dom, p, len);
}

/* the heap's footprint counts a mapping from its mmap to its munmap, cached or not */
static void unmap_block(nm_large_t *L)
{
    nm_footprint_add(-(int64_t)L->map_len);
    nm_os_unmap(L->map, L->map_len);
    nm_meta_free(L, sizeof *L);
}

/* Resize L's mapping to new_len without copying; returns its (maybe new) address,
 * or NULL with L untouched. In place if the kernel can; else onto a fresh mapping of
 * ours, registered in the page map first: mremap releases the old range at once and
 * another thread may get it from mmap and register it, so our old entry is cleared
 * before the move (never after), and MREMAP_FIXED only ever replaces our own fresh
 * mapping (found by the stress test: a moved block's late clear erased another
 * thread's new block, whose free was then refused as "not allocated"). */
static char *remap_block(nm_large_t *L, size_t new_len, size_t align)
{
    int saved = errno;                                        /* a refused attempt is not an error */
    char *q = nm_os_remap(L->map, L->map_len, new_len, 0, NULL);
    int err = errno;
    errno = saved;
    if (q != NULL) return q;                                  /* grown or shrunk in place */
    if (err == EFAULT) {
        /* L spans two or more VMAs (cache_coalesce_locked joined mappings the kernel
         * did not merge: separately faulted anonymous VMAs keep apart): a move would
         * fail the same way. Found by the fault suite's baseline, which saw 82 of 531
         * mremap calls fail with EFAULT in a run without faults, each attempt also
         * mapping and unmapping a destination in vain. Never try this block again. */
        L->multi_vma = 1;
        return NULL;
    }
    /* The destination sits at the same offset from a 2 MiB boundary as the source,
     * so the kernel moves whole 2 MiB page tables between them and only the ragged
     * ends entry by entry: on a shadow-paged guest, every page whose entry was moved
     * on its own faults again at its next touch. */
    size_t span = NM_MAX(align, NM_PAGE_2M);
    size_t offset = (uintptr_t)L->map & (span - 1);
    if (L->backing == NM_BACK_THP || (offset & (NM_MAX(align, NM_GRANULE) - 1)) != 0)
        offset = 0;                                           /* on a granule and align, as map_new */
    char *dest = nm_os_map_congruent(new_len, span, offset, MAP_NORESERVE);
    if (dest == NULL) return NULL;
    nm_pme_t e = nm_pme_make(NM_KIND_LARGE, L->domain, 0, L);
    if (!nm_pagemap_set((uintptr_t)dest, e)) { nm_os_unmap(dest, new_len); return NULL; }
    nm_pagemap_set((uintptr_t)L->user, 0);
    q = nm_os_remap(L->map, L->map_len, new_len, MREMAP_MAYMOVE | MREMAP_FIXED, dest);
    if (q == NULL) {
        nm_pagemap_set((uintptr_t)L->user, e);
        nm_pagemap_set((uintptr_t)dest, 0);
        nm_os_unmap(dest, new_len);
        return NULL;
    }
    return q;
}

static void cache_unlink_locked(nm_domain_t *dm, nm_large_t *L)
{
    if (L->prev) L->prev->next = L->next; else dm->cache = L->next;
    if (L->next) L->next->prev = L->prev; else dm->cache_tail = L->prev;
    L->next = L->prev = NULL;
    __atomic_fetch_sub(&dm->cache_bytes, L->map_len, __ATOMIC_RELAXED);
}

static void cache_push_locked(nm_domain_t *dm, nm_large_t *L)
{
    L->prev = NULL;
    L->next = dm->cache;
    if (dm->cache) dm->cache->prev = L; else dm->cache_tail = L;
    dm->cache = L;
    __atomic_fetch_add(&dm->cache_bytes, L->map_len, __ATOMIC_RELAXED);
}

static bool resizable(const nm_large_t *L) { return L->backing == NM_BACK_NORMAL || L->backing == NM_BACK_THP; }
/* ... and mremap can resize it: one VMA as far as we know, and not strict (a grown
 * tail would not be faulted in) */
static bool remappable(const nm_large_t *L) { return resizable(L) && !L->multi_vma && !nm_domains[L->domain].strict; }

/* Merge L (not yet in the cache) with cached mappings right before or after it, as
 * tcmalloc's page heap coalesces spans: splits leave the tail of a mapping cached,
 * and when the front comes back the two make the big block again, instead of both
 * being evicted piecemeal and the next big request faulting in fresh pages
 * (bench/ large-blocks: 558 MB of page zeroing against tcmalloc's 83). The kernel
 * merges the two VMAs, which have the same flags and policy; if it did not, a later
 * mremap of the whole fails and we map anew: slower, never wrong. */
static void cache_coalesce_locked(nm_domain_t *dm, nm_large_t *L)
{
    if (!resizable(L)) return;
    for (nm_large_t *X = dm->cache, *next; X; X = next) {
        next = X->next;
        if (X->backing != L->backing) continue;
        if (X->map + X->map_len == L->map) {
            cache_unlink_locked(dm, X);
            L->map = L->user = X->map;
            L->map_len += X->map_len;
        } else if (L->map + L->map_len == X->map) {
            cache_unlink_locked(dm, X);
            L->map_len += X->map_len;
        } else {
            continue;
        }
        L->multi_vma |= X->multi_vma;
        nm_meta_free(X, sizeof *X);
        nm_gstat_add(NM_C_large_cache_merge, 1);
        next = dm->cache;                         /* L grew: look again from the start */
    }
}

/* ---- populating mappings the program writes densely -------------------------------
 * Populating a mapping with MADV_POPULATE_WRITE costs far less than the page faults
 * of its first touches (bench/ large-blocks: sys time 153 -> 39 ms for 200 blocks of
 * 1-8 MiB, on a VM where each fault traps), but a block the program touches sparsely
 * would become resident whole: a buffer of 32 MiB of which it writes a page. So
 * NUMAMALLOC_PREFAULT=auto decides per node, from what the program did. A thread's
 * newest new 4 KiB mapping that was not populated is judged once, when that thread
 * makes its next new large mapping or frees the block, whichever comes first: its
 * resident pages are counted (mincore; NM_JUDGE_WINDOWS windows of it past 16 MiB).
 * Three quarters or more votes dense; under a quarter clears the votes; between
 * takes one off. Judging a live block at the next mapping lets a program that fills
 * each block as it gets it (the common case) be found dense from its third block on,
 * not after its first frees; one still filling its block looks sparse, which only
 * delays the decision. From NM_DENSE_VOTES votes on, the node's new 4 KiB mappings
 * and the tails grown onto its cached ones are populated, except every
 * NM_JUDGE_EVERY-th new mapping, left to fault and be judged, so a program that
 * turns sparse is noticed. Reused and resized mappings are not judged: their pages
 * were resident before. A block another thread frees first is judged where it lies
 * at the owner's next mapping: cached (a dense vote, as it was written), unmapped
 * (mincore fails: no vote) or reused by another block. The votes are relaxed
 * atomics: a lost update delays a decision by one block. A mapping or tail over
 * NM_POPULATE_MAX is never populated by a vote: the votes come from the program's
 * other blocks, and a block that big may be the one it touches sparsely; so a
 * wrong guess costs at most that much memory, and the time moved into malloc stays
 * bounded too (populating 64 MiB took 15-20 ms here). */
#define NM_DENSE_VOTES   2
#define NM_DENSE_MAX     4
#define NM_JUDGE_EVERY   8
#define NM_JUDGE_WINDOW  256           /* pages a mincore call covers (its vector is on the stack) */
#define NM_JUDGE_WINDOWS 16
#define NM_POPULATE_MAX  ((size_t)64 << 20)

/* do dom's votes populate len new bytes? (never over NM_POPULATE_MAX) */
static bool votes_populate(uint32_t dom, size_t len)
{
    return nm_opt.prefault == NM_PREFAULT_AUTO && len <= NM_POPULATE_MAX &&
           nm_load_relaxed(&nm_domains[dom].dense_votes) >= NM_DENSE_VOTES;
}

/* judge the thread's pending mapping (see above) */
static void judge(nm_tcache_t *tc)
{
    char *map = tc->judge_map;
    tc->judge_map = NULL;
    unsigned char vec[NM_JUDGE_WINDOW];
    size_t pages = tc->judge_len / nm_os_page, windows = (pages + NM_JUDGE_WINDOW - 1) / NM_JUDGE_WINDOW;
    size_t step = windows > NM_JUDGE_WINDOWS ? windows / NM_JUDGE_WINDOWS : 1;
    size_t seen = 0, resident = 0;
    for (size_t w = 0; w < windows; w += step) {
        size_t first = w * NM_JUDGE_WINDOW, n = NM_MIN((size_t)NM_JUDGE_WINDOW, pages - first);
        if (!nm_os_mincore(map + first * nm_os_page, n * nm_os_page, vec)) return;   /* no vote */
        for (size_t i = 0; i < n; i++) resident += vec[i] & 1;
        seen += n;
    }
    nm_domain_t *dm = &nm_domains[tc->judge_dom];
    uint32_t v = nm_load_relaxed(&dm->dense_votes);
    if (resident * 4 >= seen * 3) {
        v = NM_MIN(v + 1, (uint32_t)NM_DENSE_MAX);
        nm_gstat_add(NM_C_large_judged_dense, 1);
    } else {
        v = resident * 4 < seen ? 0 : v - (v > 0);
        nm_gstat_add(NM_C_large_judged_sparse, 1);
    }
    nm_store_relaxed(&dm->dense_votes, v);
}

/* populate [p, p + len) of a mapping of dom (4 KiB pages, not strict) */
static void populate(char *p, size_t len)
{
    if (nm_os_advise(p, len, MADV_POPULATE_WRITE)) nm_gstat_add(NM_C_large_populated, len);
}

/* A cached mapping of domain dom for len bytes (alignment align), or NULL. Best fit:
 * the smallest one that holds len; one much larger is split and its tail stays in
 * the cache; if none holds len, the largest one of at least half of len is grown
 * with mremap (its pages are reused, only the new tail faults). Blocks of random
 * sizes (1-8 MiB in bench/ large-blocks) otherwise missed the cache one time in
 * five and paid fresh page faults. */
static nm_large_t *cache_take(uint32_t dom, size_t len, size_t align)
{
    nm_domain_t *dm = &nm_domains[dom];
    if (__atomic_load_n(&dm->cache, __ATOMIC_RELAXED) == NULL) return NULL;
    nm_domain_lock((uint32_t)(dm - nm_domains), &dm->large_lock);
    nm_large_t *best = NULL, *grow = NULL;
    for (nm_large_t *L = dm->cache; L; L = L->next) {
        if (((uintptr_t)L->map & (align - 1)) != 0) continue;
        if (L->map_len >= len) {
            if (best == NULL || L->map_len < best->map_len) best = L;
        } else if (remappable(L) && L->map_len >= len / 2 && (grow == NULL || L->map_len > grow->map_len)) {
            grow = L;
        }
    }
    nm_large_t *L = best ? best : grow;
    if (L == NULL) { nm_unlock(&dm->large_lock); return NULL; }
    cache_unlink_locked(dm, L);
    if (L == best && resizable(L)) {
        /* split off a tail worth keeping: the front keeps whole 2 MiB pages on THP,
         * whole page-map granules otherwise, so the tail starts on one as map_new's
         * mappings do (an interior free a little into it finds its entry) */
        size_t front = nm_align_up(len, L->backing == NM_BACK_THP ? NM_PAGE_2M : (size_t)NM_GRANULE);
        size_t tail = L->map_len > front ? L->map_len - front : 0;
        if (tail >= NM_MAX(len / 4, (size_t)NM_GRANULE)) {
            nm_large_t *T = nm_meta_alloc(sizeof *T);
            if (T) {
                *T = *L;
                T->map = L->map + front;
                T->user = T->map;
                T->map_len = tail;
                L->map_len = front;
                cache_push_locked(dm, T);
                nm_gstat_add(NM_C_large_cache_split, 1);
            }
        }
    }
    nm_unlock(&dm->large_lock);
    if (L == grow) {
        size_t new_len = L->backing == NM_BACK_THP ? nm_align_up(len, NM_PAGE_2M) : len;
        char *q = remap_block(L, new_len, align);          /* a move keeps the alignment asked for */
        if (q == NULL) {                                   /* keep it cached; map anew */
            nm_domain_lock((uint32_t)(dm - nm_domains), &dm->large_lock);
            cache_push_locked(dm, L);
            nm_unlock(&dm->large_lock);
            return NULL;
        }
        nm_pagemap_set((uintptr_t)q, 0);                  /* the caller registers it */
        if (L->backing == NM_BACK_NORMAL && votes_populate(dom, new_len - L->map_len))
            populate(q + L->map_len, new_len - L->map_len);
        nm_footprint_add((int64_t)new_len - (int64_t)L->map_len);
        L->map = L->user = q;
        L->map_len = new_len;
        nm_gstat_add(NM_C_large_cache_grow, 1);
    }
    return L;
}

static nm_large_t *lcache_take(nm_tcache_t *tc, uint32_t dom, size_t len, size_t align);

static void lane_count(nm_tcache_t *tc, const nm_large_t *L, int freed);

/* L, taken from tc's slots (still registered), handed out for a request of `want` bytes */
static void *kept_out(nm_tcache_t *tc, nm_large_t *L, size_t want)
{
    L->req = want;                             /* (never in check mode: no canary to lay) */
    return L->user;
}

/* a block handed out from a node cache or a new mapping */
static void register_block(nm_tcache_t *tc, nm_large_t *L)
{
    nm_gstat_add_peak(NM_C_large_out_bytes, NM_C_large_peak_bytes, L->map_len);
    count_block(tc, L, 0);
}

/* a block going back to a node cache or the OS */
static void count_back(nm_large_t *L) { nm_gstat_sub(NM_C_large_out_bytes, L->map_len); }

void *nm_large_alloc(nm_tcache_t *tc, uint32_t dom, size_t n, size_t align, bool zero)
{
    if (align < nm_os_page) align = nm_os_page;
    if (n > PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
    size_t want = n;
    size_t len = nm_align_up(n + (nm_opt.check ? 1 : n == 0), nm_os_page);   /* check: canary room */
    if (len < n) { errno = ENOMEM; return NULL; }
    /* at least one page-map granule: then no two mappings start in the same granule
     * (numamalloc_alloc_onnode and big alignments bring small sizes here) */
    if (len < NM_GRANULE) len = NM_GRANULE;
    if (n < len) n = len;

    nm_large_t *L = tc->state == NM_T_ACTIVE ? lcache_take(tc, dom, len, align) : NULL;
    if (L) {                                   /* kept by this thread: still registered */
        if (zero) nm_zero_block(L->map, n);
        return kept_out(tc, L, want);
    }
    L = cache_take(dom, len, align);
    if (L) {
        nm_count(nm_tc_ctr(tc), NM_CT_THREAD, 0, NM_C_large_cache_hit, 1);
        if (zero && !L->zeroed) nm_zero_block(L->map, n);
    } else {
        size_t map_len = 0;
        int backing = NM_BACK_NORMAL, huge_fb = 0;
        if (tc->judge_map) judge(tc);                      /* its vote may decide this one */
        char *p = map_new(dom, n, align, &map_len, &backing, &huge_fb);
        if (p == NULL) { errno = ENOMEM; return NULL; }
        nm_count(nm_tc_ctr(tc), NM_CT_THREAD, 0, NM_C_large_cache_miss, 1);
        L = nm_meta_alloc(sizeof *L);
        if (L == NULL) { nm_os_unmap(p, map_len); errno = ENOMEM; return NULL; }
        if (backing != NM_BACK_HUGETLB_2M && backing != NM_BACK_HUGETLB_1G && !nm_domains[dom].strict) {
            if (nm_opt.prefault == NM_PREFAULT_ON) {
                nm_os_advise(p, map_len, MADV_POPULATE_WRITE);
            } else if (nm_opt.prefault == NM_PREFAULT_AUTO && backing == NM_BACK_NORMAL) {
                if (votes_populate(dom, map_len) &&
                    __atomic_add_fetch(&nm_domains[dom].new_maps, 1, __ATOMIC_RELAXED) % NM_JUDGE_EVERY) {
                    populate(p, map_len);
                } else if (tc->state == NM_T_ACTIVE) {           /* (not the read-only empty cache) */
                    tc->judge_map = p;
                    tc->judge_len = map_len;
                    tc->judge_dom = dom;
                }
            }
        }
        nm_footprint_add((int64_t)map_len);
        L->map = p;
        L->map_len = map_len;
        L->domain = dom;
        L->backing = (uint8_t)backing;
        L->huge_fb = (uint8_t)huge_fb;
        nm_add_relaxed(&nm_large_backing_total[backing], 1);
    }
    L->user = L->map;
    L->req = want;
    L->zeroed = 0;
    L->sampled = 0;
    unsigned kind = (L->backing == NM_BACK_HUGETLB_2M || L->backing == NM_BACK_HUGETLB_1G) ? NM_KIND_HUGE : NM_KIND_LARGE;
    if (!nm_pagemap_set((uintptr_t)L->user, nm_pme_make(kind, L->domain, 0, L))) {
        unmap_block(L);
        errno = ENOMEM;
        return NULL;
    }
    register_block(tc, L);
    if (nm_opt.check) nm_canary_fill(L->user, want, nm_large_usable(L));
    return L->user;
}

nm_verdict_t nm_large_verdict(const nm_large_t *L)
{
    return (nm_verdict_t){ .req = L->req, .bad = nm_canary_check(L->user, L->req, nm_large_usable(L)) };
}

size_t nm_large_usable(const nm_large_t *L) { return (size_t)(L->map + L->map_len - L->user); }



/* Unlink from the cache's old end every mapping freed at or before cutoff_ms
 * (UINT64_MAX: all), and then whatever exceeds NUMAMALLOC_LARGE_CACHE; returns them
 * as a list to unmap outside the lock. cutoff_ms 0 trims to the bound only. */
static nm_large_t *cache_trim_locked(nm_domain_t *dm, uint64_t cutoff_ms)
{
    nm_large_t *evict = NULL;
    while (dm->cache_tail && (dm->cache_bytes > nm_opt.large_cache ||
                              cutoff_ms == UINT64_MAX || dm->cache_tail->freed_ms <= cutoff_ms)) {
        nm_large_t *t = dm->cache_tail;
        dm->cache_tail = t->prev;
        if (t->prev) t->prev->next = NULL; else dm->cache = NULL;
        nm_sub_relaxed(&dm->cache_bytes, t->map_len);
        t->next = evict;
        evict = t;
    }
    return evict;
}

static void release_all(nm_large_t *evict)
{
    while (evict) {
        nm_large_t *t = evict;
        evict = t->next;
        nm_gstat_add(NM_C_large_cache_evict, 1);
        unmap_block(t);
    }
}

/* a freed mapping, out of the page map, into its node's cache (or unmapped) */
static void node_cache_put(nm_large_t *L)
{
    nm_domain_t *dm = &nm_domains[L->domain];
    if (L->map_len > nm_opt.large_cache || nm_opt.decay_ms == 0) { unmap_block(L); return; }
    L->freed_ms = nm_os_now_ms();
    L->zeroed = 0;
    nm_domain_lock((uint32_t)(dm - nm_domains), &dm->large_lock);
    cache_coalesce_locked(dm, L);
    cache_push_locked(dm, L);
    nm_large_t *evict = cache_trim_locked(dm, 0);
    nm_unlock(&dm->large_lock);
    release_all(evict);
}

/* ---- blocks kept by the thread that freed them ---------------------------------------
 * A thread that frees a large block often asks for one of about the same size next
 * (a scratch buffer per request, a buffer regrown): it keeps up to NM_LCACHE_SLOTS of
 * the blocks it freed, still registered in the page map (flagged tcached, so a second
 * free is refused as a double free), and serves its next large request one of them
 * fits from there: no domain lock, no best-fit scan, no page-map stores.
 * Any thread (a decay pass, malloc_trim, a forked child retiring the copy of a thread
 * that is not there) may take a block out of a slot, so nobody needs the owner's
 * cooperation and an idle thread's blocks still age out; it does so only by
 * exchanging the slot for NULL. A slot holding a block means the block is wholly
 * kept: tcached and the bytes counted are set before it is stored.
 * The owner's puts and takes would need two locked instructions a round trip for
 * that, a large part of a 2 MiB pair's cost; with membarrier(2) they use plain loads and
 * stores instead, inside a section (lc_enter/lc_leave), and the rare reclaimer pays
 * with a system call: it marks the thread (lc_reclaim), runs one membarrier (a full
 * barrier on every thread of the process), and takes the slots only if the owner is
 * not inside a section (lc_busy); an owner that sees the mark exchanges as above
 * (an asymmetric Dekker: either the owner's section and lc_busy are visible to the
 * reclaimer after the barrier, or the owner reads the mark). A reclaimer never waits
 * for an owner: one inside a section keeps its blocks until the next pass.
 * Bounds: only blocks of the thread's own domain, each at most half of
 * NUMAMALLOC_LARGE_CACHE, all threads' together at most half of it (counted apart
 * from the node caches, so that blocks an idle thread keeps never turn caching off
 * for the others), for at most NUMAMALLOC_DECAY_MS; off under NUMAMALLOC_CHECK=1,
 * where every free takes the validating path. */

/* a block taken out of a slot by anyone but its owner's allocation: no longer kept,
 * on its way to a node cache or the OS */
static void lcache_drop(nm_large_t *L)
{
    nm_gstat_sub(NM_C_large_tcache_bytes, L->map_len);
    count_back(L);
    L->tcached = 0;
}

void nm_large_pending_add(const nm_tcache_t *tc, nm_counters_t *c)
{
    uint32_t dom = __atomic_load_n(&tc->domain, __ATOMIC_RELAXED);
    int node = __atomic_load_n(&tc->cpu_node, __ATOMIC_RELAXED);
    for (int b = 0; b < NM_BACK_COUNT; b++) {
        uint64_t v[NM_BACKING_CTR_N];
        for (int k = 0; k < NM_BACKING_CTR_N; k++) v[k] = __atomic_load_n(&tc->lc_pend[k][b], __ATOMIC_RELAXED);
        if (v[NM_C_bk_alloc]) {                  /* every kept block taken is a cache hit */
            count_blocks(c, dom, b, node, v[NM_C_bk_alloc], v[NM_C_bk_abytes], 0);
            nm_count(c, NM_CT_THREAD, 0, NM_C_large_cache_hit, v[NM_C_bk_alloc]);
        }
        if (v[NM_C_bk_free]) count_blocks(c, dom, b, node, v[NM_C_bk_free], v[NM_C_bk_fbytes], 1);
    }
}

void nm_large_settle_owed(nm_tcache_t *tc)
{
    if (tc->lc_owed) nm_gstat_sub(NM_C_large_tcache_bytes, tc->lc_owed);
    tc->lc_owed = 0;
}

void nm_large_settle(nm_tcache_t *tc)
{
    nm_large_settle_owed(tc);
    uint64_t any = 0;
    for (int b = 0; b < NM_BACK_COUNT; b++) any |= tc->lc_pend[NM_C_bk_alloc][b] | tc->lc_pend[NM_C_bk_free][b];
    if (any == 0) return;
    nm_large_pending_add(tc, nm_tc_ctr(tc));
    memset(tc->lc_pend, 0, sizeof tc->lc_pend);
}

/* half a round trip of L (of the thread's domain) through the owner's slots,
 * counted at the next settle */
static void lane_count(nm_tcache_t *tc, const nm_large_t *L, int freed)
{
    tc->lc_pend[freed ? NM_C_bk_free : NM_C_bk_alloc][L->backing]++;
    tc->lc_pend[freed ? NM_C_bk_fbytes : NM_C_bk_abytes][L->backing] += L->map_len;
}

/* enter a section with plain slot accesses; false: exchange instead (no membarrier,
 * or a reclaimer marked the thread) */
NM_INLINE bool lc_enter(nm_tcache_t *tc)
{
    if (!lc_fence) return false;
    nm_store_relaxed(&tc->lc_busy, tc->lc_busy + 1);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);             /* the barrier is the reclaimer's */
    if (NM_LIKELY(nm_load_acquire(&tc->lc_reclaim) == 0)) return true;
    nm_store_release(&tc->lc_busy, tc->lc_busy - 1);
    return false;
}

NM_INLINE void lc_leave(nm_tcache_t *tc)
{
    nm_store_release(&tc->lc_busy, tc->lc_busy - 1);
}

bool nm_large_kept_mark(nm_tcache_t *tc)
{
    if (!lc_fence) return false;
    for (unsigned i = 0; i < NM_LCACHE_SLOTS; i++) {
        if (nm_load_relaxed(&tc->lcache[i]) != NULL) {
            nm_store_relaxed(&tc->lc_reclaim, 1);
            return true;
        }
    }
    return false;
}

bool nm_large_kept_fence(void) { return nm_os_membarrier(); }

size_t nm_large_kept_release(nm_tcache_t *tc, uint64_t cutoff_ms, bool fenced)
{
    if (!lc_fence) return nm_large_tcache_release(tc, cutoff_ms);
    if (nm_load_relaxed(&tc->lc_reclaim) == 0) return 0;   /* nothing kept when marking */
    size_t bytes = 0;
    if (fenced && nm_load_acquire(&tc->lc_busy) == 0) bytes = nm_large_tcache_release(tc, cutoff_ms);
    nm_store_release(&tc->lc_reclaim, 0);
    return bytes;
}

void nm_large_fork_child(nm_tcache_t *self)
{
    /* the child has one thread and a new mm, whose registration may be gone */
    if (lc_fence && !nm_os_membarrier_register()) lc_fence = 0;
    if (self) { self->lc_busy = 0; self->lc_reclaim = 0; }
}

static bool lcache_put(nm_tcache_t *tc, nm_large_t *L)
{
    if (tc->state != NM_T_ACTIVE || nm_opt.check || nm_opt.decay_ms == 0 ||
        L->domain != tc->domain || L->map_len > nm_opt.large_cache / 2)
        return false;
    uint64_t credit = NM_MIN(tc->lc_owed, L->map_len);
    if (nm_gstat_get(NM_C_large_tcache_bytes) + L->map_len - credit > nm_opt.large_cache / 2) return false;
    /* the thread's clock, not a clock read: that was 10 ns of a 46 ns 2 MiB pair. It
     * lags by at most the thread's last 32 slow events, so a block can only look
     * older than it is and go back early, never late */
    /* before another thread may take it; and before the flags: L->backing shares a word
     * with their byte, and read after that byte's store it waited for the store (a 2 MiB
     * pair spent a third of its time in this function on that load) */
    lane_count(tc, L, 1);
    L->freed_ms = tc->now_ms;
    L->tcached = 1;                                      /* (one byte with the two below) */
    L->zeroed = 0;                                       /* what its taker will find */
    L->sampled = 0;                                      /* (its free forgot it) */
    tc->lc_owed -= credit;
    if (credit < L->map_len) nm_gstat_add(NM_C_large_tcache_bytes, L->map_len - credit);
    /* an empty slot, else the one holding the oldest block */
    bool plain = lc_enter(tc);
    unsigned at = 0;
    uint64_t oldest = UINT64_MAX;
    for (unsigned i = 0; i < NM_LCACHE_SLOTS; i++) {
        nm_large_t *K = nm_load_acquire(&tc->lcache[i]);
        if (K == NULL) { at = i; break; }
        if (K->freed_ms < oldest) { oldest = K->freed_ms; at = i; }
    }
    nm_large_t *old;
    if (plain) {
        old = nm_load_relaxed(&tc->lcache[at]);
        nm_store_release(&tc->lcache[at], L);
        lc_leave(tc);
    } else {
        old = nm_xchg_acq_rel(&tc->lcache[at], L);
    }
    if (old) {                                           /* the oldest moves on */
        int saved = errno;                               /* (free's errno: a failed munmap) */
        lcache_drop(old);
        nm_pagemap_set((uintptr_t)old->user, 0);
        node_cache_put(old);
        errno = saved;
    }
    return true;
}

/* the newest kept block of domain dom that holds len bytes at alignment align and
 * wastes at most a quarter of it, or NULL */
static nm_large_t *lcache_take(nm_tcache_t *tc, uint32_t dom, size_t len, size_t align)
{
    bool plain = lc_enter(tc);
    nm_large_t *got = NULL;
    for (unsigned i = 0; i < NM_LCACHE_SLOTS; i++) {
        nm_large_t *L = nm_load_acquire(&tc->lcache[i]);
        if (L == NULL || L->domain != dom || L->map_len < len || L->map_len - len > len / 4 ||
            ((uintptr_t)L->map & (align - 1)) != 0)
            continue;
        if (plain) nm_store_relaxed(&tc->lcache[i], NULL);
        else if (!nm_cas_acq_rel(&tc->lcache[i], &L, NULL)) continue;   /* taken by a decay pass */
        got = L;
        break;
    }
    if (plain) lc_leave(tc);
    if (got) {
        lane_count(tc, got, 0);                          /* (counts the cache hit too, at the settle) */
        got->tcached = 0;                                /* (after: see lcache_put) */
        tc->lc_owed += got->map_len;                     /* still counted as kept */
    }
    return got;
}

size_t nm_large_tcache_release(nm_tcache_t *tc, uint64_t cutoff_ms)
{
    size_t bytes = 0;
    for (unsigned i = 0; i < NM_LCACHE_SLOTS; i++) {
        nm_large_t *L = nm_load_acquire(&tc->lcache[i]);
        if (L == NULL) continue;
        /* L may be taken (and even kept again) by its owner meanwhile: the exchange
         * decides; a stale look at freed_ms only makes a fresh block go early */
        if (cutoff_ms != UINT64_MAX && L->freed_ms > cutoff_ms) continue;
        if (!nm_cas_acq_rel(&tc->lcache[i], &L, NULL)) continue;
        lcache_drop(L);
        nm_pagemap_set((uintptr_t)L->user, 0);
        bytes += L->map_len;
        if (cutoff_ms == UINT64_MAX) {
            node_cache_put(L);                           /* still worth reusing */
        } else {
            nm_gstat_add(NM_C_large_cache_evict, 1);     /* aged out */
            unmap_block(L);
        }
    }
    return bytes;
}

/* ---- free, check, resize ------------------------------------------------------------- */

const char *nm_large_check(const nm_large_t *L, const void *p)
{
    if (p != L->user) return "interior pointer into a large block";
    if (L->tcached) return "large block already freed";
    return NULL;
}

void *nm_large_take_kept(nm_tcache_t *tc, size_t n)
{
    if (n > PTRDIFF_MAX) return NULL;
    size_t len = nm_align_up(n, nm_os_page);
    if (len < NM_GRANULE) len = NM_GRANULE;
    nm_large_t *L = lcache_take(tc, tc->domain, len, nm_os_page);
    return L ? kept_out(tc, L, n) : NULL;
}

bool nm_large_free_kept(nm_tcache_t *tc, nm_large_t *L, void *p)
{
    /* a bad pointer (reported there), and a sampled block, take nm_large_free */
    if (nm_large_check(L, p) != NULL || L->sampled) return false;
    /* one compare on the kept-block path: judging is a rare system call, taken only
     * for the thread's one pending new mapping */
    if (NM_UNLIKELY(tc->judge_map == L->map)) judge(tc);
    return lcache_put(tc, L);
}

void nm_large_free(nm_tcache_t *tc, nm_large_t *L, void *p)
{
    const char *why = nm_large_check(L, p);
    if (why) { nm_invalid_pointer("free", p, why); return; }
    if (NM_UNLIKELY(nm_opt.check) && !nm_verdict_ok("free", p, nm_large_verdict(L))) return;
    if (L->sampled) nm_prof_forget(p);
    if (NM_UNLIKELY(tc->judge_map == L->map)) judge(tc);    /* (never on the read-only empty cache) */
    if (lcache_put(tc, L)) return;
    count_block(tc, L, 1);
    count_back(L);
    nm_pagemap_set((uintptr_t)L->user, 0);
    node_cache_put(L);
}

void nm_large_decay(uint32_t dom, uint64_t cutoff_ms)
{
    nm_domain_t *dm = &nm_domains[dom];
    nm_domain_lock((uint32_t)(dm - nm_domains), &dm->large_lock);
    nm_large_t *evict = cache_trim_locked(dm, cutoff_ms);
    nm_unlock(&dm->large_lock);
    release_all(evict);
}

void *nm_large_resize(nm_tcache_t *tc, nm_large_t *L, void *p, size_t n)
{
    size_t len = nm_align_up(n, nm_os_page);
    if (len < n) return NULL;
    size_t usable = nm_large_usable(L);
    nm_counters_t *c = nm_tc_ctr(tc);
    if (n <= usable && len >= L->map_len / 2) {          /* fits, and wastes under half */
        L->req = n;
        nm_count(c, NM_CT_THREAD, 0, NM_C_realloc_inplace, 1);
        return p;
    }
    if (L->user != L->map || !remappable(L)) return NULL;
    if (tc->judge_map == L->map) tc->judge_map = NULL;   /* part old pages, part new: not judged */
    size_t new_len = L->backing == NM_BACK_THP ? nm_align_up(n, NM_PAGE_2M) : len;
    char *q = remap_block(L, new_len, nm_os_page);
    if (q == NULL) return NULL;
    /* counted as the old length freed and the new one allocated, same block */
    nm_footprint_add((int64_t)new_len - (int64_t)L->map_len);
    nm_count(c, NM_CT_DOMAIN, L->domain, NM_C_free_bytes, L->map_len);
    nm_count(c, NM_CT_DOMAIN, L->domain, NM_C_alloc_bytes, new_len);
    count_mappings(c, L->domain, L->backing, 1, L->map_len, 1);
    count_mappings(c, L->domain, L->backing, 1, new_len, 0);
    if (new_len > L->map_len) nm_gstat_add_peak(NM_C_large_out_bytes, NM_C_large_peak_bytes, new_len - L->map_len);
    else nm_gstat_sub(NM_C_large_out_bytes, L->map_len - new_len);
    L->map = L->user = q;
    L->map_len = new_len;
    L->req = n;
    nm_gstat_add(NM_C_large_mremap, 1);
    nm_count(c, NM_CT_THREAD, 0, NM_C_realloc_inplace, 1);
    return q;
}
