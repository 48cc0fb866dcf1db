/* numamalloc — the fallback arena: mimalloc 2.0.9 (Debian's libmimalloc2.0) on
 * memory we reserve and bind. The only file that includes mimalloc.h.
 *
 * What it serves: medium blocks (32 KiB < size < NUMAMALLOC_LARGE_THRESHOLD), the
 * profiler's sampled small blocks, and every allocation made while the allocator is
 * booting (mimalloc works before its own constructor and ours).
 *
 * NUMA: at start-up we reserve, per domain that threads can use (each node with
 * memory under local and bind, the one node of preferred:N, the interleaved domain),
 * address space equal to the node's memory (PROT_NONE, so nothing is charged until
 * mimalloc commits it with mprotect, which keeps the binding), mbind it, and hand it
 * to mimalloc as an *exclusive* arena (mi_manage_os_memory_ex). Each thread gets its
 * own mimalloc heap in its domain's arena (mi_heap_new_in_arena), created on first
 * use and replaced when the thread moves to another domain. Exclusive, because
 * mimalloc 2.0.9's segment cache hands a freed segment to any thread that asks
 * unless the request names an arena: with shared arenas a thread on node 1 got node
 * 0's cached segments (measured in the 2- and 4-node VMs: medium blocks 0 % local).
 * Abandoned segments of an exclusive arena are reclaimed by that arena's heaps.
 *
 * Medium cache: mimalloc 2.0.9 retires a page when its last block is freed and
 * schedules a decommit with clock_gettime, so a 256 KiB scratch buffer freed and
 * taken again in a loop cost ~90 ns (20x tcmalloc, whose thread cache covers 256
 * KiB). Each thread keeps up to NM_MED_CAP freed blocks per medium class (40 KiB ..
 * 1 MiB, 4 per doubling; blocks are allocated at their class size so any request of
 * the class fits) within per-thread and global byte bounds (config.h); only blocks
 * of the thread's own domain. The cache empties when the thread exits or moves
 * node, and on malloc_trim.
 *
 * Thread exit: mimalloc deletes a thread's extra heaps in its own pthread-key
 * destructor, which may run before ours. So each thread (but main) registers a C++-
 * style TLS destructor (__cxa_thread_atexit_impl), which glibc runs before any key
 * destructor: it deletes our heap while it is certainly alive and marks the thread as
 * exiting; medium blocks asked for after that get their own mapping (large path).
 *
 * Page map: when mimalloc hands us a block in one of our arenas, the 32 MiB chunk
 * around it is registered (kind ARENA, once per chunk), so free() knows it in O(1).
 * Blocks outside the arenas (bootstrap, arena full) are recognised on free by
 * mi_is_in_heap_region: correct, a little slower.
 *
 * Fork: mimalloc 2.0.9 has no fork handlers, and one call can leave a mark that only
 * the same call clears: freeing another thread's block into a full page sets the
 * page's MI_DELAYED_FREEING while the block is linked into its owner heap's delayed
 * list. A fork at that moment copies the mark into the child, where nobody clears
 * it, and whatever waits for it there (mi_heap_delete at thread exit, a page
 * filling up) spins forever (tests/life: about 1 child in 250 forked by a busy
 * thread hung in mi_heap_delete). So every call into mimalloc passes a gate that
 * fork's prepare handler closes, after waiting for the threads inside to leave.
 *
 * MIMALLOC_* variables: mimalloc read them while it loaded (before us). At start-up
 * we pin every option that changes behaviour to our value with mi_option_set, and
 * warn once naming any MIMALLOC_* variable set in the environment. Options acted on
 * during mimalloc's own load (MIMALLOC_RESERVE_*) may already have taken effect.
 * Locks: gate_lock, held by a forking thread from prepare to parent/child; no other
 * lock of ours is taken inside the gate (mimalloc is thread-safe). */
#include <errno.h>
#include <mimalloc.h>
#include <sched.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "numamalloc/internal.h"

#define MAX_ARENAS 63                      /* mimalloc 2.0.9: MI_MAX_ARENAS 64 */

