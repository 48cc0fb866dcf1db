/* tests/obs/prog_prof.c — the helper the profiler tests run with NUMAMALLOC_PROF=1.
 *
 * Known allocation sites with known byte counts, named so that the report can be
 * checked by symbol (built without -rdynamic: the profiler must find the names in
 * the program's .symtab; noinline and a use of every result keep each call where
 * the name says):
 *   hotcold          hot_allocator allocates 10x the bytes of cold_allocator
 *                    (both free what they allocate)
 *   leak BYTES SIZE  leaky_function allocates BYTES in blocks of SIZE and never
 *                    frees them; prints the exact total
 *   many N           N small malloc/free pairs (with NUMAMALLOC_PROF_SAMPLE=1
 *                    every one is a sample)
 *   threads T N      T threads each do N mixed-size malloc/free pairs (in the
 *                    static function thread_body)
 *   large N SIZE     huge_site allocates and frees N blocks of SIZE (large blocks:
 *                    with no huge pages to be had, each a huge-page fallback),
 *                    after hot_allocator's small ones
 * Output is "pid <pid>" and one result line; the dump goes where the test says. */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* keeps every allocation observable, so no call is elided */
volatile uintptr_t sink;

__attribute__((noinline)) void hot_allocator(size_t total, size_t block)
{
    for (size_t done = 0; done < total; done += block) {
        char *p = malloc(block);
        if (p == NULL) abort();
        p[0] = 1;
        sink += (uintptr_t)p;
        free(p);
    }
    __asm__ volatile("" ::: "memory");   /* no tail call: this frame stays on the stack */
}

__attribute__((noinline)) void cold_allocator(size_t total, size_t block)
{
    for (size_t done = 0; done < total; done += block) {
        char *p = malloc(block);
        if (p == NULL) abort();
        p[0] = 2;
        sink += (uintptr_t)p;
        free(p);
    }
    __asm__ volatile("" ::: "memory");
}

static void *volatile *leaked;

__attribute__((noinline)) size_t leaky_function(size_t bytes, size_t block)
{
    size_t n = bytes / block, total = 0;
    leaked = calloc(n, sizeof(void *));
    if (leaked == NULL) abort();
    for (size_t i = 0; i < n; i++) {
        char *p = malloc(block);
        if (p == NULL) abort();
        p[0] = 3;
        leaked[i] = p;
        total += block;
    }
    __asm__ volatile("" ::: "memory");
    return total;
}

__attribute__((noinline)) void huge_site(int n, size_t size)
{
    for (int i = 0; i < n; i++) {
        char *p = malloc(size);
        if (p == NULL) abort();
        p[0] = 6;
        sink += (uintptr_t)p;
        free(p);
    }
    __asm__ volatile("" ::: "memory");
}

static void *thread_body(void *arg)
{
    long n = (long)(intptr_t)arg;
    uint64_t x = (uintptr_t)&n | 1;
    for (long i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        size_t size = (x & 7) == 0 ? 40000 + (x >> 40) % 100000 : 16 + (x >> 40) % 4000;
        char *p = malloc(size);
        if (p == NULL) abort();
        p[0] = 4;
        sink += (uintptr_t)p;
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    printf("pid %d\n", (int)getpid());
    if (argc >= 2 && !strcmp(argv[1], "hotcold")) {
        /* interleaved, so neither site owns a phase of the run */
        for (int r = 0; r < 16; r++) {
            hot_allocator((size_t)8 << 20, 1024);
            cold_allocator(((size_t)8 << 20) / 10, 1024);
        }
        printf("hot %zu cold %zu\n", (size_t)16 * (8 << 20), (size_t)16 * ((8 << 20) / 10));
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "leak")) {
        size_t total = leaky_function((size_t)atol(argv[2]), (size_t)atol(argv[3]));
        printf("leaked %zu\n", total);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "many")) {
        long n = atol(argv[2]);
        for (long i = 0; i < n; i++) {
            char *p = malloc(16 + (size_t)(i % 512));
            if (p == NULL) abort();
            p[0] = 5;
            sink += (uintptr_t)p;
            free(p);
        }
        printf("many %ld\n", n);
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "large")) {
        hot_allocator((size_t)4 << 20, 1024);
        huge_site(atoi(argv[2]), (size_t)atol(argv[3]));
        printf("large %s x %s\n", argv[2], argv[3]);
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "threads")) {
        int t = atoi(argv[2]);
        long n = atol(argv[3]);
        pthread_t th[16];
        if (t < 1 || t > 16) return 2;
        for (int i = 0; i < t; i++)
            if (pthread_create(&th[i], NULL, thread_body, (void *)(intptr_t)n) != 0) return 1;
        for (int i = 0; i < t; i++) pthread_join(th[i], NULL);
        printf("threads %d x %ld\n", t, n);
        return 0;
    }
    return 2;
}
