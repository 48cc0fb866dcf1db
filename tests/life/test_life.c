/* tests/life/test_life.c — lifecycle and scale under the preload: thread churn,
 * fork storms with posix_spawn and vfork, signal handlers that allocate, and 256
 * threads on 2 CPUs. Each case runs a helper (tests/life/life_*.c) in a fresh
 * preloaded process with an explicit environment (helpers/spawn.h) and checks what
 * it printed; every helper has a hang guard of its own besides the spawn timeout.
 * Times are printed for the record (the suite's log), never asserted. */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/spawn.h"

#ifndef NM_LIFE_DIR
#define NM_LIFE_DIR "build/tests/life"
#endif

static void run(const char *prog, const char *const args[], const char *const env[], unsigned timeout, nm_proc_t *p)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", NM_LIFE_DIR, prog);
    cr_assert_eq(nm_run_helper(path, args, env, timeout, p), 0, "cannot start %s: %s", path, p->err);
}

#define KIB(x) ((unsigned long)((x) >> 10))

/* ---- thread churn ------------------------------------------------------------------------
 * 50,000 threads, 8 at a time, 48 blocks each, 18 of them swapped through a pool
 * that other (live or dead) threads free. Checkpoints every 5,000 threads. The
 * large-mapping cache is limited to 4 MiB, as in tests/preload/test_threads.c: its
 * default bound (64 MiB, on THP) let RSS move by up to 9 MiB between intervals with
 * no leak at all. Seen in 8 runs on this 2-core machine (idle, and beside other
 * suites): RSS 20-27 MiB at 10,000 threads, 15-20 MiB at 50,000, moving by -2.6 to
 * +2.3 MiB over the last 10,000; the per-interval peak (VmHWM) 33-35 MiB in the first
 * 20,000 threads, 24-29 MiB in the last 10,000; meta_bytes 272 KiB and
 * pagemap_bytes 1 MiB at every checkpoint.
 * Bounds (a leak of 1 KiB per thread is 10 MiB over 10,000 threads, of 200 bytes
 * 8 MiB over 40,000):
 *  - RSS grows by less than 8 MiB over the last 10,000 threads, and over the
 *    40,000 after the first 10,000;
 *  - the interval peak of the last 10,000 stays within 8 MiB of the first 20,000's;
 *  - metadata grows by less than one 256 KiB chunk over the last 10,000 threads (26
 *    bytes per thread) and over the 40,000 after the first 10,000;
 *  - the page map by at most one 512 KiB leaf (4 GiB of new address space). */
#define CHURN_THREADS 50000
#define CHURN_STEP    5000
#define CHURN_POINTS  (CHURN_THREADS / CHURN_STEP)
#define RSS_SLACK     ((uint64_t)8 << 20)
#define META_SLACK    ((uint64_t)256 << 10)
#define PAGEMAP_SLACK ((uint64_t)512 << 10)

typedef struct point { unsigned threads; uint64_t rss, hwm, meta, pagemap, heap, live; } point_t;

