/* tests/unit/test_magazine.c — magazines, the depot and the slabs under it
 * (src/depot.c, src/slab.c), driven directly on one depot of a booted allocator.
 *
 * Owns: nm_mag_new capacities, nm_slab_alloc_batch_locked / nm_slab_free_batch_locked
 * (blocks unique, inside a slab registered in the page map as SLAB of the right class
 * and domain; held, held_peak, nslabs, the spare slab), nm_depot_put_full /
 * nm_depot_take_full_locked / nm_depot_return (full and empty lists, exchanges, which
 * full magazine a thread gets, the depot's bound on cached magazines), the order a
 * bin hands new blocks out in, a thread's budget (the least recently used bins go
 * back when it is spent; the medium bins' own bound), the holder a loaded magazine
 * names, and nm_depot_decay (Bonwick's working set: magazines unused for a whole
 * interval go back, the idle spare slab is released).
 *
 * Each Criterion test is its own process, so every test starts from a fresh
 * allocator: booted here with nm_process_init() and nm_thread_cache(), and
 * never used through malloc (this binary's malloc is mimalloc's), so the depots seen
 * here hold only what the test put in them. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "numamalloc/internal.h"

static uint32_t dom;

static void boot_bounded(void)
{
    cr_assert(nm_process_init(), "allocator boot");
    cr_assert(nm_thread_cache() != NULL && nm_tcp->state == NM_T_ACTIVE, "thread start");
    dom = nm_tcp->domain;
    cr_assert_lt(dom, nm_ndomains);
}

/* spare slabs are bounded by an eighth of the heap: a heap of a TiB (on paper) keeps
 * the bound out of the way of the other tests */
static void boot(void)
{
    boot_bounded();
    nm_footprint_add((int64_t)1 << 40);
}

static nm_depot_t *fresh_depot(unsigned cls)
{
    nm_depot_t *d = nm_depot(dom, cls);
    cr_assert_eq(nm_depot_cls(d), cls);
    cr_assert_eq(nm_depot_domain(d), dom);
    cr_assert_eq(d->nslabs, 0, "class %u: depot not fresh", cls);
    cr_assert_eq(d->held, 0);
    cr_assert_eq(d->nfull, 0);
    cr_assert_eq(d->nempty, 0);
    cr_assert_null(d->spare);
    cr_assert_null(d->partial);
    return d;
}

static unsigned alloc_locked(nm_depot_t *d, void **out, unsigned n)
{
    nm_lock(&d->lock);
    unsigned got = nm_slab_alloc_batch_locked(d, out, n);
    nm_unlock(&d->lock);
    return got;
}

static void free_locked(nm_depot_t *d, void **blocks, unsigned n)
{
    nm_lock(&d->lock);
    nm_slab_free_batch_locked(d, blocks, n);
    nm_unlock(&d->lock);
}

/* a full magazine of class cls, filled from d's slabs */
static nm_mag_t *full_mag(nm_depot_t *d)
{
    nm_mag_t *m = nm_mag_new(nm_depot_cls(d));
    cr_assert_not_null(m);
    m->count = alloc_locked(d, m->rounds, m->cap);
    cr_assert_eq(m->count, m->cap);
    return m;
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* every block: registered SLAB of cls in dom, the start of a block of its slab, unique,
 * writable over its whole size */
static void check_blocks(unsigned cls, void **blocks, unsigned n)
{
    size_t size = nm_class_size[cls];
    for (unsigned i = 0; i < n; i++) {
        char *b = blocks[i];
        nm_pme_t e = nm_pagemap_get((uintptr_t)b);
        cr_assert_eq(nm_pme_kind(e), NM_KIND_SLAB, "block %u (%p): kind %u", i, (void *)b, nm_pme_kind(e));
        cr_assert_eq(nm_pme_class(e), cls, "block %u: class %u", i, nm_pme_class(e));
        cr_assert_eq(nm_pme_domain(e), dom);
        nm_slab_t *s = nm_pme_desc(e);
        cr_assert_not_null(s);
        cr_assert_eq(s->cls, cls);
        cr_assert_eq(s->npages, nm_class_pages[cls]);
        cr_assert_eq(s->nblocks, nm_class_blocks[cls]);
        cr_assert_eq((uintptr_t)s->start % NM_GRANULE, 0, "slab start 64 KiB aligned");
        cr_assert(b >= s->start && b < s->start + (size_t)s->nblocks * size, "block %u outside its slab", i);
        cr_assert_eq((size_t)(b - s->start) % size, 0, "block %u not at a block boundary", i);
        cr_assert_eq((uintptr_t)b % 16, 0);
        /* the whole slab is registered, not just the block's granule */
        for (size_t off = 0; off < (size_t)s->npages << NM_GRANULE_SHIFT; off += NM_GRANULE)
            cr_assert_eq(nm_pagemap_get((uintptr_t)s->start + off), e, "slab granule at +%zu", off);
        memset(b, 0xc5, size);
    }
    void **sorted = malloc(n * sizeof *sorted);
    memcpy(sorted, blocks, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, cmp_ptr);
    for (unsigned i = 1; i < n; i++) {
        cr_assert_neq(sorted[i], sorted[i - 1], "block %p handed out twice", sorted[i]);
        cr_assert_geq((char *)sorted[i] - (char *)sorted[i - 1], (ptrdiff_t)size, "blocks overlap");
    }
    free(sorted);
}

Test(magazine, new_magazines_have_the_class_capacity, .init = boot)
{
    for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
        nm_mag_t *m = nm_mag_new(c);
        cr_assert_not_null(m);
        cr_assert_eq(m->cap, nm_class_mag_cap[c], "class %u", c);
        cr_assert_eq(m->count, 0);
        cr_assert_null(m->next);
        cr_assert_eq(m->holder, 0, "class %u: a new magazine has no holder", c);
        for (unsigned i = 0; i < m->cap; i++) m->rounds[i] = &m->rounds[i];   /* all rounds writable */
        nm_mag_delete(m);
    }
    nm_mag_delete(NULL);
}

