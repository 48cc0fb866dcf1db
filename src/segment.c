/* numamalloc — segments: 4 MiB of slab pages bound to one domain.
 *
 * A segment is mapped 4 MiB-aligned, mbind'ed to its domain before anything touches
 * it (src/policy.c decides the mode), and split into 64 pages of 64 KiB tracked by
 * two masks: free_mask (page in no slab) and dirty_mask (page that may be resident:
 * touched since it was last purged, whether in a slab now or not). A slab takes
 * 1..NM_SLAB_MAX_PAGES consecutive free pages, the run covering the most dirty ones,
 * so that memory already faulted in is reused before clean pages are touched; its
 * pages keep their dirty bits, so a slab that never touches some of them hands them
 * back as resident as it found them. Clean pages come first from segments of the
 * carving CPU's lane (NM_SEG_LANES): two threads faulting in fresh slabs at once
 * would otherwise share 2 MiB page-table pages and queue on their kernel lock; a
 * lane with no room maps a segment, and only when that fails takes another's.
 * Free dirty pages go back to the OS (MADV_DONTNEED; the binding survives it) after
 * NUMAMALLOC_DECAY_MS idle, or sooner when a domain has more of them than
 * NM_DIRTY_MIN and an eighth of the heap (jemalloc's old active:dirty rule): a
 * program whose slabs churn through many sizes would otherwise keep every page it
 * ever touched until the decay pass. Over the bound, a free purges the pages idle
 * for the domain's purge age, which adapts (adapt_age) between NM_DIRTY_AGE_MS and
 * the decay time to how many of the purged pages the program faults in again. When a
 * thread exits while no other thread has been busy in the allocator lately, they go
 * back over the same bound however new: no later free may come to look at the bound.
 * While others are busy, only what stayed free NM_DIRTY_AGE_MS goes back, as at a
 * free, and their frees look at the bound again: threads that finish one by one
 * would otherwise make those still running fault the pages in again.
 * A segment that stayed wholly free and clean that long is unmapped. Segments are
 * mapped and bound a reservation of several at a time, each reservation twice the
 * last up to NM_SEG_RESERVE_MAX segments (one at a time where address space is not
 * free: nm_segment_init). A reservation's unused rest is never touched, on no
 * list and in no count (address space only); it is unmapped with the domain's last
 * segment, or at a trim. Descriptors (nm_segment_t, with the 64 slab
 * descriptors) live in metadata memory, off the data pages. A strict domain's slab
 * has its pages faulted in when it is carved (src/policy.c: no spill, no fault that
 * can fail later), or is refused if its node has no room.
 *
 * Lock: nm_domain_t.seg_lock guards the domain's segment lists, its reservation
 * and each segment's masks and timestamps. Callers may hold a depot lock (depot ->
 * seg_lock). The domain's nsegments, slab_pages and dirty_pages are read without it
 * (decay's quick skip, stats), so they are written with relaxed atomics. */
#include <sys/mman.h>
#include <sys/resource.h>

#include "numamalloc/internal.h"

#define ALL_PAGES (~(uint64_t)0)

static void list_remove(nm_segment_t **head, nm_segment_t *s)
{
    if (s->prev) s->prev->next = s->next; else *head = s->next;
    if (s->next) s->next->prev = s->prev;
    s->next = s->prev = NULL;
}

static void list_push(nm_segment_t **head, nm_segment_t *s)
{
    s->prev = NULL;
    s->next = *head;
    if (*head) (*head)->prev = s;
    *head = s;
}

static uint64_t run_mask(unsigned first, unsigned n)
{
    return (n >= 64 ? ALL_PAGES : (((uint64_t)1 << n) - 1)) << first;
}

/* the run of n free pages covering more dirty pages than *best (which it updates):
 * its first index, or -1 */
static int most_dirty_run(uint64_t free, uint64_t dirty, unsigned n, int *best)
{
    uint64_t want = run_mask(0, n), hot = free & dirty;
    if (hot == 0) return -1;
    int first = __builtin_ctzll(hot), last = 63 - __builtin_clzll(hot);
    int lo = NM_MAX(first - (int)n + 1, 0), hi = NM_MIN(last, 64 - (int)n);
    int at = -1;
    for (int i = lo; i <= hi; i++) {
        if (((free >> i) & want) != want) continue;
        int score = __builtin_popcountll((hot >> i) & want);
        if (score > *best) { *best = score; at = i; if (score == (int)n) break; }
    }
    return at;
}