Test(life, fifty_thousand_threads_in_waves_cross_thread_frees_level_off, .timeout = 400)
{
    nm_proc_t p;
    const char *args[] = { "50000", "8", "5000", NULL };
    const char *env[] = { "NUMAMALLOC_LARGE_CACHE=4M", NULL };
    run("life_churn", args, env, 300, &p);
    NM_ASSERT_PROC_OK(&p);
    point_t pt[CHURN_POINTS];
    int n = 0;
    for (const char *l = p.out; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        point_t q;
        if (sscanf(l, "checkpoint threads=%u rss=%" SCNu64 " hwm=%" SCNu64 " meta=%" SCNu64 " pagemap=%" SCNu64
                   " heap=%" SCNu64 " live=%" SCNu64, &q.threads, &q.rss, &q.hwm, &q.meta, &q.pagemap, &q.heap,
                   &q.live) == 7) {
            cr_assert_lt(n, CHURN_POINTS, "too many checkpoints:\n%s", p.out);
            pt[n++] = q;
        }
    }
    cr_assert_eq(n, CHURN_POINTS, "%d checkpoints in:\n%s", n, p.out);
    uint64_t bad = 1, live = 0, seen = 0, trimmed = 0;
    cr_assert(nm_kv_u64(p.out, "bad", &bad) && bad == 0, "blocks lost their pattern:\n%s", p.out);
    cr_assert(nm_kv_u64(p.out, "threads_live", &live) && live == 1, "threads_live %" PRIu64 " at the end", live);
    cr_assert(nm_kv_u64(p.out, "threads_seen", &seen) && seen >= CHURN_THREADS + 1, "threads_seen %" PRIu64, seen);
    cr_assert(nm_kv_u64(p.out, "trimmed_rss", &trimmed));
    for (int i = 0; i < n; i++) {
        cr_assert_eq(pt[i].threads, (unsigned)(i + 1) * CHURN_STEP);
        cr_assert_eq(pt[i].live, 1, "checkpoint %u: %" PRIu64 " threads live after the joins", pt[i].threads, pt[i].live);
        cr_assert_neq(pt[i].meta, 0, "no stats dump: is the helper preloaded?\n%s", p.out);
    }
    const point_t *w = &pt[1], *a = &pt[n - 3], *b = &pt[n - 1];    /* 10,000, 40,000, 50,000 */
    uint64_t warm_peak = 0, last_peak = 0;
    for (int i = 0; i < 4; i++) warm_peak = pt[i].hwm > warm_peak ? pt[i].hwm : warm_peak;
    for (int i = n - 2; i < n; i++) last_peak = pt[i].hwm > last_peak ? pt[i].hwm : last_peak;
    fprintf(stderr, "thread churn (%.1f s): at 10,000 / 40,000 / 50,000 threads: RSS %lu / %lu / %lu KiB, "
            "meta %lu / %lu / %lu KiB, page map %lu / %lu KiB, heap %lu / %lu KiB; interval peak RSS first 20,000 "
            "%lu KiB, last 10,000 %lu KiB; after malloc_trim %lu KiB\n", p.seconds, KIB(w->rss), KIB(a->rss),
            KIB(b->rss), KIB(w->meta), KIB(a->meta), KIB(b->meta), KIB(a->pagemap), KIB(b->pagemap), KIB(a->heap),
            KIB(b->heap), KIB(warm_peak), KIB(last_peak), KIB(trimmed));
    cr_assert_lt(b->rss, a->rss + RSS_SLACK, "RSS grew from %lu to %lu KiB over the last 10,000 threads",
                 KIB(a->rss), KIB(b->rss));
    cr_assert_lt(b->rss, w->rss + RSS_SLACK, "RSS grew from %lu to %lu KiB from 10,000 to 50,000 threads",
                 KIB(w->rss), KIB(b->rss));
    if (warm_peak && last_peak)                            /* 0: the kernel would not reset VmHWM */
        cr_assert_lt(last_peak, warm_peak + RSS_SLACK, "peak RSS of the last 10,000 threads %lu KiB, of the first "
                     "20,000 %lu KiB", KIB(last_peak), KIB(warm_peak));
    cr_assert_lt(b->meta, a->meta + META_SLACK, "metadata grew from %lu to %lu KiB over the last 10,000 threads",
                 KIB(a->meta), KIB(b->meta));
    cr_assert_lt(b->meta, w->meta + META_SLACK, "metadata grew from %lu to %lu KiB from 10,000 to 50,000 threads",
                 KIB(w->meta), KIB(b->meta));
    cr_assert_leq(b->pagemap, a->pagemap + PAGEMAP_SLACK, "page map grew from %lu to %lu KiB",
                  KIB(a->pagemap), KIB(b->pagemap));
    nm_proc_free(&p);
}

/* ---- fork, posix_spawn, vfork -------------------------------------------------------------
 * A fork costs in proportion to the parent's resident memory: with the defaults the
 * busy parent holds ~180 MiB (freed medium pages mimalloc keeps for a second, the
 * 64 MiB large-mapping cache on THP) and 1,000 forks took 50-65 s here; with decay
 * after 100 ms and a 4 MiB large cache, 20-40 s. With these settings the case
 * caught both fork bugs found while writing it (see src/fallback.c and
 * src/init.c): with the mimalloc fork gate taken out, 1 or 2 of the 1,000 children
 * (all forked by a worker) hung in each of 4 runs; with the other threads' caches
 * given back in the child, 15 and 38 of 1,000 children crashed, hung or found a
 * block handed out twice (two runs). */
Test(life, thousand_forks_posix_spawn_and_vfork_while_eight_threads_allocate, .timeout = 400)
{
    nm_proc_t p;
    const char *args[] = { "1000", "100", NULL };
    const char *env[] = { "NUMAMALLOC_DECAY_MS=100", "NUMAMALLOC_LARGE_CACHE=4M", NULL };
    run("life_fork", args, env, 300, &p);
    fprintf(stderr, "fork storm: 1,000 forks, 100 posix_spawn, 100 vfork+exec: %.1f s\n", p.seconds);
    NM_ASSERT_PROC_OK(&p);
    cr_assert_str_eq(p.out, "forks=1000 ok=1000 by_workers=250 spawns=100 ok=100 vforks=100 ok=100 worker_bad=0\n");
    cr_assert_str_empty(p.err, "children failed:\n%s", p.err);
    nm_proc_free(&p);
}

/* ---- signal handlers that allocate ------------------------------------------------------- */

