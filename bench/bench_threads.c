/* numamalloc benchmarks — many threads and the memory they leave behind:
 *
 * many: 256 threads started at once (barrier) on at most 2 CPUs, each doing
 *   10,000 mixed operations over a working set of 24 blocks (sizes mostly up to
 *   32 KiB, some medium up to 440 KiB, 2 per thousand 1-3 MiB): replace a block,
 *   grow or shrink one with realloc, or swap one through a shared array of 1024
 *   slots, so threads free each other's blocks while their owners run and after
 *   they exit. Every block carries a pattern checked before realloc and free.
 *   Per-thread caches, lock hand-offs under preemption and the cost of 256
 *   thread starts and exits are what differ.
 * dbuf: 64 threads churning direct-buffer-like blocks: sizes log-uniform 64 B to
 *   512 KiB, every 4 KiB page written, a sliding window of 32 live buffers per
 *   thread (the oldest is freed), and one retired buffer in 16 handed to another
 *   thread's mailbox to be freed there. Peak RSS is the number that matters: live
 *   data is about 120 MB whatever the allocator.
 * free-all: 16 threads each allocate 64 MiB of 256 KiB blocks (every page
 *   written; about 1 GiB live at once), then free all of it and exit; the main
 *   thread waits 100 ms and prints the process's RSS
 *   ("rss_after_free_kb N"): what an allocator keeps after a big job.
 * prodcons64: -t N producers fill batches of 4096 blocks of 64 bytes (the batch,
 *   4096 pointers plus a header, just over 32 KiB, is malloc'ed too) and hand
 *   whole batches through one queue to N consumers, which free every block and
 *   the batch. Bulk cross-thread frees of one small class, and a recurring
 *   allocation just above 32 KiB.
 *
 * Deterministic sizes and sequences (fixed seeds); which thread frees a
 * handed-over block depends on scheduling. Exit 3 if a block was overwritten. */
#include "common.h"

#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>

/* ---- many ------------------------------------------------------------------------ */

static inline uint64_t mix64(uint64_t x)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* 80 % up to 2 KiB, 15 % up to 32 KiB, the rest 40-440 KiB except large_permille
 * per thousand 1-3 MiB */
static inline size_t many_size(uint64_t r, unsigned large_permille)
{
    unsigned k = (unsigned)(r % 1000);
    if (k < 800) return (size_t)(r >> 10) % 2048 + 16;
    if (k < 950) return (size_t)(r >> 10) % 30000 + 2049;
    if (k >= 1000 - large_permille) return (size_t)(r >> 10) % (2u << 20) + (1u << 20);
    return (size_t)(r >> 10) % 400000 + 40000;
}

/* length and tag up front, the pattern over the first and last 64 bytes of payload */
typedef struct mblk {
    size_t n;
    uint64_t tag;
    unsigned char data[];
} mblk_t;

static void mblk_fill(mblk_t *b, size_t n, uint64_t tag)
{
    b->n = n;
    b->tag = tag;
    size_t body = n - sizeof *b, head = body < 64 ? body : 64;
    for (size_t i = 0; i < head; i++) b->data[i] = (unsigned char)(tag + i);
    if (body >= 128)
        for (size_t i = body - 64; i < body; i++) b->data[i] = (unsigned char)((tag >> 8) ^ i);
}

static int mblk_ok(const mblk_t *b)
{
    if (b->n < sizeof *b) return 0;
    size_t body = b->n - sizeof *b, head = body < 64 ? body : 64;
    for (size_t i = 0; i < head; i++) if (b->data[i] != (unsigned char)(b->tag + i)) return 0;
    if (body >= 128)
        for (size_t i = body - 64; i < body; i++) if (b->data[i] != (unsigned char)((b->tag >> 8) ^ i)) return 0;
    return 1;
}

static size_t mblk_len(uint64_t tag)
{
    size_t n = many_size(tag, 2);
    return n < sizeof(mblk_t) ? sizeof(mblk_t) : n;
}

static mblk_t *mblk_new(uint64_t tag)
{
    size_t n = mblk_len(tag);
    mblk_t *b = xmalloc(n);
    mblk_fill(b, n, tag);
    return b;
}

enum { WSET = 24, SHARED = 1024 };
static _Atomic(mblk_t *) shared[SHARED];
static atomic_ulong many_bad;
static pthread_barrier_t many_start;
static uint64_t many_ops;

