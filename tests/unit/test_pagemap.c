/* tests/unit/test_pagemap.c — the two-level page map (src/pagemap.c,
 * include/numamalloc/pagemap.h): entry encoding, register/lookup/unregister, ranges
 * crossing a leaf (4 GiB) boundary, unknown and out-of-range addresses, and lock-free
 * readers racing a writer.
 *
 * The map only stores numbers for addresses, so the tests use made-up addresses in
 * regions no allocator here hands out (0x5a00_0000_0000 and up): nothing is mapped
 * there except the leaves the map itself creates. Nothing is booted. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "numamalloc/internal.h"

#define G         ((uintptr_t)NM_GRANULE)
#define LEAF_SPAN (G * NM_PM_LEAF_LEN)              /* 4 GiB of addresses per leaf */
#define BASE      ((uintptr_t)0x5a0000000000)      /* leaf-aligned, far from real mappings */

/* a distinct, valid-looking entry (descriptor 64-byte aligned below 2^48) */
static nm_pme_t entry(unsigned kind, unsigned dom, unsigned cls, uintptr_t desc)
{
    return nm_pme_make(kind, dom, cls, (const void *)(desc & NM_PME_DESC_MASK));
}

Test(pagemap, geometry)
{
    cr_assert_eq(LEAF_SPAN, (uintptr_t)4 << 30, "a leaf covers 4 GiB");
    cr_assert_eq(NM_PM_ROOT_LEN * LEAF_SPAN, (uintptr_t)1 << NM_VA_BITS);
    cr_assert_eq(BASE % LEAF_SPAN, 0);
}

Test(pagemap, entry_encoding_round_trips)
{
    static const unsigned kinds[] = { NM_KIND_SLAB, NM_KIND_LARGE, NM_KIND_HUGE, NM_KIND_ARENA };
    static const unsigned doms[] = { 0, 1, 7, 1023, NM_MAX_DOMAINS - 1 };
    static const uintptr_t descs[] = { 0, 64, 0x7fffffffffc0, 0x00007f1234567840 };
    for (unsigned k = 0; k < NM_ARRAY_LEN(kinds); k++)
        for (unsigned d = 0; d < NM_ARRAY_LEN(doms); d++)
            for (unsigned c = 0; c < NM_NUM_CLASSES; c++)
                for (unsigned x = 0; x < NM_ARRAY_LEN(descs); x++) {
                    nm_pme_t e = entry(kinds[k], doms[d], c, descs[x]);
                    cr_assert_eq(nm_pme_kind(e), kinds[k]);
                    cr_assert_eq(nm_pme_domain(e), doms[d]);
                    cr_assert_eq(nm_pme_class(e), c);
                    cr_assert_eq((uintptr_t)nm_pme_desc(e), descs[x]);
                    /* the free fast path compares the top 16 bits with one tag */
                    cr_assert_eq((uint16_t)(e >> NM_PME_TAG_SHIFT), nm_pme_tag_make(doms[d], kinds[k]));
                    cr_assert_neq(e, 0, "a registered entry must never read as none");
                }
}

Test(pagemap, set_get_clear)
{
    uintptr_t a = BASE + 5 * G;
    nm_pme_t e = entry(NM_KIND_SLAB, 0, 3, 0x1000040);
    cr_assert_eq(nm_pagemap_get(a), 0, "nothing registered yet");
    cr_assert(nm_pagemap_set(a, e));
    /* every address inside the granule reads the entry, none outside it */
    cr_assert_eq(nm_pagemap_get(a), e);
    cr_assert_eq(nm_pagemap_get(a + 1), e);
    cr_assert_eq(nm_pagemap_get(a + G / 2), e);
    cr_assert_eq(nm_pagemap_get(a + G - 1), e);
    cr_assert_eq(nm_pagemap_get(a + G), 0);
    cr_assert_eq(nm_pagemap_get(a - 1), 0);
    /* an unaligned set registers the granule holding the address */
    nm_pme_t f = entry(NM_KIND_LARGE, 1, 0, 0x2000000);
    cr_assert(nm_pagemap_set(a + 3 * G + 12345, f));
    cr_assert_eq(nm_pagemap_get(a + 3 * G), f);
    cr_assert_eq(nm_pagemap_get(a + 4 * G - 1), f);
    cr_assert_eq(nm_pagemap_get(a + 2 * G), 0);
    /* overwrite, then clear */
    cr_assert(nm_pagemap_set(a, f));
    cr_assert_eq(nm_pagemap_get(a), f);
    nm_pagemap_clear_range(a, 1);
    cr_assert_eq(nm_pagemap_get(a), 0);
    cr_assert_eq(nm_pagemap_get(a + 3 * G), f, "clearing one granule left its neighbours alone");
    cr_assert(nm_pagemap_set(a + 3 * G, 0), "setting 0 is a clear");
    cr_assert_eq(nm_pagemap_get(a + 3 * G), 0);
}

