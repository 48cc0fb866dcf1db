/* numamalloc benchmarks — blocks crossing threads and threads coming and going:
 * producer/consumer pairs, a larson-style server, 100 producers against 100
 * consumers (xmalloc-test), passive and active false sharing (Hoard's cache-scratch
 * and cache-thrash), and thread churn.
 *
 * Blocks travel between threads in batches through a small bounded channel (one
 * mutex, two condition variables, containers allocated once up front), so the
 * hand-over costs the same under every allocator and the allocator's cross-thread
 * free path is what differs. Thread counts above the core count are deliberate:
 * 16 threads run even on 2 cores, where an allocator that spins or keeps a lock
 * across a preemption shows it. */
#include "common.h"

/* ---- channel: bounded queue of batches -------------------------------------------- */

enum { BATCH = 256 };

typedef struct batch {
    uint32_t n;
    void *p[BATCH];
    size_t len[BATCH];
} batch_t;

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t has_full, has_empty;
    batch_t **full;                  /* FIFO ring of filled batches */
    batch_t **empty;                 /* stack of empty containers */
    uint32_t cap, nfull, full_head, nempty;
    int closed;                      /* producers done: consumers drain and stop */
    batch_t *store;
} chan_t;

static void chan_init(chan_t *c, uint32_t cap)
{
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->has_full, NULL);
    pthread_cond_init(&c->has_empty, NULL);
    c->cap = cap;
    c->full = xmalloc(cap * sizeof(batch_t *));
    c->empty = xmalloc(cap * sizeof(batch_t *));
    c->store = xmalloc(cap * sizeof(batch_t));
    c->nfull = c->full_head = 0;
    c->nempty = cap;
    c->closed = 0;
    for (uint32_t i = 0; i < cap; i++) c->empty[i] = &c->store[i];
}

static void chan_destroy(chan_t *c)
{
    free(c->full);
    free(c->empty);
    free(c->store);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->has_full);
    pthread_cond_destroy(&c->has_empty);
}

static batch_t *chan_get_empty(chan_t *c)
{
    pthread_mutex_lock(&c->mu);
    while (c->nempty == 0) pthread_cond_wait(&c->has_empty, &c->mu);
    batch_t *b = c->empty[--c->nempty];
    pthread_mutex_unlock(&c->mu);
    b->n = 0;
    return b;
}

static void chan_put_full(chan_t *c, batch_t *b)
{
    pthread_mutex_lock(&c->mu);
    c->full[(c->full_head + c->nfull) % c->cap] = b;
    c->nfull++;
    pthread_cond_signal(&c->has_full);
    pthread_mutex_unlock(&c->mu);
}

/* NULL once the channel is closed and drained */
static batch_t *chan_get_full(chan_t *c)
{
    pthread_mutex_lock(&c->mu);
    while (c->nfull == 0 && !c->closed) pthread_cond_wait(&c->has_full, &c->mu);
    batch_t *b = NULL;
    if (c->nfull) {
        b = c->full[c->full_head];
        c->full_head = (c->full_head + 1) % c->cap;
        c->nfull--;
    }
    pthread_mutex_unlock(&c->mu);
    return b;
}

static void chan_put_empty(chan_t *c, batch_t *b)
{
    pthread_mutex_lock(&c->mu);
    c->empty[c->nempty++] = b;
    pthread_cond_signal(&c->has_empty);
    pthread_mutex_unlock(&c->mu);
}

static void chan_close(chan_t *c)
{
    pthread_mutex_lock(&c->mu);
    c->closed = 1;
    pthread_cond_broadcast(&c->has_full);
    pthread_mutex_unlock(&c->mu);
}

/* ---- producers and consumers ------------------------------------------------------- */

typedef struct {
    chan_t *c;
    uint64_t blocks;                 /* producer: how many to allocate */
    uint64_t seed;
    size_t max;                      /* largest request */
} prod_arg_t;

