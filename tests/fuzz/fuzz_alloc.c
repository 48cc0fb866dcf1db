/* tests/fuzz/fuzz_alloc.c — libFuzzer target: random operation sequences on the whole
 * malloc family, every block checked, across 1-4 threads with blocks handed between them.
 *
 * HOW INPUT BYTES DECODE. Every byte string is a valid program; bytes missing at the end
 * read as 0.
 *   byte 0      threads = 1 + (b & 3); the differential replay forces 1
 *   then operations, each an op byte followed by its arguments:
 *   op byte     kind = b & 15, thread = (b >> 4 & 3) mod threads, variant v = b >> 6
 *   slot        one byte s: slot = s & 15 (16 block slots per thread), hi = s >> 4
 *   size        three bytes: selector c, then u = 16 bits little-endian; by c & 7:
 *               0: u % 65   1: u % 1025   2: u % 32769 (small)
 *               3: an edge (size classes, 32K, 1M large threshold, 2M/4M, ...) + (c >> 3) - 16
 *               4: 32K + 15u (medium, to 1M)   5: 1M + 48u (large, to 4M)
 *               6: 4M + 4K (u % 7169) + (c >> 3) (big, to 32M)   7: 4K (u % 1025) (whole pages)
 *               v == 3 on malloc/calloc/realloc/aligned/valloc: a size > PTRDIFF_MAX instead
 *               (table HUGE[u % 6]), which must fail with ENOMEM
 *   align       one byte a: a & 31 < 24: 1 << (a & 31) (1 B .. 8 MiB); 24..31: odd ones
 *               ODD_ALIGN[] (0, 24, 48, 100, 4097, 3M+1, 2^62+1, 2^41); a & 32: size := alignment
 *               (the 256/512/1024-with-size-equal-alignment shape mimalloc 2.0.9 misaligns, and larger)
 *   kind  arguments           call
 *    0    slot size           malloc
 *    1    slot size           calloc(1 + hi, size / (1 + hi)); v2: product > PTRDIFF_MAX, v3: overflows
 *    2    slot size           realloc (of the slot's block, or NULL); size 0 frees
 *    3    slot size           reallocarray(p, 1 + hi, size / (1 + hi)); v2 > PTRDIFF_MAX, v3 overflow
 *    4    slot align size     posix_memalign (bad alignments: EINVAL, output untouched)
 *    5    slot align size     aligned_alloc (non-power of two: EINVAL under numamalloc, DR 460)
 *    6    slot align size     memalign (non-powers of two round up)
 *    7    slot size           valloc; v odd: pvalloc
 *    8    slot                free; v1: free(NULL)
 *    9    slot                free_sized(p, size asked), free_aligned_sized(p, alignment, size)
 *                             for a block of the aligned family (free where glibc has neither)
 *   10    slot                realloc(p, 0) (v < 2) or reallocarray(p, 0, 1 + hi): frees
 *   11    slot                malloc_usable_size: unchanged, whole usable size rewritten; v1: of
 *                             NULL; v2: malloc_trim(0) (caches flushed while blocks live)
 *   12    slot                hand the block to thread hi mod threads (its mailbox, 32 deep)
 *   13    slot                take a block from this thread's mailbox into the slot (v1: oldest)
 *   14    slot delta          realloc relative: v0 + 4K delta + 1, v1 - 64 delta, v2 + delta, v3 x1.5 + delta
 *   15    size count          batch: 1 + (count & 63) blocks of one size, then all freed
 *                             (v0 newest first, v1 oldest first, v2 calloc'ed, v3 free_sized)
 * An allocation into an occupied slot frees the old block first. Threads run their own
 * operations concurrently (started together at a barrier); at the end the calling thread
 * frees what every thread left, so frees cross threads, some after the owner has exited.
 *
 * CHECKS (any violation prints what and where, then abort(): libFuzzer records a crash)
 *   - every block: aligned (16; the requested alignment; the page for valloc), usable size
 *     >= requested and the whole usable size writable, no overlap with this thread's other
 *     live blocks; calloc blocks zero; under numamalloc, numamalloc_block_info knows the
 *     block with the same usable size and the kind its size implies (<= 32K: slab,
 *     >= LARGE_THRESHOLD: large or huge)
 *   - every block is filled with a pattern derived from its id, checked over the whole
 *     usable size before every realloc and free, on handover, at the end; realloc keeps
 *     min(old, new) requested bytes; malloc_usable_size is stable
 *   - failures: sizes > PTRDIFF_MAX and overflowing products give NULL with ENOMEM and
 *     leave a realloc'ed block intact; bad posix_memalign alignments EINVAL, output
 *     untouched; memalign rounds up, EINVAL only above 2^63, ENOMEM for what cannot be
 *     mapped; realloc(p, 0) frees and returns NULL; malloc_usable_size(NULL) is 0; free
 *     never changes errno (numamalloc(3), glibc since 2.33)
 *   - numamalloc only (numamalloc(3)): posix_memalign never changes errno;
 *     aligned_alloc with a non-power of two fails with EINVAL; pvalloc gives whole pages
 * MEMORY stays bounded: at most 64 MiB live and 64 MiB written per input (8 MiB in the
 * differential test); past either, sizes above 64K shrink to their low 16 bits.
 * The same engine runs single-threaded with a transcript for the differential test
 * against glibc (tests/fuzz/replay.c). */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "numamalloc.h"
#include "fuzz/nmf.h"

