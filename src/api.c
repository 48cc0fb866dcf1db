/* numamalloc — the public numamalloc_* API and glibc's malloc extras (malloc_trim,
 * mallinfo2, mallinfo, mallopt, malloc_stats, malloc_info).
 *
 * Exported through preload/interpose.c. Nothing here is on a hot path; the
 * placement calls bypass the thread cache so that a block lands on the node asked
 * for whatever the calling thread's own domain is. Per-thread policies are parsed
 * and kept by src/policy.c; a thread's domain changes here, as when it migrates.
 * No locks of its own. */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#include "numamalloc/internal.h"
#include "numamalloc/fastpath.h"
#include "numamalloc.h"

const char *nm_api_version(void) { return NM_VERSION; }

/* Blocks placed as asked whatever the calling thread's own domain is: straight from
 * the slabs of the node's domain (small and medium sizes) or an own mapping bound to
 * it. Strict (the default): the node's strict twin (MPOL_BIND, faulted in, refused
 * when the node has no room: src/policy.c); spill: the node's own domain
 * (MPOL_PREFERRED). */
static void *onnode_alloc(nm_tcache_t *tc, uint32_t dom, size_t size)
{
    if (size <= NM_SMALL_MAX || (size <= NM_MEDIUM_MAX && size < nm_opt.large_threshold)) {
        unsigned cls = (unsigned)nm_class_of(size);
        void *p = nm_small_alloc_direct(dom, cls, size);
        if (p) {
            nm_counters_t *c = nm_tc_ctr(tc);
            nm_count(c, NM_CT_CLASS, cls, NM_C_alloc_slow, 1);
            nm_count(c, NM_CT_DOMAIN, dom, NM_C_alloc_count, 1);
            nm_count(c, NM_CT_DOMAIN, dom, NM_C_alloc_bytes, nm_class_size[cls]);
            if (c && nm_domain_is_remote(dom, tc->cpu_node)) nm_count(c, NM_CT_DOMAIN, dom, NM_C_remote_alloc, 1);
        }
        return p;
    }
    return nm_large_alloc(tc, dom, size, 0, false);
}

