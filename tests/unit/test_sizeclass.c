/* tests/unit/test_sizeclass.c — the generated size-class tables (build/sizeclass_table.h)
 * and the inline lookups of include/numamalloc/sizeclass.h.
 *
 * Owns: class boundaries for every request 0..NM_MEDIUM_MAX (small classes by table,
 * medium ones by nm_medium_class), round trips class -> size -> class, monotonic
 * tables, slab geometry (pages, blocks per slab), magazine capacities, the worst-case
 * internal waste bound documented in config.h, nm_size_class_aligned (blocks
 * aligned by construction), and the reciprocals behind nm_slab_index (block index
 * without a division). Pure table checks: nothing is booted. */
#include <criterion/criterion.h>

#include "numamalloc/internal.h"

/* the smallest class whose size is >= n, found by a linear scan of the size table:
 * the reference the O(1) lookup is compared with */
static unsigned ref_class(size_t n)
{
    for (unsigned c = 0; c < NM_NUM_CLASSES; c++)
        if (nm_class_size[c] >= n) return c;
    return NM_NUM_CLASSES;
}

Test(sizeclass, every_request_maps_to_smallest_fitting_class)
{
    for (size_t n = 0; n <= NM_SMALL_MAX; n++) {
        unsigned c = nm_size_class(n);
        cr_assert_lt(c, NM_NUM_CLASSES, "n=%zu: class %u out of range", n, c);
        cr_assert_eq(c, ref_class(n), "n=%zu: class %u (size %u), smallest fitting is %u",
                     n, c, nm_class_size[c], ref_class(n));
        cr_assert_geq(nm_class_size[c], n, "n=%zu does not fit class %u", n, c);
        if (c > 0) cr_assert_lt(nm_class_size[c - 1], n, "n=%zu would fit class %u too", n, c - 1);
    }
    cr_assert_eq(nm_size_class(0), 0, "malloc(0) must use the 16-byte class");
    cr_assert_eq(nm_size_class(NM_SMALL_MAX), NM_SMALL_CLASSES - 1);
}

Test(sizeclass, every_medium_request_maps_to_smallest_fitting_class)
{
    for (size_t n = NM_SMALL_MAX + 1; n <= NM_MEDIUM_MAX; n++) {
        unsigned c = (unsigned)nm_medium_class(n);
        cr_assert(c >= NM_SMALL_CLASSES && c < NM_NUM_CLASSES, "n=%zu: class %u", n, c);
        cr_assert_eq(c, ref_class(n), "n=%zu: class %u, smallest fitting is %u", n, c, ref_class(n));
        cr_assert_eq(nm_class_of(n), c, "nm_class_of(%zu)", n);
    }
    cr_assert_eq(nm_medium_class(NM_MEDIUM_MAX), NM_NUM_CLASSES - 1);
    for (size_t n = 0; n <= NM_SMALL_MAX; n += 7) cr_assert_eq(nm_class_of(n), nm_size_class(n), "n=%zu", n);
}

Test(sizeclass, documented_layout)
{
    /* config.h: 16..128 step 16, then four classes per doubling up to 32 KiB (small),
     * and on up to 1 MiB (medium) */
    cr_assert_eq(nm_class_size[0], 16);
    for (unsigned c = 0; c < 8; c++) cr_assert_eq(nm_class_size[c], 16 * (c + 1), "class %u", c);
    unsigned c = 8;
    for (unsigned base = 128; base < NM_SMALL_MAX; base *= 2)
        for (unsigned k = 1; k <= 4; k++, c++)
            cr_assert_eq(nm_class_size[c], base + k * base / 4, "class %u", c);
    cr_assert_eq(c, NM_SMALL_CLASSES);
    cr_assert_eq(nm_class_size[NM_SMALL_CLASSES - 1], NM_SMALL_MAX);
    for (size_t base = NM_SMALL_MAX; base < NM_MEDIUM_MAX; base *= 2)
        for (unsigned k = 1; k <= 4; k++, c++)
            cr_assert_eq(nm_class_size[c], base + k * base / 4, "class %u", c);
    cr_assert_eq(c, NM_NUM_CLASSES);
    cr_assert_eq(nm_class_size[NM_NUM_CLASSES - 1], NM_MEDIUM_MAX);
}

Test(sizeclass, round_trips)
{
    for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
        size_t s = nm_class_to_size(c);
        cr_assert_eq(s, nm_class_size[c]);
        cr_assert_eq(nm_class_of(s), c, "size %zu -> class %zu, expected %u", s, nm_class_of(s), c);
        cr_assert_eq(nm_class_of(s - 1), c, "size %zu - 1", s);   /* classes are >= 16 apart */
        if (c + 1 < NM_NUM_CLASSES) cr_assert_eq(nm_class_of(s + 1), c + 1, "size %zu + 1", s);
        /* every size is a multiple of the 16-byte quantum: blocks are 16-byte aligned */
        cr_assert_eq(s % 16, 0, "class %u size %zu", c, s);
    }
}

