/* numamalloc — slabs: blocks of one size class carved from segment pages.
 *
 * A slab hands out never-used blocks from its tail by bumping `fresh` down (so pages
 * are touched only when blocks are really needed) and reuses returned blocks found
 * in its free bitmap (a bit per block, beside the slab: refills scan bits rather
 * than chase a list through cold blocks, which was 17 % of a C++ container run when
 * whole magazines went back to slabs and came out again). `inuse` counts
 * blocks out of the slab: in the program's hands or cached in a magazine. A slab
 * with free blocks sits on its depot's partial list; a slab that becomes wholly free
 * becomes the depot's spare (one per depot, within a bound: see spare_room) or
 * goes back to its segment, and its page-map entries are cleared so a stale free of
 * one of its blocks is reported, not obeyed.
 *
 * Medium slabs hold a few blocks of 40 KiB and up: a free block among used ones
 * would keep its pages resident for as long as the slab lives, so decay returns the
 * pages of blocks that stayed free for a whole pass (clean: MADV_DONTNEED done; aged:
 * free at the last pass). Their bits sit beside the others (at most 8 blocks).
 *
 * NUMAMALLOC_CHECK=1: each slab also has an array of the bytes requested per block
 * (4 bytes a block, metadata memory), so that free can find the canary the
 * allocation wrote between the request and the class size (src/check.c); the
 * normal paths never read or write it.
 *
 * Lock: every function here runs with the depot's lock held (the depot owns its
 * slabs); segment calls take the domain's seg_lock inside it. */
#include <string.h>
#include <sys/mman.h>

#include "numamalloc/internal.h"

static void partial_push(nm_depot_t *d, nm_slab_t *s)
{
    s->prev = NULL;
    s->next = d->partial;
    if (d->partial) d->partial->prev = s;
    d->partial = s;
    s->on_partial = 1;
}

static void partial_remove(nm_depot_t *d, nm_slab_t *s)
{
    if (s->prev) s->prev->next = s->next; else d->partial = s->next;
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = NULL;
    s->on_partial = 0;
}

static size_t map_bytes(const nm_slab_t *s) { return ((size_t)s->nblocks + 63) / 64 * 8; }
static size_t req_bytes(const nm_slab_t *s) { return (size_t)s->nblocks * sizeof *s->req; }

static nm_slab_t *slab_new(nm_depot_t *d)
{
    unsigned cls = nm_depot_cls(d);
    unsigned lane = (unsigned)nm_os_cpu_now() % NM_SEG_LANES;
    nm_slab_t *s = nm_segment_alloc_slab(nm_depot_domain(d), nm_class_pages[cls], lane);
    if (s == NULL) return NULL;
    s->cls = (uint8_t)cls;
    s->nblocks = nm_class_blocks[cls];
    s->fresh = s->nblocks;
    s->inuse = 0;
    s->nfree = 0;
    s->hint = 0;
    s->aged = s->clean = 0;
    s->pend = 0;
    s->freemap = nm_meta_alloc(map_bytes(s));
    s->req = NULL;
    if (s->freemap == NULL) { nm_segment_free_slab(nm_depot_domain(d), s, s->npages); return NULL; }
    if (nm_opt.check && (s->req = nm_meta_alloc(req_bytes(s))) == NULL) {
        nm_meta_free(s->freemap, map_bytes(s));
        nm_segment_free_slab(nm_depot_domain(d), s, s->npages);
        return NULL;
    }
    nm_pme_t e = nm_pme_make(nm_class_is_medium(cls) ? NM_KIND_MEDIUM : NM_KIND_SLAB, nm_depot_domain(d), cls, s);
    if ((nm_class_is_medium(cls) && !nm_pagemap_live_ready((uintptr_t)s->start)) ||
        !nm_pagemap_set_range((uintptr_t)s->start, (size_t)s->npages << NM_GRANULE_SHIFT, e)) {
        nm_meta_free(s->freemap, map_bytes(s));
        if (s->req) nm_meta_free(s->req, req_bytes(s));
        nm_segment_free_slab(nm_depot_domain(d), s, s->npages);
        return NULL;
    }
    d->nslabs++;
    d->fresh += s->nblocks;
    return s;
}

static void slab_release(nm_depot_t *d, nm_slab_t *s)
{
    d->clean -= (uint64_t)__builtin_popcount(s->clean);
    nm_pagemap_clear_range((uintptr_t)s->start, (size_t)s->npages << NM_GRANULE_SHIFT);
    nm_meta_free(s->freemap, map_bytes(s));
    s->freemap = NULL;
    if (s->req) { nm_meta_free(s->req, req_bytes(s)); s->req = NULL; }
    d->nslabs--;
    d->fresh -= s->fresh;
    /* whole pages in the never-used tail were never touched */
    size_t used_end = (size_t)(s->nblocks - s->fresh) * nm_class_size[s->cls];
    unsigned untouched = s->npages - (unsigned)((used_end + NM_GRANULE - 1) >> NM_GRANULE_SHIFT);
    nm_segment_free_slab(nm_depot_domain(d), s, untouched);
}

