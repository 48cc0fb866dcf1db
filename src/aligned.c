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

static void *aligned_any(size_t align, size_t n)
{
    if (align <= 16) return nm_malloc(n);
    if (n <= NM_SMALL_MAX && align <= NM_SMALL_MAX) {
        /* the fast path, with the first class whose blocks are align-aligned (a medium
         * class when no small one is: its blocks are handed out marked held) */
        size_t cls = nm_size_class_aligned(n, align);
        if (cls < NM_SMALL_CLASSES) NM_BIN_POP_RETURN(cls);
        else if (cls < NM_NUM_CLASSES) NM_MEDIUM_POP_RETURN(nm_tcp, cls);
    }
    if (NM_UNLIKELY(n > PTRDIFF_MAX || align > ((size_t)1 << 40))) { errno = ENOMEM; return NULL; }
    nm_tcache_t *tc = nm_thread_ready();
    if (tc == NULL) return nm_bootstrap_alloc(n, align, false);
    return nm_alloc_any(tc, n, align, false);
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

int nm_posix_memalign(void **out, size_t align, size_t n)
{
    if (!nm_is_pow2(align) || align % sizeof(void *) != 0) return EINVAL;
    int saved = errno;
    void *p = aligned_any(align, n);
    int rc = p ? 0 : ENOMEM;
    errno = saved;                       /* posix_memalign reports through its result only */
    if (p) *out = p;
    return rc;
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
