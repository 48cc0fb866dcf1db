/* tests/unit/test_large_cache.c — large mappings and their caches (src/large.c),
 * driven through nm_large_alloc / nm_large_free / nm_large_resize /
 * nm_large_tcache_release / nm_large_decay with the calling thread's cache.
 *
 * Owns: what a large block looks like in the page map (kind LARGE or HUGE at the
 * granule of the pointer only, which every block starts on, whether newly mapped,
 * split off or moved) and its usable size after every operation; the
 * blocks a thread keeps (two slots, the oldest moving on, the waste and byte bounds,
 * double frees seen while kept); the node cache (best fit, a split leaving the
 * tail cached, no split for a small remainder, neighbours merged whether they came
 * from one mapping or two, a cached mapping grown by mremap for a larger request,
 * alignment); nm_large_resize (in place when it fits, grown in place when the next
 * range is free, moved when it is not, shrunk by mremap below half); decay and
 * release with their cutoffs, down to the OS; THP splits keeping whole 2 MiB pages;
 * hugetlb blocks never split, merged or grown.
 *
 * Each Criterion test is its own process and boots a fresh allocator, never used
 * through malloc here, so its caches hold only what a test puts in them. New
 * mappings are counted with nm_large_backing_total; whether a range is mapped is
 * asked with msync, whether it is free with a MAP_FIXED_NOREPLACE mapping (the
 * tests are single-threaded: nothing else maps in between). */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/mman.h>

#include "numamalloc/internal.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

static nm_tcache_t *tc;
static uint32_t dom;
static nm_domain_t *dm;

static void boot(void)
{
    cr_assert(nm_process_init(), "allocator boot");
    tc = nm_thread_cache();
    cr_assert(tc != NULL && tc->state == NM_T_ACTIVE, "thread start");
    dom = tc->domain;
    cr_assert_lt(dom, nm_ndomains);
    dm = &nm_domains[dom];
    /* 4 KiB pages whatever the environment or the machine's hugetlb pool: these
     * tests are about the caches (the THP and hugetlb tests set what they need) */
    nm_opt.hugepages = NM_HUGE_OFF;
    nm_opt.thp_fallback = false;
    nm_opt.check = false;
    nm_opt.prefault = NM_PREFAULT_OFF;
    nm_opt.decay_ms = 1000;
    nm_opt.large_cache = 64 * MiB;
    cr_assert_null(dm->cache, "node cache not fresh");
    cr_assert_eq(dm->cache_bytes, 0);
    for (unsigned i = 0; i < NM_LCACHE_SLOTS; i++) cr_assert_null(tc->lcache[i]);
}

static uint64_t mappings(void)
{
    uint64_t n = 0;
    for (unsigned b = 0; b < NM_BACK_COUNT; b++) n += __atomic_load_n(&nm_large_backing_total[b], __ATOMIC_RELAXED);
    return n;
}

static uint64_t thr(int id) { return tc->ctr.thr[id]; }

/* the thread's round trips through its slots not yet settled, as a dump adds them */
static nm_counters_t pending(void)
{
    static uint64_t dom[64 * NM_DOMAIN_CTR_N];
    cr_assert_leq(nm_ndomains, 64);
    memset(dom, 0, sizeof dom);
    nm_counters_t c = { .dom = dom };
    nm_large_pending_add(tc, &c);
    return c;
}

/* large allocations served from a cache: the thread's count and its kept blocks
 * taken since the last settle, as a dump adds them */
static uint64_t hits(void) { return thr(NM_C_large_cache_hit) + pending().thr[NM_C_large_cache_hit]; }

/* large blocks and bytes live (the per-backing counters, the thread's, its pending
 * ones and the global copy: what the dump reports) */
static uint64_t bk_live(int alloc, int freed)
{
    nm_counters_t p = pending();
    uint64_t n = 0;
    for (unsigned b = 0; b < NM_BACK_COUNT; b++)
        n += tc->ctr.bk[alloc][b] + p.bk[alloc][b] + nm_global_ctr.bk[alloc][b]
           - tc->ctr.bk[freed][b] - p.bk[freed][b] - nm_global_ctr.bk[freed][b];
    return n;
}
static uint64_t live_blocks(void) { return bk_live(NM_C_bk_alloc, NM_C_bk_free); }
static uint64_t live_bytes_now(void) { return bk_live(NM_C_bk_abytes, NM_C_bk_fbytes); }

/* bytes the threads keep: the global count less what this thread took back and still
 * owes it (it is the only thread here) */
static uint64_t kept(void) { return nm_gstat_get(NM_C_large_tcache_bytes) - tc->lc_owed; }

static bool mapped(const void *p)
{
    return msync((void *)((uintptr_t)p & ~(uintptr_t)4095), 4096, MS_ASYNC) == 0;
}