Test(pagemap, range_exact_bounds)
{
    uintptr_t start = BASE + LEAF_SPAN + 100 * G;
    nm_pme_t e = entry(NM_KIND_SLAB, 2, 9, 0x3000000);
    cr_assert(nm_pagemap_set_range(start, 8 * G, e));
    cr_assert_eq(nm_pagemap_get(start - 1), 0);
    for (unsigned i = 0; i < 8; i++) {
        cr_assert_eq(nm_pagemap_get(start + i * G), e, "granule %u", i);
        cr_assert_eq(nm_pagemap_get(start + i * G + G - 1), e, "end of granule %u", i);
    }
    cr_assert_eq(nm_pagemap_get(start + 8 * G), 0, "a range of 8 granules registers exactly 8");
    /* an unaligned range touches every granule it overlaps */
    nm_pme_t f = entry(NM_KIND_ARENA, 0, 0, 0);
    cr_assert(nm_pagemap_set_range(start + 20 * G + G - 1, 2, f));
    cr_assert_eq(nm_pagemap_get(start + 20 * G), f);
    cr_assert_eq(nm_pagemap_get(start + 21 * G), f);
    cr_assert_eq(nm_pagemap_get(start + 22 * G), 0);
    cr_assert_eq(nm_pagemap_get(start + 19 * G), 0);
    nm_pagemap_clear_range(start, 8 * G);
    for (unsigned i = 0; i < 8; i++) cr_assert_eq(nm_pagemap_get(start + i * G), 0, "granule %u", i);
    cr_assert_eq(nm_pagemap_get(start + 20 * G), f, "clear_range stays inside its range");
}

Test(pagemap, range_crossing_a_leaf_boundary)
{
    /* three granules at the end of one leaf and three at the start of the next */
    uintptr_t boundary = BASE + 3 * LEAF_SPAN;
    uintptr_t start = boundary - 3 * G;
    nm_pme_t e = entry(NM_KIND_SLAB, 0, 39, 0x4000000);
    cr_assert_eq(nm_pagemap_get(boundary), 0, "leaf not created yet reads none");
    cr_assert(nm_pagemap_set_range(start, 6 * G, e));
    for (int i = -3; i < 3; i++)
        cr_assert_eq(nm_pagemap_get(boundary + (uintptr_t)(i * (intptr_t)G)), e, "granule %d from the boundary", i);
    cr_assert_eq(nm_pagemap_get(start - G), 0);
    cr_assert_eq(nm_pagemap_get(boundary + 3 * G), 0);
    /* the same granule index in the neighbouring leaves is untouched */
    cr_assert_eq(nm_pagemap_get(boundary - LEAF_SPAN), 0);
    cr_assert_eq(nm_pagemap_get(start + LEAF_SPAN + 3 * G), 0);
    nm_pagemap_clear_range(start, 6 * G);
    for (int i = -3; i < 3; i++)
        cr_assert_eq(nm_pagemap_get(boundary + (uintptr_t)(i * (intptr_t)G)), 0, "granule %d cleared", i);
}

