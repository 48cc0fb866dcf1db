/* numamalloc — counters, their merge, and the statistics dump.
 *
 * Counters: per-thread plain counters (nm_counters_t in each thread cache, plus the
 * bins' pending fast-path counts) are merged into global relaxed atomics when a
 * thread exits (nm_stats_merge_thread); global-only counters are added on slow
 * paths (stats.h lists them all). A dump takes a snapshot: the globals plus every
 * live thread's counters, read racily under the thread-list lock (which keeps a
 * thread's cache from disappearing while we read it). Numbers of a running process
 * are therefore a consistent-enough picture, not an atomic one; at exit they are
 * exact for the exiting thread and for every thread that exited before.
 *
 * Dumping never allocates (stack buffer, write(2)), never takes a lock that the
 * interrupted code may hold (thread list and profiler locks are only tried), and
 * is serialised by nm_stats_dump_lock (a signal handler waits for another thread's
 * dump, never for one its own thread was interrupted in; a dump that cannot have it
 * within 2 s writes one line saying so). Text and JSON come from the same walk (src/emit.c);
 * the JSON schema is documented in man/numamalloc.7 and versioned below.
 *
 * Triggers: NUMAMALLOC_STATS at exit (src/init.c), NUMAMALLOC_STATS_SIGNAL from a
 * signal handler, NUMAMALLOC_STATS_INTERVAL from a thread started by our
 * constructor, numamalloc_stats_print() on demand. The profile files
 * (NUMAMALLOC_PROF_FILE, src/pprof.c) are written at exit, on the signal and on the
 * interval too. */
#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "numamalloc/internal.h"
#include "numamalloc/out.h"
#include "numamalloc.h"

#define NM_JSON_SCHEMA 2

NM_GLOBAL_LOCK nm_lock_t nm_stats_dump_lock = NM_LOCK_INIT;
static uint64_t *snap_dom;              /* [ndomains][NM_DOMAIN_CTR_N], used under nm_stats_dump_lock */

typedef struct snapshot {
    nm_counters_t c;                    /* the global copy plus every live thread's */
    bool     threads_read;              /* live threads' counters included */
    uint64_t threads;
    uint64_t lc_owed;                   /* kept-large bytes the threads took back (large.c) */
} snapshot_t;

#define LD(x) nm_load_relaxed(&(x))

bool nm_stats_init(void)
{
    snap_dom = nm_meta_alloc((size_t)nm_ndomains * NM_DOMAIN_CTR_N * sizeof(uint64_t));
    return snap_dom != NULL && nm_residency_init();
}

/* ---- snapshot ------------------------------------------------------------------------ */

/* a live thread's counters, with its bins' fast-path counts not yet reconciled and
 * its kept large blocks' round trips not yet settled */
static void add_thread(snapshot_t *s, nm_tcache_t *tc)
{
    nm_counters_sum(&s->c, &tc->ctr, nm_ndomains);
    nm_large_pending_add(tc, &s->c);
    s->lc_owed += LD(tc->lc_owed);
    uint32_t dom = LD(tc->domain);
    for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
        nm_bin_t *b = &tc->bins[c];
        int64_t period = LD(b->period), budget = LD(b->budget);
        uint64_t fast = (period > 0 && budget <= period) ? (uint64_t)(period - budget) - (budget <= 0) : 0;
        if (period > 0 && budget <= 0) fast = (uint64_t)period - 1;
        /* frees as bin_reconcile derives them; read while the owner runs, cur and mark
         * may come from different magazines: a distance no magazine has is dropped */
        int64_t moved = nm_bin_moved(LD(b->cur), LD(b->mark)), cap = nm_class_mag_cap[c];
        if (moved < -cap || moved > cap) moved = 0;
        moved += (int64_t)fast;
        uint64_t frees = moved > 0 ? (uint64_t)moved : 0;
        s->c.cls[c][NM_C_alloc_fast] += fast;
        s->c.cls[c][NM_C_free_fast] += frees;
        if (dom < nm_ndomains) {
            uint64_t *d = &s->c.dom[dom * NM_DOMAIN_CTR_N];
            d[NM_C_alloc_count] += fast;
            d[NM_C_alloc_bytes] += fast * nm_class_size[c];
            d[NM_C_free_count] += frees;
            d[NM_C_free_bytes] += frees * nm_class_size[c];
            if (nm_domain_is_remote(dom, LD(tc->cpu_node))) d[NM_C_remote_alloc] += fast;
        }
    }
}

static void take_snapshot(snapshot_t *s, bool from_signal)
{
    memset(&s->c, 0, sizeof s->c);
    memset(snap_dom, 0, (size_t)nm_ndomains * NM_DOMAIN_CTR_N * sizeof(uint64_t));
    s->c.dom = snap_dom;
    s->threads_read = false;
    s->threads = 0;
    s->lc_owed = 0;
    /* the thread-list lock is only held for a few instructions; give it a moment,
     * but never wait on it from a signal handler (the interrupted code may own it).
     * Globals are read under it too, so an exiting thread (which merges its counters
     * under it) is counted exactly once. */
    bool locked = false;
    for (int tries = 0; tries < (from_signal ? 1 : 2000) && !locked; tries++) {
        locked = nm_trylock(&nm_threads_lock);
        if (!locked && !from_signal) { struct timespec ts = { 0, 500000 }; nanosleep(&ts, NULL); }
    }
    nm_counters_sum(&s->c, &nm_global_ctr, nm_ndomains);
    if (!locked) return;
    if (!from_signal) nm_threads_reap_locked(true);   /* caches of threads that died unseen */
    for (nm_tcache_t *tc = nm_threads; tc; tc = tc->next) { add_thread(s, tc); s->threads++; }
    nm_unlock(&nm_threads_lock);
    s->threads_read = true;
}

/* ---- the dump -------------------------------------------------------------------------- */

static const char *errno_name(int e)
{
    switch (e) {
    case 0: return "-";
    case EPERM: return "EPERM";   case ENOENT: return "ENOENT"; case EINTR: return "EINTR";
    case EIO: return "EIO";       case EAGAIN: return "EAGAIN"; case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES"; case EFAULT: return "EFAULT"; case EBUSY: return "EBUSY";
    case EXDEV: return "EXDEV";   case ENODEV: return "ENODEV"; case EINVAL: return "EINVAL";
    case ENOSPC: return "ENOSPC"; case ENOSYS: return "ENOSYS"; case EHWPOISON: return "EHWPOISON";
    default: return "other";
    }
}