/* not declared by glibc 2.36 */
typedef void (*free_sized_fn)(void *, size_t);
typedef void (*free_aligned_sized_fn)(void *, size_t, size_t);
typedef int (*block_info_fn)(const void *, struct numamalloc_block_info *);

#define NSLOT    16
#define NTHREAD  4
#define BOX_CAP  32
#define BATCH    64
#define LIVE_MAX ((size_t)64 << 20)
#define SMALL_MAX 32768

enum { OP_MALLOC, OP_CALLOC, OP_REALLOC, OP_REALLOCARRAY, OP_POSIX_MEMALIGN, OP_ALIGNED_ALLOC,
       OP_MEMALIGN, OP_VALLOC, OP_FREE, OP_FREE_SIZED, OP_FREE_REALLOC0, OP_USABLE, OP_HANDOFF,
       OP_TAKE, OP_RESIZE, OP_BATCH };
static const char *const op_name[16] = {
    "malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign",
    "valloc", "free", "free_sized", "free_realloc0", "usable", "handoff", "take", "resize", "batch",
};

static const size_t EDGE[] = {
    0, 1, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 2048, 3072, 4096, 8192, 12288, 16384,
    24576, 32768, 65536, 131072, 262144, 524288, (size_t)1 << 20, (size_t)2 << 20,
    (size_t)4 << 20, ((size_t)1 << 20) + 4096, (size_t)3 << 20, 4000, 40000,
};
static const size_t HUGE[] = {
    (size_t)PTRDIFF_MAX + 1, SIZE_MAX, SIZE_MAX - 4095, SIZE_MAX - 15,
    (size_t)PTRDIFF_MAX + 65536, SIZE_MAX / 2 + 12345,
};
static const size_t ODD_ALIGN[8] = {
    0, 24, 48, 100, 4097, ((size_t)3 << 20) + 1, ((size_t)1 << 62) + 1, (size_t)1 << 41,
};
#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- decoded operations --------------------------------------------------------------- */

typedef struct {
    uint8_t  kind, var, thread, slot, hi, abyte, count;
    uint16_t u;          /* the size's raw 16 bits (indexes HUGE[]) */
    size_t   size;
} op_t;

typedef struct { const uint8_t *d; size_t n, i; } rd_t;

static uint8_t rd8(rd_t *r)
{
    uint8_t b = r->i < r->n ? r->d[r->i] : 0;
    r->i++;
    return b;
}

static size_t dec_size(uint8_t c, uint16_t u)
{
    int d = (int)(c >> 3) - 16;
    switch (c & 7) {
    case 0: return u % 65;
    case 1: return u % 1025;
    case 2: return u % 32769;
    case 3: {
        size_t e = EDGE[u % NELEM(EDGE)];
        return d < 0 && e < (size_t)-d ? e : e + (size_t)(ptrdiff_t)d;
    }
    case 4: return 32768 + (size_t)u * 15;
    case 5: return ((size_t)1 << 20) + (size_t)u * 48;
    case 6: return ((size_t)4 << 20) + (size_t)(u % 7169) * 4096 + (c >> 3);
    default: return (size_t)(u % 1025) * 4096;
    }
}

static void rd_size(rd_t *r, op_t *o)
{
    uint8_t c = rd8(r);
    uint8_t lo = rd8(r);
    uint8_t hi = rd8(r);
    o->u = (uint16_t)(lo | hi << 8);
    o->size = dec_size(c, o->u);
}

static void rd_slot(rd_t *r, op_t *o)
{
    uint8_t s = rd8(r);
    o->slot = s & 15;
    o->hi = s >> 4;
}

static size_t decode(const uint8_t *data, size_t size, unsigned nthreads, op_t *ops)
{
    rd_t r = { data, size, 1 };
    size_t n = 0;
    while (r.i < r.n) {
        uint8_t b = rd8(&r);
        op_t *o = &ops[n++];
        memset(o, 0, sizeof(*o));
        o->kind = b & 15;
        o->thread = (uint8_t)(((b >> 4) & 3) % nthreads);
        o->var = b >> 6;
        switch (o->kind) {
        case OP_MALLOC: case OP_CALLOC: case OP_REALLOC: case OP_REALLOCARRAY: case OP_VALLOC:
            rd_slot(&r, o);
            rd_size(&r, o);
            break;
        case OP_POSIX_MEMALIGN: case OP_ALIGNED_ALLOC: case OP_MEMALIGN:
            rd_slot(&r, o);
            o->abyte = rd8(&r);
            rd_size(&r, o);
            break;
        case OP_RESIZE:
            rd_slot(&r, o);
            o->count = rd8(&r);
            break;
        case OP_BATCH:
            rd_size(&r, o);
            o->count = rd8(&r);
            break;
        default:
            rd_slot(&r, o);
            break;
        }
    }
    return n;
}

/* ---- the process: numamalloc or not -------------------------------------------------- */

static free_sized_fn         fn_free_sized;
static free_aligned_sized_fn fn_free_aligned_sized;
static block_info_fn         fn_block_info;
static size_t                large_threshold = (size_t)1 << 20;
/* NUMAMALLOC_CHECK=1 gives every block a spare byte for its canary: a request that
 * fills the largest small class (32 KiB) becomes a medium block */
static size_t                slab_max = SMALL_MAX;
static size_t                page_size = 4096;

static _Atomic unsigned long st_runs, st_ops, st_blocks, st_kind[5];

