/* numamalloc benchmarks — memory return over time: after a program frees what
 * it allocated, how much of it does the allocator give back to the kernel, and
 * how soon? Peak RSS (what the other workloads report) cannot tell; a process
 * that frees a burst and then idles, or keeps running on little memory, pays
 * for whatever its allocator keeps cached for as long as it keeps it.
 *
 *   bench_memreturn SCENARIO [-s SCALE] [-w SECONDS]
 *
 * Every scenario allocates a burst (every page written), frees all of it, and
 * then watches its own RSS (resident pages of /proc/self/statm x page size)
 * every 50 ms for the window (-w, default 4 s) while doing something else:
 *   large-then-pairs  20 blocks of 3 MiB; then a 1 MiB malloc / write the first
 *                     and last page / free pair every 100 us
 *   burst-idle        about 400 MiB of mixed sizes (16 B-32 KiB, 64-512 KiB,
 *                     2-8 MiB, a third of the bytes each, in shuffled order);
 *                     then no allocator call at all (sleeping between samples)
 *   burst-active      the same burst; then 64-byte malloc/free pairs, 100 every
 *                     100 us (a thread that stays busy on the fast path)
 *   threads-idle      8 threads allocate about 40 MiB each of the same mix, free
 *                     it, and block on a condition variable (alive, idle) while
 *                     the main thread samples
 * SCALE multiplies the burst's bytes (not the window). The samples are kept in a
 * static array and printed at exit, so the watching itself never calls the
 * allocator (stdio would). Output, times in ms from the start of main:
 *   # memreturn SCENARIO
 *   # burst_end T RSS      (everything allocated and written, before the free)
 *   # freed T RSS          (right after the last free)
 *   # ops N                (allocator calls made during the window, pairs)
 *   T RSS                  (one line per sample, "t_ms rss_bytes")
 * Sizes and order come from fixed seeds; blocks are checked before their free
 * (exit 3 if one was overwritten). */
#include "common.h"

#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/prctl.h>

enum { SAMPLE_NS = 50000000, MAX_SAMPLES = 8192 };

static struct { uint64_t t_ns, rss; } samples[MAX_SAMPLES];
static int nsamples;
static uint64_t t_start, next_sample;
static uint64_t burst_t, burst_rss, freed_t, freed_rss, window_ops;

static void record(uint64_t t)
{
    if (nsamples < MAX_SAMPLES) {
        samples[nsamples].t_ns = t - t_start;
        samples[nsamples].rss = rss_bytes();
        nsamples++;
    }
}

/* during a burst: a sample when the next 50 ms tick has passed */
static inline void maybe_sample(void)
{
    uint64_t t = now_ns();
    if (t >= next_sample) {
        record(t);
        next_sample += SAMPLE_NS;
        if (next_sample <= t) next_sample = t + SAMPLE_NS;
    }
}

static void sleep_until(uint64_t t_ns)
{
    struct timespec ts = { (time_t)(t_ns / 1000000000ull), (long)(t_ns % 1000000000ull) };
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {}
}

static void mark_burst_end(void) { burst_t = now_ns() - t_start; burst_rss = rss_bytes(); }

/* right after the free: the watch window starts here; samples on its 50 ms grid */
static uint64_t mark_freed(void)
{
    uint64_t t = now_ns();
    freed_t = t - t_start;
    freed_rss = rss_bytes();
    return t;
}

/* the window with no allocator call: sleep to each tick and sample */
static void watch_idle(uint64_t t0, double window_s)
{
    int ticks = (int)(window_s * 1e9 / SAMPLE_NS + 0.5);
    for (int k = 1; k <= ticks; k++) {
        sleep_until(t0 + (uint64_t)k * SAMPLE_NS);
        record(now_ns());
    }
}

/* ---- the burst: mixed sizes, a third of the bytes in each range ------------------ */

typedef struct { unsigned char *p; size_t n; } blk_t;

static size_t log_uniform(rng_t *r, double lo, double hi)
{
    return (size_t)exp(log(lo) + rng_unit(r) * (log(hi) - log(lo)));
}

/* the bookkeeping arrays come from mmap: the allocator sees only the burst */
static void *map(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) die("mmap(%zu) failed", n);
    return p;
}

typedef struct { blk_t *b; size_t n, cap; } mix_t;

