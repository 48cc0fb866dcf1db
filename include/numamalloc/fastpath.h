/* numamalloc — THE HOT PATH. Everything a small malloc or free does when it hits
 * the thread's loaded magazine: no lock, no atomic read-modify-write, no system
 * call, no option read. Anything else is one call to a _slow function, which starts
 * with the medium hot path below (one atomic each way, for the double-free check).
 *
 * It is a header so that every exported entry point (malloc, free, operator new,
 * operator delete, ... in preload/interpose.c) gets it inlined, without a jump.
 *
 * Uninitialised looks empty: a thread's cache pointer starts at a read-only empty
 * cache, so cur == base (malloc) and cur == end (free) fail the one test and divert
 * to the slow path, which starts the thread; nothing here writes before that test.
 * The budget counts allocations down; it reaching zero diverts one allocation to
 * the slow path, which accounts the batch (stats) or samples it (profiler): the
 * decrement is the only cost either feature adds here. Frees are not counted here:
 * the slow path derives them from how far cur moved (nm_bin_t.mark). */
#ifndef NM_FASTPATH_H
#define NM_FASTPATH_H

#include "numamalloc/internal.h"

/* Return a block of class cls from the loaded magazine, from the enclosing function;
 * fall through when the magazine is empty or the budget ran out (the slow path
 * decides). A statement, not a function returning NULL: the NULL test would cost
 * two instructions on every malloc. */
#define NM_BIN_POP_RETURN(cls) do {                                          \
        nm_bin_t *b_ = &nm_tcp->bins[(cls)];                                 \
        void **c_ = b_->cur;                                                 \
        if (NM_LIKELY(c_ != b_->base) && NM_LIKELY(--b_->budget != 0)) {     \
            b_->cur = --c_;                                                  \
            return *c_;                                                      \
        }                                                                    \
    } while (0)

NM_INLINE void *nm_malloc_fast(size_t n)
{
    if (NM_LIKELY(n <= NM_SMALL_MAX)) NM_BIN_POP_RETURN(nm_size_class(n));
    return nm_malloc_slow(n);
}

/* The page-map tag (domain, kind) must equal this thread's: a slab block of the
 * thread's own domain. Other domains (origin-aware free), large, arena, NULL and
 * unknown pointers all go to nm_free_slow. */
NM_INLINE void nm_free_fast(void *p)
{
    nm_tcache_t *tc = nm_tcp;
    nm_pme_t e = nm_pagemap_get((uintptr_t)p);
    if (NM_LIKELY(((e ^ tc->free_tag_hi) >> NM_PME_TAG_SHIFT) == 0)) {
        nm_bin_t *b = &tc->bins[nm_pme_class(e)];
        void **c = b->cur;
        if (NM_LIKELY(c != b->end)) {
            *c = p;
            b->cur = c + 1;
            return;
        }
    }
    nm_free_slow(p, e);
}

/* ---- medium blocks (32 KiB < n < NUMAMALLOC_LARGE_THRESHOLD), from the _slow functions.
 * The same bins; the live map (pagemap.h) says which medium blocks the program
 * holds, so a double or interior free is refused instead of caching the block twice.
 * One plain byte store each way (and a load at free). */

/* pop a block of medium class cls from the loaded magazine, from the enclosing function */
#define NM_MEDIUM_POP_RETURN(tc, cls) do {                                   \
        nm_bin_t *b_ = &(tc)->bins[(cls)];                                   \
        void **c_ = b_->cur;                                                 \
        if (NM_LIKELY(c_ != b_->base) && NM_LIKELY(--b_->budget != 0)) {     \
            b_->cur = --c_;                                                  \
            return nm_medium_out(*c_);                                       \
        }                                                                    \
    } while (0)

/* a medium block of this thread's domain, held by the program and with room in its
 * bin: pushed. false: anything else (the slow path decides and reports). Blocks start
 * on 8 KiB boundaries and only block starts are ever set in the live map, so an
 * interior pointer finds a clear bit too. */
NM_INLINE bool nm_medium_free_fast(nm_tcache_t *tc, void *p, nm_pme_t e)
{
    if (((e ^ tc->free_tag_hi) >> NM_PME_TAG_SHIFT) != (NM_KIND_SLAB ^ NM_KIND_MEDIUM)) return false;
    nm_bin_t *b = &tc->bins[nm_pme_class(e)];
    void **c = b->cur;
    if (c == b->end || !nm_live_aligned(p) || !nm_live_clear(p)) return false;
    *c = p;
    b->cur = c + 1;
    return true;
}

#endif