static void mblk_free(mblk_t *b)
{
    if (!mblk_ok(b)) atomic_fetch_add(&many_bad, 1);
    free(b);
}

static void *many_thread(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    mblk_t *set[WSET] = { 0 };
    pthread_barrier_wait(&many_start);
    for (uint64_t i = 0; i < many_ops; i++) {
        uint64_t tag = mix64(id << 32 | i);
        if ((tag >> 20) % 4 == 0) {                    /* through the shared array */
            mblk_t *old = atomic_exchange(&shared[(tag >> 24) % SHARED], mblk_new(tag));
            if (old) mblk_free(old);
            continue;
        }
        mblk_t **slot = &set[(tag >> 24) % WSET];
        if (*slot && (tag >> 40) % 8 == 0) {         /* realloc: the front must survive the move */
            mblk_t *b = *slot;
            if (!mblk_ok(b)) atomic_fetch_add(&many_bad, 1);
            size_t n = mblk_len(tag), oldn = b->n;
            uint64_t oldtag = b->tag;
            b = realloc(b, n);
            if (b == NULL) die("realloc(%zu) failed", n);
            size_t keep = (n < oldn ? n : oldn) - sizeof *b;
            if (keep > 64) keep = 64;
            if (b->n != oldn || b->tag != oldtag) atomic_fetch_add(&many_bad, 1);
            for (size_t k = 0; k < keep; k++)
                if (b->data[k] != (unsigned char)(oldtag + k)) { atomic_fetch_add(&many_bad, 1); break; }
            mblk_fill(b, n, tag);
            *slot = b;
            continue;
        }
        if (*slot) mblk_free(*slot);
        *slot = mblk_new(tag);
    }
    for (unsigned k = 0; k < WSET; k++) if (set[k]) mblk_free(set[k]);
    return NULL;
}

/* keep the first two CPUs of the allowed set: the run means the same on a bigger machine */
static int pin_two_cpus(void)
{
    cpu_set_t set, two;
    if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    CPU_ZERO(&two);
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++)
        if (CPU_ISSET(c, &set)) { CPU_SET(c, &two); n++; }
    return sched_setaffinity(0, sizeof two, &two) == 0 ? n : CPU_COUNT(&set);
}

static int w_many(const opts_t *o)
{
    unsigned n = o->threads ? (unsigned)o->threads : 256;
    if (n > 4096) die("at most 4096 threads");
    many_ops = scaled(o, 10000);
    int cpus = pin_two_cpus();
    pthread_t *t = xmalloc(n * sizeof *t);
    if (pthread_barrier_init(&many_start, NULL, n + 1) != 0) die("pthread_barrier_init");
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 << 10);
    for (unsigned i = 0; i < n; i++) {
        int e = pthread_create(&t[i], &attr, many_thread, (void *)(uintptr_t)i);
        if (e) die("pthread_create %u: %s", i, strerror(e));
    }
    pthread_attr_destroy(&attr);
    pthread_barrier_wait(&many_start);
    for (unsigned i = 0; i < n; i++) join(t[i]);
    for (unsigned s = 0; s < SHARED; s++) {
        mblk_t *b = atomic_exchange(&shared[s], NULL);
        if (b) mblk_free(b);
    }
    free(t);
    printf("threads %u ops %llu cpus %d bad %lu\n", n, (unsigned long long)many_ops, cpus,
           (unsigned long)atomic_load(&many_bad));
    if (atomic_load(&many_bad)) corrupt("%lu blocks lost their pattern", (unsigned long)atomic_load(&many_bad));
    return 0;
}

/* ---- dbuf ------------------------------------------------------------------------- */

enum { DB_MAXT = 256, DB_WIN = 32, DB_MBOX = 64, DB_HANDOFF = 16 };

/* a buffer carries its length: the thread that frees a handed-over one checks it */
static void dbuf_fill(unsigned char *p, size_t n)
{
    touch_pages(p, n);
    memcpy(p, &n, sizeof n);
    uint64_t t = tag_of(p, n);
    memcpy(p + 8, &t, 8);
    p[n - 1] = (unsigned char)t;
    escape(p);
}

