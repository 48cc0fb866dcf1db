/* tests/fault/fault_work.c — the workload of the fault-injection suite.
 *
 * Runs with LD_PRELOAD=build/libnumamalloc_fault.so (the release library for the
 * ulimit case) and is not linked with it: numamalloc_block_info and the fault
 * hook's numamalloc_fault_arm / numamalloc_fault_count are found with dlsym. Every
 * block it gets is filled with a pattern of its own and checked before it is freed
 * or reallocated; a realloc that fails must leave the old block intact; every NULL
 * must come with errno ENOMEM (posix_memalign: returns ENOMEM). tests/fault/
 * fault-test.sh chooses NUMAMALLOC_FAULT and checks the stats dump afterwards.
 * Prints "RESULT <scenario>: counts..." and "FAULTS ..." (the hook's counters);
 * "FAIL ..." for each violated check, then exits 1; exits 0 when all held.
 *
 * Scenarios (argv[1]):
 *   mix T OPS SEED [nonull]  T threads of random malloc, calloc, realloc, posix_memalign,
 *                         aligned_alloc and free over small, medium and large sizes,
 *                         blocks handed to another thread to free; nonull: memory is
 *                         never really short in this run, so any NULL is a failure
 *   outage                (mmap:p=1,wait=1) warm up, then every mmap fails: large
 *                         requests get NULL/ENOMEM, small ones are still served from
 *                         segments already mapped, free works, a new thread copes;
 *                         then faults off: everything is served again
 *   ulimit                (under RLIMIT_AS) large, medium, small blocks until NULL
 *                         each, all ENOMEM; free everything; the same again
 *   huge B[,B,B]          the 2, 4 and 6 MiB blocks must be on these backings (hugetlb,
 *                         thp, 4k); a failed hugetlb attempt gives its pages back
 *   pool1                 the pool has exactly one free page: of two blocks one gets
 *                         it, the other falls back; then two threads race for it
 *   grab                  another process takes every free page during the run, then
 *                         grabs and releases them in a loop while two threads allocate
 *   check-retry           (NUMAMALLOC_CHECK=1, mmap:nth=1,wait=1) warm up, leave a freed
 *                         large block to reclaim, arm: small blocks of one size until
 *                         the mmap of a new slab segment fails; the allocation that met
 *                         it must succeed through the reclaim-and-retry and be a whole
 *                         checked block: malloc_usable_size is the size asked for, and
 *                         writing it whole and freeing it is not misuse */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>
#include <malloc.h>

#include "numamalloc.h"

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

static int failures;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;

static void fail(const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&out_lock);
    if (failures++ < 20) {
        va_start(ap, fmt);
        fputs("FAIL fault_work: ", stdout);
        vprintf(fmt, ap);
        fputc('\n', stdout);
        va_end(ap);
        fflush(stdout);
    }
    pthread_mutex_unlock(&out_lock);
}

/* ---- the library, through dlsym ------------------------------------------------------ */
static int (*block_info)(const void *, struct numamalloc_block_info *);
static void (*fault_arm)(int);
static int (*fault_count)(const char *, unsigned long long *, unsigned long long *);

static void api_load(bool need_fault)
{
    block_info = (int (*)(const void *, struct numamalloc_block_info *))dlsym(RTLD_DEFAULT, "numamalloc_block_info");
    fault_arm = (void (*)(int))dlsym(RTLD_DEFAULT, "numamalloc_fault_arm");
    fault_count = (int (*)(const char *, unsigned long long *, unsigned long long *))dlsym(RTLD_DEFAULT, "numamalloc_fault_count");
    if (block_info == NULL) { printf("FAIL fault_work: numamalloc is not preloaded\n"); exit(2); }
    if (need_fault && (fault_arm == NULL || fault_count == NULL)) {
        printf("FAIL fault_work: this scenario needs the fault-injection build (libnumamalloc_fault.so)\n");
        exit(2);
    }
}

static const char *const classes[] = { "mmap", "hugetlb", "madvise", "mbind", "mremap" };

static unsigned long long injected_total(void)
{
    unsigned long long t = 0, c, i;
    if (fault_count == NULL) return 0;
    for (unsigned k = 0; k < 5; k++) if (fault_count(classes[k], &c, &i) == 0) t += i;
    return t;
}

static void print_faults(void)
{
    if (fault_count == NULL) { printf("FAULTS none (not the fault-injection build)\n"); return; }
    printf("FAULTS");
    for (unsigned k = 0; k < 5; k++) {
        unsigned long long c = 0, i = 0;
        fault_count(classes[k], &c, &i);
        printf(" %s=%llu/%llu", classes[k], i, c);
    }
    printf(" total=%llu\n", injected_total());
}

/* ---- patterns -------------------------------------------------------------------------- */
static uint64_t word_of(uint64_t tag, size_t i) { return tag ^ (i * 0x9e3779b97f4a7c15ull); }

/* byte i of a block is byte i % 8 of word_of(tag, i / 8), whatever the block's size:
 * a shrunk or grown block keeps the pattern of its common prefix. Past the first
 * 64 KiB only every 64th word is written and checked (8 per page: every page is
 * written and read, at a tenth of the cost over gigabytes of large blocks). Which
 * words belong depends on the index alone, so a prefix checks the same way. */
static unsigned char byte_of(uint64_t tag, size_t i) { return (unsigned char)(word_of(tag, i / 8) >> (8 * (i % 8))); }

static size_t next_word(size_t i) { return i + 1 < 8192 ? i + 1 : (i + 64) & ~(size_t)63; }
static bool in_pattern(size_t w) { return w < 8192 || w % 64 == 0; }

