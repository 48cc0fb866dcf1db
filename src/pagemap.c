/* numamalloc — the page map: the origin of every block we hand out.
 *
 * A two-level radix tree over 48-bit addresses with one 64-bit entry per 64 KiB
 * granule (include/numamalloc/config.h): the root is a static array of 2^16 leaf
 * pointers (zero before any constructor runs), a leaf is 2^16 entries (512 KiB)
 * mapped straight from the OS on first use, never freed, counted in pagemap_bytes.
 * Untouched leaf pages cost no memory: a leaf page covers 32 MiB of address space.
 *
 * What is registered (see config.h for why 64 KiB is enough):
 *   - every granule of a slab, while the slab exists (kind SLAB, class, slab desc);
 *   - the granule of the pointer handed out for a large mapping (kind LARGE/HUGE);
 * and, for medium slabs, the live map of pagemap.h (a byte per 8 KiB: blocks the
 * program holds), whose 512 KiB leaves are mapped the same way and never freed.
 *
 * Memory order. Writers: a leaf is created under pm_lock and published with a
 * release store of its root slot (double-checked, as jemalloc's rtree_leaf_init);
 * entries are stored (release) by the owner of the range before any pointer into it
 * is handed out. Readers (nm_pagemap_get in pagemap.h) load the root slot with
 * acquire and the entry relaxed: a pointer reaches free() in another thread only
 * through the program's own synchronisation, which orders our entry store before
 * that free. An entry cleared when a slab or mapping is released can only be read by
 * a free() of a pointer that is no longer allocated: a bug we report, not a race. */
#include <errno.h>
#include <sys/mman.h>

#include "numamalloc/pagemap.h"
#include "numamalloc/os.h"
#include "numamalloc/stats.h"
#include "numamalloc/internal.h"

NM_BIG_BSS nm_pme_t *nm_pm_root[NM_PM_ROOT_LEN];
NM_BIG_BSS uint8_t *nm_live_root[NM_PM_ROOT_LEN];
NM_GLOBAL_LOCK nm_lock_t nm_pm_lock = NM_LOCK_INIT;

static nm_pme_t *leaf_for(uintptr_t a, bool create)
{
    uintptr_t i = a >> (NM_GRANULE_SHIFT + NM_PM_LEAF_BITS);
    if (i >= NM_PM_ROOT_LEN) return NULL;
    nm_pme_t *leaf = __atomic_load_n(&nm_pm_root[i], __ATOMIC_ACQUIRE);
    if (leaf != NULL || !create) return leaf;
    nm_lock(&nm_pm_lock);
    leaf = __atomic_load_n(&nm_pm_root[i], __ATOMIC_RELAXED);
    if (leaf == NULL) {
        size_t bytes = NM_PM_LEAF_LEN * sizeof(nm_pme_t);
        leaf = nm_os_map(bytes, MAP_NORESERVE);
        if (leaf != NULL) {
            nm_gstat_add(NM_C_pagemap_bytes, bytes);
            __atomic_store_n(&nm_pm_root[i], leaf, __ATOMIC_RELEASE);
        }
    }
    nm_unlock(&nm_pm_lock);
    return leaf;
}

bool nm_pagemap_set_range(uintptr_t start, size_t len, nm_pme_t e)
{
    uintptr_t a = nm_align_down(start, NM_GRANULE);
    uintptr_t end = start + (len ? len : 1);
    if (end < start) { errno = EINVAL; return false; }     /* wraps around: never ours */
    for (; a < end; a += NM_GRANULE) {
        nm_pme_t *leaf = leaf_for(a, e != 0);
        if (leaf == NULL) {
            if (e == 0) continue;
            errno = ENOMEM;
            return false;
        }
        __atomic_store_n(&leaf[(a >> NM_GRANULE_SHIFT) & (NM_PM_LEAF_LEN - 1)], e, __ATOMIC_RELEASE);
    }
    return true;
}

bool nm_pagemap_set(uintptr_t a, nm_pme_t e)
{
    nm_pme_t *leaf = leaf_for(a, e != 0);
    if (leaf == NULL) {
        if (e == 0) return true;
        errno = ENOMEM;
        return false;
    }
    __atomic_store_n(&leaf[(a >> NM_GRANULE_SHIFT) & (NM_PM_LEAF_LEN - 1)], e, __ATOMIC_RELEASE);
    return true;
}

void nm_pagemap_clear_range(uintptr_t start, size_t len) { nm_pagemap_set_range(start, len, 0); }

bool nm_pagemap_live_ready(uintptr_t a)
{
    uintptr_t i = a >> (NM_GRANULE_SHIFT + NM_PM_LEAF_BITS);
    if (i >= NM_PM_ROOT_LEN) return false;
    if (__atomic_load_n(&nm_live_root[i], __ATOMIC_ACQUIRE)) return true;
    nm_lock(&nm_pm_lock);
    uint8_t *leaf = __atomic_load_n(&nm_live_root[i], __ATOMIC_RELAXED);
    if (leaf == NULL) {
        size_t bytes = (size_t)1 << (NM_GRANULE_SHIFT + NM_PM_LEAF_BITS - NM_LIVE_SHIFT);
        leaf = nm_os_map(bytes, MAP_NORESERVE);
        if (leaf != NULL) {
            nm_gstat_add(NM_C_pagemap_bytes, bytes);
            __atomic_store_n(&nm_live_root[i], leaf, __ATOMIC_RELEASE);
        }
    }
    nm_unlock(&nm_pm_lock);
    return leaf != NULL;
}