/* sizes for `total` bytes: small 16 B-32 KiB, medium 64-512 KiB, large 2-8 MiB,
 * a third of the bytes each, then shuffled */
static mix_t mix_plan(uint64_t seed, size_t total)
{
    static const double lo[3] = { 16, 64 * 1024.0, 2 * 1048576.0 }, hi[3] = { 32 * 1024.0, 512 * 1024.0, 8 * 1048576.0 };
    rng_t r = rng_seed(seed);
    mix_t m = { NULL, 0, total / 4096 + 64 };     /* mean small size is about 4.3 KiB */
    m.b = map(m.cap * sizeof(blk_t));
    for (int c = 0; c < 3; c++) {
        size_t bytes = 0;
        while (bytes < total / 3 && m.n < m.cap) {
            size_t n = log_uniform(&r, lo[c], hi[c]);
            m.b[m.n++] = (blk_t){ NULL, n };
            bytes += n;
        }
    }
    for (size_t i = m.n - 1; i > 0; i--) {
        size_t j = (size_t)(rng_next(&r) % (i + 1));
        blk_t t = m.b[i]; m.b[i] = m.b[j]; m.b[j] = t;
    }
    return m;
}

static void mix_alloc(mix_t *m, int sample)
{
    for (size_t i = 0; i < m->n; i++) {
        m->b[i].p = xmalloc(m->b[i].n);
        touch_pages(m->b[i].p, m->b[i].n);
        fill(m->b[i].p, m->b[i].n);
        if (sample) maybe_sample();
    }
}

static void mix_free(mix_t *m, int sample)
{
    for (size_t i = 0; i < m->n; i++) {
        check(m->b[i].p, m->b[i].n);
        free(m->b[i].p);
        if (sample && (i & 63) == 0) maybe_sample();
    }
    munmap(m->b, m->cap * sizeof(blk_t));
}

/* ---- scenarios ----------------------------------------------------------------------- */

static void s_large_then_pairs(double scale, double window_s)
{
    enum { PAIR_NS = 100000 };
    size_t nblk = (size_t)(20 * scale + 0.5), n = 3 * MiB;
    if (nblk < 1) nblk = 1;
    blk_t *b = map(nblk * sizeof(blk_t));
    for (size_t i = 0; i < nblk; i++) {
        b[i].n = n;
        b[i].p = xmalloc(n);
        touch_pages(b[i].p, n);
        fill(b[i].p, n);
        maybe_sample();
    }
    mark_burst_end();
    for (size_t i = 0; i < nblk; i++) { check(b[i].p, n); free(b[i].p); }
    munmap(b, nblk * sizeof(blk_t));
    uint64_t t0 = mark_freed(), end = t0 + (uint64_t)(window_s * 1e9);
    uint64_t tick = t0 + SAMPLE_NS, next = t0;
    while (1) {
        uint64_t t = now_ns();
        if (t >= tick) { record(t); tick += SAMPLE_NS; }
        if (t >= end) break;
        if (t < next) { sleep_until(next < tick ? next : tick); continue; }
        unsigned char *p = xmalloc(MiB);
        p[0] = 1;
        p[MiB - 1] = 2;
        escape(p);
        if (p[0] != 1 || p[MiB - 1] != 2) corrupt("1 MiB block %p", (void *)p);
        free(p);
        window_ops++;
        next += PAIR_NS;
        if (next + 10 * PAIR_NS < t) next = t;   /* fell far behind (preempted): do not catch up */
    }
}

static void burst(double scale)
{
    mix_t m = mix_plan(41, (size_t)(400 * MiB * scale));
    mix_alloc(&m, 1);
    mark_burst_end();
    mix_free(&m, 0);
}

static void s_burst_idle(double scale, double window_s)
{
    burst(scale);
    watch_idle(mark_freed(), window_s);
}

static void s_burst_active(double scale, double window_s)
{
    enum { STEP_NS = 100000, PAIRS = 100 };
    burst(scale);
    uint64_t t0 = mark_freed(), end = t0 + (uint64_t)(window_s * 1e9);
    uint64_t tick = t0 + SAMPLE_NS, next = t0;
    while (1) {
        uint64_t t = now_ns();
        if (t >= tick) { record(t); tick += SAMPLE_NS; }
        if (t >= end) break;
        if (t < next) { sleep_until(next < tick ? next : tick); continue; }
        for (int i = 0; i < PAIRS; i++) {
            void *p = xmalloc(64);
            fill(p, 64);
            check(p, 64);
            free(p);
        }
        window_ops += PAIRS;
        next += STEP_NS;
        if (next + 10 * STEP_NS < t) next = t;
    }
}