typedef struct nm_arena {
    char    *start;
    size_t   size;
    uint32_t domain;
    int      mi_id;
} nm_arena_t;

static nm_arena_t arenas[MAX_ARENAS];
static unsigned narenas;
extern char **environ;

unsigned nm_fallback_arena_count(void) { return narenas; }

/* ---- fork gate --------------------------------------------------------------------------
 * Threads inside mimalloc are counted in stripes chosen by CPU (no line bounces
 * between threads on different CPUs); a thread keeps its stripe from enter to exit.
 * Dekker-style: the caller increments, then reads closed; the closer sets closed,
 * then reads the counts; both sequentially consistent, so one of them sees the
 * other. A caller that finds the gate closed backs out and waits on gate_lock. */
#define GATE_STRIPES 16
static struct { unsigned n; } NM_ALIGNED(64) gate[GATE_STRIPES];
static int gate_closed;
static nm_lock_t gate_lock = NM_LOCK_INIT;

static unsigned gate_enter(void)
{
    unsigned s = (unsigned)nm_os_cpu() % GATE_STRIPES;
    for (;;) {
        __atomic_fetch_add(&gate[s].n, 1, __ATOMIC_SEQ_CST);
        if (NM_LIKELY(!__atomic_load_n(&gate_closed, __ATOMIC_SEQ_CST))) return s;
        __atomic_fetch_sub(&gate[s].n, 1, __ATOMIC_RELEASE);
        nm_lock(&gate_lock);                  /* until the fork is done */
        nm_unlock(&gate_lock);
    }
}

static void gate_exit(unsigned s) { __atomic_fetch_sub(&gate[s].n, 1, __ATOMIC_RELEASE); }

void nm_fallback_fork_close(void)
{
    nm_lock(&gate_lock);
    __atomic_store_n(&gate_closed, 1, __ATOMIC_SEQ_CST);
    for (unsigned s = 0; s < GATE_STRIPES; s++)
        while (__atomic_load_n(&gate[s].n, __ATOMIC_SEQ_CST) != 0) sched_yield();
}

void nm_fallback_fork_open(bool child)
{
    if (child) {
        /* a caller that had just incremented (and would have backed out) is not here */
        for (unsigned s = 0; s < GATE_STRIPES; s++) __atomic_store_n(&gate[s].n, 0, __ATOMIC_RELAXED);
        nm_lock_reinit(&gate_lock);
        __atomic_store_n(&gate_closed, 0, __ATOMIC_SEQ_CST);
        return;
    }
    __atomic_store_n(&gate_closed, 0, __ATOMIC_SEQ_CST);
    nm_unlock(&gate_lock);
}

uint64_t nm_fallback_reserved_bytes(void)
{
    uint64_t t = 0;
    for (unsigned i = 0; i < narenas; i++) t += arenas[i].size;
    return t;
}

static void pin_options(void)
{
    int nodes = nm_topo.max_node + 1;
    mi_option_set(mi_option_show_errors, 0);
    mi_option_set(mi_option_show_stats, 0);
    mi_option_set(mi_option_verbose, 0);
    mi_option_set(mi_option_eager_commit, 1);
    mi_option_set(mi_option_large_os_pages, 0);
    mi_option_set(mi_option_reserve_huge_os_pages, 0);
    mi_option_set(mi_option_reserve_huge_os_pages_at, -1);
    mi_option_set(mi_option_reserve_os_memory, 0);
    mi_option_set(mi_option_page_reset, 0);
    mi_option_set(mi_option_abandoned_page_decommit, 0);
    mi_option_set(mi_option_eager_commit_delay, 1);
    /* mimalloc returns free pages on the same schedule as the rest of the heap */
    mi_option_set(mi_option_decommit_delay, (long)NM_MIN(nm_opt.decay_ms, 1000000u));
    mi_option_set(mi_option_use_numa_nodes, nodes);
    mi_option_set(mi_option_limit_os_alloc, 0);
    mi_option_set(mi_option_allow_decommit, 1);
    mi_option_set(mi_option_segment_decommit_delay, (long)NM_MIN(nm_opt.decay_ms, 1000000u));
    mi_option_set(mi_option_decommit_extend_delay, 1);
    mi_option_set(mi_option_destroy_on_exit, 0);

    char names[256];
    nm_buf_t b;
    nm_buf_init(&b, names, sizeof names, -1);
    unsigned found = 0;
    for (char **e = environ; e && *e; e++) {
        if (nm_strncmp(*e, "MIMALLOC_", 9) != 0) continue;
        const char *eq = *e;
        while (*eq && *eq != '=') eq++;
        if (found++) nm_buf_puts(&b, ", ");
        nm_buf_put(&b, *e, (size_t)(eq - *e));
    }
    nm_buf_finish(&b);
    if (found)
        nm_warn("%s ignored: numamalloc pins the options of its fallback arena (mimalloc); "
                "MIMALLOC_RESERVE_* may have acted while mimalloc loaded", names);
}