typedef struct totals {
    uint64_t small_allocs, small_frees, small_alloc_bytes, small_free_bytes;
    uint64_t small_live_bytes, small_held_bytes, slab_bytes, fresh_bytes, dirty_bytes, cache_bytes;
    uint64_t arena_allocs, arena_frees, arena_alloc_bytes, arena_free_bytes;
    uint64_t large_allocs, large_frees, large_alloc_bytes, large_free_bytes;
    uint64_t large_kept;                /* large blocks kept by the threads that freed them */
    uint64_t purge_age_ms;              /* the longest purge age of the domains (segment.c) */
    int64_t  fp_pending;                /* the depots' footprint changes not in the counter yet */
} totals_t;

/* what the domains hold, from their own counters (no thread is read) */
static void domain_totals(totals_t *t)
{
    for (uint32_t d = 0; d < nm_ndomains; d++) {
        nm_domain_t *dm = &nm_domains[d];
        t->slab_bytes += LD(dm->slab_pages) << NM_GRANULE_SHIFT;
        t->dirty_bytes += LD(dm->dirty_pages) << NM_GRANULE_SHIFT;
        t->cache_bytes += LD(dm->cache_bytes);
        t->purge_age_ms = NM_MAX(t->purge_age_ms, NM_MAX(LD(dm->purge_age_ms), (uint64_t)NM_DIRTY_AGE_MS));
        for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
            t->small_held_bytes += LD(nm_depot(d, c)->held) * nm_class_size[c];
            /* never-used blocks, and free medium blocks whose pages went back: untouched */
            t->fresh_bytes += (LD(nm_depot(d, c)->fresh) + LD(nm_depot(d, c)->clean)) * nm_class_size[c];
            t->fp_pending += LD(nm_depot(d, c)->fp_pending);
        }
    }
}

static uint64_t sub0(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

/* the heap now: the counter plus what the depots have not added to it yet */
static uint64_t footprint_now(const totals_t *t)
{
    int64_t fp = (int64_t)nm_gstat_get(NM_C_footprint) + t->fp_pending;
    return fp > 0 ? (uint64_t)fp : 0;
}

static void compute_totals(const snapshot_t *s, totals_t *t)
{
    *t = (totals_t){ 0 };
    for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
        uint64_t a = s->c.cls[c][NM_C_alloc_fast] + s->c.cls[c][NM_C_alloc_slow];
        uint64_t f = s->c.cls[c][NM_C_free_fast] + s->c.cls[c][NM_C_free_slow];
        t->small_allocs += a;
        t->small_frees += f;
        t->small_alloc_bytes += a * nm_class_size[c];
        t->small_free_bytes += f * nm_class_size[c];
    }
    t->small_live_bytes = t->small_alloc_bytes > t->small_free_bytes ? t->small_alloc_bytes - t->small_free_bytes : 0;
    domain_totals(t);
    t->arena_allocs = s->c.thr[NM_C_arena_alloc];
    t->arena_frees = s->c.thr[NM_C_arena_free];
    t->arena_alloc_bytes = s->c.thr[NM_C_arena_alloc_bytes];
    t->arena_free_bytes = s->c.thr[NM_C_arena_free_bytes];
    for (int b = 0; b < NM_BACK_COUNT; b++) {      /* (a mapping resized in place counts as freed and made again) */
        t->large_allocs += s->c.bk[NM_C_bk_alloc][b];
        t->large_frees += s->c.bk[NM_C_bk_free][b];
        t->large_alloc_bytes += s->c.bk[NM_C_bk_abytes][b];
        t->large_free_bytes += s->c.bk[NM_C_bk_fbytes][b];
    }
    t->large_kept = sub0(nm_gstat_get(NM_C_large_tcache_bytes), s->lc_owed);
}

/* memory we hold that is neither in use nor cached for reuse, and has been touched:
 * free blocks inside slabs (not counting never-used ones), free slab pages not yet
 * purged. Disjoint from the heap (live + cached: footprint), so that heap + this +
 * fallback slack + metadata is everything we hold. */
static uint64_t held_free_of(const totals_t *t)
{
    return sub0(sub0(t->slab_bytes, t->fresh_bytes), t->small_held_bytes) + t->dirty_bytes;
}

/* the per-backing counters src (a counter set's bk, or a thread's unsettled slot
 * round trips, which have its shape), summed over the backings into bk */
static void add_backing(uint64_t bk[NM_BACKING_CTR_N], const uint64_t src[NM_BACKING_CTR_N][NM_BACK_COUNT])
{
    for (int k = 0; k < NM_BACKING_CTR_N; k++)
        for (int b = 0; b < NM_BACK_COUNT; b++) bk[k] += LD(src[k][b]);
}

void nm_stats_heap_numbers(nm_heap_numbers_t *h)
{
    totals_t t = { 0 };
    domain_totals(&t);
    /* the large-block counters of the exited threads and of the live ones */
    uint64_t bk[NM_BACKING_CTR_N] = { 0 }, owed = 0;
    nm_lock(&nm_threads_lock);
    add_backing(bk, nm_global_ctr.bk);
    for (nm_tcache_t *tc = nm_threads; tc; tc = tc->next) {
        add_backing(bk, tc->ctr.bk);
        add_backing(bk, tc->lc_pend);                 /* its slots' round trips, not settled */
        owed += LD(tc->lc_owed);
    }
    nm_unlock(&nm_threads_lock);
    uint64_t kept = sub0(nm_gstat_get(NM_C_large_tcache_bytes), owed);
    uint64_t fp = footprint_now(&t);
    h->live = fp;
    h->held_free = held_free_of(&t);
    h->releasable = t.dirty_bytes + t.cache_bytes + kept;
    h->cached_large = t.cache_bytes + kept;
    h->large_live_count = sub0(bk[NM_C_bk_alloc], bk[NM_C_bk_free]);
    h->large_live_bytes = sub0(bk[NM_C_bk_abytes], bk[NM_C_bk_fbytes]);
    h->footprint_peak = NM_MAX(nm_gstat_get(NM_C_footprint_peak), fp);
}

