/* tests/api/test_api.c — malloc-family semantics as a program sees them under
 * LD_PRELOAD=libnumamalloc.so: malloc(0), 16-byte alignment, overflow and requests
 * over PTRDIFF_MAX (NULL with ENOMEM, inputs untouched), realloc across every size
 * boundary (small -> medium -> large -> small) keeping contents, realloc(p, 0) and
 * realloc(NULL, n), errno preserved by free and by every successful call,
 * malloc_usable_size (NULL, and every usable byte writable without touching
 * neighbours), calloc zeroing reused memory, free_sized / free_aligned_sized / cfree,
 * the __libc_* aliases, mallopt, mallinfo2, malloc_info, malloc_stats, malloc_trim.
 *
 * Built with -fno-builtin (tests/core.mk) and with ESCAPE() on results, so that
 * every call reaches the library. Aligned allocation is tests/api/test_aligned.c,
 * C++ tests/api/test_cxx.cc, the numamalloc_* API tests/api/test_numamalloc_api.c,
 * misuse tests/api/test_misuse.c. */
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>

#include "api/api_util.h"

/* a byte pattern that depends on the position, so shifted or swapped data shows */
static inline unsigned char pat(size_t i, unsigned seed) { return (unsigned char)((i * 131u) ^ (i >> 9) ^ seed); }

static void fill(unsigned char *p, size_t from, size_t to, unsigned seed)
{
    for (size_t i = from; i < to; i++) p[i] = pat(i, seed);
}

/* index of the first byte in [0, n) that is not the pattern, or n */
static size_t first_bad(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != pat(i, seed)) return i;
    return n;
}

Test(api, preloaded)
{
    /* every other test means nothing if malloc is not ours */
    void *p = malloc(100);
    ESCAPE(p);
    cr_assert_eq(kind_of(p), NUMAMALLOC_KIND_SLAB, "malloc is not numamalloc's: LD_PRELOAD missing?");
    free(p);
}

/* ---- malloc(0) and alignment ------------------------------------------------------------ */

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

Test(api, malloc_zero_is_unique_and_freeable)
{
    enum { N = 5000 };
    static void *p[N], *s[N];
    for (int i = 0; i < N; i++) {
        p[i] = malloc(opaque_size(0));
        cr_assert_not_null(p[i], "malloc(0) #%d", i);
        cr_assert_eq((uintptr_t)p[i] % 16, 0);
        cr_assert_neq(kind_of(p[i]), NUMAMALLOC_KIND_UNKNOWN);
        cr_assert_geq(malloc_usable_size(p[i]), 1, "a real block, however small");
    }
    memcpy(s, p, sizeof p);
    qsort(s, N, sizeof *s, cmp_ptr);
    for (int i = 1; i < N; i++) cr_assert_neq(s[i], s[i - 1], "malloc(0) returned %p twice", s[i]);
    for (int i = 0; i < N; i++) free(p[i]);
    /* and again after the frees: still distinct live blocks */
    void *a = malloc(0), *b = malloc(0);
    ESCAPE(a);
    ESCAPE(b);
    cr_assert(a && b && a != b);
    free(a);
    free(b);
}

Test(api, every_block_is_16_byte_aligned)
{
    for (size_t n = 1; n <= 40000; n++) {
        unsigned char *p = malloc(n);
        cr_assert_not_null(p, "malloc(%zu)", n);
        cr_assert_eq((uintptr_t)p % 16, 0, "malloc(%zu) = %p", n, (void *)p);
        p[0] = 1;
        p[n - 1] = 2;
        ESCAPE(p);
        free(p);
    }
    /* keep some alive so they cannot all reuse one address */
    static void *keep[4000];
    for (size_t i = 0; i < 4000; i++) {
        keep[i] = malloc(1 + i * 7 % 4096);
        cr_assert_eq((uintptr_t)keep[i] % 16, 0);
    }
    for (size_t i = 0; i < 4000; i++) free(keep[i]);
    static const size_t larger[] = {
        40001, 65535, 65536, 100000, 262144, 500000, (1 << 20) - 1, 1 << 20, (1 << 20) + 1,
        2 << 20, (3 << 20) + 5, 16 << 20, 100 << 20,
    };
    for (unsigned i = 0; i < ARRAY_LEN(larger); i++) {
        unsigned char *p = malloc(larger[i]);
        cr_assert_not_null(p, "malloc(%zu)", larger[i]);
        cr_assert_eq((uintptr_t)p % 16, 0, "malloc(%zu) = %p", larger[i], (void *)p);
        p[0] = 1;
        p[larger[i] - 1] = 2;
        ESCAPE(p);
        free(p);
    }
}

/* ---- overflow and requests over PTRDIFF_MAX ------------------------------------------- */