static bool arena_add(uint32_t dom, int mi_node, size_t size)
{
    if (narenas >= MAX_ARENAS) return false;
    size = nm_align_up(size, NM_ARENA_ALIGN);
    char *p = nm_os_reserve(size, NM_ARENA_ALIGN);
    if (p == NULL) return false;
    nm_policy_bind(dom, p, size);                 /* before mimalloc commits or touches it */
    mi_arena_id_t id;
    if (!mi_manage_os_memory_ex(p, size, false, false, true, mi_node, true, &id)) {
        nm_os_unmap(p, size);
        return false;
    }
    arenas[narenas] = (nm_arena_t){ .start = p, .size = size, .domain = dom, .mi_id = id };
    narenas++;
    return true;
}

static size_t reserve_for(int node)
{
    if (nm_opt.arena_reserve) return nm_opt.arena_reserve;
    uint64_t m = node >= 0 ? nm_topo.node[node].mem_total : nm_topo.total_mem;
    if (m < ((uint64_t)256 << 20)) m = (uint64_t)256 << 20;
    return (size_t)m;
}

bool nm_fallback_init(void)
{
    pin_options();
    bool multi = nm_topo.nmem > 1;
    if (!multi) return arena_add(nm_policy_domain_for(0), -1, reserve_for(-1));
    switch (nm_opt.policy) {
    case NM_POL_LOCAL:
    case NM_POL_BIND:
        for (int n = 0; n <= nm_topo.max_node; n++) {
            if (!nm_topo_has_memory(n)) continue;
            if (nm_opt.policy == NM_POL_BIND && nm_policy_domain_for(n) != (uint32_t)n) continue;
            arena_add((uint32_t)n, n, reserve_for(n));
        }
        return narenas > 0;
    case NM_POL_PREFERRED:
        return arena_add(nm_opt.policy_nodes[0], nm_opt.policy_nodes[0], reserve_for(nm_opt.policy_nodes[0]));
    default:
        return arena_add(nm_dom_interleave, -1, reserve_for(-1));
    }
}

static const nm_arena_t *arena_for_domain(uint32_t dom)
{
    for (unsigned i = 0; i < narenas; i++)
        if (arenas[i].domain == dom) return &arenas[i];
    return NULL;
}

/* ---- per-thread heaps ------------------------------------------------------------------ */

extern int __cxa_thread_atexit_impl(void (*fn)(void *), void *obj, void *dso) __attribute__((weak));
extern void *__dso_handle;

/* ---- medium cache ------------------------------------------------------------------ */

/* base + j*base/4 for base = 32 KiB << k, j = 1..4 */
#define K_ 1024
static const uint32_t med_size[NM_MED_CLASSES] = {
    40 * K_, 48 * K_, 56 * K_, 64 * K_, 80 * K_, 96 * K_, 112 * K_, 128 * K_, 160 * K_, 192 * K_,
    224 * K_, 256 * K_, 320 * K_, 384 * K_, 448 * K_, 512 * K_, 640 * K_, 768 * K_, 896 * K_, 1024 * K_,
};
/* blocks kept per class: at most NM_MED_CAP and NM_MED_MAX bytes, at least one */
static const uint8_t med_cap_tab[NM_MED_CLASSES] = { 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 3, 2, 2, 2, 1, 1, 1, 1 };
#undef K_

