/* numamalloc — raw system calls.
 *
 * Owns every mmap, munmap, madvise, mprotect, mremap, mbind, get_mempolicy and getcpu
 * the allocator makes, the counters of each (calls, failures, last errno), and small
 * allocation-free readers for /sys and /proc. Callers decide policy; this file only
 * does the call and the bookkeeping. No locks.
 *
 * In the fault-injection build (-DNM_FAULT_INJECT, build/libnumamalloc_fault.so) the
 * end of this file also holds the fault hook: each wrapper asks nm_fault_hit() first
 * and, on a hit, fails exactly as when the kernel says no (errno, failure counter,
 * last errno), so every caller's fallback runs as it would in real life. In other
 * builds nm_fault_hit() is the constant false (os.h) and that section is not compiled. */
#include <errno.h>
#include <fcntl.h>
#include <linux/mempolicy.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "numamalloc/os.h"
#include "numamalloc/out.h"
#include "numamalloc/gstats.h"

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

static void *trim_to_align(char *raw, size_t size, size_t align, size_t raw_size)
{
    char *p = (char *)nm_align_up((uintptr_t)raw, align);
    size_t pre = (size_t)(p - raw), post = raw_size - pre - size;
    if (pre) nm_os_unmap(raw, pre);
    if (post) nm_os_unmap(p + size, post);
    return p;
}

void *nm_os_map_aligned(size_t size, size_t align, int extra_flags)
{
    if (align <= nm_os_page) return nm_os_map(size, extra_flags);
    /* first try exactly size: mmap often hands out aligned addresses */
    char *p = nm_os_map(size, extra_flags);
    if (p == NULL) return NULL;
    if (((uintptr_t)p & (align - 1)) == 0) return p;
    nm_os_unmap(p, size);
    size_t raw_size = size + align;
    if (raw_size < size) { errno = ENOMEM; return NULL; }
    char *raw = nm_os_map(raw_size, extra_flags);
    if (raw == NULL) return NULL;
    return trim_to_align(raw, size, align, raw_size);
}

