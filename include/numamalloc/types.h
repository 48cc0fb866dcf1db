/* numamalloc — every core structure, with a comment per field.
 *
 * SYNCHRONIZATION (the whole allocator, in one place)
 *  - nm_tcache_t (thread cache) lives in metadata memory, reached through one TLS
 *    pointer, and is touched without locks by its owner. Other threads read its
 *    counters racily (stats dumps) under the thread-list lock, which keeps it from
 *    being unlinked and freed under them. A thread that dies without running our
 *    exit handler (first malloc in glibc's last key-destructor round) leaves its cache
 *    linked but valid; it is retired when its thread id is seen again or is gone.
 *  - nm_depot_t (one per domain and size class) has its own lock, protecting its full
 *    and empty magazine lists, its slab lists, and every nm_slab_t of that class and
 *    domain (free bitmap, counts).
 *  - nm_domain_t.seg_lock protects the domain's segment list, its reservation and
 *    each segment's page masks. It nests inside a depot lock (depot -> segment),
 *    never the other way.
 *  - nm_domain_t.large_lock protects the domain's cache of freed large mappings.
 *  - The page map is written under the lock of whoever owns the range (depot/segment
 *    for slabs, nobody else can see a fresh large mapping) and read without locks;
 *    see src/pagemap.c for the memory-order argument.
 *  - Global counters are relaxed atomics, added on slow paths only.
 *  - Lock order (src/fork.c takes them all in it): init -> dump -> decay -> threads
 *    -> policy -> [fallback gate] -> every depot (domain, class) -> every seg_lock ->
 *    every large_lock -> meta -> pagemap -> profiler.
 */
#ifndef NM_TYPES_H
#define NM_TYPES_H

#include "numamalloc/base.h"
#include "numamalloc/stats.h"

/* ---- page-map entry ------------------------------------------------------------
 * 64 bits: [63..52] domain, [51..48] kind, [47..6] descriptor address (64-byte
 * aligned, below 2^48), [5..0] size class. The free fast path compares the top 16
 * bits (domain and kind) with one per-thread value. */
typedef uint64_t nm_pme_t;

enum nm_kind {
    NM_KIND_NONE  = 0,   /* not ours (or no longer ours) */
    NM_KIND_SLAB  = 1,   /* small block in a slab; descriptor = nm_slab_t */
    NM_KIND_LARGE = 2,   /* own mapping on 4 KiB or transparent huge pages; nm_large_t */
    NM_KIND_HUGE  = 3,   /* own mapping on hugetlb pages; nm_large_t */
    NM_KIND_ARENA = 4,   /* fallback arena (mimalloc): never in the page map, only in
                            numamalloc_block_info's answer for its blocks */
    NM_KIND_MEDIUM = 5,  /* medium block in a slab; descriptor = nm_slab_t. Never
                            matches a thread's free tag: every medium free is checked
                            against the slab's `live` bits (numamalloc_block_info
                            reports it as a slab block) */
};

/* ---- magazine ---------------------------------------------------------------------
 * Bonwick's magazine: a stack of free blocks ("rounds") of one class. While loaded
 * in a bin, the bin's cur/base/end describe it and `count` is stale. */
typedef struct nm_mag {
    struct nm_mag *next;     /* link in a depot list or a free pool (full list: to older) */
    struct nm_mag *newer;    /* full list only: link to the next newer magazine */
    uint32_t count;          /* rounds held, when not loaded */
    uint32_t cap;            /* capacity in rounds */
    int32_t  holder;         /* tid of the thread that last loaded it in a bin or filled
                                it with remote frees (0: none): a hint, whose frees its
                                rounds most likely are */
    void *rounds[];
} nm_mag_t;

/* ---- thread-cache bin (one per class, 64 bytes, the whole fast path) ---------- */
typedef struct nm_bin {
    void   **cur;            /* next free slot; rounds are base[0 .. cur-base) */
    void   **base;           /* first round of the loaded magazine (NULL: none) */
    void   **end;            /* base + capacity */
    int64_t  budget;         /* allocations left before the slow path accounts them
                                (stats) or samples one (profiler) */
    int64_t  period;         /* budget at the last reconciliation */
    intptr_t mark;           /* cur's address at the last reconciliation, moved along
                                with cur by every slow-path change: fast-path frees
                                since then are the rounds cur moved past it plus the
                                fast allocations */
    nm_mag_t *loaded;        /* magazine behind base (NULL: none) */
    nm_mag_t *prev;          /* Bonwick's previous magazine (full, empty or NULL) */
} nm_bin_t;