static size_t med_class_size(unsigned c) { return med_size[c]; }

static unsigned lg_floor(size_t x) { return 63u - (unsigned)__builtin_clzll(x); }

/* smallest medium class holding n bytes, n in (32 KiB, 1 MiB]: classes are
 * base + j*base/4 (j = 1..4) for base = 32 KiB << k */
static unsigned med_class_ceil(size_t n)
{
    unsigned lg = lg_floor(n - 1);
    size_t base = (size_t)1 << lg;
    unsigned j = (unsigned)((n - base + (base / 4) - 1) >> (lg - 2));
    return 4 * (lg - 15) + j - 1;
}

/* largest medium class a block of `usable` bytes can serve, or NM_MED_CLASSES */
static unsigned med_class_floor(size_t usable)
{
    if (usable < ((size_t)40 << 10)) return NM_MED_CLASSES;
    if (usable >= NM_MED_MAX) return NM_MED_CLASSES - 1;
    unsigned lg = lg_floor(usable);
    unsigned j = (unsigned)((usable - ((size_t)1 << lg)) >> (lg - 2));
    return 4 * (lg - 15) + j - 1;        /* j == 0: the previous doubling's last class */
}

static unsigned med_cap(unsigned c) { return med_cap_tab[c]; }

NM_INLINE void footprint(nm_tcache_t *tc, int64_t v);
NM_INLINE void count_alloc(nm_tcache_t *tc, int dom, size_t usable);
NM_INLINE void count_free(nm_tcache_t *tc, nm_pme_t e, size_t usable);

/* the global medium_cached hears of a thread's cache in steps of 256 KiB: an atomic
 * add on every medium malloc and free would bounce one line between all threads */
#define MED_TELL_STEP ((uint32_t)256 << 10)

static NM_NOINLINE void med_tell_slow(nm_tcache_t *tc)
{
    int64_t d = (int64_t)tc->mbytes - (int64_t)tc->mbytes_told;
    if (d > 0) nm_gstat_add(NM_C_medium_cached, (uint64_t)d);
    else if (d < 0) nm_gstat_sub(NM_C_medium_cached, (uint64_t)-d);
    tc->mbytes_told = tc->mbytes;
}

static inline void med_tell(nm_tcache_t *tc)
{
    int64_t d = (int64_t)tc->mbytes - (int64_t)tc->mbytes_told;
    if (NM_LIKELY(d < (int64_t)MED_TELL_STEP && d > -(int64_t)MED_TELL_STEP)) return;
    med_tell_slow(tc);
}

void nm_fallback_cache_flush(nm_tcache_t *tc)
{
    unsigned g = gate_enter();
    for (unsigned c = 0; c < NM_MED_CLASSES; c++) {
        while (tc->mcount[c]) {
            unsigned i = --tc->mcount[c];
            footprint(tc, -(int64_t)tc->mcache[c][i].usable);
            mi_free(tc->mcache[c][i].p);
        }
    }
    gate_exit(g);
    tc->mbytes = 0;
    med_tell_slow(tc);
}

/* keep p (usable bytes u, page-map entry e) in the thread's cache if there is room
 * and it is of the thread's domain; true if kept */
static bool cache_put(nm_tcache_t *tc, void *p, size_t u, nm_pme_t e)
{
    if (tc == NULL || tc->state != NM_T_ACTIVE || tc->mheap_gone || u > NM_MED_MAX + (NM_MED_MAX / 4)) return false;
    if (nm_pme_kind(e) != NM_KIND_ARENA || nm_pme_domain(e) != tc->domain) return false;
    unsigned c = med_class_floor(u);
    if (c >= NM_MED_CLASSES || tc->mcount[c] >= med_cap(c) || tc->mbytes + u > NM_MED_THREAD_MAX) return false;
    /* the global bound is checked against what threads have told it, plus ours */
    if (nm_gstat_get(NM_C_medium_cached) + (tc->mbytes - tc->mbytes_told) + u > NM_MED_GLOBAL_MAX) return false;
    unsigned i = tc->mcount[c]++;
    tc->mcache[c][i].p = p;
    tc->mcache[c][i].usable = u;
    tc->mbytes += (uint32_t)u;
    med_tell(tc);
    return true;
}

