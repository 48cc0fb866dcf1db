/* tests/obs/prog_obs_guard.c — programs that once got stuck in the statistics
 * machinery, each under a hang guard of its own. Run preloaded by tests/obs/test_obs.c
 * with an explicit environment (NUMAMALLOC_STATS*, NUMAMALLOC_PROF*).
 *
 *   trivial            a few malloc/free pairs, then exit (the exit dump follows)
 *   raise N            raise(SIGUSR1) N times (NUMAMALLOC_STATS_SIGNAL=USR1 makes each
 *                      one a dump in the signal handler), then exit
 *   dlopen SECS print  for SECS seconds, dlopen()/dlclose() LIB... in turn (libz, libm
 *                      and the test's own library) while a second thread calls
 *                      numamalloc_stats_print (found with dlsym) in a loop
 *   dlopen SECS N      the same without the printing thread: the dumps come from
 *                      NUMAMALLOC_STATS_INTERVAL, and the loads go on after SECS until
 *                      NUMAMALLOC_STATS_FILE holds N interval dumps (at most SECS + 5 s)
 *   fork-live SECS     fork a child that allocates a little every 10 ms for SECS
 *                      seconds and exits normally; the parent waits for it and exits
 *                      normally too
 * Prints "pid <pid>" first (and "child <pid>" for fork-live), "<mode>: ok" at the end,
 * exits 0. The guard: alarm(HANG_S) whose handler prints "hang: <mode> ..." on stderr
 * and _exit(3)s; it stays armed through exit, so a stuck exit dump is caught too. */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers/spawn.h"

#ifndef NM_OBS_DL_LIB
#define NM_OBS_DL_LIB "libnmobsdl.so"
#endif

enum { HANG_S = 12 };
static const char *mode = "?";
static const char *volatile where = "starting";

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

static void little_work(unsigned seed)
{
    for (unsigned i = 0; i < 8; i++) {
        size_t n = 16 + (seed * 131u + i * 977u) % 4000;
        char *p = malloc(n);
        if (p == NULL) continue;
        memset(p, (int)i, n);
        free(p);
    }
}

/* ---- dlopen/dlclose while dumps are taken -------------------------------------------- */

static atomic_int stop;
static atomic_ulong prints;

static void *printer(void *arg)
{
    size_t (*print)(char *, size_t) = (size_t (*)(char *, size_t))arg;
    static char buf[1 << 18];
    while (!atomic_load(&stop)) {
        print(buf, sizeof buf);
        atomic_fetch_add(&prints, 1);
    }
    return NULL;
}

/* interval dumps in the file NUMAMALLOC_STATS_FILE names (no %p in it here; the
 * file holds a few dumps of some KiB each) */
static unsigned interval_dumps(void)
{
    static char buf[4 << 20];
    const char *path = getenv("NUMAMALLOC_STATS_FILE");
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
    if (fd < 0) return 0;
    size_t have = 0;
    for (ssize_t r; have < sizeof buf - 1 && (r = read(fd, buf + have, sizeof buf - 1 - have)) > 0;) have += (size_t)r;
    close(fd);
    buf[have] = '\0';
    unsigned n = 0;
    for (char *q = strstr(buf, "\"reason\":\"interval\""); q; q = strstr(q + 1, "\"reason\":\"interval\"")) n++;
    return n;
}

static int run_dlopen(double secs, int print, unsigned want_dumps)
{
    static const char *const libs[] = { "libz.so.1", "libm.so.6", NM_OBS_DL_LIB };
    pthread_t t;
    if (print) {
        void *fn = dlsym(RTLD_DEFAULT, "numamalloc_stats_print");
        if (fn == NULL) { nm_say(2, "numamalloc_stats_print not found: is the helper preloaded?\n"); return 1; }
        if (pthread_create(&t, NULL, printer, fn) != 0) return 1;
    }
    unsigned long loads = 0;
    double start = now_s();
    where = "in dlopen/dlclose";
    for (unsigned i = 0;; i++) {
        double t = now_s() - start;
        if (t >= secs && (print || t >= secs + 5 || (i % 16 == 0 && interval_dumps() >= want_dumps))) break;
        const char *name = libs[i % 3];
        void *h = dlopen(name, RTLD_NOW | RTLD_LOCAL);
        if (h == NULL) { if (i % 3 == 2) { nm_say(2, "dlopen %s: %s\n", name, dlerror()); return 1; } continue; }
        little_work(i);
        dlclose(h);
        loads++;
    }
    where = "joining the printing thread";
    atomic_store(&stop, 1);
    if (print) pthread_join(t, NULL);
    where = "exiting";
    nm_say(1, "loads=%lu prints=%lu\n", loads, (unsigned long)atomic_load(&prints));
    if (print && atomic_load(&prints) == 0) { nm_say(2, "the printing thread printed nothing\n"); return 1; }
    return 0;
}

/* ---- a forked child that lives a while ---------------------------------------------- */

static int run_fork_live(double secs)
{
    where = "forking";
    pid_t c = fork();
    if (c < 0) return 1;
    if (c == 0) {
        double end = now_s() + secs;
        for (unsigned i = 0; now_s() < end; i++) {
            little_work(i);
            struct timespec ts = { 0, 10 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
        exit(0);                     /* normally: the child's exit dump is written */
    }
    nm_say(1, "child %d\n", (int)c);
    where = "waiting for the child";
    int st;
    while (waitpid(c, &st, 0) < 0 && errno == EINTR) {}
    where = "exiting";
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
    nm_say(1, "pid %d\n", (int)getpid());
    if (argc < 2) return 2;
    mode = argv[1];
    signal(SIGALRM, on_alarm);
    alarm(HANG_S);
    int rc = 2;
    if (!strcmp(mode, "trivial")) {
        where = "working";
        little_work(1);
        where = "exiting";
        rc = 0;
    } else if (!strcmp(mode, "raise") && argc == 3) {
        int n = atoi(argv[2]);
        for (int i = 0; i < n; i++) {
            where = "in the SIGUSR1 handler";
            raise(SIGUSR1);
            little_work((unsigned)i);
        }
        where = "exiting";
        rc = 0;
    } else if (!strcmp(mode, "dlopen") && argc == 4) {
        int print = !strcmp(argv[3], "print");
        rc = run_dlopen(atof(argv[2]), print, print ? 0 : (unsigned)atoi(argv[3]));
    } else if (!strcmp(mode, "fork-live") && argc == 3) {
        rc = run_fork_live(atof(argv[2]));
    }
    if (rc == 0) nm_say(1, "%s: ok\n", mode);
    return rc;
}
