/* tests/life/life_signal.c — signal handlers that call malloc and free, at a high
 * rate, while other threads allocate heavily.
 *
 *   life_signal MODE SECONDS       MODE: idle or masked
 *
 * One receiver thread takes every signal (all other threads block them): SIGALRM
 * from a POSIX timer aimed at it (SIGEV_THREAD_ID, every TIMER_US microseconds)
 * and SIGUSR1 from a sender thread calling pthread_kill() in a loop. Both handlers
 * (each blocks the other signal: they never nest) allocate blocks of mixed sizes
 * with malloc, calloc and realloc, check them, free most, and swap one in four
 * into shared slots, freeing what was there: blocks of the WORKERS threads, which
 * allocate and swap into the same slots all the time. So handlers free blocks of
 * other threads and other threads free the handlers' blocks.
 *
 * What the receiver thread does between signals is the supported case, in which a
 * handler never interrupts that thread inside the allocator:
 *   idle    it never calls the allocator outside a handler (it computes); its very
 *           first allocation, which starts its thread cache, is a handler's
 *   masked  it allocates and frees too, but with both signals blocked around each
 *           allocator call (pthread_sigmask), so a signal that comes meanwhile is
 *           delivered when the call has returned
 * A handler interrupting its own thread inside malloc is not supported (see
 * numamalloc(7), SIGNALS) and not tested.
 *
 * Prints
 *   MODE: alrm=N usr1=N rx_ops=N worker_ops=N bad=N
 * (rx_ops: the receiver's own allocations in masked mode) and exits 0 unless a
 * block lost its pattern or an allocation failed (bad), or a set-up call failed.
 * A deadlock is caught by a watchdog thread (alarm() cannot serve: SIGALRM is the
 * test's own signal), which _exit()s with status 3 after ALARM_S seconds. */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/syscall.h>

#include "life/life.h"

enum { WORKERS = 4, NSLOTS = 64, TIMER_US = 50, ALARM_S = 120 };

static _Atomic(life_blk_t *) slots[NSLOTS];
static atomic_bool stop, rx_stop;
static atomic_ulong handled[2], bad, rx_ops, worker_ops;

static void check_free(life_blk_t *b)
{
    if (!life_ok(b)) atomic_fetch_add(&bad, 1);
    free(b);
}

/* ---- the handlers ---------------------------------------------------------------------- */

static void on_signal(int sig)
{
    int saved = errno;
    unsigned which = sig == SIGUSR1;
    uint64_t n = atomic_fetch_add_explicit(&handled[which], 1, memory_order_relaxed);
    uint64_t tag = life_mix(n << 1 | which);
    size_t size = life_size(tag, 2);
    life_blk_t *b;
    switch (n % 3) {
    case 0:  b = malloc(size); break;
    case 1:  b = calloc(1, size); break;
    default:                                   /* grow a small block to the size */
        b = malloc(sizeof(life_blk_t) + 8);
        if (b) {
            life_blk_t *c = realloc(b, size);
            if (c == NULL) free(b);
            b = c;
        }
        break;
    }
    if (b == NULL) { atomic_fetch_add(&bad, 1); errno = saved; return; }
    life_fill(b, size, tag);
    if (n % 4 == 0) {
        life_blk_t *old = atomic_exchange(&slots[tag % NSLOTS], b);
        if (old) check_free(old);
    } else {
        check_free(b);
    }
    errno = saved;
}

/* ---- the receiver ---------------------------------------------------------------------- */

static bool masked;
static atomic_int rx_tid;

static void *receiver(void *arg)
{
    (void)arg;
    sigset_t both, none;
    sigemptyset(&both);
    sigaddset(&both, SIGALRM);
    sigaddset(&both, SIGUSR1);
    sigemptyset(&none);
    atomic_store(&rx_tid, (int)syscall(SYS_gettid));
    pthread_sigmask(SIG_SETMASK, &none, NULL);
    volatile uint64_t x = 1;
    uint64_t i = 0;
    while (!atomic_load_explicit(&rx_stop, memory_order_relaxed)) {
        if (!masked) {
            for (int k = 0; k < 1000; k++) x = life_mix(x);   /* never the allocator */
            continue;
        }
        uint64_t tag = life_mix(i++ ^ 0x7777);
        pthread_sigmask(SIG_BLOCK, &both, NULL);
        life_blk_t *b = life_new(tag, 2);
        pthread_sigmask(SIG_SETMASK, &none, NULL);     /* a pending signal runs here */
        if (b == NULL) { atomic_fetch_add(&bad, 1); continue; }
        bool ok = life_ok(b);
        pthread_sigmask(SIG_BLOCK, &both, NULL);
        if (i % 4 == 0) {
            life_blk_t *old = atomic_exchange(&slots[tag % NSLOTS], b);
            if (old) { ok &= life_ok(old); free(old); }
        } else {
            free(b);
        }
        pthread_sigmask(SIG_SETMASK, &none, NULL);
        if (!ok) atomic_fetch_add(&bad, 1);
        atomic_fetch_add_explicit(&rx_ops, 1, memory_order_relaxed);
    }
    pthread_sigmask(SIG_BLOCK, &both, NULL);
    return NULL;
}

