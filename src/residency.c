/* numamalloc — measured residency: where our memory really is, next to where we
 * meant it to be.
 *
 * For every dump, a bounded sample of our own ranges is asked where its pages are
 * with move_pages(2) in query mode (nodes NULL: nothing moves), one range kind at a
 * time:
 *   slab          slab segments, whole (every domain's segs and full_segs lists)
 *   large_live    large mappings the program holds (the page map's LARGE and HUGE
 *                 entries, one per block: the granule of the pointer handed out)
 *   large_cached  freed large mappings we keep: those a thread keeps (still in the
 *                 page map, flagged tcached) and every domain's cache list
 * At most NM_RES_SAMPLE_PAGES pages per kind, evenly strided over the kind's ranges
 * laid end to end (a kind that small is measured page by page, exactly); each page
 * sampled stands for one stride of bytes. A sample's intended node is its domain's:
 * a node (MPOL_PREFERRED: spill allowed; strict twin: MPOL_BIND), interleaved or the
 * profiler's (first touch): those two are reported apart, never as misplaced.
 * Cost: a page-map walk (the root, and every leaf mapped: 512 KiB each, 4 GiB of
 * address space), a walk of the segment lists and caches, and at most 3 x 16384
 * pages queried at 150-250 ns a page: 10.4 ms per dump on a 10 GiB heap with all
 * three kinds at the bound (make bench-residency), whatever the heap beyond that;
 * a kind under 64 MiB is measured page by page, exactly.
 * Never allocates: batches on the stack, results in a table mapped at start-up and
 * used only under the dump lock (src/stats.c). Locks: each domain's seg_lock and
 * large_lock in turn, held while its ranges are queried, only tried from a signal
 * handler (a domain found busy is skipped and the kind marked partial). The page map
 * is read without locks: a descriptor read while its block is freed gives a stale
 * range, which a query answers harmlessly. */
#include <errno.h>

#include "numamalloc/internal.h"

#define RES_BATCH 128

static nm_res_cell_t *nm_res_cells;            /* [kind][node]: the last measurement */
static const char *const kind_names[NM_RES_KINDS] = { "slab", "large_live", "large_cached" };

bool nm_residency_init(void)
{
    nm_res_cells = nm_meta_alloc((size_t)NM_RES_KINDS * ((size_t)nm_topo.max_node + 1) * sizeof(nm_res_cell_t));
    return nm_res_cells != NULL;
}

const char *nm_residency_kind_name(int k) { return kind_names[k]; }

nm_res_cell_t *nm_res_cell(int kind, int node) { return &nm_res_cells[(size_t)kind * ((size_t)nm_topo.max_node + 1) + (size_t)node]; }

/* intent of a domain's memory: 2 * node (+1 when spill is allowed) for a node's
 * domain, -1 interleaved, -2 the profiler's */
static int intent_of(uint32_t d)
{
    if (d == nm_dom_sampled) return -2;
    int n = nm_domain_node(d);
    if (n < 0) return -1;
    return 2 * n + (nm_domains[d].strict ? 0 : 1);
}

typedef struct sampler {
    nm_residency_t *r;
    int      kind;
    uint64_t stride;         /* bytes per sample (a multiple of the page) */
    uint64_t next;           /* position of the next sample in the kind's ranges end to end */
    uint64_t acc;            /* bytes of ranges passed */
    unsigned n;
    void    *pages[RES_BATCH];
    int      status[RES_BATCH];
    int      intent[RES_BATCH];
} sampler_t;

static void flush(sampler_t *s)
{
    if (s->n == 0) return;
    nm_residency_t *r = s->r;
    unsigned n = s->n;
    s->n = 0;
    if (!r->measured) return;                         /* an earlier query failed */
    for (unsigned i = 0; i < n; i++) s->status[i] = -ENOENT;
    if (!nm_os_page_nodes(n, s->pages, s->status)) {
        r->measured = false;
        r->err = nm_os_last_errno[NM_OS_MOVE_PAGES];
        return;
    }
    nm_res_kind_t *k = &r->kind[s->kind];
    k->sampled_pages += n;
    uint64_t b = s->stride;
    for (unsigned i = 0; i < n; i++) {
        int st = s->status[i];
        if (st < 0 || st > nm_topo.max_node) continue;        /* not resident (or not ours any more) */
        nm_res_cell_t *here = nm_res_cell(s->kind, st);
        here->resident += b;
        k->resident += b;
        int w = s->intent[i];
        if (w == -1) { here->interleaved += b; continue; }
        if (w == -2) { here->sampled += b; continue; }
        int want = w / 2;
        if (want == st) { here->placed += b; continue; }
        nm_res_cell_t *meant = nm_res_cell(s->kind, want);
        meant->misplaced += b;
        k->misplaced += b;
        if (w & 1) meant->spilled += b;
        here->foreign += b;
    }
}

