/* tests/life/life_fork.c — a fork storm, posix_spawn and vfork+execve from a
 * process whose 8 threads allocate and free all the time.
 *
 *   life_fork FORKS SPAWNS
 *
 * WORKERS threads allocate and free, until the end: every other round a batch of
 * 100..400 small blocks of one class (walking through the classes), so their
 * caches trade magazines with the depots all the time; in between 8 blocks of mixed
 * sizes (half of them medium, the others small and 1% large), passing blocks to
 * each other through shared slots. Meanwhile:
 *  1. FORKS forks. Three in four are made by the main thread (which allocates
 *     between forks too); every fourth by one of the busy workers itself, in the
 *     middle of its loop, with its magazines loaded and a mimalloc heap of its own
 *     that the child deletes when that thread exits (with exit(), whose thread-
 *     local destructors run for the calling thread). Each child frees the blocks it
 *     inherited in the slots (their owners do not exist in the child), holds
 *     CHILD_BLOCKS small blocks of every class at once and checks that none was
 *     handed out twice, allocates and frees mixed sizes, runs a thread that does the
 *     same, and ends with exit() (so the allocator's destructor runs), every fifth
 *     with _exit().
 *  2. SPAWNS posix_spawn()s and SPAWNS vfork()+execve()s of life_exec_child (which
 *     boots the preload again and checks itself), from the main thread.
 * The parent waits for every child with a 20 s limit (then SIGKILL) and checks its
 * exit status. While it waits, the workers pause (outside the allocator, on a
 * condition variable): a fork is made while they run, but the child, which needs
 * nothing from them, gets the machine's 2 CPUs instead of a ninth of them (1,000
 * forks took 60 s without the pause, most of it the children waiting for a CPU).
 * A deadlock anywhere ends this process through alarm(ALARM_S).
 * Prints
 *   forks=N ok=N by_workers=N spawns=N ok=N vforks=N ok=N worker_bad=N
 * plus a line on stderr for each child that failed, and exits 0 only if all were
 * fine. Only write(2) for output: stdio locks held by other threads at a fork would
 * be inherited by the child. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "life/life.h"

enum { WORKERS = 8, NSLOTS = 64, CHILD_TIMEOUT_MS = 20000, ALARM_S = 200, CHILD_BLOCKS = 10000 };

extern char **environ;
static _Atomic(life_blk_t *) slots[NSLOTS];
static atomic_bool stop;
static atomic_ulong worker_bad;
/* fork requests to workers: the fork number + 1, taken by the worker; result back */
static atomic_uint fork_req[WORKERS];
static atomic_int fork_done[WORKERS];     /* 0 pending, 1 ok, -1 failed */
static char child_path[4096];
/* workers pause while a child runs */
static atomic_bool hold;
static pthread_mutex_t hold_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hold_cv = PTHREAD_COND_INITIALIZER;

static void set_hold(bool on)
{
    pthread_mutex_lock(&hold_mu);
    atomic_store(&hold, on);
    if (!on) pthread_cond_broadcast(&hold_cv);
    pthread_mutex_unlock(&hold_mu);
}

static void wait_while_held(void)
{
    if (!atomic_load_explicit(&hold, memory_order_relaxed)) return;
    pthread_mutex_lock(&hold_mu);
    while (atomic_load(&hold)) pthread_cond_wait(&hold_cv, &hold_mu);
    pthread_mutex_unlock(&hold_mu);
}

static void check_free(life_blk_t *b, atomic_ulong *bad)
{
    if (!life_ok(b)) atomic_fetch_add(bad, 1);
    free(b);
}

/* ---- the child of a fork ------------------------------------------------------------ */

/* Many small blocks of every class at once, each stamped with its index at both
 * ends: a block handed out twice (a magazine that got into a depot twice) shows as
 * a stamp overwritten by another index. */
