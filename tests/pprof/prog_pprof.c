/* tests/pprof/prog_pprof.c — a program with a planted hot allocation site, run by
 * tests/pprof/test_pprof.py with NUMAMALLOC_PROF=1 and NUMAMALLOC_PROF_FILE.
 *
 *   planted_hot_site  allocates PLANT_BLOCKS blocks of 4000 bytes (200 MiB) and keeps
 *                     every fifth (40 MiB) live to the end: the biggest site by live
 *                     and by allocated bytes
 *   churn_medium      64 MiB in 96 KiB blocks (the fallback arena), all freed
 *   keep_small        9.2 MiB in 48-byte blocks, kept
 *   keep_large        8 MiB in 2 MiB blocks (large mappings), kept
 *   keep_edge         6.25 MiB in 64 KiB blocks, kept, through edge_alloc, whose call to
 *                     malloc is followed only by its epilogue: the return address is on
 *                     the closing brace's line, the call on the line above
 * Built with -g and without -rdynamic: pprof names the functions from the program's
 * symbol table and lines from its DWARF; noinline and the barriers keep every call
 * where the source says. The lines marked "planted malloc", "planted call" and "edge
 * malloc" are what `google-pprof --lines` must name.
 *
 *   prog_pprof run              the work, then exit
 *   prog_pprof signal           the work, raise(SIGUSR1), then _exit (no exit profile)
 *   prog_pprof wait DUMPS       the work, then wait until the JSON stats file DUMPS
 *                               holds two interval dumps, then _exit: the interval
 *                               thread writes the profile files right after its dump,
 *                               so the second dump means the first tick's files are
 *                               complete (no exit profile overwrites them)
 *   prog_pprof storm N          two threads allocate (and are sampled) while the main
 *                               thread raises SIGUSR1 N times: profile writes from
 *                               the signal handler, the interval thread and the exit
 *                               meet the profiler in use
 * Prints "pid N at_secure S", then "truth SITE INUSE ALLOC" for the requested bytes
 * of each site. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>
#include <unistd.h>

#define BLOCK        4000
#define PLANT_BLOCKS 52429                  /* 209,716,000 bytes: 200.0 MiB */
#define KEEP_EVERY   5                      /* 10,486 blocks live: 40.0 MiB */

volatile uintptr_t sink;
static void *kept[PLANT_BLOCKS / KEEP_EVERY + 1];
static void *kept_small[200000];
static void *kept_large[4];
static void *kept_edge[100];

__attribute__((noinline)) size_t planted_hot_site(size_t *live)
{
    size_t total = 0, k = 0;
    *live = 0;
    for (size_t i = 0; i < PLANT_BLOCKS; i++) {
        char *p = malloc(BLOCK);   /* planted malloc */
        if (p == NULL) abort();
        p[0] = 1;
        total += BLOCK;
        if (i % KEEP_EVERY == 0) { kept[k++] = p; *live += BLOCK; }
        else { sink += (uintptr_t)p; free(p); }
    }
    __asm__ volatile("" ::: "memory");      /* no tail call: this frame stays on the stack */
    return total;
}

__attribute__((noinline)) size_t churn_medium(void)
{
    size_t total = 0;
    for (int i = 0; i < 64 * 1024 / 96; i++) {
        char *p = malloc(96 << 10);
        if (p == NULL) abort();
        p[0] = 2;
        sink += (uintptr_t)p;
        free(p);
        total += 96 << 10;
    }
    __asm__ volatile("" ::: "memory");
    return total;
}

__attribute__((noinline)) size_t keep_small(void)
{
    for (size_t i = 0; i < sizeof kept_small / sizeof kept_small[0]; i++) {
        kept_small[i] = malloc(48);
        if (kept_small[i] == NULL) abort();
    }
    __asm__ volatile("" ::: "memory");
    return sizeof kept_small / sizeof kept_small[0] * 48;
}

__attribute__((noinline)) size_t keep_large(void)
{
    for (int i = 0; i < 4; i++) {
        kept_large[i] = malloc(2 << 20);
        if (kept_large[i] == NULL) abort();
        memset(kept_large[i], 3, 4096);
    }
    __asm__ volatile("" ::: "memory");
    return 4 * (2 << 20);
}

static volatile int storm_over;

static void *storm_thread(void *arg)
{
    uint64_t x = (uintptr_t)arg | 1;
    while (!storm_over) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        char *p = malloc(16 + (x >> 40) % 70000);
        if (p == NULL) abort();
        p[0] = 6;
        sink += (uintptr_t)p;
        free(p);
    }
    return NULL;
}

__attribute__((noinline, optimize("no-optimize-sibling-calls"))) static void *edge_alloc(size_t n)
{
    return malloc(n);   /* edge malloc */
}

__attribute__((noinline)) size_t keep_edge(void)
{
    for (int i = 0; i < 100; i++) {
        kept_edge[i] = edge_alloc(64 << 10);
        if (kept_edge[i] == NULL) abort();
    }
    __asm__ volatile("" ::: "memory");
    return 100 * (64 << 10);
}

int main(int argc, char **argv)
{
    if (argc < 2) { fprintf(stderr, "usage: prog_pprof run|signal|wait DUMPS|storm N\n"); return 2; }
    printf("pid %d at_secure %lu\n", (int)getpid(), getauxval(AT_SECURE));
    if (!strcmp(argv[1], "storm") && argc == 3) {
        pthread_t t[2];
        for (int i = 0; i < 2; i++)
            if (pthread_create(&t[i], NULL, storm_thread, (void *)(uintptr_t)(i + 1)) != 0) return 1;
        for (int i = 0; i < atoi(argv[2]); i++) {
            void *p = malloc(4000);
            sink += (uintptr_t)p;
            raise(SIGUSR1);
            free(p);
        }
        storm_over = 1;
        for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
        printf("storm done\n");
        return 0;
    }
    size_t live = 0;
    size_t planted = planted_hot_site(&live);   /* planted call */
    size_t medium = churn_medium();
    size_t small = keep_small();
    size_t large = keep_large();
    size_t edge = keep_edge();
    printf("truth planted_hot_site %zu %zu\n", live, planted);
    printf("truth churn_medium 0 %zu\n", medium);
    printf("truth keep_small %zu %zu\n", small, small);
    printf("truth keep_large %zu %zu\n", large, large);
    printf("truth edge_alloc %zu %zu\n", edge, edge);
    fflush(stdout);
    if (!strcmp(argv[1], "signal")) {
        raise(SIGUSR1);
        _exit(0);
    }
    if (!strcmp(argv[1], "wait") && argc == 3) {
        /* no timing here: the test's timeout guards against dumps that never come */
        for (;;) {
            int lines = 0, c;
            FILE *f = fopen(argv[2], "r");
            if (f) { while ((c = getc(f)) != EOF) lines += c == '\n'; fclose(f); }
            if (lines >= 2) _exit(0);
            struct timespec ts = { 0, 50000000 };
            nanosleep(&ts, NULL);
        }
    }
    return strcmp(argv[1], "run") ? 2 : 0;
}