/* the samples that fall in [start, start+len) */
static void sample_range(sampler_t *s, uintptr_t start, uint64_t len, int intent)
{
    while (s->next < s->acc + len) {
        s->pages[s->n] = (void *)nm_align_down(start + (s->next - s->acc), nm_os_page);
        s->intent[s->n] = intent;
        if (++s->n == RES_BATCH) flush(s);
        s->next += s->stride;
    }
    s->acc += len;
}

static void sampler_start(sampler_t *s, nm_residency_t *r, int kind, uint64_t total)
{
    s->r = r;
    s->kind = kind;
    s->n = 0;
    s->acc = 0;
    uint64_t per = (total + NM_RES_SAMPLE_PAGES - 1) / NM_RES_SAMPLE_PAGES;
    s->stride = nm_align_up(NM_MAX(per, (uint64_t)nm_os_page), nm_os_page);
    s->next = nm_align_down(s->stride / 2, nm_os_page);
    r->kind[kind].candidate_bytes = total;
    r->kind[kind].stride_bytes = s->stride;
}

static bool lock_domain(nm_lock_t *l, bool from_signal)
{
    if (from_signal) return nm_trylock(l);
    nm_lock(l);
    return true;
}

/* ---- slab segments ------------------------------------------------------------------- */

/* walk domain d's segments (seg_lock held): count (s == NULL) or sample. Whole
 * segments: a page in no slab may be resident too (with THP, the first touch of a
 * segment brings in a 2 MiB page) */
static uint64_t walk_segments(uint32_t d, sampler_t *s, uint64_t *ranges)
{
    nm_domain_t *dm = &nm_domains[d];
    uint64_t bytes = 0;
    int intent = intent_of(d);
    for (int list = 0; list < 2; list++) {
        for (nm_segment_t *g = list ? dm->full_segs : dm->segs; g; g = g->next) {
            if (ranges) (*ranges)++;
            if (s) sample_range(s, (uintptr_t)g->base, NM_SEGMENT_SIZE, intent);
            bytes += NM_SEGMENT_SIZE;
        }
    }
    return bytes;
}

static void measure_slabs(nm_residency_t *r, bool from_signal)
{
    uint64_t total = 0, ranges = 0;
    for (uint32_t d = 0; d < nm_ndomains; d++) {
        if (!nm_domain_used(d) || nm_load_relaxed(&nm_domains[d].nsegments) == 0) continue;
        if (!lock_domain(&nm_domains[d].seg_lock, from_signal)) { r->kind[NM_RES_SLAB].partial = true; continue; }
        total += walk_segments(d, NULL, &ranges);
        nm_unlock(&nm_domains[d].seg_lock);
    }
    sampler_t s;
    sampler_start(&s, r, NM_RES_SLAB, total);
    r->kind[NM_RES_SLAB].ranges = ranges;
    for (uint32_t d = 0; d < nm_ndomains && r->measured; d++) {
        if (!nm_domain_used(d) || nm_load_relaxed(&nm_domains[d].nsegments) == 0) continue;
        if (!lock_domain(&nm_domains[d].seg_lock, from_signal)) { r->kind[NM_RES_SLAB].partial = true; continue; }
        walk_segments(d, &s, NULL);
        flush(&s);                                     /* queried with the list still locked */
        nm_unlock(&nm_domains[d].seg_lock);
    }
}

/* ---- large mappings ------------------------------------------------------------------ */

/* a descriptor read without a lock: plausible enough to query? */
static bool sane(const nm_large_t *L)
{
    return L->map && ((uintptr_t)L->map & (nm_os_page - 1)) == 0 && L->map_len && L->map_len < ((uint64_t)1 << 46) &&
           L->domain < nm_ndomains;
}

/* every large block of the page map: live ones to live, kept ones (tcached) to
 * cached; count only when a sampler is NULL */
