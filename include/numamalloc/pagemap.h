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

#endif