/* is [a, a + n) free address space? (mapped there and unmapped again) */
static bool range_free(char *a, size_t n)
{
    void *q = mmap(a, n, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (q == MAP_FAILED) return false;
    munmap(q, n);
    return q == a;                                 /* kernels before 4.17 took the flag as a hint */
}

static nm_large_t *desc(const void *p)
{
    nm_pme_t e = nm_pagemap_get((uintptr_t)p);
    cr_assert(nm_pme_kind(e) == NM_KIND_LARGE || nm_pme_kind(e) == NM_KIND_HUGE, "%p: kind %u", p, nm_pme_kind(e));
    return nm_pme_desc(e);
}

/* p is a live block of at least n bytes: registered at its own granule only, usable
 * to the end of its mapping, writable throughout */
static nm_large_t *check_live(char *p, size_t n)
{
    nm_pme_t e = nm_pagemap_get((uintptr_t)p);
    nm_large_t *L = nm_pme_desc(e);
    unsigned kind = (L && (L->backing == NM_BACK_HUGETLB_2M || L->backing == NM_BACK_HUGETLB_1G)) ? NM_KIND_HUGE : NM_KIND_LARGE;
    cr_assert_eq(nm_pme_kind(e), kind, "%p: kind %u", (void *)p, nm_pme_kind(e));
    cr_assert_eq(nm_pme_domain(e), dom);
    cr_assert_eq(L->user, p);
    cr_assert_eq(L->map, p);
    cr_assert_eq(L->domain, dom);
    cr_assert_eq(L->tcached, 0);
    cr_assert_null(nm_large_check(L, p));
    cr_assert_geq(nm_large_usable(L), n, "usable %zu < %zu", nm_large_usable(L), n);
    cr_assert_eq(nm_large_usable(L), L->map_len);
    cr_assert_eq(L->map_len % nm_os_page, 0);
    cr_assert_eq((uintptr_t)p % NM_GRANULE, 0, "large blocks start on a page-map granule");
    for (size_t off = NM_GRANULE; off < L->map_len; off += NM_GRANULE)
        cr_assert_eq(nm_pagemap_get((uintptr_t)p + off), 0, "granule +%zu registered: only the pointer's is", off);
    memset(p, 0x3c, L->map_len);
    return L;
}

/* the node cache: linked both ways, bytes summed, nothing registered, nothing
 * overlapping, everything mapped; returns how many mappings it holds */
static unsigned check_cache(void)
{
    unsigned n = 0;
    size_t bytes = 0;
    nm_large_t *prev = NULL;
    for (nm_large_t *X = dm->cache; X; prev = X, X = X->next, n++) {
        cr_assert_eq(X->prev, prev);
        cr_assert_eq(X->domain, dom);
        cr_assert_eq(X->tcached, 0);
        cr_assert_eq(X->user, X->map);
        cr_assert_eq(nm_pagemap_get((uintptr_t)X->map), 0, "cached mapping %p still in the page map", (void *)X->map);
        cr_assert(mapped(X->map) && mapped(X->map + X->map_len - 1), "cached mapping %p not mapped", (void *)X->map);
        for (nm_large_t *Y = dm->cache; Y != X; Y = Y->next)
            cr_assert(X->map + X->map_len <= Y->map || Y->map + Y->map_len <= X->map, "cached mappings overlap");
        bytes += X->map_len;
    }
    cr_assert_eq(dm->cache_tail, prev);
    cr_assert_eq(bytes, dm->cache_bytes, "cache_bytes %zu, mappings add up to %zu", dm->cache_bytes, bytes);
    return n;
}

/* the cached mapping holding address p, or NULL */
static nm_large_t *cached_holding(const char *p)
{
    for (nm_large_t *X = dm->cache; X; X = X->next)
        if (p >= X->map && p < X->map + X->map_len) return X;
    return NULL;
}

/* the cached mapping starting at p, or NULL */
static nm_large_t *cached_at(const char *p)
{
    for (nm_large_t *X = dm->cache; X; X = X->next)
        if (X->map == p) return X;
    return NULL;
}

static char *alloc(size_t n)
{
    char *p = nm_large_alloc(tc, dom, n, 0, false);
    cr_assert_not_null(p, "large block of %zu", n);
    check_live(p, n);
    return p;
}

/* free p; it stays with the thread (registered, flagged) */
static void free_kept(char *p)
{
    nm_large_t *L = desc(p);
    nm_large_free(tc, L, p);
    cr_assert_eq(L->tcached, 1, "%p not kept by its thread", (void *)p);
    cr_assert_eq(nm_pagemap_get((uintptr_t)p) & NM_PME_DESC_MASK, (uintptr_t)L, "a kept block stays registered");
}

/* free p into the node cache: freed, then everything the thread keeps goes there */
static void free_node(char *p)
{
    nm_large_free(tc, desc(p), p);
    nm_large_tcache_release(tc, UINT64_MAX);
    for (unsigned i = 0; i < NM_LCACHE_SLOTS; i++) cr_assert_null(tc->lcache[i]);
    cr_assert_eq(nm_pagemap_get((uintptr_t)p), 0, "a block in the node cache is out of the page map");
    check_cache();
}

/* ---- a block and the thread that frees it ------------------------------------------ */

Test(large, a_new_block_is_registered_and_counted, .init = boot)
{
    uint64_t maps = mappings(), miss = thr(NM_C_large_cache_miss);
    uint64_t live = live_blocks(), live_bytes = live_bytes_now();
    uint64_t fp = nm_gstat_get(NM_C_footprint);
    char *p = alloc(MiB + 1);
    nm_large_t *L = desc(p);
    cr_assert_eq(L->map_len, MiB + nm_os_page, "rounded up to whole pages");
    cr_assert_eq(L->req, MiB + 1);
    cr_assert_eq(L->backing, NM_BACK_NORMAL);
    cr_assert_eq(mappings(), maps + 1);
    cr_assert_eq(thr(NM_C_large_cache_miss), miss + 1);
    cr_assert_eq(live_blocks(), live + 1);
    cr_assert_eq(live_bytes_now(), live_bytes + L->map_len);
    cr_assert_eq(nm_gstat_get(NM_C_footprint), fp + L->map_len);

    /* small requests still get a whole granule: no two mappings share a page-map entry */
    char *q = alloc(100);
    cr_assert_eq(desc(q)->map_len, NM_GRANULE);
    cr_assert_neq(p, q);
}

/* round trips through the thread's slots are counted at its next settle, and a dump
 * reading the thread before that adds them: each exactly once */
Test(large, round_trips_through_the_slots_are_counted_once, .init = boot)
{
    char *p = alloc(MiB);
    free_kept(p);
    nm_large_settle(tc);
    nm_large_t *L = desc(p);
    unsigned b = L->backing;
    uint64_t *d = &tc->ctr.dom[dom * NM_DOMAIN_CTR_N];
    uint64_t allocs = tc->ctr.bk[NM_C_bk_alloc][b], frees = tc->ctr.bk[NM_C_bk_free][b];
    uint64_t abytes = tc->ctr.bk[NM_C_bk_abytes][b], dallocs = d[NM_C_alloc_count], dfrees = d[NM_C_free_count];
    for (int i = 0; i < 5; i++) {
        cr_assert_eq(alloc(MiB), p, "served from the slot");
        free_kept(p);
    }
    cr_assert_eq(tc->ctr.bk[NM_C_bk_alloc][b], allocs, "not counted one by one");
    nm_counters_t pend = pending();
    cr_assert_eq(pend.bk[NM_C_bk_alloc][b], 5);
    cr_assert_eq(pend.bk[NM_C_bk_free][b], 5);
    cr_assert_eq(pend.bk[NM_C_bk_abytes][b], 5 * L->map_len);
    cr_assert_eq(pend.dom[dom * NM_DOMAIN_CTR_N + NM_C_alloc_count], 5);
    cr_assert_eq(pend.dom[dom * NM_DOMAIN_CTR_N + NM_C_free_bytes], 5 * L->map_len);

    nm_large_settle(tc);
    cr_assert_eq(tc->ctr.bk[NM_C_bk_alloc][b], allocs + 5);
    cr_assert_eq(tc->ctr.bk[NM_C_bk_free][b], frees + 5);
    cr_assert_eq(tc->ctr.bk[NM_C_bk_abytes][b], abytes + 5 * L->map_len);
    cr_assert_eq(d[NM_C_alloc_count], dallocs + 5);
    cr_assert_eq(d[NM_C_free_count], dfrees + 5);
    pend = pending();
    cr_assert_eq(pend.bk[NM_C_bk_alloc][b] + pend.bk[NM_C_bk_free][b], 0, "settled once");
    nm_large_settle(tc);
    cr_assert_eq(tc->ctr.bk[NM_C_bk_alloc][b], allocs + 5, "a second settle adds nothing");
}

/* malloc's and free's short routes (src/alloc.c) do what the whole path does with a
 * kept block, and turn away everything they do not handle */
Test(large, the_short_routes_keep_and_serve_like_the_whole_path, .init = boot)
{
    char *p = alloc(MiB);
    nm_large_t *L = desc(p);
    uint64_t maps = mappings(), hit = hits(), live = live_blocks();

    cr_assert_not(nm_large_free_kept(tc, L, p + 4096), "an interior pointer takes the whole path");
    cr_assert_eq(L->tcached, 0);
    L->sampled = 1;
    cr_assert_not(nm_large_free_kept(tc, L, p), "a sampled block takes the whole path (its profile forgets it)");
    cr_assert_eq(L->tcached, 0);
    L->sampled = 0;
    cr_assert(nm_large_free_kept(tc, L, p));
    cr_assert_eq(L->tcached, 1);
    cr_assert_eq(tc->lcache[0], L);
    cr_assert_eq(live_blocks(), live - 1);
    cr_assert_not(nm_large_free_kept(tc, L, p), "a double free takes the whole path, which refuses it");
    cr_assert_eq(kept(), MiB);

    cr_assert_null(nm_large_take_kept(tc, 2 * MiB), "does not fit");
    cr_assert_null(nm_large_take_kept(tc, 512 * KiB), "wastes half");
    cr_assert_null(nm_large_take_kept(tc, SIZE_MAX - 100), "rounds past the end of memory");
    cr_assert_eq(L->tcached, 1, "still kept");
    cr_assert_eq(nm_large_take_kept(tc, MiB - 1000), p);
    cr_assert_eq(L->tcached, 0);
    cr_assert_eq(L->req, MiB - 1000);
    cr_assert_eq(hits(), hit + 1);
    cr_assert_eq(live_blocks(), live);
    cr_assert_eq(mappings(), maps);
    cr_assert_eq(kept(), 0);
    check_live(p, MiB - 1000);

    nm_opt.check = true;                          /* every free validates: nothing is kept */
    cr_assert_not(nm_large_free_kept(tc, L, p));
    nm_opt.check = false;
    nm_large_free(tc, L, p);
}

/* the node is looked up again only when the CPU the thread runs on changes */
Test(large, a_thread_is_placed_again_only_when_its_cpu_changes, .init = boot)
{
    int node = tc->cpu_node;
    uint64_t moves = thr(NM_C_node_moves);
    nm_tcache_node_check(tc);
    cr_assert_eq(tc->cpu, nm_os_cpu());
    tc->cpu_node = node + 1;                      /* stale, but its CPU is the same */
    nm_tcache_node_check(tc);
    cr_assert_eq(tc->cpu_node, node + 1, "same CPU: no look-up");
    tc->cpu = -2;                                 /* as if it ran elsewhere last time */
    nm_tcache_node_check(tc);
    cr_assert_eq(tc->cpu, nm_os_cpu());
    cr_assert_eq(tc->cpu_node, nm_topo_cpu_node(tc->cpu), "looked up again");
    cr_assert_eq(thr(NM_C_node_moves), moves + 1);
    cr_assert_eq(tc->domain, dom, "one node here: the same domain");
}

Test(large, a_freed_block_is_kept_by_its_thread_and_served_again, .init = boot)
{
    char *p = alloc(MiB);
    nm_large_t *L = desc(p);
    uint64_t maps = mappings(), hit = hits(), live = live_blocks();
    free_kept(p);
    cr_assert_str_eq(nm_large_check(L, p), "large block already freed", "a second free is refused");
    cr_assert_eq(kept(), MiB);
    cr_assert_eq(live_blocks(), live - 1);
    cr_assert_null(dm->cache, "kept by the thread, not in the node cache");

    /* the same size again: the same block, not remapped and not re-registered */
    char *q = alloc(MiB);
    cr_assert_eq(q, p);
    cr_assert_eq(desc(q), L);
    cr_assert_eq(mappings(), maps);
    cr_assert_eq(hits(), hit + 1);
    cr_assert_eq(kept(), 0);
    /* the round trip made no global update: the thread owes what it took back, and
     * its next keep pays with it */
    cr_assert_eq(tc->lc_owed, MiB);
    cr_assert_eq(nm_gstat_get(NM_C_large_tcache_bytes), MiB);

    /* smaller, wasting over a quarter of the request (208 KiB > 816 KiB / 4): a new
     * mapping; the kept block stays kept */
    free_kept(q);
    cr_assert_eq(tc->lc_owed, 0);
    cr_assert_eq(nm_gstat_get(NM_C_large_tcache_bytes), MiB);
    char *s = alloc(816 * KiB);
    cr_assert_neq(s, p);
    cr_assert_eq(mappings(), maps + 1);
    cr_assert_eq(L->tcached, 1);
    cr_assert_eq(kept(), MiB);

    /* wasting at most a quarter (204 KiB <= 820 KiB / 4): that block, whole */
    char *r = alloc(820 * KiB);
    cr_assert_eq(r, p);
    cr_assert_eq(nm_large_usable(desc(r)), MiB, "a kept block is handed out whole");
    cr_assert_eq(desc(r)->req, 820 * KiB);
    cr_assert_eq(mappings(), maps + 1);
    free_kept(r);

    /* larger than the kept block: a new mapping too (a kept block never grows) */
    char *t = alloc(MiB + 64 * KiB);
    cr_assert_neq(t, p);
    cr_assert_eq(mappings(), maps + 2);
    cr_assert_eq(L->tcached, 1);

    /* taken back and not kept again: the debt is settled at the thread's tick */
    char *u = alloc(MiB);
    cr_assert_eq(u, p);
    cr_assert_eq(tc->lc_owed, MiB);
    nm_large_settle(tc);
    cr_assert_eq(tc->lc_owed, 0);
    cr_assert_eq(nm_gstat_get(NM_C_large_tcache_bytes), 0);
}

Test(large, the_thread_keeps_two_blocks_and_the_oldest_moves_to_the_node_cache, .init = boot)
{
    cr_assert_eq(NM_LCACHE_SLOTS, 2);
    char *a = alloc(MiB), *b = alloc(2 * MiB), *c = alloc(3 * MiB);
    free_kept(a);
    free_kept(b);
    cr_assert_null(dm->cache);
    nm_large_free(tc, desc(c), c);
    /* a, the oldest (or first of equals), left the thread for the node cache */
    cr_assert_eq(nm_pagemap_get((uintptr_t)a), 0);
    cr_assert_eq(check_cache(), 1);
    cr_assert_not_null(cached_at(a));
    cr_assert_eq(desc(b)->tcached, 1);
    cr_assert_eq(desc(c)->tcached, 1);
    cr_assert_eq(kept(), 5 * MiB);

    /* a request that only a's size fits comes from the node cache, re-registered */
    uint64_t maps = mappings();
    char *p = alloc(MiB);
    cr_assert_eq(p, a);
    cr_assert_eq(mappings(), maps);
    cr_assert_null(dm->cache);
}

Test(large, what_a_thread_may_keep_is_bounded, .init = boot)
{
    nm_opt.large_cache = 8 * MiB;                  /* threads keep at most 4 MiB, each block at most 4 MiB */
    char *big = alloc(5 * MiB);
    nm_large_free(tc, desc(big), big);
    cr_assert_eq(nm_pagemap_get((uintptr_t)big), 0, "over half the cache bound: straight to the node cache");
    cr_assert_not_null(cached_holding(big));
    cr_assert_eq(kept(), 0);

    char *a = alloc(3 * MiB), *b = alloc(3 * MiB);
    free_kept(a);
    nm_large_free(tc, desc(b), b);
    cr_assert_eq(nm_pagemap_get((uintptr_t)b), 0, "3 + 3 MiB is over what threads may keep: b goes to the node cache");
    cr_assert_not_null(cached_holding(b), "b may have merged with big");
    cr_assert_eq(kept(), 3 * MiB);
    check_cache();
    cr_assert_leq(dm->cache_bytes, nm_opt.large_cache);
    nm_large_decay(dom, UINT64_MAX);
    cr_assert_null(dm->cache);

    /* over the node cache's bound: unmapped at once */
    char *huge = alloc(9 * MiB);
    uint64_t evict = nm_gstat_get(NM_C_large_cache_evict);
    nm_large_free(tc, desc(huge), huge);
    cr_assert(!mapped(huge), "a block bigger than NUMAMALLOC_LARGE_CACHE is not cached");
    cr_assert_null(cached_at(huge));
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_evict), evict);

    /* decay 0: nothing is cached anywhere */
    nm_opt.decay_ms = 0;
    char *d = alloc(MiB);
    nm_large_free(tc, desc(d), d);
    cr_assert(!mapped(d), "NUMAMALLOC_DECAY_MS=0 caches nothing");
}

