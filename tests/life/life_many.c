/* tests/life/life_many.c — many more threads than CPUs, all allocating at once.
 *
 *   life_many THREADS OPS
 *
 * The process is first pinned to (at most) 2 CPUs of those it may use, so the
 * run means the same on a bigger machine. THREADS threads start together (barrier)
 * and each does OPS operations: replace a random block of its working set of WSET
 * blocks (mixed sizes: small, medium, 2 per thousand large) with a new one,
 * checking the old one's pattern; one replacement in four goes through a shared
 * pool of POOL slots instead, so threads free each other's blocks while their
 * owners run (and after they have exited: the pool outlives them). At the end every
 * block left is checked and freed.
 * Prints
 *   threads=N ops=N cpus=N bad=N seconds=S hwm=B
 * (seconds: from the barrier to the last join, informational; hwm: the peak RSS,
 * VmHWM, in bytes, read at the end) and exits 0 unless a
 * block lost its pattern or an allocation failed. Hang guard: alarm(ALARM_S). */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>

#include "life/life.h"

enum { WSET = 24, POOL = 1024, ALARM_S = 300 };

static _Atomic(life_blk_t *) pool[POOL];
static atomic_ulong bad;
static pthread_barrier_t start;
static unsigned ops;

static void check_free(life_blk_t *b)
{
    if (!life_ok(b)) atomic_fetch_add(&bad, 1);
    free(b);
}

static void *thread_main(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    life_blk_t *set[WSET] = { 0 };
    pthread_barrier_wait(&start);
    for (uint64_t i = 0; i < ops; i++) {
        uint64_t tag = life_mix(id << 32 | i);
        life_blk_t *b = life_new(tag, 2);
        if (b == NULL) { atomic_fetch_add(&bad, 1); continue; }
        if ((tag >> 20) % 4 == 0) {
            life_blk_t *old = atomic_exchange(&pool[(tag >> 24) % POOL], b);
            if (old) check_free(old);
        } else {
            life_blk_t **slot = &set[(tag >> 24) % WSET];
            if (*slot) check_free(*slot);
            *slot = b;
        }
    }
    for (unsigned k = 0; k < WSET; k++) if (set[k]) check_free(set[k]);
    return NULL;
}

/* keep the first two CPUs of the allowed set; returns how many are left */
static int pin_two_cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    cpu_set_t two;
    CPU_ZERO(&two);
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &set)) { CPU_SET(c, &two); n++; }
    return sched_setaffinity(0, sizeof two, &two) == 0 ? n : CPU_COUNT(&set);
}

int main(int argc, char **argv)
{
    if (argc != 3) { nm_say(2, "usage: life_many THREADS OPS\n"); return 2; }
    unsigned n = (unsigned)strtoul(argv[1], NULL, 10);
    ops = (unsigned)strtoul(argv[2], NULL, 10);
    if (n == 0 || n > 4096) return 2;
    alarm(ALARM_S);
    int cpus = pin_two_cpus();
    pthread_t *t = calloc(n, sizeof *t);
    if (t == NULL || pthread_barrier_init(&start, NULL, n + 1) != 0) return 1;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 << 10);
    for (unsigned i = 0; i < n; i++) {
        int e = pthread_create(&t[i], &attr, thread_main, (void *)(uintptr_t)i);
        if (e) { nm_say(2, "pthread_create %u: %s\n", i, strerror(e)); return 1; }
    }
    pthread_attr_destroy(&attr);
    double t0 = life_now();
    pthread_barrier_wait(&start);
    for (unsigned i = 0; i < n; i++) pthread_join(t[i], NULL);
    double secs = life_now() - t0;
    for (unsigned s = 0; s < POOL; s++) {
        life_blk_t *b = atomic_exchange(&pool[s], NULL);
        if (b) check_free(b);
    }
    free(t);
    nm_say(1, "threads=%u ops=%u cpus=%d bad=%lu seconds=%.3f hwm=%lu\n", n, ops, cpus, (unsigned long)atomic_load(&bad),
           secs, (unsigned long)life_status_kb("VmHWM"));
    return atomic_load(&bad) ? 1 : 0;
}