static void emit_config(nm_emit_t *em)
{
    em_obj_begin(em, "config", "configuration (effective):");
    for (int i = 0; i < NM_OPT_N; i++) {
        char key[64], label[96];
        const char *n = nm_option_table[i].name;
        size_t k = 0;
        for (; n[k] && k + 1 < sizeof key; k++) key[k] = (char)(n[k] >= 'A' && n[k] <= 'Z' ? n[k] + 32 : n[k]);
        key[k] = '\0';
        nm_snprintf(label, sizeof label, "NUMAMALLOC_%s", n);
        if (em->mode == NM_EM_TEXT) {
            char v[160];
            nm_snprintf(v, sizeof v, "%s%s", nm_opt.raw[i][0] ? nm_opt.raw[i] : "(unset)",
                        nm_opt.from_env[i] ? "" : "  (default)");
            em_str(em, key, label, v);
        } else {
            em_str(em, key, label, nm_opt.raw[i]);
        }
    }
    em_obj_end(em);
}

static void emit_summary(nm_emit_t *em, const snapshot_t *s, const totals_t *t, const nm_residency_t *r)
{
    uint64_t allocs = t->small_allocs + t->arena_allocs + t->large_allocs;
    uint64_t frees = t->small_frees + t->arena_frees + t->large_frees;
    uint64_t ab = t->small_alloc_bytes + t->arena_alloc_bytes + t->large_alloc_bytes;
    uint64_t fb = t->small_free_bytes + t->arena_free_bytes + t->large_free_bytes;
    uint64_t live = sub0(ab, fb);
    uint64_t rss = nm_os_rss();
    uint64_t footprint = footprint_now(t);
    uint64_t held_free = held_free_of(t);
    em_obj_begin(em, "summary", "summary:");
    em_u64(em, "allocs", "allocations", allocs);
    em_u64(em, "frees", "frees", frees);
    em_u64(em, "live", "live blocks", sub0(allocs, frees));
    em_bytes(em, "allocated_bytes", "bytes allocated (usable)", ab);
    em_bytes(em, "freed_bytes", "bytes freed", fb);
    em_bytes(em, "live_bytes", "bytes live", live);
    em_bytes(em, "heap_bytes", "heap now (live + cached)", footprint);
    em_bytes(em, "heap_peak_bytes", "heap peak (live + cached)", NM_MAX(nm_gstat_get(NM_C_footprint_peak), footprint));
    if (rss) em_bytes(em, "rss_bytes", "process RSS", rss);
    else em_na(em, "rss_bytes", "process RSS", "/proc unreadable");
    em_bytes(em, "resident_free_bytes", "held but free (fragmentation)", held_free);
    em_pct(em, "fragmentation", "fragmentation / (live + that)", held_free, live + held_free);
    if (r->measured) {
        em_bytes(em, "misplaced_bytes", "misplaced (measured)", r->misplaced);
        em_pct(em, "misplaced_ratio", "misplaced / bound resident", r->misplaced, r->bound);
    } else {
        em_na(em, "misplaced_bytes", "misplaced (measured)", r->why);
        em_na(em, "misplaced_ratio", "misplaced / bound resident", r->why);
    }
    em_u64(em, "threads_seen", "threads seen", nm_gstat_get(NM_C_threads_seen));
    em_u64(em, "threads_live", "threads alive", nm_gstat_get(NM_C_threads_live));
    em_bool(em, "threads_read", "live threads' counters read", s->threads_read);
    em_obj_end(em);
}

/* Everything we hold, in parts that do not overlap, against the process's RSS: what
 * is left is the program's own (code, stacks, its own mappings), or (negative) held
 * bytes that were never touched. Held means mapped and handed out or cached, with
 * never-used slab blocks and purged pages left out. */
static void emit_held(nm_emit_t *em, const totals_t *t, uint64_t live)
{
    uint64_t heap = footprint_now(t);
    uint64_t kept = t->large_kept;
    uint64_t fb_live = sub0(t->arena_alloc_bytes, t->arena_free_bytes);
    uint64_t fb_slack = sub0(nm_fallback_committed(), fb_live);
    uint64_t meta = nm_gstat_get(NM_C_meta_bytes) + nm_gstat_get(NM_C_pagemap_bytes);
    uint64_t held_free = held_free_of(t);
    uint64_t total = heap + held_free + fb_slack + meta;
    uint64_t rss = nm_os_rss();
    em_obj_begin(em, "held", "memory held by numamalloc (parts add up to the total):");
    em_bytes(em, "live_bytes", "in use by the program", NM_MIN(live, heap));
    em_bytes(em, "cached_bytes", "cached for reuse (magazines, depots)", sub0(sub0(heap, live), t->cache_bytes + kept));
    em_bytes(em, "large_cached_bytes", "freed large mappings kept", t->cache_bytes + kept);
    em_bytes(em, "free_bytes", "free inside slabs, unpurged free pages", held_free);
    em_bytes(em, "fallback_slack_bytes", "fallback arena overhead", fb_slack);
    em_bytes(em, "metadata_bytes", "metadata and page map", meta);
    em_bytes(em, "total_bytes", "total held", total);
    if (rss) {
        em_bytes(em, "rss_bytes", "process RSS", rss);
        em_i64(em, "not_ours_bytes", "RSS not held by numamalloc (< 0: held, never touched)", (int64_t)rss - (int64_t)total);
    } else {
        em_na(em, "rss_bytes", "process RSS", "/proc unreadable");
        em_na(em, "not_ours_bytes", "RSS not held by numamalloc (< 0: held, never touched)", "/proc unreadable");
    }
    em_obj_end(em);
}

static const nm_col_t class_cols[] = {
    { "class", "class", 5 }, { "size", "size", 6 }, { "allocs", "allocs", 12 }, { "frees", "frees", 12 },
    { "live", "live", 10 }, { "live_bytes", "live bytes", 11 }, { "peak_held", "peak held", 10 },
    { "hit_rate", "mag hit", 8 }, { "depot_get", "depot get", 10 }, { "depot_put", "depot put", 10 },
    { "slab_fills", "slab fill", 10 }, { "depot_drained", "drained", 8 }, { "slabs", "slabs", 7 },
};