/* ---- slab (64 bytes; lives in its segment descriptor) ----------------------------
 * Free blocks are a bitmap beside the slab, not a list through the blocks: refilling
 * a magazine scans bits instead of chasing pointers through cold memory, and freed
 * memory is never written (a use-after-free cannot corrupt allocator state). */
typedef struct nm_slab {
    uint64_t *freemap;       /* bit per block: set while the block is free in this slab */
    char     *start;         /* first block (the slab's first page) */
    struct nm_slab *next;    /* depot partial list */
    struct nm_slab *prev;
    uint32_t  nfree;         /* set bits in freemap */
    uint32_t  inuse;         /* blocks out of the slab (in use or in a magazine) */
    uint16_t  nblocks;       /* blocks in the slab */
    uint16_t  fresh;         /* never-used blocks left at the tail (bump allocation) */
    uint16_t  hint;          /* no set bit in freemap words before this one */
    uint8_t   cls;           /* size class */
    uint8_t   npages;        /* 64 KiB pages in the slab */
    uint8_t   page;          /* index of its first page in the segment */
    uint8_t   on_partial;    /* 1 while on the depot's partial list */
    uint8_t   aged;          /* medium slabs: free blocks already free at the last decay pass */
    uint8_t   clean;         /* medium slabs: free blocks whose pages were returned (MADV_DONTNEED) */
    uint16_t  pend;          /* blocks of a batch free marked but not yet settled (0 outside one) */
    uint32_t *req;           /* NUMAMALLOC_CHECK=1: bytes requested per block (canary
                                start), beside the slab; NULL otherwise */
} NM_ALIGNED(64) nm_slab_t;
_Static_assert(sizeof(nm_slab_t) == 64, "a slab descriptor is one cache line");

/* ---- segment (4 MiB of slab pages; descriptor kept off the data pages) ---------- */
typedef struct nm_segment {
    nm_slab_t slabs[NM_SEG_PAGES];   /* slabs[i] describes a slab starting at page i */
    struct nm_segment *next;         /* domain segment list */
    struct nm_segment *prev;
    char     *base;                  /* NM_SEGMENT_SIZE aligned */
    uint64_t  free_mask;             /* bit i: page i belongs to no slab */
    uint64_t  dirty_mask;            /* bit i: free page i may still be resident */
    uint64_t  purged_mask;           /* bit i: free page i was purged, not carved since */
    uint64_t  empty_since_ms;        /* when the last slab left (0: not empty) */
    uint64_t  freed_ms[NM_SEG_PAGES];/* when each free page was released by its slab */
    uint32_t  domain;
    uint32_t  lane;                  /* where never-touched pages go first (segment.c) */
} NM_ALIGNED(64) nm_segment_t;

/* ---- depot (one per domain and class) -------------------------------------------- */
typedef struct nm_depot {
    nm_lock_t lock;
    nm_mag_t *full;          /* full magazines, newest first (doubly linked) */
    nm_mag_t *full_oldest;   /* the other end of that list */
    nm_mag_t *empty;         /* empty magazines */
    uint32_t  nfull, nempty;
    uint32_t  nfull_min;     /* fewest full magazines seen since the last decay tick */
    uint32_t  nempty_min;    /* fewest empty magazines seen since the last decay tick */
    uint32_t  mag_bytes;     /* bytes of the blocks a full magazine holds (0: not yet
                                worked out; depot.c keeps it here, beside the lock, so the
                                bound costs no look-up in the class tables) */
    uint32_t  solo_mags;     /* full magazines kept with one thread alive (small classes) */
    nm_slab_t *partial;      /* slabs with free blocks (doubly linked) */
    nm_slab_t *spare;        /* one completely free slab kept against thrashing */
    uint64_t  spare_since_ms;
    uint64_t  nslabs;        /* slabs of this class in this domain */
    uint64_t  fresh;         /* never-used blocks in those slabs (not yet touched) */
    uint64_t  clean;         /* free blocks of medium slabs whose pages were returned */
    uint64_t  held;          /* blocks out of slabs: in use or cached in magazines */
    uint64_t  held_peak;     /* peak of held */
    uint64_t  exchanges;     /* magazine exchanges with threads */
    uint64_t  drained;       /* full magazines emptied into slabs (depot at its bound) */
    int64_t   fp_pending;    /* footprint change not yet added to the global counter:
                                batched (NM_FP_BATCH), so that fills and drains of all
                                threads do not bounce one cache line */
} NM_ALIGNED(64) nm_depot_t;