#define EXPECT_ENOMEM(call) do {                                                            \
        errno = 0;                                                                          \
        void *r_ = (call);                                                                  \
        int e_ = errno;                                                                     \
        cr_assert_null(r_, "%s returned %p", #call, r_);                                    \
        cr_assert_eq(e_, ENOMEM, "%s: errno %d, expected ENOMEM", #call, e_);               \
    } while (0)

Test(api, calloc_and_reallocarray_overflow)
{
    size_t half = opaque_size(SIZE_MAX / 2 + 1);
    EXPECT_ENOMEM(calloc(half, 2));
    EXPECT_ENOMEM(calloc(2, half));
    EXPECT_ENOMEM(calloc(opaque_size(SIZE_MAX), opaque_size(SIZE_MAX)));
    EXPECT_ENOMEM(calloc(opaque_size((size_t)1 << 32), opaque_size((size_t)1 << 32)));
    EXPECT_ENOMEM(reallocarray(NULL, half, 2));
    EXPECT_ENOMEM(reallocarray(NULL, opaque_size((size_t)1 << 33), opaque_size((size_t)1 << 31)));
    /* a failed reallocarray leaves the block alone */
    unsigned char *p = malloc(100);
    fill(p, 0, 100, 7);
    EXPECT_ENOMEM(reallocarray(hide(p), half, 4));
    cr_assert_eq(first_bad(p, 100, 7), 100);
    cr_assert_eq(kind_of(p), NUMAMALLOC_KIND_SLAB);
    /* and a good one works */
    unsigned char *q = reallocarray(p, opaque_size(50), opaque_size(40));
    cr_assert_not_null(q);
    cr_assert_eq(first_bad(q, 100, 7), 100);
    free(q);
    /* zero times anything is fine */
    void *z = calloc(opaque_size(0), half);
    ESCAPE(z);
    cr_assert_not_null(z, "calloc(0, huge) is a zero-size request");
    free(z);
}

Test(api, requests_over_ptrdiff_max_fail_with_enomem)
{
    const size_t sizes[] = { (size_t)PTRDIFF_MAX + 1, (size_t)PTRDIFF_MAX + 4096, SIZE_MAX - 4096, SIZE_MAX };
    unsigned char *keep = malloc(64);
    fill(keep, 0, 64, 3);
    for (unsigned i = 0; i < ARRAY_LEN(sizes); i++) {
        size_t n = opaque_size(sizes[i]);
        EXPECT_ENOMEM(malloc(n));
        EXPECT_ENOMEM(calloc(1, n));
        EXPECT_ENOMEM(calloc(n, 1));
        EXPECT_ENOMEM(realloc(NULL, n));
        EXPECT_ENOMEM(realloc(hide(keep), n));
        cr_assert_eq(first_bad(keep, 64, 3), 64, "failed realloc changed the block");
        EXPECT_ENOMEM(aligned_alloc(64, n));
        EXPECT_ENOMEM(aligned_alloc(4096, n));
        EXPECT_ENOMEM(memalign(64, n));
        EXPECT_ENOMEM(memalign(1 << 21, n));
        EXPECT_ENOMEM(valloc(n));
        EXPECT_ENOMEM(pvalloc(n));
        void *out = (void *)0x1234;
        errno = 4321;
        int rc = posix_memalign(&out, 64, n);
        cr_assert_eq(rc, ENOMEM, "posix_memalign(%zu) = %d", n, rc);
        cr_assert_eq(out, (void *)0x1234, "posix_memalign wrote its output on failure");
        cr_assert_eq(errno, 4321, "posix_memalign reports through its result, errno untouched");
    }
    /* exactly PTRDIFF_MAX is allowed to be asked, and cannot be had on this machine */
    EXPECT_ENOMEM(malloc(opaque_size(PTRDIFF_MAX)));
    cr_assert_eq(kind_of(keep), NUMAMALLOC_KIND_SLAB);
    free(keep);
}

/* Far more than the machine has (64 TiB), under the default overcommit heuristic:
 * the kernel refuses the mapping, as it refuses glibc's, and every entry point says
 * NULL/ENOMEM instead of handing out memory the OOM killer collects on first touch. */
Test(api, more_than_the_machine_has_is_enomem)
{
    char mode[8] = "";
    FILE *f = fopen("/proc/sys/vm/overcommit_memory", "r");
    if (f) { if (!fgets(mode, sizeof mode, f)) mode[0] = 0; fclose(f); }
    if (mode[0] == '1') cr_skip_test("overcommit_memory is 1: the kernel grants any mapping");
    const size_t huge = (size_t)64 << 40;
    EXPECT_ENOMEM(malloc(opaque_size(huge)));
    EXPECT_ENOMEM(calloc(opaque_size(huge), 1));
    EXPECT_ENOMEM(aligned_alloc(1 << 21, opaque_size(huge)));
    char *p = malloc(4 << 20);
    cr_assert_not_null(p);
    memset(p, 7, 4 << 20);
    EXPECT_ENOMEM(realloc(p, opaque_size(huge)));
    cr_assert_eq(p[(4 << 20) - 1], 7, "a failed realloc leaves the block alone");
    free(p);
}

/* ---- realloc ----------------------------------------------------------------------------- */

/* every class size and one more, then medium, large, huge; up and back down */
static size_t walk_sizes(size_t *out)
{
    size_t n = 0;
    static const uint32_t classes[] = {
        16, 32, 48, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384, 448, 512, 640, 768, 896, 1024,
        1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096, 5120, 6144, 7168, 8192, 10240, 12288, 14336,
        16384, 20480, 24576, 28672, 32768,
    };
    out[n++] = 1;
    for (unsigned i = 0; i < ARRAY_LEN(classes); i++) {
        out[n++] = classes[i];
        out[n++] = classes[i] + 1;
    }
    static const size_t big[] = { 32768 + 1, 100 << 10, (1 << 20) - 1, 1 << 20, 5 << 20, 64 << 20 };
    for (unsigned i = 0; i < ARRAY_LEN(big); i++) out[n++] = big[i];
    return n;
}

Test(api, realloc_keeps_contents_across_every_boundary)
{
    size_t up[128];
    size_t n = walk_sizes(up);
    size_t seq[256], m = 0;
    for (size_t i = 0; i < n; i++) seq[m++] = up[i];
    for (size_t i = n - 1; i-- > 0;) seq[m++] = up[i];           /* and back down to 1 */
    unsigned char *p = NULL;
    size_t cur = 0;
    int kinds_seen[8] = { 0 }, medium_seen = 0;
    for (size_t k = 0; k < m; k++) {
        size_t want = seq[k];
        unsigned char *q = realloc(p, want);
        cr_assert_not_null(q, "realloc(%p, %zu)", (void *)p, want);
        size_t keep = cur < want ? cur : want;
        size_t bad = first_bad(q, keep, 0x5a);
        cr_assert_eq(bad, keep, "realloc %zu -> %zu: byte %zu changed", cur, want, bad);
        cr_assert_geq(malloc_usable_size(q), want, "usable size after realloc to %zu", want);
        cr_assert_eq((uintptr_t)q % 16, 0);
        int kind = kind_of(q);
        cr_assert_neq(kind, NUMAMALLOC_KIND_UNKNOWN, "realloc to %zu: block not ours", want);
        kinds_seen[kind]++;
        if (is_medium(q)) medium_seen++;
        fill(q, keep, want, 0x5a);
        p = q;
        cur = want;
    }
    cr_assert_eq(cur, 1);
    cr_assert(kinds_seen[NUMAMALLOC_KIND_SLAB] && medium_seen &&
              (kinds_seen[NUMAMALLOC_KIND_LARGE] || kinds_seen[NUMAMALLOC_KIND_HUGE]),
              "the walk crossed small, medium and large blocks");
    free(p);
}

Test(api, realloc_shrinks_and_grows_in_place_or_moves_correctly)
{
    /* big steps both ways, between every pair of kinds */
    static const size_t sizes[] = { 24, 30000, 40000, 900000, 3 << 20, 70 << 20, 50 };   /* 70 MiB: over LARGE_CACHE */
    for (unsigned a = 0; a < ARRAY_LEN(sizes); a++)
        for (unsigned b = 0; b < ARRAY_LEN(sizes); b++) {
            unsigned char *p = malloc(sizes[a]);
            cr_assert_not_null(p);
            fill(p, 0, sizes[a], a * 16 + b);
            unsigned char *q = realloc(p, sizes[b]);
            cr_assert_not_null(q, "%zu -> %zu", sizes[a], sizes[b]);
            size_t keep = sizes[a] < sizes[b] ? sizes[a] : sizes[b];
            cr_assert_eq(first_bad(q, keep, a * 16 + b), keep, "%zu -> %zu", sizes[a], sizes[b]);
            memset(q, 0, sizes[b]);                   /* the whole new size is writable */
            free(q);
        }
}

Test(api, realloc_zero_frees_and_returns_null)
{
    /* glibc semantics: realloc(p, 0) frees p and returns NULL */
    static const size_t sizes[] = { 10, 1000, 32768, 100000, 8 << 20 };
    for (unsigned i = 0; i < ARRAY_LEN(sizes); i++) {
        void *p = malloc(sizes[i]);
        cr_assert_not_null(p);
        int kind = kind_of(p);
        errno = 0;
        void *r = realloc(p, opaque_size(0));
        cr_assert_null(r, "realloc(p of %zu, 0) returned %p", sizes[i], r);
        if (kind == NUMAMALLOC_KIND_SLAB) {
            /* a freed small block is the next one of its class handed out */
            void *again = malloc(sizes[i]);
            cr_assert_eq(again, p, "realloc(p, 0) did not free the %zu-byte block", sizes[i]);
            free(again);
        } else if (kind == NUMAMALLOC_KIND_LARGE || kind == NUMAMALLOC_KIND_HUGE) {
            cr_assert_eq(kind_of(p), NUMAMALLOC_KIND_UNKNOWN, "large block still registered after realloc(p, 0)");
        }
    }
    void *z = realloc(NULL, opaque_size(0));
    cr_assert_not_null(z, "realloc(NULL, 0) is malloc(0)");
    free(z);
}

Test(api, realloc_null_is_malloc)
{
    static const size_t sizes[] = { 0, 1, 16, 17, 100, 4096, 32768, 32769, 100000, 1 << 20, 8 << 20 };
    for (unsigned i = 0; i < ARRAY_LEN(sizes); i++) {
        void *p = realloc(NULL, sizes[i]);
        void *q = malloc(sizes[i]);
        cr_assert(p && q, "size %zu", sizes[i]);
        cr_assert_eq(kind_of(p), kind_of(q), "realloc(NULL, %zu) and malloc differ in kind", sizes[i]);
        cr_assert_geq(malloc_usable_size(p), sizes[i]);
        cr_assert_eq(malloc_usable_size(p), malloc_usable_size(q), "size %zu", sizes[i]);
        memset(p, 0x11, sizes[i]);
        free(p);
        free(q);
    }
}

/* ---- free and usable size ----------------------------------------------------------------- */

Test(api, free_preserves_errno)
{
    static const size_t sizes[] = { 1, 100, 5000, 32768, 40000, 100000, 900000, 1 << 20, 8 << 20, 128 << 20 };
    errno = 1234;
    free(NULL);
    cr_assert_eq(errno, 1234, "free(NULL)");
    for (int round = 0; round < 3; round++)      /* fast paths, magazine exchanges, unmaps */
        for (unsigned i = 0; i < ARRAY_LEN(sizes); i++) {
            enum { K = 200 };
            static void *p[K];
            unsigned k = sizes[i] > (1 << 20) ? 2 : K;
            for (unsigned j = 0; j < k; j++) { p[j] = malloc(sizes[i]); cr_assert_not_null(p[j]); }
            for (unsigned j = 0; j < k; j++) {
                errno = 1234;
                free(p[j]);
                cr_assert_eq(errno, 1234, "free of a %zu-byte block changed errno to %d", sizes[i], errno);
            }
        }
    errno = 1234;
    void *p = malloc(10);
    cr_assert_eq(errno, 1234, "a successful malloc changed errno");
    free(p);
}

Test(api, successful_calls_leave_errno_alone)
{
#define KEEPS_ERRNO(stmt) do { errno = 4321; stmt; cr_assert_eq(errno, 4321, "%s set errno to %d", #stmt, errno); } while (0)
    void *p, *q;
    KEEPS_ERRNO(p = malloc(10));
    KEEPS_ERRNO(p = realloc(p, 100000));
    KEEPS_ERRNO(p = realloc(p, 8 << 20));
    KEEPS_ERRNO(p = realloc(p, 20 << 20));
    KEEPS_ERRNO(p = realloc(p, 50));
    KEEPS_ERRNO(free(p));
    KEEPS_ERRNO(p = calloc(1, 10); free(p));
    KEEPS_ERRNO(p = calloc(1, 100000); free(p));
    KEEPS_ERRNO(p = calloc(1, 5 << 20); free(p));
    KEEPS_ERRNO(cr_assert_eq(posix_memalign(&q, 4096, 100), 0); free(q));
    KEEPS_ERRNO(p = aligned_alloc(1 << 16, 100); free(p));
    KEEPS_ERRNO(p = memalign(1 << 21, 3 << 20); free(p));
    KEEPS_ERRNO(p = valloc(100); free(p));
    KEEPS_ERRNO(p = pvalloc(100); free(p));
    KEEPS_ERRNO(malloc_trim(0));
    KEEPS_ERRNO(ESCAPE(mallinfo2().uordblks));
    for (int i = 0; i < 20000; i++) KEEPS_ERRNO(p = malloc((size_t)(i % 5000)); free(p));
#undef KEEPS_ERRNO
}

Test(api, usable_size_of_null_is_zero)
{
    cr_assert_eq(malloc_usable_size(NULL), 0);
}

Test(api, whole_usable_size_is_writable_without_touching_neighbours)
{
    size_t sizes[200];
    unsigned n = 0;
    for (size_t s = 1; s <= 40000 && n < 150; s = s * 5 / 4 + 1) sizes[n++] = s;
    static const size_t more[] = { 65536, 100000, 250000, 700000, (1 << 20) - 16, 1 << 20, (2 << 20) + 3, 9 << 20 };
    for (unsigned i = 0; i < ARRAY_LEN(more); i++) sizes[n++] = more[i];
    for (unsigned i = 0; i < n; i++) {
        enum { K = 6 };
        unsigned char *b[K];
        size_t u[K];
        for (unsigned j = 0; j < K; j++) {
            b[j] = malloc(sizes[i]);
            cr_assert_not_null(b[j]);
            u[j] = malloc_usable_size(b[j]);
            cr_assert_geq(u[j], sizes[i], "usable %zu < requested %zu", u[j], sizes[i]);
            cr_assert_leq(u[j], sizes[i] < 4096 ? 2 * sizes[i] + 16 : sizes[i] + (sizes[i] >> 1) + (2 << 20),
                          "usable %zu for %zu: implausible", u[j], sizes[i]);
            memset(b[j], 0xa0 + j, u[j]);
        }
        /* churn the neighbours: free and reallocate the odd ones, write them fully */
        for (unsigned j = 1; j < K; j += 2) {
            free(b[j]);
            b[j] = malloc(sizes[i]);
            u[j] = malloc_usable_size(b[j]);
            memset(b[j], 0xa0 + j, u[j]);
        }
        for (unsigned j = 0; j < K; j++) {
            for (size_t x = 0; x < u[j]; x++)
                if (b[j][x] != 0xa0 + j)
                    cr_assert_fail("size %zu: block %u byte %zu of %zu overwritten (0x%02x)", sizes[i], j, x, u[j], b[j][x]);
        }
        for (unsigned j = 0; j < K; j++) free(b[j]);
    }
}

Test(api, calloc_zeroes_even_reused_memory)
{
    static const size_t sizes[] = { 8, 100, 3000, 32768, 50000, 500000, 2 << 20, 6 << 20 };
    for (unsigned i = 0; i < ARRAY_LEN(sizes); i++) {
        for (int round = 0; round < 3; round++) {
            unsigned char *d = malloc(sizes[i]);
            memset(d, 0xff, sizes[i]);
            free(d);                                  /* calloc below may get this block back */
            unsigned char *z = calloc(1, sizes[i]);
            cr_assert_not_null(z);
            for (size_t x = 0; x < sizes[i]; x++)
                if (z[x]) cr_assert_fail("calloc(%zu): byte %zu is 0x%02x", sizes[i], x, z[x]);
            free(z);
        }
    }
}

/* ---- free_sized, free_aligned_sized, cfree ------------------------------------------------ */

typedef void (*free_fn)(void *);

static void check_ours(void *fn, const char *name)
{
    Dl_info info;
    cr_assert(dladdr(fn, &info), "dladdr(%s)", name);
    cr_assert_not_null(strstr(info.dli_fname, "libnumamalloc"), "%s resolves to %s", name, info.dli_fname);
}

Test(api, free_sized_free_aligned_sized_cfree)
{
    /* glibc 2.36 has no free_sized and only a compat cfree: look them up */
    void (*fs)(void *, size_t) = nm_api_sym("free_sized");
    void (*fas)(void *, size_t, size_t) = nm_api_sym("free_aligned_sized");
    free_fn cf = nm_api_sym("cfree");
    check_ours((void *)fs, "free_sized");
    check_ours((void *)fas, "free_aligned_sized");
    check_ours((void *)cf, "cfree");
    /* small blocks: freed means the next allocation of that class gets it back */
    void *p = malloc(200);
    fs(p, 200);
    cr_assert_eq(malloc(200), p, "free_sized did not free");
    cf(p);
    cr_assert_eq(malloc(200), p, "cfree did not free");
    free(p);
    void *a = aligned_alloc(256, 512);
    cr_assert_eq((uintptr_t)a % 256, 0);
    fas(a, 256, 512);
    cr_assert_eq(aligned_alloc(256, 512), a, "free_aligned_sized did not free");
    free(a);
    /* large blocks: freed means unregistered */
    void *l = malloc(8 << 20);
    cr_assert_neq(kind_of(l), NUMAMALLOC_KIND_UNKNOWN);
    fs(l, 8 << 20);
    cr_assert_eq(kind_of(l), NUMAMALLOC_KIND_UNKNOWN);
    void *la = aligned_alloc(1 << 21, 4 << 20);
    cr_assert_eq((uintptr_t)la % (1 << 21), 0);
    fas(la, 1 << 21, 4 << 20);
    cr_assert_eq(kind_of(la), NUMAMALLOC_KIND_UNKNOWN);
    void *lc = malloc(3 << 20);
    cf(lc);
    cr_assert_eq(kind_of(lc), NUMAMALLOC_KIND_UNKNOWN);
    /* NULL is fine for all three */
    fs(NULL, 0);
    fas(NULL, 64, 0);
    cf(NULL);
}

/* ---- glibc extras ------------------------------------------------------------------------- */

Test(api, mallopt_accepts_glibc_parameters)
{
    static const int known[] = { M_MXFAST, M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD, M_MMAP_MAX,
                                 M_CHECK_ACTION, M_PERTURB, M_ARENA_TEST, M_ARENA_MAX };
    for (unsigned i = 0; i < ARRAY_LEN(known); i++)
        cr_assert_eq(mallopt(known[i], 4), 1, "mallopt(%d)", known[i]);
    cr_assert_eq(mallopt(M_MMAP_THRESHOLD, 128 * 1024), 1);
    cr_assert_eq(mallopt(M_ARENA_MAX, 1), 1);
    cr_assert_eq(mallopt(12345, 1), 0, "unknown parameter");
    cr_assert_eq(mallopt(-1000, 1), 0, "unknown parameter");
    /* and allocation still works after all of them */
    void *p = malloc(100);
    cr_assert_not_null(p);
    free(p);
}

Test(api, libc_aliases_are_ours_and_work)
{
    /* glibc-internal names some programs and libraries call directly */
    static const char *const names[] = { "__libc_malloc", "__libc_free", "__libc_calloc", "__libc_realloc",
                                         "__libc_memalign", "__libc_valloc", "__libc_pvalloc", "__posix_memalign",
                                         "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign",
                                         "aligned_alloc", "memalign", "valloc", "pvalloc", "malloc_usable_size",
                                         "malloc_trim", "mallinfo2", "mallinfo", "mallopt", "malloc_stats", "malloc_info" };
    for (unsigned i = 0; i < ARRAY_LEN(names); i++) check_ours(nm_api_sym(names[i]), names[i]);
    void *(*lm)(size_t) = nm_api_sym("__libc_malloc");
    void (*lf)(void *) = nm_api_sym("__libc_free");
    void *(*lc)(size_t, size_t) = nm_api_sym("__libc_calloc");
    void *(*lr)(void *, size_t) = nm_api_sym("__libc_realloc");
    void *(*lma)(size_t, size_t) = nm_api_sym("__libc_memalign");
    void *(*lv)(size_t) = nm_api_sym("__libc_valloc");
    void *(*lpv)(size_t) = nm_api_sym("__libc_pvalloc");
    int (*lpm)(void **, size_t, size_t) = nm_api_sym("__posix_memalign");
    unsigned char *p = lm(100);
    cr_assert_eq(kind_of(p), NUMAMALLOC_KIND_SLAB);
    memset(p, 5, 100);
    p = lr(p, 200000);
    cr_assert_eq(p[99], 5);
    cr_assert(is_medium(p), "200000 bytes: a medium block");
    lf(p);
    unsigned char *z = lc(10, 10);
    for (int i = 0; i < 100; i++) cr_assert_eq(z[i], 0);
    lf(z);
    void *a = lma(256, 100);
    cr_assert_eq((uintptr_t)a % 256, 0);
    lf(a);
    void *v = lv(10), *pv = lpv(10);
    cr_assert_eq((uintptr_t)v % 4096, 0);
    cr_assert_eq((uintptr_t)pv % 4096, 0);
    cr_assert_geq(malloc_usable_size(pv), 4096);
    lf(v);
    lf(pv);
    void *pm = NULL;
    cr_assert_eq(lpm(&pm, 1024, 1024), 0);
    cr_assert_eq((uintptr_t)pm % 1024, 0);
    cr_assert_eq(lpm(&pm, 24, 10), EINVAL);
    lf(pm);
}

Test(api, malloc_info_and_malloc_stats)
{
    char *xml = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&xml, &len);
    cr_assert_not_null(f);
    cr_assert_eq(malloc_info(0, f), 0);
    fclose(f);
    cr_assert_eq(strncmp(xml, "<malloc version=\"numamalloc-", 28), 0, "%s", xml);
    cr_assert_not_null(strstr(xml, "<total type=\"inuse\" size=\""), "%s", xml);
    cr_assert_not_null(strstr(xml, "</malloc>\n"), "%s", xml);
    free(xml);
    errno = 0;
    cr_assert_eq(malloc_info(1, stdout), -1, "options must be 0");
    cr_assert_eq(errno, EINVAL);
    /* malloc_stats writes the text dump to stderr */
    char path[] = "/tmp/nm-api-stats-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    malloc_stats();
    dup2(saved, 2);
    close(saved);
    char head[64] = { 0 };
    cr_assert_gt(pread(fd, head, sizeof head - 1, 0), 0, "malloc_stats wrote nothing");
    close(fd);
    cr_assert_eq(strncmp(head, "=== numamalloc ", 15), 0, "%s", head);
}