static size_t parse_size(const char *s)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    switch (*end) {
    case 'k': case 'K': v <<= 10; break;
    case 'm': case 'M': v <<= 20; break;
    case 'g': case 'G': v <<= 30; break;
    default: break;
    }
    return (size_t)v;
}

bool nmf_setup(void)
{
    fn_free_sized = (free_sized_fn)dlsym(RTLD_DEFAULT, "free_sized");
    fn_free_aligned_sized = (free_aligned_sized_fn)dlsym(RTLD_DEFAULT, "free_aligned_sized");
    fn_block_info = (block_info_fn)dlsym(RTLD_DEFAULT, "numamalloc_block_info");
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    if (fn_block_info) {
        const char *(*opt)(const char *) = (const char *(*)(const char *))dlsym(RTLD_DEFAULT, "numamalloc_option_get");
        const char *t = opt ? opt("LARGE_THRESHOLD") : NULL;
        if (t && parse_size(t)) large_threshold = parse_size(t);
        const char *c = opt ? opt("CHECK") : NULL;
        if (c && strcmp(c, "1") == 0) slab_max = SMALL_MAX - 1;
    }
    return fn_block_info != NULL;
}

void nmf_summary(FILE *f)
{
    fprintf(f, "nmf: %lu inputs, %lu operations, %lu blocks verified by numamalloc_block_info "
            "(slab %lu, large %lu, huge %lu, arena %lu)\n",
            st_runs, st_ops, st_blocks, st_kind[NUMAMALLOC_KIND_SLAB], st_kind[NUMAMALLOC_KIND_LARGE],
            st_kind[NUMAMALLOC_KIND_HUGE], st_kind[NUMAMALLOC_KIND_ARENA]);
}

/* ---- state of one run ------------------------------------------------------------------ */

typedef struct {
    unsigned char *p;
    size_t   req;            /* bytes asked for */
    size_t   usable;         /* malloc_usable_size when allocated */
    size_t   align;          /* alignment asked for; 0: the default */
    uint64_t id;             /* the fill pattern's seed */
} blk_t;

typedef struct run run_t;

typedef struct {
    run_t    *run;
    unsigned  tid;
    blk_t     slot[NSLOT];
    uint64_t  seq;
    size_t   *idx;           /* this thread's operations, by index into run->ops */
    size_t    nidx;
    size_t    cur;           /* the operation running (for messages) */
    pthread_t th;
} thr_t;

struct run {
    unsigned          nthreads;
    bool              single;
    nmf_transcript_t *tr;
    const op_t       *ops;
    thr_t             thr[NTHREAD];
    struct {
        pthread_mutex_t mu;
        blk_t           b[BOX_CAP];
        unsigned        n;
    } box[NTHREAD];
    _Atomic size_t    live, touched;
    size_t            touch_max;
    pthread_barrier_t start;
};

static _Noreturn void failf(const thr_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static _Noreturn void failf(const thr_t *t, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const op_t *o = t->cur != SIZE_MAX ? &t->run->ops[t->cur] : NULL;
    fprintf(stderr, "nmf: FAIL thread %u of %u, operation %zd (%s, variant %u, slot %u): %s\n",
            t->tid, t->run->nthreads, t->cur == SIZE_MAX ? (ssize_t)-1 : (ssize_t)t->cur,
            o ? op_name[o->kind] : "cleanup", o ? o->var : 0, o ? o->slot : 0, msg);
    abort();
}

static void trf(const thr_t *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void trf(const thr_t *t, const char *fmt, ...)
{
    nmf_transcript_t *tr = t->run->tr;
    if (tr == NULL) return;
    char line[256];
    int k = snprintf(line, sizeof(line), "%lu.%zd ", tr->seq, t->cur == SIZE_MAX ? (ssize_t)-1 : (ssize_t)t->cur);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line + k, sizeof(line) - (size_t)k - 1, fmt, ap);
    va_end(ap);
    size_t len = strlen(line);
    line[len++] = '\n';
    line[len] = 0;
    for (size_t i = 0; i < len; i++) tr->hash = (tr->hash ^ (unsigned char)line[i]) * 0x100000001b3ull;
    tr->lines++;
    if (tr->out) fputs(line, tr->out);
}

/* ---- fill patterns and checksums ------------------------------------------------------- */

/* The loops below touch every byte of every block: libFuzzer's compare tracing in them
 * would cost more than the allocator, and their branches say nothing about it (kept out
 * of line: inlined, they would be instrumented as part of the caller). */
#if defined(__clang__)
#define NMF_NOCOV __attribute__((no_sanitize("coverage"), noinline))
#else
#define NMF_NOCOV
#endif

/* word w of block id's pattern: a per-block start plus w steps of an odd constant, so
 * every word of every block differs and fill and check run at memory speed */
#define PAT_STEP 0x9e3779b97f4a7c15ull
static inline uint64_t pat_seed(uint64_t id) { uint64_t x = (id + 1) * 0xbf58476d1ce4e5b9ull; return x ^ x >> 31; }
static inline uint64_t pat_word(uint64_t id, size_t w) { return pat_seed(id) + (uint64_t)w * PAT_STEP; }
static inline uint8_t pat_byte(uint64_t id, size_t i) { return (uint8_t)(pat_word(id, i >> 3) >> ((i & 7) * 8)); }

NMF_NOCOV static void fill(unsigned char *p, size_t from, size_t to, uint64_t id)
{
    size_t i = from;
    for (; i < to && (i & 7); i++) p[i] = pat_byte(id, i);
    uint64_t x = pat_word(id, i >> 3);
    for (; i + 8 <= to; i += 8, x += PAT_STEP) memcpy(p + i, &x, 8);
    for (; i < to; i++) p[i] = pat_byte(id, i);
}

/* first offset in [from, to) not holding the pattern, or SIZE_MAX */
NMF_NOCOV static size_t check_pat(const unsigned char *p, size_t from, size_t to, uint64_t id)
{
    size_t i = from;
    for (; i < to && (i & 7); i++) if (p[i] != pat_byte(id, i)) return i;
    uint64_t x = pat_word(id, i >> 3), bad = 0;
    size_t start = i;
    for (; i + 8 <= to; i += 8, x += PAT_STEP) {     /* branch-free body; locate after */
        uint64_t w;
        memcpy(&w, p + i, 8);
        bad |= w ^ x;
    }
    if (bad)                                         /* some byte in [start, i) differs */
        for (i = start; ; i++) if (p[i] != pat_byte(id, i)) return i;
    for (; i < to; i++) if (p[i] != pat_byte(id, i)) return i;
    return SIZE_MAX;
}

NMF_NOCOV static size_t check_zero(const unsigned char *p, size_t n)
{
    uint64_t any = 0;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        any |= w;
    }
    for (; i < n; i++) any |= p[i];
    if (any) for (i = 0; i < n; i++) if (p[i]) return i;
    return SIZE_MAX;
}