static void emit_classes(nm_emit_t *em, const snapshot_t *s)
{
    em_table_begin(em, "classes", "size classes (small to 32 KiB, medium to 1 MiB; hit = served by the loaded magazine):",
                   class_cols, (int)NM_ARRAY_LEN(class_cols));
    for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
        uint64_t fast = s->c.cls[c][NM_C_alloc_fast], a = fast + s->c.cls[c][NM_C_alloc_slow];
        uint64_t f = s->c.cls[c][NM_C_free_fast] + s->c.cls[c][NM_C_free_slow];
        uint64_t peak = 0, slabs = 0, drained = 0;
        for (uint32_t d = 0; d < nm_ndomains; d++) {
            peak += LD(nm_depot(d, c)->held_peak);
            slabs += LD(nm_depot(d, c)->nslabs);
            drained += LD(nm_depot(d, c)->drained);
        }
        if (a == 0 && f == 0 && slabs == 0) continue;
        uint64_t live = sub0(a, f);
        em_row_begin(em);
        em_cell_u64(em, c);
        em_cell_u64(em, nm_class_size[c]);
        em_cell_u64(em, a);
        em_cell_u64(em, f);
        em_cell_u64(em, live);
        em_cell_bytes(em, live * nm_class_size[c]);
        em_cell_u64(em, peak);
        if (nm_opt.check) em_cell_na(em); else em_cell_pct(em, fast, a);
        em_cell_u64(em, s->c.cls[c][NM_C_depot_get]);
        em_cell_u64(em, s->c.cls[c][NM_C_depot_put]);
        em_cell_u64(em, s->c.cls[c][NM_C_slab_fill]);
        em_cell_u64(em, drained);
        em_cell_u64(em, slabs);
        em_row_end(em);
    }
    em_table_end(em);
}

static const nm_col_t node_cols[] = {
    { "node", "node", -10 }, { "allocs", "allocs", 11 }, { "alloc_bytes", "allocated", 10 },
    { "frees", "frees", 11 }, { "live_bytes", "live", 10 }, { "remote_allocs", "remote alloc", 12 },
    { "remote_frees", "remote free", 11 }, { "local_ratio", "local", 7 }, { "segments", "segments", 8 },
    { "slab_bytes", "slab mem", 9 }, { "large_cache_bytes", "lg cache", 9 },
    { "hugetlb_bytes", "on hugetlb", 10 }, { "thp_bytes", "on thp", 9 },
    { "hugetlb_free", "huge free", 9 }, { "hugetlb_total", "huge total", 10 },
};

/* the row of the nodes table a domain is counted in: its node (a node's strict twin
 * too), -2 interleaved (every interleaved domain), -3 the profiler's */
static int node_row(uint32_t d)
{
    if (d == nm_dom_sampled) return -3;
    int n = nm_domain_node(d);
    return n >= 0 ? n : -2;
}

static void emit_nodes(nm_emit_t *em, const snapshot_t *s)
{
    bool multi = nm_topo.nmem > 1;
    em_table_begin(em, "nodes", multi ? "nodes (local = allocations by threads running on the node):"
                                      : "nodes (one node with memory: local/remote is n/a):",
                   node_cols, (int)NM_ARRAY_LEN(node_cols));
    for (int row = 0; row <= nm_topo.max_node + 2; row++) {
        int want = row <= nm_topo.max_node ? row : row == nm_topo.max_node + 1 ? -2 : -3;
        uint64_t c[NM_DOMAIN_CTR_N] = { 0 }, segs = 0, slab = 0, cached = 0;
        for (uint32_t d = 0; d < nm_ndomains; d++) {
            if (!nm_domain_used(d) || node_row(d) != want) continue;
            const uint64_t *dc = &s->c.dom[d * NM_DOMAIN_CTR_N];
            for (int k = 0; k < NM_DOMAIN_CTR_N; k++) c[k] += dc[k];
            segs += LD(nm_domains[d].nsegments);
            slab += LD(nm_domains[d].slab_pages);
            cached += LD(nm_domains[d].cache_bytes);
        }
        bool is_node = want >= 0 && nm_topo.node[want].online;
        if (!is_node && c[NM_C_alloc_count] == 0) continue;
        if (want >= 0 && !nm_topo_has_memory(want) && c[NM_C_alloc_count] == 0 && segs == 0) continue;
        char name[16];
        if (want == -2) nm_copy_cstr(name, sizeof name, "interleave");
        else if (want == -3) nm_copy_cstr(name, sizeof name, "sampled");
        else nm_snprintf(name, sizeof name, "%d", want);
        em_row_begin(em);
        em_cell_str(em, name);
        em_cell_u64(em, c[NM_C_alloc_count]);
        em_cell_bytes(em, c[NM_C_alloc_bytes]);
        em_cell_u64(em, c[NM_C_free_count]);
        em_cell_bytes(em, sub0(c[NM_C_alloc_bytes], c[NM_C_free_bytes]));
        if (multi) {
            em_cell_u64(em, c[NM_C_remote_alloc]);
            em_cell_u64(em, c[NM_C_remote_free]);
            if (want < 0) em_cell_na(em);
            else em_cell_pct(em, sub0(c[NM_C_alloc_count], c[NM_C_remote_alloc]), c[NM_C_alloc_count]);
        } else {
            em_cell_na(em); em_cell_na(em); em_cell_na(em);
        }
        em_cell_u64(em, segs);
        em_cell_bytes(em, slab << NM_GRANULE_SHIFT);
        em_cell_bytes(em, cached);
        em_cell_bytes(em, sub0(c[NM_C_hugetlb_alloc_bytes], c[NM_C_hugetlb_free_bytes]));
        em_cell_bytes(em, sub0(c[NM_C_thp_alloc_bytes], c[NM_C_thp_free_bytes]));
        long hf = want < 0 ? -1 : nm_topo_free_hugepages(nm_topo.sysfs ? want : -1, 2048);
        long ht = want < 0 ? -1 : nm_topo_nr_hugepages(nm_topo.sysfs ? want : -1, 2048);
        if (hf >= 0) em_cell_u64(em, (uint64_t)hf); else em_cell_na(em);
        if (ht >= 0) em_cell_u64(em, (uint64_t)ht); else em_cell_na(em);
        em_row_end(em);
    }
    em_table_end(em);
}

static const nm_col_t res_kind_cols[] = {
    { "kind", "kind", -13 }, { "ranges", "ranges", 8 }, { "candidate_bytes", "candidates", 11 },
    { "stride_bytes", "stride", 9 }, { "sampled_pages", "sampled", 8 }, { "resident_bytes", "resident", 10 },
    { "misplaced_bytes", "misplaced", 10 },
};
static const nm_col_t res_node_cols[] = {
    { "kind", "kind", -13 }, { "node", "node", -5 }, { "resident_bytes", "resident", 10 },
    { "placed_bytes", "placed", 10 }, { "misplaced_bytes", "misplaced", 10 }, { "spilled_bytes", "spilled", 10 },
    { "foreign_bytes", "foreign", 10 }, { "interleaved_bytes", "interleaved", 11 }, { "sampled_bytes", "sampled", 10 },
};