/* uordblks ("in use") grows by at least what the program asked for and keeps,
 * whatever kind of block: exactly `total` bytes requested in blocks of `block` */
static void mallinfo_grows(size_t block, size_t total)
{
    size_t n = (total + block - 1) / block;
    void **keep = malloc(n * sizeof *keep);
    /* uordblks counts blocks cached in this thread's magazines as in use (api.c): a
     * block already cached adds nothing when handed out; trim empties the caches */
    malloc_trim(0);
    struct mallinfo2 before = mallinfo2();
    for (size_t i = 0; i < n; i++) {
        keep[i] = malloc(block);
        cr_assert_not_null(keep[i]);
        memset(keep[i], 1, block);
    }
    struct mallinfo2 after = mallinfo2();
    cr_assert_geq(after.uordblks, before.uordblks + total,
                  "%zu blocks of %zu bytes kept: uordblks grew by %zu bytes only (%.2f MiB of %.2f)", n, block,
                  after.uordblks - before.uordblks, (after.uordblks - before.uordblks) / 1048576.0, total / 1048576.0);
    cr_assert_geq(after.arena + after.hblkhd, after.uordblks, "the heap holds at least what is in use");
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    struct mallinfo old = mallinfo();                 /* the int version, clamped */
#pragma GCC diagnostic pop
    cr_assert_gt(old.uordblks, 0);
    for (size_t i = 0; i < n; i++) free(keep[i]);
    free(keep);
}

