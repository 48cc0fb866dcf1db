/* tests/helpers/api_misuse.c — scenarios for tests/api/test_misuse.c and
 * tests/api/test_numamalloc_api.c, run as a separate process under the preload with
 * an environment the test chooses (NUMAMALLOC_CHECK=1, stats to a file, options):
 * the allocator reads its environment once, at start-up, so these cannot run inside
 * the Criterion process.
 *
 *   api_misuse <scenario> [args]
 *     double_free       free a small block twice
 *     interior          free a pointer 16 bytes into a small block
 *     interior_large    free a pointer 4 KiB into a large block
 *     double_free_large free a large block twice
 *     realloc_freed     realloc a small block after freeing it
 *     realloc_interior  realloc a pointer 16 bytes into a small block
 *     free_stack        free the address of a local variable
 *     free_global       free the address of a global variable
 *     foreign_frees     free a stack and a global address, then keep allocating
 *     realloc_foreign   realloc the address of a local variable
 *     clean             correct use of every entry point (CHECK must stay silent)
 *     option_get NAME.. print NAME=<numamalloc_option_get(NAME)> per line
 *   added with misuse detection and hardening:
 *     overflow SIZE OFF [free|realloc] [BYTE]
 *                       malloc(SIZE), write BYTE (default 0) at offset OFF, then free
 *                       it (or realloc it to 2*SIZE+1)
 *     write_usable SIZE malloc(SIZE), print "usable U" (malloc_usable_size), write
 *                       all U bytes, free
 *     double_free_medium SIZE   free a block of SIZE twice, then allocate blocks of
 *                       its size and check that none overlaps another
 *     interior_medium   free a pointer 4 KiB into a medium block, then the block
 *     realloc_freed_medium      realloc a medium block after freeing it
 *     realloc_interior_medium   realloc, to a size the block would keep, a pointer
 *                       8 KiB into a medium block (where a block could start)
 *     usable_stack      malloc_usable_size of a local variable's address
 *     double_free_large_alloc   free a large block twice, then allocate large,
 *                       medium and small blocks and check that none overlaps another
 *     uaf_writes        free small and medium blocks (some from another thread),
 *                       fill their whole usable memory with 0x41 (use after free),
 *                       then allocate and free heavily, checking overlaps and contents
 * Scenarios that free or realloc a bad pointer print "target <pointer>" first, so a
 * test can build the exact message expected.
 * A scenario that survives prints "survived <scenario>" and exits 0; the misuse
 * scenarios are expected to abort under NUMAMALLOC_CHECK=1. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* hide a pointer's origin from the compiler (-Wfree-nonheap-object, -Wuse-after-free):
 * misusing it is the point */
static void *launder(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

static int global_int = 42;

static int survived(const char *what)
{
    printf("survived %s\n", what);
    fflush(stdout);
    return 0;
}

static void target(const void *p)
{
    printf("target %p\n", p);
    fflush(stdout);
}

static size_t arg_size(int argc, char **argv, int i, size_t def)
{
    return argc > i ? strtoull(argv[i], NULL, 0) : def;
}

/* ---- live-block bookkeeping for the overlap checks ------------------------------- */

typedef struct live {
    unsigned char *p;
    size_t n;                /* bytes filled (the usable size) */
    unsigned char v;         /* the byte they were filled with */
} live_t;

static int by_addr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const live_t *)a)->p, y = (uintptr_t)((const live_t *)b)->p;
    return x < y ? -1 : x > y;
}

/* fill a new block with its own byte value over its whole usable size */
static int take(live_t *l, size_t n, unsigned char v)
{
    l->p = malloc(n);
    if (l->p == NULL) { fprintf(stderr, "malloc(%zu) failed\n", n); return 0; }
    l->n = malloc_usable_size(l->p);
    if (l->n < n) { fprintf(stderr, "usable %zu < %zu\n", l->n, n); return 0; }
    l->v = v;
    memset(l->p, v, l->n);
    return 1;
}

/* every block still holds its value (no other block was handed out over it) and no
 * two overlap; sorts the array */