Test(large, a_freed_block_is_zeroed_when_asked_for, .init = boot)
{
    char *p = alloc(2 * MiB);                      /* check_live filled it */
    free_kept(p);
    char *q = nm_large_alloc(tc, dom, 2 * MiB, 0, true);
    cr_assert_eq(q, p, "from the thread's slot");
    for (size_t off = 0; off < 2 * MiB; off += 4093) cr_assert_eq(q[off], 0, "+%zu", off);
    memset(q, 0x77, 2 * MiB);
    free_node(q);
    char *r = nm_large_alloc(tc, dom, 2 * MiB, 0, true);
    cr_assert_eq(r, p, "from the node cache");
    for (size_t off = 0; off < 2 * MiB; off += 4093) cr_assert_eq(r[off], 0, "+%zu", off);
    check_live(r, 2 * MiB);
}

/* ---- the node cache ------------------------------------------------------------------- */

Test(large, a_cached_mapping_is_split_for_a_smaller_request, .init = boot)
{
    char *a = alloc(4 * MiB);
    free_node(a);
    cr_assert_eq(dm->cache_bytes, 4 * MiB);
    uint64_t maps = mappings(), split = nm_gstat_get(NM_C_large_cache_split), hit = hits();
    uint64_t fp = nm_gstat_get(NM_C_footprint);

    char *b = alloc(MiB);
    cr_assert_eq(b, a, "the front of the cached mapping");
    cr_assert_eq(nm_large_usable(desc(b)), MiB, "the front is cut to the request");
    cr_assert_eq(mappings(), maps, "no new mapping");
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_split), split + 1);
    cr_assert_eq(hits(), hit + 1);
    /* the remainder stays cached, unregistered */
    cr_assert_eq(check_cache(), 1);
    nm_large_t *T = cached_at(a + MiB);
    cr_assert_not_null(T, "the tail is cached");
    cr_assert_eq(T->map_len, 3 * MiB);
    cr_assert_eq(T->backing, NM_BACK_NORMAL);
    cr_assert_eq(dm->cache_bytes, 3 * MiB);
    cr_assert_eq(nm_gstat_get(NM_C_footprint), fp, "the split maps and unmaps nothing");

    /* and serves the next request that fits it exactly, whole */
    char *c = alloc(3 * MiB);
    cr_assert_eq(c, a + MiB);
    cr_assert_eq(nm_large_usable(desc(c)), 3 * MiB);
    cr_assert_eq(mappings(), maps);
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_split), split + 1, "an exact fit is not split");
    cr_assert_null(dm->cache);
    cr_assert_eq(dm->cache_bytes, 0);
    /* the two blocks are separate: each keeps what is written to it */
    memset(b, 1, MiB);
    memset(c, 2, 3 * MiB);
    cr_assert_eq(b[MiB - 1], 1);
    cr_assert_eq(c[0], 2);
}

