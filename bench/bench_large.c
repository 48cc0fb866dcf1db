/* numamalloc benchmarks — big memory: large blocks (several MiB, every page
 * touched) and a fragmentation test whose number that matters is peak RSS.
 *
 * large: a window of 8 live blocks of 1-8 MiB; each new block has all its pages
 *   written (the program uses it), then the oldest is freed. Allocators that return
 *   every block to the kernel pay page faults and zeroing again; caching and huge
 *   pages show here.
 * frag: allocate N blocks of 16-128 bytes, free a random 90 %, then allocate blocks
 *   of twice the size (32-256 bytes) worth as many bytes as were freed, and free
 *   everything; twice. Live bytes never exceed the first phase's, so an allocator
 *   that can reuse the holes peaks near N x 72 bytes, one that cannot (size-class
 *   slabs keep 90 %-empty pages) near twice that. */
#include "common.h"

static int w_large(const opts_t *o)
{
    enum { WIN = 8 };
    void *live[WIN] = { 0 };
    size_t len[WIN] = { 0 };
    rng_t r = rng_seed(21);
    uint64_t iters = scaled(o, 2000);
    for (uint64_t i = 0; i < iters; i++) {
        int k = (int)(i % WIN);
        if (live[k]) { check(live[k], len[k]); free(live[k]); }
        size_t n = rng_range(&r, 256, 2048) * 4096 - rng_range(&r, 0, 4000);   /* 1-8 MiB, unaligned sizes */
        void *p = xmalloc(n);
        touch_pages(p, n);
        fill(p, n);
        live[k] = p;
        len[k] = n;
    }
    for (int k = 0; k < WIN; k++) if (live[k]) { check(live[k], len[k]); free(live[k]); }
    return 0;
}

static int w_frag(const opts_t *o)
{
    uint64_t n = scaled(o, 2e6);
    void **blk = calloc(n, sizeof(void *));
    uint8_t *len = calloc(n, 1);                  /* phase-1 sizes fit a byte */
    if (!blk || !len) die("out of memory");
    rng_t r = rng_seed(31);
    for (int cycle = 0; cycle < 2; cycle++) {
        uint64_t freed_bytes = 0;
        for (uint64_t i = 0; i < n; i++) {
            len[i] = (uint8_t)rng_range(&r, 16, 128);
            blk[i] = xmalloc(len[i]);
            fill(blk[i], len[i]);
        }
        for (uint64_t i = 0; i < n; i++) {
            if (rng_next(&r) % 10 == 0) continue;           /* keep 10 %, scattered */
            check(blk[i], len[i]);
            freed_bytes += len[i];
            free(blk[i]);
            blk[i] = NULL;
        }
        /* second phase: bigger blocks, as many bytes as were freed */
        uint64_t m = freed_bytes / 32 + 1, j = 0;        /* room for the worst case: all 32 bytes */
        void **big = malloc(m * sizeof(void *));
        uint16_t *blen = malloc(m * sizeof(uint16_t));
        if (!big || !blen) die("out of memory");
        for (uint64_t b = 0; b < freed_bytes && j < m; j++) {
            blen[j] = (uint16_t)rng_range(&r, 32, 256);
            big[j] = xmalloc(blen[j]);
            fill(big[j], blen[j]);
            b += blen[j];
        }
        for (uint64_t i = 0; i < j; i++) { check(big[i], blen[i]); free(big[i]); }
        for (uint64_t i = 0; i < n; i++) if (blk[i]) { check(blk[i], len[i]); free(blk[i]); blk[i] = NULL; }
        free(big);
        free(blen);
    }
    free(blk);
    free(len);
    return 0;
}

static const workload_t workloads[] = {
    { "large", w_large, "8 live blocks of 1-8 MiB, every page touched" },
    { "frag",  w_frag,  "allocate, free a random 90 %, reallocate bigger: peak RSS" },
};

int main(int argc, char **argv)
{
    return run_workload(workloads, sizeof workloads / sizeof workloads[0], argc, argv);
}
