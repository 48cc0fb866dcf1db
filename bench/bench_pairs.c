/* numamalloc benchmarks — one thread's view of the allocator: malloc/free pairs
 * per size (16 B .. 32 MiB), batches freed in LIFO, FIFO and random order, a
 * Pareto size mix with mixed lifetimes (also run on 16 threads), realloc growth,
 * calloc of large blocks, and aligned allocation.
 *
 * Each workload does a fixed amount of work, scaled by -s; bench/run.sh times the
 * whole process under every allocator. Defaults are sized for 1-3 s on the
 * reference machine (2 cores) with the slower allocators. */
#include "common.h"

/* ---- pairs: malloc, write, read, free, one size --------------------------------- *
 * Eight more blocks of the size stay live throughout (-o alone: none), so the
 * pair runs in the allocator's steady state, as in a program that has other
 * objects of that size: with nothing else live, the page (or segment) of the
 * block empties at every free and some allocators (mimalloc 2.0.9) release and
 * re-initialise it every time. The "alone" variant keeps that case visible: a
 * function that takes a big scratch buffer per call is common. */

static int w_pairs(const opts_t *o)
{
    size_t n = o->size ? o->size : 16;
    int alone = o->order && !strcmp(o->order, "alone");
    if (o->order && !alone) die("pairs: -o accepts only 'alone'");
    /* pairs per run: small sizes take a few ns each; from 256 KiB up a pair can
     * cost an mmap, page faults and an munmap (several us) under some allocators
     * and a few ns under others, so the counts keep the slowest near 3 s */
    double base = n <= 4 * KiB ? 60e6 : n <= 32 * KiB ? 30e6 : n <= 512 * KiB ? 2e6 : n <= 4 * MiB ? 4e6 : 1e5;
    uint64_t iters = scaled(o, base);
    void *keep[8] = { 0 };
    for (int i = 0; i < 8 && !alone; i++) { keep[i] = xmalloc(n); fill(keep[i], n); }
    for (uint64_t i = 0; i < iters; i++) {
        void *p = malloc(n);
        if (p == NULL) die("malloc(%zu) failed", n);
        fill(p, n);
        check(p, n);
        free(p);
    }
    for (int i = 0; i < 8; i++) if (keep[i]) { check(keep[i], n); free(keep[i]); }
    return 0;
}

/* ---- batches: allocate K blocks, free them in LIFO, FIFO or random order ------- */

enum { BATCH = 4096, NPERM = 16 };

static int w_batch(const opts_t *o)
{
    const char *order = o->order ? o->order : "lifo";
    int mode = !strcmp(order, "lifo") ? 0 : !strcmp(order, "fifo") ? 1 : !strcmp(order, "random") ? 2 : -1;
    if (mode < 0) die("batch order must be lifo, fifo or random");
    static void *blk[BATCH];
    static size_t len[BATCH];
    static uint32_t perm[NPERM][BATCH];
    rng_t r = rng_seed(7);
    /* the permutations are made up front: shuffling is not the allocator's cost */
    for (int k = 0; k < NPERM; k++) {
        for (uint32_t i = 0; i < BATCH; i++) perm[k][i] = i;
        for (uint32_t i = BATCH - 1; i > 0; i--) {
            uint32_t j = (uint32_t)(rng_next(&r) % (i + 1)), t = perm[k][i];
            perm[k][i] = perm[k][j]; perm[k][j] = t;
        }
    }
    uint64_t rounds = scaled(o, 8000);
    for (uint64_t round = 0; round < rounds; round++) {
        for (uint32_t i = 0; i < BATCH; i++) {
            len[i] = rng_range(&r, 16, 512);
            blk[i] = xmalloc(len[i]);
            fill(blk[i], len[i]);
        }
        const uint32_t *pm = perm[round % NPERM];
        for (uint32_t i = 0; i < BATCH; i++) {
            uint32_t j = mode == 0 ? BATCH - 1 - i : mode == 1 ? i : pm[i];
            check(blk[j], len[j]);
            free(blk[j]);
        }
    }
    return 0;
}