/* ---- large block descriptor ----------------------------------------------------- */
typedef struct nm_large {
    struct nm_large *next;   /* domain cache list, most recently freed first */
    struct nm_large *prev;
    char     *map;           /* mapping start */
    size_t    map_len;       /* mapping length */
    char     *user;          /* pointer handed out (map, or aligned inside it) */
    size_t    req;           /* bytes requested (stats) */
    uint64_t  freed_ms;      /* when it entered the cache */
    uint32_t  domain;
    uint8_t   backing;       /* enum nm_backing */
    /* flags, written only by whoever owns the block at that moment (one byte: the
     * descriptor stays one cache line) */
    uint8_t   zeroed : 1;    /* 1 while its pages are known to read as zero */
    uint8_t   sampled : 1;   /* profiler sampled this block */
    uint8_t   tcached : 1;   /* kept by the thread that freed it (still in the page map) */
    uint8_t   multi_vma : 1; /* mremap answered EFAULT: coalesced from mappings the kernel kept apart */
    uint8_t   huge_fb;       /* a huge-page fallback of its mapping (NM_FB_* + 1; 0 none): the
                                profiler charges it to the site of a sampled block */
} NM_ALIGNED(64) nm_large_t;

/* ---- domain (a NUMA node, its strict twin, or an interleaved or the profiler's
 * pseudo-node: src/policy.c) ------------------------------------------------------- */
typedef struct nm_domain {
    nm_lock_t  seg_lock;
    nm_segment_t *segs;      /* segments with at least one free page */
    nm_segment_t *full_segs; /* segments with no free page */
    uint64_t   nsegments;
    char      *reserve;      /* mapped and bound, never touched, not yet a segment (seg_lock) */
    uint32_t   reserve_left; /* segments left at reserve (seg_lock) */
    uint32_t   reserve_next; /* segments the next reservation maps (seg_lock) */
    uint64_t   slab_pages;   /* 64 KiB pages in slabs */
    uint64_t   dirty_pages;  /* free pages that may still be resident (not yet purged) */
    uint64_t   spare_bytes;  /* bytes of the depots' spare slabs (relaxed atomics) */
    uint64_t   dirty_check_ms; /* next look at dirty pages over the bound (the thread whose
                                 compare-and-swap moves it on looks) */
    uint64_t   purge_age_ms; /* idle time after which a purge over the bound takes a free
                                page (seg_lock; read relaxed by stats) */
    uint64_t   purged_since; /* pages purged, and ... */
    uint64_t   refault_since;/* ... clean pages carved while purged ones waited, both
                                halved at each adaptation of the age (seg_lock) */
    uint64_t   purged_free;  /* free pages in purged_mask, all segments (seg_lock) */
    nm_lock_t  large_lock;
    nm_large_t *cache;       /* freed large mappings, newest first */
    nm_large_t *cache_tail;
    size_t     cache_bytes;
    uint32_t   dense_votes;  /* large blocks judged written densely, lately (src/large.c) */
    uint32_t   new_maps;     /* new large mappings made while dense: every NM_JUDGE_EVERY-th
                                is not populated, and judged (both relaxed, no lock) */
    int        node;         /* NUMA node id, or -1 for the pseudo-domains */
    int        mpol_mode;    /* MPOL_* used to bind this domain's memory */
    bool       bind;         /* mbind at all (false on one-node machines) */
    bool       strict;       /* MPOL_BIND, and memory faulted in when a slab or mapping is
                                made, after checking the node has room: no spill, no OOM
                                kill at first touch (src/policy.c) */
} NM_ALIGNED(64) nm_domain_t;    /* (no two domains share a line of their locks) */

/* ---- thread cache ----------------------------------------------------------------- */
enum nm_tstate { NM_T_NEW = 0, NM_T_ACTIVE = 1, NM_T_DEAD = 2 };