/* a cached block for n bytes, its usable size in *u; NULL if none */
static void *cache_get(nm_tcache_t *tc, size_t n, size_t *u)
{
    unsigned c = med_class_ceil(n);
    if (tc->mcount[c] == 0) return NULL;
    unsigned i = --tc->mcount[c];
    *u = tc->mcache[c][i].usable;
    tc->mbytes -= (uint32_t)*u;
    med_tell(tc);
    tc->ctr.thr[NM_C_medium_cache_hit]++;
    return tc->mcache[c][i].p;
}

static void thread_exiting(void *arg)
{
    nm_tcache_t *tc = arg;
    if (tc != nm_tcp) return;
    nm_fallback_cache_flush(tc);
    tc->mheap_gone = 1;
    if (tc->mheap) {
        unsigned g = gate_enter();
        mi_heap_delete(tc->mheap);
        gate_exit(g);
        tc->mheap = NULL;
    }
}

void nm_fallback_thread_start(nm_tcache_t *tc)
{
    /* the main thread's heaps live until the process ends: nothing to watch */
    if (nm_os_getpid() == (int)syscall(SYS_gettid)) return;
    if (__cxa_thread_atexit_impl == NULL || __cxa_thread_atexit_impl(thread_exiting, tc, &__dso_handle) != 0)
        tc->mheap_gone = 1;                    /* cannot watch the exit: never create a heap */
}

static NM_NOINLINE mi_heap_t *thread_heap_slow(nm_tcache_t *tc);

static inline mi_heap_t *thread_heap(nm_tcache_t *tc)
{
    if (tc == NULL || tc->state != NM_T_ACTIVE || tc->mheap_gone) return NULL;
    if (NM_LIKELY(tc->mheap && tc->mheap_dom == tc->domain)) return tc->mheap;
    return thread_heap_slow(tc);
}

static mi_heap_t *thread_heap_slow(nm_tcache_t *tc)
{
    if (tc->mheap) {                               /* moved to another domain */
        nm_fallback_cache_flush(tc);
        unsigned g = gate_enter();
        mi_heap_delete(tc->mheap);
        gate_exit(g);
        tc->mheap = NULL;
    }
    const nm_arena_t *a = arena_for_domain(tc->domain);
    if (a == NULL) return NULL;
    unsigned g = gate_enter();
    tc->mheap = mi_heap_new_in_arena(a->mi_id);
    gate_exit(g);
    tc->mheap_dom = tc->domain;
    return tc->mheap;
}

static const nm_arena_t *arena_of(const void *p)
{
    for (unsigned i = 0; i < narenas; i++)
        if ((const char *)p >= arenas[i].start && (const char *)p < arenas[i].start + arenas[i].size) return &arenas[i];
    return NULL;
}

/* record the 32 MiB chunk holding p in the page map; returns its domain, or -1 if p
 * is outside our arenas */
static int note_block(const void *p)
{
    nm_pme_t e = nm_pagemap_get((uintptr_t)p);
    if (nm_pme_kind(e) == NM_KIND_ARENA) return (int)nm_pme_domain(e);
    const nm_arena_t *a = arena_of(p);
    if (a == NULL) { nm_fallback_count(NM_FB_ARENA_OUTSIDE, 0); return -1; }
    uintptr_t chunk = nm_align_down((uintptr_t)p, NM_ARENA_ALIGN);
    nm_pagemap_set_range(chunk, NM_ARENA_ALIGN, nm_pme_make(NM_KIND_ARENA, a->domain, 0, NULL));
    return (int)a->domain;
}

static void *raw_alloc(size_t n, size_t align, bool zero)
{
    if (align <= 16) return zero ? mi_zalloc(n) : mi_malloc(n);
    /* microsoft/mimalloc#700: size == alignment misaligns for 256, 512, 1024 */
    size_t ask = n == align ? n + 1 : n;
    void *p = zero ? mi_zalloc_aligned(ask, align) : mi_malloc_aligned(ask, align);
    if (p && ((uintptr_t)p & (align - 1)) != 0) { mi_free(p); errno = ENOMEM; return NULL; }
    return p;
}

