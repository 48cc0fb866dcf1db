/* tests/mem/mem_return.c — does freed memory go back to the OS, whatever path the
 * program keeps taking (or when it takes none)? Run preloaded by tests/mem/test_mem.c
 * with an explicit environment (NUMAMALLOC_DECAY_MS, NUMAMALLOC_BACKGROUND).
 *
 *   decay-path    20 blocks of 3 MiB, every page written, freed; then for 3 s only
 *                 1 MiB malloc/free pairs (first and last page written): decay must
 *                 run on that path too
 *   kept-hits     thread A allocates and frees two 8 MiB blocks (every page written)
 *                 and waits on a condition variable, alive; then the main thread does
 *                 200 malloc(8 MiB)/free pairs: the large-mapping cache must serve them
 *   kept-trim     A keeps its two blocks and waits; the main thread calls
 *                 malloc_trim(0): A's kept blocks must go back too
 *   kept-fork     A keeps its two blocks and waits; the main thread forks: the child
 *                 must not account for (or hold) A's kept blocks
 *   kept-age      A keeps its two blocks and waits; the main thread allocates small
 *                 blocks for 1 s: A's kept blocks must age out after the decay time
 *   idle          ~100 MiB of small, 256 KiB and 4 MiB blocks (pages written), all
 *                 freed, then 1.5 s without any allocator call (nanosleep)
 *   idle-fork     a little work (so that whatever the allocator starts lazily is
 *                 running), then fork; the child does what idle does
 *   trivial       a few malloc/free pairs (for the option's warnings)
 * Prints "key=value" lines (byte counts; rss_* from /proc/self/statm, the rest from
 * numamalloc_stats_json) for the test to judge, and exits 0; exits 1 if an allocation
 * failed or no stats dump could be read. Hang guard: alarm(HANG_S), whose handler
 * prints "hang: ..." and exits 3. */
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers/spawn.h"

#define MIB ((size_t)1 << 20)
#define KIB ((size_t)1 << 10)
enum { HANG_S = 20 };

static const char *mode = "?";
static const char *volatile where = "starting";
static char json[1 << 18];

static void on_alarm(int sig)
{
    (void)sig;
    nm_say(2, "hang: %s: still %s after %d s\n", mode, where, HANG_S);
    _exit(3);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s)
{
    struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
    while (nanosleep(&ts, &ts) != 0) {}
}

static bool stat_u64(const char *path, uint64_t *v)
{
    return nm_self_stats_json(json, sizeof json) && nm_json_u64(json, path, v);
}

#define NEED_STAT(path, v)                                                                 \
    do {                                                                                   \
        if (!stat_u64(path, v)) { nm_say(2, "no %s in a stats dump: is the helper preloaded?\n", path); return 1; } \
    } while (0)

static void *must_malloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL) { nm_say(2, "malloc(%zu) failed\n", n); exit(1); }
    return p;
}

/* ---- decay on the 1 MiB path --------------------------------------------------------- */

static int run_decay_path(void)
{
    enum { N = 20 };
    static char *b[N];
    uint64_t start = nm_self_rss();
    for (int i = 0; i < N; i++) { b[i] = must_malloc(3 * MIB); memset(b[i], i + 1, 3 * MIB); }
    uint64_t full = nm_self_rss();
    for (int i = 0; i < N; i++) free(b[i]);
    where = "doing 1 MiB pairs";
    unsigned long pairs = 0;
    for (double end = now_s() + 3; now_s() < end; pairs++) {
        char *p = must_malloc(MIB);
        p[0] = 1;
        p[MIB - 4096] = 1;
        free(p);
    }
    nm_say(1, "rss_start=%lu\nrss_full=%lu\nrss_end=%lu\npairs=%lu\n", (unsigned long)start, (unsigned long)full,
           (unsigned long)nm_self_rss(), pairs);
    return 0;
}

/* ---- threads free 128 MiB of medium blocks and exit --------------------------------------- */

enum { EXIT_THREADS = 4, EXIT_BLOCKS = 128 };          /* 128 x 256 KiB = 32 MiB a thread */
static pthread_barrier_t exit_freed;