/* ---- Pareto size mix with mixed lifetimes, one or more threads ------------------- *
 * Each thread keeps a pool of live blocks; every step either replaces a random pool
 * entry (long-lived objects, freed in random order) or allocates and frees a
 * temporary. Sizes: Pareto from 16 B with a tail up to 4 MiB, so every size range
 * of the allocator is visited in realistic proportion. */

enum { POOL = 20000 };

typedef struct { uint64_t ops; uint64_t seed; } pareto_arg_t;

static void *pareto_thread(void *argp)
{
    pareto_arg_t *a = argp;
    rng_t r = rng_seed(a->seed);
    void **blk = calloc(POOL, sizeof(void *));
    size_t *len = calloc(POOL, sizeof(size_t));
    if (!blk || !len) die("out of memory");
    for (uint64_t i = 0; i < a->ops; i++) {
        size_t n = rng_pareto(&r, 16, 4 * MiB, 1.1);
        if (rng_next(&r) & 1) {
            uint32_t k = (uint32_t)(rng_next(&r) % POOL);
            if (blk[k]) { check(blk[k], len[k]); free(blk[k]); }
            blk[k] = xmalloc(n);
            len[k] = n;
            memset(blk[k], 0x5a, n < 64 ? n : 64);   /* initialise the header, like a constructor */
            fill(blk[k], n);
        } else {
            void *p = xmalloc(n);
            memset(p, 0x5a, n < 64 ? n : 64);
            fill(p, n);
            check(p, n);
            free(p);
        }
    }
    for (uint32_t k = 0; k < POOL; k++) if (blk[k]) { check(blk[k], len[k]); free(blk[k]); }
    free(blk);
    free(len);
    return NULL;
}

static int w_pareto(const opts_t *o)
{
    int nt = o->threads ? o->threads : 1;
    uint64_t total = scaled(o, 24e6);
    pareto_arg_t args[256];
    pthread_t t[256];
    if (nt > 256) die("at most 256 threads");
    for (int i = 0; i < nt; i++) args[i] = (pareto_arg_t){ total / (uint64_t)nt, (uint64_t)i + 1 };
    if (nt == 1) { pareto_thread(&args[0]); return 0; }
    for (int i = 0; i < nt; i++) t[i] = spawn(pareto_thread, &args[i]);
    for (int i = 0; i < nt; i++) join(t[i]);
    return 0;
}

/* ---- realloc growth ---------------------------------------------------------------- *
 * 256 buffers grow side by side (so a buffer's neighbour is usually taken and
 * in-place growth is not free): odd ones append 1-100 bytes per realloc, the way a
 * naive string builder does; even ones grow their capacity by 1.5x, the way a vector
 * does. At its target length (1 KiB .. 512 KiB) a buffer is checked and freed. */

enum { NBUF = 256 };

static int w_realloc(const opts_t *o)
{
    struct { unsigned char *p; size_t len, cap, target; } b[NBUF] = { { 0 } };
    rng_t r = rng_seed(11);
    uint64_t appends = scaled(o, 15e6), done = 0;
    while (done < appends) {
        for (int i = 0; i < NBUF && done < appends; i++, done++) {
            if (b[i].p == NULL) {
                b[i].target = rng_pareto(&r, KiB, 512 * KiB, 0.8);
                b[i].len = b[i].cap = 0;
            }
            size_t add = rng_range(&r, 1, 100);
            size_t need = b[i].len + add;
            if (need > b[i].cap) {
                size_t cap = (i & 1) ? need : (need < 64 ? 64 : need + need / 2);
                unsigned char *q = realloc(b[i].p, cap);
                if (q == NULL) die("realloc(%zu) failed", cap);
                b[i].p = q;
                b[i].cap = cap;
            }
            for (size_t k = b[i].len; k < need; k++) b[i].p[k] = (unsigned char)(k * 7 + (size_t)i);
            b[i].len = need;
            if (b[i].len >= b[i].target) {
                /* the contents survived every move: sample the bytes written */
                for (size_t k = 0; k < b[i].len; k += 997)
                    if (b[i].p[k] != (unsigned char)(k * 7 + (size_t)i)) corrupt("realloc lost byte %zu", k);
                free(b[i].p);
                b[i].p = NULL;
            }
        }
    }
    for (int i = 0; i < NBUF; i++) free(b[i].p);
    return 0;
}

