/* numamalloc — large blocks: one NUMA-bound mapping each, on huge pages when we can.
 *
 * A request of at least NUMAMALLOC_LARGE_THRESHOLD (default 1 MiB: below it the
 * fallback arena packs blocks without per-block system calls; at it, a mapping of
 * its own lets the block sit on its node and be released whole) gets, in order:
 *   1. MAP_HUGETLB pages (1 GiB with NUMAMALLOC_HUGEPAGES=1g when the size allows,
 *      else 2 MiB) if the target node's free_hugepages covers it. Reservations are
 *      global, so a mapping bound to a node without free pages would mmap fine and
 *      SIGBUS on first touch; we check the node, mbind before touching, and fault
 *      the pages in with MADV_POPULATE_WRITE, which returns an error instead of a
 *      signal. No SIGBUS, ever: a failure unmaps and falls through.
 *   2. a 2 MiB-aligned mapping with madvise(MADV_HUGEPAGE) (THP in madvise mode);
 *   3. normal 4 KiB pages.
 * Sizes under 2 MiB, or whose rounding to 2 MiB would waste more than 1/8, stay on
 * normal pages. Every step down is counted by reason (stats.h NM_FALLBACK_REASONS).
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
 * Lock: nm_domain_t.large_lock guards the domain's cache list and cache_bytes
 * (cache_bytes is also read without it, so it is written with relaxed atomics). */
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

static long pool_2m = -1, pool_1g = -1;         /* global hugetlb pool sizes, refreshed */
static uint64_t pool_checked_ms;

void nm_large_init(void)
{
    char buf[128];
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

/* per-thread counters of a large block's mapping coming (sign > 0) or going */
static void count_backing(nm_tcache_t *tc, uint32_t dom, int backing, size_t len, int sign)
{
    nm_count_thread(tc, (sign > 0 ? NM_C_bk_alloc_4k : NM_C_bk_free_4k) + backing, 1);
    nm_count_thread(tc, (sign > 0 ? NM_C_bk_abytes_4k : NM_C_bk_fbytes_4k) + backing, len);
    if (backing == NM_BACK_HUGETLB_2M || backing == NM_BACK_HUGETLB_1G)
        nm_count_domain(tc, dom, sign > 0 ? NM_C_hugetlb_alloc_bytes : NM_C_hugetlb_free_bytes, len);
    else if (backing == NM_BACK_THP)
        nm_count_domain(tc, dom, sign > 0 ? NM_C_thp_alloc_bytes : NM_C_thp_free_bytes, len);
}

/* does domain dom have `pages` free hugetlb pages of size_kb? */
static bool node_has_free_huge(uint32_t dom, size_t pages, unsigned long size_kb)
{
    int node = nm_domain_node(dom);
    if (node >= 0 || !nm_topo.sysfs) {
        long f = nm_topo_free_hugepages(nm_topo.sysfs ? node : -1, size_kb);
        return f >= 0 && (size_t)f >= pages;
    }
    /* interleaved: every node with memory must take its share */
    size_t share = (pages + (size_t)nm_topo.nmem - 1) / (size_t)nm_topo.nmem;
    for (int n = 0; n <= nm_topo.max_node; n++) {
        if (!nm_topo_has_memory(n)) continue;
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

static char *map_new(uint32_t dom, size_t n, size_t align, size_t *len_out, int *backing)
{
    size_t len = nm_align_up(n, nm_os_page);
    size_t len2m = nm_align_up(n, NM_PAGE_2M);
    int mode = nm_opt.hugepages;
    char *p = NULL;

    if (mode == NM_HUGE_OFF) {
        if (len >= NM_PAGE_2M) nm_fallback_count(NM_FB_HUGE_OFF, 0);
    } else if (len < NM_PAGE_2M) {
        nm_fallback_count(NM_FB_SIZE_TOO_SMALL, 0);
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
                    nm_fallback_count(reason, err);
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
            nm_fallback_count(reason, err);
        }
        if (mode == NM_HUGE_AUTO || mode == NM_HUGE_THP || mode == NM_HUGE_1G) {
            if (nm_thp_mode == 0) {
                nm_fallback_count(NM_FB_THP_DISABLED, 0);
            } else {
                /* 2 MiB-aligned start; the 2 MiB ranges inside get huge pages, a tail
                 * under 2 MiB stays on 4 KiB pages: nothing is rounded up or wasted */
                p = nm_os_map_aligned(len, NM_MAX(align, NM_PAGE_2M), LARGE_MAP_FLAGS);
                if (p == NULL) return NULL;
                nm_policy_bind(dom, p, len);
                *len_out = len;
                if (nm_os_advise(p, len, MADV_HUGEPAGE)) { *backing = NM_BACK_THP; return p; }
                nm_fallback_count(NM_FB_THP_MADVISE, nm_os_last_errno[NM_OS_MADVISE]);
                *backing = NM_BACK_NORMAL;
                return p;
            }
        }
    }
    p = nm_os_map_aligned(len, NM_MAX(align, nm_os_page), LARGE_MAP_FLAGS);
    if (p == NULL) return NULL;
    nm_policy_bind(dom, p, len);
    *len_out = len;
    *backing = NM_BACK_NORMAL;
    return p;
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
    if (L->backing == NM_BACK_THP && align < NM_PAGE_2M) align = NM_PAGE_2M;
    if (align < nm_os_page) align = nm_os_page;
    char *dest = nm_os_map_aligned(new_len, align, MAP_NORESERVE);
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
/* ... and mremap can resize it: one VMA as far as we know */
static bool remappable(const nm_large_t *L) { return resizable(L) && !L->multi_vma; }

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
    nm_lock(&dm->large_lock);
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
        /* split off a tail worth keeping: the front keeps whole 2 MiB pages on THP */
        size_t front = L->backing == NM_BACK_THP ? nm_align_up(len, NM_PAGE_2M) : len;
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
            nm_lock(&dm->large_lock);
            cache_push_locked(dm, L);
            nm_unlock(&dm->large_lock);
            return NULL;
        }
        nm_pagemap_set((uintptr_t)q, 0);                  /* the caller registers it */
        nm_footprint_add((int64_t)new_len - (int64_t)L->map_len);
        L->map = L->user = q;
        L->map_len = new_len;
        nm_gstat_add(NM_C_large_cache_grow, 1);
    }
    return L;
}