Test(pagemap, unknown_pointers_read_none)
{
    int on_stack;
    static int in_data;
    cr_assert_eq(nm_pagemap_get((uintptr_t)&on_stack), 0);
    cr_assert_eq(nm_pagemap_get((uintptr_t)&in_data), 0);
    cr_assert_eq(nm_pagemap_get((uintptr_t)&nm_pagemap_set), 0);   /* code */
    cr_assert_eq(nm_pagemap_get(0), 0);
    cr_assert_eq(nm_pagemap_get(16), 0);
    /* in a leaf that exists, next to a registered granule */
    cr_assert(nm_pagemap_set(BASE + 7 * LEAF_SPAN + 10 * G, entry(NM_KIND_LARGE, 0, 0, 0x5000000)));
    cr_assert_eq(nm_pagemap_get(BASE + 7 * LEAF_SPAN + 11 * G), 0);
    cr_assert_eq(nm_pagemap_get(BASE + 7 * LEAF_SPAN), 0);
    /* the last address below 2^48: a valid index, nothing registered */
    cr_assert_eq(nm_pagemap_get(((uintptr_t)1 << 48) - 1), 0);
}

Test(pagemap, addresses_beyond_48_bits_read_none)
{
    static const uintptr_t wild[] = {
        (uintptr_t)1 << 48, 0x00ff000000000000, 0x0100000000000000, 0x7fffffffffffffff,
        0xffff800000000000, 0xffffffffff600000 /* vsyscall */, 0xfffffffffffffff0, UINTPTR_MAX,
    };
    for (unsigned i = 0; i < NM_ARRAY_LEN(wild); i++) {
        cr_assert_eq(nm_pagemap_get(wild[i]), 0, "%#lx", (unsigned long)wild[i]);
        /* registering there is refused (where start + 1 does not wrap around: the
         * allocator never registers the last byte of the address space), clearing is
         * harmless, neither crashes */
        if (wild[i] != UINTPTR_MAX)
            cr_assert_not(nm_pagemap_set(wild[i], entry(NM_KIND_SLAB, 0, 1, 0x6000000)), "%#lx", (unsigned long)wild[i]);
        nm_pagemap_clear_range(wild[i], G);
        cr_assert_eq(nm_pagemap_get(wild[i]), 0, "%#lx", (unsigned long)wild[i]);
    }
    /* a 57-bit address whose low 48 bits alias a registered granule must not match */
    uintptr_t a = BASE + 9 * LEAF_SPAN;
    nm_pme_t e = entry(NM_KIND_SLAB, 0, 2, 0x7000000);
    cr_assert(nm_pagemap_set(a, e));
    cr_assert_eq(nm_pagemap_get(a), e);
    cr_assert_eq(nm_pagemap_get(a | ((uintptr_t)1 << 48)), 0);
    cr_assert_eq(nm_pagemap_get(a | 0xff00000000000000), 0);
}

Test(pagemap, leaves_are_counted)
{
    uint64_t before = nm_gstat_get(NM_C_pagemap_bytes);
    cr_assert(nm_pagemap_set(BASE + 11 * LEAF_SPAN, entry(NM_KIND_SLAB, 0, 0, 0x40)));
    uint64_t one = nm_gstat_get(NM_C_pagemap_bytes);
    cr_assert_eq(one - before, NM_PM_LEAF_LEN * sizeof(nm_pme_t), "one new leaf of 512 KiB");
    cr_assert(nm_pagemap_set(BASE + 11 * LEAF_SPAN + 500 * G, entry(NM_KIND_SLAB, 0, 0, 0x40)));
    cr_assert_eq(nm_gstat_get(NM_C_pagemap_bytes), one, "same leaf: no new memory");
    /* clearing where no leaf exists does not create one */
    nm_pagemap_clear_range(BASE + 12 * LEAF_SPAN, 4 * G);
    cr_assert_eq(nm_gstat_get(NM_C_pagemap_bytes), one);
}

/* ---- concurrent readers ------------------------------------------------------------
 * One writer registers and unregisters ranges (some in leaves it creates while the
 * readers run); each range always gets the same entry, a function of its index. Readers
 * walk all ranges at once and must see, for each granule, either none or exactly its
 * range's entry, never a torn or foreign value; their own stable granules must read
 * back exactly, every time. */

#define RANGES      48
#define RANGE_G     5                    /* granules per range */
#define ROUNDS      4000
#define READERS     3

/* range r: leaf 20 + r % 6; the first range of each leaf straddles its upper
 * boundary (2 granules below, 3 above), the others sit 1000 granules apart */
