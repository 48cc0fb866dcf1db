/* numamalloc — the public numamalloc_* API and glibc's malloc extras (malloc_trim,
 * mallinfo2, mallinfo, mallopt, malloc_stats, malloc_info).
 *
 * Exported through preload/interpose.c. Nothing here is on a hot path; the
 * placement calls bypass the thread cache so that a block lands on the node asked
 * for whatever the calling thread's own domain is. No locks of its own. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "numamalloc/internal.h"
#include "numamalloc/fastpath.h"
#include "numamalloc.h"

static nm_tcache_t *api_tcache(void) { return nm_thread_cache(); }

const char *nm_api_version(void) { return NM_VERSION; }

void *nm_api_alloc_onnode(size_t size, int node)
{
    nm_tcache_t *tc = api_tcache();
    if (tc == NULL) { errno = EAGAIN; return NULL; }
    if (!nm_topo_has_memory(node)) { errno = EINVAL; return NULL; }
    if (size > PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
    if (tc->state == NM_T_ACTIVE && (uint32_t)node == tc->domain) return nm_alloc_any(tc, size, 0, false);
    if (size <= NM_SMALL_MAX) return nm_small_alloc_direct((uint32_t)node, nm_size_class(size), size);
    return nm_large_alloc(tc, (uint32_t)node, size, 0, false);
}

void *nm_api_alloc_interleaved(size_t size)
{
    nm_tcache_t *tc = api_tcache();
    if (tc == NULL) { errno = EAGAIN; return NULL; }
    if (nm_topo.nmem <= 1) return nm_alloc_any(tc, size, 0, false);
    return nm_large_alloc(tc, nm_dom_interleave, size, 0, false);
}

int nm_api_node_of(const void *p)
{
    nm_pme_t e = nm_pagemap_get((uintptr_t)p);
    unsigned kind = nm_pme_kind(e);
    if (kind == NM_KIND_NONE) return -1;
    if ((kind == NM_KIND_LARGE || kind == NM_KIND_HUGE) && ((const nm_large_t *)nm_pme_desc(e))->tcached) return -1;
    return nm_domain_node(nm_pme_domain(e));
}

int nm_api_block_info(const void *p, struct numamalloc_block_info *info)
{
    nm_pme_t e = nm_pagemap_get((uintptr_t)p);
    unsigned kind = nm_pme_kind(e);
    memset(info, 0, sizeof *info);
    info->node = -1;
    info->size_class = -1;
    if (kind == NM_KIND_NONE || p == NULL) { errno = EINVAL; return -1; }
    info->kind = (int)kind;
    info->node = nm_domain_node(nm_pme_domain(e));
    if (kind == NM_KIND_SLAB) {
        if (nm_small_check(p, e)) { errno = EINVAL; info->kind = 0; info->node = -1; return -1; }
        info->size_class = (int)nm_pme_class(e);
        info->usable_size = nm_class_size[nm_pme_class(e)];
        info->pages = NUMAMALLOC_PAGES_4K;
    } else if (kind == NM_KIND_LARGE || kind == NM_KIND_HUGE) {
        const nm_large_t *L = nm_pme_desc(e);
        /* interior, or freed and kept by the freeing thread (still in the page map) */
        if (p != L->user || L->tcached) { errno = EINVAL; info->kind = 0; info->node = -1; return -1; }
        info->usable_size = nm_large_usable(L);
        info->pages = L->backing;
    } else {
        if (nm_fallback_check(p)) { errno = EINVAL; info->kind = 0; info->node = -1; return -1; }
        info->usable_size = nm_fallback_usable(p);
        info->pages = NUMAMALLOC_PAGES_4K;
    }
    /* NUMAMALLOC_CHECK=1: what malloc_usable_size says, the size asked for (writing
     * past it is what the canary catches) */
    if (nm_opt.check) info->usable_size = nm_usable_size(p);
    return 0;
}

size_t nm_api_stats_print(char *buf, size_t len) { return nm_stats_print(buf, len, NM_STATS_TEXT); }
size_t nm_api_stats_json(char *buf, size_t len) { return nm_stats_print(buf, len, NM_STATS_JSON); }

const char *nm_api_option_get(const char *name)
{
    if (name == NULL || !nm_process_init()) return NULL;
    if (nm_strncmp(name, "NUMAMALLOC_", 11) == 0) name += 11;
    for (int i = 0; i < NM_OPT_N; i++)
        if (nm_strcmp(nm_option_table[i].name, name) == 0) return nm_opt.raw[i];
    return NULL;
}

/* ---- glibc extras ------------------------------------------------------------------------ */

int nm_malloc_trim(size_t pad)
{
    (void)pad;
    if (!nm_process_init()) return 0;
    nm_gstat_add(NM_C_trim_calls, 1);
    nm_tcache_t *tc = nm_tcp;
    uint64_t before_rss = nm_os_rss();
    uint64_t before_seg = nm_gstat_get(NM_C_segments), before_purged = nm_gstat_get(NM_C_slab_pages_purged);
    uint64_t before_evict = nm_gstat_get(NM_C_large_cache_evict);
    if (tc->state == NM_T_ACTIVE) {                            /* this thread's caches */
        nm_tcache_flush_all(tc);
        nm_fallback_cache_flush(tc);
    }
    nm_decay(true);                                            /* everything idle, now */
    nm_fallback_collect(true);
    uint64_t after_rss = nm_os_rss();
    return (after_rss < before_rss || nm_gstat_get(NM_C_segments) < before_seg ||
            nm_gstat_get(NM_C_slab_pages_purged) > before_purged ||
            nm_gstat_get(NM_C_large_cache_evict) > before_evict) ? 1 : 0;
}