static int many_small(void)
{
    enum { N = CHILD_BLOCKS };
    uint64_t **b = mmap(NULL, N * sizeof *b, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (b == MAP_FAILED) return 1;
    int bad = 0;
    for (unsigned k = 0; k < N; k++) {
        size_t words = 2 + (k % 48) * 6;              /* 16 .. 2272 bytes */
        if ((b[k] = malloc(words * 8)) == NULL) { bad++; continue; }
        b[k][0] = k;
        b[k][words - 1] = ~(uint64_t)k;
    }
    for (unsigned k = 0; k < N; k++) {
        if (b[k] == NULL) continue;
        size_t words = 2 + (k % 48) * 6;
        if (b[k][0] != k || b[k][words - 1] != ~(uint64_t)k) bad++;
    }
    for (unsigned k = 0; k < N; k++) free(b[k]);
    munmap(b, N * sizeof *b);
    return bad;
}

static int child_work(uint64_t seed)
{
    atomic_ulong bad = 0;
    for (int s = 0; s < NSLOTS; s++) {
        life_blk_t *b = atomic_exchange(&slots[s], NULL);
        if (b) check_free(b, &bad);
    }
    for (uint64_t i = 0; i < 100; i++) {
        life_blk_t *b = life_new(life_mix(seed + i), 10);
        if (b == NULL) { bad++; continue; }
        check_free(b, &bad);
    }
    return (int)bad;
}

static void *child_thread(void *arg) { return (void *)(uintptr_t)child_work((uint64_t)(uintptr_t)arg); }

static _Noreturn void child_main(unsigned n)
{
    alarm(20);                               /* not inherited: our own guard */
    int bad = child_work((uint64_t)n << 32) + many_small();
    pthread_t t;
    void *res = NULL;
    if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)((uint64_t)n << 32 | 1)) != 0) _exit(12);
    pthread_join(t, &res);
    bad += (int)(uintptr_t)res;
    if (bad) _exit(11);
    if (n % 5 == 4) _exit(0);
    exit(0);
}

/* wait for pid up to CHILD_TIMEOUT_MS (poll on a pidfd; where there is none, check
 * every millisecond); NULL if it exited 0, else what happened */
static const char *wait_child(pid_t pid, char *buf, size_t len)
{
    int status = 0;
    int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
    double end = life_now() + CHILD_TIMEOUT_MS / 1000.0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) { snprintf(buf, len, "waitpid: %s", strerror(errno)); return buf; }
        double left = end - life_now();
        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            if (pfd >= 0) close(pfd);
            return "hung (killed after 20 s)";
        }
        if (pfd >= 0) {
            struct pollfd p = { .fd = pfd, .events = POLLIN };
            poll(&p, 1, (int)(left * 1000) + 1);
        } else {
            struct timespec ts = { 0, 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
    }
    if (pfd >= 0) close(pfd);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return NULL;
    if (WIFEXITED(status)) snprintf(buf, len, "exit %d", WEXITSTATUS(status));
    else snprintf(buf, len, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    return buf;
}

static bool fork_one(unsigned n)
{
    pid_t pid = fork();
    if (pid < 0) { nm_say(2, "fork %u: %s\n", n, strerror(errno)); return false; }
    if (pid == 0) child_main(n);
    char buf[128];
    set_hold(true);
    const char *why = wait_child(pid, buf, sizeof buf);
    set_hold(false);
    if (why) nm_say(2, "fork %u (pid %d): %s\n", n, (int)pid, why);
    return why == NULL;
}

/* ---- the busy workers ------------------------------------------------------------------ */

static void *worker(void *arg)
{
    unsigned me = (unsigned)(uintptr_t)arg;
    uint64_t seed = (uint64_t)(me + 1) << 40, i = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        wait_while_held();
        uint64_t r = life_mix(seed | i++);
        if (i % 2) {
            /* a batch of 100..400 blocks of one small class, freed at once: the
             * thread cache trades magazines with the depot all the time */
            void *v[400];
            size_t size = 16 + (i / 2 * 7 + me * 13) % 40 * 48;
            unsigned n = 100 + (unsigned)(r % 301);
            for (unsigned k = 0; k < n; k++) if ((v[k] = malloc(size)) != NULL) memset(v[k], 0x5a, 16);
            for (unsigned k = 0; k < n; k++) {
                if (v[k] == NULL) { atomic_fetch_add(&worker_bad, 1); continue; }
                if (k % 8 == 0) {
                    life_blk_t *old = atomic_exchange(&slots[(r >> 12 ^ k) % NSLOTS], NULL);
                    if (old) check_free(old, &worker_bad);
                }
                free(v[k]);
            }
            continue;
        }
        life_blk_t *local[8];
        for (int k = 0; k < 8; k++) {
            /* half medium: mimalloc's cross-thread frees are what a fork must not cut in two */
            uint64_t t = life_mix(r + (uint64_t)k);
            size_t n = t & 1 ? (size_t)(t >> 10) % 400000 + 40000 : life_size(t, 10);
            if ((local[k] = malloc(n)) != NULL) life_fill(local[k], n, t);
        }
        unsigned req = atomic_exchange(&fork_req[me], 0);
        if (req) atomic_store(&fork_done[me], fork_one(req - 1) ? 1 : -1);   /* with 8 blocks out */
        for (int k = 0; k < 8; k++) {
            if (local[k] == NULL) { atomic_fetch_add(&worker_bad, 1); continue; }
            if (k < 2) {
                life_blk_t *old = atomic_exchange(&slots[(r >> 16 ^ (uint64_t)k) % NSLOTS], local[k]);
                if (old) check_free(old, &worker_bad);
            } else {
                check_free(local[k], &worker_bad);
            }
        }
    }
    return NULL;
}