/* Spare slabs: a wholly free slab stays its depot's spare (against alloc/free
 * thrash at a slab boundary; and a block reused where it was touches no new page).
 * One of NM_SPARE_ALWAYS or less always does; a bigger one (medium slabs of up to
 * 1 MiB) only while the domain's spares and free dirty pages add up to no more than
 * NM_DIRTY_MIN and an eighth of the heap: a program cycling through many medium
 * classes would otherwise keep a slab of each. */
static size_t slab_bytes(const nm_slab_t *s) { return (size_t)s->npages << NM_GRANULE_SHIFT; }

static bool spare_room(const nm_depot_t *d, const nm_slab_t *s)
{
    return slab_bytes(s) <= NM_SPARE_ALWAYS || !nm_segment_over_bound(nm_depot_domain(d), slab_bytes(s));
}

static nm_slab_t *spare_take(nm_depot_t *d)
{
    nm_slab_t *s = d->spare;
    d->spare = NULL;
    nm_sub_relaxed(&nm_domains[nm_depot_domain(d)].spare_bytes, slab_bytes(s));
    return s;
}

#define block_index nm_slab_index

/* blocks of d going out of (v > 0) or back into (v < 0) its slabs, in bytes */
static void footprint(nm_depot_t *d, int64_t v)
{
    int64_t p = d->fp_pending + v;
    if (p >= NM_FP_BATCH || p <= -NM_FP_BATCH) { nm_footprint_add(p); p = 0; }
    nm_store_relaxed(&d->fp_pending, p);                /* read by the dump without the lock */
}

/* Up to n blocks into out[0..got), highest address first within each slab: a
 * magazine pops from its top, so the program gets them in ascending order, as from
 * a free list, and its first touches of new memory run forward for the prefetchers. */
unsigned nm_slab_alloc_batch_locked(nm_depot_t *d, void **out, unsigned n)
{
    const size_t size = nm_class_size[nm_depot_cls(d)];
    unsigned got = 0;
    while (got < n) {
        nm_slab_t *s = d->partial;
        if (s == NULL) {
            if (d->spare) s = spare_take(d);
            else if ((s = slab_new(d)) == NULL) break;
            partial_push(d, s);
        }
        unsigned start = got;
        if (s->nfree) {
            unsigned words = ((unsigned)s->nblocks + 63) / 64, w = s->hint;
            for (; w < words; w++) {
                uint64_t m = s->freemap[w], was = m;
                char *base = s->start + (size_t)w * 64 * size;
                while (m && got < n) {
                    out[n - ++got] = base + (size_t)__builtin_ctzll(m) * size;
                    m &= m - 1;
                }
                s->freemap[w] = m;
                if (NM_UNLIKELY(s->clean | s->aged) && w == 0) {    /* medium: bits 0-7 */
                    uint8_t taken = (uint8_t)(was & ~m);
                    d->clean -= (uint64_t)__builtin_popcount(s->clean & taken);
                    s->clean &= (uint8_t)~taken;
                    s->aged &= (uint8_t)~taken;
                }
                if (got == n) break;
            }
            s->hint = (uint16_t)w;
            s->nfree -= got - start;
        }
        if (got < n && s->fresh) {
            unsigned k = NM_MIN(n - got, (unsigned)s->fresh);
            char *b = s->start + (size_t)(s->nblocks - s->fresh) * size;
            for (unsigned i = 0; i < k; i++, b += size) out[n - ++got] = b;
            s->fresh = (uint16_t)(s->fresh - k);
            d->fresh -= k;
        }
        s->inuse += got - start;
        if (s->nfree == 0 && s->fresh == 0) partial_remove(d, s);
    }
    if (got < n) memmove(out, out + (n - got), got * sizeof *out);
    d->held += got;
    if (d->held > d->held_peak) d->held_peak = d->held;
    if (got) footprint(d, (int64_t)got * (int64_t)size);
    return got;
}

/* k blocks came back to s (their bits set, its hint lowered): settle its counts
 * and lists */
static void settle(nm_depot_t *d, nm_slab_t *s, unsigned k)
{
    s->nfree += k;
    s->inuse -= k;
    if (s->inuse == 0) {
        if (s->on_partial) partial_remove(d, s);
        if (d->spare == NULL && spare_room(d, s)) {
            d->spare = s;
            d->spare_since_ms = nm_os_now_ms();
            nm_add_relaxed(&nm_domains[nm_depot_domain(d)].spare_bytes, slab_bytes(s));
        } else {
            slab_release(d, s);
        }
    } else if (!s->on_partial) {
        partial_push(d, s);
    }
}