/* measured residency (src/residency.c): per range kind, then per kind and node */
static void emit_residency(nm_emit_t *em, const nm_residency_t *r)
{
    if (!r->measured && em->mode == NM_EM_TEXT) {
        nm_buf_printf(em->b, "residency (measured with move_pages): n/a (%s)\n", r->why);
        return;
    }
    em_obj_begin(em, "residency", "residency (measured with move_pages; misplaced = meant for a node, resident on another):");
    em_bool(em, "measured", "measured", r->measured);
    if (r->measured) em_na(em, "why", "not measured because", "measured");
    else em_str(em, "why", "not measured because", r->why);
    em_u64(em, "sample_pages", "pages sampled per kind, at most", NM_RES_SAMPLE_PAGES);
    if (!r->measured) {
        em_na(em, "elapsed_us", "time taken (us)", r->why);
        em_na(em, "partial", "a domain was busy: skipped", r->why);
        em_na(em, "resident_bytes", "ours, resident", r->why);
        em_na(em, "misplaced_bytes", "misplaced", r->why);
        em_na(em, "spilled_bytes", "of which spilled (preferred)", r->why);
        em_na(em, "misplaced_ratio", "misplaced / bound resident", r->why);
        em_table_begin(em, "kinds", "", res_kind_cols, (int)NM_ARRAY_LEN(res_kind_cols));
        em_table_end(em);
        em_table_begin(em, "nodes", "", res_node_cols, (int)NM_ARRAY_LEN(res_node_cols));
        em_table_end(em);
        em_obj_end(em);
        return;
    }
    em_u64(em, "elapsed_us", "time taken (us)", r->elapsed_ns / 1000);
    em_bool(em, "partial", "a domain was busy: skipped", r->partial);
    em_bytes(em, "resident_bytes", "ours, resident", r->resident);
    em_bytes(em, "misplaced_bytes", "misplaced", r->misplaced);
    em_bytes(em, "spilled_bytes", "of which spilled (preferred)", r->spilled);
    em_pct(em, "misplaced_ratio", "misplaced / bound resident", r->misplaced, r->bound);
    em_table_begin(em, "kinds", "by range kind (each sampled page stands for a stride of bytes):",
                   res_kind_cols, (int)NM_ARRAY_LEN(res_kind_cols));
    for (int k = 0; k < NM_RES_KINDS; k++) {
        const nm_res_kind_t *rk = &r->kind[k];
        em_row_begin(em);
        em_cell_str(em, nm_residency_kind_name(k));
        em_cell_u64(em, rk->ranges);
        em_cell_bytes(em, rk->candidate_bytes);
        em_cell_bytes(em, rk->stride_bytes);
        em_cell_u64(em, rk->sampled_pages);
        em_cell_bytes(em, rk->resident);
        em_cell_bytes(em, rk->misplaced);
        em_row_end(em);
    }
    em_table_end(em);
    em_table_begin(em, "nodes", "by kind and node (placed: meant for the node and on it; foreign: on it, meant for another):",
                   res_node_cols, (int)NM_ARRAY_LEN(res_node_cols));
    for (int k = 0; k <= NM_RES_KINDS; k++) {
        for (int n = 0; n <= nm_topo.max_node; n++) {
            if (!nm_topo_has_memory(n)) continue;
            nm_res_cell_t c = { 0 };
            for (int j = (k == NM_RES_KINDS ? 0 : k); j <= (k == NM_RES_KINDS ? NM_RES_KINDS - 1 : k); j++) {
                const nm_res_cell_t *x = nm_res_cell(j, n);
                c.resident += x->resident; c.placed += x->placed; c.misplaced += x->misplaced; c.spilled += x->spilled;
                c.foreign += x->foreign; c.interleaved += x->interleaved; c.sampled += x->sampled;
            }
            char name[16];
            nm_snprintf(name, sizeof name, "%d", n);
            em_row_begin(em);
            em_cell_str(em, k == NM_RES_KINDS ? "all" : nm_residency_kind_name(k));
            em_cell_str(em, name);
            em_cell_bytes(em, c.resident);
            em_cell_bytes(em, c.placed);
            em_cell_bytes(em, c.misplaced);
            em_cell_bytes(em, c.spilled);
            em_cell_bytes(em, c.foreign);
            em_cell_bytes(em, c.interleaved);
            em_cell_bytes(em, c.sampled);
            em_row_end(em);
        }
    }
    em_table_end(em);
    em_obj_end(em);
}

static const nm_col_t backing_cols[] = {
    { "backing", "backing", -12 }, { "live", "live", 8 }, { "live_bytes", "live bytes", 11 }, { "mapped_total", "ever mapped", 12 },
};
static const char *const backing_names[NM_BACK_COUNT] = { "4k", "thp", "hugetlb_2m", "hugetlb_1g" };

static const nm_col_t fb_cols[] = {
    { "reason", "reason", -24 }, { "count", "count", 9 }, { "last_errno", "errno", 9 }, { "meaning", "meaning", -1 },
};

#define NM_FB_ROW(id, key, desc) { key, desc },
static const struct { const char *key, *desc; } fb_names[NM_FB_N] = { NM_FALLBACK_REASONS(NM_FB_ROW) };
#undef NM_FB_ROW

