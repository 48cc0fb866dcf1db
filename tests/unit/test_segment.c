/* tests/unit/test_segment.c — segments and their free-run search (src/segment.c),
 * driven through nm_segment_alloc_slab / nm_segment_free_slab / nm_segment_purge on
 * one domain of a booted allocator.
 *
 * Owns: first-fit carving of slabs of 1..NM_SLAB_MAX_PAGES pages, the preference
 * for a run of dirty (resident) free pages over an earlier clean run (in this
 * segment or another), then for the run covering the most dirty pages, runs found
 * among fragmented free pages and a new segment when no run of n exists though
 * enough pages are free, released neighbours coalescing into one run, pages a slab
 * never wrote keeping the state they had (dirty bits live on while a page is in a
 * slab), purge (dirty mask cleared, pages given back, the cutoff, wholly free
 * segments unmapped), segments mapped from reservations doubling up to a cap (one
 * segment when a reservation cannot be mapped, or where address space is not
 * free; the unused rest unmapped with the last segment or at a trim), the bound on
 * free dirty pages (purged once idle), the purge age adapting to how many purged
 * pages come back (doubling at half to the decay time, halving at an eighth,
 * unmoved between, by growth or by purges not at the age; refaults capped by what
 * was purged; an unmapped segment's purged pages leave the count),
 * the domain's list and page counters after every step, and a seeded random
 * comparison with a reference model of the three passes.
 *
 * Each Criterion test is its own process and boots a fresh allocator whose slabs are
 * never used through malloc, so the domain holds only the segments a test makes. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include "numamalloc/internal.h"

#define PAGE   ((size_t)NM_GRANULE)
#define BIT(i) ((uint64_t)1 << (i))
#define ALL    (~(uint64_t)0)

static uint32_t dom;
static nm_domain_t *dm;

static void boot_bounded(void)
{
    cr_assert(nm_process_init(), "allocator boot");
    cr_assert(nm_thread_cache() != NULL && nm_tcp->state == NM_T_ACTIVE, "thread start");
    dom = nm_tcp->domain;
    cr_assert_lt(dom, nm_ndomains);
    dm = &nm_domains[dom];
    cr_assert_null(dm->segs, "domain not fresh");
    cr_assert_null(dm->full_segs, "domain not fresh");
    cr_assert_eq(dm->nsegments, 0);
    cr_assert_eq(dm->slab_pages, 0);
    cr_assert_eq(dm->dirty_pages, 0);
}

/* the bound on free dirty pages is an eighth of the heap: a heap of a TiB (on paper)
 * keeps it out of the way of tests of the search */
static void boot(void)
{
    boot_bounded();
    nm_footprint_add((int64_t)1 << 40);
}

/* bits [first, first + n) */
static uint64_t run(unsigned first, unsigned n)
{
    return (n >= 64 ? ALL : BIT(n) - 1) << first;
}

static unsigned nsegs(nm_segment_t *head)
{
    unsigned k = 0;
    for (nm_segment_t *s = head; s; s = s->next) k++;
    return k;
}

/* the domain's lists and counters agree with the segments' masks */
static void check_domain(void)
{
    uint64_t slab_pages = 0, dirty = 0, purged = 0;
    unsigned n = 0;
    for (int full = 0; full < 2; full++) {
        nm_segment_t *prev = NULL;
        for (nm_segment_t *s = full ? dm->full_segs : dm->segs; s; prev = s, s = s->next, n++) {
            cr_assert_eq(s->prev, prev, "segment list links");
            cr_assert_eq((uintptr_t)s->base % NM_SEGMENT_SIZE, 0, "segment 4 MiB aligned");
            cr_assert_eq(s->domain, dom);
            if (full) cr_assert_eq(s->free_mask, 0, "a segment on the full list has free pages");
            else cr_assert_neq(s->free_mask, 0, "a full segment on the list of segments with room");
            slab_pages += 64 - (unsigned)__builtin_popcountll(s->free_mask);
            dirty += (unsigned)__builtin_popcountll(s->dirty_mask & s->free_mask);
            cr_assert_eq(s->purged_mask & ~(s->free_mask & ~s->dirty_mask), 0,
                         "a purged page is free and clean");
            purged += (unsigned)__builtin_popcountll(s->purged_mask);
        }
    }
    cr_assert_eq(n, dm->nsegments, "nsegments %lu, segments on the lists %u", (unsigned long)dm->nsegments, n);
    cr_assert_eq(n, nm_gstat_get(NM_C_segments));
    cr_assert_eq(slab_pages, dm->slab_pages, "slab_pages %lu, pages in slabs %lu",
                 (unsigned long)dm->slab_pages, (unsigned long)slab_pages);
    cr_assert_eq(dirty, dm->dirty_pages, "dirty_pages %lu, dirty bits %lu",
                 (unsigned long)dm->dirty_pages, (unsigned long)dirty);
    cr_assert_eq(purged, dm->purged_free, "purged_free %lu, purged bits %lu",
                 (unsigned long)dm->purged_free, (unsigned long)purged);
}

static nm_segment_t *seg_of(nm_slab_t *s) { return nm_slab_segment(s); }

/* a slab of n pages carved on lane; its descriptor and pages checked against its segment */
static nm_slab_t *take_in(unsigned n, unsigned lane)
{
    nm_slab_t *s = nm_segment_alloc_slab(dom, n, lane);
    cr_assert_not_null(s, "slab of %u pages", n);
    nm_segment_t *g = seg_of(s);
    cr_assert_eq(&g->slabs[s->page], s);
    cr_assert_eq(s->npages, n);
    cr_assert_leq(s->page + n, 64u);
    cr_assert_eq(s->start, g->base + (size_t)s->page * PAGE, "slab start");
    cr_assert_eq(g->free_mask & run(s->page, n), 0, "slab pages still marked free");
    check_domain();
    return s;
}

static nm_slab_t *take(unsigned n) { return take_in(n, 0); }

static void give(nm_slab_t *s, unsigned untouched)
{
    nm_segment_t *g = seg_of(s);
    unsigned first = s->page, n = s->npages;
    nm_segment_free_slab(dom, s, untouched);
    cr_assert_eq(g->free_mask & run(first, n), run(first, n), "released pages not free");
    check_domain();
}

/* fill a fresh segment with 64 one-page slabs; out[i] is page i */
static nm_segment_t *fill_ones(nm_slab_t *out[64])
{
    for (unsigned i = 0; i < 64; i++) {
        out[i] = take(1);
        cr_assert_eq(out[i]->page, i);
        cr_assert_eq(seg_of(out[i]), seg_of(out[0]), "page %u in another segment", i);
    }
    nm_segment_t *g = seg_of(out[0]);
    cr_assert_eq(g->free_mask, 0);
    cr_assert_eq(dm->full_segs, g, "a full segment goes to the full list");
    return g;
}

