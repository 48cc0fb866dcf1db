/* tests/helpers/prog_fork.c — fork while other threads allocate.
 *
 *   prog_fork busy [FORKS]   3 threads allocate and free (mixed sizes, blocks passed
 *                            between them through shared slots) while the main thread
 *                            forks FORKS times (default 300). Every child checks and
 *                            frees the blocks it inherited in the slots, allocates and
 *                            frees across the size ranges, starts a thread that does
 *                            the same, and exits 0 through exit() (so the allocator's
 *                            destructor runs in it); every tenth child then execs
 *                            /bin/true instead (the preload boots again there).
 *                            Every fourth fork is made from a short-lived thread, so
 *                            the child's only thread is not the main thread. The
 *                            parent waits for each child with a timeout and reports
 *                            each crash, hang (killed after 20 s) or non-zero exit.
 *                            Prints "forks=N ok=N exec=M" and exits 0 only if all
 *                            children were fine.
 *   prog_fork dump [N]       while 2 threads allocate, forks N (default 4) children
 *                            that allocate and exit normally, one after another
 *                            (each child has one thread); prints "child=PID" for
 *                            each, then exits itself. Run with NUMAMALLOC_STATS=json
 *                            and NUMAMALLOC_STATS_FILE=DIR/d.%p.json, every process
 *                            writes its own dump (the test reads them).
 * Only write(2) for output: stdio locks held by other threads at the fork would be
 * inherited by the child. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers/spawn.h"

enum { NSLOTS = 64, NWORKERS = 3, CHILD_TIMEOUT_MS = 20000 };

typedef struct block {
    size_t n;             /* total bytes, header included */
    uint64_t tag;
    unsigned char data[];
} block_t;

static _Atomic(block_t *) slots[NSLOTS];
static atomic_bool stop;
static atomic_ulong worker_bad;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static size_t pick_size(uint64_t r)
{
    unsigned k = (unsigned)(r % 100);
    if (k < 85) return (size_t)(r >> 8) % 4096 + sizeof(block_t);
    if (k < 97) return (size_t)(r >> 8) % 30000 + 4096;
    if (k < 99) return (size_t)(r >> 8) % 200000 + 40000;
    return (size_t)(r >> 8) % (1u << 20) + (1u << 20);
}

/* the last 128 bytes of the body, never overlapping the first 128 */
static size_t tail_start(size_t body) { return body > 256 ? body - 128 : 128; }

static block_t *block_new(uint64_t tag)
{
    size_t n = pick_size(tag);
    block_t *b = malloc(n);
    if (b == NULL) return NULL;
    b->n = n;
    b->tag = tag;
    size_t body = n - sizeof *b;
    /* head and tail of the body: enough to see a block handed out twice */
    for (size_t i = 0; i < body && i < 128; i++) b->data[i] = (unsigned char)(tag + i);
    for (size_t i = tail_start(body); i < body; i++) b->data[i] = (unsigned char)(tag ^ i);
    return b;
}

static bool block_ok(const block_t *b)
{
    size_t body = b->n - sizeof *b;
    for (size_t i = 0; i < body && i < 128; i++) if (b->data[i] != (unsigned char)(b->tag + i)) return false;
    for (size_t i = tail_start(body); i < body; i++) if (b->data[i] != (unsigned char)(b->tag ^ i)) return false;
    return true;
}

static void *worker(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg << 40, i = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t r = mix(seed | i++);
        block_t *local[8];
        for (int k = 0; k < 8; k++) local[k] = block_new(mix(r + (uint64_t)k));
        for (int k = 0; k < 8; k++) {
            if (local[k] == NULL) { atomic_fetch_add(&worker_bad, 1); continue; }
            if (k < 2) {
                /* publish; whatever was there (another thread's block, maybe) is ours to free */
                block_t *old = atomic_exchange(&slots[(r >> 16 ^ (uint64_t)k) % NSLOTS], local[k]);
                if (old) { if (!block_ok(old)) atomic_fetch_add(&worker_bad, 1); free(old); }
            } else {
                if (!block_ok(local[k])) atomic_fetch_add(&worker_bad, 1);
                free(local[k]);
            }
        }
    }
    return NULL;
}

/* ---- the child ------------------------------------------------------------------- */

static int child_work(uint64_t seed)
{
    int bad = 0;
    /* the inherited blocks: allocated by threads that do not exist here */
    for (int s = 0; s < NSLOTS; s++) {
        block_t *b = atomic_exchange(&slots[s], NULL);
        if (b) { if (!block_ok(b)) bad++; free(b); }
    }
    for (uint64_t i = 0; i < 200; i++) {
        block_t *b = block_new(mix(seed + i));
        if (b == NULL || !block_ok(b)) bad++;
        free(b);
    }
    return bad;
}

static void *child_thread(void *arg)
{
    return (void *)(uintptr_t)child_work((uint64_t)(uintptr_t)arg);
}