static void *exit_thread(void *arg)
{
    (void)arg;
    static __thread char *b[EXIT_BLOCKS];
    for (int i = 0; i < EXIT_BLOCKS; i++) { b[i] = must_malloc(256 << 10); memset(b[i], i + 1, 256 << 10); }
    pthread_barrier_wait(&exit_freed);                 /* all live: the main thread measures */
    pthread_barrier_wait(&exit_freed);
    for (int i = 0; i < EXIT_BLOCKS; i++) free(b[i]);
    return NULL;
}

static int run_exit_trim(void)
{
    pthread_t t[EXIT_THREADS];
    pthread_barrier_init(&exit_freed, NULL, EXIT_THREADS + 1);
    uint64_t start = nm_self_rss();
    for (int i = 0; i < EXIT_THREADS; i++)
        if (pthread_create(&t[i], NULL, exit_thread, NULL) != 0) { nm_say(2, "pthread_create failed\n"); return 1; }
    pthread_barrier_wait(&exit_freed);
    uint64_t full = nm_self_rss();
    pthread_barrier_wait(&exit_freed);
    for (int i = 0; i < EXIT_THREADS; i++) pthread_join(t[i], NULL);
    nm_say(1, "rss_start=%lu\nrss_full=%lu\nrss_end=%lu\n", (unsigned long)start, (unsigned long)full,
           (unsigned long)nm_self_rss());
    return 0;
}

/* ---- thread A keeps two 8 MiB blocks and idles ----------------------------------------- */

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int a_parked, a_release;
static pthread_t a_thread;

static void *thread_a(void *arg)
{
    (void)arg;
    char *x = must_malloc(8 * MIB), *y = must_malloc(8 * MIB);
    memset(x, 1, 8 * MIB);
    memset(y, 2, 8 * MIB);
    free(x);
    free(y);
    pthread_mutex_lock(&mu);
    a_parked = 1;
    pthread_cond_broadcast(&cv);
    while (!a_release) pthread_cond_wait(&cv, &mu);     /* idle, alive, no allocator call */
    pthread_mutex_unlock(&mu);
    return NULL;
}

static int start_a(void)
{
    if (pthread_create(&a_thread, NULL, thread_a, NULL) != 0) { nm_say(2, "pthread_create failed\n"); return 1; }
    where = "waiting for thread A to park";
    pthread_mutex_lock(&mu);
    while (!a_parked) pthread_cond_wait(&cv, &mu);
    pthread_mutex_unlock(&mu);
    return 0;
}

static void stop_a(void)
{
    where = "joining thread A";
    pthread_mutex_lock(&mu);
    a_release = 1;
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    pthread_join(a_thread, NULL);
}