NMF_NOCOV static uint64_t csum(const unsigned char *p, size_t n)
{
    uint64_t h = n * 0x9e3779b97f4a7c15ull;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        h = ((h << 7) | (h >> 57)) ^ w;
    }
    for (; i < n; i++) h = ((h << 7) | (h >> 57)) ^ p[i];
    h ^= h >> 33;
    return h * 0xff51afd7ed558ccdull;
}

/* ---- block checks ------------------------------------------------------------------------ */

static bool is_pow2(size_t x) { return x && !(x & (x - 1)); }

static size_t next_pow2(size_t x)
{
    size_t a = 1;
    while (a < x) a <<= 1;
    return a;
}

static void verify_pattern(const thr_t *t, const blk_t *b, size_t upto, const char *when)
{
    size_t off = check_pat(b->p, 0, upto, b->id);
    if (off != SIZE_MAX)
        failf(t, "%s: block %p (id %#" PRIx64 ", %zu bytes asked, usable %zu) corrupted at offset %zu: "
              "0x%02x, expected 0x%02x", when, (void *)b->p, b->id, b->req, b->usable, off, b->p[off],
              pat_byte(b->id, off));
}

/* numamalloc's own view of a block: known, same usable size, the kind its size implies */
static void verify_owner(const thr_t *t, const blk_t *b)
{
    if (fn_block_info == NULL) return;
    struct numamalloc_block_info bi;
    if (fn_block_info(b->p, &bi) != 0)
        failf(t, "numamalloc_block_info(%p) fails: block of %zu bytes not served by numamalloc", (void *)b->p, b->req);
    if (bi.usable_size != b->usable)
        failf(t, "block %p: numamalloc_block_info usable %zu, malloc_usable_size %zu", (void *)b->p, bi.usable_size, b->usable);
    if (bi.kind < NUMAMALLOC_KIND_SLAB || bi.kind > NUMAMALLOC_KIND_ARENA)
        failf(t, "block %p: kind %d", (void *)b->p, bi.kind);
    if (b->req <= slab_max && b->align <= 16 && bi.kind != NUMAMALLOC_KIND_SLAB)
        failf(t, "block %p of %zu bytes: kind %d, expected a slab block", (void *)b->p, b->req, bi.kind);
    if (b->req >= large_threshold && bi.kind != NUMAMALLOC_KIND_LARGE && bi.kind != NUMAMALLOC_KIND_HUGE)
        failf(t, "block %p of %zu bytes (>= LARGE_THRESHOLD %zu): kind %d, expected large or huge",
              (void *)b->p, b->req, large_threshold, bi.kind);
    st_blocks++;
    st_kind[bi.kind]++;
}

static void verify_no_overlap(const thr_t *t, const unsigned char *p, size_t usable, const blk_t *skip,
                              const blk_t *extra, size_t nextra)
{
    for (unsigned s = 0; s < NSLOT + nextra; s++) {
        const blk_t *o = s < NSLOT ? &t->slot[s] : &extra[s - NSLOT];
        if (o->p == NULL || o == skip) continue;
        if (p < o->p + (o->usable ? o->usable : 1) && o->p < p + (usable ? usable : 1))
            failf(t, "new block %p (usable %zu) overlaps live block %p (id %#" PRIx64 ", usable %zu)",
                  (void *)p, usable, (void *)o->p, o->id, o->usable);
    }
}

/* what a block counts against the memory bounds: its usable size, which is what gets
 * written; single-threaded, the size asked for, so that the shrinking below happens at
 * the same operation on every allocator (the differential test compares the runs) */
static size_t cost(const run_t *r, const blk_t *b) { return r->single ? b->req : b->usable; }

/* shrink sizes past the memory bounds (see the top of the file) */
static size_t clamp(const run_t *r, size_t n)
{
    if (n <= 65536) return n;
    if (r->live + n > LIVE_MAX || r->touched + n > r->touch_max) return n & 0xffff;
    return n;
}

