/* numamalloc benchmarks — helpers shared by every workload program in bench/.
 *
 * Each workload does a fixed amount of work (scaled by -s SCALE) and exits; the
 * runner (bench/nmrun.c) measures wall time, CPU time and peak RSS from outside,
 * so nothing here times anything except the ns-per-pair mode of bench_hot.c.
 * Everything random comes from a seeded xorshift generator: every allocator sees
 * exactly the same sequence of requests. Blocks are written after allocation
 * (real programs initialise what they allocate) and read back before free, and the
 * pointers escape through an empty asm, so the compiler can neither drop a
 * malloc/free pair nor fold the writes away (the files are also compiled with
 * -fno-builtin-malloc and friends). A workload that sees corrupted memory exits 3,
 * so a broken allocator shows up as a failed run, not as a fast one. */
#ifndef NM_BENCH_COMMON_H
#define NM_BENCH_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* ---- failure ------------------------------------------------------------------ */

#define die(...) do { fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); exit(2); } while (0)
#define corrupt(...) do { fprintf(stderr, "memory corrupted: " __VA_ARGS__); fputc('\n', stderr); exit(3); } while (0)

static inline void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) die("malloc(%zu) failed", n);
    return p;
}

/* the pointer is used: the compiler must keep the allocation and the stores */
static inline void escape(void *p) { __asm__ volatile("" : : "r"(p) : "memory"); }

/* ---- random numbers (xorshift64*, seeded per thread) ------------------------- */

typedef struct { uint64_t s; } rng_t;

static inline rng_t rng_seed(uint64_t seed)
{
    rng_t r = { seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull };
    if (r.s == 0) r.s = 1;
    return r;
}

static inline uint64_t rng_next(rng_t *r)
{
    uint64_t x = r->s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1Dull;
}

/* uniform in [lo, hi] */
static inline size_t rng_range(rng_t *r, size_t lo, size_t hi)
{
    return lo + (size_t)(rng_next(r) % (hi - lo + 1));
}

/* uniform in [0, 1) */
static inline double rng_unit(rng_t *r) { return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0); }

/* Pareto-distributed request size: P(size > x) = (min/x)^alpha, capped at max.
 * alpha 1.1 and min 16 give a median near 30 bytes, 2 % above 1 KiB and a tail to
 * the cap: the shape measured in allocation traces of servers and compilers. */
static inline size_t rng_pareto(rng_t *r, size_t min, size_t max, double alpha)
{
    double u = 1.0 - rng_unit(r);                    /* (0, 1] */
    double x = (double)min * __builtin_pow(u, -1.0 / alpha);
    return x >= (double)max ? max : (size_t)x;
}

/* ---- touching blocks -------------------------------------------------------------
 * fill: write a pattern derived from the address into the first word(s) and the
 * last byte; check: verify it before free. Cheap, but catches blocks handed out
 * twice or overlapping. */

static inline uint64_t tag_of(const void *p, size_t n) { return ((uintptr_t)p * 0x9E3779B97F4A7C15ull) ^ n; }

static inline void fill(void *p, size_t n)
{
    unsigned char *c = p;
    if (n > 8) {
        uint64_t t = tag_of(p, n);
        memcpy(c, &t, 8);
        c[n - 1] = (unsigned char)t;
    } else {
        c[0] = (unsigned char)n;
    }
    escape(p);
}

static inline void check(const void *p, size_t n)
{
    const unsigned char *c = p;
    if (n > 8) {
        uint64_t t = tag_of(p, n), v;
        memcpy(&v, c, 8);
        if (v != t || c[n - 1] != (unsigned char)t) corrupt("block %p of %zu bytes was overwritten", p, n);
    } else if (c[0] != (unsigned char)n) {
        corrupt("block %p of %zu bytes was overwritten", p, n);
    }
}

/* write one byte in every 4 KiB page: the memory becomes resident, as it does
 * when a program really uses a large block */
static inline void touch_pages(void *p, size_t n)
{
    volatile char *c = p;
    for (size_t i = 0; i < n; i += 4096) c[i] = (char)i;
    if (n) c[n - 1] = 1;
}

/* ---- command line ------------------------------------------------------------------
 * Every program: PROG WORKLOAD [-s SCALE] [-t THREADS]; SCALE multiplies the
 * default amount of work (1.0 takes 1-3 s on the reference machine). */

typedef struct {
    double scale;
    int threads;
    size_t size;
    const char *order;
} opts_t;

static inline opts_t parse_opts(int argc, char **argv, int first)
{
    opts_t o = { 1.0, 0, 0, NULL };
    for (int i = first; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc) die("option %s needs a value", a);
        const char *v = argv[++i];
        char *end;
        if (!strcmp(a, "-s")) { o.scale = strtod(v, &end); if (*end || o.scale <= 0) die("bad scale '%s'", v); }
        else if (!strcmp(a, "-t")) { o.threads = (int)strtol(v, &end, 10); if (*end || o.threads <= 0) die("bad thread count '%s'", v); }
        else if (!strcmp(a, "-b")) {                /* bytes, with an optional K or M suffix */
            o.size = strtoull(v, &end, 10);
            if (*end == 'K') { o.size *= KiB; end++; } else if (*end == 'M') { o.size *= MiB; end++; }
            if (*end || o.size == 0) die("bad size '%s'", v);
        }
        else if (!strcmp(a, "-o")) o.order = v;
        else die("unknown option %s", a);
    }
    return o;
}

/* scaled iteration count, at least 1 */
static inline uint64_t scaled(const opts_t *o, double n)
{
    double x = n * o->scale;
    return x < 1 ? 1 : (uint64_t)x;
}

/* ---- threads --------------------------------------------------------------------- */

static inline pthread_t spawn(void *(*fn)(void *), void *arg)
{
    pthread_t t;
    int e = pthread_create(&t, NULL, fn, arg);
    if (e) die("pthread_create: %s", strerror(e));
    return t;
}

static inline void join(pthread_t t)
{
    int e = pthread_join(t, NULL);
    if (e) die("pthread_join: %s", strerror(e));
}

/* resident bytes of this process, from /proc/self/statm parsed by hand (a stack
 * buffer: no allocator call at all); 0 if unreadable */
static inline uint64_t rss_bytes(void)
{
    char buf[256];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    const char *p = buf;
    while (*p && *p != ' ') p++;                   /* skip size */
    while (*p == ' ') p++;
    uint64_t pages = 0;
    while (*p >= '0' && *p <= '9') pages = pages * 10 + (uint64_t)(*p++ - '0');
    return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

static inline uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* a workload table: name, function, one line of help */
typedef struct {
    const char *name;
    int (*fn)(const opts_t *);
    const char *help;
} workload_t;

static inline int run_workload(const workload_t *w, size_t n, int argc, char **argv)
{
    if (argc >= 2) {
        for (size_t i = 0; i < n; i++) {
            if (!strcmp(argv[1], w[i].name)) {
                opts_t o = parse_opts(argc, argv, 2);
                return w[i].fn(&o);
            }
        }
    }
    fprintf(stderr, "usage: %s WORKLOAD [-s SCALE] [-t THREADS] [-b BYTES] [-o ORDER]\n", argv[0]);
    for (size_t i = 0; i < n; i++) fprintf(stderr, "  %-14s %s\n", w[i].name, w[i].help);
    return 2;
}

#endif
