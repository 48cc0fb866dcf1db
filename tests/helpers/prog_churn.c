/* tests/helpers/prog_churn.c — many short-lived threads must not grow the heap.
 *
 * Runs THREADS threads (default 20,000) in batches of BATCH at a time; each thread
 * allocates a deterministic mix of small, medium and large blocks, frees most of
 * them itself and leaves KEEP to the main thread, which frees them after the join
 * (so blocks of dead threads' domains come back through another thread). Thread
 * caches, magazines and per-thread metadata of exited threads must be recycled:
 * after the first MEASURE threads the process is in its steady state, and running
 * ten times as many must not grow RSS, the allocator's metadata or its heap.
 *
 * Prints key=value lines (the test compares them):
 *   rss_a meta_a heap_a      after MEASURE threads (RSS from /proc/self/statm; the
 *                            other two from numamalloc_stats_json, found by dlsym)
 *   trimmed_rss_a            RSS right after that, once malloc_trim(0) returned every
 *                            cache (magazines, free slab pages, large mappings, the
 *                            fallback arena): what remains is live data or a leak
 *   rss_b meta_b heap_b trimmed_rss_b   the same after all THREADS threads
 *   threads_live threads_seen  from the same JSON at the end (the reader thread
 *                            below has been joined: 1 live thread)
 *   bad=N                    blocks whose contents changed (must be 0)
 *   dumps bad_dumps          stats dumps a reader thread took during the run, and
 *                            how many of them were not valid JSON (must be 0)
 * Usage: prog_churn [THREADS [MEASURE]] */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers/spawn.h"

enum { BATCH = 16, KEEP = 3, PER_THREAD = 60 };

typedef struct slot {
    unsigned id;
    unsigned char *kept[KEEP];
    size_t kept_n[KEEP];
} slot_t;

static atomic_ulong bad, dumps, bad_dumps;
static atomic_bool done_all;
static char json[1 << 16];

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static size_t pick_size(uint64_t r)
{
    unsigned k = (unsigned)(r % 100);
    if (k < 80) return (size_t)(r >> 8) % 2048 + 1;            /* small, frequent */
    if (k < 95) return (size_t)(r >> 8) % 30000 + 2049;        /* small, larger classes */
    if (k < 99) return (size_t)(r >> 8) % 400000 + 40000;      /* medium: fallback arena */
    return (size_t)(r >> 8) % (2u << 20) + (1u << 20);         /* large: own mapping */
}

static void stamp(unsigned char *p, size_t n, uint64_t tag)
{
    memset(p, (int)(tag & 0xff), n < 64 ? n : 64);
    if (n >= 128) memset(p + n - 64, (int)((tag >> 8) & 0xff), 64);
}

static bool stamped(const unsigned char *p, size_t n, uint64_t tag)
{
    size_t head = n < 64 ? n : 64;
    for (size_t i = 0; i < head; i++) if (p[i] != (unsigned char)(tag & 0xff)) return false;
    if (n >= 128) for (size_t i = n - 64; i < n; i++) if (p[i] != (unsigned char)((tag >> 8) & 0xff)) return false;
    return true;
}

static void *thread_main(void *arg)
{
    slot_t *s = arg;
    unsigned char *blk[PER_THREAD];
    size_t len[PER_THREAD];
    for (int i = 0; i < PER_THREAD; i++) {
        uint64_t r = mix(((uint64_t)s->id << 20) | (uint64_t)i);
        len[i] = pick_size(r);
        blk[i] = malloc(len[i]);
        if (blk[i] == NULL) { atomic_fetch_add(&bad, 1); len[i] = 0; continue; }
        stamp(blk[i], len[i], r);
    }
    for (int i = 0; i < PER_THREAD; i++) {
        if (blk[i] == NULL) continue;
        uint64_t r = mix(((uint64_t)s->id << 20) | (uint64_t)i);
        if (!stamped(blk[i], len[i], r)) atomic_fetch_add(&bad, 1);
        if (i < KEEP) { s->kept[i] = blk[i]; s->kept_n[i] = len[i]; }   /* the main thread frees these */
        else free(blk[i]);
    }
    return NULL;
}

