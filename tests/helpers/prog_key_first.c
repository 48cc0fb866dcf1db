/* tests/helpers/prog_key_first.c — threads whose first allocation happens in a
 * pthread key destructor, and what they leave behind.
 *
 *   prog_key_first [THREADS]
 *
 * Each thread only sets a key (to a pointer that is not a malloc'ed block) and
 * returns; the key's destructor then mallocs, writes and frees blocks of a few
 * sizes: the allocator sets up the thread's cache while the thread is already
 * exiting. THREADS (default 100) such threads run 4 at a time and are joined.
 * Prints, from numamalloc_stats_json dumps taken before the threads and after the
 * joins,
 *   live_before=N live_after=N threads_live=N new_threads=N dtor_calls=N bad=N
 * where threads_live is the lowest value seen in the dumps taken over up to 2 s
 * after the joins (it may take the allocator a moment to retire dead threads) and
 * new_threads how much summary.threads_seen grew; exits 0 if the dumps could be
 * read and every block held its contents (the test judges the numbers). Hang guard: alarm(HANG_S). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers/spawn.h"

enum { HANG_S = 20, AT_ONCE = 4 };
static pthread_key_t key;
static atomic_int bad, dtor_calls;
static char json[1 << 16];
static int marker;

static void dtor(void *arg)
{
    (void)arg;
    atomic_fetch_add(&dtor_calls, 1);
    for (size_t n = 24; n <= 48 * 1024; n *= 8) {
        unsigned char *p = malloc(n);
        if (p == NULL) { atomic_fetch_add(&bad, 1); continue; }
        memset(p, 0x3c, n);
        if (p[0] != 0x3c || p[n - 1] != 0x3c) atomic_fetch_add(&bad, 1);
        free(p);
    }
}

static void *thread_main(void *arg)
{
    (void)arg;
    pthread_setspecific(key, &marker);
    return NULL;
}

static bool read_stats(uint64_t *live, uint64_t *tlive, uint64_t *seen)
{
    return nm_self_stats_json(json, sizeof json) && nm_json_u64(json, "summary.live", live) &&
           nm_json_u64(json, "summary.threads_live", tlive) && nm_json_u64(json, "summary.threads_seen", seen);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 100;
    alarm(HANG_S);
    if (pthread_key_create(&key, dtor) != 0) return 1;
    uint64_t live0, tl0, seen0;
    if (!read_stats(&live0, &tl0, &seen0)) { nm_say(2, "no stats dump: is the helper preloaded?\n"); return 1; }
    for (int done = 0; done < n;) {
        pthread_t t[AT_ONCE];
        int k = 0;
        for (; k < AT_ONCE && done + k < n; k++)
            if (pthread_create(&t[k], NULL, thread_main, NULL) != 0) { nm_say(2, "pthread_create failed\n"); return 1; }
        for (int i = 0; i < k; i++) pthread_join(t[i], NULL);
        done += k;
    }
    uint64_t live = 0, tlive = UINT64_MAX, seen = 0;
    struct timespec start, now;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (;;) {
        uint64_t l, t, s;
        if (!read_stats(&l, &t, &s)) { nm_say(2, "stats dump failed after the joins\n"); return 1; }
        live = l;
        seen = s;
        if (t < tlive) tlive = t;
        if (tlive <= 1) break;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 > 2000) break;
        struct timespec ts = { 0, 50 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    nm_say(1, "live_before=%lu live_after=%lu threads_live=%lu new_threads=%lu dtor_calls=%d bad=%d\n",
           (unsigned long)live0, (unsigned long)live, (unsigned long)tlive, (unsigned long)(seen - seen0),
           atomic_load(&dtor_calls), atomic_load(&bad));
    return atomic_load(&bad) ? 1 : 0;
}