static void fill(void *p, size_t n, uint64_t tag)
{
    uint64_t *w = p;
    size_t nw = n / 8;
    for (size_t i = 0; i < nw; i = next_word(i)) w[i] = word_of(tag, i);
    unsigned char *b = p;
    if (in_pattern(nw)) for (size_t i = nw * 8; i < n; i++) b[i] = byte_of(tag, i);
}

/* the first n bytes still hold tag's pattern (where fill(p, m >= n, tag) wrote it) */
static bool intact(const void *p, size_t n, uint64_t tag)
{
    const uint64_t *w = p;
    size_t nw = n / 8;
    for (size_t i = 0; i < nw; i = next_word(i)) if (w[i] != word_of(tag, i)) return false;
    const unsigned char *b = p;
    if (in_pattern(nw)) for (size_t i = nw * 8; i < n; i++) if (b[i] != byte_of(tag, i)) return false;
    return true;
}

static bool all_zero(const void *p, size_t n)
{
    const uint64_t *w = p;
    size_t nw = n / 8;
    for (size_t i = 0; i < nw; i = next_word(i)) if (w[i]) return false;
    const unsigned char *b = p;
    for (size_t i = nw * 8; i < n; i++) if (b[i]) return false;
    return true;
}

typedef struct rng { uint64_t s; } rng_t;
static uint64_t rnd(rng_t *r) { r->s ^= r->s << 13; r->s ^= r->s >> 7; r->s ^= r->s << 17; return r->s; }
static size_t rnd_range(rng_t *r, size_t lo, size_t hi) { return lo + (size_t)(rnd(r) % (hi - lo + 1)); }

static unsigned long nulls_seen;              /* every NULL the allocator returned */

/* a NULL from the allocator: errno must say ENOMEM */
static void check_null(const char *what, size_t n, int err)
{
    __atomic_add_fetch(&nulls_seen, 1, __ATOMIC_RELAXED);
    if (err != ENOMEM) fail("%s(%zu) returned NULL with errno %d (%s), not ENOMEM", what, n, err, strerror(err));
}

/* ---- mix -------------------------------------------------------------------------------- */
enum { SLOTS = 48, MAILBOX = 8, MAX_THREADS = 8 };
enum { SZ_SMALL, SZ_MEDIUM, SZ_LARGE, SZ_N };
static const char *const sz_name[SZ_N] = { "small", "medium", "large" };

typedef struct blk { unsigned char *p; size_t n; uint64_t tag; } blk_t;

typedef struct mailbox {
    pthread_mutex_t lock;
    blk_t b[MAILBOX];
    int n;
} mailbox_t;

typedef struct mix_stats {
    uint64_t ops, allocs, frees, reallocs, realloc_null, handed, verified_bytes;
    uint64_t null[SZ_N], got[SZ_N];
} mix_stats_t;

static int mix_threads;
static bool mix_nonull;
static unsigned create_retries;
static mailbox_t mailboxes[MAX_THREADS];

typedef struct mix_arg { int id; long ops; uint64_t seed; mix_stats_t st; } mix_arg_t;

static int size_kind(size_t n) { return n <= 32 * KIB ? SZ_SMALL : n < MIB ? SZ_MEDIUM : SZ_LARGE; }

static size_t pick_size(rng_t *r)
{
    unsigned k = (unsigned)(rnd(r) % 100);
    if (k < 45) return rnd_range(r, 1, 512);
    if (k < 70) return rnd_range(r, 513, 32 * KIB);
    if (k < 88) return rnd_range(r, 32 * KIB + 1, MIB - 1);
    if (k < 94) return (size_t)rnd_range(r, 1, 3) * 2 * MIB;          /* whole huge pages */
    return rnd_range(r, MIB, 6 * MIB);
}

static void verify_free(blk_t *b, mix_stats_t *st)
{
    if (!intact(b->p, b->n, b->tag)) fail("block %p of %zu bytes corrupted before free", (void *)b->p, b->n);
    st->verified_bytes += b->n;
    free(b->p);
    st->frees++;
    b->p = NULL;
}

static void note_null(mix_stats_t *st, const char *what, size_t n, int err)
{
    st->null[size_kind(n)]++;
    check_null(what, n, err);
    if (mix_nonull) fail("%s(%zu) returned NULL although memory is available in this run", what, n);
}

static void mix_alloc(rng_t *r, blk_t *b, mix_stats_t *st, uint64_t tag)
{
    size_t n = pick_size(r);
    void *p = NULL;
    unsigned how = (unsigned)(rnd(r) % 10);
    errno = 0;
    if (how < 6) {
        p = malloc(n);
        if (p == NULL) { note_null(st, "malloc", n, errno); return; }
    } else if (how < 8) {
        p = calloc(1, n);
        if (p == NULL) { note_null(st, "calloc", n, errno); return; }
        if (!all_zero(p, n)) fail("calloc(%zu) = %p is not zeroed", n, p);
    } else if (how < 9) {
        size_t align = (size_t)1 << rnd_range(r, 4, 21);          /* 16 B .. 2 MiB */
        int rc = posix_memalign(&p, align, n);
        if (rc != 0) { p = NULL; note_null(st, "posix_memalign", n, rc); return; }
        if ((uintptr_t)p & (align - 1)) fail("posix_memalign(%zu, %zu) = %p misaligned", align, n, p);
    } else {
        size_t align = (size_t)1 << rnd_range(r, 6, 16);          /* 64 B .. 64 KiB */
        size_t m = (n + align - 1) & ~(align - 1);
        p = aligned_alloc(align, m);
        if (p == NULL) { note_null(st, "aligned_alloc", m, errno); return; }
        if ((uintptr_t)p & (align - 1)) fail("aligned_alloc(%zu, %zu) = %p misaligned", align, m, p);
        n = m;
    }
    if (malloc_usable_size(p) < n) fail("malloc_usable_size(%p) = %zu < %zu", p, malloc_usable_size(p), n);
    st->allocs++;
    st->got[size_kind(n)]++;
    fill(p, n, tag);
    *b = (blk_t){ p, n, tag };
}