/* A fresh block p (or one realloc'ed: keep bytes kept) for b: check it, fill it. */
static void take_block(thr_t *t, blk_t *b, void *p, size_t req, size_t align, size_t expect_align,
                       bool zeroed, size_t kept, uint64_t id, const blk_t *extra, size_t nextra, const char *what)
{
    if (p == NULL) failf(t, "%s(%zu bytes, alignment %zu) returned NULL, errno %d", what, req, align, errno);
    if ((uintptr_t)p % expect_align)
        failf(t, "%s(%zu bytes, alignment %zu) = %p: not %zu-aligned", what, req, align, p, expect_align);
    size_t usable = malloc_usable_size(p);
    if (usable < req) failf(t, "%s(%zu) = %p: malloc_usable_size %zu < %zu", what, req, p, usable, req);
    verify_no_overlap(t, p, usable, b, extra, nextra);
    b->p = p;
    b->req = req;
    b->usable = usable;
    b->align = align;
    b->id = id;
    verify_owner(t, b);
    if (zeroed) {
        size_t off = check_zero(p, req);
        if (off != SIZE_MAX) failf(t, "%s(%zu) = %p: byte %zu not zero", what, req, p, off);
    }
    if (kept) verify_pattern(t, b, kept, "realloc kept");
    if (t->run->tr) trf(t, "%s n=%zu a=%zu -> ok sum=%016" PRIx64, what, req, align, csum(p, zeroed ? req : kept));
    fill(b->p, kept, usable, id);
    t->run->live += cost(t->run, b);
    t->run->touched += cost(t->run, b);
}

/* check a live block and give it back through `how` (free unless told) */
static void drop_block(thr_t *t, blk_t *b, const char *what)
{
    verify_pattern(t, b, b->usable, what);
    if (t->run->tr) trf(t, "%s -> sum=%016" PRIx64, what, csum(b->p, b->req));
    t->run->live -= cost(t->run, b);
    memset(b, 0, sizeof(*b));
}

static void free_block(thr_t *t, blk_t *b, const char *what)
{
    void *p = b->p;
    drop_block(t, b, what);
    errno = 4321;
    free(p);
    if (errno != 4321) failf(t, "free(%p) changed errno to %d", p, errno);
}

static uint64_t new_id(thr_t *t) { return (uint64_t)(t->tid + 1) << 48 | ++t->seq; }

static void expect_null(thr_t *t, void *p, int err, const char *what, size_t a, size_t n)
{
    int e = errno;
    if (p != NULL) failf(t, "%s(alignment %zu, %zu) = %p, expected NULL (errno %d)", what, a, n, p, err);
    if (e != err) failf(t, "%s(alignment %zu, %zu) = NULL with errno %d, expected %d", what, a, n, e, err);
    if (t->run->tr) trf(t, "%s n=%zu a=%zu -> NULL errno=%d", what, n, a, e);
}

/* ---- the operations ------------------------------------------------------------------------ */

static void op_realloc_to(thr_t *t, blk_t *b, size_t n, bool array, size_t nmemb, const char *what)
{
    if (b->p == NULL) {
        errno = 0;
        void *p = array ? reallocarray(NULL, nmemb, n / nmemb) : realloc(NULL, n);
        take_block(t, b, p, n, 0, 16, false, 0, new_id(t), NULL, 0, what);
        return;
    }
    verify_pattern(t, b, b->usable, "before realloc");
    size_t old_req = b->req, old_cost = cost(t->run, b);
    errno = 0;
    void *p = array ? reallocarray(b->p, nmemb, n / nmemb) : realloc(b->p, n);
    if (n == 0) {                                     /* frees (glibc and numamalloc) */
        if (p != NULL) failf(t, "%s(%p, 0) = %p, expected NULL (the block freed)", what, (void *)b->p, p);
        if (t->run->tr) trf(t, "%s n=0 -> NULL freed", what);
        t->run->live -= old_cost;
        memset(b, 0, sizeof(*b));
        return;
    }
    t->run->live -= old_cost;
    uint64_t id = b->id;
    b->p = NULL;
    take_block(t, b, p, n, 0, 16, false, old_req < n ? old_req : n, id, NULL, 0, what);
}

/* realloc/reallocarray that must fail with ENOMEM and leave the block as it was */
static void op_realloc_fail(thr_t *t, blk_t *b, size_t nmemb, size_t m, bool array, const char *what)
{
    errno = 0;
    void *p = array ? reallocarray(b->p, nmemb, m) : realloc(b->p, m);
    expect_null(t, p, ENOMEM, what, nmemb, m);
    if (b->p) verify_pattern(t, b, b->usable, "after a failed realloc");
}