static int verify(live_t *l, size_t k, const char *when)
{
    for (size_t i = 0; i < k; i++) {
        for (size_t j = 0; j < l[i].n; j += 509)
            if (l[i].p[j] != l[i].v) { fprintf(stderr, "%s: block %p byte %zu changed\n", when, (void *)l[i].p, j); return 0; }
        if (l[i].p[l[i].n - 1] != l[i].v) { fprintf(stderr, "%s: block %p last byte changed\n", when, (void *)l[i].p); return 0; }
    }
    qsort(l, k, sizeof *l, by_addr);
    for (size_t i = 1; i < k; i++)
        if (l[i - 1].p + l[i - 1].n > l[i].p) {
            fprintf(stderr, "%s: blocks %p (+%zu) and %p overlap\n", when, (void *)l[i - 1].p, l[i - 1].n, (void *)l[i].p);
            return 0;
        }
    return 1;
}

static int overflow(int argc, char **argv)
{
    size_t n = arg_size(argc, argv, 2, 24), off = arg_size(argc, argv, 3, n);
    int use_realloc = argc > 4 && !strcmp(argv[4], "realloc");
    unsigned char byte = (unsigned char)arg_size(argc, argv, 5, 0);
    unsigned char *p = malloc(n);
    if (p == NULL) return 2;
    memset(p, 1, n);
    target(p);
    ((volatile unsigned char *)p)[off] = byte;       /* the bug */
    if (use_realloc) {
        void *q = realloc(p, 2 * n + 1);
        printf("realloc returned %s\n", q ? "a block" : "NULL");
        free(q);
    } else {
        free(p);
    }
    return survived("overflow");
}

static int write_usable(int argc, char **argv)
{
    size_t n = arg_size(argc, argv, 2, 24);
    unsigned char *p = malloc(n);
    if (p == NULL) return 2;
    size_t u = malloc_usable_size(p);
    printf("usable %zu\n", u);
    memset(p, 7, u);
    p = realloc(p, u + 1);                           /* realloc validates too */
    if (p == NULL) return 3;
    free(p);
    return survived("write_usable");
}

/* allocate K blocks of n bytes, check, free them; a few rounds. 0: something broke */
static int churn(size_t n, const char *when)
{
    enum { K = 64 };
    static live_t l[K];
    for (int round = 0; round < 4; round++) {
        for (size_t i = 0; i < K; i++)
            if (!take(&l[i], n, (unsigned char)(i + 1))) return 0;
        if (!verify(l, K, when)) return 0;
        for (size_t i = 0; i < K; i++) free(l[i].p);
    }
    return 1;
}

static int double_free_medium(int argc, char **argv)
{
    size_t n = arg_size(argc, argv, 2, 100000);
    char *p = malloc(n);
    if (p == NULL) return 2;
    memset(p, 1, n);
    target(p);
    free(p);
    free(launder(p));                                /* the bug */
    /* without NUMAMALLOC_CHECK the second free must have been refused: no block may
     * now come out twice */
    if (!churn(n, "after a medium double free")) return 3;
    return survived("double_free_medium");
}

static int double_free_large_alloc(void)
{
    enum { K = 48 };
    static live_t l[K];
    char *p = malloc(8 << 20);
    if (p == NULL) return 2;
    memset(p, 1, 8 << 20);
    target(p);
    free(p);
    free(launder(p));                                /* the bug */
    /* sizes around the freed block's (the cache would hand its mapping out again),
     * and medium and small ones */
    static const size_t sizes[] = { 8 << 20, 4 << 20, 12 << 20, 1 << 20, 3 << 20, 200000, 5000, 40 };
    for (int round = 0; round < 3; round++) {
        for (size_t i = 0; i < K; i++)
            if (!take(&l[i], sizes[i % 8] + (size_t)round * 4096, (unsigned char)(i + 1))) return 3;
        if (!verify(l, K, "after a large double free")) return 4;
        for (size_t i = 0; i < K; i++) free(l[i].p);
    }
    return survived("double_free_large_alloc");
}

/* ---- use after free: writes into freed small and medium blocks ------------------ */