static void mix_realloc(rng_t *r, blk_t *b, mix_stats_t *st, uint64_t tag)
{
    if (!intact(b->p, b->n, b->tag)) { fail("block %p of %zu bytes corrupted before realloc", (void *)b->p, b->n); }
    size_t n;
    if (b->n >= MIB && rnd(r) % 2) n = b->n + rnd_range(r, 0, 4 * MIB) - (b->n > 2 * MIB ? MIB : 0);   /* large stays large */
    else n = pick_size(r);
    errno = 0;
    void *q = realloc(b->p, n);
    st->reallocs++;
    if (q == NULL) {
        int err = errno;
        st->realloc_null++;
        note_null(st, "realloc", n, err);
        if (!intact(b->p, b->n, b->tag)) fail("realloc(%p, %zu) failed and the old block changed", (void *)b->p, n);
        return;
    }
    size_t keep = n < b->n ? n : b->n;
    if (!intact(q, keep, b->tag)) fail("realloc(%p, %zu -> %zu) = %p lost the contents", (void *)b->p, b->n, n, q);
    st->verified_bytes += keep;
    st->got[size_kind(n)]++;
    fill(q, n, tag);
    *b = (blk_t){ q, n, tag };
}

static void drain_mailbox(mailbox_t *m, mix_stats_t *st)
{
    blk_t tmp[MAILBOX];
    pthread_mutex_lock(&m->lock);
    int n = m->n;
    memcpy(tmp, m->b, sizeof tmp);
    m->n = 0;
    pthread_mutex_unlock(&m->lock);
    for (int i = 0; i < n; i++) verify_free(&tmp[i], st);
}

static void *mix_thread(void *arg)
{
    mix_arg_t *a = arg;
    rng_t r = { a->seed * 0x2545f4914f6cdd1dull + (uint64_t)a->id * 7919 + 1 };
    blk_t slots[SLOTS] = { 0 };
    mix_stats_t *st = &a->st;
    uint64_t tag = a->seed << 32 ^ (uint64_t)a->id << 56;
    for (long op = 0; op < a->ops; op++) {
        st->ops++;
        blk_t *b = &slots[rnd(&r) % SLOTS];
        if (rnd(&r) % 8 == 0) drain_mailbox(&mailboxes[a->id], st);
        if (b->p == NULL) { mix_alloc(&r, b, st, ++tag); continue; }
        unsigned what = (unsigned)(rnd(&r) % 100);
        if (what < 10 && mix_threads > 1) {                   /* another thread frees it */
            mailbox_t *m = &mailboxes[(a->id + 1) % mix_threads];
            pthread_mutex_lock(&m->lock);
            if (m->n < MAILBOX) { m->b[m->n++] = *b; b->p = NULL; st->handed++; }
            pthread_mutex_unlock(&m->lock);
            if (b->p == NULL) continue;
        }
        if (what < 45) mix_realloc(&r, b, st, ++tag);
        else verify_free(b, st);
    }
    for (int i = 0; i < SLOTS; i++) if (slots[i].p) verify_free(&slots[i], st);
    return NULL;
}

