/* numamalloc — raw system calls.
 *
 * Owns every mmap, munmap, madvise, mremap, mbind, move_pages (query mode) and
 * getcpu the allocator makes, the counters of each (calls, failures, last errno),
 * and small allocation-free readers for /sys and /proc. Callers decide policy; this file only does the call and the
 * bookkeeping. No locks.
 *
 * In the fault-injection build (-DNM_FAULT_INJECT, build/libnumamalloc_fault.so) each
 * wrapper asks nm_fault_hit() (src/fault/fault.c, compiled into that build only)
 * first and, on a hit, fails exactly as when the kernel says no (errno, failure
 * counter, last errno), so every caller's fallback runs as it would in real life. In
 * other builds nm_fault_hit() is the constant false (os.h). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <linux/membarrier.h>
#include <linux/mempolicy.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "numamalloc/os.h"
#include "numamalloc/out.h"
#include "numamalloc/stats.h"

int nm_os_last_errno[NM_OS_CALLS];
size_t nm_os_page = 4096;

static void fail(int call, int ctr)
{
    nm_os_last_errno[call] = errno;
    nm_gstat_add(ctr, 1);
}

void *nm_os_map(size_t size, int extra_flags)
{
    nm_gstat_add(NM_C_mmap_calls, 1);
    /* a MAP_HUGETLB mapping is an mmap too: either rule may fail it */
    if ((extra_flags & MAP_HUGETLB) ? nm_fault_hit(NM_FAULT_HUGETLB) || nm_fault_hit(NM_FAULT_MMAP)
                                    : nm_fault_hit(NM_FAULT_MMAP)) {
        fail(NM_OS_MMAP, NM_C_mmap_fail);
        return NULL;
    }
    long r = syscall(SYS_mmap, NULL, size, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | extra_flags, -1, 0);
    if (r == -1) { fail(NM_OS_MMAP, NM_C_mmap_fail); return NULL; }
    return (void *)r;
}

bool nm_os_unmap(void *p, size_t size)
{
    nm_gstat_add(NM_C_munmap_calls, 1);
    if (syscall(SYS_munmap, p, size) != 0) { fail(NM_OS_MUNMAP, NM_C_munmap_fail); return false; }
    return true;
}

void *nm_os_map_aligned(size_t size, size_t align, int extra_flags)
{
    return nm_os_map_congruent(size, align, 0, extra_flags);
}

void *nm_os_map_congruent(size_t size, size_t align, size_t offset, int extra_flags)
{
    if (offset >= NM_MAX(align, nm_os_page) || (offset & (nm_os_page - 1)) != 0) { errno = EINVAL; return NULL; }
    if (align <= nm_os_page) return nm_os_map(size, extra_flags);
    if (offset == 0) {
        /* first try exactly size: mmap often hands out aligned addresses */
        char *p = nm_os_map(size, extra_flags);
        if (p == NULL) return NULL;
        if (((uintptr_t)p & (align - 1)) == 0) return p;
        nm_os_unmap(p, size);
    }
    size_t raw_size = size + align;
    if (raw_size < size) { errno = ENOMEM; return NULL; }
    char *raw = nm_os_map(raw_size, extra_flags);
    if (raw == NULL) return NULL;
    /* raw plus (offset - raw) mod align: the first such address at or after raw */
    char *p = (char *)(nm_align_up((uintptr_t)raw - offset, align) + offset);
    size_t pre = (size_t)(p - raw), post = raw_size - pre - size;
    if (pre) nm_os_unmap(raw, pre);
    if (post) nm_os_unmap(p + size, post);
    return p;
}