void *nm_os_reserve(size_t size, size_t align)
{
    nm_gstat_add(NM_C_mmap_calls, 1);
    size_t raw_size = size + align;
    if (nm_fault_hit(NM_FAULT_MMAP)) { fail(NM_OS_MMAP, NM_C_mmap_fail); return NULL; }
    long r = syscall(SYS_mmap, NULL, raw_size, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (r == -1) { fail(NM_OS_MMAP, NM_C_mmap_fail); return NULL; }
    return trim_to_align((char *)r, size, align, raw_size);
}

bool nm_os_advise(void *p, size_t size, int advice)
{
    nm_gstat_add(NM_C_madvise_calls, 1);
    if (nm_fault_hit(NM_FAULT_MADVISE) || syscall(SYS_madvise, p, size, advice) != 0) { fail(NM_OS_MADVISE, NM_C_madvise_fail); return false; }
    return true;
}

bool nm_os_protect(void *p, size_t size, int prot)
{
    return syscall(SYS_mprotect, p, size, prot) == 0;
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

/* glibc >= 2.35 registers an rseq area per thread and exports where it is */
extern const ptrdiff_t __rseq_offset __attribute__((weak));
extern const unsigned int __rseq_size __attribute__((weak));

struct nm_rseq_area { uint32_t cpu_id_start; int32_t cpu_id; };

static int rseq_state;          /* 0 unknown, 1 usable, 2 not registered (getcpu) */

int nm_os_cpu(void)
{
    if (NM_UNLIKELY(rseq_state == 0))
        rseq_state = (&__rseq_size != NULL && __rseq_size >= 8) ? 1 : 2;
    if (rseq_state == 1) {
        const struct nm_rseq_area *rs =
            (const struct nm_rseq_area *)((char *)__builtin_thread_pointer() + __rseq_offset);
        int32_t c = __atomic_load_n(&rs->cpu_id, __ATOMIC_RELAXED);
        if (c >= 0) return c;
    }
    unsigned cpu = 0, node = 0;
    int saved = errno;
    if (syscall(SYS_getcpu, &cpu, &node, NULL) != 0) { errno = saved; return 0; }
    return (int)cpu;
}

int nm_os_page_node(const void *p)
{
    int node = -1, saved = errno;
    if (syscall(SYS_get_mempolicy, &node, NULL, 0, p, MPOL_F_NODE | MPOL_F_ADDR) != 0) node = -1;
    errno = saved;
    return node;
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

/* ---- fault injection (test build only) ------------------------------------------------
 * NUMAMALLOC_FAULT is a comma-separated list of items:
 *   CLASS:RULE[:ERRNO]  CLASS mmap (every mmap, MAP_HUGETLB ones too), hugetlb (MAP_HUGETLB
 *                       mmaps only), madvise, mbind or mremap; RULE nth=N (the Nth call
 *                       fails, once), every=N (every Nth call) or p=P (each call with
 *                       probability P, 0 to 1, six decimals at most); ERRNO the error the
 *                       call fails with (default ENOMEM; madvise EINVAL; mbind EIO)
 *   seed=N              the random sequence of p= rules (default 1)
 *   bind=1              mbind fresh memory even with one node (policy.c)
 *   boot=1              fail calls made while the allocator boots too (default: calls
 *                       are counted from the moment it is ready)
 *   wait=1              count and fail nothing until numamalloc_fault_arm(1)
 * A p= decision is a hash of (seed, class, call number), so a single-threaded run
 * fails the same calls every time. Counters are relaxed atomics; no locks. At exit one
 * line reports, per class, the calls seen and the calls failed. Exported for test
 * programs (found with dlsym): numamalloc_fault_arm, numamalloc_fault_count. */
#ifdef NM_FAULT_INJECT
#include "numamalloc/internal.h"

enum { RULE_NONE, RULE_NTH, RULE_EVERY, RULE_P };
typedef struct fault_rule { int kind; uint64_t n; uint32_t ppm; int err; } fault_rule_t;
typedef struct fault_conf {
    fault_rule_t rule[NM_FAULT_N];
    uint64_t seed;
    bool bind, boot, wait;
} fault_conf_t;

static const char *const fault_class_name[NM_FAULT_N] = { "mmap", "hugetlb", "madvise", "mbind", "mremap" };
static const int fault_default_err[NM_FAULT_N] = { ENOMEM, ENOMEM, EINVAL, EIO, ENOMEM };
static const struct { const char *name; int err; } fault_errnos[] = {
    { "ENOMEM", ENOMEM }, { "EINVAL", EINVAL }, { "EIO", EIO }, { "EPERM", EPERM },
    { "EFAULT", EFAULT }, { "EAGAIN", EAGAIN }, { "EBUSY", EBUSY },
};

static fault_conf_t fault;
static bool fault_on;                   /* a valid, non-empty NUMAMALLOC_FAULT */
static int fault_armed = 1;             /* 0 between numamalloc_fault_arm(0) and (1) */
static uint64_t fault_calls[NM_FAULT_N], fault_injected[NM_FAULT_N];
static char fault_spec[160];

static bool word_is(const char *s, size_t n, const char *w) { return nm_strlen(w) == n && nm_strncmp(s, w, n) == 0; }

/* "0", "1", "0.25", "1.000000" -> parts per million */
static bool parse_prob(const char *s, size_t n, uint32_t *ppm)
{
    uint64_t whole = 0, frac = 0, scale = 1000000;
    size_t i = 0;
    if (i == n || s[i] < '0' || s[i] > '9') return false;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) whole = whole * 10 + (uint64_t)(s[i] - '0');
    if (whole > 1 || i > 1) return false;             /* one digit before the point */
    if (i < n && s[i] == '.') {
        i++;
        if (i == n) return false;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (scale == 1) return false;              /* more than six decimals */
            scale /= 10;
            frac += (uint64_t)(s[i] - '0') * scale;
        }
    }
    if (i != n) return false;
    uint64_t v = whole * 1000000 + frac;
    if (v > 1000000) return false;
    *ppm = (uint32_t)v;
    return true;
}

static bool parse_count(const char *s, size_t n, uint64_t *out)
{
    const char *end;
    if (!nm_parse_u64(s, &end, out) || (size_t)(end - s) != n || *out == 0) return false;
    return true;
}

static bool parse_flag(const char *s, size_t n, bool *out)
{
    if (word_is(s, n, "1")) { *out = true; return true; }
    if (word_is(s, n, "0")) { *out = false; return true; }
    return false;
}

/* one item, s[0..n) */
static bool parse_item(fault_conf_t *c, const char *s, size_t n)
{
    size_t colon = 0;
    while (colon < n && s[colon] != ':' && s[colon] != '=') colon++;
    if (colon < n && s[colon] == '=') {
        const char *v = s + colon + 1;
        size_t vn = n - colon - 1;
        if (word_is(s, colon, "seed")) {
            const char *end;
            return vn > 0 && nm_parse_u64(v, &end, &c->seed) && (size_t)(end - v) == vn;
        }
        if (word_is(s, colon, "bind")) return parse_flag(v, vn, &c->bind);
        if (word_is(s, colon, "boot")) return parse_flag(v, vn, &c->boot);
        if (word_is(s, colon, "wait")) return parse_flag(v, vn, &c->wait);
        return false;
    }
    if (colon == n) return false;
    int cls = -1;
    for (int k = 0; k < NM_FAULT_N; k++) if (word_is(s, colon, fault_class_name[k])) cls = k;
    if (cls < 0) return false;
    const char *r = s + colon + 1;
    size_t rn = n - colon - 1, rlen = 0;
    while (rlen < rn && r[rlen] != ':') rlen++;
    fault_rule_t rule = { .err = fault_default_err[cls] };
    if (rlen > 4 && nm_strncmp(r, "nth=", 4) == 0) {
        rule.kind = RULE_NTH;
        if (!parse_count(r + 4, rlen - 4, &rule.n)) return false;
    } else if (rlen > 6 && nm_strncmp(r, "every=", 6) == 0) {
        rule.kind = RULE_EVERY;
        if (!parse_count(r + 6, rlen - 6, &rule.n)) return false;
    } else if (rlen > 2 && nm_strncmp(r, "p=", 2) == 0) {
        rule.kind = RULE_P;
        if (!parse_prob(r + 2, rlen - 2, &rule.ppm)) return false;
    } else {
        return false;
    }
    if (rlen < rn) {                                   /* :ERRNO */
        const char *e = r + rlen + 1;
        size_t en = rn - rlen - 1;
        int err = 0;
        for (unsigned k = 0; k < NM_ARRAY_LEN(fault_errnos); k++)
            if (word_is(e, en, fault_errnos[k].name)) err = fault_errnos[k].err;
        if (err == 0) return false;
        rule.err = err;
    }
    c->rule[cls] = rule;
    return true;
}

void nm_fault_configure(const char *spec, bool is_secure)
{
    if (is_secure) {
        nm_warn("NUMAMALLOC_FAULT ignored in a set-uid/set-gid (AT_SECURE) process");
        return;
    }
    fault_conf_t c = { .seed = 1 };
    bool any = false, ok = true;
    for (const char *s = spec; ok && *s; ) {
        size_t n = 0;
        while (s[n] && s[n] != ',') n++;
        ok = n > 0 && parse_item(&c, s, n);
        s += n;
        if (*s == ',') { s++; ok = ok && *s != '\0'; }
    }
    for (int k = 0; k < NM_FAULT_N; k++) any |= c.rule[k].kind != RULE_NONE;
    if (!ok) {
        char shown[64];
        nm_copy_printable(shown, sizeof shown, spec);
        nm_warn("NUMAMALLOC_FAULT='%s' ignored: accepts comma-separated CLASS:nth=N, CLASS:every=N or "
                "CLASS:p=P (0 to 1) with an optional :ERRNO, CLASS mmap, hugetlb, madvise, mbind or mremap, "
                "and seed=N, bind=1, boot=1, wait=1; using '' (no faults)", shown);
        return;
    }
    fault = c;
    fault_on = any;
    fault_armed = !c.wait;
    nm_copy_cstr(fault_spec, sizeof fault_spec, spec);
}

bool nm_fault_force_bind(void) { return fault.bind; }

static bool fault_active(void)
{
    if (!fault_on || !__atomic_load_n(&fault_armed, __ATOMIC_RELAXED)) return false;
    return fault.boot || __atomic_load_n(&nm_pstate, __ATOMIC_ACQUIRE) == NM_P_READY;
}

static uint64_t fault_mix(uint64_t x)                 /* splitmix64's finaliser */
{
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27; x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

bool nm_fault_hit(int c)
{
    if (!fault_active()) return false;
    uint64_t i = __atomic_add_fetch(&fault_calls[c], 1, __ATOMIC_RELAXED);
    const fault_rule_t *r = &fault.rule[c];
    bool hit = false;
    switch (r->kind) {
    case RULE_NTH:   hit = i == r->n; break;
    case RULE_EVERY: hit = i % r->n == 0; break;
    case RULE_P:     hit = fault_mix(fault.seed * 0x9e3779b97f4a7c15ull + ((uint64_t)c << 56) + i) % 1000000 < r->ppm; break;
    }
    if (!hit) return false;
    __atomic_add_fetch(&fault_injected[c], 1, __ATOMIC_RELAXED);
    errno = r->err;
    return true;
}

/* the test program's switch: nothing is counted or failed while off */
NM_EXPORT void numamalloc_fault_arm(int on) { __atomic_store_n(&fault_armed, on ? 1 : 0, __ATOMIC_RELAXED); }

/* calls seen (while armed) and failed of class name; -1 for an unknown name */
NM_EXPORT int numamalloc_fault_count(const char *name, unsigned long long *calls, unsigned long long *injected)
{
    for (int k = 0; k < NM_FAULT_N; k++) {
        if (nm_strcmp(name, fault_class_name[k]) != 0) continue;
        if (calls) *calls = __atomic_load_n(&fault_calls[k], __ATOMIC_RELAXED);
        if (injected) *injected = __atomic_load_n(&fault_injected[k], __ATOMIC_RELAXED);
        return 0;
    }
    return -1;
}

__attribute__((destructor)) static void fault_report(void)
{
    if (!fault_on) return;
    uint64_t total = 0;
    for (int k = 0; k < NM_FAULT_N; k++) total += __atomic_load_n(&fault_injected[k], __ATOMIC_RELAXED);
    nm_warn("fault injection '%s': failed mmap %lu of %lu, hugetlb %lu of %lu, madvise %lu of %lu, "
            "mbind %lu of %lu, mremap %lu of %lu calls; %lu in all", fault_spec,
            (unsigned long)fault_injected[NM_FAULT_MMAP], (unsigned long)fault_calls[NM_FAULT_MMAP],
            (unsigned long)fault_injected[NM_FAULT_HUGETLB], (unsigned long)fault_calls[NM_FAULT_HUGETLB],
            (unsigned long)fault_injected[NM_FAULT_MADVISE], (unsigned long)fault_calls[NM_FAULT_MADVISE],
            (unsigned long)fault_injected[NM_FAULT_MBIND], (unsigned long)fault_calls[NM_FAULT_MBIND],
            (unsigned long)fault_injected[NM_FAULT_MREMAP], (unsigned long)fault_calls[NM_FAULT_MREMAP],
            (unsigned long)total);
}
#endif
