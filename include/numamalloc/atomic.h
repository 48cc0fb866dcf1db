/* numamalloc — the atomic operations we use, named by their memory order. Relaxed
 * for counters and for reads that need no ordering (each use says why); acquire and
 * release to publish and read pointers to initialised memory; acq_rel exchanges for
 * slots that two threads may empty at once. */
#ifndef NM_ATOMIC_H
#define NM_ATOMIC_H

#define nm_load_relaxed(p)       __atomic_load_n((p), __ATOMIC_RELAXED)
#define nm_load_acquire(p)       __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define nm_store_relaxed(p, v)   __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define nm_store_release(p, v)   __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define nm_add_relaxed(p, v)     __atomic_fetch_add((p), (v), __ATOMIC_RELAXED)
#define nm_sub_relaxed(p, v)     __atomic_fetch_sub((p), (v), __ATOMIC_RELAXED)
#define nm_add_fetch_relaxed(p, v) __atomic_add_fetch((p), (v), __ATOMIC_RELAXED)
#define nm_xchg_acq_rel(p, v)    __atomic_exchange_n((p), (v), __ATOMIC_ACQ_REL)
/* replace *p by v if it still holds *expect; false (and *expect updated) otherwise */
#define nm_cas_acq_rel(p, expect, v) \
    __atomic_compare_exchange_n((p), (expect), (v), false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)

#endif