Test(api, mallinfo2_counts_small_blocks)    { mallinfo_grows(4096, 10 << 20); }
Test(api, mallinfo2_counts_medium_blocks)   { mallinfo_grows(100 << 10, 10 << 20); }
/* 40 KiB is exactly a medium class: no rounding slack hides a shortfall, and every
 * block must be counted at once (no per-thread batching of the footprint). */
Test(api, mallinfo2_counts_medium_blocks_exactly) { mallinfo_grows(40 << 10, 10 << 20); }
Test(api, mallinfo2_counts_large_blocks)    { mallinfo_grows(1 << 20, 10 << 20); }
Test(api, mallinfo2_counts_one_big_block)   { mallinfo_grows(10 << 20, 10 << 20); }

/* a large block freed into its thread's slots (no trim, no decay pass between) is no
 * longer counted as a mapping in use, and taking it back counts it again: the
 * slots' round trips are tallied apart from the thread's counters and mallinfo2
 * must add that tally, or hblks stays one too high and arena wraps below zero */
Test(api, mallinfo2_counts_a_large_block_kept_by_its_thread)
{
    const size_t n = 4 << 20;
    malloc_trim(0);
    struct mallinfo2 before = mallinfo2();
    for (int round = 0; round < 3; round++) {
        char *p = malloc(n);
        cr_assert_not_null(p);
        memset(p, 1, n);
        struct mallinfo2 in = mallinfo2();
        cr_assert_eq(in.hblks, before.hblks + 1, "round %d: hblks %zu, was %zu", round, in.hblks, before.hblks);
        cr_assert_geq(in.hblkhd, before.hblkhd + n);
        free(p);
        struct mallinfo2 out = mallinfo2();
        cr_assert_eq(out.hblks, before.hblks, "round %d: a freed block still counted (hblks %zu)", round, out.hblks);
        cr_assert_eq(out.hblkhd, before.hblkhd);
        cr_assert_lt(out.arena, (size_t)1 << 48, "round %d: arena wrapped (%zu)", round, out.arena);
    }
}