static void signals(const char *mode)
{
    nm_proc_t p;
    const char *args[] = { mode, "2", NULL };
    run("life_signal", args, NULL, 150, &p);
    NM_ASSERT_PROC_OK(&p);
    cr_assert_str_empty(p.err, "unexpected stderr: %s", p.err);
    char fmt[64];
    snprintf(fmt, sizeof fmt, "%s: alrm=%%lu usr1=%%lu rx_ops=%%lu worker_ops=%%lu bad=%%lu", mode);
    unsigned long alrm, usr1, rx_ops, worker_ops, bad;
    cr_assert_eq(sscanf(p.out, fmt, &alrm, &usr1, &rx_ops, &worker_ops, &bad), 5, "%s", p.out);
    fprintf(stderr, "signals (%s, 2 s): %lu SIGALRM and %lu SIGUSR1 handlers ran, receiver %lu allocations, "
            "workers %lu\n", mode, alrm, usr1, rx_ops, worker_ops);
    cr_assert_eq(bad, 0);
    /* the case tests something only if handlers ran, of both kinds, while the others worked */
    cr_assert_gt(alrm, 100, "%s", p.out);
    cr_assert_gt(usr1, 0, "%s", p.out);
    cr_assert_gt(worker_ops, 10000, "%s", p.out);
    if (strcmp(mode, "masked") == 0) cr_assert_gt(rx_ops, 1000, "%s", p.out);
    else cr_assert_eq(rx_ops, 0);
    nm_proc_free(&p);
}

Test(life, signal_handlers_malloc_on_a_thread_outside_the_allocator, .timeout = 200) { signals("idle"); }
Test(life, signal_handlers_malloc_on_a_thread_that_masks_them_around_malloc, .timeout = 200) { signals("masked"); }

/* ---- 256 threads on 2 CPUs ---------------------------------------------------------------- */

Test(life, two_hundred_fifty_six_threads_at_once_on_two_cpus, .timeout = 400)
{
    static const char want[] = "threads=256 ops=10000 cpus=";
    const char *args[] = { "256", "10000", NULL };
    double secs[2] = { 0, 0 };
    for (int glibc = 0; glibc < 2; glibc++) {
        nm_proc_t p;
        const char *env[] = { "LD_PRELOAD=", NULL };
        run("life_many", args, glibc ? env : NULL, 300, &p);
        NM_ASSERT_PROC_OK(&p);
        cr_assert(strncmp(p.out, want, sizeof want - 1) == 0, "%s", p.out);
        cr_assert(strstr(p.out, " bad=0 ") != NULL, "%s", p.out);
        const char *s = strstr(p.out, "seconds=");
        cr_assert_not_null(s);
        secs[glibc] = strtod(s + 8, NULL);
        nm_proc_free(&p);
    }
    fprintf(stderr, "256 threads x 10,000 operations on 2 CPUs: numamalloc %.2f s, glibc %.2f s\n", secs[0], secs[1]);
}

/* The same run's peak RSS (VmHWM at the end) against glibc's: at most 1.5 times
 * glibc's plus 16 MiB, median against median of five runs each, in turn. How many
 * of the 256 threads overlap varies from run to run, and with it the peaks (glibc's
 * moved between 95 and 216 MiB in 16 runs here while numamalloc's stayed at
 * 170-184): one run each, or the higher of two, made the verdict a coin toss on a
 * busy machine. Times are printed, never asserted. */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

Test(life, two_hundred_fifty_six_threads_peak_rss_within_one_and_a_half_glibc, .timeout = 600)
{
    enum { RUNS = 5 };
    const char *args[] = { "256", "10000", NULL };
    uint64_t peaks[2][RUNS];
    double secs[2] = { 0, 0 };
    for (int round = 0; round < 2 * RUNS; round++) {
        int glibc = round % 2 == 0;
        nm_proc_t p;
        const char *env[] = { "LD_PRELOAD=", NULL };
        run("life_many", args, glibc ? env : NULL, 300, &p);
        NM_ASSERT_PROC_OK(&p);
        cr_assert(strstr(p.out, " bad=0 ") != NULL, "%s", p.out);
        const char *h = strstr(p.out, " hwm=");
        cr_assert_not_null(h, "no hwm= in: %s", p.out);
        uint64_t hwm = strtoull(h + 5, NULL, 10);
        cr_assert_gt(hwm, 0, "VmHWM not read: %s", p.out);
        peaks[glibc][round / 2] = hwm;
        const char *s = strstr(p.out, "seconds=");
        if (s) secs[glibc] += strtod(s + 8, NULL);
        fprintf(stderr, "256 threads, run %d (%s): peak RSS %lu KiB\n", round / 2 + 1, glibc ? "glibc" : "numamalloc",
                KIB(hwm));
        nm_proc_free(&p);
    }
    uint64_t peak[2];
    for (int g = 0; g < 2; g++) {
        qsort(peaks[g], RUNS, sizeof peaks[g][0], cmp_u64);
        peak[g] = peaks[g][RUNS / 2];
    }
    uint64_t bound = peak[1] + peak[1] / 2 + ((uint64_t)16 << 20);
    fprintf(stderr, "256 threads x 10,000 operations: median peak RSS numamalloc %lu KiB, glibc %lu KiB (%.2fx; bound %lu KiB); "
            "time over %d runs each: numamalloc %.2f s, glibc %.2f s\n", KIB(peak[0]), KIB(peak[1]),
            (double)peak[0] / (double)peak[1], KIB(bound), RUNS, secs[0], secs[1]);
    cr_assert_leq(peak[0], bound, "numamalloc's median peak RSS %lu KiB is %.2fx glibc's %lu KiB (bound: 1.5x + 16 MiB = "
                  "%lu KiB)", KIB(peak[0]), (double)peak[0] / (double)peak[1], KIB(peak[1]), KIB(bound));
}