static bool resident(const void *p)
{
    unsigned char v = 0;
    cr_assert_eq(mincore((void *)p, (size_t)sysconf(_SC_PAGESIZE), &v), 0, "mincore: %s", strerror(errno));
    return v & 1;
}

static bool mapped(const void *p)
{
    return msync((void *)p, (size_t)sysconf(_SC_PAGESIZE), MS_ASYNC) == 0;
}

Test(segment, slabs_are_carved_first_fit, .init = boot)
{
    static const unsigned sizes[] = { 1, 2, 3, 8, 5, 1, 4, NM_SLAB_MAX_PAGES, 7 };
    unsigned expect = 0;
    nm_segment_t *g = NULL;
    for (unsigned i = 0; i < NM_ARRAY_LEN(sizes); i++) {
        nm_slab_t *s = take(sizes[i]);
        cr_assert_eq(s->page, expect, "slab %u (%u pages) at page %u, expected %u", i, sizes[i], s->page, expect);
        if (g == NULL) g = seg_of(s);
        cr_assert_eq(seg_of(s), g, "one segment serves them all");
        expect += sizes[i];
    }
    cr_assert_eq(g->free_mask, ~run(0, expect));
    cr_assert_eq(g->dirty_mask, 0, "a new segment has no dirty pages");
    cr_assert_eq(dm->slab_pages, expect);
    cr_assert_eq(dm->nsegments, 1);
    cr_assert_eq(dm->segs, g);
    cr_assert_eq(g->empty_since_ms, 0, "a segment with slabs is not empty");
}

Test(segment, a_full_segment_moves_lists_and_the_next_slab_maps_a_new_one, .init = boot)
{
    nm_slab_t *s[8];
    for (unsigned i = 0; i < 8; i++) {
        s[i] = take(8);
        cr_assert_eq(s[i]->page, 8 * i);
    }
    nm_segment_t *g = seg_of(s[0]);
    cr_assert_null(dm->segs, "the only segment is full");
    cr_assert_eq(dm->full_segs, g);
    uint64_t peak = nm_gstat_get(NM_C_segments_peak);

    nm_slab_t *t = take(1);
    nm_segment_t *h = seg_of(t);
    cr_assert_neq(h, g, "a full segment cannot serve a slab");
    cr_assert_eq(t->page, 0);
    cr_assert_eq(dm->nsegments, 2);
    cr_assert_eq(dm->segs, h);
    cr_assert_geq(nm_gstat_get(NM_C_segments_peak), peak + 1);
    cr_assert_neq(g->base, h->base);

    /* one slab back: the segment has room again and leaves the full list */
    give(s[3], 0);
    cr_assert_null(dm->full_segs);
    cr_assert_eq(nsegs(dm->segs), 2);
    cr_assert_eq(g->free_mask, run(24, 8));
    /* and its freed pages (dirty) serve the next slab that fits, not the new segment */
    nm_slab_t *u = take(8);
    cr_assert_eq(seg_of(u), g);
    cr_assert_eq(u->page, 24);
}

Test(segment, a_dirty_free_page_is_taken_before_an_earlier_clean_one, .init = boot)
{
    nm_slab_t *s[10];
    for (unsigned i = 0; i < 10; i++) s[i] = take(1);
    nm_segment_t *g = seg_of(s[0]);

    give(s[7], 0);                                 /* written: dirty */
    cr_assert_eq(g->dirty_mask, BIT(7));
    cr_assert_eq(dm->dirty_pages, 1);
    nm_slab_t *a = take(1);
    cr_assert_eq(a->page, 7, "dirty page 7 wanted, got %u (first clean free page is 10)", a->page);
    cr_assert_eq(g->dirty_mask, BIT(7), "a page keeps its dirty bit in a slab");
    cr_assert_eq(dm->dirty_pages, 0, "but is no longer a free dirty page");

    give(s[3], 1);                                 /* never written: clean */
    give(s[5], 0);                                 /* dirty */
    cr_assert_eq(g->dirty_mask, BIT(5) | BIT(7));
    nm_slab_t *b = take(1);
    cr_assert_eq(b->page, 5, "dirty page 5 wanted, got %u (clean page 3 comes first)", b->page);
    /* no dirty page left: plain first fit */
    nm_slab_t *c = take(1);
    cr_assert_eq(c->page, 3);
    nm_slab_t *d = take(1);
    cr_assert_eq(d->page, 10);
}

Test(segment, a_dirty_run_must_hold_the_whole_slab, .init = boot)
{
    nm_slab_t *s[10];
    for (unsigned i = 0; i < 10; i++) s[i] = take(1);
    nm_segment_t *g = seg_of(s[0]);

    give(s[4], 0);                                 /* one dirty page between slabs */
    nm_slab_t *a = take(2);
    cr_assert_eq(a->page, 10, "no free run of 2 before page 10, got %u", a->page);
    cr_assert_eq(g->dirty_mask, BIT(4), "the dirty page stays free and dirty");

    /* 4 dirty, 5 clean: no dirty run of 2, so the run covering most dirty pages (the
     * mixed run at 4) wins over the clean ones from 12 */
    give(s[5], 1);
    nm_slab_t *b = take(2);
    cr_assert_eq(b->page, 4, "mixed run at 4 wanted, got %u", b->page);
    cr_assert_eq(g->dirty_mask, BIT(4));
    cr_assert_eq(dm->dirty_pages, 0);

    /* dirty run of 2 at 7..8 beats the clean run at 12.. even for a 2-page slab */
    give(s[7], 0);
    give(s[8], 0);
    nm_slab_t *c = take(2);
    cr_assert_eq(c->page, 7);
}

Test(segment, a_dirty_run_in_a_later_segment_wins_over_a_clean_run_in_the_first, .init = boot)
{
    nm_slab_t *s[64];
    nm_segment_t *g = fill_ones(s);
    nm_slab_t *t = take(1);                        /* second segment, page 0 */
    nm_segment_t *h = seg_of(t);
    cr_assert_neq(h, g);
    give(s[20], 1);                                /* g: clean page 20; g goes to the head of the list */
    cr_assert_eq(dm->segs, g, "a segment leaving the full list is pushed first");
    give(t, 0);                                    /* h: dirty page 0 (h also has 63 clean pages) */
    cr_assert_eq(h->free_mask, ALL);
    cr_assert_eq(h->dirty_mask, BIT(0));

    nm_slab_t *a = take(1);
    cr_assert_eq(seg_of(a), h, "the dirty page of the second segment wanted, not clean page 20 of the first");
    cr_assert_eq(a->page, 0);
    /* nothing dirty left: first fit in list order, g first */
    nm_slab_t *b = take(1);
    cr_assert_eq(seg_of(b), g);
    cr_assert_eq(b->page, 20);
}