void *nm_api_alloc_onnode_flags(size_t size, int node, int flags)
{
    nm_tcache_t *tc = nm_thread_ready();
    if (tc == NULL) { errno = EAGAIN; return NULL; }
    if ((flags & ~NUMAMALLOC_ONNODE_SPILL) != 0 || !nm_topo_has_memory(node)) { errno = EINVAL; return NULL; }
    if (size > PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
    bool spill = (flags & NUMAMALLOC_ONNODE_SPILL) != 0;
    uint32_t dom = spill ? (uint32_t)node : nm_policy_strict_domain(node);
    /* the thread's own cache may serve a spill request (it falls back like any malloc) */
    if (spill && tc->state == NM_T_ACTIVE && dom == tc->domain) return nm_alloc_any(tc, size, 0, false);
    void *p = onnode_alloc(tc, dom, size);
    if (p == NULL && nm_reclaim(tc)) p = onnode_alloc(tc, dom, size);   /* our idle memory may be in the way */
    if (p == NULL) errno = ENOMEM;
    return p;
}

void *nm_api_alloc_onnode(size_t size, int node) { return nm_api_alloc_onnode_flags(size, node, 0); }

void *nm_api_alloc_interleaved(size_t size)
{
    nm_tcache_t *tc = nm_thread_ready();
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

int nm_api_resident_node(const void *p)
{
    struct numamalloc_block_info bi;
    if (nm_thread_ready() == NULL) { errno = EAGAIN; return -1; }
    if (nm_api_block_info(p, &bi) != 0) return -1;
    void *page = (void *)nm_align_down((uintptr_t)p, nm_os_page);
    int st = -ENOENT;
    if (!nm_os_page_nodes(1, &page, &st)) { errno = nm_os_last_errno[NM_OS_MOVE_PAGES]; return -1; }
    if (st < 0) { errno = -st; return -1; }
    return st;
}

int nm_api_block_info(const void *p, struct numamalloc_block_info *info)
{
    nm_pme_t e = nm_pagemap_get((uintptr_t)p);
    unsigned kind = nm_pme_kind(e);
    memset(info, 0, sizeof *info);
    info->node = -1;
    info->size_class = -1;
    if (p == NULL) { errno = EINVAL; return -1; }
    if (kind == NM_KIND_SLAB || kind == NM_KIND_MEDIUM) {
        if (nm_small_check(p, e)) { errno = EINVAL; return -1; }
        kind = NM_KIND_SLAB;                              /* to the program, both are slab blocks */
        info->size_class = (int)nm_pme_class(e);
        info->usable_size = nm_class_size[nm_pme_class(e)];
        info->pages = NUMAMALLOC_PAGES_4K;
    } else if (kind == NM_KIND_LARGE || kind == NM_KIND_HUGE) {
        const nm_large_t *L = nm_pme_desc(e);
        if (nm_large_check(L, p)) { errno = EINVAL; return -1; }
        info->usable_size = nm_large_usable(L);
        info->pages = L->backing;
    } else if (nm_fallback_owns(p)) {
        kind = NM_KIND_ARENA;
        info->usable_size = nm_fallback_usable(p);
        info->pages = NUMAMALLOC_PAGES_4K;
    } else {
        errno = EINVAL;
        return -1;
    }
    info->kind = (int)kind;
    info->node = kind == NM_KIND_ARENA ? -1 : nm_domain_node(nm_pme_domain(e));
    /* NUMAMALLOC_CHECK=1: what malloc_usable_size says, the size asked for (writing
     * past it is what the canary catches) */
    if (nm_opt.check) info->usable_size = nm_usable_size(p);
    return 0;
}

/* ---- per-thread policy and topology ------------------------------------------------------ */

int nm_api_thread_policy_set(const char *text)
{
    nm_tcache_t *tc = nm_thread_ready();
    if (tc == NULL || tc->state != NM_T_ACTIVE) { errno = EAGAIN; return -1; }
    bool ok;
    uint8_t t = nm_policy_thread_parse(text, &ok);
    if (!ok) return -1;
    tc->tpol = t;
    nm_large_settle(tc);
    tc->cpu_node = nm_topo_cpu_node(nm_os_cpu());
    nm_tcache_set_domain(tc, nm_policy_domain_for_thread(t, tc->cpu_node));
    return 0;
}

int nm_api_thread_policy_get(char *buf, size_t len)
{
    if (buf == NULL || len == 0) { errno = EINVAL; return -1; }
    nm_tcache_t *tc = nm_thread_ready();
    if (tc == NULL) { errno = EAGAIN; return -1; }
    uint8_t t = tc->state == NM_T_ACTIVE ? tc->tpol : 0;
    const char *s = nm_policy_thread_text(t);
    if (nm_strlen(s) >= len) { buf[0] = '\0'; errno = ERANGE; return -1; }
    nm_copy_cstr(buf, len, s);
    return t ? 1 : 0;
}

int nm_api_nodes_with_memory(int *nodes, int len)
{
    if (nm_thread_ready() == NULL) { errno = EAGAIN; return -1; }
    if (len < 0 || (len > 0 && nodes == NULL)) { errno = EINVAL; return -1; }
    int k = 0;
    for (int n = 0; n <= nm_topo.max_node; n++) {
        if (!nm_topo_has_memory(n)) continue;
        if (k < len) nodes[k] = n;
        k++;
    }
    return k;
}

int nm_api_node_of_cpu(int cpu)
{
    if (nm_thread_ready() == NULL) { errno = EAGAIN; return -1; }
    if (cpu < 0 || cpu > nm_topo.max_cpu) { errno = EINVAL; return -1; }
    return nm_topo_cpu_node(cpu);
}

int nm_api_current_node(void)
{
    if (nm_thread_ready() == NULL) { errno = EAGAIN; return -1; }
    return nm_topo_cpu_node(nm_os_cpu());
}

int nm_api_node_distance(int a, int b)
{
    if (nm_thread_ready() == NULL) { errno = EAGAIN; return -1; }
    if (a < 0 || b < 0 || a > nm_topo.max_node || b > nm_topo.max_node || !nm_topo.node[a].online || !nm_topo.node[b].online) {
        errno = EINVAL;
        return -1;
    }
    return nm_topo_distance(a, b);
}

/* the process boots first if this is its first allocator call */
size_t nm_api_stats_print(char *buf, size_t len) { nm_thread_ready(); return nm_stats_print(buf, len, NM_STATS_TEXT); }
size_t nm_api_stats_json(char *buf, size_t len) { nm_thread_ready(); return nm_stats_print(buf, len, NM_STATS_JSON); }

const char *nm_api_option_get(const char *name)
{
    if (name == NULL || nm_thread_ready() == NULL) return NULL;
    if (nm_strncmp(name, "NUMAMALLOC_", 11) == 0) name += 11;
    for (int i = 0; i < NM_OPT_N; i++)
        if (nm_strcmp(nm_option_table[i].name, name) == 0) return nm_opt.raw[i];
    return NULL;
}

/* ---- glibc extras ------------------------------------------------------------------------ */

int nm_malloc_trim(size_t pad)
{
    (void)pad;
    if (nm_thread_ready() == NULL) return 0;
    int saved = errno;
    nm_gstat_add(NM_C_trim_calls, 1);
    uint64_t before_rss = nm_os_rss();
    bool released = nm_reclaim(nm_tcp);
    int r = (released || nm_os_rss() < before_rss) ? 1 : 0;
    errno = saved;
    return r;
}

struct mallinfo2 nm_mallinfo2(void)
{
    struct mallinfo2 m;
    memset(&m, 0, sizeof m);
    if (nm_thread_ready() == NULL) return m;
    nm_heap_numbers_t h;
    nm_stats_heap_numbers(&h);
    m.arena = h.live - h.large_live_bytes - h.cached_large + h.held_free;   /* slabs and fallback */
    m.hblks = h.large_live_count;                          /* own mappings */
    m.hblkhd = h.large_live_bytes;
    m.uordblks = h.live - h.cached_large;                  /* in use (incl. thread caches) */
    m.fordblks = h.held_free + h.cached_large;             /* held but free */
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
    if (nm_thread_ready() == NULL) return;
    nm_stats_dump_fd(2, NM_STATS_TEXT, "malloc_stats");
}

int nm_malloc_info(int options, void *fpv)
{
    FILE *fp = fpv;
    if (options != 0) { errno = EINVAL; return -1; }
    if (nm_thread_ready() == NULL || fp == NULL) return 0;
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