/* A magazine's blocks come from a few slabs, in the program's order, not the address
 * order. Each block's bit is set and its slab's hint lowered, and the slab's `pend`
 * counts the blocks marked; each slab touched is settled once, at the end (or when
 * `touched` fills). A slab is in `touched` exactly while its pend is not 0.
 *
 * Two ways to mark, chosen per batch by how often a block shares its 64 KiB granule
 * with the one before. Long runs of one slab (a thread freeing what it allocated, in
 * order): one page-map look-up a run, the run's count and lowest word kept in
 * registers. Short runs (a C++ container teardown frees in hash order: a block or two
 * a slab): there the test "same slab as the last block?" is a branch the CPU cannot
 * predict, and each miss holds up the next block's look-up, so every block is looked
 * up and counted without a data-dependent branch and the look-ups overlap. On the
 * other's batches, each loop is about 1.4-1.5x slower than the other. */

static void settle_touched(nm_depot_t *d, nm_slab_t **touched, unsigned nt)
{
    for (unsigned j = 0; j < nt; j++) {
        nm_slab_t *s = touched[j];
        unsigned k = s->pend;
        s->pend = 0;
        settle(d, s, k);
    }
}

/* Do most blocks share the granule of the block before them? Asked of 8 pairs
 * spread over the batch (every pair of a small one): a whole pass cost half a
 * nanosecond a block. */
static bool runs_are_long(void *const *blocks, unsigned n)
{
    unsigned step = n > 16 ? n / 8 : 1, same = 0, asked = 0;
    for (unsigned i = 1; i < n; i += step, asked++)
        same += (((uintptr_t)blocks[i] ^ (uintptr_t)blocks[i - 1]) >> NM_GRANULE_SHIFT) == 0;
    return 2 * same >= asked;
}

/* the run of k blocks of s just marked, the lowest in word low */
NM_INLINE void run_end(nm_slab_t *s, unsigned k, unsigned low)
{
    if (low < s->hint) s->hint = (uint16_t)low;
    s->pend = (uint16_t)(s->pend + k);
}

/* mark blocks[0..n) run by run; returns how many slabs are left in touched */
static unsigned mark_runs(nm_depot_t *d, void **blocks, unsigned n, uint64_t recip, nm_slab_t **touched)
{
    nm_slab_t *s = NULL;
    unsigned nt = 0, k = 0, low = 0;
    /* s's range [lo, lo + span) and bitmap, kept in registers: the bitmap stores could
     * alias the descriptor */
    uintptr_t lo = 0, span = 0;
    uint64_t *map = NULL;
    for (unsigned i = 0; i < n; i++) {
        uintptr_t off = (uintptr_t)blocks[i] - lo;
        if (off >= span) {
            if (s) run_end(s, k, low);
            s = nm_pme_desc(nm_pagemap_get_ours((uintptr_t)blocks[i]));
            lo = (uintptr_t)s->start;
            span = slab_bytes(s);
            map = s->freemap;
            off = (uintptr_t)blocks[i] - lo;
            if (s->pend == 0) {
                if (nt == NM_SETTLE_BATCH) { settle_touched(d, touched, nt); nt = 0; }
                touched[nt++] = s;
            }
            k = 0;
            low = UINT32_MAX;
        }
        unsigned idx = (unsigned)nm_block_at(off, recip);
        map[idx / 64] |= (uint64_t)1 << (idx % 64);
        if (idx / 64 < low) low = idx / 64;
        k++;
    }
    if (s) run_end(s, k, low);
    return nt;
}

/* mark blocks[0..n) block by block, without a branch on the data */
static unsigned mark_each(nm_depot_t *d, void **blocks, unsigned n, uint64_t recip, nm_slab_t **touched)
{
    unsigned nt = 0;
    for (unsigned i = 0; i < n; i++) {
        uintptr_t a = (uintptr_t)blocks[i];
        nm_slab_t *s = nm_pme_desc(nm_pagemap_get_ours(a));
        unsigned idx = (unsigned)nm_block_at(a - (uintptr_t)s->start, recip);
        uint16_t w = (uint16_t)(idx / 64), h = s->hint;
        s->freemap[w] |= (uint64_t)1 << (idx % 64);
        s->hint = w < h ? w : h;
        touched[nt] = s;                                      /* kept only if s is new */
        nt += s->pend++ == 0;
        if (NM_UNLIKELY(nt == NM_SETTLE_BATCH)) { settle_touched(d, touched, nt); nt = 0; }
    }
    return nt;
}