static void child_main(unsigned n)
{
    int bad = child_work((uint64_t)n << 32);
    pthread_t t;
    void *res = NULL;
    if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)((uint64_t)n << 32 | 1)) != 0) _exit(12);
    pthread_join(t, &res);
    bad += (int)(uintptr_t)res;
    if (bad) _exit(11);
    if (n % 10 == 9) {
        char *const argv[] = { (char *)"/bin/true", NULL };
        extern char **environ;
        execve("/bin/true", argv, environ);
        _exit(13);
    }
    exit(0);
}

/* wait for pid up to CHILD_TIMEOUT_MS; returns a description of a failure, or NULL */
static const char *wait_child(pid_t pid, char *buf, size_t len)
{
    int status = 0;
    for (int ms = 0;; ms++) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) { nm_say(2, "waitpid: %s\n", strerror(errno)); return "lost"; }
        if (ms >= CHILD_TIMEOUT_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            return "hung (killed after 20 s)";
        }
        struct timespec ts = { 0, 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return NULL;
    if (WIFEXITED(status)) snprintf(buf, len, "exit %d", WEXITSTATUS(status));
    else snprintf(buf, len, "signal %d (%s)", WTERMSIG(status), strsignal(WTERMSIG(status)));
    return buf;
}

typedef struct fork_job {
    unsigned n;
    pid_t pid;
    const char *why;
    char buf[128];
} fork_job_t;

static void fork_one(fork_job_t *j)
{
    j->pid = fork();
    if (j->pid < 0) { snprintf(j->buf, sizeof j->buf, "fork: %s", strerror(errno)); j->why = j->buf; return; }
    if (j->pid == 0) child_main(j->n);
    j->why = wait_child(j->pid, j->buf, sizeof j->buf);
}

static void *fork_from_thread(void *arg)
{
    fork_one(arg);
    return NULL;
}

static int run_busy(unsigned forks)
{
    pthread_t w[NWORKERS];
    for (unsigned i = 0; i < NWORKERS; i++)
        if (pthread_create(&w[i], NULL, worker, (void *)(uintptr_t)(i + 1)) != 0) return 1;
    unsigned ok = 0, execs = 0;
    for (unsigned n = 0; n < forks; n++) {
        /* let the workers run a little between forks, so forks land at random points */
        struct timespec ts = { 0, (long)(mix(n) % 2000) * 1000 };
        nanosleep(&ts, NULL);
        fork_job_t j = { .n = n };
        if (n % 4 == 3) {
            /* fork from a thread of its own: in the child, the only thread is not main */
            pthread_t t;
            if (pthread_create(&t, NULL, fork_from_thread, &j) != 0) { nm_say(2, "pthread_create failed\n"); break; }
            pthread_join(t, NULL);
        } else {
            fork_one(&j);
        }
        if (j.why) nm_say(2, "child %u (pid %d): %s\n", n, (int)j.pid, j.why);
        else { ok++; if (n % 10 == 9) execs++; }
    }
    atomic_store(&stop, true);
    for (unsigned i = 0; i < NWORKERS; i++) pthread_join(w[i], NULL);
    for (int s = 0; s < NSLOTS; s++) {
        block_t *b = atomic_exchange(&slots[s], NULL);
        if (b) { if (!block_ok(b)) atomic_fetch_add(&worker_bad, 1); free(b); }
    }
    nm_say(1, "forks=%u ok=%u exec=%u worker_bad=%lu\n", forks, ok, execs, (unsigned long)atomic_load(&worker_bad));
    return ok == forks && atomic_load(&worker_bad) == 0 ? 0 : 1;
}

static int run_dump(unsigned n)
{
    /* two threads allocate while we fork: each child still has exactly one thread */
    pthread_t w[2];
    for (unsigned i = 0; i < 2; i++)
        if (pthread_create(&w[i], NULL, worker, (void *)(uintptr_t)(i + 10)) != 0) return 1;
    int failed = 0;
    for (unsigned i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid < 0) return 1;
        if (pid == 0) {
            int bad = child_work((uint64_t)i << 32 | 7);
            exit(bad ? 11 : 0);                 /* normal exit: destructors, so the dump, run */
        }
        char buf[128];
        const char *why = wait_child(pid, buf, sizeof buf);
        if (why) { nm_say(2, "child %u (pid %d): %s\n", i, (int)pid, why); failed++; }
        nm_say(1, "child=%d\n", (int)pid);
    }
    atomic_store(&stop, true);
    for (unsigned i = 0; i < 2; i++) pthread_join(w[i], NULL);
    for (int s = 0; s < NSLOTS; s++) {
        block_t *b = atomic_exchange(&slots[s], NULL);
        if (b) { if (!block_ok(b)) failed++; free(b); }
    }
    if (atomic_load(&worker_bad)) failed++;
    nm_say(1, "parent=%d\n", (int)getpid());
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "busy") == 0)
        return run_busy(argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 300);
    if (argc >= 2 && strcmp(argv[1], "dump") == 0)
        return run_dump(argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 4);
    nm_say(2, "usage: prog_fork busy [FORKS] | dump [N]\n");
    return 2;
}