static void *producer(void *argp)
{
    prod_arg_t *a = argp;
    rng_t r = rng_seed(a->seed);
    uint64_t left = a->blocks;
    while (left) {
        batch_t *b = chan_get_empty(a->c);
        uint32_t n = left < BATCH ? (uint32_t)left : BATCH;
        for (uint32_t i = 0; i < n; i++) {
            size_t len = rng_range(&r, 16, a->max);
            b->p[i] = xmalloc(len);
            b->len[i] = len;
            fill(b->p[i], len);
        }
        b->n = n;
        left -= n;
        chan_put_full(a->c, b);
    }
    return NULL;
}

static void *consumer(void *argp)
{
    chan_t *c = argp;
    batch_t *b;
    while ((b = chan_get_full(c)) != NULL) {
        for (uint32_t i = 0; i < b->n; i++) {
            check(b->p[i], b->len[i]);
            free(b->p[i]);
        }
        chan_put_empty(c, b);
    }
    return NULL;
}

/* -t P: P producer/consumer pairs, each with its own channel */
static int w_prodcons(const opts_t *o)
{
    int pairs = o->threads ? o->threads : 1;
    if (pairs > 64) die("at most 64 pairs");
    uint64_t total = scaled(o, 12e6);
    chan_t c[64];
    prod_arg_t a[64];
    pthread_t tp[64], tc[64];
    for (int i = 0; i < pairs; i++) {
        chan_init(&c[i], 16);
        a[i] = (prod_arg_t){ &c[i], total / (uint64_t)pairs, (uint64_t)i + 1, 1024 };
        tc[i] = spawn(consumer, &c[i]);
        tp[i] = spawn(producer, &a[i]);
    }
    for (int i = 0; i < pairs; i++) { join(tp[i]); chan_close(&c[i]); }
    for (int i = 0; i < pairs; i++) { join(tc[i]); chan_destroy(&c[i]); }
    return 0;
}

/* xmalloc-test style: 100 producers and 100 consumers on one shared channel */
static int w_xmalloc(const opts_t *o)
{
    int n = o->threads ? o->threads : 100;
    if (n > 512) die("at most 512 producers");
    uint64_t total = scaled(o, 10e6);
    chan_t c;
    chan_init(&c, 4 * (uint32_t)n);
    prod_arg_t *a = xmalloc((size_t)n * sizeof *a);
    pthread_t *tp = xmalloc((size_t)n * sizeof *tp), *tc = xmalloc((size_t)n * sizeof *tc);
    for (int i = 0; i < n; i++) {
        a[i] = (prod_arg_t){ &c, total / (uint64_t)n, (uint64_t)i + 100, 512 };
        tc[i] = spawn(consumer, &c);
    }
    for (int i = 0; i < n; i++) tp[i] = spawn(producer, &a[i]);
    for (int i = 0; i < n; i++) join(tp[i]);
    chan_close(&c);
    for (int i = 0; i < n; i++) join(tc[i]);
    chan_destroy(&c);
    free(a); free(tp); free(tc);
    return 0;
}

/* ---- larson: a server whose threads are replaced over time ---------------------------- *
 * Each of T lineages owns an array of blocks (first allocated by the main thread).
 * A thread of the lineage replaces random blocks (free one, allocate a new size)
 * for a while, then starts its successor, hands it the array and exits; the
 * successor frees blocks its predecessor allocated. */

enum { LSLOTS = 4000 };

typedef struct {
    void *blk[LSLOTS];
    size_t len[LSLOTS];
    rng_t r;
    uint64_t ops_per_gen;
    uint32_t gens_left;
} lineage_t;

static pthread_mutex_t larson_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t larson_cv = PTHREAD_COND_INITIALIZER;
static int larson_running;

static void *larson_thread(void *argp)
{
    lineage_t *l = argp;
    for (uint64_t i = 0; i < l->ops_per_gen; i++) {
        uint32_t k = (uint32_t)(rng_next(&l->r) % LSLOTS);
        check(l->blk[k], l->len[k]);
        free(l->blk[k]);
        size_t n = rng_range(&l->r, 8, 1000);
        l->blk[k] = xmalloc(n);
        l->len[k] = n;
        fill(l->blk[k], n);
    }
    if (--l->gens_left) {
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        pthread_t t;
        int e = pthread_create(&t, &at, larson_thread, l);
        if (e) die("pthread_create: %s", strerror(e));
        pthread_attr_destroy(&at);
    } else {
        pthread_mutex_lock(&larson_mu);
        larson_running--;
        pthread_cond_signal(&larson_cv);
        pthread_mutex_unlock(&larson_mu);
    }
    return NULL;
}

