/* tests/stress/stress.c — deterministic multi-threaded allocator stress.
 *
 * THREADS threads (default 8, more than this machine's cores on purpose) each run
 * OPS operations drawn from a xorshift generator seeded from (SEED, thread). They
 * share SLOTS slots: a thread publishes a block by atomic exchange and verifies and
 * frees whatever it displaced, so most blocks are freed by a thread other than the
 * one that allocated them. Operations: allocate (malloc, calloc, posix_memalign,
 * aligned_alloc, memalign) and publish; take a block, realloc it larger or smaller
 * and put it back; take a block and free it; a burst of local blocks freed in
 * shuffled order. Sizes span small (slab), medium (fallback arena) and large (own
 * mapping) blocks, alignments 16 B to 2 MiB.
 *
 * Every block carries a header (id, size) and the rest of it is filled with a
 * pattern derived from the id and size; it is verified before every free and
 * realloc (a realloc keeps the old pattern's prefix), and calloc'ed memory is
 * checked for zeros first. Any mismatch is counted and reported; the run fails.
 *
 * Determinism: random numbers are drawn the same way whatever the slots hold, so
 * the allocation ids, sizes and the checksum printed on the "result" line depend
 * only on the arguments, not on the allocator or the scheduling; the test compares
 * that line with a run without the preload. At the end every slot is drained, and
 * when preloaded the stats JSON must show as many live blocks as before the run
 * (the program holds none of its own; libc's few are in the baseline), and no
 * invalid or foreign pointer. Untimed: the time is printed for information only.
 * Usage: stress [THREADS [OPS [SEED [SLOTS]]]] */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers/spawn.h"

typedef struct hdr {
    uint64_t id;           /* thread << 40 | serial */
    uint64_t size;         /* bytes requested, header included */
} hdr_t;

enum { MAX_SLOTS = 1 << 16, BURST = 16 };

static _Atomic(hdr_t *) *slots;
static unsigned nslots;
static uint64_t seed;
static unsigned long ops_per_thread;
static atomic_ulong errors, allocs_total, frees_total;
static char json[1 << 16];

typedef struct tstate {
    unsigned id;
    uint64_t rng;
    uint64_t serial;
    uint64_t checksum;     /* of ids and sizes allocated: deterministic */
    uint64_t allocs, frees;
} tstate_t;