typedef struct heap_numbers {
    uint64_t live, held_free, large_live_count, large_live_bytes, releasable, footprint_peak, arena_bytes;
} heap_numbers_t;

static void heap_numbers(heap_numbers_t *h)
{
    memset(h, 0, sizeof *h);
    uint64_t slab = 0, dirty = 0, cache = 0, held = 0;
    for (uint32_t d = 0; d < nm_ndomains; d++) {
        nm_domain_t *dm = &nm_domains[d];
        slab += __atomic_load_n(&dm->slab_pages, __ATOMIC_RELAXED) << NM_GRANULE_SHIFT;
        dirty += __atomic_load_n(&dm->dirty_pages, __ATOMIC_RELAXED) << NM_GRANULE_SHIFT;
        cache += __atomic_load_n(&dm->cache_bytes, __ATOMIC_RELAXED);
        for (unsigned c = 0; c < NM_NUM_CLASSES; c++)
            held += __atomic_load_n(&dm->depots[c].held, __ATOMIC_RELAXED) * nm_class_size[c];
    }
    uint64_t large = nm_gstat_get(NM_C_large_live_bytes);
    /* fallback-arena bytes reach the global footprint in per-thread batches: add
     * every live thread's pending batch so the numbers are exact */
    int64_t pending = 0;
    nm_lock(&nm_threads_lock);
    for (nm_tcache_t *tc = nm_threads; tc; tc = tc->next) pending += __atomic_load_n(&tc->fp_pending, __ATOMIC_RELAXED);
    nm_unlock(&nm_threads_lock);
    uint64_t fp = (uint64_t)((int64_t)nm_gstat_get(NM_C_footprint) + pending);
    h->large_live_bytes = large;
    h->large_live_count = nm_stats_thread_counter(NM_C_large_alloc) - nm_stats_thread_counter(NM_C_large_free);
    h->arena_bytes = fp > held + large ? fp - held - large : 0;
    h->live = fp;                          /* live + cached in thread magazines */
    h->held_free = (slab > held ? slab - held : 0) + dirty + cache;
    h->releasable = dirty + cache;
    h->footprint_peak = NM_MAX(nm_gstat_get(NM_C_footprint_peak), fp);
}

struct mallinfo2 nm_mallinfo2(void)
{
    struct mallinfo2 m;
    memset(&m, 0, sizeof m);
    if (!nm_process_init()) return m;
    heap_numbers_t h;
    heap_numbers(&h);
    m.arena = h.live - h.large_live_bytes + h.held_free;   /* non-mmapped heap: slabs and arena */
    m.hblks = h.large_live_count;                          /* own mappings */
    m.hblkhd = h.large_live_bytes;
    m.uordblks = h.live;                                   /* in use (incl. thread caches) */
    m.fordblks = h.held_free;                              /* held but free */
    m.keepcost = h.releasable;                             /* what malloc_trim can return now */
    m.usmblks = h.footprint_peak;
    return m;
}

static size_t clamp_int(uint64_t v) { return v > 0x7fffffff ? 0x7fffffff : (size_t)v; }

struct mallinfo nm_mallinfo(void)
{
    struct mallinfo2 m2 = nm_mallinfo2();
    struct mallinfo m;
    memset(&m, 0, sizeof m);
    m.arena = (int)clamp_int(m2.arena);
    m.hblks = (int)clamp_int(m2.hblks);
    m.hblkhd = (int)clamp_int(m2.hblkhd);
    m.uordblks = (int)clamp_int(m2.uordblks);
    m.fordblks = (int)clamp_int(m2.fordblks);
    m.keepcost = (int)clamp_int(m2.keepcost);
    m.usmblks = (int)clamp_int(m2.usmblks);
    return m;
}

/* glibc documents mallopt as returning 1 on success and 0 on error; none of its
 * parameters applies to numamalloc (use NUMAMALLOC_*), so they are accepted and
 * ignored, and an unknown parameter number is the error */
int nm_mallopt(int param, int value)
{
    (void)value;
    switch (param) {
    case M_MXFAST: case M_TRIM_THRESHOLD: case M_TOP_PAD: case M_MMAP_THRESHOLD: case M_MMAP_MAX:
    case M_CHECK_ACTION: case M_PERTURB: case M_ARENA_TEST: case M_ARENA_MAX:
        return 1;
    default:
        return 0;
    }
}

void nm_malloc_stats(void)
{
    if (!nm_process_init()) return;
    nm_stats_dump_fd(2, NM_STATS_TEXT, "malloc_stats");
}

int nm_malloc_info(int options, void *fpv)
{
    FILE *fp = fpv;
    if (options != 0) { errno = EINVAL; return -1; }
    if (!nm_process_init() || fp == NULL) return 0;
    struct mallinfo2 m = nm_mallinfo2();
    fprintf(fp, "<malloc version=\"numamalloc-%s\">\n", NM_VERSION);
    fprintf(fp, "<total type=\"inuse\" size=\"%zu\"/>\n", m.uordblks);
    fprintf(fp, "<total type=\"free\" size=\"%zu\"/>\n", m.fordblks);
    fprintf(fp, "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n", m.hblks, m.hblkhd);
    fprintf(fp, "<system type=\"current\" size=\"%zu\"/>\n", m.arena + m.hblkhd);
    fprintf(fp, "<system type=\"max\" size=\"%zu\"/>\n", m.usmblks);
    fprintf(fp, "</malloc>\n");
    return 0;
}