bool nm_os_membarrier_register(void)
{
    return syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

bool nm_os_membarrier(void)
{
    return syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0;
}

bool nm_os_advise(void *p, size_t size, int advice)
{
    nm_gstat_add(NM_C_madvise_calls, 1);
    if (nm_fault_hit(NM_FAULT_MADVISE) || syscall(SYS_madvise, p, size, advice) != 0) { fail(NM_OS_MADVISE, NM_C_madvise_fail); return false; }
    return true;
}

bool nm_os_mincore(void *p, size_t size, unsigned char *vec)
{
    return syscall(SYS_mincore, p, size, vec) == 0;
}

void *nm_os_remap(void *p, size_t old_size, size_t new_size, int flags, void *new_addr)
{
    nm_gstat_add(NM_C_mremap_calls, 1);
    long r = nm_fault_hit(NM_FAULT_MREMAP) ? -1 : syscall(SYS_mremap, p, old_size, new_size, flags, new_addr);
    if (r == -1) {
        /* an in-place attempt (no MREMAP_MAYMOVE) that finds the neighbour taken
         * (ENOMEM), or the range made of mappings the kernel did not merge (EFAULT:
         * large.c coalesces cached neighbours), is an answer, not a failure */
        if ((flags & MREMAP_MAYMOVE) || (errno != ENOMEM && errno != EFAULT)) fail(NM_OS_MREMAP, NM_C_mremap_fail);
        return NULL;
    }
    return (void *)r;
}

bool nm_os_mbind(void *p, size_t size, int mode, const unsigned long *mask, unsigned long nbits)
{
    nm_gstat_add(NM_C_mbind_calls, 1);
    /* the kernel reads maxnode - 1 bits (libnuma passes size + 1 too) */
    if (nm_fault_hit(NM_FAULT_MBIND) || syscall(SYS_mbind, p, size, mode, mask, mask ? nbits + 1 : 0, 0) != 0) {
        fail(NM_OS_MBIND, NM_C_mbind_fail);
        return false;
    }
    return true;
}

bool nm_os_mbind_node(void *p, size_t size, int mode, int node)
{
    unsigned long mask[NM_MAX_DOMAINS / (8 * sizeof(unsigned long))] = { 0 };
    if (node < 0 || node >= NM_MAX_DOMAINS) { errno = EINVAL; fail(NM_OS_MBIND, NM_C_mbind_fail); return false; }
    mask[node / (8 * sizeof(unsigned long))] |= 1UL << (node % (8 * sizeof(unsigned long)));
    unsigned long nbits = ((unsigned long)node / 64 + 1) * 64;
    return nm_os_mbind(p, size, mode, mask, nbits);
}

bool nm_os_page_nodes(unsigned long count, void **pages, int *status)
{
    nm_gstat_add(NM_C_move_pages_calls, 1);
    int saved = errno;
    if (syscall(SYS_move_pages, 0, count, pages, NULL, status, 0) != 0) {
        fail(NM_OS_MOVE_PAGES, NM_C_move_pages_fail);
        errno = saved;
        return false;
    }
    return true;
}

long nm_os_read_file(const char *path, char *buf, size_t cap)
{
    int saved = errno;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { errno = saved; return -1; }
    size_t n = 0;
    while (n + 1 < cap) {
        size_t want = cap - 1 - n;
        long r = syscall(SYS_read, fd, buf + n, want);
        if (r < 0) { if (errno == EINTR) continue; break; }
        if (r == 0) break;
        n += (size_t)r;
        if ((size_t)r < want) break;      /* sysfs and /proc hand over everything at once */
    }
    syscall(SYS_close, fd);
    buf[n] = '\0';
    errno = saved;
    return (long)n;
}

/* Zero what may hold data in a private anonymous range: a page that is neither
 * present nor swapped out (/proc/self/pagemap bits 63 and 62) reads as zero
 * already, and writing it would only fault it in. The file is opened for each call:
 * a descriptor kept open could be closed by the program and its number reused for
 * another file. Anything unexpected (no /proc, a short read) zeroes the rest. */
void nm_os_zero_resident(void *p, size_t n)
{
    char *b = p;
    const size_t pg = nm_os_page;
    size_t head = (size_t)(-(uintptr_t)b & (pg - 1));
    if (n < 2 * pg + head) { memset(b, 0, n); return; }
    memset(b, 0, head);
    b += head;
    n -= head;
    size_t tail = n & (pg - 1);
    memset(b + n - tail, 0, tail);
    n -= tail;
    int saved = errno;
    int fd = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    uint64_t ent[512];
    size_t done = 0;
    while (fd >= 0 && done < n) {
        size_t pages = NM_MIN((n - done) / pg, sizeof ent / sizeof ent[0]);
        long r = syscall(SYS_pread64, fd, ent, pages * sizeof ent[0], (long)(((uintptr_t)b + done) / pg * sizeof ent[0]));
        if (r != (long)(pages * sizeof ent[0])) break;
        for (size_t i = 0; i < pages;) {
            size_t j = i;
            bool data = (ent[i] >> 62) != 0;         /* present or swapped */
            while (j < pages && ((ent[j] >> 62) != 0) == data) j++;
            if (data) memset(b + done + i * pg, 0, (j - i) * pg);
            i = j;
        }
        done += pages * pg;
    }
    if (fd >= 0) syscall(SYS_close, fd);
    memset(b + done, 0, n - done);
    errno = saved;
}

bool nm_os_read_u64(const char *path, uint64_t *out)
{
    char buf[64];
    if (nm_os_read_file(path, buf, sizeof buf) <= 0) return false;
    const char *p = buf;
    while (*p == ' ' || *p == '\t') p++;
    return nm_parse_u64(p, NULL, out);
}

uint64_t nm_os_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* milliseconds for decay timestamps: the coarse clock is a plain vDSO read (a few
 * ns; a precise clock_gettime was 28 % of a 2 MiB malloc/free loop) and its tick
 * (a few ms) is far below any decay time */
uint64_t nm_os_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* glibc >= 2.35 registers an rseq area per thread and exports where it is
 * (__rseq_offset: os.h) */
extern const unsigned int __rseq_size __attribute__((weak));

int nm_os_rseq;

int nm_os_cpu(void)
{
    if (NM_UNLIKELY(nm_os_rseq == 0))
        nm_os_rseq = (&__rseq_size != NULL && __rseq_size >= 8) ? 1 : 2;
    if (nm_os_rseq == 1) {
        int32_t c = nm_os_rseq_cpu();
        if (c >= 0) return c;
    }
    unsigned cpu = 0, node = 0;
    int saved = errno;
    if (syscall(SYS_getcpu, &cpu, &node, NULL) != 0) { errno = saved; return 0; }
    return (int)cpu;
}


uint64_t nm_os_rss(void)
{
    char buf[128];
    if (nm_os_read_file("/proc/self/statm", buf, sizeof buf) <= 0) return 0;
    const char *p = buf;
    uint64_t size = 0, rss = 0;
    if (!nm_parse_u64(p, &p, &size)) return 0;
    while (*p == ' ') p++;
    if (!nm_parse_u64(p, &p, &rss)) return 0;
    return rss * nm_os_page;
}

int nm_os_getpid(void) { return (int)syscall(SYS_getpid); }

int nm_os_thread_start(void *(*fn)(void *), const char *name)
{
    pthread_attr_t a;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&a, 64 << 10);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);      /* the new thread inherits the mask */
    pthread_t t;
    int rc = pthread_create(&t, &a, fn, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    pthread_attr_destroy(&a);
    if (rc == 0) pthread_setname_np(t, name);
    return rc;
}