Test(magazine, slab_batches_are_unique_registered_blocks, .init = boot)
{
    static const unsigned classes[] = { 0, 1, 7, 8, 19, 27, 28, 30, 36, 39 };
    for (unsigned k = 0; k < NM_ARRAY_LEN(classes); k++) {
        unsigned cls = classes[k];
        nm_depot_t *d = fresh_depot(cls);
        unsigned per_slab = nm_class_blocks[cls];
        unsigned n = 3 * per_slab + 5;               /* four slabs, the last one barely used */
        void **blocks = malloc(n * sizeof *blocks);
        /* in uneven batches, as magazines of several sizes would ask */
        unsigned got = 0, step = 1;
        while (got < n) {
            unsigned want = NM_MIN(step, n - got);
            cr_assert_eq(alloc_locked(d, blocks + got, want), want);
            got += want;
            step = step * 3 + 1;
        }
        check_blocks(cls, blocks, n);
        cr_assert_eq(d->nslabs, 4, "class %u: %lu slabs for %u blocks", cls, (unsigned long)d->nslabs, n);
        cr_assert_eq(d->held, n);
        cr_assert_eq(d->held_peak, n);
        cr_assert_eq(d->fresh, per_slab - 5, "never-used blocks left");
        free_locked(d, blocks, n);
        cr_assert_eq(d->held, 0);
        cr_assert_eq(d->held_peak, n, "the peak stays");
        cr_assert_eq(d->nslabs, 1, "one wholly free slab is kept as the spare");
        cr_assert_not_null(d->spare);
        cr_assert_null(d->partial);
        free(blocks);
    }
}

Test(magazine, spare_slabs_are_bounded_by_the_heap, .init = boot_bounded)
{
    /* a heap of nothing: spares and free dirty pages together up to NM_DIRTY_MIN */
    cr_assert_lt(nm_gstat_get(NM_C_footprint) / 8, NM_DIRTY_MIN, "the heap must be small for this test");
    cr_assert_eq(NM_DIRTY_MIN, 1 << 20, "the classes below are picked for 1 MiB");
    static const unsigned classes[] = { 52, 53, 54 };   /* one block per slab of 5, 6, 7 pages */
    nm_domain_t *dm = &nm_domains[dom];
    uint64_t dirty0 = dm->dirty_pages;
    for (unsigned k = 0; k < NM_ARRAY_LEN(classes); k++) {
        unsigned cls = classes[k];
        nm_depot_t *d = fresh_depot(cls);
        cr_assert_eq(nm_class_blocks[cls], 1);
        void *b = NULL;
        cr_assert_eq(alloc_locked(d, &b, 1), 1);
        free_locked(d, &b, 1);
        if (k < 2) {
            cr_assert_not_null(d->spare, "class %u: 320 KiB + 384 KiB fit in 1 MiB", cls);
        } else {
            cr_assert_null(d->spare, "class %u: 704 KiB of spares + 448 KiB is over 1 MiB", cls);
            cr_assert_eq(d->nslabs, 0, "released to its segment");
            cr_assert_eq(dm->dirty_pages, dirty0 + nm_class_pages[cls], "as free dirty pages");
        }
    }
    cr_assert_eq(dm->spare_bytes, (uint64_t)(5 + 6) * NM_GRANULE);
    /* a spare taken back leaves the count */
    nm_depot_t *d = nm_depot(dom, 52);
    void *b = NULL;
    cr_assert_eq(alloc_locked(d, &b, 1), 1);
    cr_assert_null(d->spare);
    cr_assert_eq(dm->spare_bytes, (uint64_t)6 * NM_GRANULE);
    /* and now 384 KiB of spares + 448 KiB dirty + 320 KiB is over: released */
    free_locked(d, &b, 1);
    cr_assert_null(d->spare);
    cr_assert_eq(d->nslabs, 0);
    cr_assert_eq(dm->spare_bytes, (uint64_t)6 * NM_GRANULE);
    /* a slab of NM_SPARE_ALWAYS or less is kept over the bound all the same */
    nm_depot_t *small = fresh_depot(0);
    cr_assert_leq((size_t)nm_class_pages[0] * NM_GRANULE, NM_SPARE_ALWAYS);
    cr_assert_eq(alloc_locked(small, &b, 1), 1);
    free_locked(small, &b, 1);
    cr_assert_not_null(small->spare, "a 64 KiB slab stays the spare");
    cr_assert_eq(dm->spare_bytes, (uint64_t)7 * NM_GRANULE);
}