static int run_mix(int argc, char **argv)
{
    if (argc < 5) { fprintf(stderr, "usage: fault_work mix THREADS OPS SEED [nonull]\n"); return 2; }
    mix_threads = atoi(argv[2]);
    long ops = atol(argv[3]);
    uint64_t seed = strtoull(argv[4], NULL, 10);
    mix_nonull = argc > 5 && strcmp(argv[5], "nonull") == 0;
    if (mix_threads < 1 || mix_threads > MAX_THREADS) mix_threads = 1;
    api_load(false);
    mix_arg_t args[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    for (int i = 0; i < mix_threads; i++) {
        pthread_mutex_init(&mailboxes[i].lock, NULL);
        args[i] = (mix_arg_t){ .id = i, .ops = ops, .seed = seed };
    }
    if (mix_threads == 1) {
        mix_thread(&args[0]);
    } else {
        /* pthread_create allocates (the new thread's TLS): under faults it may fail with
         * EAGAIN, as it would when memory is short; try again, a few times */
        for (int i = 0; i < mix_threads; i++) {
            int rc = EAGAIN;
            for (int tries = 0; rc == EAGAIN && tries < 100; tries++) {
                rc = pthread_create(&th[i], NULL, mix_thread, &args[i]);
                if (rc == EAGAIN) create_retries++;
            }
            if (rc != 0) { fail("pthread_create: %s", strerror(rc)); return 1; }
        }
        for (int i = 0; i < mix_threads; i++) pthread_join(th[i], NULL);
    }
    mix_stats_t t = { 0 };
    for (int i = 0; i < mix_threads; i++) drain_mailbox(&mailboxes[i], &t);
    for (int i = 0; i < mix_threads; i++) {
        mix_stats_t *s = &args[i].st;
        t.ops += s->ops; t.allocs += s->allocs; t.frees += s->frees; t.reallocs += s->reallocs;
        t.realloc_null += s->realloc_null; t.handed += s->handed; t.verified_bytes += s->verified_bytes;
        for (int k = 0; k < SZ_N; k++) { t.null[k] += s->null[k]; t.got[k] += s->got[k]; }
    }
    printf("RESULT mix: threads=%d ops=%lu allocs=%lu reallocs=%lu frees=%lu handed=%lu verified_mib=%lu",
           mix_threads, (unsigned long)t.ops, (unsigned long)t.allocs, (unsigned long)t.reallocs,
           (unsigned long)t.frees, (unsigned long)t.handed, (unsigned long)(t.verified_bytes >> 20));
    for (int k = 0; k < SZ_N; k++) printf(" %s=%lu null_%s=%lu", sz_name[k], (unsigned long)t.got[k], sz_name[k], (unsigned long)t.null[k]);
    printf(" realloc_null=%lu create_retries=%u\n", (unsigned long)t.realloc_null, create_retries);
    if (t.frees != t.allocs) fail("%lu blocks allocated but %lu freed", (unsigned long)t.allocs, (unsigned long)t.frees);
    print_faults();
    return failures ? 1 : 0;
}

/* ---- outage: every mmap fails after start-up ------------------------------------------------ */
typedef struct outage_res { unsigned large_null, large_ok, small_ok, small_null; } outage_res_t;

/* a large block: NULL with ENOMEM (counted), or served (the caller decides if it may) */
static void outage_one(outage_res_t *o, const char *what, size_t n, void *p, int err)
{
    if (p == NULL) { check_null(what, n, err); o->large_null++; return; }
    o->large_ok++;
    fill(p, n, n);
    if (!intact(p, n, n)) fail("%s(%zu) block corrupted", what, n);
    free(p);
}

/* requests that need a fresh mapping */
static void outage_large(outage_res_t *o, void *small)
{
    static const size_t sizes[] = { 4 * MIB, 64 * MIB, 3 * MIB + 4096 };
    void *p;
    for (unsigned i = 0; i < 3; i++) {
        errno = 0;
        p = malloc(sizes[i]);
        outage_one(o, "malloc", sizes[i], p, errno);
    }
    errno = 0;
    p = calloc(1, 8 * MIB);
    if (p && !all_zero(p, 8 * MIB)) fail("calloc(8 MiB) not zeroed");
    outage_one(o, "calloc", 8 * MIB, p, errno);
    int rc = posix_memalign(&p, 2 * MIB, 4 * MIB);
    outage_one(o, "posix_memalign", 4 * MIB, rc ? NULL : p, rc);
    if (small) {
        fill(small, 100, 77);
        errno = 0;
        void *q = realloc(small, 16 * MIB);
        if (q) { fail("realloc(16 MiB) succeeded while every mmap fails"); free(q); }
        else {
            check_null("realloc", 16 * MIB, errno);
            o->large_null++;
            if (!intact(small, 100, 77)) fail("failed realloc changed the old block");
        }
    }
}

/* small blocks: served from what is mapped already, until that runs out; the table
 * is the caller's (static: a malloc'ed one might not be had) */
static void **outage_small(outage_res_t *o, void **v, unsigned want, uint64_t tag)
{
    for (unsigned i = 0; i < want; i++) {
        size_t n = 16 + (i % 64) * 16;
        errno = 0;
        v[i] = malloc(n);
        if (v[i] == NULL) { check_null("malloc", n, errno); o->small_null++; continue; }
        fill(v[i], n, tag + i);
        o->small_ok++;
    }
    for (unsigned i = 0; i < want; i++) {
        size_t n = 16 + (i % 64) * 16;
        if (v[i] && !intact(v[i], n, tag + i)) fail("small block %u corrupted", i);
    }
    return v;
}

static void free_table(void **v, unsigned n)
{
    for (unsigned i = 0; i < n; i++) { free(v[i]); v[i] = NULL; }
}

enum { WARM = 6000, SMALL = 20000 };
static void *table_main[SMALL], *table_thread[SMALL];

static void *outage_thread(void *arg)
{
    outage_res_t *o = arg;
    outage_large(o, NULL);
    free_table(outage_small(o, table_thread, 2000, 900000), 2000);
    return NULL;
}

static int run_outage(void)
{
    api_load(true);
    /* warm up: segments for the small classes used below; half of it stays live */
    static void *warm[WARM];
    for (unsigned i = 0; i < WARM; i++) { warm[i] = malloc(16 + (i % 64) * 16); fill(warm[i], 16, i); }
    for (unsigned i = 0; i < WARM; i += 2) { free(warm[i]); warm[i] = NULL; }
    void *small = malloc(100);
    void *medium = malloc(200 * KIB);

    fault_arm(1);
    outage_res_t o = { 0 };
    outage_large(&o, small);
    void **v = outage_small(&o, table_main, SMALL, 1000);
    errno = 0;
    void *m2 = malloc(300 * KIB);                   /* fallback arena: may or may not have room */
    if (m2 == NULL) check_null("malloc", 300 * KIB, errno);
    /* free works while mmap still fails; then a new thread, with some room again */
    free_table(v, SMALL);
    outage_res_t to = { 0 };
    pthread_t t;
    int rc = pthread_create(&t, NULL, outage_thread, &to);
    if (rc == 0) pthread_join(t, NULL);
    else fail("pthread_create during the outage: %s", strerror(rc));
    free(m2);
    free(medium);
    for (unsigned i = 1; i < WARM; i += 2) { if (!intact(warm[i], 16, i)) fail("warm block %u corrupted", i); free(warm[i]); }
    unsigned long long calls = 0, inj = 0;
    fault_count("mmap", &calls, &inj);
    fault_arm(0);

    /* faults off: everything is served again */
    outage_res_t after = { 0 };
    void *big = malloc(64 * MIB);
    if (big == NULL) fail("malloc(64 MiB) failed after the outage ended");
    else { fill(big, 64 * MIB, 5); if (!intact(big, 64 * MIB, 5)) fail("64 MiB block corrupted"); free(big); }
    v = outage_small(&after, table_main, SMALL, 2000);
    if (after.small_null) fail("%u small allocations failed after the outage ended", after.small_null);
    free_table(v, SMALL);
    free(small);

    printf("RESULT outage: large_null=%u small_ok=%u small_null=%u thread_large_null=%u thread_large_ok=%u "
           "thread_small_ok=%u thread_small_null=%u mmap_failed=%llu/%llu after_small_ok=%u\n", o.large_null, o.small_ok,
           o.small_null, to.large_null, to.large_ok, to.small_ok, to.small_null, inj, calls, after.small_ok);
    if (o.large_null != 6) fail("%u of 6 large requests got NULL during the outage", o.large_null);
    if (o.small_ok == 0) fail("no small block was served from the segments already mapped");
    if (o.small_null == 0) fail("%u small blocks and never a NULL: the outage did not bite", o.small_ok);
    /* the new thread: NULL/ENOMEM, or served by the start-up fallback when its cache
     * could not be set up (mimalloc maps that memory itself: the hook does not see it) */
    if (to.large_null + to.large_ok != 5) fail("the new thread made %u of 5 large requests", to.large_null + to.large_ok);
    if (inj == 0) fail("no mmap was failed (is NUMAMALLOC_FAULT=mmap:p=1,wait=1 set?)");
    print_faults();
    return failures ? 1 : 0;
}

/* ---- ulimit -v ------------------------------------------------------------------------ */
typedef struct phase { const char *name; size_t size; unsigned max; unsigned got; bool null_seen; void **v; } phase_t;

static void fill_until_null(phase_t *ph, uint64_t tag)
{
    ph->got = 0;
    ph->null_seen = false;
    for (unsigned i = 0; i < ph->max; i++) {
        errno = 0;
        void *p = malloc(ph->size);
        if (p == NULL) { check_null("malloc", ph->size, errno); ph->null_seen = true; break; }
        /* touch every page (a fill of every byte is too slow for 1 GiB of blocks) */
        for (size_t off = 0; off < ph->size; off += 4096) ((volatile unsigned char *)p)[off] = (unsigned char)(tag + i + off / 4096);
        memcpy(p, &i, sizeof i);
        ph->v[ph->got++] = p;
    }
}

static void check_free_table(phase_t *ph, uint64_t tag)
{
    for (unsigned i = 0; i < ph->got; i++) {
        unsigned char *p = ph->v[i];
        unsigned k;
        memcpy(&k, p, sizeof k);
        bool ok = k == i;
        for (size_t off = 4096; ok && off < ph->size; off += 4096) ok = p[off] == (unsigned char)(tag + i + off / 4096);
        if (!ok) fail("%s block %u corrupted", ph->name, i);
        free(p);
    }
}

static int run_ulimit(void)
{
    api_load(false);
    phase_t ph[3] = {
        { .name = "large", .size = 8 * MIB, .max = 4096 },
        { .name = "medium", .size = 128 * KIB, .max = 100000 },
        { .name = "small", .size = 1 * KIB, .max = 2000000 },
    };
    /* the tables first, outside the allocator: nothing is left for them later */
    for (int k = 0; k < 3; k++) {
        ph[k].v = mmap(NULL, ph[k].max * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (ph[k].v == MAP_FAILED) { fail("cannot map the table for %s blocks", ph[k].name); return 1; }
    }
    size_t first[3] = { 0 };
    for (int round = 0; round < 2; round++) {
        /* round 2 asks for other sizes: what round 1 left in caches must not stand in the way */
        if (round == 1) { ph[0].size = 12 * MIB; ph[1].size = 200 * KIB; ph[2].size = 2 * KIB; }
        for (int k = 0; k < 3; k++) fill_until_null(&ph[k], (uint64_t)round * 31 + (uint64_t)k);
        printf("RESULT ulimit round %d: large=%u medium=%u small=%u blocks before NULL\n", round + 1, ph[0].got, ph[1].got, ph[2].got);
        for (int k = 0; k < 3; k++) {
            if (!ph[k].null_seen) fail("round %d: %s blocks never got NULL (%u allocated)", round + 1, ph[k].name, ph[k].got);
            if (round == 0) first[k] = ph[k].got * ph[k].size;
        }
        for (int k = 2; k >= 0; k--) check_free_table(&ph[k], (uint64_t)round * 31 + (uint64_t)k);
    }
    /* everything was given back: the second round must get about as far as the first */
    size_t again = ph[0].got * ph[0].size;
    printf("RESULT ulimit: large blocks took %zu MiB in round 1, %zu MiB in round 2\n", first[0] >> 20, again >> 20);
    if (again + 16 * MIB < first[0])
        fail("after freeing everything large blocks got %zu MiB, %zu MiB in round 1", again >> 20, first[0] >> 20);
    if (ph[2].got == 0) fail("after freeing everything no small block");
    malloc_trim(0);
    void *p = malloc(8 * MIB);
    if (p == NULL) fail("malloc(8 MiB) after malloc_trim failed");
    free(p);
    return failures ? 1 : 0;
}

/* ---- hugetlb --------------------------------------------------------------------------- */
static long huge_free(void)
{
    FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "r");
    long v = -1;
    if (f) { if (fscanf(f, "%ld", &v) != 1) v = -1; fclose(f); }
    return v;
}

static int backing_of(const void *p)
{
    struct numamalloc_block_info bi;
    if (block_info(p, &bi) != 0) return -1;
    return bi.pages;
}

static const char *backing_name(int pages)
{
    switch (pages) {
    case NUMAMALLOC_PAGES_4K: return "4k";
    case NUMAMALLOC_PAGES_THP: return "thp";
    case NUMAMALLOC_PAGES_HUGETLB_2M: return "hugetlb";
    case NUMAMALLOC_PAGES_HUGETLB_1G: return "hugetlb_1g";
    default: return "unknown";
    }
}

static void *touch_block(size_t n, uint64_t tag)
{
    errno = 0;
    void *p = malloc(n);
    if (p == NULL) { fail("malloc(%zu) returned NULL (errno %d): a fallback should have served it", n, errno); return NULL; }
    fill(p, n, tag);                                 /* a SIGBUS here kills the run: that is a failure too */
    return p;
}

/* want: the backing of the 2, 4 and 6 MiB blocks, "B" or "B1,B2,B3" */
static int run_huge(const char *want)
{
    api_load(true);
    char w[3][16];
    int nw = sscanf(want, "%15[^,],%15[^,],%15s", w[0], w[1], w[2]);
    if (nw == 1) { strcpy(w[1], w[0]); strcpy(w[2], w[0]); }
    else if (nw != 3) { fail("huge: expected backing '%s' is not B or B1,B2,B3", want); return 1; }
    long before = huge_free();
    static const size_t sizes[] = { 2 * MIB, 4 * MIB, 6 * MIB };
    void *p[3];
    long pages_taken = 0;
    for (unsigned i = 0; i < 3; i++) {
        p[i] = touch_block(sizes[i], 100 + i);
        if (p[i] == NULL) continue;
        const char *got = backing_name(backing_of(p[i]));
        printf("INFO huge: %zu MiB block on %s (free hugetlb pages now %ld)\n", sizes[i] >> 20, got, huge_free());
        if (strcmp(got, w[i]) != 0) fail("%zu MiB block on %s, expected %s", sizes[i] >> 20, got, w[i]);
        if (strcmp(got, "hugetlb") == 0) pages_taken += (long)(sizes[i] / (2 * MIB));
    }
    long during = huge_free();
    /* a failed hugetlb attempt must give its pages back */
    if (during != before - pages_taken)
        fail("free_hugepages %ld before, %ld with the blocks live, which hold %ld pages", before, during, pages_taken);
    for (unsigned i = 0; i < 3; i++) {
        if (p[i] && !intact(p[i], sizes[i], 100 + i)) fail("%zu MiB block corrupted", sizes[i] >> 20);
        free(p[i]);
    }
    long after = huge_free();
    if (after != before) fail("free_hugepages %ld before, %ld after everything was freed", before, after);
    printf("RESULT huge %s: free_hugepages before=%ld live=%ld after=%ld\n", want, before, during, after);
    print_faults();
    return failures ? 1 : 0;
}

static pthread_barrier_t bar;
typedef struct racer { int round_pages[16]; void *p; int rounds; uint64_t tag; } racer_t;

static void *pool_racer(void *arg)
{
    racer_t *r = arg;
    for (int i = 0; i < r->rounds; i++) {
        pthread_barrier_wait(&bar);
        r->p = touch_block(2 * MIB, r->tag + (uint64_t)i);
        r->round_pages[i] = r->p ? backing_of(r->p) : -1;
        pthread_barrier_wait(&bar);                  /* both blocks live: main counts */
        pthread_barrier_wait(&bar);
        if (r->p && !intact(r->p, 2 * MIB, r->tag + (uint64_t)i)) fail("racer block corrupted");
        free(r->p);
        r->p = NULL;
    }
    return NULL;
}

static int run_pool1(void)
{
    api_load(false);
    if (huge_free() != 1) { fail("pool1 needs exactly one free hugetlb page, found %ld", huge_free()); return 1; }
    /* two requests, one page: the first gets it, the second falls back */
    void *a = touch_block(2 * MIB, 1), *b = touch_block(2 * MIB, 2);
    int ba = a ? backing_of(a) : -1, bb = b ? backing_of(b) : -1;
    printf("INFO pool1: first block %s, second %s, free pages %ld\n", backing_name(ba), backing_name(bb), huge_free());
    if (ba != NUMAMALLOC_PAGES_HUGETLB_2M) fail("first 2 MiB block not on the one free hugetlb page (%s)", backing_name(ba));
    if (bb == NUMAMALLOC_PAGES_HUGETLB_2M || bb < 0) fail("second 2 MiB block on %s with no free page left", backing_name(bb));
    if (a && !intact(a, 2 * MIB, 1)) fail("first block corrupted");
    free(a);
    void *c = touch_block(2 * MIB, 3);               /* the page is back in the pool */
    int bc = c ? backing_of(c) : -1;
    if (bc != NUMAMALLOC_PAGES_HUGETLB_2M) fail("after the free, a 2 MiB block is on %s, not the freed page", backing_name(bc));
    if (b && !intact(b, 2 * MIB, 2)) fail("second block corrupted");
    if (c && !intact(c, 2 * MIB, 3)) fail("third block corrupted");
    free(b);
    free(c);

    /* two threads ask at the same moment, five times: exactly one wins each time */
    enum { ROUNDS = 5 };
    racer_t r[2] = { { .rounds = ROUNDS, .tag = 1000 }, { .rounds = ROUNDS, .tag = 2000 } };
    pthread_t t[2];
    pthread_barrier_init(&bar, NULL, 3);
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, pool_racer, &r[i]);
    int wins = 0;
    for (int i = 0; i < ROUNDS; i++) {
        pthread_barrier_wait(&bar);
        pthread_barrier_wait(&bar);
        int h = (r[0].round_pages[i] == NUMAMALLOC_PAGES_HUGETLB_2M) + (r[1].round_pages[i] == NUMAMALLOC_PAGES_HUGETLB_2M);
        if (h != 1) fail("round %d: %d of 2 concurrent blocks on the one hugetlb page (%s, %s)", i + 1, h,
                         backing_name(r[0].round_pages[i]), backing_name(r[1].round_pages[i]));
        wins += h;
        pthread_barrier_wait(&bar);
    }
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    printf("RESULT pool1: sequential %s/%s/%s; concurrent: %d hugetlb of %d blocks; free pages at end %ld\n",
           backing_name(ba), backing_name(bb), backing_name(bc), wins, 2 * ROUNDS, huge_free());
    if (huge_free() != 1) fail("the page did not come back: %ld free", huge_free());
    return failures ? 1 : 0;
}