Test(segment, fragmented_free_pages_serve_the_first_run_that_fits, .init = boot)
{
    nm_slab_t *s[64];
    nm_segment_t *g = fill_ones(s);
    /* free (clean): 1 | 3 4 | 6 7 8 | 10 11 12 13 | 57..63 */
    static const unsigned freed[] = { 1, 3, 4, 6, 7, 8, 10, 11, 12, 13, 57, 58, 59, 60, 61, 62, 63 };
    for (unsigned i = 0; i < NM_ARRAY_LEN(freed); i++) give(s[freed[i]], 1);
    cr_assert_eq(g->dirty_mask, 0);

    nm_slab_t *a = take(4);
    cr_assert_eq(seg_of(a), g);
    cr_assert_eq(a->page, 10, "run of 4: page %u", a->page);
    nm_slab_t *b = take(3);
    cr_assert_eq(b->page, 6, "run of 3: page %u", b->page);
    nm_slab_t *c = take(2);
    cr_assert_eq(c->page, 3, "run of 2: page %u", c->page);
    nm_slab_t *d = take(1);
    cr_assert_eq(d->page, 1, "run of 1: page %u", d->page);
    cr_assert_eq(g->free_mask, run(57, 7), "only the tail run is left");

    /* a run that ends at the last page */
    nm_slab_t *e = take(7);
    cr_assert_eq(seg_of(e), g);
    cr_assert_eq(e->page, 57);
    cr_assert_eq(dm->nsegments, 1, "every slab fitted the fragmented segment");
    cr_assert_eq(dm->full_segs, g);
}

Test(segment, no_run_of_n_means_a_new_segment_though_enough_pages_are_free, .init = boot)
{
    nm_slab_t *s[64];
    nm_segment_t *g = fill_ones(s);
    /* every odd page free and dirty: 32 free pages, no two adjacent, the last one at
     * the top (the search must not run off the end) */
    for (unsigned i = 1; i < 64; i += 2) give(s[i], 0);
    cr_assert_eq(__builtin_popcountll(g->free_mask), 32);
    cr_assert_eq(g->dirty_mask, g->free_mask);
    uint64_t free_before = g->free_mask;

    nm_slab_t *a = take(2);
    cr_assert_neq(seg_of(a), g, "no run of 2 in the first segment: a new one must serve it");
    cr_assert_eq(a->page, 0);
    cr_assert_eq(dm->nsegments, 2);
    cr_assert_eq(g->free_mask, free_before, "the fragmented segment is left alone");
    cr_assert_eq(g->dirty_mask, free_before);

    /* one page still fits the first segment, and dirty pages come first */
    nm_slab_t *b = take(1);
    cr_assert_eq(seg_of(b), g);
    cr_assert_eq(b->page, 1);

    /* join 41..43: the first segment now has a dirty run of 3 and wins over the clean
     * pages of the new one */
    give(s[42], 0);
    nm_slab_t *c = take(3);
    cr_assert_eq(seg_of(c), g);
    cr_assert_eq(c->page, 41);
    nm_slab_t *d = take(3);
    cr_assert_eq(seg_of(d), seg_of(a), "no run of 3 left in the first segment");
    cr_assert_eq(d->page, 2);
}

Test(segment, released_neighbours_coalesce_into_one_run, .init = boot)
{
    nm_slab_t *s[16];
    for (unsigned i = 0; i < 16; i++) s[i] = take(4);
    nm_segment_t *g = seg_of(s[0]);
    cr_assert_eq(dm->full_segs, g);

    /* two 4-page slabs released in either order make one run of 8 */
    give(s[3], 0);                                 /* pages 12..15 */
    give(s[2], 0);                                 /* pages 8..11 */
    cr_assert_eq(g->free_mask, run(8, 8));
    cr_assert_eq(g->dirty_mask, run(8, 8));
    nm_slab_t *a = take(8);
    cr_assert_eq(seg_of(a), g, "the coalesced run serves 8 pages; no new segment");
    cr_assert_eq(a->page, 8);
    cr_assert_eq(dm->nsegments, 1);

    /* three slabs, the middle one last, join into 12 pages (8 of them dirty), served
     * as 8 + 4 from the same place */
    give(s[6], 0);
    give(s[8], 4);
    give(s[7], 0);
    cr_assert_eq(g->free_mask, run(24, 12));
    cr_assert_eq(g->dirty_mask & g->free_mask, run(24, 8), "s[8] was never written");
    nm_slab_t *b = take(8);
    cr_assert_eq(b->page, 24);
    nm_slab_t *c = take(4);
    cr_assert_eq(c->page, 32);
    cr_assert_eq(dm->nsegments, 1);
}

Test(segment, pages_a_slab_never_wrote_keep_their_state, .init = boot)
{
    nm_slab_t *keep = take(1);                     /* keeps the segment from being empty */
    nm_slab_t *s = take(8);
    nm_segment_t *g = seg_of(s);
    cr_assert_eq(s->page, 1);

    give(s, 3);                                    /* 5 written pages, 3 never touched: clean */
    cr_assert_eq(g->dirty_mask, run(1, 5));
    cr_assert_eq(dm->dirty_pages, 5);

    /* the written pages alone are a dirty run of 5: a 5-page slab takes them back */
    nm_slab_t *t = take(5);
    cr_assert_eq(t->page, 1);
    cr_assert_eq(dm->dirty_pages, 0);
    give(t, 5);                                    /* never written by it: still resident */
    cr_assert_eq(g->dirty_mask, run(1, 5));
    cr_assert_eq(dm->dirty_pages, 5);

    /* no dirty run of 8: the run covering the 5 dirty pages */
    t = take(8);
    cr_assert_eq(t->page, 1);
    give(t, 200);                                  /* more than the slab has: none written */
    cr_assert_eq(g->dirty_mask, run(1, 5), "clean pages stay clean, dirty ones dirty");
    cr_assert_eq(dm->dirty_pages, 5);

    t = take(8);
    cr_assert_eq(t->page, 1);
    give(t, 0);                                    /* all written */
    cr_assert_eq(g->dirty_mask, run(1, 8));
    cr_assert_eq(dm->dirty_pages, 8);
    cr_assert_eq(keep->page, 0);

    /* purge returns exactly the dirty ones */
    uint64_t purged = nm_gstat_get(NM_C_slab_pages_purged);
    cr_assert_eq(nm_segment_purge(dom, UINT64_MAX), 8 * PAGE);
    cr_assert_eq(nm_gstat_get(NM_C_slab_pages_purged), purged + 8);
    cr_assert_eq(nm_segment_purge(dom, UINT64_MAX), 0, "nothing for clean pages");
}

