/* tests/helpers/prog_last_round.c — a thread whose first allocation happens in the
 * last round of pthread key destructors.
 *
 * glibc calls key destructors in up to PTHREAD_DESTRUCTOR_ITERATIONS (4) rounds
 * while values keep being set, then drops whatever is left. Here a key's destructor
 * re-sets its key in rounds 1 to 3 without allocating, and allocates for the first
 * time in round 4: the allocator sets up the thread's cache then, and the pthread
 * key it sets for the thread's exit is never called (there is no round 5). glibc
 * reuses the dead thread's stack, and so its TLS, for the next thread it creates.
 * The allocator must cope: no hang, no crash, no thread counted alive forever.
 *   prog_last_round rounds [N]  N (default 20) rounds of 4 such threads; after each,
 *                               a stats dump (it walks the live threads) and
 *                               "round N: threads_live=L"; the next round's threads
 *                               get the same stacks, so the same TLS addresses
 *   prog_last_round many        20 such threads at once, joined, then a dump: glibc
 *                               keeps only 40 MiB of stacks, the rest is unmapped
 * Prints "last round: ok" and exits 0 when threads_live is back to 1 every time. */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/spawn.h"

#ifndef PTHREAD_DESTRUCTOR_ITERATIONS
#define PTHREAD_DESTRUCTOR_ITERATIONS 4
#endif

static pthread_key_t key;
static char marks[PTHREAD_DESTRUCTOR_ITERATIONS];
static atomic_int bad, last_rounds;
static char json[1 << 16];

static void dtor(void *arg)
{
    int round = (int)((char *)arg - marks);          /* 0-based destructor round */
    if (round + 1 < PTHREAD_DESTRUCTOR_ITERATIONS) {
        pthread_setspecific(key, &marks[round + 1]);  /* glibc comes back once more */
        return;
    }
    /* the last round: the thread's first allocations */
    atomic_fetch_add(&last_rounds, 1);
    for (size_t n = 16; n <= 64 * 1024; n *= 4) {
        unsigned char *p = malloc(n);
        if (p == NULL) { atomic_fetch_add(&bad, 1); continue; }
        memset(p, 0x5a, n);
        if (p[n - 1] != 0x5a) atomic_fetch_add(&bad, 1);
        free(p);
    }
}

static void *thread_main(void *arg)
{
    (void)arg;
    pthread_setspecific(key, &marks[0]);
    return NULL;
}

/* 20 such threads at once: joining them frees more stacks than glibc caches
 * (40 MiB of 8 MiB stacks), so the TLS of some of them is unmapped */
static int run_many(void)
{
    pthread_t t[20];
    for (int i = 0; i < 20; i++)
        if (pthread_create(&t[i], NULL, thread_main, NULL) != 0) return 1;
    for (int i = 0; i < 20; i++) pthread_join(t[i], NULL);
    uint64_t live = 0;
    if (nm_self_stats_json(json, sizeof json) && nm_json_u64(json, "summary.threads_live", &live)) {
        nm_say(1, "many: threads_live=%lu\n", (unsigned long)live);
        if (live != 1) return 1;
    }
    if (atomic_load(&last_rounds) != 20 || atomic_load(&bad)) return 1;
    nm_say(1, "last round: ok\n");
    return 0;
}

/* rounds of 4: each round's threads reuse the previous round's stacks and TLS */
static int run_rounds(int rounds)
{
    int wrong = 0;
    for (int r = 0; r < rounds; r++) {
        pthread_t t[4];
        for (int i = 0; i < 4; i++)
            if (pthread_create(&t[i], NULL, thread_main, NULL) != 0) return 1;
        for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
        uint64_t live = 0;
        if (nm_self_stats_json(json, sizeof json) && nm_json_u64(json, "summary.threads_live", &live)) {
            nm_say(1, "round %d: threads_live=%lu\n", r, (unsigned long)live);
            if (live != 1) wrong++;
        }
    }
    if (atomic_load(&last_rounds) != rounds * 4) {
        nm_say(2, "last round reached %d times, not %d\n", atomic_load(&last_rounds), rounds * 4);
        return 1;
    }
    if (atomic_load(&bad) || wrong) { nm_say(2, "last round: %d bad blocks, %d wrong thread counts\n", atomic_load(&bad), wrong); return 1; }
    nm_say(1, "last round: ok\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (pthread_key_create(&key, dtor) != 0) return 1;
    if (argc > 1 && strcmp(argv[1], "many") == 0) return run_many();
    if (argc > 1 && strcmp(argv[1], "rounds") == 0) return run_rounds(argc > 2 ? atoi(argv[2]) : 20);
    nm_say(2, "usage: prog_last_round many | rounds [N]\n");
    return 2;
}
