/* tests/api/test_aligned.c — aligned allocation under the preload: posix_memalign,
 * aligned_alloc, memalign, valloc, pvalloc.
 *
 * Owns: invalid alignments (EINVAL, output untouched), every power of two from 8 B to
 * 64 MiB and 1 GiB with sizes 1, alignment, alignment + 1, 100000 and 3 MiB (pointer
 * aligned, whole usable size writable), C17 aligned_alloc rejecting non-powers of two,
 * glibc's memalign rounding them up, page-aligned valloc/pvalloc (pvalloc rounds the
 * size up to a page and malloc_usable_size works on it: jemalloc crashes there), and
 * size == alignment for 256, 512 and 1024, where mimalloc 2.0.9 misaligns
 * (a bug of mimalloc 2.0.9). */
#include <malloc.h>

#include "api/api_util.h"

static size_t page;

static void init(void) { page = (size_t)sysconf(_SC_PAGESIZE); }

/* p is aligned, ours, with at least n usable bytes, all writable; touch_step > 1
 * writes one byte per step instead (for the gigabyte-sized blocks) */
static void check_block(void *p, size_t align, size_t n, size_t touch_step, const char *what)
{
    cr_assert_not_null(p, "%s(align %zu, size %zu) failed", what, align, n);
    cr_assert_eq((uintptr_t)p % align, 0, "%s(align %zu, size %zu) = %p", what, align, n, p);
    cr_assert_neq(kind_of(p), NUMAMALLOC_KIND_UNKNOWN, "%s(align %zu, size %zu): block not ours", what, align, n);
    size_t u = malloc_usable_size(p);
    cr_assert_geq(u, n, "%s(align %zu, size %zu): usable %zu", what, align, n, u);
    unsigned char *b = p;
    if (touch_step <= 1) {
        memset(b, 0x3c, u);
        cr_assert_eq(b[u - 1], 0x3c);
    } else {
        for (size_t i = 0; i < u; i += touch_step) b[i] = 0x3c;
        b[u - 1] = 0x3c;
    }
}

Test(aligned, posix_memalign_rejects_bad_alignments, .init = init)
{
    static const size_t bad[] = { 0, 1, 2, 3, 4, 5, 6, 7, 12, 24, 48, 96, 100, 4095, 4097, (size_t)3 << 20, SIZE_MAX,
                                  ((size_t)1 << 63) + 8 };
    for (unsigned i = 0; i < ARRAY_LEN(bad); i++) {
        void *out = (void *)0x4242;
        errno = 99;
        int rc = posix_memalign(&out, bad[i], 100);
        cr_assert_eq(rc, EINVAL, "posix_memalign(align %zu) = %d", bad[i], rc);
        cr_assert_eq(out, (void *)0x4242, "output written on failure (align %zu)", bad[i]);
        cr_assert_eq(errno, 99, "errno changed (align %zu)", bad[i]);
    }
    /* sizeof(void *) itself is the smallest valid alignment */
    void *out = NULL;
    cr_assert_eq(posix_memalign(&out, sizeof(void *), 100), 0);
    cr_assert_eq((uintptr_t)out % sizeof(void *), 0);
    free(out);
}

Test(aligned, impossible_alignments_fail_with_enomem, .init = init)
{
    /* valid powers of two that no address space can honour */
    static const size_t huge[] = { (size_t)1 << 47, (size_t)1 << 62, (size_t)1 << 63 };
    for (unsigned i = 0; i < ARRAY_LEN(huge); i++) {
        void *out = (void *)0x4242;
        cr_assert_eq(posix_memalign(&out, huge[i], 1), ENOMEM, "posix_memalign(align 2^%d)", __builtin_ctzl(huge[i]));
        cr_assert_eq(out, (void *)0x4242);
        errno = 0;
        cr_assert_null(aligned_alloc(huge[i], 1));
        cr_assert_eq(errno, ENOMEM);
        errno = 0;
        cr_assert_null(memalign(huge[i], 1));
        cr_assert_eq(errno, ENOMEM);
    }
}