Test(magazine, released_slabs_leave_the_page_map, .init = boot)
{
    unsigned cls = 20;
    nm_depot_t *d = fresh_depot(cls);
    unsigned n = 2 * nm_class_blocks[cls];
    void **blocks = malloc(n * sizeof *blocks);
    cr_assert_eq(alloc_locked(d, blocks, n), n);
    cr_assert_eq(d->nslabs, 2);
    nm_slab_t *first = nm_pme_desc(nm_pagemap_get((uintptr_t)blocks[0]));
    nm_slab_t *second = nm_pme_desc(nm_pagemap_get((uintptr_t)blocks[n - 1]));
    cr_assert_neq(first, second);
    char *second_start = second->start;
    /* first slab empties first: it becomes the spare; the second is released */
    free_locked(d, blocks, n);
    cr_assert_eq(d->spare, first);
    cr_assert_eq(d->nslabs, 1);
    cr_assert_eq(nm_pme_kind(nm_pagemap_get((uintptr_t)blocks[0])), NM_KIND_SLAB, "the spare stays registered");
    cr_assert_eq(nm_pagemap_get((uintptr_t)second_start), 0, "a released slab reads as none");
    cr_assert_eq(nm_pagemap_get((uintptr_t)blocks[n - 1]), 0);
    /* the spare is reused before a new slab is carved */
    void *again = NULL;
    cr_assert_eq(alloc_locked(d, &again, 1), 1);
    cr_assert_null(d->spare);
    cr_assert_eq(d->nslabs, 1);
    cr_assert_eq(nm_pme_desc(nm_pagemap_get((uintptr_t)again)), first);
    free_locked(d, &again, 1);
    free(blocks);
}

Test(magazine, freed_blocks_are_reused, .init = boot)
{
    unsigned cls = 3;
    nm_depot_t *d = fresh_depot(cls);
    void *a[10];
    cr_assert_eq(alloc_locked(d, a, 10), 10);
    free_locked(d, a + 2, 3);                        /* a[2..4] back on the slab's free list */
    void *b[3];
    cr_assert_eq(alloc_locked(d, b, 3), 3);
    for (unsigned i = 0; i < 3; i++) {
        bool found = false;
        for (unsigned j = 2; j < 5; j++) found |= b[i] == a[j];
        cr_assert(found, "a freed block is handed out before fresh ones");
    }
    cr_assert_eq(d->held, 10);
    cr_assert_eq(d->nslabs, 1);
}

/* a thread's bin hands new slab memory out in ascending address order, as a free
 * list would: the program's first touches run forward, across every refill */
Test(magazine, new_blocks_come_out_ascending, .init = boot)
{
    unsigned cls = 2;
    fresh_depot(cls);
    size_t size = nm_class_size[cls];
    char *prev = NULL;
    for (unsigned i = 0; i < 4 * nm_class_mag_cap[cls]; i++) {
        char *p = nm_small_alloc(nm_tcp, cls, size, false);
        cr_assert_not_null(p);
        if (prev) cr_assert_eq(p, prev + size, "allocation %u: %p after %p", i, (void *)p, (void *)prev);
        prev = p;
    }
}

/* the depot hands a thread its own newest full magazine (its blocks are likely in that
 * thread's cache) and otherwise the oldest one: the freshest frees of another thread
 * sit in that thread's cache. Decay and the bound see one list either way. */
Test(magazine, depot_gives_own_newest_else_oldest, .init = boot)
{
    unsigned cls = 5;
    nm_depot_t *d = fresh_depot(cls);
    int32_t me = nm_tcp->tid, other = me + 1, third = me + 2;
    nm_mag_t *m[4];
    int32_t filled_by[4] = { other, me, other, me };          /* oldest first */
    for (unsigned i = 0; i < 4; i++) {
        m[i] = full_mag(d);
        m[i]->holder = filled_by[i];
        cr_assert_null(nm_depot_put_full(d, m[i]));
    }
    cr_assert_eq(d->nfull, 4);
    nm_lock(&d->lock);
    nm_mag_t *a = nm_depot_take_full_locked(d, me);      /* newest is mine: m[3] */
    nm_mag_t *b = nm_depot_take_full_locked(d, third);   /* newest m[2] is not: oldest, m[0] */
    nm_mag_t *c = nm_depot_take_full_locked(d, me);      /* newest m[2] is other's: oldest, m[1] */
    nm_mag_t *e = nm_depot_take_full_locked(d, other);   /* the last one, m[2] */
    nm_mag_t *none = nm_depot_take_full_locked(d, me);
    nm_unlock(&d->lock);
    cr_assert_eq(a, m[3], "a thread's own newest magazine comes first");
    cr_assert_eq(b, m[0], "another thread's frees: the oldest magazine");
    cr_assert_eq(c, m[1], "the newest is someone else's: the oldest again");
    cr_assert_eq(e, m[2]);
    cr_assert_null(none);
    cr_assert_eq(d->nfull, 0);
    cr_assert_null(d->full);
    cr_assert_null(d->full_oldest, "both ends of the emptied list are clear");

    /* the list stays whole across pushes after it was emptied from both ends */
    nm_depot_return(d, a);
    nm_depot_return(d, b);
    cr_assert_eq(d->nfull, 2);
    cr_assert_eq(d->full, b);
    cr_assert_eq(d->full_oldest, a);
    cr_assert_eq(b->next, a);
    cr_assert_eq(a->newer, b);

    /* decay gives back the magazines unused the longest: the oldest end */
    nm_depot_decay(d, 0, false);                          /* starts an interval */
    cr_assert_eq(d->nfull_min, 2);
    nm_lock(&d->lock);
    cr_assert_eq(nm_depot_take_full_locked(d, third), a, "the oldest");
    nm_unlock(&d->lock);
    cr_assert_eq(d->nfull_min, 1);
    nm_depot_return(d, a);                                /* newest first: a, b */
    nm_depot_decay(d, 0, false);                          /* one stayed unused */
    cr_assert_eq(d->nfull, 1);
    cr_assert_eq(d->full, a, "the magazine used in the interval stays");
    cr_assert_eq(d->full_oldest, a, "b, unused the longest, went back to the slabs");
    nm_depot_decay(d, 0, true);
    cr_assert_eq(d->nfull, 0);
    cr_assert_null(d->full);
    cr_assert_null(d->full_oldest);
    nm_mag_t *left[] = { c, e };                              /* (a and b went with decay) */
    for (unsigned i = 0; i < NM_ARRAY_LEN(left); i++) {
        free_locked(d, left[i]->rounds, left[i]->count);
        nm_mag_delete(left[i]);
    }
}