Test(large, split_pieces_start_on_page_map_granules, .init = boot)
{
    char *a = alloc(4 * MiB);
    free_node(a);
    /* a request of whole pages that is not a whole number of granules */
    char *b = alloc(MiB + 4 * KiB);
    cr_assert_eq(b, a);
    cr_assert_eq(nm_large_usable(desc(b)), MiB + NM_GRANULE, "the front is cut at the next granule");
    nm_large_t *T = dm->cache;
    cr_assert_not_null(T, "the tail is cached");
    cr_assert_eq((uintptr_t)T->map % NM_GRANULE, 0, "tail at +%zu KiB: not on a granule", (size_t)(T->map - a) >> 10);
    cr_assert_eq(T->map + T->map_len, a + 4 * MiB, "front and tail cover the mapping");
    char *c = alloc(T->map_len);
    cr_assert_eq(c, T->map);
    /* a pointer a little way into the block finds the block's entry (an interior
     * free is reported as one, not as a foreign pointer) */
    cr_assert_eq(nm_pagemap_get((uintptr_t)c + 4096), nm_pagemap_get((uintptr_t)c));
    cr_assert_eq(nm_pagemap_get((uintptr_t)b + 4096), nm_pagemap_get((uintptr_t)b));
}

Test(large, a_small_remainder_is_not_split_off, .init = boot)
{
    char *a = alloc(MiB + 192 * KiB);
    free_node(a);
    uint64_t split = nm_gstat_get(NM_C_large_cache_split);
    /* 192 KiB left over is under a quarter of the 1 MiB asked for: handed out whole */
    char *b = alloc(MiB);
    cr_assert_eq(b, a);
    cr_assert_eq(nm_large_usable(desc(b)), MiB + 192 * KiB);
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_split), split);
    cr_assert_null(dm->cache);

    /* 256 KiB over 1 MiB is exactly a quarter: split */
    char *c = alloc(MiB + 256 * KiB);
    free_node(c);
    char *d = alloc(MiB);
    cr_assert_eq(d, c);
    cr_assert_eq(nm_large_usable(desc(d)), MiB);
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_split), split + 1);
    cr_assert_not_null(cached_at(c + MiB));
    cr_assert_eq(cached_at(c + MiB)->map_len, 256 * KiB);
}

/* carve a cached mapping of 2 + 1 + 4 + 1 + 5 MiB into blocks: returns the base;
 * the 2, 4 and 5 MiB pieces are cached apart (live 1 MiB spacers between them) */
static char *three_cached(char *spacer[2])
{
    char *c = alloc(13 * MiB);
    free_node(c);
    char *a = alloc(2 * MiB);
    spacer[0] = alloc(MiB);
    char *b = alloc(4 * MiB);
    spacer[1] = alloc(MiB);
    cr_assert_eq(a, c);
    cr_assert_eq(spacer[0], c + 2 * MiB);
    cr_assert_eq(b, c + 3 * MiB);
    cr_assert_eq(spacer[1], c + 7 * MiB);
    cr_assert_eq(check_cache(), 1);
    cr_assert_eq(dm->cache->map, c + 8 * MiB);
    cr_assert_eq(dm->cache->map_len, 5 * MiB);
    free_node(a);
    free_node(b);
    cr_assert_eq(check_cache(), 3, "pieces with live blocks between them are not merged");
    return c;
}

Test(large, best_fit_takes_the_smallest_cached_mapping_that_holds_the_request, .init = boot)
{
    char *spacer[2];
    char *c = three_cached(spacer);
    uint64_t maps = mappings();
    /* 1.9 MiB: the 2 MiB piece, not the newest (4 MiB) that also holds it; the
     * 64 KiB left over is not split off */
    char *q = alloc(2 * MiB - 100 * KiB);
    cr_assert_eq(q, c);
    cr_assert_eq(nm_large_usable(desc(q)), 2 * MiB);
    /* 3.5 MiB: the 4 MiB piece, not the 5 MiB one; 0.5 MiB left is not split off */
    char *p = alloc(3 * MiB + 512 * KiB);
    cr_assert_eq(p, c + 3 * MiB);
    cr_assert_eq(nm_large_usable(desc(p)), 4 * MiB);
    /* 4.5 MiB: the 5 MiB piece */
    char *r = alloc(4 * MiB + 512 * KiB);
    cr_assert_eq(r, c + 8 * MiB);
    cr_assert_eq(mappings(), maps);
    cr_assert_null(dm->cache);
}

Test(large, adjacent_cached_mappings_merge_and_serve_their_combined_size, .init = boot)
{
    char *spacer[2];
    char *c = three_cached(spacer);
    uint64_t merge = nm_gstat_get(NM_C_large_cache_merge);
    /* the first spacer joins the pieces before and after it: 2 + 1 + 4 MiB */
    free_node(spacer[0]);
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_merge), merge + 2);
    cr_assert_eq(check_cache(), 2);
    nm_large_t *M = cached_at(c);
    cr_assert_not_null(M, "the merged mapping starts at the lower neighbour");
    cr_assert_eq(M->map_len, 7 * MiB);
    /* the second spacer joins everything: one mapping of 13 MiB again */
    free_node(spacer[1]);
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_merge), merge + 4);
    cr_assert_eq(check_cache(), 1);
    cr_assert_eq(dm->cache->map, c);
    cr_assert_eq(dm->cache->map_len, 13 * MiB);
    cr_assert_eq(dm->cache_bytes, 13 * MiB);

    /* the combined size comes from the cache, without a new mapping */
    uint64_t maps = mappings(), split = nm_gstat_get(NM_C_large_cache_split);
    char *p = alloc(13 * MiB);
    cr_assert_eq(p, c);
    cr_assert_eq(nm_large_usable(desc(p)), 13 * MiB);
    cr_assert_eq(mappings(), maps);
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_split), split);
    cr_assert_null(dm->cache);
    cr_assert_eq(dm->cache_bytes, 0);
}

Test(large, separately_mapped_neighbours_merge_too, .init = boot)
{
    /* two fresh mappings side by side: mmap hands out addresses top down, so one
     * usually lands right under the other (the pairs of failed tries stay allocated) */
    char *lo = NULL, *hi = NULL;
    for (int tries = 0; tries < 16 && lo == NULL; tries++) {
        char *a = alloc(MiB), *b = alloc(MiB);
        if (b + MiB == a) { lo = b; hi = a; }
        else if (a + MiB == b) { lo = a; hi = b; }
    }
    cr_assert_not_null(lo, "no two adjacent mappings in 16 tries");
    uint64_t merge = nm_gstat_get(NM_C_large_cache_merge);
    free_node(hi);
    free_node(lo);
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_merge), merge + 1);
    cr_assert_eq(check_cache(), 1);
    cr_assert_eq(dm->cache->map, lo);
    cr_assert_eq(dm->cache->map_len, 2 * MiB);

    uint64_t maps = mappings();
    char *p = alloc(2 * MiB);
    cr_assert_eq(p, lo);
    cr_assert_eq(mappings(), maps);
    cr_assert_eq(nm_large_usable(desc(p)), 2 * MiB);
}

Test(large, a_cached_mapping_is_grown_for_a_larger_request, .init = boot)
{
    char *a = alloc(MiB);
    memset(a, 0x11, MiB);
    free_node(a);
    uint64_t maps = mappings(), grow = nm_gstat_get(NM_C_large_cache_grow), fp = nm_gstat_get(NM_C_footprint);

    /* nothing cached holds 3 MiB and 1 MiB is under half of it: a new mapping */
    char *big = alloc(3 * MiB);
    cr_assert_neq(big, a);
    cr_assert_eq(mappings(), maps + 1);
    cr_assert_not_null(cached_at(a), "the small mapping stays cached");
    fp = nm_gstat_get(NM_C_footprint);

    /* 1.5 MiB: the cached 1 MiB (at least half) is grown by mremap, in place or moved */
    char *p = alloc(MiB + 512 * KiB);
    cr_assert_eq(mappings(), maps + 1, "grown, not mapped anew");
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_grow), grow + 1);
    cr_assert_eq(nm_large_usable(desc(p)), MiB + 512 * KiB);
    cr_assert_eq(nm_gstat_get(NM_C_footprint), fp + 512 * KiB);
    cr_assert_null(dm->cache);
    if (p != a) cr_assert_eq(nm_pagemap_get((uintptr_t)a), 0, "a moved mapping leaves nothing registered behind");
}