static int w_larson(const opts_t *o)
{
    int nt = o->threads ? o->threads : 2;
    uint64_t total = scaled(o, 15e6);
    /* about 20000 operations per thread before it is replaced, at least one generation */
    uint64_t per_lineage = total / (uint64_t)nt;
    uint32_t gens = per_lineage / 20000 ? (uint32_t)(per_lineage / 20000) : 1;
    lineage_t *l = xmalloc((size_t)nt * sizeof *l);
    for (int i = 0; i < nt; i++) {
        l[i].r = rng_seed((uint64_t)i + 1000);
        for (uint32_t k = 0; k < LSLOTS; k++) {
            l[i].len[k] = rng_range(&l[i].r, 8, 1000);
            l[i].blk[k] = xmalloc(l[i].len[k]);
            fill(l[i].blk[k], l[i].len[k]);
        }
        l[i].ops_per_gen = total / (uint64_t)nt / gens + 1;
        l[i].gens_left = gens;
    }
    larson_running = nt;
    pthread_attr_t at;
    pthread_attr_init(&at);
    pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
    for (int i = 0; i < nt; i++) {
        pthread_t t;
        int e = pthread_create(&t, &at, larson_thread, &l[i]);
        if (e) die("pthread_create: %s", strerror(e));
    }
    pthread_attr_destroy(&at);
    pthread_mutex_lock(&larson_mu);
    while (larson_running) pthread_cond_wait(&larson_cv, &larson_mu);
    pthread_mutex_unlock(&larson_mu);
    for (int i = 0; i < nt; i++)
        for (uint32_t k = 0; k < LSLOTS; k++) { check(l[i].blk[k], l[i].len[k]); free(l[i].blk[k]); }
    free(l);
    return 0;
}

/* ---- false sharing: cache-scratch (passive) and cache-thrash (active) ----------------- *
 * Every thread repeatedly allocates an 8-byte object, writes it many times and
 * frees it. If the allocator gives two threads blocks on one cache line, the line
 * bounces between cores and the writes slow down by an order of magnitude.
 * cache-thrash: each thread starts from its own allocations (active false sharing:
 * a shared free list hands out adjacent blocks to different threads).
 * cache-scratch: the main thread allocates one object per thread, adjacent, and
 * each thread first frees the one it was given (passive: an allocator that reuses
 * freed blocks in the freeing thread hands back a block on a shared line). */

enum { OBJ = 8 };

typedef struct {
    char *given;                     /* scratch: a block allocated by main, freed here */
    uint64_t iters, reps;
} fs_arg_t;

static void *fs_thread(void *argp)
{
    fs_arg_t *a = argp;
    if (a->given) free(a->given);
    for (uint64_t i = 0; i < a->iters; i++) {
        volatile char *p = xmalloc(OBJ);
        for (uint64_t j = 0; j < a->reps; j++)
            for (int k = 0; k < OBJ; k++) {
                p[k] = (char)(j + (uint64_t)k);
                char v = p[k];
                (void)v;
            }
        free((void *)p);
    }
    return NULL;
}

static int false_sharing(const opts_t *o, int passive)
{
    int nt = o->threads ? o->threads : 2;
    if (nt > 256) die("at most 256 threads");
    const uint64_t iters = 1000;
    uint64_t writes = scaled(o, 1.6e8);                  /* 8-byte objects written, all threads */
    fs_arg_t a[256];
    pthread_t t[256];
    for (int i = 0; i < nt; i++) {
        a[i].given = passive ? xmalloc(OBJ) : NULL;    /* adjacent blocks, one per thread */
        a[i].iters = iters;
        a[i].reps = writes / iters / (uint64_t)nt + 1;
    }
    for (int i = 0; i < nt; i++) t[i] = spawn(fs_thread, &a[i]);
    for (int i = 0; i < nt; i++) join(t[i]);
    return 0;
}