static void op_aligned(thr_t *t, const op_t *o, blk_t *b)
{
    size_t a = (o->abyte & 31) < 24 ? (size_t)1 << (o->abyte & 31) : ODD_ALIGN[(o->abyte & 31) - 24];
    size_t n = o->size;
    if ((o->abyte & 32) && a <= ((size_t)8 << 20)) n = a;
    n = o->var == 3 ? HUGE[o->u % NELEM(HUGE)] : clamp(t->run, n);
    bool huge = o->var == 3;
    const char *what = op_name[o->kind];
    if (o->kind == OP_POSIX_MEMALIGN) {
        void *out = (void *)&out;
        errno = 999;
        int rc = posix_memalign(&out, a, n);
        int e = errno;
        if (fn_block_info && e != 999) failf(t, "posix_memalign(%zu, %zu) changed errno to %d", a, n, e);
        bool valid = is_pow2(a) && a % sizeof(void *) == 0;
        if (rc != 0) {
            if (out != (void *)&out) failf(t, "posix_memalign(%zu, %zu) = %d wrote its output", a, n, rc);
            if (!valid && rc != EINVAL) failf(t, "posix_memalign(%zu, %zu) = %d, expected EINVAL", a, n, rc);
            if (valid && rc != ENOMEM) failf(t, "posix_memalign(%zu, %zu) = %d, expected ENOMEM", a, n, rc);
            if (valid && !huge && a <= ((size_t)1 << 40))
                failf(t, "posix_memalign(%zu, %zu) failed (%d)", a, n, rc);
            if (t->run->tr) trf(t, "%s n=%zu a=%zu -> rc=%d", what, n, a, rc);
            return;
        }
        if (!valid || huge) failf(t, "posix_memalign(%zu, %zu) succeeded: %p", a, n, out);
        take_block(t, b, out, n, a, a < 16 ? 16 : a, false, 0, new_id(t), NULL, 0, what);
        return;
    }
    errno = 0;
    void *p = o->kind == OP_MEMALIGN ? memalign(a, n) : aligned_alloc(a, n);
    int e = errno;
    if (o->kind == OP_ALIGNED_ALLOC && !is_pow2(a)) {
        /* numamalloc: EINVAL (C17 DR 460, as glibc >= 2.38; numamalloc(3)); glibc 2.36 acts as
         * memalign. The transcript records only that the outcome is one of those. */
        size_t eff = a <= 16 ? 16 : a > SIZE_MAX / 2 + 1 ? 0 : next_pow2(a);
        if (p == NULL) {
            if (e != EINVAL && e != ENOMEM) failf(t, "aligned_alloc(%zu, %zu) = NULL, errno %d", a, n, e);
            if (fn_block_info && e != EINVAL) failf(t, "aligned_alloc(%zu, %zu): errno %d, expected EINVAL", a, n, e);
        } else {
            if (fn_block_info) failf(t, "aligned_alloc(%zu, %zu) = %p, expected NULL (EINVAL)", a, n, p);
            if (eff == 0 || (uintptr_t)p % eff) failf(t, "aligned_alloc(%zu, %zu) = %p not %zu-aligned", a, n, p, eff);
            free(p);
        }
        if (t->run->tr) trf(t, "%s n=%zu a=%zu -> non-power-of-two outcome accepted", what, n, a);
        return;
    }
    size_t eff = a <= 16 ? 16 : is_pow2(a) ? a : a > SIZE_MAX / 2 + 1 ? 0 : next_pow2(a);
    if (eff == 0) { expect_null(t, p, EINVAL, what, a, n); return; }
    if (huge) { expect_null(t, p, ENOMEM, what, a, n); return; }
    if (eff > ((size_t)1 << 40) && p == NULL) { expect_null(t, p, ENOMEM, what, a, n); return; }
    take_block(t, b, p, n, a, eff, false, 0, new_id(t), NULL, 0, what);
}

static void op_handoff(thr_t *t, blk_t *b, unsigned to)
{
    run_t *r = t->run;
    verify_pattern(t, b, b->usable, "before handoff");
    pthread_mutex_lock(&r->box[to].mu);
    bool full = r->box[to].n == BOX_CAP;
    if (!full) r->box[to].b[r->box[to].n++] = *b;
    pthread_mutex_unlock(&r->box[to].mu);
    if (full) { free_block(t, b, "handoff (mailbox full) free"); return; }
    if (r->tr) trf(t, "handoff -> %u", to);
    memset(b, 0, sizeof(*b));
}

static void op_take(thr_t *t, const op_t *o, blk_t *b)
{
    run_t *r = t->run;
    blk_t got;
    bool have = false;
    pthread_mutex_lock(&r->box[t->tid].mu);
    unsigned n = r->box[t->tid].n;
    if (n) {
        have = true;
        if (o->var == 1) {
            got = r->box[t->tid].b[0];
            memmove(&r->box[t->tid].b[0], &r->box[t->tid].b[1], (n - 1) * sizeof(blk_t));
        } else {
            got = r->box[t->tid].b[n - 1];
        }
        r->box[t->tid].n = n - 1;
    }
    pthread_mutex_unlock(&r->box[t->tid].mu);
    if (!have) { if (r->tr) trf(t, "take -> empty"); return; }
    if (b->p) free_block(t, b, "take: replaced");
    verify_no_overlap(t, got.p, got.usable, NULL, NULL, 0);
    *b = got;
    verify_pattern(t, b, b->usable, "taken from the mailbox");
    if (malloc_usable_size(b->p) != b->usable)
        failf(t, "malloc_usable_size(%p) = %zu in thread %u, was %zu", (void *)b->p, malloc_usable_size(b->p), t->tid, b->usable);
    if (r->tr) trf(t, "take -> sum=%016" PRIx64, csum(b->p, b->req));
}