static nm_large_t *lcache_take(nm_tcache_t *tc, uint32_t dom, size_t len, size_t align);

/* counter ids of a large block handed out [0] and freed [1] */
static const struct large_ids {
    int n, bytes, bk_n, bk_bytes, dom_n, dom_bytes, dom_huge, dom_thp;
} large_ids[2] = {
    { NM_C_large_alloc, NM_C_large_alloc_bytes, NM_C_bk_alloc_4k, NM_C_bk_abytes_4k,
      NM_C_alloc_count, NM_C_alloc_bytes, NM_C_hugetlb_alloc_bytes, NM_C_thp_alloc_bytes },
    { NM_C_large_free, NM_C_large_free_bytes, NM_C_bk_free_4k, NM_C_bk_fbytes_4k,
      NM_C_free_count, NM_C_free_bytes, NM_C_hugetlb_free_bytes, NM_C_thp_free_bytes },
};

/* the thread and domain counters of a large block handed out or freed: one test for
 * a started thread, which writes its own counters directly (the usual case) */
NM_INLINE void count_large(nm_tcache_t *tc, const nm_large_t *L, int freed)
{
    const struct large_ids *id = &large_ids[freed];
    size_t len = L->map_len;
    uint32_t dom = L->domain;
    int b = L->backing;
    int huge = b == NM_BACK_HUGETLB_2M || b == NM_BACK_HUGETLB_1G ? id->dom_huge : b == NM_BACK_THP ? id->dom_thp : -1;
    bool remote = !freed && tc && dom != nm_dom_interleave && (int)dom != tc->cpu_node;
    if (NM_LIKELY(tc && tc->state == NM_T_ACTIVE && tc->ctr.dom)) {
        uint64_t *t = tc->ctr.thr, *d = &tc->ctr.dom[dom * NM_DOMAIN_CTR_N];
        t[id->n]++;
        t[id->bytes] += len;
        t[id->bk_n + b]++;
        t[id->bk_bytes + b] += len;
        d[id->dom_n]++;
        d[id->dom_bytes] += len;
        if (huge >= 0) d[huge] += len;
        if (remote) d[NM_C_remote_alloc]++;
        return;
    }
    nm_count_thread(tc, id->n, 1);
    nm_count_thread(tc, id->bytes, len);
    nm_count_thread(tc, id->bk_n + b, 1);
    nm_count_thread(tc, id->bk_bytes + b, len);
    nm_count_domain(tc, dom, id->dom_n, 1);
    nm_count_domain(tc, dom, id->dom_bytes, len);
    if (huge >= 0) nm_count_domain(tc, dom, huge, len);
    if (remote) nm_count_domain(tc, dom, NM_C_remote_alloc, 1);
}