static void emit_large(nm_emit_t *em, const snapshot_t *s, const totals_t *t)
{
    uint64_t live_n[NM_BACK_COUNT], live_b[NM_BACK_COUNT];
    for (int b = 0; b < NM_BACK_COUNT; b++) {
        live_n[b] = sub0(s->c.bk[NM_C_bk_alloc][b], s->c.bk[NM_C_bk_free][b]);
        live_b[b] = sub0(s->c.bk[NM_C_bk_abytes][b], s->c.bk[NM_C_bk_fbytes][b]);
    }
    em_obj_begin(em, "large", "large blocks (own mapping, >= NUMAMALLOC_LARGE_THRESHOLD):");
    em_u64(em, "allocs", "allocations", t->large_allocs);
    em_u64(em, "frees", "frees", t->large_frees);
    em_bytes(em, "live_bytes", "live bytes (mapped)", sub0(t->large_alloc_bytes, t->large_free_bytes));
    em_bytes(em, "peak_bytes", "peak bytes live or kept by threads", nm_gstat_get(NM_C_large_peak_bytes));
    em_u64(em, "cache_hits", "mapping cache hits", s->c.thr[NM_C_large_cache_hit]);
    em_u64(em, "cache_misses", "mapping cache misses", s->c.thr[NM_C_large_cache_miss]);
    em_u64(em, "cache_evictions", "mapping cache releases", nm_gstat_get(NM_C_large_cache_evict));
    em_u64(em, "cache_splits", "cached mappings split", nm_gstat_get(NM_C_large_cache_split));
    em_u64(em, "cache_grows", "cached mappings grown", nm_gstat_get(NM_C_large_cache_grow));
    em_u64(em, "cache_merges", "cached mappings merged", nm_gstat_get(NM_C_large_cache_merge));
    em_bytes(em, "cache_bytes", "mapping cache now", t->cache_bytes);
    em_bytes(em, "thread_cache_bytes", "kept by freeing threads", t->large_kept);
    em_u64(em, "mremaps", "reallocs by mremap", nm_gstat_get(NM_C_large_mremap));
    em_u64(em, "judged_dense", "new mappings judged dense", nm_gstat_get(NM_C_large_judged_dense));
    em_u64(em, "judged_sparse", "new mappings judged sparse", nm_gstat_get(NM_C_large_judged_sparse));
    em_bytes(em, "populated_bytes", "populated as dense", nm_gstat_get(NM_C_large_populated));
    em_str(em, "thp_mode", "transparent huge pages", nm_thp_mode == 0 ? "never" : nm_thp_mode == 1 ? "madvise" : "always");
    uint64_t huge_bytes = live_b[NM_BACK_HUGETLB_2M] + live_b[NM_BACK_HUGETLB_1G] + live_b[NM_BACK_THP];
    uint64_t all_bytes = huge_bytes + live_b[NM_BACK_NORMAL];
    if (nm_opt.hugepages == NM_HUGE_OFF) em_na(em, "huge_coverage", "live bytes on huge pages", "NUMAMALLOC_HUGEPAGES=off");
    else em_pct(em, "huge_coverage", "live bytes on huge pages", huge_bytes, all_bytes);
    em_table_begin(em, "backing", "by backing:", backing_cols, (int)NM_ARRAY_LEN(backing_cols));
    for (int b = 0; b < NM_BACK_COUNT; b++) {
        em_row_begin(em);
        em_cell_str(em, backing_names[b]);
        em_cell_u64(em, live_n[b]);
        em_cell_bytes(em, live_b[b]);
        em_cell_u64(em, LD(nm_large_backing_total[b]));
        em_row_end(em);
    }
    em_table_end(em);
    em_obj_end(em);

    em_table_begin(em, "fallbacks", "fallbacks (a request that did not get what the policy asked for):",
                   fb_cols, (int)NM_ARRAY_LEN(fb_cols));
    for (int r = 0; r < NM_FB_N; r++) {
        uint64_t n = LD(nm_fallback[r]);
        if (n == 0 && em->mode == NM_EM_TEXT) continue;
        em_row_begin(em);
        em_cell_str(em, fb_names[r].key);
        em_cell_u64(em, n);
        em_cell_str(em, errno_name(LD(nm_fallback_errno[r])));
        em_cell_str(em, fb_names[r].desc);
        em_row_end(em);
    }
    em_table_end(em);
}

static void emit_arena(nm_emit_t *em, const snapshot_t *s, const totals_t *t)
{
    (void)s;
    em_obj_begin(em, "arena", "fallback arena (mimalloc; while booting, and when no segment could be mapped):");
    em_u64(em, "allocs", "allocations", t->arena_allocs);
    em_u64(em, "frees", "frees", t->arena_frees);
    em_bytes(em, "live_bytes", "live bytes", sub0(t->arena_alloc_bytes, t->arena_free_bytes));
    em_u64(em, "bootstrap_allocs", "served while booting", nm_gstat_get(NM_C_bootstrap_allocs));
    em_u64(em, "own_memory_refused", "own memory refused", LD(nm_fallback[NM_FB_OWN_MEMORY]));
    em_bytes(em, "committed_bytes", "committed by mimalloc", nm_fallback_committed());
    em_obj_end(em);
}

static void emit_syscalls(nm_emit_t *em)
{
    static const struct { const char *name; int calls, fails, os; } rows[] = {
        { "mmap", NM_C_mmap_calls, NM_C_mmap_fail, NM_OS_MMAP },
        { "munmap", NM_C_munmap_calls, NM_C_munmap_fail, NM_OS_MUNMAP },
        { "madvise", NM_C_madvise_calls, NM_C_madvise_fail, NM_OS_MADVISE },
        { "mbind", NM_C_mbind_calls, NM_C_mbind_fail, NM_OS_MBIND },
        { "mremap", NM_C_mremap_calls, NM_C_mremap_fail, NM_OS_MREMAP },
        { "move_pages", NM_C_move_pages_calls, NM_C_move_pages_fail, NM_OS_MOVE_PAGES },
    };
    static const nm_col_t cols[] = { { "call", "call", -10 }, { "calls", "calls", 10 }, { "failures", "failures", 9 }, { "last_errno", "errno", 9 } };
    em_table_begin(em, "syscalls", "system calls:", cols, 4);
    for (unsigned i = 0; i < NM_ARRAY_LEN(rows); i++) {
        em_row_begin(em);
        em_cell_str(em, rows[i].name);
        em_cell_u64(em, nm_gstat_get(rows[i].calls));
        em_cell_u64(em, nm_gstat_get(rows[i].fails));
        em_cell_str(em, errno_name(LD(nm_os_last_errno[rows[i].os])));
        em_row_end(em);
    }
    em_table_end(em);
}