Test(large, a_cached_mapping_serves_only_the_alignment_it_has, .init = boot)
{
    char *a = nm_large_alloc(tc, dom, MiB, MiB, false);
    cr_assert_not_null(a);
    cr_assert_eq((uintptr_t)a % MiB, 0);
    check_live(a, MiB);
    free_node(a);
    uint64_t maps = mappings();
    /* 2 MiB alignment: the cached block serves it only if it happens to sit there */
    bool fits = (uintptr_t)a % (2 * MiB) == 0;
    char *p = nm_large_alloc(tc, dom, MiB, 2 * MiB, false);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % (2 * MiB), 0);
    check_live(p, MiB);
    cr_assert_eq(p == a, fits);
    cr_assert_eq(mappings(), maps + !fits);
    if (!fits) {
        /* still cached: a request it can serve takes it */
        cr_assert_not_null(cached_at(a));
        cr_assert_eq(alloc(MiB), a);
    }
}

/* ---- resize ---------------------------------------------------------------------------- */

/* a block of len bytes with room bytes of free address space after it: the front of
 * a cached mapping of len + room bytes, whose tail is then given back to the OS */
static char *block_with_room(size_t len, size_t room)
{
    char *c = alloc(len + room);
    free_node(c);
    char *p = alloc(len);
    cr_assert_eq(p, c);
    cr_assert_eq(nm_large_usable(desc(p)), len);
    nm_large_decay(dom, UINT64_MAX);
    cr_assert_null(dm->cache);
    cr_assert(range_free(p + len, room), "the tail's range is free");
    return p;
}

Test(large, resize_grows_in_place_when_the_next_range_is_free, .init = boot)
{
    char *p = block_with_room(MiB, 2 * MiB);
    nm_large_t *L = desc(p);
    memset(p, 0x42, MiB);
    uint64_t mremaps = nm_gstat_get(NM_C_large_mremap), live_bytes = live_bytes_now();
    uint64_t fp = nm_gstat_get(NM_C_footprint);
    void *q = nm_large_resize(tc, L, p, 2 * MiB + 1);
    cr_assert_eq(q, p, "next range free: grown in place");
    cr_assert_eq(desc(p), L);
    cr_assert_eq(L->map_len, 2 * MiB + nm_os_page);
    cr_assert_eq(L->req, 2 * MiB + 1);
    cr_assert_eq(nm_gstat_get(NM_C_large_mremap), mremaps + 1);
    cr_assert_eq(live_bytes_now(), live_bytes + MiB + nm_os_page);
    cr_assert_eq(nm_gstat_get(NM_C_footprint), fp + MiB + nm_os_page);
    for (size_t off = 0; off < MiB; off += 4096) cr_assert_eq(p[off], 0x42, "contents kept at +%zu", off);
    check_live(p, 2 * MiB + 1);

    /* the grown block frees and is cached at its new size */
    free_node(p);
    cr_assert_eq(cached_at(p)->map_len, 2 * MiB + nm_os_page);
}

/* a block of 1 MiB whose next page is taken: by our own page (returned, to unmap
 * afterwards) unless something is there already (NULL) */
static char *block_boxed_in(void **blocker)
{
    char *p = alloc(MiB);
    void *b = mmap(p + MiB, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    cr_assert(b == MAP_FAILED || b == p + MiB);
    *blocker = b == MAP_FAILED ? NULL : b;
    return p;
}

Test(large, resize_moves_when_the_next_range_is_taken, .init = boot)
{
    void *blocker;
    char *p = block_boxed_in(&blocker);
    nm_large_t *L = desc(p);
    for (size_t off = 0; off < MiB; off += 4096) p[off] = (char)(off >> 12);
    uint64_t mremaps = nm_gstat_get(NM_C_large_mremap), maps = mappings();

    char *q = nm_large_resize(tc, L, p, 3 * MiB);
    cr_assert_not_null(q);
    cr_assert_neq(q, p, "the next range is taken: the block must move");
    cr_assert_eq(desc(q), L, "the moved block keeps its descriptor");
    cr_assert_eq(nm_pagemap_get((uintptr_t)p), 0, "nothing registered at the old address");
    cr_assert_eq(L->map_len, 3 * MiB);
    cr_assert_eq(nm_gstat_get(NM_C_large_mremap), mremaps + 1);
    cr_assert_eq(mappings(), maps, "moved by mremap, not counted as a new mapping");
    for (size_t off = 0; off < MiB; off += 4096) cr_assert_eq(q[off], (char)(off >> 12), "contents moved at +%zu", off);
    check_live(q, 3 * MiB);
    if (blocker) {
        cr_assert(!mapped(p), "the old range was given up");
        munmap(blocker, 4096);
    }
}

Test(large, moved_blocks_land_on_page_map_granules, .init = boot)
{
    /* lengths that are not whole granules: a destination mapped top-down under an
     * aligned neighbour would start off a granule unless asked to be on one */
    for (size_t k = 1; k <= 4; k++) {
        void *blocker;
        char *p = block_boxed_in(&blocker);
        char *q = nm_large_resize(tc, desc(p), p, 2 * MiB + k * 4096);
        cr_assert_not_null(q);
        cr_assert_neq(q, p);
        cr_assert_eq((uintptr_t)q % NM_GRANULE, 0, "moved to %p, off a granule by %zu KiB",
                     (void *)q, (size_t)((uintptr_t)q % NM_GRANULE) >> 10);
        cr_assert_eq(nm_pagemap_get((uintptr_t)q + 4096), nm_pagemap_get((uintptr_t)q));
        check_live(q, 2 * MiB + k * 4096);
        if (blocker) munmap(blocker, 4096);
    }
}

Test(large, moved_blocks_keep_their_offset_from_a_2mib_boundary, .init = boot)
{
    /* so the kernel moves whole page tables: pages moved one by one fault again */
    unsigned off_boundary = 0;
    for (size_t k = 1; k <= 4; k++) {
        void *blocker;
        char *p = block_boxed_in(&blocker);
        size_t before = (uintptr_t)p % (2 * MiB);
        off_boundary += before != 0;
        char *q = nm_large_resize(tc, desc(p), p, 3 * MiB + k * 4096);
        cr_assert_not_null(q);
        cr_assert_neq(q, p);
        cr_assert_eq((uintptr_t)q % (2 * MiB), before, "moved from %zu KiB past a 2 MiB boundary to %zu KiB",
                     before >> 10, (size_t)((uintptr_t)q % (2 * MiB)) >> 10);
        check_live(q, 3 * MiB + k * 4096);
        if (blocker) munmap(blocker, 4096);
    }
    cr_assert_gt(off_boundary, 0u, "every block started on a 2 MiB boundary: the case tests nothing");
}

Test(large, resize_shrinks_in_place_and_gives_back_below_half, .init = boot)
{
    char *p = alloc(4 * MiB);
    nm_large_t *L = desc(p);
    uint64_t mremaps = nm_gstat_get(NM_C_large_mremap), inplace = thr(NM_C_realloc_inplace);
    uint64_t fp = nm_gstat_get(NM_C_footprint), live_bytes = live_bytes_now();

    /* fits and wastes under half: nothing moves or shrinks */
    cr_assert_eq(nm_large_resize(tc, L, p, 3 * MiB), p);
    cr_assert_eq(L->map_len, 4 * MiB);
    cr_assert_eq(L->req, 3 * MiB);
    cr_assert_eq(nm_large_usable(L), 4 * MiB);
    cr_assert_eq(nm_gstat_get(NM_C_large_mremap), mremaps);
    cr_assert_eq(thr(NM_C_realloc_inplace), inplace + 1);
    /* growing within the mapping: same */
    cr_assert_eq(nm_large_resize(tc, L, p, 4 * MiB), p);
    cr_assert_eq(L->map_len, 4 * MiB);

    /* under half: shrunk by mremap, at the same address, the tail unmapped */
    memset(p, 0x21, 4 * MiB);
    cr_assert_eq(nm_large_resize(tc, L, p, MiB + 1), p);
    cr_assert_eq(L->map_len, MiB + nm_os_page);
    cr_assert_eq(nm_large_usable(L), MiB + nm_os_page);
    cr_assert_eq(nm_gstat_get(NM_C_large_mremap), mremaps + 1);
    cr_assert_eq(nm_gstat_get(NM_C_footprint), fp - (3 * MiB - nm_os_page));
    cr_assert_eq(live_bytes_now(), live_bytes - (3 * MiB - nm_os_page));
    cr_assert(!mapped(p + 2 * MiB), "the cut tail is unmapped");
    cr_assert_eq(p[MiB], 0x21, "contents kept");
    check_live(p, MiB + 1);
}

/* ---- decay and release ----------------------------------------------------------------- */

Test(large, node_cache_decay_releases_what_was_freed_by_the_cutoff, .init = boot)
{
    char *spacer[2];
    char *c = three_cached(spacer);                /* cached: 5 MiB (oldest), 2 MiB, 4 MiB (newest) */
    nm_large_t *oldest = dm->cache_tail, *mid = oldest->prev, *newest = dm->cache;
    cr_assert_eq(oldest->map, c + 8 * MiB);
    cr_assert_eq(mid->map, c);
    cr_assert_eq(newest->map, c + 3 * MiB);
    uint64_t evict = nm_gstat_get(NM_C_large_cache_evict), fp = nm_gstat_get(NM_C_footprint);

    /* cutoff 0: only the bound is enforced, and it holds */
    nm_large_decay(dom, 0);
    cr_assert_eq(check_cache(), 3);

    /* the test writes the release times: 100, 200, 300 ms */
    oldest->freed_ms = 100;
    mid->freed_ms = 200;
    newest->freed_ms = 300;
    nm_large_decay(dom, 99);
    cr_assert_eq(check_cache(), 3);
    nm_large_decay(dom, 200);
    cr_assert_eq(check_cache(), 1, "the two freed by 200 ms go (at the cutoff too)");
    cr_assert_eq(dm->cache->map, c + 3 * MiB);
    cr_assert(!mapped(c + 8 * MiB) && !mapped(c), "released mappings are unmapped");
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_evict), evict + 2);
    cr_assert_eq(nm_gstat_get(NM_C_footprint), fp - 7 * MiB);

    /* everything freed by now */
    nm_large_decay(dom, nm_os_now_ms());
    cr_assert_null(dm->cache);
    cr_assert_null(dm->cache_tail);
    cr_assert_eq(dm->cache_bytes, 0);
    cr_assert(!mapped(c + 3 * MiB));
    cr_assert_eq(nm_gstat_get(NM_C_footprint), fp - 11 * MiB);
    cr_assert(mapped(spacer[0]) && mapped(spacer[1]), "live blocks are untouched");
}