Test(magazine, depot_exchanges_full_and_empty_magazines, .init = boot)
{
    unsigned cls = 5;
    nm_depot_t *d = fresh_depot(cls);
    nm_mag_t *m = full_mag(d);
    unsigned cap = m->cap;
    check_blocks(cls, m->rounds, m->count);
    cr_assert_eq(d->held, cap, "blocks in magazines are held (out of the slabs)");

    /* no empty magazine to give back yet */
    cr_assert_null(nm_depot_put_full(d, m));
    cr_assert_eq(d->nfull, 1);
    cr_assert_eq(d->exchanges, 1);
    nm_lock(&d->lock);
    nm_mag_t *t = nm_depot_take_full_locked(d, nm_tcp->tid);
    nm_mag_t *none = nm_depot_take_full_locked(d, nm_tcp->tid);
    nm_unlock(&d->lock);
    cr_assert_eq(t, m, "the full magazine comes back");
    cr_assert_null(none, "the depot had only one");
    cr_assert_eq(t->count, cap, "with all its rounds");
    cr_assert_eq(d->nfull, 0);
    cr_assert_eq(d->exchanges, 2);
    cr_assert_eq(d->held, cap);

    /* a partial magazine returned: rounds go back to the slabs, the magazine is kept empty */
    t->count = cap / 2;
    nm_depot_return(d, t);
    cr_assert_eq(d->nempty, 1);
    cr_assert_eq(d->nfull, 0);
    cr_assert_eq(d->held, cap - cap / 2, "returned rounds left the held count");

    /* now a full magazine handed over gets that empty one back */
    nm_mag_t *f = full_mag(d);
    nm_mag_t *e = nm_depot_put_full(d, f);
    cr_assert_eq(e, t, "the depot's empty magazine");
    cr_assert_eq(e->count, 0);
    cr_assert_eq(d->nempty, 0);
    cr_assert_eq(d->nfull, 1);

    /* a full magazine returned goes to the full list, rounds still held */
    uint64_t held = d->held;
    nm_mag_t *g = full_mag(d);
    nm_depot_return(d, g);
    cr_assert_eq(d->nfull, 2);
    cr_assert_eq(d->held, held + cap);
    nm_depot_return(d, NULL);                        /* harmless */
    nm_mag_delete(e);
}

/* the bound on full magazines, observed: hand over full magazines until one comes back
 * emptied into the slabs. 256 KiB of cached blocks per live thread, at most 2 MiB, and
 * at least 2 magazines of a small class, which keeps at most 2048 blocks while one
 * thread is alive; a medium class gets a quarter of that room and no floor */
static unsigned depot_bound_is(unsigned cls)
{
    nm_depot_t *d = fresh_depot(cls);
    unsigned cap = nm_class_mag_cap[cls];
    uint64_t threads = nm_gstat_get(NM_C_threads_live);
    size_t room = NM_MIN((size_t)2 << 20, (size_t)NM_MAX(threads, 1u) * ((size_t)256 << 10));
    size_t mag = (size_t)cap * nm_class_size[cls];
    size_t small = room / mag;
    if (threads <= 1) small = NM_MIN(small, 2048u / cap);
    unsigned bound = nm_class_is_medium(cls) ? (unsigned)(room / 4 / mag) : (unsigned)NM_MAX(small, 2u);
    unsigned kept = 0;
    for (unsigned i = 0; i < bound + 10; i++) {
        nm_mag_t *m = full_mag(d);
        uint64_t held = d->held;
        nm_mag_t *back = nm_depot_put_full(d, m);
        if (d->drained) {
            cr_assert_eq(back, m, "class %u: the magazine over the bound comes back", cls);
            cr_assert_eq(back->count, 0, "emptied");
            cr_assert_eq(d->held, held - cap, "its rounds went back to the slabs");
            nm_mag_delete(back);
            break;
        }
        cr_assert_null(back);
        kept++;
        cr_assert_eq(d->nfull, kept);
    }
    cr_assert_eq(d->drained, 1, "class %u: no bound after %u magazines", cls, bound + 10);
    cr_assert_eq(kept, bound, "class %u, %lu threads: %u magazines of %u rounds cached, bound %u", cls,
                 (unsigned long)threads, kept, cap, bound);
    /* full magazines returned past the bound are emptied too */
    nm_mag_t *m = full_mag(d);
    nm_depot_return(d, m);
    cr_assert_eq(d->nfull, kept);
    cr_assert_eq(d->nempty, 1, "emptied into the slabs and kept as an empty magazine");
    /* empty magazines: at most 64 */
    for (unsigned i = 0; i < 100; i++) {
        nm_mag_t *e = nm_mag_new(cls);
        nm_lock(&d->lock);
        nm_depot_push_empty_locked(d, e);
        nm_unlock(&d->lock);
    }
    cr_assert_eq(d->nempty, 64, "class %u: %u empty magazines kept", cls, d->nempty);
    cr_assert_eq(d->held, (uint64_t)kept * cap);
    return kept;
}

