/* numamalloc — global counters (relaxed atomics, slow paths only) and fallback
 * reasons. Defined in src/stats.c. */
#ifndef NM_GSTATS_H
#define NM_GSTATS_H

#include "numamalloc/stats.h"
#include "numamalloc/base.h"

extern uint64_t nm_gctr[NM_GLOBAL_CTR_N];
extern uint64_t nm_fallback[NM_FB_N];
extern int      nm_fallback_errno[NM_FB_N];

NM_INLINE void nm_gstat_add(int id, uint64_t v) { __atomic_fetch_add(&nm_gctr[id], v, __ATOMIC_RELAXED); }
NM_INLINE void nm_gstat_sub(int id, uint64_t v) { __atomic_fetch_sub(&nm_gctr[id], v, __ATOMIC_RELAXED); }
NM_INLINE uint64_t nm_gstat_get(int id) { return __atomic_load_n(&nm_gctr[id], __ATOMIC_RELAXED); }
/* raise peak counter `peak` to at least v */
NM_INLINE void nm_gstat_max(int peak, uint64_t v)
{
    uint64_t cur = __atomic_load_n(&nm_gctr[peak], __ATOMIC_RELAXED);
    while (v > cur && !__atomic_compare_exchange_n(&nm_gctr[peak], &cur, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {}
}
/* the heap's footprint (live + cached bytes) and its peak */
NM_INLINE void nm_footprint_add(int64_t v)
{
    uint64_t now = __atomic_add_fetch(&nm_gctr[NM_C_footprint], (uint64_t)v, __ATOMIC_RELAXED);
    if (v > 0) nm_gstat_max(NM_C_footprint_peak, now);
}
/* count a fallback under its reason; err = errno of the failed call, or 0 */
NM_INLINE void nm_fallback_count(int reason, int err)
{
    __atomic_fetch_add(&nm_fallback[reason], 1, __ATOMIC_RELAXED);
    if (err) __atomic_store_n(&nm_fallback_errno[reason], err, __ATOMIC_RELAXED);
}

#endif