void *nm_fallback_raw_alloc(size_t n, size_t align, bool zero)
{
    unsigned g = gate_enter();
    void *p = raw_alloc(n, align, zero);
    gate_exit(g);
    return p;
}

void nm_fallback_raw_free(void *p)
{
    unsigned g = gate_enter();
    mi_free(p);
    gate_exit(g);
}

/* arena bytes reach the global footprint in batches of 1 MiB per thread: an atomic
 * add per medium allocation would bounce one cache line between all threads */
NM_INLINE void footprint(nm_tcache_t *tc, int64_t v)
{
    if (tc && tc->state == NM_T_ACTIVE) {
        tc->fp_pending += v;
        if (tc->fp_pending < ((int64_t)1 << 20) && tc->fp_pending > -((int64_t)1 << 20)) return;
        v = tc->fp_pending;
        tc->fp_pending = 0;
    }
    nm_footprint_add(v);
}

NM_INLINE void count_alloc(nm_tcache_t *tc, int dom, size_t usable)
{
    if (NM_LIKELY(tc && tc->state == NM_T_ACTIVE && tc->ctr.dom && dom >= 0)) {   /* the usual case, inline */
        uint64_t *d = &tc->ctr.dom[(uint32_t)dom * NM_DOMAIN_CTR_N];
        tc->ctr.thr[NM_C_arena_alloc]++;
        tc->ctr.thr[NM_C_arena_alloc_bytes] += usable;
        d[NM_C_alloc_count]++;
        d[NM_C_alloc_bytes] += usable;
        if ((uint32_t)dom != nm_dom_interleave && dom != tc->cpu_node) d[NM_C_remote_alloc]++;
        return;
    }
    nm_count_thread(tc, NM_C_arena_alloc, 1);
    nm_count_thread(tc, NM_C_arena_alloc_bytes, usable);
    if (dom < 0) return;
    nm_count_domain(tc, (uint32_t)dom, NM_C_alloc_count, 1);
    nm_count_domain(tc, (uint32_t)dom, NM_C_alloc_bytes, usable);
    if (tc && (uint32_t)dom != nm_dom_interleave && dom != tc->cpu_node)
        nm_count_domain(tc, (uint32_t)dom, NM_C_remote_alloc, 1);
}

/* e: the block's page-map entry (kind ARENA), or 0 for blocks outside our arenas */
NM_INLINE void count_free(nm_tcache_t *tc, nm_pme_t e, size_t usable)
{
    if (NM_LIKELY(tc && tc->state == NM_T_ACTIVE && tc->ctr.dom && nm_pme_kind(e) == NM_KIND_ARENA)) {
        uint32_t dom = nm_pme_domain(e);
        uint64_t *d = &tc->ctr.dom[dom * NM_DOMAIN_CTR_N];
        tc->ctr.thr[NM_C_arena_free]++;
        tc->ctr.thr[NM_C_arena_free_bytes] += usable;
        d[NM_C_free_count]++;
        d[NM_C_free_bytes] += usable;
        if ((int)dom != tc->cpu_node && dom != nm_dom_interleave) d[NM_C_remote_free]++;
        return;
    }
    nm_count_thread(tc, NM_C_arena_free, 1);
    nm_count_thread(tc, NM_C_arena_free_bytes, usable);
    if (nm_pme_kind(e) != NM_KIND_ARENA) return;
    uint32_t dom = nm_pme_domain(e);
    nm_count_domain(tc, dom, NM_C_free_count, 1);
    nm_count_domain(tc, dom, NM_C_free_bytes, usable);
    if (tc && (int)dom != tc->cpu_node && dom != nm_dom_interleave) nm_count_domain(tc, dom, NM_C_remote_free, 1);
}