Test(sizeclass, tables_monotonic)
{
    for (unsigned c = 1; c < NM_NUM_CLASSES; c++) {
        cr_assert_gt(nm_class_size[c], nm_class_size[c - 1], "sizes not increasing at %u", c);
        cr_assert_leq(nm_class_mag_cap[c], nm_class_mag_cap[c - 1], "magazine capacity grows at class %u", c);
    }
    /* a medium magazine holds about NM_MED_MAG_BYTES, never less than a block */
    for (unsigned c = NM_SMALL_CLASSES; c < NM_NUM_CLASSES; c++) {
        cr_assert_geq(nm_class_mag_cap[c], 1, "class %u", c);
        cr_assert_eq(nm_class_mag_cap[c], NM_MAX(NM_MED_MAG_BYTES / nm_class_size[c], 1u), "class %u", c);
        cr_assert_leq((size_t)nm_class_mag_cap[c] * nm_class_size[c], NM_MAX(NM_MED_MAG_BYTES, (size_t)nm_class_size[c]));
    }
    for (size_t q = 1; q < NM_ARRAY_LEN(nm_class_of_q); q++)
        cr_assert_geq(nm_class_of_q[q], nm_class_of_q[q - 1], "class-of-quantum table decreases at %zu", q);
    cr_assert_eq(NM_ARRAY_LEN(nm_class_of_q), (NM_SMALL_MAX >> NM_QUANTUM_SHIFT) + 1);
}

Test(sizeclass, slab_geometry)
{
    const size_t page = (size_t)1 << NM_GRANULE_SHIFT;
    for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
        size_t size = nm_class_size[c];
        unsigned pages = nm_class_pages[c];
        unsigned blocks = nm_class_blocks[c];
        cr_assert(pages >= 1 && pages <= NM_SLAB_MAX_PAGES, "class %u: %u pages", c, pages);
        cr_assert_leq((size_t)blocks * size, pages * page, "class %u: %u blocks of %zu overflow %u pages",
                      c, blocks, size, pages);
        cr_assert_eq(blocks, pages * page / size, "class %u: the slab could hold more blocks", c);
        if (c < NM_SMALL_CLASSES) {
            cr_assert_geq(blocks, 8, "class %u: only %u blocks per slab", c, blocks);
        } else {
            /* medium: a whole number of blocks, nothing wasted; a free-block bitmap of one byte */
            cr_assert_geq(blocks, 1, "class %u", c);
            cr_assert_leq(blocks, 8, "class %u: %u blocks", c, blocks);
            cr_assert_eq((size_t)blocks * size, pages * page, "class %u: slab tail wasted", c);
        }
        /* a slab fits its 64-page segment */
        cr_assert_leq(pages, NM_SEG_PAGES);
    }
}

Test(sizeclass, magazine_capacity)
{
    for (unsigned c = 0; c < NM_SMALL_CLASSES; c++) {
        unsigned cap = nm_class_mag_cap[c];
        size_t size = nm_class_size[c];
        cr_assert(cap >= NM_MAG_MIN_CAP && cap <= NM_MAX(NM_MAG_MAX_CAP, NM_MAG_TINY_CAP), "class %u: capacity %u", c, cap);
        cr_assert(cap >= 8 && cap <= 128, "class %u: capacity %u", c, cap);
        if (size < 128) {
            /* tiny: up to 128 rounds within 8 KiB, never fewer than the general rule gives */
            cr_assert_eq(cap, NM_MIN(NM_MAG_TINY_CAP, NM_MAG_TINY_BYTES / size), "class %u", c);
            cr_assert_leq(cap * size, NM_MAG_TINY_BYTES, "class %u", c);
            cr_assert_gt(cap, 64, "class %u", c);
        } else if (cap > NM_MAG_MIN_CAP && cap < NM_MAG_MAX_CAP) {
            /* about NM_MAG_BYTES per magazine unless clamped */
            cr_assert_eq(cap, NM_MAG_BYTES / size, "class %u", c);
        } else {
            cr_assert_eq(cap, size <= NM_MAG_BYTES / NM_MAG_MAX_CAP ? NM_MAG_MAX_CAP : NM_MAG_MIN_CAP, "class %u", c);
        }
    }
}

/* Worst case for class c: the smallest request that lands in it is previous size + 1,
 * wasting size - previous - 1 bytes (config.h). */
static double worst_waste(unsigned c)
{
    size_t prev = c ? nm_class_size[c - 1] : 0;
    size_t size = nm_class_size[c];
    /* confirm the request really lands in c (and not in the class below) */
    cr_assert_eq(nm_class_of(prev + 1), c, "class %u", c);
    return (double)(size - prev - 1) / (double)size;
}