/* first index of a run of n set bits in m, or -1 */
static int find_run(uint64_t m, unsigned n)
{
    uint64_t want = run_mask(0, n);
    while (m) {
        int i = __builtin_ctzll(m);
        if ((unsigned)i + n > 64) return -1;
        if (((m >> i) & want) == want) return i;
        /* skip past the first hole after i */
        uint64_t rest = ~(m >> i);
        int hole = rest ? __builtin_ctzll(rest) : 64 - i;
        int next = i + hole;
        if (next >= 64) return -1;
        m &= ~(((uint64_t)1 << next) - 1);
    }
    return -1;
}

uint32_t nm_seg_reserve_max = NM_SEG_RESERVE_MAX;

/* reservations only where address space costs nothing: not where the kernel never
 * overcommits (vm.overcommit_memory=2 ignores MAP_NORESERVE and would charge a
 * reservation's unused segments to the commit limit), nor under a limit on the
 * address space (RLIMIT_AS), which they would use up */
void nm_segment_init(void)
{
    uint64_t mode = 0;
    struct rlimit as;
    bool strict = nm_os_read_u64("/proc/sys/vm/overcommit_memory", &mode) && mode == 2;
    bool limited = getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY;
    nm_seg_reserve_max = strict || limited ? 1 : NM_SEG_RESERVE_MAX;
}

/* k segments of fresh address space bound to d, or NULL */
static char *map_bound(uint32_t d, uint32_t k)
{
    size_t len = (size_t)k * NM_SEGMENT_SIZE;
    char *r = nm_os_map_aligned(len, NM_SEGMENT_SIZE, MAP_NORESERVE);
    if (r == NULL || nm_policy_bind(d, r, len) || k == 1) return r;   /* failures counted */
    nm_os_unmap(r, len);      /* not 16 segments unbound for one failure: one, as before */
    return NULL;
}

/* the next segment of d's reservation (seg_lock held), mapping one if it is used
 * up: 1, 2, 4 .. nm_seg_reserve_max segments, one when the bigger one cannot be
 * mapped or bound. An mmap waits for the address space's write lock, and a range
 * mapped next to the heap joins its VMA, whose page faults then wait for it too:
 * threads faulting in fresh segments would otherwise queue behind every map. */
static char *segment_map(uint32_t d)
{
    nm_domain_t *dm = &nm_domains[d];
    if (dm->reserve_left == 0) {
        uint32_t k = NM_MIN(NM_MAX(dm->reserve_next, 1u), nm_seg_reserve_max);
        char *r = map_bound(d, k);
        if (r == NULL && k > 1) {
            k = 1;
            r = map_bound(d, 1);
        }
        if (r == NULL) return NULL;
        dm->reserve = r;
        dm->reserve_left = k;
        nm_gstat_add(NM_C_segments_reserved, k);
        dm->reserve_next = (uint32_t)NM_MIN(2 * (uint64_t)k, nm_seg_reserve_max);
    }
    char *base = dm->reserve;
    dm->reserve += NM_SEGMENT_SIZE;
    dm->reserve_left--;
    nm_gstat_sub(NM_C_segments_reserved, 1);
    return base;
}

/* (seg_lock held) */
static nm_segment_t *segment_new(uint32_t d, unsigned lane)
{
    char *base = segment_map(d);
    if (base == NULL) return NULL;
    nm_segment_t *s = nm_meta_alloc(sizeof *s);
    if (s == NULL) {                               /* the segment goes back to the reservation */
        nm_domains[d].reserve = base;
        nm_domains[d].reserve_left++;
        nm_gstat_add(NM_C_segments_reserved, 1);
        return NULL;
    }
    s->base = base;
    s->free_mask = ALL_PAGES;
    s->dirty_mask = 0;
    s->purged_mask = 0;
    s->domain = d;
    s->lane = lane;
    s->empty_since_ms = nm_os_now_ms();
    for (unsigned i = 0; i < NM_SEG_PAGES; i++) s->slabs[i].page = (uint8_t)i;
    nm_gstat_add(NM_C_segments, 1);
    nm_gstat_max(NM_C_segments_peak, nm_gstat_get(NM_C_segments));
    return s;
}