static void *heap_alloc_gated(mi_heap_t *h, size_t n, size_t align, bool zero)
{
    if (align <= 16) return zero ? mi_heap_zalloc(h, n) : mi_heap_malloc(h, n);
    /* microsoft/mimalloc#700: size == alignment misaligns for 256, 512, 1024 */
    size_t ask = n == align ? n + 1 : n;
    void *p = zero ? mi_heap_zalloc_aligned(h, ask, align) : mi_heap_malloc_aligned(h, ask, align);
    if (p && ((uintptr_t)p & (align - 1)) != 0) { mi_free(p); return NULL; }
    return p;
}

static void *heap_alloc(mi_heap_t *h, size_t n, size_t align, bool zero)
{
    unsigned g = gate_enter();
    void *p = heap_alloc_gated(h, n, align, zero);
    gate_exit(g);
    return p;
}

void *nm_fallback_cached(nm_tcache_t *tc, size_t n)
{
    /* the profiler must see every allocation; a moved thread takes the long way once */
    if (nm_prof_on || tc->mheap == NULL || tc->mheap_dom != tc->domain || tc->mheap_gone) return NULL;
    size_t u;
    void *p = cache_get(tc, n, &u);
    if (p) count_alloc(tc, (int)tc->domain, u);
    return p;
}

void *nm_fallback_alloc(nm_tcache_t *tc, size_t n, size_t align, bool zero)
{
    mi_heap_t *h = thread_heap(tc);
    if (h == NULL) return NULL;
    void *p = NULL;
    size_t u = 0;
    bool cacheable = n > NM_SMALL_MAX && n <= NM_MED_MAX && align <= 16;
    if (cacheable && (p = cache_get(tc, n, &u)) != NULL) {
        if (zero) memset(p, 0, n);
        count_alloc(tc, (int)tc->domain, u);          /* cached blocks are of tc's domain */
        return p;
    }
    p = heap_alloc(h, cacheable ? med_class_size(med_class_ceil(n)) : n, align, zero);
    if (p == NULL) return NULL;
    u = mi_usable_size(p);
    footprint(tc, (int64_t)u);
    count_alloc(tc, note_block(p), u);
    return p;
}

void nm_fallback_free(nm_tcache_t *tc, void *p, nm_pme_t e)
{
    bool sampled = nm_prof_on && nm_prof_forget(p);
    size_t u = mi_usable_size(p);
    count_free(tc, e, u);
    if (!sampled && cache_put(tc, p, u, e)) return;
    footprint(tc, -(int64_t)u);
    unsigned g = gate_enter();
    mi_free(p);
    gate_exit(g);
}

void *nm_fallback_realloc(nm_tcache_t *tc, void *p, size_t n)
{
    size_t old = mi_usable_size(p);
    if (nm_prof_on) nm_prof_forget(p);
    mi_heap_t *h = n > NM_SMALL_MAX && n < nm_opt.large_threshold ? thread_heap(tc) : NULL;
    nm_pme_t e = nm_pagemap_get((uintptr_t)p);
    if (h) {
        count_free(tc, e, old);
        unsigned g = gate_enter();
        void *q = mi_heap_realloc(h, p, n);
        gate_exit(g);
        if (q == NULL) {                         /* p still valid and still counted */
            count_alloc(tc, note_block(p), old);
            return NULL;
        }
        size_t nu = mi_usable_size(q);
        footprint(tc, (int64_t)nu - (int64_t)old);
        count_alloc(tc, note_block(q), nu);
        nm_count_thread(tc, q == p ? NM_C_realloc_inplace : NM_C_realloc_move, 1);
        return q;
    }
    void *q = nm_alloc_any(tc, n, 0, false);
    if (q == NULL) return NULL;
    memcpy(q, p, NM_MIN(old, n));
    nm_fallback_free(tc, p, e);
    nm_count_thread(tc, NM_C_realloc_move, 1);
    return q;
}

size_t nm_fallback_usable(const void *p) { return mi_usable_size(p); }

bool nm_fallback_owns(const void *p) { return mi_is_in_heap_region(p); }

void nm_fallback_collect(bool force)
{
    unsigned g = gate_enter();
    mi_collect(force);
    gate_exit(g);
}
