/* numamalloc — page-map entry encoding and the inline lookup (hot path).
 * The map itself (leaves, registration) is src/pagemap.c. */
#ifndef NM_PAGEMAP_H
#define NM_PAGEMAP_H

#include "numamalloc/types.h"

#define NM_PME_TAG_SHIFT   48
#define NM_PME_KIND_MASK   0xfu
#define NM_PME_CLASS_MASK  0x3fu
#define NM_PME_DESC_MASK   ((((uint64_t)1 << NM_PME_TAG_SHIFT) - 1) & ~(uint64_t)63)

extern nm_pme_t *nm_pm_root[NM_PM_ROOT_LEN];

NM_INLINE uint16_t nm_pme_tag_make(unsigned domain, unsigned kind) { return (uint16_t)((domain << 4) | kind); }

NM_INLINE nm_pme_t nm_pme_make(unsigned kind, unsigned domain, unsigned cls, const void *desc)
{
    return ((uint64_t)nm_pme_tag_make(domain, kind) << NM_PME_TAG_SHIFT) | (uintptr_t)desc | cls;
}
NM_INLINE unsigned nm_pme_kind(nm_pme_t e)   { return (unsigned)(e >> NM_PME_TAG_SHIFT) & NM_PME_KIND_MASK; }
NM_INLINE unsigned nm_pme_domain(nm_pme_t e) { return (unsigned)(e >> (NM_PME_TAG_SHIFT + 4)); }
NM_INLINE unsigned nm_pme_class(nm_pme_t e)  { return (unsigned)e & NM_PME_CLASS_MASK; }
NM_INLINE void    *nm_pme_desc(nm_pme_t e)   { return (void *)(uintptr_t)(e & NM_PME_DESC_MASK); }

/* Entry for address a, or 0 ("none") when nothing is registered there. Lock-free:
 * the leaf pointer is loaded with acquire (it was published with release after the
 * leaf was mapped, so its zero contents are visible); the entry itself is relaxed:
 * it was stored before the block was handed out, and the program's own
 * synchronisation that carried the pointer to this thread orders that store before
 * this load. Addresses at or above 2^48 (57-bit VA) are never ours: answer none. */
NM_INLINE nm_pme_t nm_pagemap_get(uintptr_t a)
{
    uintptr_t i = a >> (NM_GRANULE_SHIFT + NM_PM_LEAF_BITS);
    if (NM_UNLIKELY(i >= NM_PM_ROOT_LEN)) return 0;
    nm_pme_t *leaf = __atomic_load_n(&nm_pm_root[i], __ATOMIC_ACQUIRE);
    if (NM_UNLIKELY(leaf == NULL)) return 0;
    return __atomic_load_n(&leaf[(a >> NM_GRANULE_SHIFT) & (NM_PM_LEAF_LEN - 1)], __ATOMIC_RELAXED);
}

/* ---- the live map: medium blocks the program holds ---------------------------------
 * One byte per 8 KiB of address space (every medium block starts on such a boundary,
 * and no two in the same 8 KiB), 1 from malloc to free, beside the page map: the
 * leaf for the 4 GiB a page-map leaf covers is 512 KiB of address space, mapped
 * (src/pagemap.c) before the first medium slab there is registered; a touched page
 * of it covers 32 MiB. A byte, not a bit: each block's flag is written with a plain
 * store, so blocks sharing a word need no locked instruction (two locked bit
 * operations made up half of a 256 KiB malloc/free pair's time). The thread handing
 * the block out sets it, the thread taking it back tests and clears it; the
 * program's own synchronisation orders the two, so relaxed order is enough. A free
 * whose byte is clear is a double free or not a block start: refused, never cached.
 * Only two frees of one block racing in two threads at the same moment can both
 * see it set (the program's data race; glibc's and tcmalloc's checks miss it too). */
#define NM_LIVE_SHIFT      13
extern uint8_t *nm_live_root[NM_PM_ROOT_LEN];

NM_INLINE uint8_t *nm_live_leaf(uintptr_t a) { return __atomic_load_n(&nm_live_root[a >> (NM_GRANULE_SHIFT + NM_PM_LEAF_BITS)], __ATOMIC_ACQUIRE); }
NM_INLINE uint64_t nm_live_index(uintptr_t a) { return (a >> NM_LIVE_SHIFT) & (((uint64_t)1 << (NM_GRANULE_SHIFT + NM_PM_LEAF_BITS - NM_LIVE_SHIFT)) - 1); }

/* mark medium block p held (ours, its leaf mapped) */
NM_INLINE void nm_live_set(const void *p)
{
    __atomic_store_n(&nm_live_leaf((uintptr_t)p)[nm_live_index((uintptr_t)p)], 1, __ATOMIC_RELAXED);
}

/* mark medium block p no longer held; true if it was */
NM_INLINE bool nm_live_clear(const void *p)
{
    uint8_t *f = &nm_live_leaf((uintptr_t)p)[nm_live_index((uintptr_t)p)];
    if (__atomic_load_n(f, __ATOMIC_RELAXED) == 0) return false;
    __atomic_store_n(f, 0, __ATOMIC_RELAXED);
    return true;
}

NM_INLINE bool nm_live_test(const void *p)
{
    const uint8_t *leaf = nm_live_leaf((uintptr_t)p);
    return leaf && __atomic_load_n(&leaf[nm_live_index((uintptr_t)p)], __ATOMIC_RELAXED);
}

/* p may start a medium block: every one starts on an 8 KiB boundary */
NM_INLINE bool nm_live_aligned(const void *p)
{
    return ((uintptr_t)p & (((uintptr_t)1 << NM_LIVE_SHIFT) - 1)) == 0;
}

/* p, in a medium slab, is a block the program holds: on an 8 KiB boundary and set.
 * Only block starts are ever set, so an interior pointer fails too; no look at the
 * slab's descriptor (a cache miss on realloc's and malloc_usable_size's paths). */
NM_INLINE bool nm_medium_held(const void *p)
{
    return nm_live_aligned(p) && nm_live_test(p);
}

/* The entry of an address known to be ours (a block from our own caches): no
 * bounds or missing-leaf test. */
NM_INLINE nm_pme_t nm_pagemap_get_ours(uintptr_t a)
{
    nm_pme_t *leaf = __atomic_load_n(&nm_pm_root[a >> (NM_GRANULE_SHIFT + NM_PM_LEAF_BITS)], __ATOMIC_ACQUIRE);
    return __atomic_load_n(&leaf[(a >> NM_GRANULE_SHIFT) & (NM_PM_LEAF_LEN - 1)], __ATOMIC_RELAXED);
}

#endif