static void emit_meta(nm_emit_t *em, const snapshot_t *s, const totals_t *t)
{
    em_obj_begin(em, "metadata", "metadata and housekeeping:");
    em_bytes(em, "pagemap_bytes", "page map (mapped)", nm_gstat_get(NM_C_pagemap_bytes));
    em_bytes(em, "meta_bytes", "descriptors and magazines", nm_gstat_get(NM_C_meta_bytes));
    em_u64(em, "segments", "slab segments now", nm_gstat_get(NM_C_segments));
    em_u64(em, "segments_peak", "slab segments peak", nm_gstat_get(NM_C_segments_peak));
    em_u64(em, "segments_reserved", "segments reserved ahead", nm_gstat_get(NM_C_segments_reserved));
    em_bytes(em, "slab_bytes", "slab pages in use", t->slab_bytes);
    em_bytes(em, "cached_small_bytes", "small blocks cached (not live)", sub0(t->small_held_bytes, t->small_live_bytes));
    em_bytes(em, "purgeable_bytes", "free slab pages not yet purged", t->dirty_bytes);
    em_u64(em, "pages_purged", "slab pages purged (64 KiB)", nm_gstat_get(NM_C_slab_pages_purged));
    em_u64(em, "pages_refaulted", "pages purged at the age, carved again", nm_gstat_get(NM_C_slab_pages_refaulted));
    em_u64(em, "purge_age_ms", "purge age now (ms, longest of the nodes)", t->purge_age_ms);
    em_u64(em, "segments_unmapped", "segments unmapped", nm_gstat_get(NM_C_segments_unmapped));
    em_u64(em, "decay_runs", "decay passes", nm_gstat_get(NM_C_decay_runs));
    em_u64(em, "trim_calls", "malloc_trim calls", nm_gstat_get(NM_C_trim_calls));
    em_u64(em, "node_moves", "threads seen moving node", s->c.thr[NM_C_node_moves]);
    em_u64(em, "realloc_inplace", "reallocs in place", s->c.thr[NM_C_realloc_inplace]);
    em_u64(em, "realloc_moved", "reallocs that moved", s->c.thr[NM_C_realloc_move]);
    em_obj_end(em);
    em_obj_begin(em, "misuse", "misuse (NUMAMALLOC_CHECK=1 aborts on the first):");
    em_u64(em, "invalid_pointers", "invalid pointers passed", nm_gstat_get(NM_C_invalid_free));
    em_u64(em, "foreign_frees", "frees of foreign pointers", s->c.thr[NM_C_foreign_free]);
    em_obj_end(em);
}

static void emit_all(nm_buf_t *b, int mode, const char *why, bool from_signal, const nm_prof_snap_t *ps)
{
    snapshot_t s;
    take_snapshot(&s, from_signal);
    totals_t t;
    compute_totals(&s, &t);
    nm_residency_t res;
    nm_residency_measure(&res, from_signal);
    nm_emit_t em;
    em_begin(&em, b, mode == NM_STATS_JSON ? NM_EM_JSON : NM_EM_TEXT);
    uint64_t up = nm_os_now_ms() - nm_start_ms;
    if (mode == NM_STATS_JSON) {
        em_u64(&em, "schema_version", "schema", NM_JSON_SCHEMA);
        em_str(&em, "allocator", "allocator", "numamalloc");
        em_str(&em, "version", "version", NM_VERSION);
        em_u64(&em, "pid", "pid", (uint64_t)nm_os_getpid());
        em_str(&em, "reason", "reason", why);
        em_u64(&em, "uptime_ms", "uptime", up);
        em_u64(&em, "nodes_with_memory", "nodes", (uint64_t)nm_topo.nmem);
    } else {
        nm_buf_printf(b, "=== numamalloc %s statistics (%s) pid %d, %lu.%03lu s after start, %d node(s) with memory ===\n",
                      NM_VERSION, why, nm_os_getpid(), (unsigned long)(up / 1000), (unsigned long)(up % 1000), nm_topo.nmem);
    }
    emit_config(&em);
    emit_summary(&em, &s, &t, &res);
    emit_held(&em, &t, sub0(t.small_alloc_bytes + t.arena_alloc_bytes + t.large_alloc_bytes,
                            t.small_free_bytes + t.arena_free_bytes + t.large_free_bytes));
    emit_classes(&em, &s);
    emit_nodes(&em, &s);
    emit_residency(&em, &res);
    emit_large(&em, &s, &t);
    emit_arena(&em, &s, &t);
    emit_syscalls(&em);
    emit_meta(&em, &s, &t);
    if (em.mode == NM_EM_JSON) { nm_buf_puts(b, ",\"profile\":"); nm_prof_report(b, NM_EM_JSON, ps); }
    else nm_prof_report(b, NM_EM_TEXT, ps);
    if (mode != NM_STATS_JSON) nm_buf_puts(b, "=== end of numamalloc statistics ===\n");
    em_end(&em);
}

/* ---- destinations ---------------------------------------------------------------------
 * NUMAMALLOC_STATS_FILE is opened for every dump: %p and %t expand (a name that would
 * not fit is refused, never cut short), O_NONBLOCK so that opening a FIFO nobody reads
 * cannot block (the exit, or a signal handler), and anything but a regular file is
 * refused. Every refusal says why in one line and the dump goes to stderr. */

/* refusals of NUMAMALLOC_STATS_FILE: one line the first time (a dump every second,
 * or on every signal, would repeat it), stderr every time */
static int dest_warned;

static int open_dest(void)
{
    static const char instead[] = "writing the dump to stderr";
    if (nm_opt.stats_file[0] == '\0') return 2;
    char path[NM_DEST_MAX];
    if (!nm_dest_expand("NUMAMALLOC_STATS_FILE", nm_opt.stats_file, path, sizeof path, instead, &dest_warned)) return 2;
    int fd = nm_dest_open("NUMAMALLOC_STATS_FILE", path, instead, &dest_warned);
    return fd < 0 ? 2 : fd;
}

static void dump_to(int fd, int mode, const char *why, bool from_signal, const nm_prof_snap_t *ps)
{
    char space[4096];
    nm_buf_t b;
    nm_buf_init(&b, space, sizeof space, fd);
    emit_all(&b, mode, why, from_signal, ps);
    nm_buf_flush(&b);
}

/* Dumps are serialised by nm_stats_dump_lock, taken only here and by fork. Nobody ever
 * waits for it without a bound: everyone gives up after 2 s with one line saying so.
 * A signal handler waits only while another thread's dump holds it (dump_owner): one
 * its own thread was interrupted in would never end, and fork (owner 0) is not waited
 * for either. Two signals close together thus give two dumps. */
static int dump_owner;                  /* tid of the dump holding the lock; 0: none or fork */

