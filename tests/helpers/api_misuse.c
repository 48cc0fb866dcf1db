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
 * A scenario that survives prints "survived <scenario>" and exits 0; the misuse
 * scenarios are expected to abort under NUMAMALLOC_CHECK=1. */
#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
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
        free(p);
        free(launder(p));
        return survived(s);
    }
    if (!strcmp(s, "interior")) {
        char *p = malloc(100);
        if (!p) return 2;
        free(launder(p + 16));
        return survived(s);
    }
    if (!strcmp(s, "interior_large")) {
        char *p = malloc(8 << 20);
        if (!p) return 2;
        free(launder(p + 4096));
        free(p);                     /* the real block is still good */
        return survived(s);
    }
    if (!strcmp(s, "double_free_large")) {
        char *p = malloc(8 << 20);
        if (!p) return 2;
        p[0] = 1;
        free(p);
        free(launder(p));
        return survived(s);
    }
    if (!strcmp(s, "realloc_freed")) {
        char *p = malloc(40);
        if (!p) return 2;
        free(p);
        void *q = realloc(launder(p), 4000);
        printf("realloc returned %s\n", q ? "a block" : "NULL");
        return survived(s);
    }
    if (!strcmp(s, "realloc_interior")) {
        char *p = malloc(100);
        if (!p) return 2;
        void *q = realloc(launder(p + 16), 50);
        printf("realloc returned %s\n", q ? "a block" : "NULL");
        return survived(s);
    }
    if (!strcmp(s, "free_stack")) {
        free(launder(&on_stack));
        return survived(s);
    }
    if (!strcmp(s, "free_global")) {
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
        errno = 0;
        void *r = realloc(launder(&on_stack), 100);
        int e = errno;
        printf("result %s errno %s value %d\n", r ? "non-NULL" : "NULL", e == EINVAL ? "EINVAL" : strerror(e), on_stack);
        return survived(s);
    }
    if (!strcmp(s, "clean")) return clean();
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