static void dbuf_free(unsigned char *p)
{
    size_t n;
    uint64_t t, v;
    memcpy(&n, p, sizeof n);
    t = tag_of(p, n);
    memcpy(&v, p + 8, 8);
    if (n < 64 || n > 512 * KiB || v != t || p[n - 1] != (unsigned char)t) corrupt("buffer %p was overwritten", (void *)p);
    free(p);
}

static _Atomic(unsigned char *) mbox[DB_MAXT][DB_MBOX];
static int db_threads;

typedef struct { int id; uint64_t ops; } dbuf_arg_t;

static void drain(int id)
{
    for (int s = 0; s < DB_MBOX; s++) {
        if (atomic_load_explicit(&mbox[id][s], memory_order_relaxed) == NULL) continue;
        unsigned char *p = atomic_exchange(&mbox[id][s], NULL);
        if (p) dbuf_free(p);
    }
}

static void *dbuf_thread(void *argp)
{
    dbuf_arg_t *a = argp;
    rng_t r = rng_seed(1000 + (uint64_t)a->id);
    unsigned char *win[DB_WIN] = { 0 };
    const double lo = log(64.0), hi = log(512.0 * 1024.0);
    for (uint64_t i = 0; i < a->ops; i++) {
        size_t n = (size_t)exp(lo + rng_unit(&r) * (hi - lo));
        unsigned char *p = xmalloc(n);
        dbuf_fill(p, n);
        unsigned char **slot = &win[i % DB_WIN], *old = *slot;
        *slot = p;
        if (old) {
            int handed = 0;
            if (rng_next(&r) % DB_HANDOFF == 0 && db_threads > 1) {
                int to = (a->id + 1 + (int)(rng_next(&r) % (uint64_t)(db_threads - 1))) % db_threads;
                for (int k = 0, s = (int)(i % DB_MBOX); k < DB_MBOX && !handed; k++, s = (s + 1) % DB_MBOX) {
                    unsigned char *none = NULL;
                    handed = atomic_compare_exchange_strong(&mbox[to][s], &none, old);
                }
            }
            if (!handed) dbuf_free(old);
        }
        if ((i & 7) == 0) drain(a->id);
    }
    for (int k = 0; k < DB_WIN; k++) if (win[k]) dbuf_free(win[k]);
    drain(a->id);
    return NULL;
}

static int w_dbuf(const opts_t *o)
{
    db_threads = o->threads ? o->threads : 64;
    if (db_threads > DB_MAXT) die("at most %d threads", DB_MAXT);
    uint64_t total = scaled(o, 400000);
    dbuf_arg_t a[DB_MAXT];
    pthread_t t[DB_MAXT];
    for (int i = 0; i < db_threads; i++) {
        a[i] = (dbuf_arg_t){ i, total / (uint64_t)db_threads };
        t[i] = spawn(dbuf_thread, &a[i]);
    }
    for (int i = 0; i < db_threads; i++) join(t[i]);
    for (int i = 0; i < db_threads; i++) drain(i);
    return 0;
}

/* ---- free-all --------------------------------------------------------------------- */

enum { FA_BLOCK = 256 * 1024 };
static pthread_barrier_t fa_live;

typedef struct { size_t blocks; } fa_arg_t;

static void *fa_thread(void *argp)
{
    fa_arg_t *a = argp;
    unsigned char **b = xmalloc(a->blocks * sizeof *b);
    for (size_t i = 0; i < a->blocks; i++) {
        b[i] = xmalloc(FA_BLOCK);
        touch_pages(b[i], FA_BLOCK);
        fill(b[i], FA_BLOCK);
    }
    pthread_barrier_wait(&fa_live);                /* everything is live at once */
    for (size_t i = 0; i < a->blocks; i++) { check(b[i], FA_BLOCK); free(b[i]); }
    free(b);
    return NULL;
}

static int w_free_all(const opts_t *o)
{
    int nt = o->threads ? o->threads : 16;
    if (nt > 256) die("at most 256 threads");
    fa_arg_t a = { scaled(o, 64.0 * MiB / FA_BLOCK) };
    pthread_t t[256];
    if (pthread_barrier_init(&fa_live, NULL, (unsigned)nt) != 0) die("pthread_barrier_init");
    for (int i = 0; i < nt; i++) t[i] = spawn(fa_thread, &a);
    for (int i = 0; i < nt; i++) join(t[i]);
    struct timespec ts = { 0, 100 * 1000 * 1000 };
    nanosleep(&ts, NULL);
    printf("live_kb %llu\nrss_after_free_kb %llu\n",
           (unsigned long long)((uint64_t)nt * a.blocks * FA_BLOCK / 1024), (unsigned long long)(rss_bytes() / 1024));
    return 0;
}

