/* numamalloc — size <-> class, inline (hot path). Tables are generated at build
 * time by tools/gen_sizeclass.c into build/sizeclass_table.h, so they are const
 * data usable before any initialisation. */
#ifndef NM_SIZECLASS_H
#define NM_SIZECLASS_H

#include "numamalloc/base.h"
#include "sizeclass_table.h"

/* n must be <= NM_SMALL_MAX; n == 0 maps to the 16-byte class */
NM_INLINE size_t   nm_size_class(size_t n)   { return nm_class_of_q[(n + 15) >> NM_QUANTUM_SHIFT]; }
NM_INLINE size_t   nm_class_to_size(unsigned c) { return nm_class_size[c]; }
NM_INLINE bool     nm_class_is_medium(unsigned c) { return c >= NM_SMALL_CLASSES; }

/* NM_SMALL_MAX < n <= NM_MEDIUM_MAX */
NM_INLINE size_t nm_medium_class(size_t n) { return nm_class_of_8k[(n - 1) >> 13]; }

/* any n <= NM_MEDIUM_MAX */
NM_INLINE size_t nm_class_of(size_t n)
{
    return n <= NM_SMALL_MAX ? nm_size_class(n) : nm_medium_class(n);
}

/* smallest class whose size is >= n and a multiple of align (a power of two): its
 * blocks are align-aligned because slabs start 64 KiB aligned and blocks sit at
 * multiples of the class size. Returns NM_NUM_CLASSES if none (n or align too big). */
NM_INLINE size_t nm_size_class_aligned(size_t n, size_t align)
{
    if (n > NM_MEDIUM_MAX || align > NM_GRANULE) return NM_NUM_CLASSES;
    /* start at the class of n rounded up to the alignment: usually it is the answer */
    size_t r = (n + align - 1) & ~(align - 1);
    if (r > NM_MEDIUM_MAX) return NM_NUM_CLASSES;
    for (size_t c = nm_class_of(r); c < NM_NUM_CLASSES; c++)
        if ((nm_class_size[c] & (align - 1)) == 0) return c;
    return NM_NUM_CLASSES;
}

#endif