Test(magazine, depot_bounds_cached_magazines, .init = boot)
{
    cr_assert_eq(nm_gstat_get(NM_C_threads_live), 1, "one thread started");
    /* one thread: 16 magazines of 128 16-byte blocks, not the 128 that 256 KiB would hold */
    cr_assert_eq(nm_class_mag_cap[0], 128);
    cr_assert_eq(depot_bound_is(0), 16);
    static const unsigned one[] = { 4, 11, 23, 39, 40, 59 };
    for (unsigned k = 0; k < NM_ARRAY_LEN(one); k++) depot_bound_is(one[k]);
    /* 3 threads: 768 KiB; 20: the 2 MiB ceiling */
    nm_gstat_add(NM_C_threads_live, 2);
    depot_bound_is(1);
    depot_bound_is(12);
    nm_gstat_add(NM_C_threads_live, 17);
    depot_bound_is(2);
    depot_bound_is(24);
    depot_bound_is(41);
    nm_gstat_sub(NM_C_threads_live, 19);
}

Test(magazine, decay_releases_unused_magazines_and_the_spare, .init = boot)
{
    unsigned cls = 9;
    nm_depot_t *d = fresh_depot(cls);
    unsigned cap = nm_class_mag_cap[cls];
    nm_mag_t *mags[3];
    for (unsigned i = 0; i < 3; i++) {
        mags[i] = full_mag(d);
        cr_assert_null(nm_depot_put_full(d, mags[i]));
    }
    nm_mag_t *e1 = nm_mag_new(cls), *e2 = nm_mag_new(cls);
    nm_lock(&d->lock);
    nm_depot_push_empty_locked(d, e1);
    nm_depot_push_empty_locked(d, e2);
    nm_unlock(&d->lock);
    cr_assert_eq(d->nfull, 3);
    cr_assert_eq(d->nempty, 2);
    cr_assert_eq(d->held, 3 * cap);

    /* first tick: starts the interval; nothing was measured unused yet */
    nm_depot_decay(d, 0, false);
    cr_assert_eq(d->nfull, 3);
    cr_assert_eq(d->nempty, 2);
    cr_assert_eq(d->nfull_min, 3);
    cr_assert_eq(d->nempty_min, 2);

    /* during the interval one full magazine is needed: two stayed unused throughout */
    nm_lock(&d->lock);
    nm_mag_t *used = nm_depot_take_full_locked(d, nm_tcp->tid);
    nm_unlock(&d->lock);
    cr_assert_not_null(used);
    cr_assert_eq(d->nfull_min, 2);
    nm_depot_decay(d, 0, false);
    cr_assert_eq(d->nfull, 0, "the two unused full magazines went back");
    cr_assert_eq(d->nempty, 0, "so did the empty ones nobody took");
    cr_assert_eq(d->held, cap, "only the magazine in use still holds blocks");

    /* give the last magazine back: its slab empties; the spare survives a decay whose
     * cutoff is older than the moment it became spare, and goes with a later one */
    nm_lock(&d->lock);
    nm_slab_free_batch_locked(d, used->rounds, used->count);
    nm_unlock(&d->lock);
    used->count = 0;
    nm_mag_delete(used);
    cr_assert_eq(d->held, 0);
    cr_assert_not_null(d->spare);
    cr_assert_eq(d->nslabs, 1);
    char *start = d->spare->start;
    nm_depot_decay(d, d->spare_since_ms - 1, false);
    cr_assert_not_null(d->spare, "spare idle for less than the decay interval is kept");
    nm_depot_decay(d, d->spare_since_ms, false);
    cr_assert_null(d->spare, "idle spare released");
    cr_assert_eq(d->nslabs, 0);
    cr_assert_eq(nm_pagemap_get((uintptr_t)start), 0, "its granules unregistered");
}

Test(magazine, decay_all_drains_the_depot, .init = boot)
{
    unsigned cls = 15;
    nm_depot_t *d = fresh_depot(cls);
    for (unsigned i = 0; i < 3; i++) cr_assert_null(nm_depot_put_full(d, full_mag(d)));
    nm_mag_t *e = nm_mag_new(cls);
    nm_lock(&d->lock);
    nm_depot_push_empty_locked(d, e);
    nm_unlock(&d->lock);
    cr_assert_gt(d->held, 0);
    nm_depot_decay(d, 0, true);
    cr_assert_eq(d->nfull, 0);
    cr_assert_eq(d->nempty, 0);
    cr_assert_eq(d->held, 0);
    cr_assert_null(d->spare);
    cr_assert_null(d->partial);
    cr_assert_eq(d->nslabs, 0, "every slab went back to its segment");
}

/* A thread's bins share its budget: a bin that needs a magazine when the budget is
 * spent (and the shared pool too) gives back the bins used least recently, never
 * one used more recently than one kept, and the bins never hold more than the
 * budget. Every bin holding a magazine is one admit looks at (tc->mag_bins). */
static unsigned bin_mags_of(const nm_tcache_t *tc, unsigned c)
{
    return (tc->bins[c].loaded != NULL) + (tc->bins[c].prev != NULL);
}