static int run_kept(const char *what)
{
    if (start_a()) return 1;
    uint64_t tcb0 = 0;
    NEED_STAT("large.thread_cache_bytes", &tcb0);
    nm_say(1, "kept_thread_cache_bytes=%lu\n", (unsigned long)tcb0);
    if (!strcmp(what, "hits")) {
        uint64_t h0, m0, h1, m1;
        NEED_STAT("large.cache_hits", &h0);
        NEED_STAT("large.cache_misses", &m0);
        where = "in the 8 MiB pairs";
        for (int i = 0; i < 200; i++) {
            char *p = must_malloc(8 * MIB);
            p[0] = (char)i;
            p[8 * MIB - 1] = (char)i;
            free(p);
        }
        NEED_STAT("large.cache_hits", &h1);
        NEED_STAT("large.cache_misses", &m1);
        nm_say(1, "hits=%lu\nmisses=%lu\n", (unsigned long)(h1 - h0), (unsigned long)(m1 - m0));
    } else if (!strcmp(what, "trim")) {
        uint64_t before = nm_self_rss();
        where = "in malloc_trim";
        malloc_trim(0);
        uint64_t after = nm_self_rss(), tcb = 0;
        NEED_STAT("large.thread_cache_bytes", &tcb);
        nm_say(1, "rss_before=%lu\nrss_after=%lu\nthread_cache_bytes=%lu\n", (unsigned long)before,
               (unsigned long)after, (unsigned long)tcb);
    } else if (!strcmp(what, "fork")) {
        where = "forking";
        pid_t c = fork();
        if (c < 0) return 1;
        if (c == 0) {
            uint64_t tcb = 0;
            if (!stat_u64("large.thread_cache_bytes", &tcb)) { nm_say(2, "child: no stats dump\n"); _exit(1); }
            nm_say(1, "child_thread_cache_bytes=%lu\n", (unsigned long)tcb);
            /* and the child's own large blocks work */
            char *p = must_malloc(8 * MIB);
            memset(p, 3, 8 * MIB);
            free(p);
            exit(0);
        }
        where = "waiting for the child";
        int st = 0;
        waitpid(c, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { nm_say(2, "the child failed (status 0x%x)\n", st); return 1; }
    } else if (!strcmp(what, "age")) {
        where = "allocating small blocks";
        unsigned long ops = 0;
        for (double end = now_s() + 1; now_s() < end;) {
            for (int i = 0; i < 1000; i++, ops++) {
                char *p = must_malloc(16 + (size_t)(ops % 500));
                p[0] = 1;
                free(p);
            }
            struct timespec ts = { 0, 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
        uint64_t tcb = 0;
        NEED_STAT("large.thread_cache_bytes", &tcb);
        nm_say(1, "thread_cache_bytes=%lu\nops=%lu\n", (unsigned long)tcb, ops);
    }
    stop_a();
    return 0;
}

/* ---- a burst, then no allocator call at all ----------------------------------------- */

enum { SMALL_N = 10000, MED_N = 120, LARGE_N = 8 };
static char *small_b[SMALL_N], *med_b[MED_N], *large_b[LARGE_N];

/* ~40 MiB small (1..7 KiB), 30 MiB of 256 KiB, 32 MiB of 4 MiB; every page written */
static void burst(void)
{
    for (int i = 0; i < SMALL_N; i++) {
        size_t n = 1024 + (size_t)(i % 7) * 1024;
        small_b[i] = must_malloc(n);
        memset(small_b[i], i, n);
        if (i % 80 == 0 && i / 80 < MED_N) {
            med_b[i / 80] = must_malloc(256 * KIB);
            memset(med_b[i / 80], i, 256 * KIB);
        }
        if (i % 1250 == 0 && i / 1250 < LARGE_N) {
            large_b[i / 1250] = must_malloc(4 * MIB);
            memset(large_b[i / 1250], i, 4 * MIB);
        }
    }
}

static void free_burst(void)
{
    for (int i = 0; i < SMALL_N; i++) free(small_b[i]);
    for (int i = 0; i < MED_N; i++) free(med_b[i]);
    for (int i = 0; i < LARGE_N; i++) free(large_b[i]);
}

static int run_idle(const char *prefix)
{
    uint64_t start = nm_self_rss();
    burst();
    uint64_t full = nm_self_rss();
    free_burst();
    uint64_t freed = nm_self_rss();
    where = "idle (nanosleep)";
    sleep_s(1.5);                                   /* no allocator call from here on */
    uint64_t end = nm_self_rss();
    nm_say(1, "%srss_start=%lu\n%srss_full=%lu\n%srss_freed=%lu\n%srss_end=%lu\n", prefix, (unsigned long)start,
           prefix, (unsigned long)full, prefix, (unsigned long)freed, prefix, (unsigned long)end);
    return 0;
}

static int run_idle_fork(void)
{
    /* the parent allocates first: anything started lazily is running at the fork */
    for (int i = 0; i < 200; i++) free(must_malloc(100 + (size_t)i * 300));
    free(must_malloc(4 * MIB));
    sleep_s(0.3);
    where = "forking";
    pid_t c = fork();
    if (c < 0) return 1;
    if (c == 0) exit(run_idle("child_"));
    where = "waiting for the child";
    int st = 0;
    waitpid(c, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) { nm_say(2, "the child failed (status 0x%x)\n", st); return 1; }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc != 2) { nm_say(2, "usage: mem_return MODE\n"); return 2; }
    mode = argv[1];
    signal(SIGALRM, on_alarm);
    alarm(HANG_S);
    if (!strcmp(mode, "decay-path")) return run_decay_path();
    if (!strcmp(mode, "exit-trim")) return run_exit_trim();
    if (!strncmp(mode, "kept-", 5)) return run_kept(mode + 5);
    if (!strcmp(mode, "idle")) return run_idle("");
    if (!strcmp(mode, "idle-fork")) return run_idle_fork();
    if (!strcmp(mode, "trivial")) {
        for (int i = 0; i < 10; i++) free(must_malloc(16 + (size_t)i * 1000));
        nm_say(1, "trivial: ok\n");
        return 0;
    }
    nm_say(2, "unknown mode %s\n", mode);
    return 2;
}