/* threads-idle: 8 threads burst, free, then wait (alive) until the window is over */
enum { IDLE_THREADS = 8 };
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int go_free, release_threads;
static atomic_int n_allocated, n_freed;

typedef struct { uint64_t seed; size_t bytes; } idle_arg_t;

static void *idle_thread(void *argp)
{
    idle_arg_t *a = argp;
    mix_t m = mix_plan(a->seed, a->bytes);
    mix_alloc(&m, 0);
    atomic_fetch_add(&n_allocated, 1);
    pthread_mutex_lock(&mu);
    while (!go_free) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    mix_free(&m, 0);
    atomic_fetch_add(&n_freed, 1);
    pthread_mutex_lock(&mu);
    while (!release_threads) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return NULL;
}

/* the main thread polls every millisecond (no allocator call), sampling on the 50 ms grid */
static void wait_count(atomic_int *c, int n)
{
    while (atomic_load(c) < n) {
        sleep_until(now_ns() + 1000000);
        maybe_sample();
    }
}

static void s_threads_idle(double scale, double window_s)
{
    idle_arg_t a[IDLE_THREADS];
    pthread_t t[IDLE_THREADS];
    for (int i = 0; i < IDLE_THREADS; i++) {
        a[i] = (idle_arg_t){ 100 + (uint64_t)i, (size_t)(40 * MiB * scale) };
        t[i] = spawn(idle_thread, &a[i]);
    }
    wait_count(&n_allocated, IDLE_THREADS);
    mark_burst_end();
    pthread_mutex_lock(&mu);
    go_free = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    wait_count(&n_freed, IDLE_THREADS);
    watch_idle(mark_freed(), window_s);
    pthread_mutex_lock(&mu);
    release_threads = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    for (int i = 0; i < IDLE_THREADS; i++) join(t[i]);
}

static const struct { const char *name; void (*fn)(double, double); } scenarios[] = {
    { "large-then-pairs", s_large_then_pairs },
    { "burst-idle", s_burst_idle },
    { "burst-active", s_burst_active },
    { "threads-idle", s_threads_idle },
};

int main(int argc, char **argv)
{
    t_start = now_ns();
    next_sample = t_start;
    prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);     /* 100 us pacing needs tighter sleeps than 50 us slack */
    double scale = 1.0, window_s = 4.0;
    int which = -1;
    if (argc >= 2)
        for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
            if (!strcmp(argv[1], scenarios[i].name)) which = (int)i;
    for (int i = 2; which >= 0 && i < argc; i += 2) {
        char *end;
        if (i + 1 >= argc) die("option %s needs a value", argv[i]);
        if (!strcmp(argv[i], "-s")) { scale = strtod(argv[i + 1], &end); if (*end || scale <= 0) die("bad scale"); }
        else if (!strcmp(argv[i], "-w")) { window_s = strtod(argv[i + 1], &end); if (*end || window_s <= 0 || window_s > 60) die("bad window"); }
        else die("unknown option %s", argv[i]);
    }
    if (which < 0) {
        fprintf(stderr, "usage: %s SCENARIO [-s SCALE] [-w SECONDS]\n  scenarios:", argv[0]);
        for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++) fprintf(stderr, " %s", scenarios[i].name);
        fputc('\n', stderr);
        return 2;
    }
    record(now_ns());
    next_sample = t_start + SAMPLE_NS;
    scenarios[which].fn(scale, window_s);
    printf("# memreturn %s\n# burst_end %.1f %llu\n# freed %.1f %llu\n# ops %llu\n", scenarios[which].name,
           (double)burst_t / 1e6, (unsigned long long)burst_rss, (double)freed_t / 1e6,
           (unsigned long long)freed_rss, (unsigned long long)window_ops);
    for (int i = 0; i < nsamples; i++)
        printf("%.1f %llu\n", (double)samples[i].t_ns / 1e6, (unsigned long long)samples[i].rss);
    return 0;
}