static void op_batch(thr_t *t, const op_t *o)
{
    blk_t bb[BATCH];
    unsigned k = 1 + (o->count & 63);
    size_t n = o->size;
    memset(bb, 0, sizeof(bb));
    for (unsigned i = 0; i < k; i++) {
        size_t m = clamp(t->run, n);
        errno = 0;
        void *p = o->var == 2 ? calloc(1, m) : malloc(m);
        take_block(t, &bb[i], p, m, 0, 16, o->var == 2, 0, new_id(t), bb, i, o->var == 2 ? "batch calloc" : "batch malloc");
    }
    for (unsigned j = 0; j < k; j++) {
        blk_t *b = &bb[o->var == 0 ? k - 1 - j : j];
        if (o->var == 3) {                           /* free where glibc has no free_sized */
            void *p = b->p;
            size_t req = b->req;
            drop_block(t, b, "batch free_sized");
            if (fn_free_sized) fn_free_sized(p, req);
            else free(p);
        } else {
            free_block(t, b, "batch free");
        }
    }
}

static void run_op(thr_t *t, const op_t *o)
{
    run_t *r = t->run;
    blk_t *b = &t->slot[o->slot];
    const char *what = op_name[o->kind];
    switch (o->kind) {
    case OP_MALLOC: {
        if (b->p) free_block(t, b, "malloc: replaced");
        if (o->var == 3) {
            size_t n = HUGE[o->u % NELEM(HUGE)];
            errno = 0;
            void *p = malloc(n);
            expect_null(t, p, ENOMEM, what, 0, n);
            return;
        }
        size_t n = clamp(r, o->size);
        errno = 0;
        take_block(t, b, malloc(n), n, 0, 16, false, 0, new_id(t), NULL, 0, what);
        return;
    }
    case OP_CALLOC: {
        if (b->p) free_block(t, b, "calloc: replaced");
        size_t nmemb = 1 + o->hi;
        if (o->var >= 2) {
            size_t m = o->var == 3 ? SIZE_MAX / (nmemb + 1) + 1 : (size_t)PTRDIFF_MAX / (nmemb + 1) + 1;
            errno = 0;
            void *p = calloc(nmemb + 1, m);
            expect_null(t, p, ENOMEM, what, nmemb + 1, m);
            return;
        }
        size_t m = clamp(r, o->size) / nmemb;
        errno = 0;
        take_block(t, b, calloc(nmemb, m), nmemb * m, 0, 16, true, 0, new_id(t), NULL, 0, what);
        return;
    }
    case OP_REALLOC:
        if (o->var == 3) op_realloc_fail(t, b, 1, HUGE[o->u % NELEM(HUGE)], false, what);
        else op_realloc_to(t, b, clamp(r, o->size), false, 1, what);
        return;
    case OP_REALLOCARRAY: {
        size_t nmemb = 1 + o->hi;
        if (o->var == 3) op_realloc_fail(t, b, nmemb + 1, SIZE_MAX / (nmemb + 1) + 1, true, what);
        else if (o->var == 2) op_realloc_fail(t, b, nmemb + 1, (size_t)PTRDIFF_MAX / (nmemb + 1) + 1, true, what);
        else op_realloc_to(t, b, clamp(r, o->size) / nmemb * nmemb, true, nmemb, what);
        return;
    }
    case OP_POSIX_MEMALIGN: case OP_ALIGNED_ALLOC: case OP_MEMALIGN:
        if (b->p) free_block(t, b, "aligned: replaced");
        op_aligned(t, o, b);
        return;
    case OP_VALLOC: {
        if (b->p) free_block(t, b, "valloc: replaced");
        bool pv = o->var & 1;
        size_t n = o->var == 3 ? HUGE[o->u % NELEM(HUGE)] : clamp(r, o->size);
        errno = 0;
        void *p = pv ? pvalloc(n) : valloc(n);
        if (o->var == 3) { expect_null(t, p, ENOMEM, pv ? "pvalloc" : "valloc", page_size, n); return; }
        take_block(t, b, p, n, page_size, page_size, false, 0, new_id(t), NULL, 0, pv ? "pvalloc" : "valloc");
        /* pvalloc rounds the size up to whole pages; glibc 2.36 does not (its rounding
         * mask is -(pagesize - 1): pvalloc(0) gives 24 bytes), so numamalloc only */
        size_t pages = n ? (n + page_size - 1) / page_size * page_size : page_size;
        if (pv && fn_block_info && b->usable < pages)
            failf(t, "pvalloc(%zu) = %p: usable %zu, less than whole pages (%zu)", n, (void *)b->p, b->usable, pages);
        return;
    }
    case OP_FREE:
        if (o->var == 1) {
            errno = 4321;
            free(NULL);
            if (errno != 4321) failf(t, "free(NULL) changed errno to %d", errno);
            if (r->tr) trf(t, "free(NULL)");
            return;
        }
        if (b->p) free_block(t, b, what);
        else if (r->tr) trf(t, "free -> empty slot");
        return;
    case OP_FREE_SIZED: {
        if (b->p == NULL) { if (r->tr) trf(t, "free_sized -> empty slot"); return; }
        void *p = b->p;
        size_t req = b->req, a = b->align;
        drop_block(t, b, what);
        if (a && fn_free_aligned_sized) fn_free_aligned_sized(p, a, req);
        else if (!a && fn_free_sized) fn_free_sized(p, req);
        else free(p);
        return;
    }
    case OP_FREE_REALLOC0: {
        if (b->p == NULL) { if (r->tr) trf(t, "free_realloc0 -> empty slot"); return; }
        void *p = b->p;
        drop_block(t, b, what);
        errno = 0;
        void *q = o->var < 2 ? realloc(p, 0) : reallocarray(p, 0, 1 + o->hi);
        if (q != NULL) failf(t, "realloc(%p, 0) = %p, expected NULL (freed)", p, q);
        return;
    }
    case OP_USABLE:
        if (o->var == 1) {
            size_t u = malloc_usable_size(NULL);
            if (u != 0) failf(t, "malloc_usable_size(NULL) = %zu", u);
            if (r->tr) trf(t, "usable(NULL) -> 0");
            return;
        }
        if (o->var == 2) {                          /* the result says whether memory was released */
            malloc_trim(0);
            if (r->tr) trf(t, "malloc_trim");
            return;
        }
        if (b->p == NULL) { if (r->tr) trf(t, "usable -> empty slot"); return; }
        verify_pattern(t, b, b->usable, "usable");
        if (malloc_usable_size(b->p) != b->usable)
            failf(t, "malloc_usable_size(%p) = %zu, was %zu", (void *)b->p, malloc_usable_size(b->p), b->usable);
        verify_owner(t, b);
        fill(b->p, 0, b->usable, b->id);          /* the whole usable size, once more */
        r->touched += cost(r, b);
        if (r->tr) trf(t, "usable -> sum=%016" PRIx64, csum(b->p, b->req));
        return;
    case OP_HANDOFF:
        if (b->p) op_handoff(t, b, r->single ? 0 : o->hi % r->nthreads);
        else if (r->tr) trf(t, "handoff -> empty slot");
        return;
    case OP_TAKE:
        op_take(t, o, b);
        return;
    case OP_RESIZE: {
        if (b->p == NULL) { if (r->tr) trf(t, "resize -> empty slot"); return; }
        size_t d = o->count, n;
        switch (o->var) {
        case 0: n = b->req + d * 4096 + 1; break;
        case 1: n = b->req > d * 64 ? b->req - d * 64 : 1; break;
        case 2: n = b->req + d; break;
        default: n = b->req + b->req / 2 + d; break;
        }
        op_realloc_to(t, b, clamp(r, n), false, 1, "resize");
        return;
    }
    default:
        op_batch(t, o);
        return;
    }
}