enum { UAF_N = 1200 };
static live_t uaf[UAF_N];

static size_t uaf_size(unsigned *x, size_t i)
{
    *x = *x * 1103515245u + 12345u;
    /* two thirds small (16 B .. 32 KiB), one third medium (32 .. 288 KiB), some at
     * exactly a power of two (a class size), up to 512 KiB */
    if (i % 10 == 0) return (size_t)1 << (4 + (*x >> 8) % 16);      /* 16 B .. 512 KiB */
    if (i % 3 == 0) return 32769 + (*x >> 8) % (256 << 10);
    return 1 + (*x >> 8) % 32768;
}

static void *free_odd(void *arg)
{
    (void)arg;
    for (size_t i = 1; i < UAF_N; i += 2) free(uaf[i].p);
    return NULL;
}

static int uaf_writes(void)
{
    unsigned x = 777;
    static live_t l[UAF_N];
    for (int round = 0; round < 6; round++) {
        for (size_t i = 0; i < UAF_N; i++)
            if (!take(&uaf[i], uaf_size(&x, i), 0x10)) return 2;
        /* free them all, half from another thread (remote frees: other lists) */
        pthread_t t;
        if (pthread_create(&t, NULL, free_odd, NULL) != 0) return 3;
        for (size_t i = 0; i < UAF_N; i += 2) free(uaf[i].p);
        pthread_join(t, NULL);
        /* the bug: write over all of every freed block */
        for (size_t i = 0; i < UAF_N; i++) memset(launder(uaf[i].p), 0x41, uaf[i].n);
        /* and the allocator goes on: allocate heavily, check, free */
        for (int k = 0; k < 3; k++) {
            for (size_t i = 0; i < UAF_N; i++)
                if (!take(&l[i], uaf_size(&x, i), (unsigned char)(0x80 + i % 97))) return 4;
            if (!verify(l, UAF_N, "after writes into freed blocks")) return 5;
            for (size_t i = 0; i < UAF_N; i++) free(l[i].p);
        }
    }
    return survived("uaf_writes");
}