/* ---- posix_spawn and vfork ------------------------------------------------------------ */

static bool spawn_one(unsigned n, bool use_vfork)
{
    char arg[32];
    snprintf(arg, sizeof arg, "%u", n);
    char *const argv[] = { child_path, arg, NULL };
    pid_t pid;
    if (use_vfork) {
        pid = vfork();
        if (pid == 0) {
            execve(child_path, argv, environ);
            _exit(127);
        }
        if (pid < 0) { nm_say(2, "vfork %u: %s\n", n, strerror(errno)); return false; }
    } else {
        int e = posix_spawn(&pid, child_path, NULL, NULL, argv, environ);
        if (e) { nm_say(2, "posix_spawn %u: %s\n", n, strerror(e)); return false; }
    }
    char buf[128];
    set_hold(true);
    const char *why = wait_child(pid, buf, sizeof buf);
    set_hold(false);
    if (why) nm_say(2, "%s %u (pid %d): %s\n", use_vfork ? "vfork" : "posix_spawn", n, (int)pid, why);
    return why == NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) { nm_say(2, "usage: life_fork FORKS SPAWNS\n"); return 2; }
    unsigned forks = (unsigned)strtoul(argv[1], NULL, 10), spawns = (unsigned)strtoul(argv[2], NULL, 10);
    alarm(ALARM_S);
    ssize_t n = readlink("/proc/self/exe", child_path, sizeof child_path - 32);
    if (n <= 0) return 1;
    child_path[n] = '\0';
    char *slash = strrchr(child_path, '/');
    strcpy(slash ? slash + 1 : child_path, "life_exec_child");

    pthread_t w[WORKERS];
    for (unsigned i = 0; i < WORKERS; i++)
        if (pthread_create(&w[i], NULL, worker, (void *)(uintptr_t)i) != 0) return 1;
    unsigned fork_ok = 0, by_workers = 0, spawn_ok = 0, vfork_ok = 0;
    for (unsigned k = 0; k < forks; k++) {
        /* the main thread allocates too, and lets the workers run a little */
        life_blk_t *mine = life_new(life_mix(k ^ 0xabcdef), 10);
        struct timespec ts = { 0, (long)(life_mix(k) % 1000) * 1000 };
        nanosleep(&ts, NULL);
        bool ok;
        if (k % 4 == 3) {
            unsigned me = (k / 4) % WORKERS;
            atomic_store(&fork_done[me], 0);
            atomic_store(&fork_req[me], k + 1);
            int d;
            while ((d = atomic_load(&fork_done[me])) == 0) { struct timespec t1 = { 0, 100000 }; nanosleep(&t1, NULL); }
            ok = d > 0;
            by_workers++;
        } else {
            ok = fork_one(k);
        }
        fork_ok += ok;
        if (mine == NULL || !life_ok(mine)) atomic_fetch_add(&worker_bad, 1);
        free(mine);
    }
    for (unsigned k = 0; k < spawns; k++) {
        spawn_ok += spawn_one(k, false);
        vfork_ok += spawn_one(k, true);
    }
    atomic_store(&stop, true);
    for (unsigned i = 0; i < WORKERS; i++) pthread_join(w[i], NULL);
    for (int s = 0; s < NSLOTS; s++) {
        life_blk_t *b = atomic_exchange(&slots[s], NULL);
        if (b) check_free(b, &worker_bad);
    }
    unsigned long wb = atomic_load(&worker_bad);
    nm_say(1, "forks=%u ok=%u by_workers=%u spawns=%u ok=%u vforks=%u ok=%u worker_bad=%lu\n", forks, fork_ok,
           by_workers, spawns, spawn_ok, spawns, vfork_ok, wb);
    return fork_ok == forks && spawn_ok == spawns && vfork_ok == spawns && wb == 0 ? 0 : 1;
}