Test(large, decay_with_no_cutoff_releases_everything_to_the_os, .init = boot)
{
    char *a = alloc(2 * MiB), *b = alloc(3 * MiB), *c = alloc(MiB);
    uint64_t fp = nm_gstat_get(NM_C_footprint);
    free_node(a);
    free_node(b);
    free_kept(c);
    cr_assert_eq(nm_gstat_get(NM_C_footprint), fp, "cached mappings still count in the footprint");
    cr_assert_eq(nm_large_tcache_release(tc, UINT64_MAX), MiB);
    nm_large_decay(dom, UINT64_MAX);
    cr_assert_null(dm->cache);
    cr_assert_eq(dm->cache_bytes, 0);
    cr_assert(!mapped(a) && !mapped(b) && !mapped(c));
    cr_assert_eq(nm_gstat_get(NM_C_footprint), fp - 6 * MiB);
    cr_assert_eq(kept(), 0);
}

Test(large, kept_blocks_age_out_of_the_thread_by_the_cutoff, .init = boot)
{
    char *a = alloc(MiB), *b = alloc(2 * MiB);
    free_kept(a);
    free_kept(b);
    uint64_t evict = nm_gstat_get(NM_C_large_cache_evict), fp = nm_gstat_get(NM_C_footprint);

    /* freed after the cutoff: kept */
    cr_assert_eq(nm_large_tcache_release(tc, 0), 0);
    cr_assert_eq(desc(a)->tcached, 1);
    cr_assert_eq(desc(b)->tcached, 1);

    /* a freed at 100 ms, b later: a goes (at the cutoff too), straight back to the OS
     * (aged out, not cached) */
    desc(a)->freed_ms = 100;
    desc(b)->freed_ms = 200;
    cr_assert_eq(nm_large_tcache_release(tc, 99), 0);
    cr_assert_eq(nm_large_tcache_release(tc, 100), MiB);
    cr_assert_eq(nm_pagemap_get((uintptr_t)a), 0);
    cr_assert(!mapped(a));
    cr_assert_null(dm->cache, "aged-out blocks skip the node cache");
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_evict), evict + 1);
    cr_assert_eq(nm_gstat_get(NM_C_footprint), fp - MiB);
    cr_assert_eq(kept(), 2 * MiB);

    /* release of everything: to the node cache, still worth reusing */
    cr_assert_eq(nm_large_tcache_release(tc, UINT64_MAX), 2 * MiB);
    cr_assert_eq(nm_pagemap_get((uintptr_t)b), 0);
    cr_assert_not_null(cached_at(b));
    cr_assert(mapped(b));
    cr_assert_eq(kept(), 0);
    for (unsigned i = 0; i < NM_LCACHE_SLOTS; i++) cr_assert_null(tc->lcache[i]);
}

/* Another thread's reclaim of these slots (src/large.c: mark, one membarrier, then
 * take them unless the owner is inside its section). This thread plays the owner;
 * its section is simulated with lc_busy. */
Test(large, a_reclaimer_takes_kept_blocks_only_outside_the_owners_section, .init = boot)
{
    if (!nm_os_membarrier_register()) cr_skip_test("no membarrier(2) here: owners always exchange");
    char *a = alloc(MiB);
    free_kept(a);

    /* inside a section: marked, but the blocks stay; the mark is cleared */
    tc->lc_busy = 1;
    cr_assert(nm_large_kept_mark(tc), "a thread keeping a block is marked");
    cr_assert_eq(tc->lc_reclaim, 1);
    cr_assert(nm_large_kept_fence());
    cr_assert_eq(nm_large_kept_release(tc, UINT64_MAX, true), 0, "the owner is inside its section");
    cr_assert_eq(desc(a)->tcached, 1, "still kept");
    cr_assert_eq(tc->lc_reclaim, 0, "the mark goes when the reclaimer is done");
    tc->lc_busy = 0;

    /* a failed fence takes nothing either */
    cr_assert(nm_large_kept_mark(tc));
    cr_assert_eq(nm_large_kept_release(tc, UINT64_MAX, false), 0, "no fence, no taking");
    cr_assert_eq(desc(a)->tcached, 1);

    /* outside a section: taken, to the node cache */
    cr_assert(nm_large_kept_mark(tc));
    cr_assert(nm_large_kept_fence());
    cr_assert_eq(nm_large_kept_release(tc, UINT64_MAX, true), MiB);
    cr_assert_not_null(cached_at(a));
    for (unsigned i = 0; i < NM_LCACHE_SLOTS; i++) cr_assert_null(tc->lcache[i]);
    cr_assert_eq(tc->lc_reclaim, 0);

    /* nothing kept: nothing marked, and a release of an unmarked thread takes nothing */
    cr_assert_not(nm_large_kept_mark(tc));
    cr_assert_eq(nm_large_kept_release(tc, UINT64_MAX, true), 0);
}

Test(large, a_marked_owner_keeps_and_takes_by_exchange, .init = boot)
{
    /* a reclaimer's mark is up: the owner's puts and takes still work (exchanging) and
     * leave no section open behind them */
    char *a = alloc(MiB);
    tc->lc_reclaim = 1;
    free_kept(a);
    cr_assert_eq(tc->lc_busy, 0);
    cr_assert_eq(alloc(MiB), a, "the kept block is served again");
    cr_assert_eq(tc->lc_busy, 0);
    tc->lc_reclaim = 0;
    free_kept(a);
    cr_assert_eq(tc->lc_busy, 0);
    cr_assert_eq(alloc(MiB), a);
    cr_assert_eq(tc->lc_busy, 0);
}