/* ---- the others -------------------------------------------------------------------------- */

static void *sender(void *arg)
{
    pthread_t rx = *(pthread_t *)arg;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        pthread_kill(rx, SIGUSR1);
        for (volatile int k = 0; k < 200; k++) {}
    }
    return NULL;
}

static void *worker(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg << 40, i = 0;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        life_blk_t *b[8];
        for (int k = 0; k < 8; k++) b[k] = life_new(life_mix(seed | i++), 2);
        for (int k = 0; k < 8; k++) {
            if (b[k] == NULL) { atomic_fetch_add(&bad, 1); continue; }
            if (k < 2) {
                life_blk_t *old = atomic_exchange(&slots[b[k]->tag % NSLOTS], b[k]);
                if (old) check_free(old);
            } else {
                check_free(b[k]);
            }
        }
        atomic_fetch_add_explicit(&worker_ops, 8, memory_order_relaxed);
    }
    return NULL;
}

static void *watchdog(void *arg)
{
    (void)arg;
    struct timespec ts = { ALARM_S, 0 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
    nm_say(2, "life_signal: still running after %d s: deadlock\n", ALARM_S);
    _exit(3);
}

int main(int argc, char **argv)
{
    if (argc != 3 || (strcmp(argv[1], "idle") != 0 && strcmp(argv[1], "masked") != 0)) {
        nm_say(2, "usage: life_signal idle|masked SECONDS\n");
        return 2;
    }
    masked = strcmp(argv[1], "masked") == 0;
    unsigned seconds = (unsigned)strtoul(argv[2], NULL, 10);

    /* every thread made from here on starts with both signals blocked */
    sigset_t both;
    sigemptyset(&both);
    sigaddset(&both, SIGALRM);
    sigaddset(&both, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &both, NULL);
    struct sigaction sa = { 0 };
    sa.sa_handler = on_signal;
    sa.sa_mask = both;                          /* handlers never nest */
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGALRM, &sa, NULL) != 0 || sigaction(SIGUSR1, &sa, NULL) != 0) return 1;

    pthread_t wd, rx, tx, w[WORKERS];
    if (pthread_create(&wd, NULL, watchdog, NULL) != 0) return 1;
    if (pthread_create(&rx, NULL, receiver, NULL) != 0) return 1;
    for (unsigned i = 0; i < WORKERS; i++)
        if (pthread_create(&w[i], NULL, worker, (void *)(uintptr_t)(i + 1)) != 0) return 1;
    if (pthread_create(&tx, NULL, sender, &rx) != 0) return 1;

    struct sigevent sev = { 0 };
    sev.sigev_notify = SIGEV_THREAD_ID;
    sev.sigev_signo = SIGALRM;
    while (atomic_load(&rx_tid) == 0) sched_yield();
    sev._sigev_un._tid = atomic_load(&rx_tid);
    timer_t timer;
    if (timer_create(CLOCK_MONOTONIC, &sev, &timer) != 0) { nm_say(2, "timer_create: %s\n", strerror(errno)); return 1; }
    struct itimerspec its = { { 0, TIMER_US * 1000 }, { 0, TIMER_US * 1000 } };
    if (timer_settime(timer, 0, &its, NULL) != 0) return 1;

    struct timespec ts = { seconds, 0 };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}

    timer_delete(timer);
    atomic_store(&stop, true);
    pthread_join(tx, NULL);
    for (unsigned i = 0; i < WORKERS; i++) pthread_join(w[i], NULL);
    atomic_store(&rx_stop, true);
    pthread_join(rx, NULL);
    for (unsigned s = 0; s < NSLOTS; s++) {
        life_blk_t *b = atomic_exchange(&slots[s], NULL);
        if (b) check_free(b);
    }
    nm_say(1, "%s: alrm=%lu usr1=%lu rx_ops=%lu worker_ops=%lu bad=%lu\n", argv[1],
           (unsigned long)atomic_load(&handled[0]), (unsigned long)atomic_load(&handled[1]),
           (unsigned long)atomic_load(&rx_ops), (unsigned long)atomic_load(&worker_ops),
           (unsigned long)atomic_load(&bad));
    return atomic_load(&bad) ? 1 : 0;
}
