/* bench/residency_cost.c — what the measured residency costs a dump, on a big heap.
 *
 * White-box (linked with the test archive build/libnumamalloc_test.a, run on the
 * system malloc): builds a heap of GIB GiB through numamalloc's own entry points
 * (a third in small and medium blocks of 64 B..256 KiB, the rest in 64 MiB large
 * blocks; a few of those freed so the mapping caches hold some), touches all of
 * it, then times nm_residency_measure and a whole JSON dump, REPEATS times each,
 * and prints the medians. The measurement answers n/a on a machine with one node
 * with memory, so the topology is told there are two (the ranges, the queries and
 * the sampling are the same; only the node each page is on differs).
 *
 *   make bench-residency [RES_GIB=10]        (needs GIB GiB of free memory)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "numamalloc/internal.h"

static double now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    double gib = argc > 1 ? atof(argv[1]) : 10;
    int repeats = argc > 2 ? atoi(argv[2]) : 7;
    if (!nm_process_init() || nm_thread_cache()->state != NM_T_ACTIVE) { fprintf(stderr, "cannot boot\n"); return 1; }
    size_t total = (size_t)(gib * (1UL << 30)), small_part = total / 3, done = 0;
    static const size_t sizes[] = { 64, 256, 1024, 4096, 16384, 65536, 262144 };
    size_t nsmall = 0;
    double t0 = now_ms();
    for (unsigned i = 0; done < small_part; i++) {
        size_t n = sizes[i % (sizeof sizes / sizeof sizes[0])];
        char *p = nm_malloc(n);
        if (p == NULL) { fprintf(stderr, "out of memory\n"); return 1; }
        memset(p, 1, n);
        done += n;
        nsmall++;
    }
    size_t large = 64UL << 20, nlarge = (total - small_part) / large;
    void **keep = calloc(nlarge, sizeof *keep);
    for (size_t i = 0; i < nlarge; i++) {
        keep[i] = nm_malloc(large);
        if (keep[i] == NULL) { fprintf(stderr, "out of memory\n"); return 1; }
        memset(keep[i], 1, large);
    }
    for (size_t i = 0; i < 4 && i < nlarge; i++) { nm_free(keep[i]); keep[i] = NULL; }   /* some cached */
    printf("heap: %.1f GiB (%zu small and medium blocks, %zu large of 64 MiB), built in %.1f s\n", gib, nsmall, nlarge,
           (now_ms() - t0) / 1e3);

    nm_topo.nmem = 2;                    /* measure as on a two-node machine */
    double *res = calloc((size_t)repeats, sizeof *res), *dump = calloc((size_t)repeats, sizeof *dump);
    size_t cap = 4 << 20;
    char *buf = malloc(cap);
    nm_residency_t r;
    for (int i = 0; i < repeats; i++) {
        double a = now_ms();
        nm_lock(&nm_stats_dump_lock);
        nm_residency_measure(&r, false);
        nm_unlock(&nm_stats_dump_lock);
        res[i] = now_ms() - a;
        a = now_ms();
        nm_stats_print(buf, cap, NM_STATS_JSON);
        dump[i] = now_ms() - a;
    }
    nm_topo.nmem = 1;
    double *plain = calloc((size_t)repeats, sizeof *plain);
    for (int i = 0; i < repeats; i++) {
        double a = now_ms();
        nm_stats_print(buf, cap, NM_STATS_JSON);
        plain[i] = now_ms() - a;
    }
    qsort(res, (size_t)repeats, sizeof *res, cmp);
    qsort(dump, (size_t)repeats, sizeof *dump, cmp);
    qsort(plain, (size_t)repeats, sizeof *plain, cmp);
    for (int k = 0; k < NM_RES_KINDS; k++)
        printf("  %-13s %6lu ranges %9.1f MiB, stride %7lu B, %5lu pages queried, %9.1f MiB resident\n",
               nm_residency_kind_name(k), (unsigned long)r.kind[k].ranges, r.kind[k].candidate_bytes / 1048576.0,
               (unsigned long)r.kind[k].stride_bytes, (unsigned long)r.kind[k].sampled_pages,
               r.kind[k].resident / 1048576.0);
    printf("residency measurement: median %.2f ms (min %.2f, max %.2f) over %d runs\n", res[repeats / 2], res[0],
           res[repeats - 1], repeats);
    printf("whole JSON dump: median %.2f ms with residency, %.2f ms without (one node: n/a)\n", dump[repeats / 2],
           plain[repeats / 2]);
    return 0;
}