static void *thread_main(void *arg)
{
    thr_t *t = arg;
    if (!t->run->single) pthread_barrier_wait(&t->run->start);
    for (size_t i = 0; i < t->nidx; i++) {
        t->cur = t->idx[i];
        run_op(t, &t->run->ops[t->cur]);
    }
    t->cur = SIZE_MAX;
    st_ops += t->nidx;
    return NULL;
}

void nmf_run(const uint8_t *data, size_t size, bool single, nmf_transcript_t *tr, size_t touch_max)
{
    if (size == 0) return;
    static run_t r;                   /* one run at a time; 10 KiB, kept off the stack */
    memset(&r, 0, sizeof(r));
    r.nthreads = single ? 1 : 1 + (data[0] & 3);
    r.single = single;
    r.tr = single ? tr : NULL;
    r.touch_max = touch_max;
    op_t *ops = malloc(size * sizeof(op_t));
    size_t *idx = malloc(size * sizeof(size_t));
    if (ops == NULL || idx == NULL) { fprintf(stderr, "nmf: out of memory for %zu operations\n", size); abort(); }
    size_t nops = decode(data, size, r.nthreads, ops);
    r.ops = ops;
    size_t at = 0;
    for (unsigned k = 0; k < r.nthreads; k++) {
        thr_t *t = &r.thr[k];
        t->run = &r;
        t->tid = k;
        t->cur = SIZE_MAX;
        t->idx = idx + at;
        for (size_t i = 0; i < nops; i++) if (ops[i].thread == k) t->idx[t->nidx++] = i;
        at += t->nidx;
        pthread_mutex_init(&r.box[k].mu, NULL);
    }
    if (!single) pthread_barrier_init(&r.start, NULL, r.nthreads);
    for (unsigned k = 1; k < r.nthreads; k++)
        if (pthread_create(&r.thr[k].th, NULL, thread_main, &r.thr[k]) != 0) { perror("nmf: pthread_create"); abort(); }
    thread_main(&r.thr[0]);
    for (unsigned k = 1; k < r.nthreads; k++) pthread_join(r.thr[k].th, NULL);
    /* the calling thread frees what every thread left: for threads 1.. after they exited */
    thr_t *t0 = &r.thr[0];
    for (unsigned k = 0; k < r.nthreads; k++) {
        for (unsigned s = 0; s < NSLOT; s++)
            if (r.thr[k].slot[s].p) free_block(t0, &r.thr[k].slot[s], "end: slot");
        for (unsigned i = 0; i < r.box[k].n; i++) free_block(t0, &r.box[k].b[i], "end: mailbox");
        pthread_mutex_destroy(&r.box[k].mu);
    }
    if (!single) pthread_barrier_destroy(&r.start);
    if (r.live != 0) failf(t0, "%zu bytes still counted live after the run", (size_t)r.live);
    free(idx);
    free(ops);
    st_runs++;
}

/* ---- libFuzzer entry points ---------------------------------------------------------------- */

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void summary_at_exit(void) { if (st_runs) nmf_summary(stderr); }   /* not -jobs' parent */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    if (!nmf_setup() && getenv("NMF_ALLOW_SYSTEM") == NULL) {
        fprintf(stderr, "nmf: numamalloc_block_info not found: this process does not run on numamalloc "
                "(link or preload libnumamalloc.so; NMF_ALLOW_SYSTEM=1 fuzzes the system malloc)\n");
        exit(2);
    }
    atexit(summary_at_exit);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    nmf_run(data, size, false, NULL, NMF_TOUCH_MAX_FUZZ);
    return 0;
}