/* the first free run of n pages in d's segments of this lane (any lane: lane < 0) */
static int first_free_run(nm_domain_t *dm, unsigned n, int lane, nm_segment_t **seg)
{
    for (nm_segment_t *s = dm->segs; s; s = s->next) {
        if (lane >= 0 && s->lane != (unsigned)lane) continue;
        int at = find_run(s->free_mask, n);
        if (at >= 0) { *seg = s; return at; }
    }
    return -1;
}

nm_slab_t *nm_segment_alloc_slab(uint32_t d, unsigned npages, unsigned lane)
{
    nm_domain_t *dm = &nm_domains[d];
    nm_domain_lock((uint32_t)(dm - nm_domains), &dm->seg_lock);
    nm_segment_t *seg = NULL;
    int at = -1;
    /* the first run of resident free pages; else the run covering the most of them;
     * else the first free run of this lane's segments; else a new segment; else (no
     * memory for one) the first free run of any */
    for (nm_segment_t *s = dm->segs; s && at < 0; s = s->next)
        if ((at = find_run(s->free_mask & s->dirty_mask, npages)) >= 0) seg = s;
    int best = 0;
    for (nm_segment_t *s = at < 0 ? dm->segs : NULL; s; s = s->next) {
        int i = most_dirty_run(s->free_mask, s->dirty_mask, npages, &best);
        if (i >= 0) { seg = s; at = i; }
    }
    if (at < 0) at = first_free_run(dm, npages, (int)lane, &seg);
    if (at < 0 && (seg = segment_new(d, lane)) != NULL) {
        list_push(&dm->segs, seg);
        __atomic_fetch_add(&dm->nsegments, 1, __ATOMIC_RELAXED);
        at = 0;
    }
    if (at < 0 && (at = first_free_run(dm, npages, -1, &seg)) < 0) {
        nm_unlock(&dm->seg_lock);
        return NULL;
    }
    uint64_t bits = run_mask((unsigned)at, npages);
    uint64_t clean = bits & ~seg->dirty_mask;       /* pages not resident yet */
    if (dm->purged_free) {
        /* a clean page carved while purged ones wait is a fault a purge caused: the
         * purged page itself, or a fresh one taken in its place */
        uint64_t n = NM_MIN((uint64_t)__builtin_popcountll(clean), dm->purged_free);
        uint64_t again = (uint64_t)__builtin_popcountll(bits & seg->purged_mask);
        dm->refault_since = NM_MIN(dm->refault_since + n, 2 * dm->purged_since + NM_SEG_PAGES);
        seg->purged_mask &= ~bits;
        dm->purged_free -= again;
        nm_gstat_add(NM_C_slab_pages_refaulted, again);
    }
    __atomic_fetch_add(&dm->slab_pages, npages, __ATOMIC_RELAXED);
    __atomic_fetch_sub(&dm->dirty_pages, (uint64_t)__builtin_popcountll(seg->dirty_mask & bits), __ATOMIC_RELAXED);
    seg->free_mask &= ~bits;
    seg->empty_since_ms = 0;
    if (seg->free_mask == 0) { list_remove(&dm->segs, seg); list_push(&dm->full_segs, seg); }
    nm_unlock(&dm->seg_lock);

    nm_slab_t *sl = &seg->slabs[at];
    sl->start = seg->base + ((uintptr_t)at << NM_GRANULE_SHIFT);
    sl->npages = (uint8_t)npages;
    /* a strict domain faults its new pages in now, or refuses the slab */
    for (uint64_t m = nm_domains[d].strict ? clean : 0; m;) {
        int i = __builtin_ctzll(m);
        uint64_t rest = ~(m >> i);
        int n = rest ? __builtin_ctzll(rest) : 64 - i;
        if (!nm_policy_populate(d, seg->base + ((uintptr_t)i << NM_GRANULE_SHIFT), (size_t)n << NM_GRANULE_SHIFT)) {
            nm_segment_free_slab(d, sl, 0);   /* (some pages may be in) */
            return NULL;
        }
        m &= ~run_mask((unsigned)i, (unsigned)n);
    }
    return sl;
}

enum { PURGE_UNMAP = 1, PURGE_JUDGED = 2 };
static size_t purge(uint32_t d, uint64_t cutoff_ms, unsigned how);