typedef struct nm_tcache {
    nm_bin_t  bins[NM_NUM_CLASSES];  /* first: the fast path indexes these */
    uint64_t  free_tag_hi;   /* page-map tag (domain << 4 | SLAB) << 48: blocks this thread may cache */
    uint8_t   state;         /* enum nm_tstate */
    uint8_t   busy;          /* >0 while inside the allocator's own calls out (profiler, dumps) */
    uint8_t   tpol;          /* per-thread placement policy (src/policy.c): 0 the process's */
    uint32_t  domain;        /* domain serving this thread's small and medium blocks */
    int32_t   domain_node;   /* nm_domain_node(domain), kept here: the slow paths count
                                remote allocations without a look at the domain table */
    int32_t   cpu_node;      /* node of the CPU seen at the last check */
    int32_t   cpu;           /* that CPU: while it is the same, so is the node */
    uint32_t  slow_ticks;    /* slow-path events since the last decay check */
    uint64_t  trim_due_ms;   /* when its bins are next looked at for idleness (nm_tcache_trim) */
    uint64_t  now_ms;        /* the clock at its last decay check: when a large block it
                                keeps was freed, give or take 32 slow events */
    uint64_t  busy_ms;       /* the same, 0 before its first decay check: exiting threads
                                read it (relaxed, under the threads lock) to see who is busy */
    int64_t   prof_left;     /* profiler: bytes until the next large sample */
    uint64_t  rng;           /* profiler: xorshift state */
    int32_t   tid;           /* kernel thread id of the owner (to find caches of dead threads) */
    uint64_t  held;          /* capacity of the magazines in the bins, bytes (<= budget) */
    uint64_t  budget;        /* what the bins may hold: NM_TC_MIN_BYTES plus what it took from the pool */
    uint32_t  clock;         /* slow events of the bins, for used[] */
    uint32_t  trimmed_at;    /* clock at the last trim (the thread's decay tick) */
    uint32_t  evictions;     /* bins emptied to make room since the last trim */
    uint64_t  mag_bins;      /* bit c: bin c may hold a magazine (set when admitted,
                                cleared when found empty): what admit looks at */
    uint32_t  used[NM_NUM_CLASSES];  /* clock at each bin's last slow event */
    uint8_t   fill[NM_NUM_CLASSES];  /* rounds a bin's next fill from the slabs takes
                                        (0: NM_FILL_START): doubles per fill up to the
                                        magazine, halves when the bin is evicted */
    /* large blocks this thread freed, kept for its next request (large.c): the owner
     * and any thread reclaiming them (decay, malloc_trim) take a block only by
     * exchanging its slot for NULL, except inside the owner's own sections (lc_busy,
     * lc_reclaim: see large.c), where it uses plain loads and stores */
    nm_large_t *lcache[NM_LCACHE_SLOTS];
    uint32_t  lc_busy;       /* >0 while the owner is in such a section (written by the
                                owner, read by reclaimers: relaxed) */
    uint32_t  lc_reclaim;    /* set by a reclaimer that will exchange slots: the owner then
                                exchanges too */
    /* bytes of blocks the owner took back from its slots still counted in the global
     * large_tcache_bytes: its next keep uses them up instead of two atomic updates
     * per round trip; settled at its decay tick and when its caches are flushed */
    uint64_t  lc_owed;
    /* the newest new large mapping this thread made and left unpopulated, not yet
     * judged (large.c): its start, length and domain; the owner only */
    char     *judge_map;
    size_t    judge_len;
    uint32_t  judge_dom;
    /* round trips through those slots not yet in ctr, shaped as ctr.bk (counting
     * each block cost a tenth of a 2 MiB pair). All are of the thread's domain: the
     * slots hold no other, and a domain change settles them first. Added to ctr by
     * nm_large_settle: once per decay interval, at a node move or policy change, at
     * exit (under the thread-list lock) and when a dead thread is retired; dumps and
     * mallinfo add them as they read the live thread. */
    uint64_t  lc_pend[NM_BACKING_CTR_N][NM_BACK_COUNT];
    nm_mag_t **remote;       /* [ndomains * NM_NUM_CLASSES] blocks going back to their domain */
    struct nm_tcache *next;  /* thread list */
    struct nm_tcache *prev;
    nm_counters_t ctr;       /* plain per-thread counters */
} nm_tcache_t;

/* ---- NUMAMALLOC_CHECK=1 verdict on a block about to be freed or reallocated -------- */
#define NM_CANARY_OK SIZE_MAX
typedef struct nm_verdict {
    const char *why;         /* NULL: p is a live block of ours; else why it is not */
    size_t    req;           /* bytes the program asked for (valid when why == NULL) */
    size_t    bad;           /* offset of the first overwritten canary byte, or NM_CANARY_OK */
} nm_verdict_t;

#endif