Test(segment, the_run_covering_most_dirty_pages_wins, .init = boot)
{
    nm_slab_t *s[64];
    nm_segment_t *g = fill_ones(s);
    /* free: 2..5 (4 dirty: 1 of 4) and 20..23 (21, 22 dirty: 2 of 4), 40..47 clean */
    for (unsigned i = 2; i <= 5; i++) give(s[i], i == 4 ? 0 : 1);
    for (unsigned i = 20; i <= 23; i++) give(s[i], (i == 21 || i == 22) ? 0 : 1);
    for (unsigned i = 40; i <= 47; i++) give(s[i], 1);
    cr_assert_eq(dm->dirty_pages, 3);
    nm_slab_t *a = take(4);
    cr_assert_eq(a->page, 20, "the run with 2 dirty pages wanted, got %u", a->page);
    nm_slab_t *b = take(3);
    cr_assert_eq(b->page, 2, "a run of 3 over dirty page 4: the first of 2..4 and 3..5");
    nm_slab_t *c = take(3);
    cr_assert_eq(c->page, 40, "no dirty page left: first fit");
    cr_assert_eq(seg_of(c), g);
}

Test(segment, free_dirty_pages_over_the_bound_go_back_once_idle, .init = boot_bounded)
{
    /* a heap of nothing: the bound is NM_DIRTY_MIN */
    unsigned bound = (unsigned)(NM_DIRTY_MIN / PAGE), n = bound + 4;
    cr_assert_lt(nm_gstat_get(NM_C_footprint) / 8, NM_DIRTY_MIN, "the heap must be small for this test");
    nm_slab_t *s[64];
    cr_assert_leq(n + 1, 64u);
    for (unsigned i = 0; i < n + 1; i++) s[i] = take(1);
    nm_segment_t *g = seg_of(s[0]);
    uint64_t purged = nm_gstat_get(NM_C_slab_pages_purged);
    /* over the bound, but freed just now: kept for reuse */
    for (unsigned i = 0; i < n; i++) give(s[i], 0);
    cr_assert_eq(dm->dirty_pages, n);
    cr_assert_eq(nm_gstat_get(NM_C_slab_pages_purged), purged, "pages freed just now are not purged");
    /* make them idle (the test writes the release times and the next look) */
    for (unsigned i = 0; i < n; i++) g->freed_ms[i] = 1;
    dm->dirty_check_ms = 0;
    give(s[n], 0);
    cr_assert_eq(nm_gstat_get(NM_C_slab_pages_purged), purged + n, "the idle pages go back");
    cr_assert_eq(dm->dirty_pages, 1, "the page freed last stays");
    cr_assert_eq(g->dirty_mask & g->free_mask, BIT(n));
    cr_assert_gt(dm->dirty_check_ms, 0, "the next look is scheduled");
}

Test(segment, purge_clears_the_dirty_mask_and_returns_the_pages, .init = boot)
{
    nm_slab_t *a = take(4);
    nm_slab_t *keep = take(1);
    nm_slab_t *b = take(2);
    nm_segment_t *g = seg_of(a);
    memset(a->start, 0x5a, 4 * PAGE);
    memset(b->start, 0xa5, 2 * PAGE);
    char *pa = a->start, *pb = b->start;
    cr_assert(resident(pa) && resident(pa + 3 * PAGE) && resident(pb));

    give(a, 0);
    give(b, 0);
    cr_assert_eq(g->dirty_mask, run(0, 4) | run(5, 2));
    cr_assert(resident(pa), "freeing a slab keeps its pages (dirty)");
    uint64_t purged = nm_gstat_get(NM_C_slab_pages_purged);
    uint64_t madv = nm_gstat_get(NM_C_madvise_calls);

    cr_assert_eq(nm_segment_purge(dom, UINT64_MAX), 6 * PAGE);
    cr_assert_eq(g->dirty_mask, 0);
    cr_assert_eq(dm->dirty_pages, 0);
    cr_assert_eq(g->free_mask, ~BIT(4), "purge frees nothing that is in a slab");
    cr_assert_eq(nm_gstat_get(NM_C_slab_pages_purged), purged + 6);
    cr_assert_eq(nm_gstat_get(NM_C_madvise_calls), madv + 2, "one madvise per run of dirty pages");
    cr_assert_eq(dm->nsegments, 1, "a segment with a slab stays");
    check_domain();
    /* MADV_DONTNEED: gone from memory, zero when read again */
    cr_assert(!resident(pa) && !resident(pa + 3 * PAGE) && !resident(pb));
    for (size_t off = 0; off < 4 * PAGE; off += 4096) cr_assert_eq(pa[off], 0, "+%zu", off);
    cr_assert_eq(pb[PAGE + 17], 0);
    cr_assert_eq(keep->page, 4);

    /* nothing left to purge */
    cr_assert_eq(nm_segment_purge(dom, UINT64_MAX), 0);
    cr_assert_eq(nm_gstat_get(NM_C_slab_pages_purged), purged + 6);
}

Test(segment, purge_takes_only_pages_freed_at_or_before_the_cutoff, .init = boot)
{
    nm_slab_t *a = take(2);
    nm_slab_t *keep = take(1);
    nm_slab_t *b = take(3);
    nm_segment_t *g = seg_of(a);
    give(a, 0);
    give(b, 0);
    uint64_t freed = g->freed_ms[0];
    cr_assert_gt(freed, 0);
    for (unsigned i = 0; i < 2; i++) cr_assert_eq(g->freed_ms[i], freed, "page %u", i);

    /* cutoff before the frees: nothing is old enough */
    cr_assert_eq(nm_segment_purge(dom, 0), 0);
    cr_assert_eq(g->dirty_mask, run(0, 2) | run(3, 3));

    /* pages 0..1 made older than the others (the test writes the release times) */
    g->freed_ms[0] = g->freed_ms[1] = 100;
    for (unsigned i = 3; i < 6; i++) g->freed_ms[i] = 200;
    cr_assert_eq(nm_segment_purge(dom, 99), 0);
    cr_assert_eq(nm_segment_purge(dom, 100), 2 * PAGE);
    cr_assert_eq(g->dirty_mask, run(3, 3), "only the pages freed by the cutoff are purged");
    cr_assert_eq(dm->dirty_pages, 3);
    cr_assert_eq(nm_segment_purge(dom, 200), 3 * PAGE);
    cr_assert_eq(g->dirty_mask, 0);
    cr_assert_eq(keep->page, 2);
    check_domain();
}