Test(api, malloc_trim_returns_memory)
{
    /* ~100 MiB of small blocks of mixed classes and ~100 MiB of medium blocks, touched,
     * then all freed: trim must give most of it back */
    enum { NS = 60000, NM = 1000 };
    static void *s[NS], *m[NM];
    uint64_t rss0 = rss_bytes();
    for (int i = 0; i < NS; i++) {
        size_t n = 1024 + (size_t)(i % 7) * 256;
        s[i] = malloc(n);
        cr_assert_not_null(s[i]);
        memset(s[i], 7, n);
    }
    for (int i = 0; i < NM; i++) {
        size_t n = 90000 + (size_t)(i % 5) * 4096;
        m[i] = malloc(n);
        cr_assert_not_null(m[i]);
        memset(m[i], 9, n);
    }
    uint64_t rss_full = rss_bytes();
    cr_assert_gt(rss_full, rss0 + (150 << 20), "the blocks were touched: %lu -> %lu", (unsigned long)rss0, (unsigned long)rss_full);
    for (int i = 0; i < NS; i++) free(s[i]);
    for (int i = 0; i < NM; i++) free(m[i]);
    uint64_t rss_freed = rss_bytes();
    int rc = malloc_trim(0);
    uint64_t rss_trimmed = rss_bytes();
    cr_assert_eq(rc, 1, "malloc_trim returned %d", rc);
    cr_assert_lt(rss_trimmed, rss_freed, "RSS did not drop: %lu -> %lu", (unsigned long)rss_freed, (unsigned long)rss_trimmed);
    /* (measured: back to within 1 MiB of where it started) */
    cr_assert_geq(rss_freed - rss_trimmed, (uint64_t)150 << 20, "RSS %lu MiB before the blocks, %lu MiB with them, "
                  "%lu MiB after free, %lu MiB after trim", (unsigned long)(rss0 >> 20), (unsigned long)(rss_full >> 20),
                  (unsigned long)(rss_freed >> 20), (unsigned long)(rss_trimmed >> 20));
    /* the medium blocks' pages too: trim purges the free pages of medium slabs */
    cr_assert_lt(rss_trimmed, rss0 + (48 << 20), "RSS after trim %lu MiB, before the blocks %lu MiB",
                 (unsigned long)(rss_trimmed >> 20), (unsigned long)(rss0 >> 20));
    /* a second trim with nothing to give back is allowed to say so */
    rc = malloc_trim(0);
    cr_assert(rc == 0 || rc == 1);
    /* and the allocator still works */
    void *p = malloc(1500), *q = malloc(95000);
    cr_assert(p && q);
    free(p);
    free(q);
}