bool nm_segment_over_bound(uint32_t d, size_t extra)
{
    const nm_domain_t *dm = &nm_domains[d];
    uint64_t cap = NM_MAX((uint64_t)NM_DIRTY_MIN, nm_gstat_get(NM_C_footprint) / 8);
    return (nm_load_relaxed(&dm->dirty_pages) << NM_GRANULE_SHIFT) + nm_load_relaxed(&dm->spare_bytes) + extra > cap;
}

/* The purge age, looked at when a free finds the domain over the bound. When what
 * was carved clean while purged pages waited reaches half of what was purged, the
 * purges came too early for this program (it churns through more than the bound
 * lets it keep, and each purged page costs a fault again): the age doubles, up to
 * the decay time. When it stays under an eighth, they cost little: the age halves,
 * down to NM_DIRTY_AGE_MS. The counts halve at each decision, so one weighs the
 * recent past, not only the last look (the faults a purge causes come later); a
 * look after less than 16 pages purged decides nothing, so a heap that grows
 * without purging keeps its age. */
static uint64_t adapt_age(nm_domain_t *dm)
{
    nm_domain_lock((uint32_t)(dm - nm_domains), &dm->seg_lock);
    uint64_t age = NM_MAX(dm->purge_age_ms, (uint64_t)NM_DIRTY_AGE_MS);
    if (dm->purged_since >= 16) {
        if (dm->refault_since >= dm->purged_since / 2) age = NM_MIN(age * 2, NM_MAX(nm_opt.decay_ms, (uint64_t)NM_DIRTY_AGE_MS));
        else if (dm->refault_since <= dm->purged_since / 8) age = NM_MAX(age / 2, (uint64_t)NM_DIRTY_AGE_MS);
        dm->purged_since /= 2;
        dm->refault_since /= 2;
    }
    nm_store_relaxed(&dm->purge_age_ms, age);
    nm_unlock(&dm->seg_lock);
    return age;
}

void nm_segment_free_slab(uint32_t d, nm_slab_t *sl, unsigned untouched)
{
    nm_domain_t *dm = &nm_domains[d];
    nm_segment_t *seg = nm_slab_segment(sl);
    uint64_t now = nm_os_now_ms();
    nm_domain_lock((uint32_t)(dm - nm_domains), &dm->seg_lock);
    uint64_t bits = run_mask(sl->page, sl->npages);
    /* the last `untouched` pages were not written by this slab: as resident as it
     * found them */
    uint64_t dirty = untouched < sl->npages ? run_mask(sl->page, sl->npages - untouched) : 0;
    bool was_full = seg->free_mask == 0;
    seg->free_mask |= bits;
    seg->dirty_mask |= dirty;
    __atomic_fetch_sub(&dm->slab_pages, sl->npages, __ATOMIC_RELAXED);
    __atomic_fetch_add(&dm->dirty_pages, (uint64_t)__builtin_popcountll(seg->dirty_mask & bits), __ATOMIC_RELAXED);
    for (unsigned i = sl->page; i < (unsigned)sl->page + sl->npages; i++) seg->freed_ms[i] = now;
    if (was_full) { list_remove(&dm->full_segs, seg); list_push(&dm->segs, seg); }
    if (seg->free_mask == ALL_PAGES) seg->empty_since_ms = now;
    nm_unlock(&dm->seg_lock);
    /* over the bound: what stayed free the purge age goes back (not what was freed
     * just now: a program that frees and allocates again at once would fault it all
     * back in); looked at once per NM_DIRTY_AGE_MS, by the one thread that moves the
     * next look on (two at once would judge the age twice in one window) */
    uint64_t due = nm_load_relaxed(&dm->dirty_check_ms);
    if (now >= due && nm_segment_over_bound(d, 0) && nm_cas_acq_rel(&dm->dirty_check_ms, &due, now + NM_DIRTY_AGE_MS)) {
        uint64_t age = adapt_age(dm);
        purge(d, now > age ? now - age : 0, PURGE_JUDGED);
    }
}

/* purge the free pages of domain d freed at or before cutoff_ms. PURGE_UNMAP: a
 * segment wholly free and idle that long is unmapped too, and so is the unused
 * rest of the reservation when everything goes (cutoff UINT64_MAX: a trim, or
 * memory running out) or the domain has no segment left. PURGE_JUDGED: a purge
 * at the purge age, whose pages adapt_age watches come back (the others' cutoffs
 * do not follow the age: decay, trims, thread exits) */