/* ---- calloc of large blocks ------------------------------------------------------------ *
 * Sizes 64 KiB .. 16 MiB. Fresh mmap pages are already zero, so a good calloc does
 * not write them; a reused block must be zeroed. We dirty one byte in every eighth
 * page and check, on every calloc, that those same offsets read as zero: an
 * allocator that skips the zeroing of reused memory fails the run. Two blocks are
 * live at a time, so reuse is not always of the block just freed. */

static int w_calloc(const opts_t *o)
{
    static const size_t sizes[] = { 64 * KiB, 256 * KiB, 1 * MiB, 3 * MiB, 16 * MiB, 512 * KiB, 8 * MiB };
    const size_t ns = sizeof sizes / sizeof sizes[0];
    unsigned char *live[2] = { NULL, NULL };
    uint64_t iters = scaled(o, 5000);
    for (uint64_t i = 0; i < iters; i++) {
        size_t n = sizes[i % ns];
        unsigned char *p = calloc(1, n);
        if (p == NULL) die("calloc(%zu) failed", n);
        for (size_t k = 0; k < n; k += 8 * 4096)
            if (p[k] != 0 || p[k + 4095 < n ? k + 4095 : n - 1] != 0) corrupt("calloc(%zu) returned non-zero memory", n);
        for (size_t k = 0; k < n; k += 8 * 4096) { p[k] = 1; p[k + 4095 < n ? k + 4095 : n - 1] = 1; }
        escape(p);
        free(live[i & 1]);
        live[i & 1] = p;
    }
    free(live[0]);
    free(live[1]);
    return 0;
}

/* ---- aligned allocation -------------------------------------------------------------- *
 * A pool of live blocks with alignments 16 .. 4096 (and 64 KiB once in 256 requests),
 * sizes 8 .. 4 KiB, through posix_memalign and aligned_alloc alternately. */

static int w_aligned(const opts_t *o)
{
    enum { APOOL = 8192 };
    static void *blk[APOOL];
    static size_t len[APOOL];
    rng_t r = rng_seed(13);
    uint64_t ops = scaled(o, 12e6);
    for (uint64_t i = 0; i < ops; i++) {
        uint32_t k = (uint32_t)(rng_next(&r) % APOOL);
        if (blk[k]) { check(blk[k], len[k]); free(blk[k]); }
        uint64_t x = rng_next(&r);
        size_t align = (x & 0xff) == 0 ? 64 * KiB : (size_t)16 << (x >> 8) % 9;   /* 16 .. 4096 */
        size_t n = rng_range(&r, 8, 4096);
        void *p = NULL;
        if (i & 1) {
            int e = posix_memalign(&p, align, n);
            if (e) die("posix_memalign(%zu, %zu): %s", align, n, strerror(e));
        } else {
            n = (n + align - 1) & ~(align - 1);         /* C11: size a multiple of the alignment */
            p = aligned_alloc(align, n);
            if (p == NULL) die("aligned_alloc(%zu, %zu) failed", align, n);
        }
        if ((uintptr_t)p & (align - 1)) corrupt("block %p not aligned to %zu", p, align);
        fill(p, n);
        blk[k] = p;
        len[k] = n;
    }
    for (uint32_t k = 0; k < APOOL; k++) if (blk[k]) { check(blk[k], len[k]); free(blk[k]); }
    return 0;
}

static const workload_t workloads[] = {
    { "pairs",   w_pairs,   "malloc/write/free pairs of -b BYTES (16 .. 32M); -o alone: no neighbours" },
    { "batch",   w_batch,   "batches of 4096 blocks freed in -o lifo|fifo|random order" },
    { "pareto",  w_pareto,  "Pareto size mix, mixed lifetimes, -t threads" },
    { "realloc", w_realloc, "256 buffers grown by realloc (append and 1.5x)" },
    { "calloc",  w_calloc,  "calloc of 64K..16M blocks, zeroing checked" },
    { "aligned", w_aligned, "posix_memalign/aligned_alloc, alignments 16..64K" },
};

int main(int argc, char **argv)
{
    return run_workload(workloads, sizeof workloads / sizeof workloads[0], argc, argv);
}