/* ---- a block another thread made is not the first one handed out ------------------ *
 * Passive false sharing: main allocates adjacent small blocks and gives one to a new
 * thread, which frees it and then allocates the same size over and over. Handing the
 * given block straight back would put the thread's writes on a cache line main's
 * other blocks share. */

typedef struct {
    void *given;
    void *first;          /* the thread's first malloc after its free */
    long  given_back_at;  /* how many mallocs until the given block came back; -1: never */
} scratch_arg_t;

static void *scratch_thread(void *argp)
{
    scratch_arg_t *a = argp;
    enum { N = 100000 };
    void **held = malloc(N * sizeof *held);
    if (held == NULL) return NULL;
    free(a->given);
    a->given_back_at = -1;
    for (long i = 0; i < N; i++) {
        held[i] = malloc(8);
        ESCAPE(held[i]);
        if (i == 0) a->first = held[0];
        if (held[i] == a->given) { a->given_back_at = i; for (long j = 0; j <= i; j++) free(held[j]); break; }
        if (held[i] == NULL || i == N - 1) { for (long j = 0; j <= i; j++) free(held[j]); break; }
    }
    free(held);
    return NULL;
}

Test(api, a_block_freed_first_by_a_new_thread_is_handed_out_last)
{
    void *mine[4];
    for (int i = 0; i < 4; i++) { mine[i] = malloc(8); cr_assert_not_null(mine[i]); ESCAPE(mine[i]); }
    scratch_arg_t a = { .given = mine[1] };
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, scratch_thread, &a), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_not_null(a.first);
    cr_assert_neq(a.first, a.given, "the thread's first malloc(8) returned the block it had just freed, "
                  "made by the main thread beside its own blocks");
    /* not lost either: the thread hands it out once its magazine has drained */
    cr_assert_geq(a.given_back_at, 1, "the freed block never came back in 100000 mallocs of its class");
    free(mine[0]);
    free(mine[2]);
    free(mine[3]);
}