static size_t purge(uint32_t d, uint64_t cutoff_ms, unsigned how)
{
    bool unmap = how & PURGE_UNMAP, judged = how & PURGE_JUDGED;
    nm_domain_t *dm = &nm_domains[d];
    size_t purged = 0;
    nm_segment_t *unmap_list = NULL;
    nm_domain_lock((uint32_t)(dm - nm_domains), &dm->seg_lock);
    for (nm_segment_t *s = dm->segs, *next; s; s = next) {
        next = s->next;
        uint64_t idle = s->free_mask & s->dirty_mask;
        uint64_t old = 0;
        for (uint64_t m = idle; m; m &= m - 1) {
            int i = __builtin_ctzll(m);
            if (cutoff_ms == UINT64_MAX || s->freed_ms[i] <= cutoff_ms) old |= (uint64_t)1 << i;
        }
        if (unmap && s->free_mask == ALL_PAGES && s->empty_since_ms &&
            (cutoff_ms == UINT64_MAX || s->empty_since_ms <= cutoff_ms) && (idle & ~old) == 0) {
            /* wholly free, and every dirty page idle long enough: give it all back */
            list_remove(&dm->segs, s);
            __atomic_fetch_sub(&dm->nsegments, 1, __ATOMIC_RELAXED);
            __atomic_fetch_sub(&dm->dirty_pages, (uint64_t)__builtin_popcountll(s->dirty_mask), __ATOMIC_RELAXED);
            dm->purged_free -= (uint64_t)__builtin_popcountll(s->purged_mask);
            s->next = unmap_list;
            unmap_list = s;
            continue;
        }
        /* MADV_DONTNEED each run of old pages */
        while (old) {
            int i = __builtin_ctzll(old);
            uint64_t rest = ~(old >> i);
            int n = rest ? __builtin_ctzll(rest) : 64 - i;
            if (nm_os_advise(s->base + ((uintptr_t)i << NM_GRANULE_SHIFT), (size_t)n << NM_GRANULE_SHIFT, MADV_DONTNEED)) {
                s->dirty_mask &= ~run_mask((unsigned)i, (unsigned)n);
                if (judged) {
                    s->purged_mask |= run_mask((unsigned)i, (unsigned)n);
                    dm->purged_since += (uint64_t)n;
                    dm->purged_free += (uint64_t)n;
                }
                __atomic_fetch_sub(&dm->dirty_pages, (uint64_t)n, __ATOMIC_RELAXED);
                purged += (size_t)n << NM_GRANULE_SHIFT;
                nm_gstat_add(NM_C_slab_pages_purged, (uint64_t)n);
            }
            old &= ~run_mask((unsigned)i, (unsigned)n);
        }
    }
    char *rest = NULL;
    size_t rest_len = 0;
    if (unmap && dm->reserve_left && (cutoff_ms == UINT64_MAX || dm->nsegments == 0)) {
        rest = dm->reserve;
        rest_len = (size_t)dm->reserve_left * NM_SEGMENT_SIZE;
        nm_gstat_sub(NM_C_segments_reserved, dm->reserve_left);
        dm->reserve_left = 0;
        dm->reserve_next = 1;
    }
    nm_unlock(&dm->seg_lock);
    if (rest) nm_os_unmap(rest, rest_len);
    while (unmap_list) {
        nm_segment_t *s = unmap_list;
        unmap_list = s->next;
        purged += (size_t)__builtin_popcountll(s->dirty_mask) << NM_GRANULE_SHIFT;
        if (nm_os_unmap(s->base, NM_SEGMENT_SIZE)) {
            nm_gstat_sub(NM_C_segments, 1);
            nm_gstat_add(NM_C_segments_unmapped, 1);
            nm_meta_free(s, sizeof *s);
        }
    }
    return purged;
}

size_t nm_segment_purge(uint32_t d, uint64_t cutoff_ms) { return purge(d, cutoff_ms, PURGE_UNMAP); }

/* (pages only: the segments stay mapped until decay, so that the address space a
 * program saw keeps working as long as NUMAMALLOC_DECAY_MS promises) */
void nm_segment_exit_trim(uint32_t d, uint64_t cutoff_ms)
{
    if (nm_segment_over_bound(d, 0)) purge(d, cutoff_ms, 0);
}