static void register_block(nm_tcache_t *tc, nm_large_t *L)
{
    nm_gstat_max(NM_C_large_peak_bytes, __atomic_add_fetch(&nm_gctr[NM_C_large_live_bytes], L->map_len, __ATOMIC_RELAXED));
    count_large(tc, L, 0);
}

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

    nm_large_t *L = tc && tc->lcount ? lcache_take(tc, dom, len, align) : NULL;
    if (L) {                                   /* kept by this thread: still registered */
        nm_count_thread(tc, NM_C_large_cache_hit, 1);
        if (zero) memset(L->map, 0, n);
        L->req = want;                         /* (never in check mode: no canary to lay) */
        L->zeroed = 0;
        L->sampled = 0;
        register_block(tc, L);
        return L->user;
    }
    L = cache_take(dom, len, align);
    if (L) {
        nm_count_thread(tc, NM_C_large_cache_hit, 1);
        if (zero && !L->zeroed) memset(L->map, 0, n);
    } else {
        nm_count_thread(tc, NM_C_large_cache_miss, 1);
        size_t map_len = 0;
        int backing = NM_BACK_NORMAL;
        char *p = map_new(dom, n, align, &map_len, &backing);
        if (p == NULL && nm_reclaim(tc)) p = map_new(dom, n, align, &map_len, &backing);   /* see nm_reclaim */
        if (p == NULL) { errno = ENOMEM; return NULL; }
        if (nm_opt.prefault && backing != NM_BACK_HUGETLB_2M && backing != NM_BACK_HUGETLB_1G)
            nm_os_advise(p, map_len, MADV_POPULATE_WRITE);
        L = nm_meta_alloc(sizeof *L);
        if (L == NULL) { nm_os_unmap(p, map_len); errno = ENOMEM; return NULL; }
        nm_footprint_add((int64_t)map_len);
        L->map = p;
        L->map_len = map_len;
        L->domain = dom;
        L->backing = (uint8_t)backing;
        __atomic_fetch_add(&nm_large_backing_total[backing], 1, __ATOMIC_RELAXED);
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


/* the counters of a free (the page-map entry is cleared by whoever gives the mapping
 * up: a block kept by its thread stays registered) */
static void count_unregister(nm_tcache_t *tc, nm_large_t *L)
{
    nm_gstat_sub(NM_C_large_live_bytes, L->map_len);
    count_large(tc, L, 1);
}

/* Unlink from the cache's old end every mapping freed at or before cutoff_ms
 * (UINT64_MAX: all), and then whatever exceeds NUMAMALLOC_LARGE_CACHE; returns them
 * as a list to unmap outside the lock. cutoff_ms 0 trims to the bound only. */
static nm_large_t *cache_trim_locked(nm_domain_t *dm, uint64_t cutoff_ms)
{
    nm_large_t *evict = NULL;
    /* the bound covers what threads keep too (see lcache_put) */
    size_t kept = (size_t)nm_gstat_get(NM_C_large_tcache_bytes);
    while (dm->cache_tail && (dm->cache_bytes + kept > nm_opt.large_cache ||
                              cutoff_ms == UINT64_MAX || dm->cache_tail->freed_ms <= cutoff_ms)) {
        nm_large_t *t = dm->cache_tail;
        dm->cache_tail = t->prev;
        if (t->prev) t->prev->next = NULL; else dm->cache = NULL;
        __atomic_fetch_sub(&dm->cache_bytes, t->map_len, __ATOMIC_RELAXED);
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
    nm_lock(&dm->large_lock);
    cache_coalesce_locked(dm, L);
    cache_push_locked(dm, L);
    nm_large_t *evict = cache_trim_locked(dm, 0);
    nm_unlock(&dm->large_lock);
    release_all(evict);
}

/* ---- the freeing thread's own cache ---------------------------------------------------
 * A thread that frees a large block often asks for one of about the same size next
 * (a scratch buffer per request, a buffer regrown): it keeps up to NM_LCACHE_SLOTS of
 * the blocks it freed, still registered in the page map (flagged tcached, so a second
 * free is refused as a double free), and serves its next large request one of them
 * fits from there: no domain lock, no best-fit scan, no page-map stores (bench/
 * pairs-2M: ~800 instructions a pair through the node's cache). A block goes on to
 * its node's cache when a newer one needs the slot, at the thread's decay check once
 * it sat NUMAMALLOC_DECAY_MS, at thread exit and on malloc_trim in that thread. Only
 * blocks of the thread's own domain, each at most half of NUMAMALLOC_LARGE_CACHE;
 * off under NUMAMALLOC_CHECK=1, where every free takes the validating path. */

/* remove slot i, keeping the others in order (oldest first) */
static void lcache_drop(nm_tcache_t *tc, unsigned i)
{
    memmove(&tc->lcache[i], &tc->lcache[i + 1], (tc->lcount - i - 1) * sizeof tc->lcache[0]);
    tc->lcount--;
}

static void lcache_release(nm_large_t *L)
{
    nm_gstat_sub(NM_C_large_tcache_bytes, L->map_len);
    L->tcached = 0;
    nm_pagemap_set((uintptr_t)L->user, 0);
    node_cache_put(L);
}

static bool lcache_put(nm_tcache_t *tc, nm_large_t *L)
{
    if (tc == NULL || tc->state != NM_T_ACTIVE || nm_opt.check || nm_opt.decay_ms == 0 ||
        L->domain != tc->domain || L->map_len > nm_opt.large_cache / 2)
        return false;
    /* what threads keep counts against NUMAMALLOC_LARGE_CACHE with the node's cache:
     * unbounded, 16 threads of bench/ pareto-16t kept 45 MB more resident */
    if (nm_gstat_get(NM_C_large_tcache_bytes) + __atomic_load_n(&nm_domains[L->domain].cache_bytes, __ATOMIC_RELAXED) +
        L->map_len > nm_opt.large_cache)
        return false;
    if (tc->lcount == NM_LCACHE_SLOTS) {                 /* the oldest moves on */
        nm_large_t *old = tc->lcache[0];
        lcache_drop(tc, 0);
        lcache_release(old);
    }
    L->freed_ms = nm_os_now_ms();
    L->tcached = 1;
    tc->lcache[tc->lcount++] = L;
    nm_gstat_add(NM_C_large_tcache_bytes, L->map_len);
    return true;
}

/* the newest kept block of domain dom that holds len bytes at alignment align and
 * wastes at most a quarter of it, or NULL */
static nm_large_t *lcache_take(nm_tcache_t *tc, uint32_t dom, size_t len, size_t align)
{
    for (unsigned i = tc->lcount; i-- > 0;) {
        nm_large_t *L = tc->lcache[i];
        if (L->domain != dom || L->map_len < len || L->map_len - len > len / 4 || ((uintptr_t)L->map & (align - 1)) != 0)
            continue;
        lcache_drop(tc, i);
        nm_gstat_sub(NM_C_large_tcache_bytes, L->map_len);
        L->tcached = 0;
        return L;
    }
    return NULL;
}

void nm_large_tcache_flush(nm_tcache_t *tc, uint64_t cutoff_ms)
{
    for (unsigned i = 0; i < tc->lcount;) {
        nm_large_t *L = tc->lcache[i];
        if (cutoff_ms != UINT64_MAX && L->freed_ms > cutoff_ms) { i++; continue; }
        lcache_drop(tc, i);
        lcache_release(L);
    }
}

void nm_large_free(nm_tcache_t *tc, nm_large_t *L, void *p)
{
    if (p != L->user) { nm_invalid_pointer("free", p, "interior pointer into a large block"); return; }
    if (L->tcached) { nm_invalid_pointer("free", p, "double free of a large block"); return; }
    if (NM_UNLIKELY(nm_opt.check) && !nm_verdict_ok("free", p, nm_large_verdict(L))) return;
    if (L->sampled) nm_prof_forget(p);
    count_unregister(tc, L);
    if (lcache_put(tc, L)) return;
    nm_pagemap_set((uintptr_t)L->user, 0);
    node_cache_put(L);
}

void nm_large_decay(uint32_t dom, uint64_t cutoff_ms)
{
    nm_domain_t *dm = &nm_domains[dom];
    nm_lock(&dm->large_lock);
    nm_large_t *evict = cache_trim_locked(dm, cutoff_ms);
    nm_unlock(&dm->large_lock);
    release_all(evict);
}

void *nm_large_realloc(nm_tcache_t *tc, nm_large_t *L, void *p, size_t n)
{
    size_t len = nm_align_up(n, nm_os_page);
    if (len < n) { errno = ENOMEM; return NULL; }
    size_t usable = nm_large_usable(L);
    if (n <= usable && len >= L->map_len / 2) {          /* fits, and wastes under half */
        L->req = n;
        nm_count_thread(tc, NM_C_realloc_inplace, 1);
        return p;
    }
    bool can_remap = L->user == L->map && remappable(L);
    if (can_remap) {
        size_t new_len = L->backing == NM_BACK_THP ? nm_align_up(n, NM_PAGE_2M) : len;
        char *q = remap_block(L, new_len, nm_os_page);
        if (q != NULL) {
            /* counted as the old length freed and the new one allocated, same block */
            nm_footprint_add((int64_t)new_len - (int64_t)L->map_len);
            nm_count_thread(tc, NM_C_large_free_bytes, L->map_len);
            nm_count_thread(tc, NM_C_large_alloc_bytes, new_len);
            nm_count_domain(tc, L->domain, NM_C_free_bytes, L->map_len);
            nm_count_domain(tc, L->domain, NM_C_alloc_bytes, new_len);
            count_backing(tc, L->domain, L->backing, L->map_len, -1);
            count_backing(tc, L->domain, L->backing, new_len, +1);
            if (new_len > L->map_len)
                nm_gstat_max(NM_C_large_peak_bytes, __atomic_add_fetch(&nm_gctr[NM_C_large_live_bytes], new_len - L->map_len, __ATOMIC_RELAXED));
            else
                nm_gstat_sub(NM_C_large_live_bytes, L->map_len - new_len);
            L->map = L->user = q;
            L->map_len = new_len;
            L->req = n;
            nm_gstat_add(NM_C_large_mremap, 1);
            nm_count_thread(tc, NM_C_realloc_inplace, 1);
            return q;
        }
    }
    void *q = nm_large_alloc(tc, L->domain, n, 0, false);
    if (q == NULL) return NULL;
    memcpy(q, p, NM_MIN(usable, n));
    nm_large_free(tc, L, p);
    nm_count_thread(tc, NM_C_realloc_move, 1);
    return q;
}