static int w_scratch(const opts_t *o) { return false_sharing(o, 1); }
static int w_thrash(const opts_t *o) { return false_sharing(o, 0); }

/* ---- thread churn ------------------------------------------------------------------------ *
 * Waves of 8 short-lived threads. Each allocates 1000 blocks (Pareto sizes up to
 * 64 KiB), frees 95 % of them, passes the other 5 % to the next wave (freed there,
 * by another thread), and exits. Peak RSS shows whether what dead threads cached is
 * reclaimed: live data never exceeds two waves' hand-over (about 1 MB). */

enum { CHURN_WAVE = 8, CHURN_BLOCKS = 1000, CHURN_KEEP = 50 };

typedef struct {
    void *keep[CHURN_KEEP];
    size_t keep_len[CHURN_KEEP];
    void *old[CHURN_KEEP];           /* handed over by the previous wave */
    size_t old_len[CHURN_KEEP];
    uint64_t seed;
} churn_arg_t;

static void *churn_thread(void *argp)
{
    churn_arg_t *a = argp;
    rng_t r = rng_seed(a->seed);
    void *blk[CHURN_BLOCKS];
    size_t len[CHURN_BLOCKS];
    for (int i = 0; i < CHURN_KEEP; i++) if (a->old[i]) { check(a->old[i], a->old_len[i]); free(a->old[i]); }
    for (int i = 0; i < CHURN_BLOCKS; i++) {
        len[i] = rng_pareto(&r, 16, 64 * KiB, 1.1);
        blk[i] = xmalloc(len[i]);
        fill(blk[i], len[i]);
    }
    for (int i = 0; i < CHURN_BLOCKS; i++) {
        if (i < CHURN_KEEP) { a->keep[i] = blk[i]; a->keep_len[i] = len[i]; continue; }
        check(blk[i], len[i]);
        free(blk[i]);
    }
    return NULL;
}

static int w_churn(const opts_t *o)
{
    uint64_t waves = scaled(o, 1500);
    static churn_arg_t a[CHURN_WAVE];
    pthread_t t[CHURN_WAVE];
    for (uint64_t w = 0; w < waves; w++) {
        /* thread i of this wave frees what thread i+1 of the last wave kept */
        for (int i = 0; i < CHURN_WAVE; i++) {
            const churn_arg_t *prev = &a[(i + 1) % CHURN_WAVE];
            memcpy(a[i].old, prev->keep, sizeof a[i].old);
            memcpy(a[i].old_len, prev->keep_len, sizeof a[i].old_len);
            a[i].seed = w * CHURN_WAVE + (uint64_t)i + 1;
        }
        for (int i = 0; i < CHURN_WAVE; i++) t[i] = spawn(churn_thread, &a[i]);
        for (int i = 0; i < CHURN_WAVE; i++) join(t[i]);
    }
    for (int i = 0; i < CHURN_WAVE; i++)
        for (int k = 0; k < CHURN_KEEP; k++) if (a[i].keep[k]) { check(a[i].keep[k], a[i].keep_len[k]); free(a[i].keep[k]); }
    return 0;
}

static const workload_t workloads[] = {
    { "prodcons", w_prodcons, "-t P producer/consumer pairs, blocks freed by the consumer" },
    { "xmalloc",  w_xmalloc,  "-t N producers and N consumers on one channel (default 100)" },
    { "larson",   w_larson,   "-t T lineages of threads replacing each other (server)" },
    { "scratch",  w_scratch,  "cache-scratch: passive false sharing, -t T threads" },
    { "thrash",   w_thrash,   "cache-thrash: active false sharing, -t T threads" },
    { "churn",    w_churn,    "waves of 8 short threads, hand-over to the next wave" },
};

int main(int argc, char **argv)
{
    return run_workload(workloads, sizeof workloads / sizeof workloads[0], argc, argv);
}
