/* tests/life/life_churn.c — tens of thousands of short-lived threads whose blocks
 * cross threads both ways, in waves; RSS and the allocator's metadata must level off.
 *
 *   life_churn THREADS WAVE STEP
 *
 * Runs THREADS threads, WAVE at a time (created together, joined together). Each
 * thread allocates ROUNDS batches of BATCH blocks (life_size: small, medium, and
 * large at 2 per thousand); of each batch, XFER blocks are swapped into a shared pool
 * of POOL slots and whatever was in the slot is checked and freed by this thread.
 * So every thread frees blocks of the threads running beside it (live owners) and of
 * threads of earlier waves (dead owners: their caches retired, their mimalloc heaps
 * abandoned), and leaves blocks that later threads free. The rest is checked and
 * freed by the thread that allocated it. tests/helpers/prog_churn.c has the other
 * shape (the main thread frees what the workers leave); this one never involves main.
 *
 * Every STEP threads (and at the end) the main thread prints one line
 *   checkpoint threads=N rss=B hwm=B meta=B pagemap=B heap=B live=T
 * rss: VmRSS now; hwm: VmHWM, the peak RSS since the previous checkpoint (reset
 * through /proc/self/clear_refs; 0 if the kernel refused); meta, pagemap, heap:
 * metadata.meta_bytes, metadata.pagemap_bytes, summary.heap_bytes of a stats dump;
 * live: summary.threads_live. After the last checkpoint the pool is drained and
 *   trimmed_rss=B threads_live=T threads_seen=T bad=N
 * (trimmed_rss: VmRSS after malloc_trim(0) gave every cache back). Exit 0 unless a
 * block lost its pattern (bad) or a thread could not be started. */
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>

#include "life/life.h"

enum { POOL = 256, ROUNDS = 6, BATCH = 8, XFER = 3, LARGE_PERMILLE = 2 };

static _Atomic(life_blk_t *) pool[POOL];
static atomic_ulong bad;
static char json[1 << 16];

static void check_free(life_blk_t *b)
{
    if (!life_ok(b)) atomic_fetch_add(&bad, 1);
    free(b);
}

static void *thread_main(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    for (unsigned r = 0; r < ROUNDS; r++) {
        life_blk_t *blk[BATCH];
        for (unsigned k = 0; k < BATCH; k++) {
            uint64_t tag = life_mix(id << 16 | r << 8 | k);
            blk[k] = life_new(tag, LARGE_PERMILLE);
            if (blk[k] == NULL) atomic_fetch_add(&bad, 1);
        }
        for (unsigned k = 0; k < BATCH; k++) {
            if (blk[k] == NULL) continue;
            if (k < XFER) {
                life_blk_t *old = atomic_exchange(&pool[life_mix(blk[k]->tag ^ 0x5a5a) % POOL], blk[k]);
                if (old) check_free(old);
            } else {
                check_free(blk[k]);
            }
        }
    }
    return NULL;
}

static void checkpoint(unsigned done)
{
    uint64_t meta = 0, pagemap = 0, heap = 0, live = 0;
    if (nm_self_stats_json(json, sizeof json)) {
        nm_json_u64(json, "metadata.meta_bytes", &meta);
        nm_json_u64(json, "metadata.pagemap_bytes", &pagemap);
        nm_json_u64(json, "summary.heap_bytes", &heap);
        nm_json_u64(json, "summary.threads_live", &live);
    }
    uint64_t rss = life_status_kb("VmRSS"), hwm = life_status_kb("VmHWM");
    if (!life_reset_hwm()) hwm = 0;
    nm_say(1, "checkpoint threads=%u rss=%lu hwm=%lu meta=%lu pagemap=%lu heap=%lu live=%lu\n", done,
           (unsigned long)rss, (unsigned long)hwm, (unsigned long)meta, (unsigned long)pagemap,
           (unsigned long)heap, (unsigned long)live);
}

int main(int argc, char **argv)
{
    if (argc != 4) { nm_say(2, "usage: life_churn THREADS WAVE STEP\n"); return 2; }
    unsigned total = (unsigned)strtoul(argv[1], NULL, 10);
    unsigned wave = (unsigned)strtoul(argv[2], NULL, 10);
    unsigned step = (unsigned)strtoul(argv[3], NULL, 10);
    if (wave == 0 || wave > 64 || step == 0 || step % wave || total % step) {
        nm_say(2, "life_churn: WAVE 1..64 must divide STEP, STEP must divide THREADS\n");
        return 2;
    }
    life_reset_hwm();
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 128 << 10);
    for (unsigned done = 0; done < total; done += wave) {
        pthread_t t[64];
        for (unsigned i = 0; i < wave; i++) {
            int e = pthread_create(&t[i], &attr, thread_main, (void *)(uintptr_t)(done + i));
            if (e) { nm_say(2, "pthread_create failed after %u threads: %s\n", done + i, strerror(e)); return 1; }
        }
        for (unsigned i = 0; i < wave; i++) pthread_join(t[i], NULL);
        if ((done + wave) % step == 0) checkpoint(done + wave);
    }
    pthread_attr_destroy(&attr);
    for (unsigned s = 0; s < POOL; s++) {
        life_blk_t *b = atomic_exchange(&pool[s], NULL);
        if (b) check_free(b);
    }
    malloc_trim(0);
    uint64_t live = 0, seen = 0;
    if (nm_self_stats_json(json, sizeof json)) {
        nm_json_u64(json, "summary.threads_live", &live);
        nm_json_u64(json, "summary.threads_seen", &seen);
    }
    nm_say(1, "trimmed_rss=%lu\nthreads_live=%lu\nthreads_seen=%lu\nbad=%lu\n", (unsigned long)life_status_kb("VmRSS"),
           (unsigned long)live, (unsigned long)seen, (unsigned long)atomic_load(&bad));
    return atomic_load(&bad) ? 1 : 0;
}