Test(segment, a_wholly_free_segment_is_unmapped_once_idle, .init = boot)
{
    nm_slab_t *a = take(8);
    nm_slab_t *b = take(8);
    nm_segment_t *g = seg_of(a);
    char *base = g->base;
    memset(a->start, 1, 8 * PAGE);
    give(a, 0);
    give(b, 8);
    cr_assert_eq(g->free_mask, ALL);
    cr_assert_gt(g->empty_since_ms, 0, "the last slab out records when the segment emptied");
    uint64_t unmapped = nm_gstat_get(NM_C_segments_unmapped);

    /* not idle by the cutoff: stays mapped, dirty pages kept */
    cr_assert_eq(nm_segment_purge(dom, 0), 0);
    cr_assert_eq(dm->nsegments, 1);
    cr_assert_eq(g->dirty_mask, run(0, 8));

    /* one dirty page freed after the cutoff: the rest are purged, the segment stays */
    uint64_t now = nm_os_now_ms();
    g->freed_ms[7] = now + 1000000;
    cr_assert_eq(nm_segment_purge(dom, now), 7 * PAGE);
    cr_assert_eq(g->dirty_mask, BIT(7));
    cr_assert_eq(dm->nsegments, 1, "a segment with a page freed after the cutoff is not unmapped");
    cr_assert(mapped(base));

    /* everything: the segment goes back to the OS, with the bytes of its dirty page */
    cr_assert_eq(nm_segment_purge(dom, UINT64_MAX), PAGE);
    cr_assert_eq(dm->nsegments, 0);
    cr_assert_null(dm->segs);
    cr_assert_eq(dm->dirty_pages, 0);
    cr_assert_eq(nm_gstat_get(NM_C_segments_unmapped), unmapped + 1);
    cr_assert_eq(nm_gstat_get(NM_C_segments), 0);
    cr_assert(!mapped(base), "segment still mapped after purge");
    cr_assert(!mapped(base + NM_SEGMENT_SIZE - 4096));

    /* the next slab maps a fresh segment */
    nm_slab_t *c = take(1);
    cr_assert_eq(c->page, 0);
    cr_assert_eq(dm->nsegments, 1);
}

/* one look over the bound: slabs s[0..n) go back released long ago, then s[n] goes
 * back now with the look due; the pages that look purged */
static uint64_t idle_round(nm_slab_t *s[], unsigned n)
{
    uint64_t before = nm_gstat_get(NM_C_slab_pages_purged);
    dm->dirty_check_ms = UINT64_MAX;
    for (unsigned i = 0; i < n; i++) {
        nm_segment_t *g = seg_of(s[i]);
        unsigned page = s[i]->page;
        give(s[i], 0);
        g->freed_ms[page] = 1;
    }
    dm->dirty_check_ms = 0;
    give(s[n], 0);
    return nm_gstat_get(NM_C_slab_pages_purged) - before;
}

enum { ROUND = 30, HELD = 20 };

Test(segment, purged_pages_carved_again_double_the_purge_age_up_to_the_decay_time, .init = boot_bounded)
{
    cr_assert_lt(nm_gstat_get(NM_C_footprint) / 8, NM_DIRTY_MIN, "the heap must be small for this test");
    nm_slab_t *s[ROUND + 1];
    for (unsigned i = 0; i <= ROUND; i++) s[i] = take(1);
    cr_assert_eq(idle_round(s, ROUND), ROUND, "the idle pages go back");
    cr_assert_eq(dm->purge_age_ms, NM_DIRTY_AGE_MS, "the first look has no purge to judge");
    uint64_t want = NM_DIRTY_AGE_MS, cap = NM_MAX(nm_opt.decay_ms, (uint64_t)NM_DIRTY_AGE_MS);
    for (int k = 0; k < 8; k++) {
        uint64_t again = nm_gstat_get(NM_C_slab_pages_refaulted);
        for (unsigned i = 0; i <= ROUND; i++) s[i] = take(1);   /* the purged pages come back */
        cr_assert_eq(nm_gstat_get(NM_C_slab_pages_refaulted), again + ROUND, "round %d: refaults counted", k);
        cr_assert_eq(dm->purged_free, 0);
        cr_assert_eq(idle_round(s, ROUND), ROUND, "round %d: what idled longer than any age still goes", k);
        want = NM_MIN(want * 2, cap);
        cr_assert_eq(dm->purge_age_ms, want, "round %d: age %lu, want %lu", k,
                     (unsigned long)dm->purge_age_ms, (unsigned long)want);
    }
    cr_assert_eq(want, cap, "the age reached the decay time and stayed");
}

Test(segment, a_heap_that_grows_without_purging_keeps_its_purge_age, .init = boot_bounded)
{
    cr_assert_lt(nm_gstat_get(NM_C_footprint) / 8, NM_DIRTY_MIN, "the heap must be small for this test");
    dm->purge_age_ms = 200;
    nm_slab_t *s[ROUND + 1];
    for (unsigned i = 0; i <= ROUND; i++) s[i] = take(1);        /* clean pages, none purged */
    cr_assert_eq(dm->refault_since, 0, "growth is no refault");
    cr_assert_eq(idle_round(s, ROUND), ROUND);
    cr_assert_eq(dm->purge_age_ms, 200, "no purge to judge: the age stays");
}

/* the purge age after one judged purge of ROUND pages (the age at 200 ms before it),
 * `refaults` of them carved again, and the next look */
static uint64_t age_after(unsigned refaults)
{
    cr_assert_lt(nm_gstat_get(NM_C_footprint) / 8, NM_DIRTY_MIN, "the heap must be small for this test");
    cr_assert_leq(refaults, ROUND);
    nm_slab_t *s[ROUND + 1], *held[HELD];
    for (unsigned i = 0; i <= ROUND; i++) s[i] = take(1);
    for (unsigned i = 0; i < HELD; i++) held[i] = take(1);
    dm->purge_age_ms = 200;
    cr_assert_eq(idle_round(s, ROUND), ROUND);
    cr_assert_eq(dm->purge_age_ms, 200, "the first look has no purge to judge");
    /* the first takes the page freed last (resident), the others purged ones */
    for (unsigned i = 0; i <= refaults; i++) take(1);
    cr_assert_eq(dm->refault_since, refaults);
    /* the held slabs go back: over the bound again, with no page carved */
    dm->dirty_check_ms = UINT64_MAX;
    for (unsigned i = 0; i + 1 < HELD; i++) give(held[i], 0);
    dm->dirty_check_ms = 0;
    give(held[HELD - 1], 0);
    return dm->purge_age_ms;
}

