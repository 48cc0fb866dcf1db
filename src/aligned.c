/* numamalloc — aligned_alloc, posix_memalign, memalign, valloc, pvalloc.
 *
 * Alignments up to 16 are plain malloc. Up to 64 KiB, small and medium sizes come
 * from the first size class whose size is a multiple of the alignment: slabs start
 * 64 KiB aligned and blocks sit at multiples of their size, so such blocks are
 * aligned by construction, with no padding and no header. Larger alignments get
 * their own mapping, aligned when mapped (tested to 1 GiB).
 * No locks here. */
#include <errno.h>
#include <stdint.h>

#include "numamalloc/internal.h"
#include "numamalloc/fastpath.h"

/* a block from the loaded magazine of the first class whose blocks are align-aligned
 * (a medium class when no small one is: its blocks are handed out marked held), or
 * NULL with nothing touched, errno included */
NM_INLINE void *aligned_hot(size_t align, size_t n)
{
    if (n > NM_SMALL_MAX || align > NM_SMALL_MAX) return NULL;
    size_t cls = align <= 16 ? nm_size_class(n) : nm_size_class_aligned(n, align);
    if (cls < NM_SMALL_CLASSES) NM_BIN_POP_RETURN(cls);
    else if (cls < NM_NUM_CLASSES) NM_MEDIUM_POP_RETURN(nm_tcp, cls);
    return NULL;
}

static NM_NOINLINE void *aligned_slow(size_t align, size_t n)
{
    if (align <= 16) return nm_malloc(n);
    if (NM_UNLIKELY(n > PTRDIFF_MAX || align > ((size_t)1 << 40))) { errno = ENOMEM; return NULL; }
    nm_tcache_t *tc = nm_thread_ready();
    if (tc == NULL) return nm_bootstrap_alloc(n, align, false);
    return nm_alloc_any(tc, n, align, false);
}

NM_INLINE void *aligned_any(size_t align, size_t n)
{
    void *p = aligned_hot(align, n);
    return NM_LIKELY(p != NULL) ? p : aligned_slow(align, n);
}

/* glibc: memalign rounds a non-power-of-two alignment up to the next power of two;
 * EINVAL only when there is none (above 2^63); 2^63 itself then fails with ENOMEM */
void *nm_memalign(size_t align, size_t n)
{
    if (align <= 16) return nm_malloc(n);
    if (!nm_is_pow2(align)) {
        if (align > ((size_t)1 << 63)) { errno = EINVAL; return NULL; }
        size_t a = 32;
        while (a < align) a <<= 1;
        align = a;
    }
    return aligned_any(align, n);
}

/* (out of line: the hot path above then saves no registers) */
static NM_NOINLINE int posix_memalign_slow(void **out, size_t align, size_t n)
{
    int saved = errno;
    void *p = aligned_slow(align, n);
    errno = saved;                       /* posix_memalign reports through its result only */
    if (p == NULL) return ENOMEM;
    *out = p;
    return 0;
}

int nm_posix_memalign(void **out, size_t align, size_t n)
{
    if (!nm_is_pow2(align) || align % sizeof(void *) != 0) return EINVAL;
    void *p = aligned_hot(align, n);
    if (NM_UNLIKELY(p == NULL)) return posix_memalign_slow(out, align, n);
    *out = p;
    return 0;
}

/* C11/C17 (DR 460): a non-power-of-two alignment is an error (as glibc >= 2.38, musl) */
void *nm_aligned_alloc(size_t align, size_t n)
{
    if (!nm_is_pow2(align)) { errno = EINVAL; return NULL; }
    return aligned_any(align, n);
}

void *nm_valloc(size_t n) { return aligned_any(nm_os_page, n); }

void *nm_pvalloc(size_t n)
{
    size_t r = nm_align_up(n ? n : 1, nm_os_page);
    if (r < n) { errno = ENOMEM; return NULL; }
    return aligned_any(nm_os_page, r);
}