Test(sizeclass, internal_waste_bound)
{
    double max_from_32 = 0;
    unsigned argmax = 0;
    for (unsigned c = 1; c < NM_NUM_CLASSES; c++) {
        double w = worst_waste(c);
        if (w > max_from_32) { max_from_32 = w; argmax = c; }
        if (nm_class_size[c] >= 144)
            cr_assert_leq(w, 0.20, "class %u (%u bytes): worst-case waste %.1f%% > 20%%", c, nm_class_size[c], w * 100);
    }
    /* 46.9 % for 32 (a 17-byte request), the worst of all classes from 32 up */
    cr_assert_eq(nm_class_size[argmax], 32, "worst class is %u bytes", nm_class_size[argmax]);
    cr_assert(max_from_32 > 0.468 && max_from_32 < 0.470, "class 32 worst waste %.2f%%", max_from_32 * 100);
    /* 19.4 % for 160, the documented worst among the later first-of-doubling classes */
    cr_assert(worst_waste(nm_size_class(160)) > 0.193 && worst_waste(nm_size_class(160)) < 0.195);
    /* brute force agrees with the closed form: largest waste over all requests of a class */
    for (unsigned c = 1; c < NM_NUM_CLASSES; c++) {
        double worst = 0;
        for (size_t n = nm_class_size[c - 1] + 1; n <= nm_class_size[c]; n++) {
            double w = (double)(nm_class_size[c] - n) / (double)nm_class_size[c];
            if (w > worst) worst = w;
        }
        cr_assert_float_eq(worst, worst_waste(c), 1e-12, "class %u", c);
    }
}

Test(sizeclass, aligned_classes)
{
    for (size_t align = 1; align <= NM_SMALL_MAX; align <<= 1) {
        for (size_t n = 0; n <= NM_SMALL_MAX; n += (n < 1024 ? 1 : 61)) {
            unsigned c = nm_size_class_aligned(n, align);
            /* reference: first class >= n whose size is a multiple of align */
            unsigned r = NM_NUM_CLASSES;
            for (unsigned k = ref_class(n); k < NM_NUM_CLASSES; k++)
                if (nm_class_size[k] % align == 0) { r = k; break; }
            cr_assert_eq(c, r, "n=%zu align=%zu: class %u, expected %u", n, align, c, r);
            if (c < NM_NUM_CLASSES) {
                cr_assert_geq(nm_class_size[c], n);
                cr_assert_eq(nm_class_size[c] % align, 0, "n=%zu align=%zu: size %u", n, align, nm_class_size[c]);
            }
        }
    }
    /* every power of two up to 32 KiB has a class, so any small aligned request fits */
    for (size_t align = 16; align <= NM_SMALL_MAX; align <<= 1) {
        unsigned c = nm_size_class_aligned(align, align);
        cr_assert_lt(c, NM_NUM_CLASSES, "align %zu", align);
        cr_assert_eq(nm_class_size[c], align, "size == align %zu should be exact", align);
        cr_assert_eq(nm_size_class_aligned(1, align), c, "align %zu, n = 1", align);
    }
    cr_assert_eq(nm_size_class_aligned(NM_SMALL_MAX + 1, 16), NM_SMALL_CLASSES);
    cr_assert_eq(nm_size_class_aligned(NM_MEDIUM_MAX + 1, 16), NM_NUM_CLASSES);
    /* medium classes are 8 KiB multiples and slabs 64 KiB aligned: up to 64 KiB */
    cr_assert_eq(nm_class_size[nm_size_class_aligned(40000, 65536)], 65536);
    cr_assert_eq(nm_size_class_aligned(100, 131072), NM_NUM_CLASSES, "above 64 KiB: a mapping of its own");
    cr_assert_eq(nm_size_class_aligned((size_t)1 << 40, 64), NM_NUM_CLASSES);
    /* 8192 + 1 with 8 KiB alignment: 10240..14336 are not multiples, 16384 is */
    cr_assert_eq(nm_class_size[nm_size_class_aligned(8193, 8192)], 16384);
}

/* nm_slab_index multiplies by nm_class_recip instead of dividing. It must be exact at
 * every block start of a slab (frees, NUMAMALLOC_CHECK's request sizes); inside a
 * block it may read one high in the last bytes before the next block (classes of
 * 20 KiB and up, in slabs of up to 1 MiB), which still never names p as a block
 * start, so interior pointers into medium blocks are still told apart (slab.c
 * not_a_block; small blocks are checked by division). */
Test(sizeclass, slab_index_is_exact_at_block_starts)
{
    unsigned high = 0;
    for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
        size_t size = nm_class_size[c];
        size_t span = (size_t)nm_class_pages[c] << NM_GRANULE_SHIFT;
        nm_slab_t s = { .start = (char *)(uintptr_t)((size_t)1 << 30), .cls = (uint8_t)c };
        cr_assert_eq(nm_class_is_medium(c), c >= NM_SMALL_CLASSES, "class %u", c);
        for (size_t k = 0; k < nm_class_blocks[c]; k++)
            cr_assert_eq(nm_slab_index(&s, s.start + k * size), k, "class %u (%zu bytes): block %zu", c, size, k);
        for (size_t off = 0; off < span; off++) {
            size_t idx = nm_slab_index(&s, s.start + off), exact = off / size;
            cr_assert(idx == exact || (idx == exact + 1 && off % size != 0 && idx * size - off < 256),
                      "class %u (%zu bytes): offset %zu gives block %zu, holds %zu", c, size, off, idx, exact);
            if (idx != exact) high++;
        }
    }
    /* the approximation is visible (so the bound above is what is being tested), and rare */
    cr_assert(high > 0 && high < 1000, "%u offsets read one high", high);
}