/* Threads that keep the large blocks they free (a plain-store fast path) while
 * another thread trims: a block must never be served twice or given back while
 * kept. Each owner writes its own pattern over the first and last page of every
 * block and checks it before the free; two owners of one block, or an unmapped
 * block, show as a wrong byte or a crash. */
enum { KT_OWNERS = 2, KT_ROUNDS = 4000 };
static volatile int kt_done;

static void *kt_owner(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    for (unsigned r = 0; r < KT_ROUNDS; r++) {
        size_t n = (1u << 20) + (size_t)(r % 3) * 65536;
        unsigned char *p = malloc(n);
        if (p == NULL) return (void *)1;
        fill(p, 0, 4096, seed + r);
        fill(p, n - 4096, n, seed + r);
        if (first_bad(p, 4096, seed + r) != 4096) return (void *)2;
        for (size_t i = n - 4096; i < n; i++)
            if (p[i] != pat(i, seed + r)) return (void *)2;
        free(p);
    }
    return NULL;
}

static void *kt_trimmer(void *arg)
{
    (void)arg;
    unsigned long trims = 0;
    while (!kt_done) { malloc_trim(0); trims++; }
    return (void *)trims;
}

Test(api, kept_large_blocks_survive_trims_from_another_thread, .timeout = 120)
{
    pthread_t own[KT_OWNERS], trim;
    kt_done = 0;
    cr_assert_eq(pthread_create(&trim, NULL, kt_trimmer, NULL), 0);
    for (uintptr_t i = 0; i < KT_OWNERS; i++) cr_assert_eq(pthread_create(&own[i], NULL, kt_owner, (void *)(i * 7919)), 0);
    for (int i = 0; i < KT_OWNERS; i++) {
        void *rc;
        pthread_join(own[i], &rc);
        cr_assert_null(rc, "owner %d: %s", i, rc == (void *)1 ? "malloc failed" : "a kept block was changed under it");
    }
    kt_done = 1;
    void *trims;
    pthread_join(trim, &trims);
    cr_assert_gt((unsigned long)trims, 0ul, "the trimmer never ran");
}