void nm_slab_free_batch_locked(nm_depot_t *d, void **blocks, unsigned n)
{
    nm_slab_t *touched[NM_SETTLE_BATCH];
    const uint64_t recip = nm_class_recip[nm_depot_cls(d)];   /* a depot's blocks share a class */
    unsigned nt = runs_are_long(blocks, n) ? mark_runs(d, blocks, n, recip, touched)
                                           : mark_each(d, blocks, n, recip, touched);
    settle_touched(d, touched, nt);
    d->held -= n;
    footprint(d, -(int64_t)n * (int64_t)nm_class_size[nm_depot_cls(d)]);
}

/* medium slabs: not the start of one of s's blocks? */
static const char *not_a_block(const nm_slab_t *s, const void *p)
{
    size_t idx = block_index(s, p);
    if ((const char *)p < s->start || idx >= s->nblocks || s->start + idx * nm_class_size[s->cls] != (const char *)p)
        return "not the start of a medium block (interior pointer)";
    return NULL;
}

const char *nm_medium_check(const nm_slab_t *s, const void *p)
{
    const char *why = not_a_block(s, p);
    if (why) return why;
    if (!nm_live_test(p)) return "medium block is not allocated (double free?)";
    return NULL;
}

const char *nm_medium_take_back(const nm_slab_t *s, const void *p)
{
    const char *why = not_a_block(s, p);
    if (why) return why;
    if (!nm_live_clear(p)) return "medium block is not allocated (double free?)";
    return NULL;
}

const char *nm_slab_check_locked(const nm_slab_t *s, const void *p)
{
    if (nm_class_is_medium(s->cls)) return nm_medium_check(s, p);
    size_t size = nm_class_size[s->cls];
    size_t off = (size_t)((const char *)p - s->start);
    if (off >= (size_t)s->nblocks * size || off % size != 0)
        return "not the start of a block (interior pointer)";
    size_t idx = off / size;
    if (idx >= (size_t)(s->nblocks - s->fresh) || (s->freemap[idx / 64] >> (idx % 64)) & 1)
        return "block is not allocated (double free?)";
    return NULL;
}

void nm_slab_set_req_locked(nm_slab_t *s, const void *p, size_t n)
{
    if (s->req) s->req[block_index(s, p)] = (uint32_t)n;
}

nm_verdict_t nm_slab_verdict_locked(const nm_slab_t *s, const void *p)
{
    nm_verdict_t v = { .why = nm_slab_check_locked(s, p), .req = nm_class_size[s->cls], .bad = NM_CANARY_OK };
    if (v.why == NULL && s->req) {
        v.req = s->req[block_index(s, p)];
        v.bad = nm_canary_check(p, v.req, nm_class_size[s->cls]);
    }
    return v;
}

nm_verdict_t nm_slab_free_checked_locked(nm_depot_t *d, nm_slab_t *s, void *p)
{
    nm_verdict_t v = nm_slab_verdict_locked(s, p);
    if (v.why || v.bad != NM_CANARY_OK) return v;
    if (nm_class_is_medium(s->cls)) nm_medium_take_back(s, p);
    /* poison freed memory so a use after free reads garbage, not stale data */
    memset(p, 0x5a, nm_class_size[s->cls]);
    nm_slab_free_batch_locked(d, &p, 1);
    return v;
}

/* return the pages of medium blocks free since the last pass (all: every free one) */
static void purge_free_blocks(nm_depot_t *d, bool all)
{
    const size_t size = nm_class_size[nm_depot_cls(d)];
    for (nm_slab_t *s = d->partial; s; s = s->next) {
        uint8_t idle = (uint8_t)(s->freemap[0] & 0xff) & (uint8_t)~s->clean;
        uint8_t old = all ? idle : (uint8_t)(idle & s->aged);
        for (unsigned m = old; m; m &= m - 1) {
            unsigned i = (unsigned)__builtin_ctz(m);
            uintptr_t lo = nm_align_up((uintptr_t)s->start + i * size, nm_os_page);
            uintptr_t hi = nm_align_down((uintptr_t)s->start + (i + 1) * size, nm_os_page);
            if (hi > lo && nm_os_advise((void *)lo, hi - lo, MADV_DONTNEED)) {
                s->clean |= (uint8_t)(1u << i);
                d->clean++;
                nm_gstat_add(NM_C_medium_bytes_purged, hi - lo);
            }
        }
        s->aged = (uint8_t)(idle & ~old);
    }
}

void nm_slab_decay_locked(nm_depot_t *d, uint64_t cutoff_ms, bool all)
{
    if (d->spare && (all || d->spare_since_ms <= cutoff_ms)) slab_release(d, spare_take(d));
    /* (not in strict domains: their pages stay faulted in, as promised at allocation) */
    unsigned cls = nm_depot_cls(d);
    if (nm_class_is_medium(cls) && nm_class_blocks[cls] > 1 && !nm_domains[nm_depot_domain(d)].strict)
        purge_free_blocks(d, all);
}