Test(magazine, a_spent_budget_gives_back_the_bins_used_least_recently, .init = boot)
{
    nm_tcache_t *tc = nm_tcp;
    /* the pool is spent: the thread keeps its minimum budget */
    __atomic_store_n(&nm_gctr[NM_C_cache_pool_used], (uint64_t)NM_TC_POOL_BYTES, __ATOMIC_RELAXED);
    cr_assert_eq(tc->budget, NM_TC_MIN_BYTES);
    static const size_t sizes[] = { 512, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24, 200 };
    unsigned evictions_seen = 0;
    for (unsigned round = 0; round < 6; round++) {
        for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            unsigned cls = nm_class_of(sizes[i]);
            uint32_t used[NM_NUM_CLASSES];
            unsigned had[NM_NUM_CLASSES];
            for (unsigned c = 0; c < NM_NUM_CLASSES; c++) { used[c] = tc->used[c]; had[c] = bin_mags_of(tc, c); }
            uint64_t ev = tc->ctr.thr[NM_C_cache_evictions];
            void *p = nm_malloc(sizes[i]);
            cr_assert_not_null(p);
            memset(p, 1, sizes[i]);
            nm_free(p);
            cr_assert_leq(tc->held, tc->budget, "the bins hold more than the budget");
            for (unsigned c = 0; c < NM_NUM_CLASSES; c++)
                if (bin_mags_of(tc, c)) cr_assert(tc->mag_bins >> c & 1, "bin %u holds a magazine admit does not see", c);
            if (tc->ctr.thr[NM_C_cache_evictions] == ev) continue;
            evictions_seen++;
            /* every bin given back was used no later than every other bin that kept its magazines */
            uint32_t newest_gone = 0, oldest_kept = UINT32_MAX;
            for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
                if (c == cls || had[c] == 0) continue;
                if (bin_mags_of(tc, c) == 0) newest_gone = NM_MAX(newest_gone, used[c]);
                else oldest_kept = NM_MIN(oldest_kept, used[c]);
            }
            cr_assert_leq(newest_gone, oldest_kept, "a bin used at %u went back, one used at %u stayed",
                          newest_gone, oldest_kept);
        }
    }
    cr_assert_gt(evictions_seen, 0, "the sizes never filled the budget: the case tests nothing");
}

/* A thread's medium magazines (a block or a few of 40 KiB to 1 MiB each) hold at
 * most NM_TC_MED_BYTES together: a medium bin that needs room gives back the medium
 * bins used least recently, and the small bins keep their magazines (the budget,
 * free to grow here, has room for them). */
static size_t medium_held(const nm_tcache_t *tc)
{
    size_t bytes = 0;
    for (unsigned c = NM_SMALL_CLASSES; c < NM_NUM_CLASSES; c++)
        bytes += bin_mags_of(tc, c) * (size_t)nm_class_mag_cap[c] * nm_class_size[c];
    return bytes;
}

Test(magazine, medium_bins_make_room_among_themselves_not_from_the_small_ones, .init = boot)
{
    nm_tcache_t *tc = nm_tcp;
    static const size_t small[] = { 64, 512, 4096 };
    static const size_t medium[] = { 40 << 10, 64 << 10, 96 << 10, 160 << 10, 256 << 10, 320 << 10, 512 << 10 };
    for (unsigned i = 0; i < 3; i++) {
        void *p = nm_malloc(small[i]);
        cr_assert_not_null(p);
        memset(p, 1, small[i]);
        nm_free(p);
        cr_assert_gt(bin_mags_of(tc, nm_class_of(small[i])), 0, "a small bin without a magazine");
    }
    unsigned gone_seen = 0, kept_seen = 0;
    for (unsigned round = 0; round < 4; round++) {
        for (unsigned i = 0; i < sizeof medium / sizeof medium[0]; i++) {
            unsigned cls = nm_class_of(medium[i]);
            cr_assert(nm_class_is_medium(cls));
            uint32_t used[NM_NUM_CLASSES];
            unsigned had[NM_NUM_CLASSES];
            for (unsigned c = 0; c < NM_NUM_CLASSES; c++) { used[c] = tc->used[c]; had[c] = bin_mags_of(tc, c); }
            void *p = nm_malloc(medium[i]);
            cr_assert_not_null(p);
            memset(p, 1, medium[i]);
            nm_free(p);
            cr_assert_leq(medium_held(tc), NM_TC_MED_BYTES, "medium magazines hold %zu bytes", medium_held(tc));
            for (unsigned k = 0; k < 3; k++)
                cr_assert_gt(bin_mags_of(tc, nm_class_of(small[k])), 0, "a medium bin pushed out a small one");
            uint32_t newest_gone = 0, oldest_kept = UINT32_MAX;
            for (unsigned c = NM_SMALL_CLASSES; c < NM_NUM_CLASSES; c++) {
                if (c == cls || had[c] == 0) continue;
                if (bin_mags_of(tc, c) == 0) { newest_gone = NM_MAX(newest_gone, used[c]); gone_seen++; }
                else { oldest_kept = NM_MIN(oldest_kept, used[c]); kept_seen++; }
            }
            cr_assert_leq(newest_gone, oldest_kept, "a medium bin used at %u went back, one used at %u stayed",
                          newest_gone, oldest_kept);
        }
    }
    cr_assert_gt(gone_seen, 0, "no medium bin ever made room: the case tests nothing");
    cr_assert_gt(kept_seen, 0, "no medium bin ever stayed: the bound is not what it says");

    /* a magazine bigger than the bound is cached alone: its bin keeps it round after round */
    size_t big = 900 << 10;
    unsigned bcls = nm_class_of(big);
    cr_assert(nm_class_is_medium(bcls));
    cr_assert_gt((size_t)nm_class_mag_cap[bcls] * nm_class_size[bcls], NM_TC_MED_BYTES, "not bigger than the bound");
    for (unsigned round = 0; round < 3; round++) {
        void *p = nm_malloc(big);
        cr_assert_not_null(p);
        memset(p, 1, 4096);
        nm_free(p);
        cr_assert_eq(bin_mags_of(tc, bcls), 1, "the big block's bin holds no magazine");
        cr_assert_eq(medium_held(tc), (size_t)nm_class_size[bcls], "other medium bins stayed beside it");
    }
}