/* ---- other backings --------------------------------------------------------------------- */

Test(large, a_thp_split_keeps_whole_2mib_pages, .init = boot)
{
    if (nm_thp_mode == 0) cr_skip_test("transparent huge pages are off on this machine");
    nm_opt.hugepages = NM_HUGE_THP;
    char *a = alloc(5 * MiB);
    nm_large_t *L = desc(a);
    if (L->backing != NM_BACK_THP) cr_skip_test("madvise(MADV_HUGEPAGE) refused here");
    cr_assert_eq((uintptr_t)a % (2 * MiB), 0, "THP blocks start on a 2 MiB boundary");
    cr_assert_eq(L->map_len, 5 * MiB, "a THP block is not rounded up");
    free_node(a);

    /* 1 MiB from 5 MiB: the front keeps a whole 2 MiB page, the 3 MiB tail stays cached */
    char *b = alloc(MiB);
    cr_assert_eq(b, a);
    cr_assert_eq(nm_large_usable(desc(b)), 2 * MiB);
    nm_large_t *T = cached_at(a + 2 * MiB);
    cr_assert_not_null(T);
    cr_assert_eq(T->map_len, 3 * MiB);
    cr_assert_eq(T->backing, NM_BACK_THP);

    /* freed again, the front merges with its THP tail */
    uint64_t merge = nm_gstat_get(NM_C_large_cache_merge);
    free_node(b);
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_merge), merge + 1);
    cr_assert_eq(check_cache(), 1);
    cr_assert_eq(dm->cache->map_len, 5 * MiB);
}

/* No hugetlb pool here to map from: the tests below take normal mappings and label
 * them as hugetlb-backed, which is all the cache looks at. */
static void label_hugetlb(nm_large_t *L) { L->backing = NM_BACK_HUGETLB_2M; }

Test(large, hugetlb_blocks_are_never_split, .init = boot)
{
    char *a = alloc(4 * MiB);
    free_node(a);
    label_hugetlb(cached_at(a));
    uint64_t split = nm_gstat_get(NM_C_large_cache_split), maps = mappings();
    char *p = alloc(MiB);
    cr_assert_eq(p, a);
    cr_assert_eq(nm_pme_kind(nm_pagemap_get((uintptr_t)p)), NM_KIND_HUGE);
    cr_assert_eq(nm_large_usable(desc(p)), 4 * MiB, "handed out whole");
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_split), split);
    cr_assert_eq(mappings(), maps);
    cr_assert_null(dm->cache);
}

Test(large, hugetlb_blocks_are_never_merged, .init = boot)
{
    char *c = alloc(4 * MiB);
    free_node(c);
    char *a = alloc(2 * MiB);                      /* front; the 2 MiB tail stays cached */
    cr_assert_eq(a, c);
    label_hugetlb(desc(a));
    uint64_t merge = nm_gstat_get(NM_C_large_cache_merge);
    free_node(a);
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_merge), merge, "a hugetlb block does not merge");
    cr_assert_eq(check_cache(), 2);

    /* nor does a normal block with a hugetlb neighbour */
    char *b = alloc(2 * MiB);
    char *t = alloc(2 * MiB);
    cr_assert(b == c || t == c);
    char *normal = b == c ? t : b;
    cr_assert_eq(normal, c + 2 * MiB);
    cr_assert_eq(desc(c)->backing, NM_BACK_HUGETLB_2M);
    free_node(c);
    free_node(normal);
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_merge), merge);
    cr_assert_eq(check_cache(), 2);
}

Test(large, hugetlb_blocks_are_never_grown, .init = boot)
{
    char *a = alloc(MiB);
    free_node(a);
    label_hugetlb(cached_at(a));
    uint64_t grow = nm_gstat_get(NM_C_large_cache_grow), maps = mappings();
    char *p = alloc(MiB + 512 * KiB);
    cr_assert_neq(p, a);
    cr_assert_eq(mappings(), maps + 1, "no growing a hugetlb mapping: a new one");
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_grow), grow);
    cr_assert_not_null(cached_at(a));

    /* resize: in place while it fits, refused beyond (the caller moves the block) */
    nm_large_t *L = desc(p);
    label_hugetlb(L);
    cr_assert_eq(nm_large_resize(tc, L, p, MiB + 256 * KiB), p);
    cr_assert_null(nm_large_resize(tc, L, p, 3 * MiB));
    cr_assert_eq(L->map_len, MiB + 512 * KiB);
    cr_assert_eq(nm_large_resize(tc, L, p, 256 * KiB), NULL, "no shrinking by mremap either");
}

/* ---- populating new mappings of a node whose blocks are written densely ------------ */

/* pages of [p, p + n) resident now */
static size_t resident(const char *p, size_t n)
{
    static unsigned char vec[16 * MiB / 4096];
    cr_assert_leq(n, 16 * MiB);
    cr_assert_eq(mincore((void *)p, n, vec), 0);
    size_t r = 0;
    for (size_t i = 0; i < (n + 4095) / 4096; i++) r += vec[i] & 1;
    return r;
}

static uint64_t judged(int id) { return nm_gstat_get(id); }

/* a new mapping of n bytes (the node cache emptied first, so nothing is reused) */
static char *fresh_block(size_t n)
{
    nm_large_decay(dom, UINT64_MAX);
    cr_assert_null(dm->cache);
    uint64_t maps = mappings();
    char *p = nm_large_alloc(tc, dom, n, 0, false);
    cr_assert_not_null(p);
    cr_assert_eq(mappings(), maps + 1, "a new mapping");
    return p;
}

/* write every stride-th byte of p's n bytes, free it into the node cache */
static void write_and_free(char *p, size_t n, size_t stride)
{
    for (size_t off = 0; off < n; off += stride) p[off] = 1;
    free_node(p);
}

static void auto_mode(void)
{
    nm_opt.prefault = NM_PREFAULT_AUTO;
    cr_assert_eq(dm->dense_votes, 0);
}

Test(large, two_densely_written_blocks_make_the_next_new_mappings_populated, .init = boot)
{
    auto_mode();
    uint64_t dense = judged(NM_C_large_judged_dense), pop = nm_gstat_get(NM_C_large_populated);
    for (int round = 0; round < 2; round++) {
        char *p = fresh_block(4 * MiB);
        cr_assert_eq(resident(p, 4 * MiB), 0, "round %d: not populated before two votes", round);
        cr_assert_eq(tc->judge_map, p, "an unpopulated new mapping waits to be judged");
        write_and_free(p, 4 * MiB, 4096);
        cr_assert_eq(judged(NM_C_large_judged_dense), dense + (uint64_t)round + 1);
        cr_assert_eq(dm->dense_votes, (uint32_t)round + 1);
    }
    char *p = fresh_block(4 * MiB);
    cr_assert_eq(resident(p, 4 * MiB), 1024, "populated whole");
    cr_assert_eq(nm_gstat_get(NM_C_large_populated), pop + 4 * MiB);
    cr_assert_null(tc->judge_map, "a populated mapping tells nothing: not judged");
    write_and_free(p, 4 * MiB, 4096);
    cr_assert_eq(judged(NM_C_large_judged_dense), dense + 2);
    cr_assert_eq(dm->dense_votes, 2);
}