static void walk_pagemap(sampler_t *live, sampler_t *cached, uint64_t *bytes, uint64_t *ranges)
{
    for (uintptr_t i = 0; i < NM_PM_ROOT_LEN; i++) {
        nm_pme_t *leaf = __atomic_load_n(&nm_pm_root[i], __ATOMIC_ACQUIRE);
        if (leaf == NULL) continue;
        for (uintptr_t j = 0; j < NM_PM_LEAF_LEN; j++) {
            nm_pme_t e = __atomic_load_n(&leaf[j], __ATOMIC_RELAXED);
            unsigned kind = nm_pme_kind(e);
            if (kind != NM_KIND_LARGE && kind != NM_KIND_HUGE) continue;
            const nm_large_t *L = nm_pme_desc(e);
            char *map = L->map;
            uint64_t len = L->map_len;
            uint32_t dom = L->domain;
            int which = L->tcached ? NM_RES_LARGE_CACHED : NM_RES_LARGE_LIVE;
            if (!sane(L)) continue;
            bytes[which] += len;
            ranges[which]++;
            sampler_t *s = which == NM_RES_LARGE_LIVE ? live : cached;
            if (s) sample_range(s, (uintptr_t)map, len, intent_of(dom));
        }
    }
}

/* domain d's cache of freed mappings (large_lock held) */
static uint64_t walk_cache(uint32_t d, sampler_t *s, uint64_t *ranges)
{
    uint64_t bytes = 0;
    int intent = intent_of(d);
    for (nm_large_t *L = nm_domains[d].cache; L; L = L->next) {
        bytes += L->map_len;
        if (ranges) (*ranges)++;
        if (s) sample_range(s, (uintptr_t)L->map, L->map_len, intent);
    }
    return bytes;
}

static void measure_large(nm_residency_t *r, bool from_signal)
{
    uint64_t bytes[NM_RES_KINDS] = { 0 }, ranges[NM_RES_KINDS] = { 0 };
    walk_pagemap(NULL, NULL, bytes, ranges);
    for (uint32_t d = 0; d < nm_ndomains; d++) {
        if (!nm_domain_used(d) || nm_load_relaxed(&nm_domains[d].cache) == NULL) continue;
        if (!lock_domain(&nm_domains[d].large_lock, from_signal)) { r->kind[NM_RES_LARGE_CACHED].partial = true; continue; }
        bytes[NM_RES_LARGE_CACHED] += walk_cache(d, NULL, &ranges[NM_RES_LARGE_CACHED]);
        nm_unlock(&nm_domains[d].large_lock);
    }
    sampler_t live, cached;
    sampler_start(&live, r, NM_RES_LARGE_LIVE, bytes[NM_RES_LARGE_LIVE]);
    sampler_start(&cached, r, NM_RES_LARGE_CACHED, bytes[NM_RES_LARGE_CACHED]);
    r->kind[NM_RES_LARGE_LIVE].ranges = ranges[NM_RES_LARGE_LIVE];
    r->kind[NM_RES_LARGE_CACHED].ranges = ranges[NM_RES_LARGE_CACHED];
    uint64_t b2[NM_RES_KINDS] = { 0 }, r2[NM_RES_KINDS] = { 0 };
    walk_pagemap(&live, &cached, b2, r2);
    flush(&live);
    for (uint32_t d = 0; d < nm_ndomains && r->measured; d++) {
        if (!nm_domain_used(d) || nm_load_relaxed(&nm_domains[d].cache) == NULL) continue;
        if (!lock_domain(&nm_domains[d].large_lock, from_signal)) { r->kind[NM_RES_LARGE_CACHED].partial = true; continue; }
        walk_cache(d, &cached, NULL);
        flush(&cached);
        nm_unlock(&nm_domains[d].large_lock);
    }
    flush(&cached);
}

void nm_residency_measure(nm_residency_t *r, bool from_signal)
{
    *r = (nm_residency_t){ .measured = true };
    for (size_t i = 0; i < (size_t)NM_RES_KINDS * ((size_t)nm_topo.max_node + 1); i++)
        nm_res_cells[i] = (nm_res_cell_t){ 0 };
    if (nm_topo.nmem <= 1) { r->measured = false; r->why = "one node with memory"; return; }
    uint64_t t0 = nm_os_now_ns();
    measure_slabs(r, from_signal);
    if (r->measured) measure_large(r, from_signal);
    r->elapsed_ns = nm_os_now_ns() - t0;
    if (!r->measured) {
        r->why = r->err == ENOSYS ? "move_pages is not available (ENOSYS)"
               : r->err == EPERM  ? "move_pages was refused (EPERM)"
               : "move_pages failed";
        return;
    }
    for (int k = 0; k < NM_RES_KINDS; k++) {
        r->partial |= r->kind[k].partial;
        for (int n = 0; n <= nm_topo.max_node; n++) {
            const nm_res_cell_t *c = nm_res_cell(k, n);
            r->resident += c->resident;
            r->misplaced += c->misplaced;
            r->spilled += c->spilled;
            r->bound += c->placed + c->misplaced;
        }
    }
}
