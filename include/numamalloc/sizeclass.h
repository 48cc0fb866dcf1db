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

/* smallest class whose size is >= n and a multiple of align (align a power of two
 * <= NM_SMALL_MAX): its blocks are align-aligned because slabs start 64 KiB aligned
 * and blocks sit at multiples of the class size. Returns NM_NUM_CLASSES if none. */
NM_INLINE size_t nm_size_class_aligned(size_t n, size_t align)
{
    if (n > NM_SMALL_MAX) return NM_NUM_CLASSES;
    /* start at the class of n rounded up to the alignment: usually it is the answer */
    size_t r = (n + align - 1) & ~(align - 1);
    if (r > NM_SMALL_MAX) return NM_NUM_CLASSES;
    for (size_t c = nm_size_class(r); c < NM_NUM_CLASSES; c++)
        if ((nm_class_size[c] & (align - 1)) == 0) return c;
    return NM_NUM_CLASSES;
}

#endif