Test(large, a_live_block_is_judged_at_its_threads_next_new_mapping, .init = boot)
{
    auto_mode();
    uint64_t dense = judged(NM_C_large_judged_dense), pop = nm_gstat_get(NM_C_large_populated);
    char *a = nm_large_alloc(tc, dom, 4 * MiB, 0, false);
    memset(a, 1, 4 * MiB);                                     /* filled as soon as it is had */
    char *b = nm_large_alloc(tc, dom, 4 * MiB, 0, false);
    cr_assert_eq(judged(NM_C_large_judged_dense), dense + 1, "a, live, judged at b's mapping");
    cr_assert_eq(tc->judge_map, b);
    cr_assert_eq(resident(b, 4 * MiB), 0);
    memset(b, 1, 4 * MiB);
    char *c = nm_large_alloc(tc, dom, 4 * MiB, 0, false);
    cr_assert_eq(dm->dense_votes, 2);
    cr_assert_eq(resident(c, 4 * MiB), 1024, "b's vote came before c's mapping: populated");
    cr_assert_eq(nm_gstat_get(NM_C_large_populated), pop + 4 * MiB);
    cr_assert_null(tc->judge_map);
    free_node(a);
    free_node(b);
    free_node(c);
    cr_assert_eq(judged(NM_C_large_judged_dense), dense + 2, "judged once each");
    /* a block still being filled looks sparse: it clears the votes, which only delays */
    char *d = fresh_block(4 * MiB);
    cr_assert_eq(resident(d, 4 * MiB), 1024);
    nm_large_decay(dom, UINT64_MAX);
    dm->dense_votes = 1;
    char *e = nm_large_alloc(tc, dom, 4 * MiB, 0, false);
    cr_assert_eq(tc->judge_map, e);
    memset(e, 1, 4096);
    nm_large_alloc(tc, dom, 8 * MiB, 0, false);
    cr_assert_eq(dm->dense_votes, 0);
}

Test(large, a_dense_node_leaves_every_eighth_new_mapping_to_be_judged, .init = boot)
{
    auto_mode();
    dm->dense_votes = 2;
    uint64_t sparse = judged(NM_C_large_judged_sparse);
    unsigned populated = 0;
    char *left = NULL;
    for (int i = 0; i < 8; i++) {
        char *p = fresh_block(2 * MiB);
        if (resident(p, 2 * MiB) == 512) {
            populated++;
            cr_assert_null(tc->judge_map);
            free_node(p);
        } else {
            cr_assert_eq(resident(p, 2 * MiB), 0);
            cr_assert_null(left, "one in eight is left alone");
            cr_assert_eq(tc->judge_map, p);
            left = p;
        }
        if (left) break;
    }
    cr_assert_not_null(left, "one of eight new mappings is left to be judged");
    cr_assert_eq(populated, 7, "the other seven are populated");
    /* the program turned sparse: one page of 512 written clears the votes */
    write_and_free(left, 2 * MiB, 2 * MiB);
    cr_assert_eq(judged(NM_C_large_judged_sparse), sparse + 1);
    cr_assert_eq(dm->dense_votes, 0);
    char *p = fresh_block(2 * MiB);
    cr_assert_eq(resident(p, 2 * MiB), 0, "no longer populated");
    cr_assert_eq(tc->judge_map, p);
}

Test(large, a_half_written_block_takes_one_vote_off, .init = boot)
{
    auto_mode();
    dm->dense_votes = 1;
    uint64_t sparse = judged(NM_C_large_judged_sparse);
    write_and_free(fresh_block(4 * MiB), 2 * MiB, 4096);              /* the first half */
    cr_assert_eq(dm->dense_votes, 0);
    cr_assert_eq(judged(NM_C_large_judged_sparse), sparse + 1);
    write_and_free(fresh_block(4 * MiB), 2 * MiB, 4096);
    cr_assert_eq(dm->dense_votes, 0, "no vote below none");
    dm->dense_votes = 1;
    write_and_free(fresh_block(4 * MiB), 3 * MiB, 4096);              /* three quarters */
    cr_assert_eq(dm->dense_votes, 2, "three quarters resident is dense");
}

Test(large, reused_and_resized_blocks_are_not_judged, .init = boot)
{
    auto_mode();
    char *p = fresh_block(4 * MiB);
    write_and_free(p, 4 * MiB, 4096);
    uint64_t dense = judged(NM_C_large_judged_dense), sparse = judged(NM_C_large_judged_sparse);
    char *q = nm_large_alloc(tc, dom, 4 * MiB, 0, false);
    cr_assert_eq(q, p, "the cached mapping again");
    cr_assert_null(tc->judge_map);
    write_and_free(q, 4 * MiB, 4 * MiB);
    nm_large_decay(dom, UINT64_MAX);
    char *r = fresh_block(2 * MiB);
    cr_assert_eq(tc->judge_map, r);
    r = nm_large_resize(tc, desc(r), r, 3 * MiB);
    cr_assert_not_null(r);
    cr_assert_null(tc->judge_map, "resized: part old pages, part new");
    free_node(r);
    cr_assert_eq(judged(NM_C_large_judged_dense), dense);
    cr_assert_eq(judged(NM_C_large_judged_sparse), sparse);
    cr_assert_eq(dm->dense_votes, 1);
}

Test(large, a_dense_node_populates_the_tail_grown_onto_a_cached_mapping, .init = boot)
{
    auto_mode();
    char *a = fresh_block(MiB);
    write_and_free(a, MiB, 4096);
    dm->dense_votes = 2;
    uint64_t pop = nm_gstat_get(NM_C_large_populated), grow = nm_gstat_get(NM_C_large_cache_grow);
    char *p = nm_large_alloc(tc, dom, MiB + 512 * KiB, 0, false);
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_grow), grow + 1, "grown, not mapped anew");
    cr_assert_eq(resident(p, MiB + 512 * KiB), 384, "the old pages and the new tail");
    cr_assert_eq(nm_gstat_get(NM_C_large_populated), pop + 512 * KiB);
    free_node(p);
    /* not dense: the tail is left to fault */
    dm->dense_votes = 1;
    p = nm_large_alloc(tc, dom, 2 * MiB + 512 * KiB, 0, false);
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_grow), grow + 2);
    cr_assert_eq(resident(p + MiB + 512 * KiB, MiB), 0);
}

Test(large, a_dense_node_never_populates_a_mapping_over_64_mib, .init = boot)
{
    auto_mode();
    dm->dense_votes = 4;
    uint64_t pop = nm_gstat_get(NM_C_large_populated);
    char *p = fresh_block(64 * MiB + 64 * KiB);
    cr_assert_eq(resident(p, 16 * MiB), 0, "not populated");
    cr_assert_eq(resident(p + 64 * MiB - 16 * MiB, 16 * MiB), 0);
    cr_assert_eq(tc->judge_map, p, "judged instead");
    cr_assert_eq(nm_gstat_get(NM_C_large_populated), pop);
    free_node(p);
    cr_assert_eq(dm->dense_votes, 0, "judged at its free: nothing written");
    dm->dense_votes = 4;
    p = fresh_block(64 * MiB);
    cr_assert_eq(resident(p + 48 * MiB, 16 * MiB), 4096, "64 MiB is populated");
    cr_assert_eq(nm_gstat_get(NM_C_large_populated), pop + 64 * MiB);
    /* a tail over 64 MiB grown onto a cached mapping is not populated either */
    nm_opt.large_cache = 512 * MiB;                       /* (room to cache 70 MiB) */
    char *a = fresh_block(70 * MiB);
    free_node(a);
    nm_large_tcache_release(tc, UINT64_MAX);
    dm->dense_votes = 4;
    uint64_t grow = nm_gstat_get(NM_C_large_cache_grow);
    char *g = nm_large_alloc(tc, dom, 140 * MiB, 0, false);
    cr_assert_eq(nm_gstat_get(NM_C_large_cache_grow), grow + 1, "grown by 70 MiB");
    cr_assert_eq(resident(g + 70 * MiB, 16 * MiB), 0);
    cr_assert_eq(nm_gstat_get(NM_C_large_populated), pop + 64 * MiB);
}

Test(large, prefault_1_populates_every_new_mapping_and_0_none, .init = boot)
{
    uint64_t dense = judged(NM_C_large_judged_dense);
    nm_opt.prefault = NM_PREFAULT_ON;
    for (int i = 0; i < 9; i++) {
        char *p = fresh_block(2 * MiB);
        cr_assert_eq(resident(p, 2 * MiB), 512, "mapping %d populated", i);
        cr_assert_null(tc->judge_map);
        free_node(p);
    }
    nm_opt.prefault = NM_PREFAULT_OFF;
    dm->dense_votes = 4;
    char *p = fresh_block(2 * MiB);
    cr_assert_eq(resident(p, 2 * MiB), 0, "off: never, whatever the votes");
    cr_assert_null(tc->judge_map, "off: nothing judged");
    write_and_free(p, 2 * MiB, 4096);
    cr_assert_eq(judged(NM_C_large_judged_dense), dense);
}