/* ---- prodcons64 ------------------------------------------------------------------- */

enum { PC_BATCH = 4096, PC_SIZE = 64 };

typedef struct {
    uint32_t n;
    uint32_t producer;
    void *p[PC_BATCH];
} pc_batch_t;                        /* 8 + 32768 bytes */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    pc_batch_t **ring;
    uint32_t cap, head, count;
    int closed;
} q = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, 0, 0, 0, 0 };

static void q_put(pc_batch_t *b)
{
    pthread_mutex_lock(&q.mu);
    while (q.count == q.cap) pthread_cond_wait(&q.not_full, &q.mu);
    q.ring[(q.head + q.count) % q.cap] = b;
    q.count++;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.mu);
}

static pc_batch_t *q_get(void)
{
    pthread_mutex_lock(&q.mu);
    while (q.count == 0 && !q.closed) pthread_cond_wait(&q.not_empty, &q.mu);
    pc_batch_t *b = NULL;
    if (q.count) {
        b = q.ring[q.head];
        q.head = (q.head + 1) % q.cap;
        q.count--;
        pthread_cond_signal(&q.not_full);
    }
    pthread_mutex_unlock(&q.mu);
    return b;
}

typedef struct { uint32_t id; uint64_t batches; } pc_arg_t;

static void *pc_producer(void *argp)
{
    pc_arg_t *a = argp;
    for (uint64_t k = 0; k < a->batches; k++) {
        pc_batch_t *b = xmalloc(sizeof *b);
        b->n = PC_BATCH;
        b->producer = a->id;
        for (uint32_t i = 0; i < PC_BATCH; i++) {
            b->p[i] = xmalloc(PC_SIZE);
            fill(b->p[i], PC_SIZE);
        }
        q_put(b);
    }
    return NULL;
}

static void *pc_consumer(void *argp)
{
    (void)argp;
    pc_batch_t *b;
    while ((b = q_get()) != NULL) {
        for (uint32_t i = 0; i < b->n; i++) { check(b->p[i], PC_SIZE); free(b->p[i]); }
        free(b);
    }
    return NULL;
}

static int w_prodcons64(const opts_t *o)
{
    int n = o->threads ? o->threads : 1;
    if (n > 64) die("at most 64 producers");
    uint64_t batches = scaled(o, 3000);             /* 12.3 M blocks in all */
    q.cap = 4 * (uint32_t)n;
    q.ring = xmalloc(q.cap * sizeof *q.ring);
    pc_arg_t a[64];
    pthread_t tp[64], tc[64];
    for (int i = 0; i < n; i++) tc[i] = spawn(pc_consumer, NULL);
    for (int i = 0; i < n; i++) {
        a[i] = (pc_arg_t){ (uint32_t)i, batches / (uint64_t)n + (i < (int)(batches % (uint64_t)n)) };
        tp[i] = spawn(pc_producer, &a[i]);
    }
    for (int i = 0; i < n; i++) join(tp[i]);
    pthread_mutex_lock(&q.mu);
    q.closed = 1;
    pthread_cond_broadcast(&q.not_empty);
    pthread_mutex_unlock(&q.mu);
    for (int i = 0; i < n; i++) join(tc[i]);
    free(q.ring);
    return 0;
}

static const workload_t workloads[] = {
    { "many",       w_many,       "-t N threads at once (default 256) on 2 CPUs, 10,000 mixed operations each" },
    { "dbuf",       w_dbuf,       "-t N threads (default 64) churning 64 B-512 KiB buffers, 1 in 16 freed by another thread" },
    { "free-all",   w_free_all,   "-t N threads (default 16) allocate 64 MiB each, free it all; prints RSS after" },
    { "prodcons64", w_prodcons64, "-t N producers and N consumers, batches of 4096 x 64 B" },
};

int main(int argc, char **argv)
{
    return run_workload(workloads, sizeof workloads / sizeof workloads[0], argc, argv);
}
