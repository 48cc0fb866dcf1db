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

/* size bytes on NUMA node `node`, whatever the policy, strictly: bound with MPOL_BIND
 * and faulted in now, so it never spills to another node and never fails at first
 * touch. NULL with errno EINVAL if the node has no memory, ENOMEM if the node cannot
 * hold the block (or memory is exhausted) */
void *numamalloc_alloc_onnode(size_t size, int node);
/* flags for numamalloc_alloc_onnode_flags */
#define NUMAMALLOC_ONNODE_SPILL 0x1   /* the node first, other nodes when it is full
                                         (MPOL_PREFERRED; pages placed at first touch) */
/* numamalloc_alloc_onnode with flags (0: the same); EINVAL for unknown flags */
void *numamalloc_alloc_onnode_flags(size_t size, int node, int flags);
/* size bytes with pages interleaved over every node with memory (over the nodes of
 * NUMAMALLOC_POLICY=interleave:... if given); on one node, a plain allocation */
void *numamalloc_alloc_interleaved(size_t size);
/* node of the block holding ptr as recorded at allocation; -1 if interleaved or not ours */
int numamalloc_node_of(const void *ptr);
/* node the first page of the block at ptr is on now (move_pages(2)); -1 with errno
 * EINVAL (not a block of ours), ENOENT (page not resident yet) or the error of
 * move_pages */
int numamalloc_resident_node(const void *ptr);
/* fill *info for the block starting at ptr; 0, or -1 (errno EINVAL) if not ours */
int numamalloc_block_info(const void *ptr, struct numamalloc_block_info *info);

/* the calling thread's placement policy, in the grammar of NUMAMALLOC_POLICY (local,
 * interleave[:N,M...], bind:N[,M...], preferred:N); NULL or "" returns the thread to
 * the process policy. Affects the thread's small, medium and large blocks from now
 * on (its cached blocks go back first). 0, or -1 with errno EINVAL (not in the
 * grammar, a node without memory; nothing changes) or ENOSPC (too many distinct
 * per-thread policies or interleaved node sets in the process) */
int numamalloc_thread_policy_set(const char *policy);
/* the policy in effect for the calling thread into buf: 1 its own, 0 the process
 * policy; -1 with errno EINVAL (buf NULL or len 0) or ERANGE (does not fit) */
int numamalloc_thread_policy_get(char *buf, size_t len);

/* topology: the node ids with memory, ascending, into nodes[0 .. len-1]; returns how
 * many there are (call with NULL, 0 to count); -1 with errno EINVAL if len < 0 */
int numamalloc_nodes_with_memory(int *nodes, int len);
/* NUMA node of CPU cpu; -1 with errno EINVAL if there is no such CPU */
int numamalloc_node_of_cpu(int cpu);
/* NUMA node of the CPU the caller runs on now */
int numamalloc_current_node(void);
/* SLIT distance between nodes a and b (10: local); -1 with errno EINVAL if either
 * node is not online */
int numamalloc_node_distance(int a, int b);

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
