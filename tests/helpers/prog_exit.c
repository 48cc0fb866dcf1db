/* tests/helpers/prog_exit.c — allocation while threads and the process wind down.
 *
 * Thread exit: 4 threads set 40 pthread keys (keys past the first 32 live in a
 * second-level array glibc callocs and frees after every destructor round, i.e.
 * after the allocator's own key destructor has flushed the thread cache). Every
 * destructor checks and frees its value and allocates small, medium and large
 * blocks; key 5's destructor re-sets its key twice, so glibc calls it in three
 * rounds, the later ones after the allocator's thread-exit destructor.
 * Process exit: three atexit handlers and a destructor function allocate and free,
 * and hand blocks to libnmlate.so (prog_late_lib.c), whose destructor frees them
 * after the allocator's exit dump.
 * `prog_exit pthread_exit`: main ends with pthread_exit() while two detached
 * threads still work; the last of them runs exit() and everything above with it.
 * Output (stdout) is fixed text, checked by the test; exits 0 unless a block lost
 * its contents or a count is wrong. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers/spawn.h"

void nm_late_keep(void *p, size_t n, unsigned seed);

enum { NKEYS = 40, NTHREADS = 4, RESET_KEY = 5, RESETS = 2 };

static pthread_key_t keys[NKEYS];
static atomic_int dtor_calls, reset_calls, bad;

typedef struct value {
    size_t n;              /* bytes of data */
    unsigned seed;
    int round;             /* RESET_KEY: how many times it was re-set */
    unsigned char data[];
} value_t;

static value_t *value_new(size_t n, unsigned seed, int round)
{
    value_t *v = malloc(sizeof *v + n);
    if (v == NULL) return NULL;
    v->n = n;
    v->seed = seed;
    v->round = round;
    for (size_t i = 0; i < n; i++) v->data[i] = (unsigned char)(i * 7u + seed);
    return v;
}

static bool value_ok(const value_t *v)
{
    for (size_t i = 0; i < v->n; i++) if (v->data[i] != (unsigned char)(i * 7u + v->seed)) return false;
    return true;
}

/* allocate across small, medium and large, check, free */
static void churn(unsigned seed)
{
    static const size_t sizes[] = { 24, 512, 8192, 32768, 50000, 300000, 2u << 20 };
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        value_t *v = value_new(sizes[i], seed + i, 0);
        if (v == NULL || !value_ok(v)) atomic_fetch_add(&bad, 1);
        free(v);
    }
}

static void key_dtor(void *arg)
{
    value_t *v = arg;
    atomic_fetch_add(&dtor_calls, 1);
    if (!value_ok(v)) atomic_fetch_add(&bad, 1);
    churn(v->seed);
    free(v);
}

static void reset_dtor(void *arg)
{
    value_t *v = arg;
    atomic_fetch_add(&reset_calls, 1);
    if (!value_ok(v)) atomic_fetch_add(&bad, 1);
    int round = v->round;
    free(v);
    churn((unsigned)round);
    if (round < RESETS) {
        /* glibc runs another destructor round because a value is set again */
        value_t *again = value_new(100 + (size_t)round * 5000, (unsigned)round + 11, round + 1);
        if (again == NULL || pthread_setspecific(keys[RESET_KEY], again) != 0) atomic_fetch_add(&bad, 1);
    }
}

static void *thread_main(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    for (int k = 0; k < NKEYS; k++) {
        size_t n = (size_t)((k * 997 + (int)t * 131) % 5000) + (k % 9 == 0 ? 70000 : 0);
        value_t *v = value_new(n, t * 100 + (unsigned)k, 0);
        if (v == NULL || pthread_setspecific(keys[k], v) != 0) atomic_fetch_add(&bad, 1);
    }
    churn(t);
    return NULL;
}

/* ---- process exit ------------------------------------------------------------------ */

static void keep_for_late(size_t n, unsigned seed)
{
    unsigned char *p = malloc(n);
    if (p == NULL) { atomic_fetch_add(&bad, 1); return; }
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 7u + seed);
    nm_late_keep(p, n, seed);
}

static void atexit_handler(int which)
{
    churn(1000u + (unsigned)which);
    keep_for_late(100u << which * 4, (unsigned)which);     /* 100 B, 1.6 KB, 25.6 KB */
    nm_say(1, "atexit %d: ok\n", which);
}
static void atexit_1(void) { atexit_handler(1); }
static void atexit_2(void) { atexit_handler(2); }
static void atexit_3(void) { atexit_handler(3); }

__attribute__((destructor)) static void program_destructor(void)
{
    churn(2000);
    keep_for_late(200000, 40);            /* medium: fallback arena */
    keep_for_late(3u << 20, 41);          /* large: own mapping */
    nm_say(1, "destructor: %s\n", atomic_load(&bad) ? "BAD" : "ok");
    if (atomic_load(&bad)) _exit(4);
}

/* a detached thread still working when main calls pthread_exit: the last one to
 * end runs exit(), so atexit handlers, destructors and the dump run on a thread
 * whose cache the allocator has already retired */
static void *straggler(void *arg)
{
    struct timespec ts = { 0, 20 * 1000 * 1000 * (long)(uintptr_t)arg };
    nanosleep(&ts, NULL);
    churn(3000u + (unsigned)(uintptr_t)arg);
    return NULL;
}

int main(int argc, char **argv)
{
    bool via_pthread_exit = argc > 1 && strcmp(argv[1], "pthread_exit") == 0;
    for (int k = 0; k < NKEYS; k++)
        if (pthread_key_create(&keys[k], k == RESET_KEY ? reset_dtor : key_dtor) != 0) {
            nm_say(2, "pthread_key_create %d failed\n", k);
            return 1;
        }
    pthread_t t[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++)
        if (pthread_create(&t[i], NULL, thread_main, (void *)(uintptr_t)i) != 0) return 1;
    for (unsigned i = 0; i < NTHREADS; i++) pthread_join(t[i], NULL);
    int calls = atomic_load(&dtor_calls), resets = atomic_load(&reset_calls);
    nm_say(1, "key destructors: %d calls, re-set key: %d calls, %s\n", calls, resets,
           atomic_load(&bad) ? "BAD" : "ok");
    if (calls != NTHREADS * (NKEYS - 1) || resets != NTHREADS * (RESETS + 1) || atomic_load(&bad)) return 1;
    atexit(atexit_1);
    atexit(atexit_2);
    atexit(atexit_3);
    if (via_pthread_exit) {
        for (uintptr_t i = 1; i <= 2; i++) {
            pthread_t s;
            if (pthread_create(&s, NULL, straggler, (void *)i) != 0) return 1;
            pthread_detach(s);
        }
        pthread_exit(NULL);
    }
    exit(0);
}
