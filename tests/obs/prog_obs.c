/* tests/obs/prog_obs.c — the helper program the observability tests run under the
 * preload (and, linked straight to the library, as the set-uid AT_SECURE helper).
 *
 * Each mode does a known amount of allocation so that a test can compare the stats
 * dump with the truth, or keeps threads busy allocating while a test signals it:
 *   alloc N SIZE     allocate N blocks of SIZE bytes and keep them until exit
 *                    (N = 0 is the baseline run: same code, same libc calls)
 *   work             deterministic mixed work; prints a checksum (output must not
 *                    change with bad NUMAMALLOC_* values)
 *   busy T SECS      T threads malloc/free mixed sizes for SECS seconds
 *   busy-stdin T     T threads allocate until stdin reaches EOF (the test holds it)
 *   fork K           K children allocate and exit(0) normally; prints their pids
 *   free-all         prints "rss_start BYTES" (before any allocation of its own), then
 *                    allocates ~100 MiB of small, medium and large blocks, writes every
 *                    usable byte, frees them all and exits (the test reads the exit dump)
 * Every mode prints "pid <pid> at_secure <0|1>" first, so that a test can find
 * %p-named files and tell whether the kernel ran it in secure-execution mode.
 * Output uses write(2) on a stack buffer, not stdio, so the program's own
 * allocations are the same in every run of a mode. */
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if ((size_t)n >= sizeof line) n = sizeof line - 1;
    for (int off = 0; off < n;) {
        ssize_t w = write(1, line + off, (size_t)(n - off));
        if (w <= 0) return;
        off += (int)w;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* blocks kept alive until exit: a volatile global so nothing is optimised away */
static void *volatile *kept;

static int mode_alloc(long n, size_t size)
{
    /* the array itself is allocated in both the baseline and the counted run */
    kept = malloc(sizeof(void *) * (size_t)(n > 0 ? n : 1));
    if (kept == NULL) return 1;
    for (long i = 0; i < n; i++) {
        char *p = malloc(size);
        if (p == NULL) return 1;
        memset(p, (int)(i & 0x7f), size < 64 ? size : 64);   /* touch it */
        kept[i] = p;
    }
    say("allocated %ld x %zu\n", n, size);
    return 0;
}

static uint64_t rss_now(void)
{
    char buf[128] = { 0 };
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, rss = 0;
    if (f && fgets(buf, sizeof buf, f)) sscanf(buf, "%lu %lu", &size, &rss);
    if (f) fclose(f);
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static int mode_free_all(void)
{
    static char *blk[12000];
    uint64_t rss0 = rss_now();
    say("rss_start %llu\n", (unsigned long long)rss0);
    size_t n = 0;
    for (int i = 0; i < 10000; i++) blk[n++] = malloc(16 + (size_t)(i * 37) % 4000);
    for (int i = 0; i < 300; i++) blk[n++] = malloc(40000 + (size_t)(i * 7919) % 500000);
    for (int i = 0; i < 8; i++) blk[n++] = malloc(((size_t)3 << 20) + (size_t)i * 100000);
    for (size_t i = 0; i < n; i++) {
        if (blk[i] == NULL) return 1;
        memset(blk[i], 1, malloc_usable_size(blk[i]));
    }
    for (size_t i = 0; i < n; i++) free(blk[i]);
    say("freed %zu blocks\n", n);
    return 0;
}

static uint64_t work_checksum(void)
{
    /* a little of every size range; the checksum depends only on the data */
    uint64_t sum = 0;
    static const size_t sizes[] = { 24, 200, 3000, 40000, 200000, 3 << 20 };
    for (int round = 0; round < 20; round++) {
        for (unsigned k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
            size_t n = sizes[k] + (size_t)round;
            unsigned char *p = malloc(n);
            if (p == NULL) return 0;
            for (size_t i = 0; i < n; i += 97) p[i] = (unsigned char)(i + round);
            for (size_t i = 0; i < n; i += 97) sum = sum * 31 + p[i];
            p = realloc(p, n * 2);
            if (p == NULL) return 0;
            sum += p[0];
            free(p);
        }
    }
    return sum;
}

static volatile int stop_flag;

static void *busy_thread(void *arg)
{
    uint64_t x = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    void *slots[64] = { 0 };
    while (!__atomic_load_n(&stop_flag, __ATOMIC_RELAXED)) {
        for (int i = 0; i < 1000; i++) {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17;
            unsigned s = (unsigned)(x % 64);
            free(slots[s]);
            /* mostly small, some medium, a few large: every path takes locks */
            size_t n = (x >> 8) % 100 == 0 ? 64 << 10 : (x >> 8) % 1000 == 1 ? 2 << 20 : 16 + (x >> 20) % 2048;
            slots[s] = malloc(n);
            if (slots[s]) memset(slots[s], 1, 16);
        }
    }
    for (int i = 0; i < 64; i++) free(slots[i]);
    return NULL;
}

static int run_busy(int nthreads, double secs, int wait_stdin)
{
    pthread_t t[16];
    if (nthreads < 1 || nthreads > 16) return 2;
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&t[i], NULL, busy_thread, (void *)(uintptr_t)(i + 1)) != 0) return 1;
    say("started %d threads\n", nthreads);
    if (wait_stdin) {
        char c;
        while (read(0, &c, 1) > 0) {}
    } else {
        double end = now_s() + secs;
        while (now_s() < end) usleep(20000);
    }
    __atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
    say("done\n");
    return 0;
}

static int mode_fork(int k)
{
    for (int i = 0; i < k; i++) {
        pid_t c = fork();
        if (c < 0) return 1;
        if (c == 0) {
            /* the child allocates and exits normally: destructors run, so it dumps */
            void *p = malloc(1000 + (size_t)i);
            free(malloc(100000));
            say("child %d\n", (int)getpid());
            free(p);
            exit(0);
        }
    }
    int bad = 0, st;
    for (int i = 0; i < k; i++) {
        if (wait(&st) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) bad++;
    }
    return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
    say("pid %d at_secure %lu\n", (int)getpid(), getauxval(AT_SECURE));
    if (argc < 2) return 2;
    const char *m = argv[1];
    if (!strcmp(m, "alloc") && argc == 4) return mode_alloc(atol(argv[2]), (size_t)atol(argv[3]));
    if (!strcmp(m, "work")) { say("checksum %llu\n", (unsigned long long)work_checksum()); return 0; }
    if (!strcmp(m, "busy") && argc == 4) return run_busy(atoi(argv[2]), atof(argv[3]), 0);
    if (!strcmp(m, "busy-stdin") && argc == 3) return run_busy(atoi(argv[2]), 0, 1);
    if (!strcmp(m, "fork") && argc == 3) return mode_fork(atoi(argv[2]));
    if (!strcmp(m, "free-all")) return mode_free_all();
    return 2;
}