Test(aligned, every_power_of_two_up_to_64_mib, .init = init)
{
    for (size_t a = 8; a <= ((size_t)64 << 20); a <<= 1) {
        const size_t sizes[] = { 1, a, a + 1, 100000, (size_t)3 << 20 };
        for (unsigned i = 0; i < ARRAY_LEN(sizes); i++) {
            void *p = (void *)0x1;
            int rc = posix_memalign(&p, a, sizes[i]);
            cr_assert_eq(rc, 0, "posix_memalign(align %zu, size %zu) = %d", a, sizes[i], rc);
            check_block(p, a, sizes[i], 1, "posix_memalign");
            void *q = aligned_alloc(a, sizes[i]);
            check_block(q, a, sizes[i], 1, "aligned_alloc");
            void *r = memalign(a, sizes[i]);
            check_block(r, a, sizes[i], 1, "memalign");
            /* three live blocks of the same shape never overlap */
            cr_assert(p != q && q != r && p != r);
            free(p);
            free(q);
            free(r);
        }
    }
}

Test(aligned, gigabyte_alignment, .init = init)
{
    const size_t a = (size_t)1 << 30;
    const size_t sizes[] = { 1, 100000, (size_t)3 << 20, a, a + 1 };
    for (unsigned i = 0; i < ARRAY_LEN(sizes); i++) {
        void *p = NULL;
        int rc = posix_memalign(&p, a, sizes[i]);
        cr_assert_eq(rc, 0, "posix_memalign(1 GiB, %zu) = %d", sizes[i], rc);
        /* a gigabyte written twice is slow and RSS-hungry on a shared machine:
         * one byte per 64 MiB proves those pages writable, the rest is mapped alike */
        check_block(p, a, sizes[i], sizes[i] > ((size_t)16 << 20) ? ((size_t)64 << 20) : 1, "posix_memalign");
        free(p);
    }
    void *q = aligned_alloc(a, 4096);
    check_block(q, a, 4096, 1, "aligned_alloc");
    free(q);
}

Test(aligned, aligned_alloc_rejects_non_powers_of_two, .init = init)
{
    static const size_t bad[] = { 0, 3, 12, 24, 48, 100, 1000, 4095, (size_t)3 << 20, SIZE_MAX };
    for (unsigned i = 0; i < ARRAY_LEN(bad); i++) {
        errno = 0;
        void *p = aligned_alloc(bad[i], 64);
        cr_assert_null(p, "aligned_alloc(%zu, 64) = %p", bad[i], p);
        cr_assert_eq(errno, EINVAL, "aligned_alloc(%zu): errno %d", bad[i], errno);
    }
    /* C17: the size need not be a multiple of the alignment; small alignments work */
    static const size_t good[] = { 1, 2, 4, 8, 16, 32 };
    for (unsigned i = 0; i < ARRAY_LEN(good); i++) {
        void *p = aligned_alloc(good[i], 100);
        check_block(p, good[i], 100, 1, "aligned_alloc");
        free(p);
    }
    void *p = aligned_alloc(64, 100);
    check_block(p, 64, 100, 1, "aligned_alloc");
    free(p);
}

Test(aligned, memalign_rounds_non_powers_of_two_up, .init = init)
{
    static const struct { size_t align, expect; } cases[] = {
        { 24, 32 }, { 48, 64 }, { 100, 128 }, { 129, 256 }, { 1000, 1024 }, { 5000, 8192 },
        { 40000, 65536 }, { (3 << 20) + 1, 4 << 20 }, { 3, 16 }, { 0, 16 }, { 1, 16 },
    };
    for (unsigned i = 0; i < ARRAY_LEN(cases); i++) {
        for (size_t n = 1; n <= 100001; n += 50000) {
            void *p = memalign(cases[i].align, n);
            cr_assert_not_null(p, "memalign(%zu, %zu)", cases[i].align, n);
            cr_assert_eq((uintptr_t)p % cases[i].expect, 0, "memalign(%zu, %zu) = %p: not %zu-aligned",
                         cases[i].align, n, p, cases[i].expect);
            check_block(p, cases[i].expect, n, 1, "memalign");
            free(p);
        }
    }
    errno = 0;
    cr_assert_null(memalign(SIZE_MAX, 1));
    cr_assert_eq(errno, EINVAL, "no power of two to round SIZE_MAX up to");
}