/* the other process: take every free page and hold it until told to go */
static void grab_hold(int ready_fd, int go_fd)
{
    long n = huge_free();
    char *m = n > 0 ? mmap(NULL, (size_t)n * 2 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0) : MAP_FAILED;
    if (m != MAP_FAILED) for (long i = 0; i < n; i++) m[(size_t)i * 2 * MIB] = 1;
    char c = m != MAP_FAILED ? 'g' : 'x';
    if (write(ready_fd, &c, 1) != 1) _exit(1);
    if (read(go_fd, &c, 1) < 0) _exit(1);
    _exit(0);
}

/* ... and in a loop: grab what is free, hold it a moment, give it back */
static void grab_loop(volatile int *stop, volatile long *grabs)
{
    while (!*stop) {
        long n = huge_free();
        if (n > 0) {
            char *m = mmap(NULL, (size_t)n * 2 * MIB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
            if (m != MAP_FAILED) {
                for (long i = 0; i < n; i++) m[(size_t)i * 2 * MIB] = 1;
                (*grabs)++;
                usleep(300);
                munmap(m, (size_t)n * 2 * MIB);
            }
        }
        usleep(100);
    }
    _exit(0);
}

typedef struct grabber_arg { int id; unsigned blocks, huge; } grabber_arg_t;

static void *grab_worker(void *arg)
{
    grabber_arg_t *g = arg;
    rng_t r = { 0x9e3779b97f4a7c15ull * (uint64_t)(g->id + 1) };
    for (unsigned i = 0; i < 60; i++) {
        size_t n = (size_t)rnd_range(&r, 1, 2) * 2 * MIB;
        void *p = touch_block(n, (uint64_t)g->id << 20 | i);
        if (p == NULL) continue;
        g->blocks++;
        g->huge += backing_of(p) == NUMAMALLOC_PAGES_HUGETLB_2M;
        if (!intact(p, n, (uint64_t)g->id << 20 | i)) fail("block corrupted while the pool changed hands");
        free(p);
    }
    return NULL;
}

static int run_grab(void)
{
    api_load(false);
    long start = huge_free();
    if (start < 2) { fail("grab needs at least two free hugetlb pages, found %ld", start); return 1; }
    void *a = touch_block(2 * MIB, 1);
    int ba = a ? backing_of(a) : -1;
    if (ba != NUMAMALLOC_PAGES_HUGETLB_2M) fail("first block on %s with %ld free pages", backing_name(ba), start);

    int ready[2], go[2];
    if (pipe(ready) || pipe(go)) { fail("pipe"); return 1; }
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) { close(ready[0]); close(go[1]); grab_hold(ready[1], go[0]); }
    close(ready[1]);
    close(go[0]);
    char c = 0;
    if (read(ready[0], &c, 1) != 1 || c != 'g') fail("the other process could not take the pool");
    long held = huge_free();
    /* the pool is empty now: new blocks fall back, and growing the hugetlb block moves it */
    void *b = touch_block(4 * MIB, 2);
    int bb = b ? backing_of(b) : -1;
    if (a) fill(a, 2 * MIB, 1);
    errno = 0;
    void *a2 = a ? realloc(a, 4 * MIB) : NULL;
    int ba2 = -1;
    if (a && a2 == NULL) fail("realloc of the hugetlb block to 4 MiB failed (errno %d)", errno);
    if (a2) {
        ba2 = backing_of(a2);
        if (!intact(a2, 2 * MIB, 1)) fail("realloc'd block lost its contents");
        fill(a2, 4 * MIB, 11);
    }
    printf("INFO grab: pool taken by pid %d (free %ld): 4 MiB block on %s, hugetlb block grown to %s\n",
           (int)pid, held, backing_name(bb), backing_name(ba2));
    if (held != 0) fail("the other process left %ld free pages", held);
    if (bb == NUMAMALLOC_PAGES_HUGETLB_2M || bb < 0) fail("4 MiB block on %s with an empty pool", backing_name(bb));
    if (a2 && ba2 == NUMAMALLOC_PAGES_HUGETLB_2M) fail("grown block on hugetlb pages with an empty pool");
    if (write(go[1], "q", 1) != 1) fail("cannot release the other process");
    int status = 0;
    waitpid(pid, &status, 0);
    close(ready[0]);
    close(go[1]);
    /* the pages are back: hugetlb again */
    void *cb = touch_block(2 * MIB, 3);
    int bc = cb ? backing_of(cb) : -1;
    if (bc != NUMAMALLOC_PAGES_HUGETLB_2M) fail("after the pool came back a 2 MiB block is on %s", backing_name(bc));
    if (b && !intact(b, 4 * MIB, 2)) fail("4 MiB block corrupted");
    if (a2 && !intact(a2, 4 * MIB, 11)) fail("grown block corrupted");
    if (cb && !intact(cb, 2 * MIB, 3)) fail("last block corrupted");
    free(a2);
    free(b);
    free(cb);

    /* a process grabs and releases the pool in a loop while two threads allocate */
    volatile int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) { fail("mmap shared"); return 1; }
    volatile long *grabs = (volatile long *)(shared + 16);
    fflush(stdout);
    pid = fork();
    if (pid == 0) grab_loop(shared, grabs);
    grabber_arg_t g[2] = { { .id = 0 }, { .id = 1 } };
    pthread_t t[2];
    for (int i = 0; i < 2; i++) pthread_create(&t[i], NULL, grab_worker, &g[i]);
    for (int i = 0; i < 2; i++) pthread_join(t[i], NULL);
    *shared = 1;
    waitpid(pid, &status, 0);
    printf("RESULT grab: held pool -> %s/%s, back -> %s; race: %u blocks, %u on hugetlb, the other process took the pool %ld times; free pages %ld -> %ld\n",
           backing_name(bb), backing_name(ba2), backing_name(bc), g[0].blocks + g[1].blocks, g[0].huge + g[1].huge,
           *grabs, start, huge_free());
    if (g[0].blocks + g[1].blocks != 120) fail("%u of 120 blocks allocated during the race", g[0].blocks + g[1].blocks);
    if (huge_free() != start) fail("free pages %ld at the start, %ld at the end", start, huge_free());
    return failures ? 1 : 0;
}