/* the program lives on what it holds: no purged page comes back */
Test(segment, purges_that_stick_halve_the_purge_age, .init = boot_bounded)
{
    cr_assert_eq(age_after(0), 100, "purges that stick halve the age: %lu", (unsigned long)dm->purge_age_ms);
    cr_assert_eq(dm->purged_free, ROUND, "the purged pages still wait");
}

/* ROUND = 30: half is 15, an eighth 3 */
Test(segment, half_the_purged_carved_again_doubles_the_age, .init = boot_bounded)
{
    cr_assert_eq(age_after(ROUND / 2), 400);
}

Test(segment, just_under_half_carved_again_leaves_the_age, .init = boot_bounded)
{
    cr_assert_eq(age_after(ROUND / 2 - 1), 200);
}

Test(segment, just_over_an_eighth_carved_again_leaves_the_age, .init = boot_bounded)
{
    cr_assert_eq(age_after(ROUND / 8 + 1), 200);
}

Test(segment, an_eighth_carved_again_halves_the_age, .init = boot_bounded)
{
    cr_assert_eq(age_after(ROUND / 8), 100);
}

Test(segment, refaults_counted_are_capped_by_what_was_purged, .init = boot_bounded)
{
    cr_assert_lt(nm_gstat_get(NM_C_footprint) / 8, NM_DIRTY_MIN, "the heap must be small for this test");
    nm_slab_t *one[64], *big[10];
    nm_segment_t *g = fill_ones(one);
    /* the even pages go back idle and are purged; the odd ones stay (page 1 freed now) */
    dm->dirty_check_ms = UINT64_MAX;
    for (unsigned i = 0; i < 64; i += 2) { give(one[i], 0); g->freed_ms[i] = 1; }
    dm->dirty_check_ms = 0;
    give(one[1], 0);
    cr_assert_eq(dm->purged_free, 32);
    cr_assert_eq(dm->purged_since, 32);
    /* 16-page slabs fit in no hole: fresh segments, each page a fault while the purged
     * pages wait, but no more than twice the purged count and one segment */
    for (unsigned i = 0; i < 10; i++) big[i] = take(16);
    cr_assert_eq(dm->purged_free, 32, "no purged page was carved");
    cr_assert_eq(dm->refault_since, 2 * 32 + NM_SEG_PAGES, "refaults %lu", (unsigned long)dm->refault_since);
    for (unsigned i = 0; i < 10; i++) give(big[i], 0);
}

Test(segment, an_unmapped_segment_takes_its_purged_pages_out_of_the_count, .init = boot_bounded)
{
    cr_assert_lt(nm_gstat_get(NM_C_footprint) / 8, NM_DIRTY_MIN, "the heap must be small for this test");
    nm_slab_t *s[ROUND + 1];
    for (unsigned i = 0; i <= ROUND; i++) s[i] = take(1);
    cr_assert_eq(idle_round(s, ROUND), ROUND);
    cr_assert_eq(dm->purged_free, ROUND);
    nm_segment_purge(dom, UINT64_MAX);                  /* wholly free: unmapped */
    cr_assert_eq(dm->nsegments, 0);
    cr_assert_eq(dm->purged_free, 0, "purged_free %lu", (unsigned long)dm->purged_free);
    check_domain();
}

Test(segment, a_purge_that_does_not_follow_the_age_is_not_judged, .init = boot_bounded)
{
    nm_slab_t *s[ROUND], *keep = take(1);          /* (keeps the segment mapped) */
    for (unsigned i = 0; i < ROUND; i++) s[i] = take(1);
    for (unsigned i = 0; i < ROUND; i++) give(s[i], 0);
    cr_assert_eq(nm_segment_purge(dom, UINT64_MAX), (size_t)ROUND * PAGE, "a trim takes every free page");
    cr_assert_eq(dm->purged_since, 0, "a trim is not the purge age's doing");
    cr_assert_eq(dm->purged_free, 0);
    check_domain();
    give(keep, 0);
}

Test(segment, a_thread_exit_sends_back_free_pages_over_the_bound_however_new_unless_others_are_busy, .init = boot_bounded)
{
    /* a heap of nothing: the bound is NM_DIRTY_MIN */
    cr_assert_lt(nm_gstat_get(NM_C_footprint) / 8, (uint64_t)NM_DIRTY_MIN, "the heap must be small for this test");
    const unsigned per = NM_SLAB_MAX_PAGES, n = (unsigned)(NM_DIRTY_MIN / (per * PAGE));
    cr_assert_geq(n, 1u);
    nm_slab_t **s = calloc(n + 1, sizeof *s);
    for (unsigned i = 0; i <= n; i++) s[i] = take(per);
    /* exactly the bound, freed just now: kept */
    for (unsigned i = 0; i < n; i++) give(s[i], 0);
    cr_assert_eq((uint64_t)dm->dirty_pages * PAGE, NM_DIRTY_MIN);
    uint64_t purged = nm_gstat_get(NM_C_slab_pages_purged);
    nm_segment_exit_trim(dom, UINT64_MAX);
    cr_assert_eq(nm_gstat_get(NM_C_slab_pages_purged), purged, "at the bound: nothing goes back");
    /* one slab more: over the bound, but new, so a free keeps it; a thread's exit does not */
    uint64_t t0 = nm_os_now_ms();
    give(s[n], 0);
    cr_assert_eq(nm_gstat_get(NM_C_slab_pages_purged), purged, "pages freed just now stay at a free");
    /* other threads busy: only what stayed free NM_DIRTY_AGE_MS goes back */
    nm_segment_exit_trim(dom, t0 - 1);
    cr_assert_eq(nm_gstat_get(NM_C_slab_pages_purged), purged, "pages freed just now stay while others are busy");
    nm_segment_exit_trim(dom, UINT64_MAX);
    cr_assert_eq(dm->dirty_pages, 0);
    cr_assert_eq(nm_gstat_get(NM_C_slab_pages_purged), purged + (uint64_t)(n + 1) * per);
    free(s);
}

/* ---- random patterns against a reference model -------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15u;
static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* first index of n consecutive set bits of m, by brute force; -1 if none */
static int ref_run(uint64_t m, unsigned n)
{
    for (unsigned i = 0; i + n <= 64; i++)
        if ((m & run(i, n)) == run(i, n)) return (int)i;
    return -1;
}

/* the run of n free pages covering the most dirty ones (at least one), the first of
 * equals; -1 if none */
static int ref_most_dirty(uint64_t free, uint64_t dirty, unsigned n)
{
    int at = -1, best = 0;
    for (unsigned i = 0; i + n <= 64; i++) {
        if ((free & run(i, n)) != run(i, n)) continue;
        int score = __builtin_popcountll(dirty & run(i, n));
        if (score > best) { best = score; at = (int)i; }
    }
    return at;
}

