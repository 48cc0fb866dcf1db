/* numamalloc — public API.
 *
 * The library is normally used without this header: LD_PRELOAD=libnumamalloc.so
 * replaces the malloc family of an unmodified program. Programs that want more can
 * call the functions below, either by linking -lnumamalloc or, when preloaded, by
 * looking them up with dlsym(RTLD_DEFAULT, "numamalloc_...").
 * Every block returned here is freed with free(). See numamalloc(3). */
#ifndef NUMAMALLOC_H
#define NUMAMALLOC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* where a block came from */
enum numamalloc_kind {
    NUMAMALLOC_KIND_UNKNOWN = 0,   /* not allocated by numamalloc (or already freed) */
    NUMAMALLOC_KIND_SLAB    = 1,   /* small (<= 32 KiB) or medium (<= 1 MiB, below the large
                                      threshold) block in a node-local slab */
    NUMAMALLOC_KIND_LARGE   = 2,   /* own mapping on 4 KiB or transparent huge pages */
    NUMAMALLOC_KIND_HUGE    = 3,   /* own mapping on hugetlb pages */
    NUMAMALLOC_KIND_ARENA   = 4,   /* fallback arena (mimalloc): served while booting, or when
                                      no memory of our own could be had */
};

/* how a block's pages are backed */
enum numamalloc_pages {
    NUMAMALLOC_PAGES_4K         = 0,
    NUMAMALLOC_PAGES_THP        = 1,   /* madvise(MADV_HUGEPAGE) asked; the kernel decides */
    NUMAMALLOC_PAGES_HUGETLB_2M = 2,
    NUMAMALLOC_PAGES_HUGETLB_1G = 3,
};

struct numamalloc_block_info {
    int    kind;          /* enum numamalloc_kind */
    int    node;          /* NUMA node of the block's memory; -1 interleaved or unknown */
    int    pages;         /* enum numamalloc_pages */
    int    size_class;    /* slab blocks: class index, 0..39 small, 40..59 medium; otherwise -1 */
    size_t usable_size;   /* bytes usable from ptr (malloc_usable_size) */
};

/* "0.1.0" */
const char *numamalloc_version(void);

/* size bytes on NUMA node `node` (mbind'ed there), whatever the policy; NULL with
 * errno EINVAL if the node has no memory, ENOMEM if out of memory */
void *numamalloc_alloc_onnode(size_t size, int node);
/* size bytes with pages interleaved over every node with memory (over the nodes of
 * NUMAMALLOC_POLICY=interleave:... if given); on one node, a plain allocation */
void *numamalloc_alloc_interleaved(size_t size);
/* node of the block holding ptr as recorded at allocation; -1 if interleaved or not ours */
int numamalloc_node_of(const void *ptr);
/* fill *info for the block starting at ptr; 0, or -1 (errno EINVAL) if not ours */
int numamalloc_block_info(const void *ptr, struct numamalloc_block_info *info);

/* the statistics dump as text or JSON (one line) into buf (NUL-terminated, truncated
 * if needed); returns the length the whole dump needs, excluding the NUL */
size_t numamalloc_stats_print(char *buf, size_t len);
size_t numamalloc_stats_json(char *buf, size_t len);
/* the effective value of NUMAMALLOC_<name> ("POLICY", ...), or NULL if no such option */
const char *numamalloc_option_get(const char *name);

#ifdef __cplusplus
}
#endif

#endif
