/* numamalloc benchmarks — single-thread request mixes of real programs, where
 * every byte handed out is used:
 *
 * pareto-touch: Pareto-distributed sizes 16 B-1 MiB, half replacing a random
 *   entry of a pool of 20,000 long-lived blocks, half allocated and freed at once;
 *   every block is written in full (memset), so an allocator that hands out
 *   untouched or oversized memory pays for it in page faults and peak RSS.
 *   (pareto in bench_pairs.c writes only the first 64 bytes.)
 * interp: an interpreter's mix: strings built by appending a few bytes at a time
 *   (a realloc per append, to final lengths in a few classes from 24 to 200 B;
 *   one finished string in four kept long-lived, replacing an older one), two
 *   short-lived 48-96 B objects per step (dictionary entries, freed 128 steps
 *   later), and a 100 KiB read buffer allocated, filled and freed every 512 steps
 *   while the small objects around it come and go (glibc's heap top and trim
 *   threshold, or a size-class allocator's medium path, see it regularly).
 *
 * Fixed seeds; blocks checked before realloc and free (exit 3 if overwritten). */
#include "common.h"

/* ---- pareto-touch ------------------------------------------------------------------- */

enum { POOL = 20000 };

static inline unsigned char pattern(size_t n) { return (unsigned char)(n * 31 + 7); }

static void write_all(void *p, size_t n)
{
    memset(p, pattern(n), n);
    fill(p, n);
}

static void verify(const unsigned char *p, size_t n)
{
    check(p, n);
    if (n > 16 && p[n / 2] != pattern(n)) corrupt("block %p of %zu bytes was overwritten", (const void *)p, n);
}

static int w_pareto_touch(const opts_t *o)
{
    static unsigned char *blk[POOL];
    static size_t len[POOL];
    rng_t r = rng_seed(61);
    uint64_t ops = scaled(o, 12e6);
    for (uint64_t i = 0; i < ops; i++) {
        size_t n = rng_pareto(&r, 16, MiB, 1.1);
        if (rng_next(&r) & 1) {
            uint32_t k = (uint32_t)(rng_next(&r) % POOL);
            if (blk[k]) { verify(blk[k], len[k]); free(blk[k]); }
            blk[k] = xmalloc(n);
            len[k] = n;
            write_all(blk[k], n);
        } else {
            unsigned char *p = xmalloc(n);
            write_all(p, n);
            verify(p, n);
            free(p);
        }
    }
    for (uint32_t k = 0; k < POOL; k++) if (blk[k]) { verify(blk[k], len[k]); free(blk[k]); }
    return 0;
}

/* ---- interp ------------------------------------------------------------------------------ */

enum { NSTR = 4096, NKEPT = 16384, NDICT = 256, CHUNK = 100 * 1024, CHUNK_EVERY = 512 };

static inline unsigned char str_byte(size_t k, uint32_t salt) { return (unsigned char)(k * 13 + salt); }

static void str_check(const unsigned char *p, size_t len, uint32_t salt)
{
    for (size_t k = 0; k < len; k += 7)
        if (p[k] != str_byte(k, salt)) corrupt("string %p lost byte %zu", (const void *)p, k);
    if (len && p[len - 1] != str_byte(len - 1, salt)) corrupt("string %p lost its last byte", (const void *)p);
}

static int w_interp(const opts_t *o)
{
    static const size_t classes[] = { 24, 32, 48, 64, 96, 136, 200 };
    static struct { unsigned char *p; size_t len, target; uint32_t salt; } s[NSTR];
    static struct { unsigned char *p; size_t len; uint32_t salt; } kept[NKEPT];
    static void *dict[NDICT];
    static size_t dict_len[NDICT];
    unsigned char *chunk = NULL;
    rng_t r = rng_seed(51);
    uint64_t steps = scaled(o, 6e6);
    for (uint64_t i = 0; i < steps; i++) {
        /* two short-lived dictionary entries */
        for (int j = 0; j < 2; j++) {
            uint32_t k = (uint32_t)((2 * i + (uint64_t)j) % NDICT);
            if (dict[k]) { check(dict[k], dict_len[k]); free(dict[k]); }
            dict_len[k] = 48 + 8 * rng_range(&r, 0, 6);
            dict[k] = xmalloc(dict_len[k]);
            fill(dict[k], dict_len[k]);
        }
        /* one append to a string under construction */
        uint32_t k = (uint32_t)(rng_next(&r) % NSTR);
        if (s[k].p == NULL) {
            s[k].len = 0;
            s[k].target = classes[rng_next(&r) % (sizeof classes / sizeof classes[0])] - rng_range(&r, 0, 7);
            s[k].salt = (uint32_t)rng_next(&r);
        }
        size_t add = rng_range(&r, 1, 16), need = s[k].len + add;
        if (need > s[k].target) need = s[k].target;
        unsigned char *q = realloc(s[k].p, need);
        if (q == NULL) die("realloc(%zu) failed", need);
        for (size_t b = s[k].len; b < need; b++) q[b] = str_byte(b, s[k].salt);
        s[k].p = q;
        s[k].len = need;
        if (need == s[k].target) {
            str_check(q, need, s[k].salt);
            if (rng_next(&r) % 4 == 0) {               /* kept: replaces an older string */
                uint32_t m = (uint32_t)(rng_next(&r) % NKEPT);
                if (kept[m].p) { str_check(kept[m].p, kept[m].len, kept[m].salt); free(kept[m].p); }
                kept[m].p = q;
                kept[m].len = need;
                kept[m].salt = s[k].salt;
            } else {
                free(q);
            }
            s[k].p = NULL;
        }
        /* the read buffer */
        if (i % CHUNK_EVERY == 0) {
            chunk = xmalloc(CHUNK);
            memset(chunk, (int)(i / CHUNK_EVERY), CHUNK);
            escape(chunk);
        } else if (i % CHUNK_EVERY == CHUNK_EVERY / 2 && chunk) {
            unsigned char v = (unsigned char)(i / CHUNK_EVERY);
            if (chunk[0] != v || chunk[CHUNK / 2] != v || chunk[CHUNK - 1] != v) corrupt("read buffer overwritten");
            free(chunk);
            chunk = NULL;
        }
    }
    free(chunk);
    for (uint32_t k = 0; k < NDICT; k++) if (dict[k]) { check(dict[k], dict_len[k]); free(dict[k]); }
    for (uint32_t k = 0; k < NSTR; k++) if (s[k].p) { str_check(s[k].p, s[k].len, s[k].salt); free(s[k].p); }
    for (uint32_t k = 0; k < NKEPT; k++) if (kept[k].p) { str_check(kept[k].p, kept[k].len, kept[k].salt); free(kept[k].p); }
    return 0;
}

static const workload_t workloads[] = {
    { "pareto-touch", w_pareto_touch, "Pareto sizes 16 B-1 MiB, long and short lifetimes, every block written in full" },
    { "interp",       w_interp,       "interpreter mix: strings grown by realloc, small dict entries, 100 KiB read buffers" },
};

int main(int argc, char **argv)
{
    return run_workload(workloads, sizeof workloads / sizeof workloads[0], argc, argv);
}