Test(aligned, valloc_and_pvalloc_are_page_aligned, .init = init)
{
    static const size_t sizes[] = { 0, 1, 100, 4095, 4096, 4097, 40000, 100000, (1 << 20) + 1, 5 << 20 };
    for (unsigned i = 0; i < ARRAY_LEN(sizes); i++) {
        void *v = valloc(sizes[i]);
        check_block(v, page, sizes[i], 1, "valloc");
        void *p = pvalloc(sizes[i]);
        size_t rounded = sizes[i] ? (sizes[i] + page - 1) / page * page : page;
        check_block(p, page, rounded, 1, "pvalloc");
        free(v);
        free(p);
    }
}

Test(aligned, pvalloc_100_has_a_page_and_a_usable_size, .init = init)
{
    void *p = pvalloc(100);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % page, 0);
    size_t u = malloc_usable_size(p);            /* jemalloc 5.3 crashes here */
    cr_assert_geq(u, page, "pvalloc rounds the size up to a whole page: usable %zu", u);
    memset(p, 0x77, u);
    struct numamalloc_block_info bi;
    cr_assert_eq(api()->block_info(p, &bi), 0);
    cr_assert_eq(bi.usable_size, u);
    free(p);
}

Test(aligned, size_equal_to_alignment_mimalloc_700, .init = init)
{
    static const size_t shapes[] = { 256, 512, 1024 };
    for (unsigned i = 0; i < ARRAY_LEN(shapes); i++) {
        size_t a = shapes[i];
        enum { K = 300 };
        void *keep[3][K];
        for (int k = 0; k < K; k++) {
            cr_assert_eq(posix_memalign(&keep[0][k], a, a), 0);
            keep[1][k] = aligned_alloc(a, a);
            keep[2][k] = memalign(a, a);
            for (int f = 0; f < 3; f++) check_block(keep[f][k], a, a, 1, f == 0 ? "posix_memalign" : f == 1 ? "aligned_alloc" : "memalign");
        }
        for (int f = 0; f < 3; f++) for (int k = 0; k < K; k++) free(keep[f][k]);
        /* the same alignments for medium sizes, served by the fallback arena */
        static const size_t medium[] = { 32769, 40000, 65536, 100000, 500000 };
        for (unsigned m = 0; m < ARRAY_LEN(medium); m++) {
            void *p = aligned_alloc(a, medium[m]);
            check_block(p, a, medium[m], 1, "aligned_alloc");
            free(p);
        }
    }
    /* and size == alignment above the small classes */
    for (size_t a = 2048; a <= ((size_t)4 << 20); a <<= 1) {
        void *p = aligned_alloc(a, a);
        check_block(p, a, a, 1, "aligned_alloc");
        free(p);
    }
}

Test(aligned, many_live_aligned_blocks_do_not_overlap, .init = init)
{
    enum { K = 2000 };
    static unsigned char *p[K];
    static const size_t aligns[] = { 32, 64, 128, 4096 };
    for (int k = 0; k < K; k++) {
        size_t a = aligns[k % 4];
        p[k] = aligned_alloc(a, 48 + (size_t)(k % 5) * 40);
        cr_assert_not_null(p[k]);
        cr_assert_eq((uintptr_t)p[k] % a, 0);
        memset(p[k], k & 0xff, malloc_usable_size(p[k]));
    }
    for (int k = 0; k < K; k++) {
        size_t u = malloc_usable_size(p[k]);
        for (size_t i = 0; i < u; i++)
            if (p[k][i] != (unsigned char)(k & 0xff)) cr_assert_fail("block %d byte %zu overwritten", k, i);
        free(p[k]);
    }
}

Test(aligned, aligned_blocks_realloc_and_free_like_any_other, .init = init)
{
    static const size_t aligns[] = { 64, 4096, 1 << 16, 1 << 21 };
    for (unsigned i = 0; i < ARRAY_LEN(aligns); i++) {
        unsigned char *p = aligned_alloc(aligns[i], 1000);
        cr_assert_not_null(p);
        for (int k = 0; k < 1000; k++) p[k] = (unsigned char)k;
        unsigned char *q = realloc(p, 300000);
        cr_assert_not_null(q);
        for (int k = 0; k < 1000; k++) cr_assert_eq(q[k], (unsigned char)k, "align %zu byte %d", aligns[i], k);
        cr_assert_eq((uintptr_t)q % 16, 0);
        free(q);
    }
}