static bool dump_lock(bool from_signal)
{
    int self = (int)syscall(SYS_gettid);
    bool locked = nm_trylock(&nm_stats_dump_lock);
    for (int i = 0; !locked && i < 2000; i++) {
        int owner = nm_load_relaxed(&dump_owner);
        if (from_signal && (owner == 0 || owner == self)) break;
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
        locked = nm_trylock(&nm_stats_dump_lock);
    }
    if (locked) nm_store_relaxed(&dump_owner, self);
    return locked;
}

static void dump_unlock(void)
{
    nm_store_relaxed(&dump_owner, 0);
    nm_unlock(&nm_stats_dump_lock);
}

static const char busy_msg[] = "numamalloc: statistics dump skipped: another dump is in progress\n";

/* a dump of mode to fd (-1: the configured destination); the profile's frames are
 * named before any lock of ours is taken (src/profile.c says why) */
static void dump(int fd, int mode, const char *why, bool from_signal)
{
    if (__atomic_load_n(&nm_pstate, __ATOMIC_ACQUIRE) != NM_P_READY || snap_dom == NULL) return;
    int saved = errno;
    nm_tcache_t *tc = nm_tcp;
    bool own = tc->state == NM_T_ACTIVE;       /* the empty and dead caches are read-only */
    uint8_t busy = tc->busy;
    if (own) tc->busy = 1;                     /* nothing we call may sample */
    nm_prof_snap_t ps;
    nm_prof_snapshot(&ps, !from_signal);
    if (dump_lock(from_signal)) {
        int out = fd >= 0 ? fd : open_dest();
        dump_to(out, mode, why, from_signal, &ps);
        if (fd < 0 && out != 2) syscall(SYS_close, out);
        dump_unlock();
    } else {
        nm_write_all(2, busy_msg, sizeof busy_msg - 1);
    }
    nm_prof_snap_release(&ps);
    if (own) tc->busy = busy;
    errno = saved;
}

void nm_stats_dump(const char *why) { dump(-1, nm_opt.stats == NM_STATS_OFF ? NM_STATS_TEXT : nm_opt.stats, why, false); }

void nm_stats_dump_fd(int fd, int mode, const char *why) { dump(fd, mode, why, false); }

size_t nm_stats_print(char *buf, size_t len, int mode)
{
    if (nm_load_acquire(&nm_pstate) != NM_P_READY || snap_dom == NULL) { if (len) buf[0] = '\0'; return 0; }
    nm_buf_t b;
    nm_buf_init(&b, buf, len, -1);
    nm_tcache_t *tc = nm_tcp;
    bool own = tc->state == NM_T_ACTIVE;
    uint8_t busy = tc->busy;
    if (own) tc->busy = 1;
    nm_prof_snap_t ps;
    nm_prof_snapshot(&ps, true);
    if (dump_lock(false)) {
        emit_all(&b, mode, "api", false, &ps);
        dump_unlock();
    } else {
        nm_buf_puts(&b, busy_msg);
    }
    nm_prof_snap_release(&ps);
    if (own) tc->busy = busy;
    return nm_buf_finish(&b);
}

/* ---- signal and interval triggers ------------------------------------------------------ */

static void on_signal(int sig)
{
    (void)sig;
    dump(-1, nm_opt.stats == NM_STATS_OFF ? NM_STATS_TEXT : nm_opt.stats, "signal", true);
    nm_prof_write_files("signal", true);
}

static void *interval_thread(void *arg)
{
    (void)arg;
    for (;;) {
        struct timespec ts = { (time_t)nm_opt.stats_interval, 0 };
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
        nm_stats_dump("interval");
        nm_prof_write_files("interval", false);
    }
    return NULL;
}

/* the interval thread, with every signal blocked (they belong to the program) */
static void start_interval_thread(void)
{
    if (nm_os_thread_start(interval_thread, "numamalloc-dump") != 0)
        nm_warn("NUMAMALLOC_STATS_INTERVAL: cannot start the dump thread: no periodic dumps");
}

void nm_stats_start_triggers(void)
{
    if (nm_opt.stats_signal) {
        struct sigaction sa = { 0 };
        sa.sa_handler = on_signal;
        sa.sa_flags = SA_RESTART;
        sigemptyset(&sa.sa_mask);
        if (sigaction(nm_opt.stats_signal, &sa, NULL) != 0)
            nm_warn("NUMAMALLOC_STATS_SIGNAL: sigaction failed (errno %d): no dumps on signal", errno);
    }
    if (nm_opt.stats_interval) start_interval_thread();
}

/* a forked child has no interval thread: it gets its own (the signal handler is
 * inherited) */
void nm_stats_fork_child(void)
{
    if (nm_opt.stats_interval) start_interval_thread();
}

/* ---- NUMAMALLOC_VERBOSE=1 --------------------------------------------------------------- */

void nm_verbose_print(void)
{
    char space[2048];
    nm_buf_t b;
    nm_buf_init(&b, space, sizeof space, 2);
    nm_buf_printf(&b, "numamalloc %s: %d node(s) online, %d with memory, %d CPU(s), NUMA sysfs %s\n",
                  NM_VERSION, nm_topo.nnodes, nm_topo.nmem, nm_topo.max_cpu + 1, nm_topo.sysfs ? "present" : "absent");
    for (int n = 0; n <= nm_topo.max_node; n++) {
        if (!nm_topo.node[n].online) continue;
        long hf = nm_topo_free_hugepages(nm_topo.sysfs ? n : -1, 2048);
        long ht = nm_topo_nr_hugepages(nm_topo.sysfs ? n : -1, 2048);
        nm_buf_printf(&b, "numamalloc:   node %d: %u CPU(s), ", n, nm_topo.node[n].ncpus);
        nm_buf_size(&b, nm_topo.node[n].mem_total);
        nm_buf_printf(&b, ", hugetlb 2M free %ld of %ld, distances", hf, ht);
        for (int m = 0; m <= nm_topo.max_node; m++)
            if (nm_topo.node[m].online) nm_buf_printf(&b, " %d", nm_topo_distance(n, m));
        nm_buf_puts(&b, "\n");
    }
    nm_buf_printf(&b, "numamalloc:   transparent huge pages: %s\n",
                  nm_thp_mode == 0 ? "never" : nm_thp_mode == 1 ? "madvise" : "always");
    for (int i = 0; i < NM_OPT_N; i++)
        nm_buf_printf(&b, "numamalloc:   NUMAMALLOC_%s=%s%s\n", nm_option_table[i].name, nm_opt.raw[i],
                      nm_opt.from_env[i] ? "" : " (default)");
    nm_buf_flush(&b);
}