/* A magazine loaded in a bin names the thread (holder: the hint by which a refill
 * tells another thread's frees, whose blocks it prefetches, from its own). The
 * prefetch itself has no effect a test can see; this checks the hint it rests on. */
Test(magazine, a_loaded_magazine_names_its_holder, .init = boot)
{
    nm_tcache_t *tc = nm_tcp;
    unsigned cls = nm_class_of(64);
    nm_depot_t *d = fresh_depot(cls);
    nm_bin_t *b = &tc->bins[cls];
    cr_assert_null(b->loaded, "the bin was never used");
    nm_mag_t *m = full_mag(d);
    m->holder = tc->tid + 1;                         /* filled by another thread */
    cr_assert_null(nm_depot_put_full(d, m));
    void *top = m->rounds[m->count - 1];
    void *p = nm_malloc(64);
    cr_assert_eq(p, top, "the refill hands out the depot magazine's top round");
    cr_assert_eq(b->loaded, m, "and loads that magazine");
    cr_assert_eq(m->holder, tc->tid, "which now names this thread");
    nm_free(p);

    /* a magazine the thread fills from the slabs names it too */
    unsigned other = nm_class_of(96);
    void *q = nm_malloc(96);
    cr_assert_not_null(q);
    cr_assert_not_null(tc->bins[other].loaded);
    cr_assert_eq(tc->bins[other].loaded->holder, tc->tid);
    nm_free(q);
}

/* Medium slabs: decay returns the pages of blocks free for a whole pass (aged at the
 * first, clean at the next, or clean at once when forced); handing such a block out
 * again forgets both marks and the depot's count of clean blocks */
Test(magazine, medium_blocks_handed_out_again_forget_their_decay_marks, .init = boot)
{
    unsigned cls = NM_SMALL_CLASSES;                  /* the first medium class */
    unsigned per_slab = nm_class_blocks[cls];
    cr_assert_geq(per_slab, 4, "class %u: need a few blocks a slab", cls);
    nm_depot_t *d = fresh_depot(cls);
    void *b[8];
    cr_assert_eq(alloc_locked(d, b, per_slab), per_slab);
    nm_slab_t *s = nm_pme_desc(nm_pagemap_get((uintptr_t)b[0]));
    void *by_index[8];
    for (unsigned i = 0; i < per_slab; i++) {
        memset(b[i], 0x7e, nm_class_size[cls]);
        by_index[(size_t)((char *)b[i] - s->start) / nm_class_size[cls]] = b[i];
    }
    uint64_t purged = nm_gstat_get(NM_C_medium_bytes_purged);

    free_locked(d, &by_index[1], 1);
    free_locked(d, &by_index[3], 1);
    nm_lock(&d->lock);
    nm_slab_decay_locked(d, 0, false);               /* first pass: free, not yet for a whole pass */
    nm_unlock(&d->lock);
    cr_assert_eq(s->aged, (1u << 1) | (1u << 3));
    cr_assert_eq(s->clean, 0);
    cr_assert_eq(d->clean, 0);
    free_locked(d, &by_index[2], 1);
    nm_lock(&d->lock);
    nm_slab_decay_locked(d, 0, false);               /* second pass: 1 and 3 go, 2 ages */
    nm_unlock(&d->lock);
    cr_assert_eq(s->clean, (1u << 1) | (1u << 3));
    cr_assert_eq(s->aged, 1u << 2);
    cr_assert_eq(d->clean, 2);
    cr_assert_gt(nm_gstat_get(NM_C_medium_bytes_purged), purged, "pages went back");

    /* handed out again, lowest first: block 1 (clean), then 2 (aged) and 3 (clean) */
    void *p;
    cr_assert_eq(alloc_locked(d, &p, 1), 1);
    cr_assert_eq(p, by_index[1]);
    cr_assert_eq(s->clean, 1u << 3);
    cr_assert_eq(s->aged, 1u << 2);
    cr_assert_eq(d->clean, 1);
    void *q[2];
    cr_assert_eq(alloc_locked(d, q, 2), 2);
    cr_assert_eq(s->clean, 0);
    cr_assert_eq(s->aged, 0);
    cr_assert_eq(d->clean, 0);
    for (unsigned i = 0; i < 2; i++) memset(q[i], 0x7e, nm_class_size[cls]);   /* usable */
    memset(p, 0x7e, nm_class_size[cls]);
}

/* a batch that visits more slabs than one settle round holds, each of them twice
 * and never twice in a row: every slab is settled exactly once per block, ends
 * with nothing pending, and hands the two blocks back first */