static uintptr_t range_start(unsigned r)
{
    uintptr_t leaf = BASE + (uintptr_t)(20 + r % 6) * LEAF_SPAN;
    unsigned k = r / 6;
    return k == 0 ? leaf + LEAF_SPAN - 2 * G : leaf + (uintptr_t)k * 1000 * G;
}

static nm_pme_t range_entry(unsigned r)
{
    return entry(1 + r % 4, r % 13, r % NM_NUM_CLASSES, ((uintptr_t)(r + 1) << 12) | 0x40);
}

static uintptr_t stable_addr(unsigned reader, unsigned i) { return BASE + 40 * LEAF_SPAN + (reader * 64 + i) * G; }
static nm_pme_t stable_entry(unsigned reader, unsigned i) { return entry(NM_KIND_SLAB, reader, i % NM_NUM_CLASSES, (uintptr_t)(reader * 64 + i + 1) << 6); }

static volatile int writer_done;

typedef struct { unsigned id; unsigned long reads, hits, bad; uintptr_t bad_addr; nm_pme_t bad_val; } reader_t;

static void *reader_main(void *arg)
{
    reader_t *rd = arg;
    /* keep reading until the writer is done, and at least a few full passes */
    for (unsigned pass = 0; pass < 20 || !__atomic_load_n(&writer_done, __ATOMIC_ACQUIRE); pass++) {
        for (unsigned r = 0; r < RANGES; r++) {
            for (unsigned g = 0; g < RANGE_G; g++) {
                uintptr_t a = range_start(r) + g * G + (g * 4099) % G;
                nm_pme_t v = nm_pagemap_get(a);
                rd->reads++;
                if (v == 0) continue;
                if (v == range_entry(r)) rd->hits++;
                else if (rd->bad++ == 0) { rd->bad_addr = a; rd->bad_val = v; }
            }
        }
        for (unsigned i = 0; i < 64; i++) {
            nm_pme_t v = nm_pagemap_get(stable_addr(rd->id, i) + i);
            if (v != stable_entry(rd->id, i) && rd->bad++ == 0) { rd->bad_addr = stable_addr(rd->id, i); rd->bad_val = v; }
        }
    }
    return NULL;
}

Test(pagemap, concurrent_readers_see_none_or_the_exact_entry)
{
    for (unsigned r = 0; r < READERS; r++)
        for (unsigned i = 0; i < 64; i++) cr_assert(nm_pagemap_set(stable_addr(r, i), stable_entry(r, i)));
    pthread_t th[READERS];
    reader_t rd[READERS];
    for (unsigned r = 0; r < READERS; r++) {
        rd[r] = (reader_t){ .id = r };
        cr_assert_eq(pthread_create(&th[r], NULL, reader_main, &rd[r]), 0);
    }
    for (unsigned round = 0; round < ROUNDS; round++) {
        for (unsigned r = round % 2; r < RANGES; r += 2) cr_assert(nm_pagemap_set_range(range_start(r), RANGE_G * G, range_entry(r)));
        for (unsigned r = round % 2; r < RANGES; r += 2) nm_pagemap_clear_range(range_start(r), RANGE_G * G);
        if (round % 3 == 0)
            for (unsigned r = 0; r < RANGES; r += 3) cr_assert(nm_pagemap_set_range(range_start(r), RANGE_G * G, range_entry(r)));
        if (round % 3 == 1)
            for (unsigned r = 0; r < RANGES; r += 3) nm_pagemap_clear_range(range_start(r), RANGE_G * G);
    }
    __atomic_store_n(&writer_done, 1, __ATOMIC_RELEASE);
    for (unsigned r = 0; r < READERS; r++) {
        pthread_join(th[r], NULL);
        cr_assert_eq(rd[r].bad, 0, "reader %u: %lu bad reads, first at %#lx: %#lx", r, rd[r].bad,
                     (unsigned long)rd[r].bad_addr, (unsigned long)rd[r].bad_val);
        cr_assert_gt(rd[r].reads, 0);
    }
    /* ranges do not overlap: every range reads back exactly, then clears */
    for (unsigned r = 0; r < RANGES; r++) {
        cr_assert(nm_pagemap_set_range(range_start(r), RANGE_G * G, range_entry(r)));
        for (unsigned g = 0; g < RANGE_G; g++) cr_assert_eq(nm_pagemap_get(range_start(r) + g * G), range_entry(r));
    }
    for (unsigned r = 0; r < RANGES; r++) nm_pagemap_clear_range(range_start(r), RANGE_G * G);
    for (unsigned r = 0; r < RANGES; r++) cr_assert_eq(nm_pagemap_get(range_start(r)), 0);
    for (unsigned r = 0; r < READERS; r++)
        for (unsigned i = 0; i < 64; i++) cr_assert_eq(nm_pagemap_get(stable_addr(r, i)), stable_entry(r, i));
}