Test(segment, untouched_pages_come_from_the_segments_of_the_carving_lane, .init = boot)
{
    nm_slab_t *a = take_in(1, 0), *b = take_in(1, 1);
    nm_segment_t *g = seg_of(a), *h = seg_of(b);
    cr_assert_neq(g, h, "another lane's clean pages are not taken while a segment can be mapped");
    cr_assert_eq(g->lane, 0);
    cr_assert_eq(h->lane, 1);
    cr_assert_eq(dm->nsegments, 2);
    nm_slab_t *c = take_in(2, 0), *d = take_in(1, 1), *e = take_in(1, 7);
    cr_assert(seg_of(c) == g && c->page == 1, "lane 0 carries on in its segment");
    cr_assert(seg_of(d) == h && d->page == 1, "lane 1 carries on in its segment");
    cr_assert(seg_of(e) != g && seg_of(e) != h && seg_of(e)->lane == 7);
    /* resident free pages are no lane's: the next slab of any lane takes them */
    give(a, 0);
    nm_slab_t *f = take_in(1, 1);
    cr_assert(seg_of(f) == g && f->page == 0, "a dirty free run serves another lane");
    /* and when no segment can be mapped, another lane's clean pages do */
    struct rlimit old;
    cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
    long pages = 0;
    FILE *st = fopen("/proc/self/statm", "r");
    cr_assert_not_null(st);
    cr_assert_eq(fscanf(st, "%ld", &pages), 1);
    fclose(st);
    struct rlimit low = { .rlim_cur = (rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + (1 << 20), .rlim_max = old.rlim_max };
    cr_assert_eq(dm->reserve_left, 0, "no reserved segment to serve without a map");
    cr_assert_eq(setrlimit(RLIMIT_AS, &low), 0);
    unsigned before = (unsigned)dm->nsegments;
    nm_slab_t *x = nm_segment_alloc_slab(dom, 1, 3);
    cr_assert_eq(setrlimit(RLIMIT_AS, &old), 0);
    cr_assert_not_null(x, "a free run of another lane serves when mmap fails");
    cr_assert_eq(dm->nsegments, before, "no segment could be mapped");
    cr_assert_neq(seg_of(x)->lane, 3);
    check_domain();
}

enum { SLABS_PER_SEG = NM_SEG_PAGES / NM_SLAB_MAX_PAGES };

/* a new segment, filled with NM_SLAB_MAX_PAGES-page slabs (into out, if given) */
static nm_segment_t *take_segment_slabs(nm_slab_t *out[SLABS_PER_SEG])
{
    nm_slab_t *s = take(NM_SLAB_MAX_PAGES);
    cr_assert_eq(s->page, 0, "a fresh segment");
    if (out) out[0] = s;
    for (unsigned i = 1; i < SLABS_PER_SEG; i++) {
        nm_slab_t *t = take(NM_SLAB_MAX_PAGES);
        cr_assert_eq(seg_of(t), seg_of(s));
        if (out) out[i] = t;
    }
    return seg_of(s);
}

static nm_segment_t *take_segment(void) { return take_segment_slabs(NULL); }

Test(segment, segments_come_from_reservations_doubling_up_to_the_cap, .init = boot)
{
    nm_seg_reserve_max = NM_SEG_RESERVE_MAX;       /* (whatever this machine's overcommit mode) */
    uint64_t maps = nm_gstat_get(NM_C_mmap_calls);
    unsigned nres = 0, total = 0;
    nm_segment_t *prev = NULL;
    for (unsigned k = 1; k <= NM_SEG_RESERVE_MAX; k *= 2, nres++) {
        for (unsigned i = 0; i < k; i++, total++) {
            nm_segment_t *g = take_segment();
            if (i > 0) cr_assert_eq(g->base, prev->base + NM_SEGMENT_SIZE, "segment %u of a reservation of %u follows the last", i, k);
            cr_assert_eq(dm->reserve_left, k - 1 - i);
            cr_assert_eq(nm_gstat_get(NM_C_segments_reserved), dm->reserve_left, "the dump's count of reserved segments");
            if (i + 1 < k) {
                cr_assert(mapped(dm->reserve), "the rest of the reservation is mapped");
                cr_assert(!resident(dm->reserve), "and holds no memory");
            }
            prev = g;
        }
        cr_assert_eq(dm->reserve_next, NM_MIN(2 * k, (unsigned)NM_SEG_RESERVE_MAX));
    }
    cr_assert_eq(dm->nsegments, total);
    /* an aligned map takes one mmap, or two when the first answer was not aligned */
    uint64_t used = nm_gstat_get(NM_C_mmap_calls) - maps;
    cr_assert_leq(used, 2 * nres, "%u segments took %lu mmaps", total, (unsigned long)used);
    /* the cap holds */
    take_segment();
    cr_assert_eq(dm->reserve_left, NM_SEG_RESERVE_MAX - 1);
    cr_assert_eq(dm->reserve_next, NM_SEG_RESERVE_MAX);
}

Test(segment, a_reservation_the_address_space_cannot_hold_falls_back_to_one_segment, .init = boot)
{
    take_segment();
    cr_assert_eq(dm->reserve_left, 0);
    nm_seg_reserve_max = UINT32_MAX;
    dm->reserve_next = UINT32_MAX;                 /* 16 PiB: no mmap can give it */
    nm_segment_t *g = take_segment();
    cr_assert_eq(dm->nsegments, 2);
    cr_assert_eq(dm->reserve_left, 0, "a reservation of one segment");
    cr_assert_eq(dm->reserve_next, 2, "the next one doubles from there");
    cr_assert(mapped(g->base + NM_SEGMENT_SIZE - 4096));
    check_domain();
}

Test(segment, where_address_space_is_not_free_each_segment_is_its_own_map, .init = boot)
{
    /* boot looked: reservations only where MAP_NORESERVE is honoured and the
     * address space has no limit */
    unsigned long mode = 0;
    FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
    if (f && fscanf(f, "%lu", &mode) != 1) mode = 0;
    if (f) fclose(f);
    struct rlimit as;
    cr_assert_eq(getrlimit(RLIMIT_AS, &as), 0);
    bool one = mode == 2 || as.rlim_cur != RLIM_INFINITY;
    cr_assert_eq(nm_seg_reserve_max, one ? 1u : (unsigned)NM_SEG_RESERVE_MAX, "overcommit mode %lu, RLIMIT_AS %s",
                 mode, as.rlim_cur == RLIM_INFINITY ? "unlimited" : "set");

    nm_seg_reserve_max = 1;
    for (unsigned i = 0; i < 4; i++) {
        uint64_t maps = nm_gstat_get(NM_C_mmap_calls);
        take_segment();
        cr_assert_geq(nm_gstat_get(NM_C_mmap_calls), maps + 1, "segment %u mapped on its own", i);
        cr_assert_eq(dm->reserve_left, 0, "nothing reserved beyond it");
        cr_assert_eq(dm->reserve_next, 1);
    }
    cr_assert_eq(dm->nsegments, 4);
}

/* give back a segment's slabs, unwritten */
static void give_segment(nm_slab_t *s[SLABS_PER_SEG])
{
    for (unsigned i = 0; i < SLABS_PER_SEG; i++) give(s[i], NM_SLAB_MAX_PAGES);
}

Test(segment, a_reservation_outlives_its_unmapped_segments_until_the_last_goes, .init = boot)
{
    nm_seg_reserve_max = NM_SEG_RESERVE_MAX;
    nm_slab_t *a[SLABS_PER_SEG], *b[SLABS_PER_SEG];
    take_segment_slabs(a);                          /* a reservation of one */
    nm_segment_t *g = take_segment_slabs(b);        /* the first of a reservation of two */
    char *gbase = g->base, *rest = dm->reserve;
    cr_assert_eq(dm->reserve_left, 1);
    cr_assert_eq(rest, gbase + NM_SEGMENT_SIZE);

    /* b's segment, idle, is unmapped on its own; the rest of its reservation stays */
    give_segment(b);
    cr_assert_eq(nm_segment_purge(dom, nm_os_now_ms()), 0, "nothing was written");
    cr_assert_eq(dm->nsegments, 1);
    cr_assert(!mapped(gbase) && !mapped(gbase + NM_SEGMENT_SIZE - 4096), "the idle segment is unmapped");
    cr_assert_eq(dm->reserve, rest);
    cr_assert_eq(dm->reserve_left, 1);
    cr_assert(mapped(rest) && !resident(rest), "the rest of the reservation stays, untouched");

    /* the domain's last segment goes, and the reservation with it */
    give_segment(a);
    nm_segment_purge(dom, nm_os_now_ms());
    cr_assert_eq(dm->nsegments, 0);
    cr_assert_eq(dm->reserve_left, 0);
    cr_assert_eq(nm_gstat_get(NM_C_segments_reserved), 0);
    cr_assert_eq(dm->reserve_next, 1, "growth starts again");
    cr_assert(!mapped(rest), "the unused rest is unmapped");

    take_segment();
    cr_assert_eq(dm->nsegments, 1);
    cr_assert_eq(dm->reserve_next, 2);
}

Test(segment, a_trim_unmaps_the_unused_rest_of_the_reservation, .init = boot)
{
    nm_seg_reserve_max = NM_SEG_RESERVE_MAX;
    nm_segment_t *g = take_segment(), *h = take_segment();
    char *rest = dm->reserve;
    cr_assert_eq(dm->reserve_left, 1);
    nm_segment_purge(dom, UINT64_MAX);
    cr_assert_eq(dm->nsegments, 2, "segments in use stay");
    cr_assert(mapped(g->base) && mapped(h->base));
    cr_assert_eq(dm->reserve_left, 0);
    cr_assert_eq(nm_gstat_get(NM_C_segments_reserved), 0);
    cr_assert_eq(dm->reserve_next, 1);
    cr_assert(!mapped(rest), "the unused rest is unmapped");
    take_segment();
    cr_assert_eq(dm->nsegments, 3);
    check_domain();
}

Test(segment, random_free_patterns_match_the_three_pass_model, .init = boot)
{
    unsigned outcomes[4] = { 0 };                  /* dirty run, most dirty run, any run, new segment */
    for (unsigned iter = 0; iter < 1500; iter++) {
        cr_assert_null(dm->segs, "iteration %u: starts with no segment that has room", iter);
        nm_slab_t *s[64];
        nm_segment_t *g = fill_ones(s);
        /* a free pattern: dense, sparse or in between; each free page dirty or clean */
        uint64_t density = next_rand() % 4, want_free = next_rand(), want_dirty = next_rand();
        for (unsigned k = 0; k < density; k++) want_free |= next_rand();
        /* dirty pages from half of the free ones down to none */
        for (uint64_t k = next_rand() % 8; k > 0; k--) want_dirty &= next_rand();
        if (want_free == 0) want_free = BIT(next_rand() % 64);
        uint64_t dirty = 0;
        for (unsigned i = 0; i < 64; i++) {
            if (!(want_free & BIT(i))) continue;
            bool d = (want_dirty >> i) & 1;
            give(s[i], d ? 0 : 1);
            if (d) dirty |= BIT(i);
        }
        cr_assert_eq(g->free_mask, want_free);
        cr_assert_eq(g->dirty_mask, dirty);

        unsigned n = 1 + (unsigned)(next_rand() % NM_SLAB_MAX_PAGES);
        int expect = ref_run(want_free & dirty, n);
        unsigned outcome = 0;
        if (expect < 0) { expect = ref_most_dirty(want_free, dirty, n); outcome = 1; }
        if (expect < 0) { expect = ref_run(want_free, n); outcome = 2; }
        if (expect < 0) outcome = 3;
        outcomes[outcome]++;
        nm_slab_t *t = take(n);
        if (expect < 0) {
            cr_assert_neq(seg_of(t), g, "iteration %u: free %016lx, n %u: no run, a new segment expected",
                          iter, (unsigned long)want_free, n);
            cr_assert_eq(t->page, 0);
            cr_assert_eq(g->free_mask, want_free);
        } else {
            cr_assert_eq(seg_of(t), g, "iteration %u: free %016lx dirty %016lx, n %u: expected page %d",
                         iter, (unsigned long)want_free, (unsigned long)dirty, n, expect);
            cr_assert_eq(t->page, (unsigned)expect, "iteration %u: free %016lx dirty %016lx, n %u: page %u, expected %d",
                         iter, (unsigned long)want_free, (unsigned long)dirty, n, t->page, expect);
            cr_assert_eq(g->free_mask, want_free & ~run((unsigned)expect, n));
            cr_assert_eq(g->dirty_mask, dirty, "dirty bits stay with pages taken into a slab");
        }

        /* everything back, then purged: both segments are unmapped */
        give(t, 0);
        for (unsigned i = 0; i < 64; i++)
            if (!(want_free & BIT(i))) give(s[i], 0);
        nm_segment_purge(dom, UINT64_MAX);
        cr_assert_eq(dm->nsegments, 0, "iteration %u", iter);
        cr_assert_eq(dm->slab_pages, 0);
        cr_assert_eq(dm->dirty_pages, 0);
    }
    /* the patterns exercise every outcome, each many times */
    for (unsigned k = 0; k < 4; k++) cr_assert_geq(outcomes[k], 100, "outcome %u seen %u times", k, outcomes[k]);
}
