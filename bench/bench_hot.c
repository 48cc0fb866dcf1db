/* numamalloc benchmarks — the hot path alone, for callgrind and the stopwatch.
 *
 *   bench_hot pairs SIZE N   N malloc(SIZE) / one-byte write / free pairs; run
 *                            under callgrind twice with different N, the difference
 *                            of the instruction totals divided by the difference of N
 *                            is the cost of one pair with start-up cancelled
 *                            (scripts/hotpath.sh, bench/hotpath.py)
 *   bench_hot time SIZE N    the same loop timed: 5 rounds of N pairs, prints the
 *                            fastest round as "ns_per_pair X" (the least disturbed
 *                            by other processes on a shared machine)
 *   bench_hot start          10 allocations (16 B .. 8 KiB), 10 frees, exit: the
 *                            start-up cost of a short process (make, shells)
 *   bench_hot fork N         with a few blocks of each size range live, N times:
 *                            fork, the child allocates and frees one block and
 *                            _exits, the parent waits; prints "us_per_fork X" (a
 *                            shell running commands, a server forking workers: an
 *                            allocator's fork handlers and the pages they write are
 *                            paid by both processes)
 *
 * The loop is in a noinline function, compiled with -fno-builtin-malloc, so every
 * call reaches the allocator; each iteration adds the same few instructions
 * (loop counter, store, two calls through the PLT) under every allocator. */
#include <sys/wait.h>

#include "common.h"

/* The loop runs with 8 more blocks of the same size live: with none, the page
 * holding the pair's block empties at every free, and mimalloc (2.0.9) then takes
 * its page-retire path on each one (free measured at 88 instructions instead of
 * 26 with neighbours): a pessimal case no real program sits in. */
__attribute__((noinline)) static void pair_loop(size_t size, uint64_t n)
{
    void *keep[8];
    for (int i = 0; i < 8; i++) {
        keep[i] = malloc(size);
        if (keep[i] == NULL) die("malloc(%zu) failed", size);
        *(volatile char *)keep[i] = 1;
    }
    for (uint64_t i = 0; i < n; i++) {
        char *p = malloc(size);
        *(volatile char *)p = 1;
        free(p);
    }
    for (int i = 0; i < 8; i++) free(keep[i]);
}

static uint64_t arg_u64(const char *s)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || end == s) die("bad number '%s'", s);
    return v;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "pairs")) {
        pair_loop(arg_u64(argv[2]), arg_u64(argv[3]));
        return 0;
    }
    if (argc == 4 && !strcmp(argv[1], "time")) {
        size_t size = arg_u64(argv[2]);
        uint64_t n = arg_u64(argv[3]), best = UINT64_MAX;
        pair_loop(size, n / 10 + 1);                   /* warm: caches, page faults */
        for (int round = 0; round < 5; round++) {
            uint64_t t0 = now_ns();
            pair_loop(size, n);
            uint64_t dt = now_ns() - t0;
            if (dt < best) best = dt;
        }
        printf("ns_per_pair %.3f\n", (double)best / (double)n);
        return 0;
    }
    if (argc == 2 && !strcmp(argv[1], "start")) {
        void *p[10];
        for (int i = 0; i < 10; i++) {
            p[i] = malloc((size_t)16 << i);
            if (p[i] == NULL) die("malloc failed");
            *(volatile char *)p[i] = 1;
        }
        for (int i = 0; i < 10; i++) free(p[i]);
        return 0;
    }
    if (argc == 3 && !strcmp(argv[1], "fork")) {
        uint64_t n = arg_u64(argv[2]);
        void *live[4] = { malloc(48), malloc(3000), malloc(100000), malloc(2000000) };
        for (int i = 0; i < 4; i++) if (live[i] == NULL) die("malloc failed");
        uint64_t t0 = now_ns();
        for (uint64_t i = 0; i < n; i++) {
            pid_t c = fork();
            if (c < 0) die("fork: %s", strerror(errno));
            if (c == 0) {
                char *q = malloc(64);
                if (q == NULL) _exit(3);
                *(volatile char *)q = 1;
                free(q);
                _exit(0);
            }
            int st;
            if (waitpid(c, &st, 0) != c || !WIFEXITED(st) || WEXITSTATUS(st) != 0) die("child %d failed", (int)c);
        }
        printf("us_per_fork %.1f\n", (double)(now_ns() - t0) / 1e3 / (double)n);
        for (int i = 0; i < 4; i++) free(live[i]);
        return 0;
    }
    fprintf(stderr, "usage: %s pairs SIZE N | time SIZE N | start | fork N\n", argv[0]);
    return 2;
}
