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
 * Blocks outside the arenas (bootstrap) are recognised on free by
 * mi_is_in_heap_region: correct, a little slower. A thread heap's block that lands
 * outside the arenas is given back at once (the caller maps a large block instead):
 * every ARENA block carries the header below, no bootstrap block does.
 *
 * Block header (every block from a thread heap: medium blocks and the profiler's
 * sampled small ones). The pointer handed out is 16 bytes into mimalloc's block:
 *   [0, 8)   tag: pointer ^ key ^ sizes while the block is live (mimalloc's
 *            free-list link once it is freed)
 *   [8, 16)  sizes: usable (bytes from the pointer to the end of mimalloc's block)
 *            and req (bytes asked for: NUMAMALLOC_CHECK=1's canary starts there;
 *            else equal to usable)
 * Why: mimalloc 2.0.9 as Debian builds it (secure level 0, no encoded free lists)
 * keeps its free lists in the freed blocks, as a raw pointer in their first 8 bytes,
 * so a write through a stale pointer into a freed medium block crashed the next
 * malloc of its size (tests/api/test_misuse.c, measured: 40 KiB and 64 KiB blocks
 * overwritten after free -> SIGSEGV inside mimalloc), and a double free pushed a
 * block twice (two live blocks at one address; through our own medium cache, or
 * mimalloc's free list). With the header, a write through the pointer we handed
 * out starts past mimalloc's link; free checks the tag, so a second free (the
 * block's sizes now read "freed": the tag no longer matches), an interior pointer or
 * a header overwritten from below is counted and ignored (NUMAMALLOC_CHECK=1:
 * reported, abort) and never reaches mimalloc; and free knows the usable size
 * without calling mi_usable_size. Cost, measured (callgrind, bench_hot pairs): +5
 * instructions on a medium pair served by the thread's cache (324 -> 329, +1.5 %;
 * bench_pairs pairs 40K..256K +1.5 %, pareto +0.0 %, realloc -7.5 %), nothing on the
 * small fast path. Memory: 16 bytes a block, and a request of exactly a class size
 * takes the next class: resident memory of such blocks +10 % at 40 KiB, +6 % at 64
 * KiB, +3 % at 128 KiB, under 2 % from 256 KiB (the larger block's tail is never
 * touched); other sizes +0. Within the 2 % rule for hardening by default: on.
 * Not covered: a write before the pointer or past the end of the block before a
 * freed one (reaches that block's link), bootstrap blocks (no header), and a stale
 * pointer whose memory mimalloc already gave to a new block (that is a free of the
 * new block, as with every allocator).
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
#include <sys/auxv.h>
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

/* ---- block header ------------------------------------------------------------------ */

typedef struct med_hdr {
    uint64_t tag;            /* p ^ key ^ sizes while live; mimalloc's link once freed */
    uint64_t sizes;          /* usable (low 32 bits: bytes from p to the end of
                                mimalloc's block) | req << 32 (31 bits: bytes asked for
                                under NUMAMALLOC_CHECK=1, else usable) | 1 << 63 when the
                                pad is a page (see PAD_LINE); hdr_freed(p) once freed */
} med_hdr_t;
#define HDR ((size_t)sizeof(med_hdr_t))
_Static_assert(sizeof(med_hdr_t) == 16, "the header keeps 16-byte alignment");

/* Per process, from AT_RANDOM. The tag is a plain XOR (a multiply cost 4 % of a
 * cached medium pair and adds nothing here): any change to the sizes, a tag read
 * from the middle of a block, mimalloc's link (a pointer or NULL) or a header
 * overwritten with one byte value matches only if it equals p ^ key ^ sizes, which
 * nothing in the process knows. It detects accidents, not an attacker who can read
 * a live header. */
static uint64_t hdr_key;

/* The pointer handed out is a pad into mimalloc's block, the header the 16 bytes
 * right before it, and mimalloc's free-list link, at the block's start, never
 * touches either. mimalloc places blocks of 32 KiB and up on page boundaries, and
 * memcpy (rep movsb) into and out of them runs slower off one: with the header 16
 * bytes in, bench/ realloc took 0.36 s of CPU instead of 0.19; with a 64-byte pad
 * 0.25 instead of 0.22; with a page, 0.22. So requests from PAD_PAGE_MIN up get a
 * page of pad (at most 6 % of their size, one more resident page), smaller ones a
 * cache line. */
#define PAD_LINE     ((size_t)64)
#define PAD_PAGE     ((size_t)4096)
#define PAD_PAGE_MIN ((size_t)64 << 10)
#define PAD_BIT      ((uint64_t)1 << 63)
static inline med_hdr_t *hdr_of(const void *p) { return (med_hdr_t *)(uintptr_t)((const char *)p - HDR); }
static inline size_t pad_of(uint64_t sizes) { return (sizes & PAD_BIT) ? PAD_PAGE : PAD_LINE; }
static inline void *blk_of(const void *p, size_t pad) { return (void *)(uintptr_t)((const char *)p - pad); }
static inline uint64_t hdr_tag(const void *p, uint64_t sizes) { return (uintptr_t)p ^ hdr_key ^ sizes; }
/* the sizes free leaves in a freed block: the tag then never matches (see above) */
static inline uint64_t hdr_freed(const void *p) { return (uintptr_t)p ^ hdr_key ^ 0xf3eed0f3eed0f3eeull; }
static inline size_t hdr_usable(const med_hdr_t *h) { return (uint32_t)h->sizes; }
static inline size_t hdr_req(const med_hdr_t *h) { return (size_t)((h->sizes >> 32) & 0x7fffffffu); }

/* sizes as kept in the header and in the medium cache's entries */
static inline uint64_t sizes_make(size_t usable, size_t req, size_t pad)
{
    return (uint64_t)usable | (uint64_t)req << 32 | (pad == PAD_PAGE ? PAD_BIT : 0);
}

static inline void hdr_set(void *p, uint64_t sizes)
{
    med_hdr_t *h = hdr_of(p);
    h->sizes = sizes;
    h->tag = hdr_tag(p, sizes);
}

/* NULL if p is a live block with a header, else why not */
static inline const char *hdr_check(const void *p)
{
    const med_hdr_t *h = hdr_of(p);
    uint64_t sizes = h->sizes;
    if (NM_LIKELY(h->tag == hdr_tag(p, sizes))) return NULL;
    if (sizes == hdr_freed(p)) return "medium block is not allocated (double free?)";
    return "not the start of a medium block (interior pointer?), or the 16 bytes before it were overwritten";
}

static void hdr_init_key(void)
{
    const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);   /* 16 random bytes, unaligned */
    uint64_t w[2] = { 0, 0 };
    if (r) memcpy(w, r, sizeof w);
    uint64_t k = w[0] ^ w[1];
    k ^= nm_os_now_ns() ^ (uintptr_t)&k;
    hdr_key = k | 1;
}

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

/* The arena is bound to its domain by us (mbind before mimalloc touches it), so
 * mimalloc is told no NUMA node (-1): 2.0.9 refuses a heap's own exclusive arena
 * when the arena names a node other than the calling thread's (seen in the VM:
 * under bind:1 every medium request of a thread on node 0 failed with ENOMEM). */
static bool arena_add(uint32_t dom, size_t size)
{
    if (narenas >= MAX_ARENAS) return false;
    size = nm_align_up(size, NM_ARENA_ALIGN);
    char *p = nm_os_reserve(size, NM_ARENA_ALIGN);
    if (p == NULL) return false;
    nm_policy_bind(dom, p, size);                 /* before mimalloc commits or touches it */
    mi_arena_id_t id;
    if (!mi_manage_os_memory_ex(p, size, false, false, true, -1, true, &id)) {
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
    hdr_init_key();
    pin_options();
    bool multi = nm_topo.nmem > 1;
    if (!multi) return arena_add(nm_policy_domain_for(0), reserve_for(-1));
    switch (nm_opt.policy) {
    case NM_POL_LOCAL:
    case NM_POL_BIND:
        for (int n = 0; n <= nm_topo.max_node; n++) {
            if (!nm_topo_has_memory(n)) continue;
            if (nm_opt.policy == NM_POL_BIND && nm_policy_domain_for(n) != (uint32_t)n) continue;
            arena_add((uint32_t)n, reserve_for(n));
        }
        return narenas > 0;
    case NM_POL_PREFERRED:
        return arena_add(nm_opt.policy_nodes[0], reserve_for(nm_opt.policy_nodes[0]));
    default:
        return arena_add(nm_dom_interleave, reserve_for(-1));
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

/* the global medium_cached hears of a thread's cache in steps of 2 MiB: an atomic
 * add on every medium malloc and free would bounce one line between all threads.
 * The step is above the largest cached block (1.25 MiB), so a block taken and given
 * back in a loop never reaches the atomic (at 256 KiB it did, twice a pair). The
 * global bound is then exact for the thread checking and off by < 2 MiB per other
 * thread (each holds at most NM_MED_THREAD_MAX anyway). */
#define MED_TELL_STEP ((uint32_t)2 << 20)

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
            uint64_t sz = tc->mcache[c][i].usable;
            footprint(tc, -(int64_t)((uint32_t)sz + pad_of(sz)));
            mi_free(blk_of(tc->mcache[c][i].p, pad_of(sz)));
        }
    }
    gate_exit(g);
    tc->mbytes = 0;
    med_tell_slow(tc);
}

/* keep p (usable bytes u, page-map entry e) in the thread's cache if there is room
 * and it is of the thread's domain; true if kept */
static bool cache_put(nm_tcache_t *tc, void *p, size_t u, size_t pad, nm_pme_t e)
{
    if (tc == NULL || tc->state != NM_T_ACTIVE || tc->mheap_gone || u > NM_MED_MAX + (NM_MED_MAX / 4)) return false;
    if (nm_opt.check) return false;             /* every reuse goes through mimalloc and the checks */
    if (nm_pme_kind(e) != NM_KIND_ARENA || nm_pme_domain(e) != tc->domain) return false;
    unsigned c = med_class_floor(u);
    if (c >= NM_MED_CLASSES || tc->mcount[c] >= med_cap(c) || tc->mbytes + u > NM_MED_THREAD_MAX) return false;
    /* the global bound is checked against what threads have told it, plus what this
     * thread has not told yet, which is negative after it took blocks back (as
     * unsigned 32-bit arithmetic that wrapped to ~4 GiB and refused every put until
     * the next tell: +20% page faults in bench/ realloc) */
    int64_t untold = (int64_t)tc->mbytes - (int64_t)tc->mbytes_told;
    if ((int64_t)nm_gstat_get(NM_C_medium_cached) + untold + (int64_t)u > (int64_t)NM_MED_GLOBAL_MAX) return false;
    unsigned i = tc->mcount[c]++;
    tc->mcache[c][i].p = p;
    tc->mcache[c][i].usable = sizes_make(u, u, pad);
    tc->mbytes += (uint32_t)u;
    med_tell(tc);
    return true;
}

/* a cached block for n bytes, its usable size plus its pad (the bytes it takes of
 * mimalloc's) in *u; NULL if none */
static void *cache_get(nm_tcache_t *tc, size_t n, size_t *u)
{
    unsigned c = med_class_ceil(n);
    if (tc->mcount[c] == 0) return NULL;
    unsigned i = --tc->mcount[c];
    uint64_t sz = tc->mcache[c][i].usable;
    tc->mbytes -= (uint32_t)sz;
    med_tell(tc);
    tc->ctr.thr[NM_C_medium_cache_hit]++;
    void *p = tc->mcache[c][i].p;
    hdr_set(p, sz);
    *u = (uint32_t)sz + pad_of(sz);
    return p;
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

/* a block of at least n bytes (and one more under NUMAMALLOC_CHECK=1) from heap h,
 * aligned to align, with its header written; NULL if mimalloc has none or put it
 * outside our arenas (then given back). *u: bytes of mimalloc's block it takes. */
static void *heap_alloc(nm_tcache_t *tc, mi_heap_t *h, size_t n, size_t ask, size_t align, bool zero, size_t *u, int *dom)
{
    void *blk;
    size_t pad = ask >= PAD_PAGE_MIN && align <= PAD_PAGE ? PAD_PAGE : PAD_LINE;
    unsigned g = gate_enter();                 /* mimalloc calls only: see the fork gate */
    if (align <= 16) {
        blk = zero ? mi_heap_zalloc(h, ask + pad) : mi_heap_malloc(h, ask + pad);
    } else {
        /* microsoft/mimalloc#700: size == alignment misaligns for 256, 512, 1024 */
        size_t a = ask + pad == align ? ask + pad + 1 : ask + pad;
        blk = zero ? mi_heap_zalloc_aligned_at(h, a, align, pad) : mi_heap_malloc_aligned_at(h, a, align, pad);
    }
    size_t got = blk ? mi_usable_size(blk) : 0;
    gate_exit(g);
    if (blk == NULL) return NULL;
    char *p = (char *)blk + pad;
    if ((align > 16 && ((uintptr_t)p & (align - 1)) != 0) || (*dom = note_block(blk)) < 0) {
        g = gate_enter();
        mi_free(blk);
        gate_exit(g);
        return NULL;
    }
    *u = got;
    size_t usable = *u - pad;
    hdr_set(p, sizes_make(usable, nm_opt.check ? n : usable, pad));
    if (nm_opt.check) nm_canary_fill(p, n, usable);
    footprint(tc, (int64_t)*u);
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
    bool cacheable = n > NM_SMALL_MAX && n <= NM_MED_MAX && align <= 16 && !nm_opt.check;
    if (cacheable && (p = cache_get(tc, n, &u)) != NULL) {
        if (zero) memset(p, 0, n);
        count_alloc(tc, (int)tc->domain, u);          /* cached blocks are of tc's domain */
        return p;
    }
    size_t ask = cacheable ? med_class_size(med_class_ceil(n)) : n + nm_opt.check;   /* check: canary room */
    int dom;
    p = heap_alloc(tc, h, n, ask, align, zero, &u, &dom);
    if (p == NULL) return NULL;
    count_alloc(tc, dom, u);
    return p;
}

/* a bootstrap block (no header, outside our arenas) */
static void raw_free(nm_tcache_t *tc, void *p)
{
    size_t u = mi_usable_size(p);
    count_free(tc, 0, u);
    footprint(tc, -(int64_t)u);
    unsigned g = gate_enter();
    mi_free(p);
    gate_exit(g);
}

/* NUMAMALLOC_CHECK=1 verdict on a block with a header */
static nm_verdict_t hdr_verdict(const void *p)
{
    nm_verdict_t v = { .why = hdr_check(p), .bad = NM_CANARY_OK };
    if (v.why == NULL) {
        const med_hdr_t *h = hdr_of(p);
        v.req = hdr_req(h);
        v.bad = nm_canary_check(p, v.req, hdr_usable(h));
    }
    return v;
}

void nm_fallback_free(nm_tcache_t *tc, void *p, nm_pme_t e)
{
    if (nm_pme_kind(e) != NM_KIND_ARENA) { raw_free(tc, p); return; }
    med_hdr_t *h = hdr_of(p);
    const char *why = hdr_check(p);
    if (NM_UNLIKELY(why != NULL)) { nm_invalid_pointer("free", p, why); return; }
    if (NM_UNLIKELY(nm_opt.check) && !nm_verdict_ok("free", p, hdr_verdict(p))) return;
    size_t u = hdr_usable(h), pad = pad_of(h->sizes);
    h->sizes = hdr_freed(p);              /* a second free finds the mark */
    bool sampled = nm_prof_on && nm_prof_forget(p);
    count_free(tc, e, u + pad);
    if (!sampled && cache_put(tc, p, u, pad, e)) return;
    footprint(tc, -(int64_t)(u + pad));
    unsigned g = gate_enter();
    mi_free(blk_of(p, pad));
    gate_exit(g);
}

void *nm_fallback_realloc(nm_tcache_t *tc, void *p, size_t n)
{
    nm_pme_t e = nm_pagemap_get((uintptr_t)p);
    size_t old;
    if (nm_pme_kind(e) != NM_KIND_ARENA) {
        old = mi_usable_size(p);                   /* a bootstrap block */
    } else {
        nm_verdict_t v = { .why = hdr_check(p), .bad = NM_CANARY_OK };
        if (v.why == NULL && nm_opt.check) v = hdr_verdict(p);
        if (!nm_verdict_ok("realloc", p, v)) {
            nm_warn("realloc(%p, %lu): %s; returning NULL and leaving it alone", p, (unsigned long)n, v.why);
            errno = EINVAL;
            return NULL;
        }
        old = nm_opt.check ? v.req : hdr_usable(hdr_of(p));
        /* keep it when it still fits, would not waste more than half (mimalloc's own
         * rule) and is still a medium size (a small or large size moves to its own
         * kind, as malloc would route it: tests/fuzz checks kinds by size);
         * NUMAMALLOC_CHECK=1 always moves, the free validates the old block */
        if (n <= old && n >= old / 2 && n > NM_SMALL_MAX && n < nm_opt.large_threshold && !nm_opt.check) {
            if (nm_prof_on) nm_prof_forget(p);
            nm_count_thread(tc, NM_C_realloc_inplace, 1);
            return p;
        }
    }
    if (nm_prof_on) nm_prof_forget(p);
    void *q = nm_malloc(n);
    if (q == NULL) return NULL;
    memcpy(q, p, NM_MIN(old, n));
    nm_fallback_free(tc, p, e);
    nm_count_thread(tc, NM_C_realloc_move, 1);
    return q;
}

const char *nm_fallback_check(const void *p)
{
    if (nm_pme_kind(nm_pagemap_get((uintptr_t)p)) != NM_KIND_ARENA) return NULL;   /* bootstrap */
    return hdr_check(p);
}

size_t nm_fallback_usable(const void *p)
{
    if (nm_pme_kind(nm_pagemap_get((uintptr_t)p)) != NM_KIND_ARENA) return mi_usable_size(p);
    return hdr_req(hdr_of(p));                       /* == usable unless NUMAMALLOC_CHECK=1 */
}

/* A block of our arenas whose 32 MiB chunk could not be registered (the page-map
 * leaf's mmap failed in note_block: found by the fault suite, mmap:nth=1) is still
 * ours; mi_is_in_heap_region does not know exclusive arenas, so ask them first.
 * Without this such a block was reported as foreign: leaked on free, size 0. */
bool nm_fallback_owns(const void *p) { return arena_of(p) != NULL || mi_is_in_heap_region(p); }

/* mi_collect only reaches the thread's default heap; the calling thread's heap in its
 * arena (where its medium blocks live) is collected by name: without it malloc_trim
 * left ~24 MiB of freed medium pages resident out of 95. Other threads' heaps are
 * theirs to collect (mimalloc heaps are thread-local). */
void nm_fallback_collect(bool force)
{
    nm_tcache_t *tc = nm_tcp;
    unsigned g = gate_enter();
    if (tc && tc->state == NM_T_ACTIVE && tc->mheap && !tc->mheap_gone) mi_heap_collect(tc->mheap, force);
    mi_collect(force);
    gate_exit(g);
}