static int clean(void)
{
    enum { N = 20000 };
    static void *p[N];
    unsigned x = 12345;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++) {
            x = x * 1103515245 + 12345;
            size_t n = (x >> 8) % (i % 100 == 0 ? 300000 : 4000);
            p[i] = (i % 7 == 0) ? calloc(1, n) : malloc(n);
            if (p[i] == NULL) return 2;
            memset(p[i], 1, n);
        }
        for (int i = 0; i < N; i += 3) {
            p[i] = realloc(p[i], (size_t)(i % 5000) + 1);
            if (p[i] == NULL) return 3;
        }
        for (int i = 0; i < N; i++) {
            int j = (int)((x = x * 1103515245 + 12345) >> 8) % N;
            void *t = p[i]; p[i] = p[j]; p[j] = t;
        }
        for (int i = 0; i < N; i++) free(p[i]);
    }
    void *a = aligned_alloc(4096, 5000), *b = NULL, *c = memalign(64, 100), *d = valloc(10), *e = pvalloc(10);
    if (posix_memalign(&b, 256, 256) != 0 || !a || !c || !d || !e) return 4;
    if (malloc_usable_size(a) < 5000) return 5;
    free(a); free(b); free(c); free(d); free(e);
    free(NULL);
    void *l = malloc(8 << 20);
    l = realloc(l, 20 << 20);
    free(l);
    malloc_trim(0);
    return survived("clean");
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: %s scenario [args]\n", argv[0]); return 64; }
    const char *s = argv[1];
    int on_stack = 7;

    if (!strcmp(s, "double_free")) {
        char *p = malloc(24);
        if (!p) return 2;
        p[0] = 1;
        target(p);
        free(p);
        free(launder(p));
        return survived(s);
    }
    if (!strcmp(s, "interior")) {
        char *p = malloc(100);
        if (!p) return 2;
        target(p + 16);
        free(launder(p + 16));
        return survived(s);
    }
    if (!strcmp(s, "interior_large")) {
        char *p = malloc(8 << 20);
        if (!p) return 2;
        target(p + 4096);
        free(launder(p + 4096));
        free(p);                     /* the real block is still good */
        return survived(s);
    }
    if (!strcmp(s, "double_free_large")) {
        char *p = malloc(8 << 20);
        if (!p) return 2;
        p[0] = 1;
        target(p);
        free(p);
        free(launder(p));
        return survived(s);
    }
    if (!strcmp(s, "realloc_freed")) {
        char *p = malloc(40);
        if (!p) return 2;
        target(p);
        free(p);
        void *q = realloc(launder(p), 4000);
        printf("realloc returned %s\n", q ? "a block" : "NULL");
        return survived(s);
    }
    if (!strcmp(s, "realloc_interior")) {
        char *p = malloc(100);
        if (!p) return 2;
        target(p + 16);
        void *q = realloc(launder(p + 16), 50);
        printf("realloc returned %s\n", q ? "a block" : "NULL");
        return survived(s);
    }
    if (!strcmp(s, "free_stack")) {
        target(&on_stack);
        free(launder(&on_stack));
        return survived(s);
    }
    if (!strcmp(s, "free_global")) {
        target(&global_int);
        free(launder(&global_int));
        return survived(s);
    }
    if (!strcmp(s, "foreign_frees")) {
        free(launder(&on_stack));
        free(launder(&global_int));
        if (on_stack != 7 || global_int != 42) return 3;
        /* and the allocator goes on working */
        for (int i = 0; i < 1000; i++) {
            void *p = malloc((size_t)i * 37);
            if (!p && i) return 4;
            free(p);
        }
        return survived(s);
    }
    if (!strcmp(s, "realloc_foreign")) {
        target(&on_stack);
        errno = 0;
        void *r = realloc(launder(&on_stack), 100);
        int e = errno;
        printf("result %s errno %s value %d\n", r ? "non-NULL" : "NULL", e == EINVAL ? "EINVAL" : strerror(e), on_stack);
        return survived(s);
    }
    if (!strcmp(s, "clean")) return clean();
    if (!strcmp(s, "overflow")) return overflow(argc, argv);
    if (!strcmp(s, "write_usable")) return write_usable(argc, argv);
    if (!strcmp(s, "double_free_medium")) return double_free_medium(argc, argv);
    if (!strcmp(s, "double_free_large_alloc")) return double_free_large_alloc();
    if (!strcmp(s, "uaf_writes")) return uaf_writes();
    if (!strcmp(s, "interior_medium")) {
        char *p = malloc(100000);
        if (!p) return 2;
        target(p + 4096);
        free(launder(p + 4096));
        free(p);                     /* the real block is still good */
        if (!churn(100000, "after an interior free")) return 3;
        return survived(s);
    }
    if (!strcmp(s, "realloc_freed_medium")) {
        char *p = malloc(100000);
        if (!p) return 2;
        target(p);
        free(p);
        void *q = realloc(launder(p), 200000);
        printf("realloc returned %s\n", q ? "a block" : "NULL");
        return survived(s);
    }
    if (!strcmp(s, "realloc_interior_medium")) {
        char *p = malloc(100000);
        if (!p) return 2;
        target(p + 8192);
        void *q = realloc(launder(p + 8192), 100);
        printf("realloc returned %s\n", q ? "a block" : "NULL");
        free(p);                     /* the real block is still good */
        return survived(s);
    }
    if (!strcmp(s, "usable_stack")) {
        target(&on_stack);
        printf("usable %zu\n", malloc_usable_size(launder(&on_stack)));
        return survived(s);
    }
    if (!strcmp(s, "option_get")) {
        const char *(*get)(const char *) = (const char *(*)(const char *))dlsym(RTLD_DEFAULT, "numamalloc_option_get");
        if (get == NULL) { fprintf(stderr, "numamalloc_option_get not found: not preloaded?\n"); return 5; }
        for (int i = 2; i < argc; i++) {
            const char *v = get(argv[i]);
            printf("%s=%s\n", argv[i], v ? v : "(null)");
        }
        return 0;
    }
    fprintf(stderr, "unknown scenario %s\n", s);
    return 64;
}