static void reap_kept(slot_t *s)
{
    for (int i = 0; i < KEEP; i++) {
        if (s->kept[i] == NULL) continue;
        uint64_t r = mix(((uint64_t)s->id << 20) | (uint64_t)i);
        if (!stamped(s->kept[i], s->kept_n[i], r)) atomic_fetch_add(&bad, 1);
        free(s->kept[i]);
        s->kept[i] = NULL;
    }
}

/* Dumps walk the live threads' caches while threads start and exit: the dump must
 * never read a cache that is being torn down (a crash here), and must always be
 * one valid JSON object. Runs for the whole test, a dump every millisecond. */
static void *stats_reader(void *arg)
{
    static char buf[1 << 16];
    (void)arg;
    while (!atomic_load(&done_all)) {
        size_t n = nm_self_stats_json(buf, sizeof buf);
        if (n == 0) break;                              /* not preloaded */
        atomic_fetch_add(&dumps, 1);
        if (!nm_json_valid(buf, n)) atomic_fetch_add(&bad_dumps, 1);
        struct timespec ts = { 0, 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

static void measure(const char *suffix)
{
    uint64_t meta = 0, heap = 0;
    if (nm_self_stats_json(json, sizeof json)) {
        nm_json_u64(json, "metadata.meta_bytes", &meta);
        nm_json_u64(json, "summary.heap_bytes", &heap);
    }
    uint64_t rss = nm_self_rss();
    /* what is left once every cache is given back: a leak stays, a warm cache goes */
    malloc_trim(0);
    nm_say(1, "rss_%s=%lu\nmeta_%s=%lu\nheap_%s=%lu\ntrimmed_rss_%s=%lu\n", suffix, (unsigned long)rss,
           suffix, (unsigned long)meta, suffix, (unsigned long)heap, suffix, (unsigned long)nm_self_rss());
}

int main(int argc, char **argv)
{
    unsigned total = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 20000;
    unsigned at = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 10) : 2000;
    if (total < BATCH || at > total) { nm_say(2, "usage: prog_churn [THREADS [MEASURE]]\n"); return 2; }
    slot_t slots[BATCH];
    unsigned done = 0;
    pthread_t reader;
    if (pthread_create(&reader, NULL, stats_reader, NULL) != 0) return 1;
    while (done < total) {
        pthread_t t[BATCH];
        unsigned n = total - done < BATCH ? total - done : BATCH;
        for (unsigned i = 0; i < n; i++) {
            memset(&slots[i], 0, sizeof slots[i]);
            slots[i].id = done + i;
            int e = pthread_create(&t[i], NULL, thread_main, &slots[i]);
            if (e) { nm_say(2, "pthread_create failed after %u threads: %s\n", done + i, strerror(e)); return 1; }
        }
        for (unsigned i = 0; i < n; i++) pthread_join(t[i], NULL);
        for (unsigned i = 0; i < n; i++) reap_kept(&slots[i]);
        done += n;
        if (done == at) measure("a");
    }
    atomic_store(&done_all, true);
    pthread_join(reader, NULL);
    measure("b");
    uint64_t live = 0, seen = 0;
    if (nm_self_stats_json(json, sizeof json)) {
        nm_json_u64(json, "summary.threads_live", &live);
        nm_json_u64(json, "summary.threads_seen", &seen);
    }
    nm_say(1, "threads_live=%lu\nthreads_seen=%lu\nthreads_run=%u\nbad=%lu\ndumps=%lu\nbad_dumps=%lu\n",
           (unsigned long)live, (unsigned long)seen, done, (unsigned long)atomic_load(&bad),
           (unsigned long)atomic_load(&dumps), (unsigned long)atomic_load(&bad_dumps));
    return atomic_load(&bad) || atomic_load(&bad_dumps) ? 1 : 0;
}