Test(magazine, a_batch_over_many_slabs_settles_each_once, .init = boot)
{
    unsigned cls = nm_class_of(4096);
    unsigned per = nm_class_blocks[cls], nsl = NM_SETTLE_BATCH + 8;
    cr_assert_geq(per, 4);
    nm_depot_t *d = fresh_depot(cls);
    void **all = malloc(nsl * per * sizeof *all);
    cr_assert_eq(alloc_locked(d, all, nsl * per), nsl * per);
    cr_assert_eq(d->nslabs, nsl);
    /* block 1 of every slab, then block per-1 of every slab, the slabs in turn */
    void *batch[2 * (NM_SETTLE_BATCH + 8)];
    unsigned n = 0;
    for (unsigned j = 0; j < 2; j++)
        for (unsigned k = 0; k < nsl; k++) batch[n++] = all[k * per + (j ? per - 1 : 1)];
    free_locked(d, batch, n);
    cr_assert_eq(d->held, nsl * per - n);
    cr_assert_eq(d->nslabs, nsl);
    cr_assert_null(d->spare);
    unsigned on_list = 0;
    for (nm_slab_t *s = d->partial; s; s = s->next) on_list++;
    cr_assert_eq(on_list, nsl, "every slab is partly free");
    for (unsigned k = 0; k < nsl; k++) {
        nm_slab_t *s = nm_pme_desc(nm_pagemap_get((uintptr_t)all[k * per]));
        cr_assert_eq(s->nfree, 2, "slab %u", k);
        cr_assert_eq(s->inuse, per - 2, "slab %u", k);
        cr_assert_eq(s->pend, 0, "slab %u", k);
        cr_assert(s->on_partial);
    }
    /* the freed blocks come back before any fresh one: exactly the batch's */
    void *again[2 * (NM_SETTLE_BATCH + 8)];
    cr_assert_eq(alloc_locked(d, again, n), n);
    for (unsigned i = 0; i < n; i++) {
        bool found = false;
        for (unsigned j = 0; j < n && !found; j++) found = again[i] == batch[j];
        cr_assert(found, "block %u was not one of the freed ones", i);
    }
    cr_assert_null(d->partial, "no slab has a free block left");
    free_locked(d, all, nsl * per);
    cr_assert_eq(d->held, 0);
    free(all);
}

/* a batch of blocks from several slabs, interleaved (runs of one and of several):
 * every slab ends with the right counts, on the partial list while partly free;
 * a slab emptied by the batch becomes the spare, a second one goes back */
Test(magazine, an_interleaved_batch_settles_every_slab, .init = boot)
{
    unsigned cls = 5;
    unsigned per = nm_class_blocks[cls];
    nm_depot_t *d = fresh_depot(cls);
    void **all = malloc(3 * per * sizeof *all);
    cr_assert_eq(alloc_locked(d, all, 3 * per), 3 * per);
    cr_assert_eq(d->nslabs, 3);
    nm_slab_t *sl[3];
    for (unsigned k = 0; k < 3; k++) {
        sl[k] = nm_pme_desc(nm_pagemap_get((uintptr_t)all[k * per]));
        for (unsigned i = 0; i < per; i++)
            cr_assert_eq(nm_pme_desc(nm_pagemap_get((uintptr_t)all[k * per + i])), sl[k], "batches fill one slab at a time");
    }
    /* slabs 0 and 1 wholly, slab 2 ten blocks: A B A B ... then a run of ten of C */
    void **batch = malloc((2 * per + 10) * sizeof *batch);
    unsigned n = 0;
    for (unsigned i = 0; i < per; i++) { batch[n++] = all[i]; batch[n++] = all[per + i]; }
    for (unsigned i = 0; i < 10; i++) batch[n++] = all[2 * per + i];
    free_locked(d, batch, n);
    cr_assert_eq(d->held, per - 10);
    cr_assert_eq(d->nslabs, 2, "one emptied slab is the spare, the other went back");
    cr_assert_not_null(d->spare);
    cr_assert(d->spare == sl[0] || d->spare == sl[1]);
    cr_assert_eq(sl[2]->inuse, per - 10);
    cr_assert_eq(sl[2]->nfree, 10);
    cr_assert(sl[2]->on_partial);
    cr_assert_eq(d->partial, sl[2]);
    cr_assert_null(sl[2]->next, "only the partly free slab is on the partial list");
    /* the ten come back before anything else */
    void *again[10];
    cr_assert_eq(alloc_locked(d, again, 10), 10);
    for (unsigned i = 0; i < 10; i++)
        cr_assert_eq(nm_pme_desc(nm_pagemap_get((uintptr_t)again[i])), sl[2]);
    cr_assert_eq(sl[2]->nfree, 0);
    free_locked(d, all + 2 * per, per);
    cr_assert_eq(d->held, 0);
    free(batch);
    free(all);
}

Test(magazine, an_exiting_thread_spares_fresh_pages_only_while_a_thread_of_its_node_is_busy, .init = boot)
{
    /* this thread's cache is in the list: it stands for the other threads of an exiting one */
    nm_tcache_t *tc = nm_tcp;
    uint64_t now = nm_os_now_ms() + 1000;
    nm_lock(&nm_threads_lock);
    for (const nm_tcache_t *t = nm_threads; t; t = t->next)
        cr_assert(t == tc || t->domain != dom, "another cache of this node is listed: the case is not controlled");
    tc->busy_ms = 0;
    cr_assert_eq(nm_thread_exit_cutoff_locked(dom, now), UINT64_MAX, "no decay check yet: not busy, all go back");
    tc->busy_ms = now - 10;
    cr_assert_eq(nm_thread_exit_cutoff_locked(dom, now), now - NM_DIRTY_AGE_MS,
                 "a decay check 10 ms ago: busy, only pages free NM_DIRTY_AGE_MS go back");
    cr_assert_eq(nm_thread_exit_cutoff_locked(dom + 1, now), UINT64_MAX, "busy on another node: not this node's");
    tc->busy_ms = now - NM_DIRTY_AGE_MS;
    cr_assert_eq(nm_thread_exit_cutoff_locked(dom, now), UINT64_MAX, "a decay check NM_DIRTY_AGE_MS ago: idle");
    nm_unlock(&nm_threads_lock);
}