/* ---- the live map ---------------------------------------------------------------------
 * Medium blocks start on 8 KiB boundaries: each has its own flag, set at malloc and
 * tested and cleared at free, by whichever thread holds the block. */

#define LIVE_BASE (BASE + 8 * LEAF_SPAN)
#define LIVE_STEP ((uintptr_t)1 << NM_LIVE_SHIFT)

Test(pagemap, live_flags_set_test_and_clear_once)
{
    cr_assert(nm_pagemap_live_ready(LIVE_BASE));
    const void *a = (const void *)LIVE_BASE, *b = (const void *)(LIVE_BASE + LIVE_STEP);
    cr_assert(!nm_live_test(a) && !nm_live_test(b));
    cr_assert(!nm_live_clear(a), "a block never handed out is not held");
    nm_live_set(a);
    cr_assert(nm_live_test(a));
    cr_assert(!nm_live_test(b), "the next 8 KiB is another block");
    cr_assert(nm_live_clear(a));
    cr_assert(!nm_live_clear(a), "a second free of the same block is refused");
    cr_assert(!nm_live_test((const void *)(LIVE_BASE + LEAF_SPAN)), "no leaf there: not held");
}

/* Threads each hand out and take back their own blocks, 8 KiB apart, so that all
 * of them share words and cache lines: a flag must never be lost or set by another
 * block's update (a plain read-modify-write of a shared word would do both). */
enum { LIVE_THREADS = 4, LIVE_BLOCKS = 16, LIVE_ROUNDS = 200000 };
typedef struct { unsigned id; unsigned long bad; } live_arg_t;

static void *live_main(void *arg)
{
    live_arg_t *la = arg;
    for (unsigned r = 0; r < LIVE_ROUNDS; r++) {
        for (unsigned k = 0; k < LIVE_BLOCKS; k++) {
            const void *p = (const void *)(LIVE_BASE + (k * LIVE_THREADS + la->id) * LIVE_STEP);
            if ((r + k) % 2 == 0) {
                nm_live_set(p);
                if (!nm_live_test(p)) la->bad++;
            } else if (!nm_live_clear(p) && r > 0) {
                la->bad++;                               /* set in the round before */
            }
        }
    }
    return NULL;
}

Test(pagemap, live_flags_of_neighbouring_blocks_are_independent_across_threads)
{
    cr_assert(nm_pagemap_live_ready(LIVE_BASE));
    pthread_t th[LIVE_THREADS];
    live_arg_t la[LIVE_THREADS];
    for (unsigned t = 0; t < LIVE_THREADS; t++) {
        la[t] = (live_arg_t){ .id = t };
        cr_assert_eq(pthread_create(&th[t], NULL, live_main, &la[t]), 0);
    }
    for (unsigned t = 0; t < LIVE_THREADS; t++) {
        pthread_join(th[t], NULL);
        cr_assert_eq(la[t].bad, 0, "thread %u: %lu flags lost or wrong", t, la[t].bad);
    }
    /* each block ends as its last round (LIVE_ROUNDS - 1) left it: held where that set it */
    for (unsigned t = 0; t < LIVE_THREADS; t++)
        for (unsigned k = 0; k < LIVE_BLOCKS; k++) {
            bool held = (LIVE_ROUNDS - 1 + k) % 2 == 0;
            cr_assert_eq(nm_live_test((const void *)(LIVE_BASE + (k * LIVE_THREADS + t) * LIVE_STEP)), held);
        }
}