static uint64_t rnd(tstate_t *t)
{
    uint64_t x = t->rng;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return t->rng = x;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* ---- the pattern --------------------------------------------------------------- */

/* word j of the body of a block with this id and size */
static inline uint64_t pat(uint64_t h, size_t j) { return h ^ (j * 0x9e3779b97f4a7c15ull); }

static void stamp(hdr_t *b, uint64_t id, size_t size)
{
    b->id = id;
    b->size = size;
    uint64_t h = mix(id ^ (size << 1));
    unsigned char *body = (unsigned char *)(b + 1);
    size_t n = size - sizeof *b, words = n / 8;
    uint64_t *w = (uint64_t *)body;
    for (size_t j = 0; j < words; j++) w[j] = pat(h, j);
    for (size_t k = words * 8; k < n; k++) body[k] = (unsigned char)pat(h, k);
}

/* bytes [0, upto) of the body as stamped with (id, size); 0 if intact */
static int verify_as(const hdr_t *b, uint64_t id, size_t size, size_t upto)
{
    uint64_t h = mix(id ^ (size << 1));
    const unsigned char *body = (const unsigned char *)(b + 1);
    size_t words = upto / 8;
    const uint64_t *w = (const uint64_t *)body;
    for (size_t j = 0; j < words; j++) if (w[j] != pat(h, j)) return 1;
    size_t full = (size - sizeof *b) / 8 * 8;       /* the byte tail follows stamp() */
    for (size_t k = words * 8; k < upto; k++) {
        unsigned char want = k < full ? (unsigned char)(pat(h, k / 8) >> (k % 8 * 8)) : (unsigned char)pat(h, k);
        if (body[k] != want) return 1;
    }
    return 0;
}

static void check_free(tstate_t *t, hdr_t *b)
{
    if (b == NULL) return;
    if (malloc_usable_size(b) < b->size) {
        if (atomic_fetch_add(&errors, 1) < 10)
            fprintf(stderr, "stress: block %p of %lu bytes has malloc_usable_size %zu\n", (void *)b,
                    (unsigned long)b->size, malloc_usable_size(b));
    }
    if (b->size < sizeof *b || verify_as(b, b->id, b->size, b->size - sizeof *b)) {
        if (atomic_fetch_add(&errors, 1) < 10)
            fprintf(stderr, "stress: block %p id %#lx size %lu corrupted\n", (void *)b,
                    (unsigned long)b->id, (unsigned long)b->size);
    }
    free(b);
    t->frees++;
}

/* ---- sizes and alignments --------------------------------------------------------- */

static size_t pick_size(uint64_t r)
{
    unsigned k = (unsigned)(r % 1000);
    r >>= 10;
    if (k < 700) return sizeof(hdr_t) + r % 1024;                 /* small classes */
    if (k < 950) return 1024 + r % (32 * 1024);                   /* larger small classes */
    if (k < 997) return 32 * 1024 + 1 + r % (900 * 1024);        /* medium: fallback arena */
    return (1u << 20) + r % (3u << 20);                           /* large: own mapping */
}

static size_t pick_align(uint64_t r)
{
    unsigned k = (unsigned)(r % 100);
    if (k < 1) return 2u << 20;
    return (size_t)32 << (r >> 8) % 12;                           /* 32 B .. 64 KiB */
}

/* ---- operations ----------------------------------------------------------------- */

static void publish(tstate_t *t, hdr_t *b, uint64_t r)
{
    hdr_t *old = atomic_exchange(&slots[r % nslots], b);
    check_free(t, old);
}

static hdr_t *alloc_block(tstate_t *t, uint64_t r1, uint64_t r2)
{
    size_t size = pick_size(r1);
    uint64_t id = (uint64_t)t->id << 40 | t->serial++;
    t->checksum += mix(id ^ size);
    hdr_t *b = NULL;
    unsigned how = (unsigned)(r2 % 10);
    if (how < 6) {
        b = malloc(size);
    } else if (how < 8) {
        b = calloc(1, size);
        if (b) {
            const unsigned char *p = (const unsigned char *)b;
            for (size_t i = 0; i < size; i++)
                if (p[i]) { atomic_fetch_add(&errors, 1); fprintf(stderr, "stress: calloc(%zu) byte %zu not zero\n", size, i); break; }
        }
    } else {
        size_t align = pick_align(r2 >> 8);
        void *p = NULL;
        switch ((r2 >> 4) % 3) {
        case 0: if (posix_memalign(&p, align, size) != 0) p = NULL; break;
        case 1: p = aligned_alloc(align, (size + align - 1) / align * align); break;
        default: p = memalign(align, size); break;
        }
        if (p && ((uintptr_t)p & (align - 1))) {
            atomic_fetch_add(&errors, 1);
            fprintf(stderr, "stress: block %p not aligned to %zu\n", p, align);
        }
        b = p;
    }
    if (b == NULL) {
        atomic_fetch_add(&errors, 1);
        fprintf(stderr, "stress: allocation of %zu bytes failed (errno %d)\n", size, errno);
        return NULL;
    }
    t->allocs++;
    stamp(b, id, size);
    return b;
}

static void op_realloc(tstate_t *t, uint64_t r1, uint64_t r2)
{
    hdr_t *b = atomic_exchange(&slots[r1 % nslots], NULL);
    if (b == NULL) return;
    uint64_t id = b->id;
    size_t old = b->size;
    if (verify_as(b, id, old, old - sizeof *b)) {
        atomic_fetch_add(&errors, 1);
        fprintf(stderr, "stress: block id %#lx corrupted before realloc\n", (unsigned long)id);
    }
    size_t want = (r2 & 1) ? old + old / 2 + r2 % 4096           /* grow */
                           : sizeof *b + (old - sizeof *b) / 3;   /* shrink */
    if (want > (6u << 20)) want = sizeof *b + (old - sizeof *b) / 4;
    hdr_t *nb = realloc(b, want);
    if (nb == NULL) {
        atomic_fetch_add(&errors, 1);
        fprintf(stderr, "stress: realloc to %zu failed\n", want);
        check_free(t, b);
        return;
    }
    size_t kept = (want < old ? want : old) - sizeof *b;
    if (nb->id != id || verify_as(nb, id, old, kept)) {
        atomic_fetch_add(&errors, 1);
        fprintf(stderr, "stress: realloc %zu -> %zu lost the contents of id %#lx\n", old, want, (unsigned long)id);
    }
    stamp(nb, id, want);
    publish(t, nb, r1 >> 20);
}

static void op_burst(tstate_t *t, uint64_t r1, uint64_t r2)
{
    hdr_t *local[BURST];
    for (int i = 0; i < BURST; i++) {
        uint64_t id = (uint64_t)t->id << 40 | t->serial++;
        size_t size = sizeof(hdr_t) + (size_t)((r1 >> (i * 2)) % 512) * (i % 4 == 3 ? 61 : 1);
        t->checksum += mix(id ^ size);
        local[i] = malloc(size);
        if (local[i] == NULL) { atomic_fetch_add(&errors, 1); continue; }
        t->allocs++;
        stamp(local[i], id, size);
    }
    for (int i = BURST; i > 1; i--) {            /* Fisher-Yates with the op's own numbers */
        int j = (int)((r2 >> (i * 3)) % (uint64_t)i);
        hdr_t *tmp = local[i - 1]; local[i - 1] = local[j]; local[j] = tmp;
    }
    for (int i = 0; i < BURST; i++) check_free(t, local[i]);
}

static void *thread_main(void *arg)
{
    tstate_t *t = arg;
    for (unsigned long op = 0; op < ops_per_thread; op++) {
        uint64_t kind = rnd(t) % 100, r1 = rnd(t), r2 = rnd(t);
        if (kind < 60) {
            hdr_t *b = alloc_block(t, r1, r2);
            if (b) publish(t, b, r1 >> 24);
        } else if (kind < 75) {
            op_realloc(t, r1, r2);
        } else if (kind < 85) {
            check_free(t, atomic_exchange(&slots[r1 % nslots], NULL));
        } else {
            op_burst(t, r1, r2);
        }
    }
    atomic_fetch_add(&allocs_total, t->allocs);
    atomic_fetch_add(&frees_total, t->frees);
    return NULL;
}

/* a warm-up thread: one 256 KiB block is sure to be sampled when the profiler is
 * on, so a thread that samples has already had its dynamic TLS for libunwind
 * (which the profiler dlopens) allocated and cached with its stack by glibc */
static void *idle(void *arg)
{
    void *volatile p = malloc(256 << 10);
    free(p);
    return arg;
}

static bool stats(const char *path, uint64_t *v)
{
    return nm_self_stats_json(json, sizeof json) && nm_json_u64(json, path, v);
}

int main(int argc, char **argv)
{
    unsigned nthreads = argc > 1 ? (unsigned)strtoul(argv[1], NULL, 10) : 8;
    ops_per_thread = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
    seed = argc > 3 ? strtoull(argv[3], NULL, 0) : 42;
    nslots = argc > 4 ? (unsigned)strtoul(argv[4], NULL, 10) : 8192;
    if (nthreads == 0 || nthreads > 64 || nslots == 0 || nslots > MAX_SLOTS) {
        fprintf(stderr, "usage: stress [THREADS<=64 [OPS [SEED [SLOTS<=%d]]]]\n", MAX_SLOTS);
        return 2;
    }
    /* the slots come from mmap-backed calloc either way; allocated before the
     * baseline so they are part of it */
    slots = calloc(nslots, sizeof *slots);
    tstate_t *ts = calloc(nthreads, sizeof *ts);
    pthread_t *tid = calloc(nthreads, sizeof *tid);
    if (!slots || !ts || !tid) return 1;
    setvbuf(stdout, NULL, _IONBF, 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 << 10);     /* all stacks fit glibc's stack cache */

    /* warm up: glibc caches thread stacks with their TLS (and its malloc'ed DTV), so
     * start and join as many threads as the run will use before taking the baseline */
    for (unsigned i = 0; i < nthreads; i++) if (pthread_create(&tid[i], &attr, idle, NULL) != 0) return 1;
    for (unsigned i = 0; i < nthreads; i++) pthread_join(tid[i], NULL);
    uint64_t live0 = 0;
    bool preloaded = stats("summary.live", &live0);

    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (unsigned i = 0; i < nthreads; i++) {
        ts[i].id = i + 1;
        ts[i].rng = mix(seed * 0x100000001b3ull + i + 1) | 1;
        if (pthread_create(&tid[i], &attr, thread_main, &ts[i]) != 0) { fprintf(stderr, "pthread_create failed\n"); return 1; }
    }
    for (unsigned i = 0; i < nthreads; i++) pthread_join(tid[i], NULL);
    tstate_t drain = { .id = 0 };
    for (unsigned s = 0; s < nslots; s++) check_free(&drain, atomic_exchange(&slots[s], NULL));
    clock_gettime(CLOCK_MONOTONIC, &b);

    uint64_t checksum = 0, allocs = atomic_load(&allocs_total), frees = atomic_load(&frees_total) + drain.frees;
    for (unsigned i = 0; i < nthreads; i++) checksum = checksum * 31 + ts[i].checksum;
    unsigned long errs = atomic_load(&errors);
    printf("result: threads=%u ops=%lu seed=%lu allocs=%lu frees=%lu checksum=%016lx errors=%lu\n",
           nthreads, ops_per_thread, (unsigned long)seed, (unsigned long)allocs, (unsigned long)frees,
           (unsigned long)checksum, errs);
    int rc = errs || allocs != frees ? 1 : 0;
    if (preloaded) {
        uint64_t live1 = 0, invalid = 0, foreign = 0;
        stats("summary.live", &live1);
        stats("misuse.invalid_pointers", &invalid);
        stats("misuse.foreign_frees", &foreign);
        printf("stats: live_before=%lu live_after=%lu invalid_pointers=%lu foreign_frees=%lu\n",
               (unsigned long)live0, (unsigned long)live1, (unsigned long)invalid, (unsigned long)foreign);
        if (live1 != live0 || invalid || foreign) rc = 1;
    }
    fprintf(stderr, "stress: %.2f s\n", (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9);
    free(tid);
    free(ts);
    free(slots);
    return rc;
}