/* ---- check-retry ----------------------------------------------------------------------- */
enum { RETRY_MAX = 4096 };
static const size_t retry_size = 20000;       /* a slab class: segments fill in ~200 blocks */

static int run_check_retry(void)
{
    api_load(true);
    /* something for the reclaim to give back: a freed large mapping (cached, or kept
     * by this thread), and small blocks of another class */
    void *big = malloc(8 * MIB);
    if (big == NULL) { fail("malloc(8 MiB) failed before any fault"); return 1; }
    fill(big, 8 * MIB, 1);
    free(big);
    for (unsigned i = 0; i < 64; i++) free(malloc(100 + i));

    static void *v[RETRY_MAX];
    unsigned n = 0, at = RETRY_MAX;
    unsigned long long calls = 0, inj = 0;
    fault_arm(1);
    for (; n < RETRY_MAX; n++) {
        errno = 0;
        v[n] = malloc(retry_size);
        int err = errno;
        fault_count("mmap", &calls, &inj);
        if (inj) { at = n; if (v[n] == NULL) check_null("malloc", retry_size, err); break; }
        if (v[n] == NULL) { fail("malloc(%zu) #%u returned NULL before any fault", retry_size, n); break; }
        fill(v[n], retry_size, n);
    }
    fault_arm(0);
    size_t usable = 0;
    if (at == RETRY_MAX) {
        fail("%u blocks of %zu bytes and no mmap was failed (is NUMAMALLOC_FAULT=mmap:nth=1,wait=1 set?)", n, retry_size);
    } else if (v[at] == NULL) {
        fail("malloc(%zu) #%u returned NULL: the reclaim after the failed segment mmap did not retry", retry_size, at);
    } else {
        usable = malloc_usable_size(v[at]);
        printf("RESULT check-retry: block #%u met the failed mmap (%llu mmap calls since arming): malloc_usable_size %zu "
               "of %zu\n", at, calls, usable, retry_size);
        if (usable != retry_size)
            fail("malloc(%zu) served after the failed mmap: malloc_usable_size %zu, not %zu", retry_size, usable, retry_size);
        fill(v[at], retry_size, at);             /* the whole block it asked for */
        if (!intact(v[at], retry_size, at)) fail("block #%u does not hold its contents", at);
        n = at + 1;
    }
    for (unsigned i = 0; i < n; i++) {
        if (v[i] == NULL) continue;
        if (!intact(v[i], retry_size, i)) fail("block #%u corrupted", i);
        free(v[i]);                               /* check mode: a misread size aborts here */
    }
    /* and the class keeps working */
    void *q = malloc(retry_size);
    if (q == NULL || malloc_usable_size(q) != retry_size) fail("malloc(%zu) after the retry: %p, usable %zu", retry_size,
                                                              q, q ? malloc_usable_size(q) : 0);
    free(q);
    print_faults();
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *s = argc > 1 ? argv[1] : "";
    int rc = 2;
    if (!strcmp(s, "mix")) rc = run_mix(argc, argv);
    else if (!strcmp(s, "outage")) rc = run_outage();
    else if (!strcmp(s, "ulimit")) rc = run_ulimit();
    else if (!strcmp(s, "huge") && argc > 2) rc = run_huge(argv[2]);
    else if (!strcmp(s, "pool1")) rc = run_pool1();
    else if (!strcmp(s, "grab")) rc = run_grab();
    else if (!strcmp(s, "check-retry")) rc = run_check_retry();
    else { fprintf(stderr, "usage: fault_work mix|outage|ulimit|huge BACKING|pool1|grab|check-retry ...\n"); return 2; }
    printf("NULLS %lu\n", nulls_seen);
    return rc;
}
