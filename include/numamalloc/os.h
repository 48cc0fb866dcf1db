/* numamalloc — the OS contract (src/os.c). Every system call the allocator makes
 * goes through here, is counted (stats: mmap_calls, mbind_fail, ...) and keeps its
 * last errno. Raw syscall(2), not the libc wrappers: a program that interposes
 * mmap (and calls dlsym, which allocates) must not be able to re-enter us. */
#ifndef NM_OS_H
#define NM_OS_H

#include "numamalloc/base.h"

enum nm_os_call { NM_OS_MMAP, NM_OS_MUNMAP, NM_OS_MADVISE, NM_OS_MBIND, NM_OS_MREMAP, NM_OS_MOVE_PAGES, NM_OS_CALLS };
extern int nm_os_last_errno[NM_OS_CALLS];
extern size_t nm_os_page;            /* base page size (4096 here) */

/* anonymous private read-write mapping; NULL on failure (errno set) */
void *nm_os_map(size_t size, int extra_flags);
/* like nm_os_map, aligned to align (a power of two >= page); trims the excess */
void *nm_os_map_aligned(size_t size, size_t align, int extra_flags);
/* like nm_os_map, at an address that is offset past a multiple of align (offset a
 * multiple of the page, below align: else NULL with EINVAL) */
void *nm_os_map_congruent(size_t size, size_t align, size_t offset, int extra_flags);
bool  nm_os_unmap(void *p, size_t size);
/* membarrier(2), private expedited: register the process (false if the kernel cannot),
 * and make every thread of the process run a full memory barrier (false on failure) */
bool  nm_os_membarrier_register(void);
bool  nm_os_membarrier(void);
bool  nm_os_advise(void *p, size_t size, int advice);
/* mincore(2): one byte per page into vec, bit 0 set when resident; not counted */
bool  nm_os_mincore(void *p, size_t size, unsigned char *vec);
void *nm_os_remap(void *p, size_t old_size, size_t new_size, int flags, void *new_addr);
/* mbind(2) with a node mask of nbits bits; counts failures, keeps errno */
bool  nm_os_mbind(void *p, size_t size, int mode, const unsigned long *mask, unsigned long nbits);
/* bind [p, p+size) to one node (mode MPOL_BIND / MPOL_PREFERRED) */
bool  nm_os_mbind_node(void *p, size_t size, int mode, int node);
/* move_pages(2) of our own process in query mode (nodes NULL: nothing moves): the
 * node of each page in status[i], or a negative errno (-ENOENT: not present);
 * returns false (errno kept in nm_os_last_errno) if the call itself failed */
bool  nm_os_page_nodes(unsigned long count, void **pages, int *status);
/* read a small file without stdio or malloc; returns bytes read (NUL-terminated) or -1 */
long  nm_os_read_file(const char *path, char *buf, size_t cap);
/* zero [p, p+n) of a private anonymous mapping, skipping whole pages that are
 * neither resident nor swapped (they read as zero): calloc of a reused block
 * leaves the pages its last user never touched untouched */
void  nm_os_zero_resident(void *p, size_t n);
/* read a file holding one unsigned number; returns false if absent or unparsable */
bool  nm_os_read_u64(const char *path, uint64_t *out);
uint64_t nm_os_now_ms(void);
uint64_t nm_os_now_ns(void);
/* CPU the thread runs on: rseq area (glibc >= 2.35 registers it) or getcpu(2) */
int   nm_os_cpu(void);
/* the same, inlined where it is asked on every large allocation: one load from the
 * rseq area once nm_os_cpu has found it registered (nm_os_rseq == 1) */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern int nm_os_rseq;          /* 0 unknown, 1 usable, 2 not registered (getcpu) */
/* the thread's rseq cpu_id (struct rseq: u32 cpu_id_start, then s32 cpu_id; -1 while
 * unregistered); only when nm_os_rseq == 1 */
NM_INLINE int32_t nm_os_rseq_cpu(void)
{
    return __atomic_load_n((const int32_t *)((char *)__builtin_thread_pointer() + __rseq_offset + 4),
                           __ATOMIC_RELAXED);
}
NM_INLINE int nm_os_cpu_now(void)
{
    if (NM_LIKELY(nm_os_rseq == 1)) {
        int32_t c = nm_os_rseq_cpu();
        if (NM_LIKELY(c >= 0)) return c;
    }
    return nm_os_cpu();
}
/* resident set size of this process in bytes (/proc/self/statm), 0 if unknown */
uint64_t nm_os_rss(void);
/* pid without libc's cache (correct in a child after fork via raw clone) */
int   nm_os_getpid(void);
/* a detached service thread (64 KiB stack) with every signal blocked, since signals
 * belong to the program, named name; 0 or pthread_create's error number */
int   nm_os_thread_start(void *(*fn)(void *), const char *name);

/* ---- fault injection: the test build only --------------------------------------------
 * build/libnumamalloc_fault.so (tests/fault/fault.mk) is built from these sources with
 * -DNM_FAULT_INJECT. There, NUMAMALLOC_FAULT (read by the options scan, ignored in
 * AT_SECURE processes) makes chosen mmap, MAP_HUGETLB mmap, madvise, mbind and mremap
 * calls fail as the kernel would: errno set, the call counted as failed, the caller's
 * fallback taken. In every other build none of this exists: the hook below is the
 * constant false and the parser, the counters and the variable's name are not
 * compiled (tests/fault/fault-test.sh checks the release library with nm and strings). */
#ifdef NM_FAULT_INJECT
enum nm_fault_class { NM_FAULT_MMAP, NM_FAULT_HUGETLB, NM_FAULT_MADVISE, NM_FAULT_MBIND, NM_FAULT_MREMAP, NM_FAULT_N };
/* parse the value of NUMAMALLOC_FAULT (src/options.c calls it from its environ scan);
 * warns and injects nothing if the text is not acceptable */
void nm_fault_configure(const char *spec, bool is_secure);
/* true if this call of class c is to fail (errno is then set); counts the call */
bool nm_fault_hit(int c);
/* bind=1: mbind fresh memory even with one node, so that mbind faults have calls to hit */
bool nm_fault_force_bind(void);
/* the test program's switch and counters (exported, found with dlsym) */
void numamalloc_fault_arm(int on);
int  numamalloc_fault_count(const char *cls, unsigned long long *calls, unsigned long long *injected);
#else
#define nm_fault_hit(c)         false
#define nm_fault_force_bind()   false
#endif

#endif
