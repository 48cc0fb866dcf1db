/* numamalloc — sampling heap profiler (NUMAMALLOC_PROF=1).
 *
 * Sampling is by bytes, Poisson (exponential gaps, mean NUMAMALLOC_PROF_SAMPLE,
 * default 512 KiB, as jemalloc's lg_prof_sample 19 and tcmalloc): every allocated
 * byte has the same chance to be the sample point, so an allocation of n bytes is
 * sampled with probability 1 - exp(-n/mean) and stands for n / that many bytes.
 *  - Small blocks: the stream of each size class is its own Poisson process (the
 *    union of independent per-byte processes with one rate is the same process), so
 *    each bin's budget is a geometric number of blocks until its next sample. The
 *    fast path already counts that budget down: profiling costs it nothing more.
 *    A sampled small block is served by the fallback arena, so its free takes the
 *    slow path, where the sample is forgotten.
 *  - Medium and large blocks (already slow paths) use a per-thread byte countdown.
 * A sample records the call stack with libunwind's unw_backtrace, outside every
 * allocator lock, with the thread's busy flag set so that allocations made by
 * libunwind itself are served normally but never sampled (libunwind may allocate).
 * libunwind is dlopen'ed RTLD_LOCAL by our constructor, only when
 * NUMAMALLOC_PROF=1, and primed once there: linked normally it would load into every
 * process and put its own _Unwind_* (it exports 36) into the global scope, where a
 * C++ library dlopen'ed later could bind its exception unwinding to it. Samples
 * taken before the constructor have no stack. The few math functions are our own,
 * so the library does not need libm either.
 *
 * Each site also sums the sampled sizes themselves (the class size of a small block,
 * the request of a medium or large one), which is what the pprof file holds: pprof
 * scales them back up by 1 / (1 - exp(-size/mean)) per site (src/pprof.c).
 * Tables (metadata memory, fixed size, no malloc): sites keyed by stack hash, and
 * live samples keyed by address with tombstones (entries never move, so a free can
 * look its pointer up without the lock and only locks on a hit). Full tables drop
 * samples and count them. Report: top sites by live and by allocated bytes with
 * dladdr names, and the leak estimate (sampled blocks alive at exit, scaled).
 * NUMA attribution: a sample remembers the node its block is meant to be on (its
 * domain's; a small sample, placed by first touch, the allocating thread's node);
 * its free by a thread running on another node charges the site a remote free. A
 * sampled large block whose mapping fell back from huge pages (src/large.c keeps the
 * reason) charges the site a huge-page fallback. Both are reported as top lists.
 * Lock: nm_prof_lock, a leaf: nothing else is taken under it, and nothing that may
 * take the loader's lock (unw_backtrace, dladdr) runs while it is held. */
#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "numamalloc/internal.h"
#include "numamalloc/out.h"

#define PROF_DEPTH      24
#define PROF_SKIP_MAX   8
#define SITE_BITS       12
#define SITES           (1u << SITE_BITS)
#define LIVE_BITS       16
#define LIVE_SLOTS      (1u << LIVE_BITS)
#define TOMBSTONE       ((uintptr_t)1)

typedef struct prof_site {
    uint64_t hash;
    uint32_t depth;
    uint32_t used;
    uint64_t alloc_bytes, alloc_blocks;   /* estimates (weights summed) */
    uint64_t live_bytes, live_blocks;     /* estimates */
    uint64_t samples, live_samples;
    uint64_t alloc_raw, live_raw;         /* sampled sizes summed (the pprof file's numbers) */
    uint64_t remote_frees, remote_free_bytes;   /* estimates: sampled blocks freed off their node */
    uint64_t huge_fallbacks;                    /* estimate: sampled large blocks whose mapping fell back */
    void    *pc[PROF_DEPTH];
} prof_site_t;

typedef struct prof_live {
    uintptr_t ptr;                        /* 0 empty, 1 tombstone */
    uint32_t  site;
    int32_t   node;                       /* node the block is meant to be on; -1 none (interleaved) */
    uint64_t  weight_bytes;
    uint64_t  weight_blocks;
    uint64_t  raw_bytes;                  /* the sampled size */
} prof_live_t;

bool nm_prof_on;
NM_GLOBAL_LOCK nm_lock_t nm_prof_lock = NM_LOCK_INIT;
static prof_site_t *sites;
static prof_live_t *live;
static uint64_t samples, dropped;
static double mean;
static double class_log1mp[NM_NUM_CLASSES];   /* log(1 - p) per class */
static uintptr_t self_lo, self_hi;            /* our own text, skipped in stacks */

/* ---- math (no libm) ------------------------------------------------------------------- */

#define LN2 0.693147180559945309417232121458

/* natural log of x > 0: x = m 2^e with m in [sqrt(1/2), sqrt(2)), then
 * ln m = 2 atanh((m-1)/(m+1)), a series in t^2 with t <= 0.172 */
static double nm_ln(double x)
{
    union { double d; uint64_t u; } v = { .d = x };
    int e = (int)((v.u >> 52) & 0x7ff) - 1023;
    v.u = (v.u & 0x000fffffffffffffull) | 0x3ff0000000000000ull;   /* m in [1, 2) */
    double m = v.d;
    if (m > 1.41421356237309504880) { m *= 0.5; e++; }
    double t = (m - 1) / (m + 1), t2 = t * t, term = t, sum = 0;
    for (int k = 1; k < 40; k += 2) { sum += term / k; term *= t2; }
    return e * LN2 + 2 * sum;
}

/* e^x - 1, accurate near 0 (series) and fine elsewhere (2^k e^r) */
static double nm_expm1(double x)
{
    if (x > -0.5 && x < 0.5) {
        double term = x, sum = 0;
        for (int k = 1; k < 25; k++) { sum += term; term *= x / (k + 1); }
        return sum;
    }
    if (x < -700) return -1;
    double kf = x / LN2;
    int k = (int)(kf < 0 ? kf - 0.5 : kf + 0.5);
    double r = x - k * LN2, term = 1, e = 0;
    for (int i = 1; i < 25; i++) { e += term; term *= r / i; }
    union { double d; uint64_t u; } two = { .u = (uint64_t)(k + 1023) << 52 };
    return e * two.d - 1;
}

static double nm_ceil(double x)
{
    double t = (double)(int64_t)x;
    return t < x ? t + 1 : t;
}

/* ---- random numbers ----------------------------------------------------------------- */

static double uniform01(nm_tcache_t *tc)        /* in (0, 1] */
{
    uint64_t x = tc->rng ? tc->rng : 0x853c49e6748fea9bull;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    tc->rng = x;
    return ((double)(x >> 11) + 1.0) / 9007199254740992.0;
}

int64_t nm_prof_next_blocks(nm_tcache_t *tc, unsigned cls)
{
    double l = class_log1mp[cls];
    if (l >= 0) return (int64_t)1 << 62;
    double k = nm_ceil(nm_ln(uniform01(tc)) / l);
    if (k < 1) k = 1;
    if (k > 1e15) k = 1e15;
    return (int64_t)k;
}

bool nm_prof_tick_bytes(nm_tcache_t *tc, size_t n)
{
    tc->prof_left -= (int64_t)NM_MIN(n, (size_t)INT64_MAX / 2);
    if (tc->prof_left > 0) return false;
    double gap = -nm_ln(uniform01(tc)) * mean;
    tc->prof_left = (int64_t)(gap < 1 ? 1 : gap);
    return n > 0;
}

size_t nm_prof_weight_small(unsigned cls)
{
    double p = -nm_expm1(class_log1mp[cls]);
    return (size_t)((double)nm_class_size[cls] / (p > 0 ? p : 1));
}

uint64_t nm_prof_unsampled(uint64_t raw_bytes, uint64_t nsamples)
{
    if (nsamples == 0 || raw_bytes == 0) return 0;
    double p = -nm_expm1(-((double)raw_bytes / (double)nsamples) / mean);
    return (uint64_t)((double)raw_bytes / (p > 0 ? p : 1) + 0.5);
}

size_t nm_prof_weight_bytes(size_t n)
{
    double p = -nm_expm1(-(double)n / mean);
    return (size_t)((double)n / (p > 0 ? p : 1));
}

/* ---- set-up --------------------------------------------------------------------------- */

static int find_self(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    uintptr_t me = (uintptr_t)arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD || !(ph->p_flags & PF_X)) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr, hi = lo + ph->p_memsz;
        if (me >= lo && me < hi) { self_lo = lo; self_hi = hi; return 1; }
    }
    return 0;
}

void nm_prof_init(void)
{
    if (!nm_opt.prof) {
        if (nm_opt.prof_file[0]) nm_warn("NUMAMALLOC_PROF_FILE is set but NUMAMALLOC_PROF is 0: no profile is written (set NUMAMALLOC_PROF=1)");
        return;
    }
    mean = (double)nm_opt.prof_sample;
    for (unsigned c = 0; c < NM_NUM_CLASSES; c++) class_log1mp[c] = -(double)nm_class_size[c] / mean;
    sites = nm_meta_alloc(sizeof(prof_site_t) * SITES);
    live = nm_meta_alloc(sizeof(prof_live_t) * LIVE_SLOTS);
    if (!sites || !live) { nm_warn("NUMAMALLOC_PROF=1: no memory for the profiler tables; profiling off"); return; }
    nm_prof_on = true;
}

static int (*unw_backtrace_fn)(void **buf, int size);

void nm_prof_prime(void)
{
    /* outside malloc (our constructor): dlopen, dl_iterate_phdr and libunwind's
     * first use all allocate */
    dl_iterate_phdr(find_self, (void *)(uintptr_t)&nm_prof_init);
    void *h = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
    void *fn = h ? dlsym(h, "unw_backtrace") : NULL;
    if (fn == NULL) {
        nm_warn("NUMAMALLOC_PROF=1: cannot load libunwind.so.8 (%s): samples are taken without call stacks",
                h ? "no unw_backtrace" : "not installed? apt-get install libunwind8");
        return;
    }
    __atomic_store_n(&unw_backtrace_fn, (int (*)(void **, int))fn, __ATOMIC_RELEASE);
    void *pcs[4];
    unw_backtrace_fn(pcs, 4);
}

/* ---- recording -------------------------------------------------------------------------- */

static uint64_t hash_stack(void *const *pc, int n)
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < n; i++) { h ^= (uintptr_t)pc[i]; h *= 1099511628211ull; h ^= h >> 29; }
    return h | 1;
}

/* a mapping's last fallback (NM_FB_* + 1, 0 none) that kept it off the huge pages
 * asked for: not "too small" or "off" (no huge page was due), nor "no hugetlb pool"
 * unless hugetlb pages were asked for explicitly (auto mode then takes THP) */
static bool is_huge_fallback(unsigned fb)
{
    if (fb == 0) return false;
    switch ((int)fb - 1) {
    case NM_FB_NO_FREE_HUGETLB: case NM_FB_HUGETLB_MMAP: case NM_FB_HUGETLB_MBIND: case NM_FB_HUGETLB_POPULATE:
    case NM_FB_NO_1G_POOL: case NM_FB_THP_DISABLED: case NM_FB_THP_MADVISE:
        return true;
    case NM_FB_NO_HUGETLB_POOL:
        return nm_opt.hugepages == NM_HUGE_HUGETLB || nm_opt.hugepages == NM_HUGE_1G;
    default:
        return false;
    }
}

static size_t live_slot(uintptr_t p) { return (size_t)((p >> 4) * 0x9e3779b97f4a7c15ull >> (64 - LIVE_BITS)); }

void nm_prof_record(nm_tcache_t *tc, void *p, size_t n, size_t weight)
{
    if (!nm_prof_on || p == NULL) return;
    void *raw[PROF_DEPTH + PROF_SKIP_MAX];
    int (*bt)(void **, int) = __atomic_load_n(&unw_backtrace_fn, __ATOMIC_ACQUIRE);
    tc->busy++;
    int got = bt ? bt(raw, (int)NM_ARRAY_LEN(raw)) : 0;     /* no stack before our constructor */
    tc->busy--;
    int skip = 0;
    while (skip < got && skip < PROF_SKIP_MAX && (uintptr_t)raw[skip] >= self_lo && (uintptr_t)raw[skip] < self_hi) skip++;
    int depth = NM_MIN(got - skip, PROF_DEPTH);
    if (depth < 0) depth = 0;
    void **pc = raw + skip;
    uint64_t h = hash_stack(pc, depth);
    uint64_t wblocks = n ? (weight + n / 2) / n : 1;
    if (wblocks == 0) wblocks = 1;
    int node = -1;
    bool huge_fb = false;
    nm_pme_t e = nm_pagemap_get((uintptr_t)p);
    unsigned kind = nm_pme_kind(e);
    if (kind == NM_KIND_LARGE || kind == NM_KIND_HUGE) {
        const nm_large_t *L = nm_pme_desc(e);
        node = nm_domain_node(L->domain);
        huge_fb = is_huge_fallback(L->huge_fb);
    } else if (kind != NM_KIND_NONE) {
        node = nm_pme_domain(e) == nm_dom_sampled ? nm_topo_cpu_node(nm_os_cpu()) : nm_domain_node(nm_pme_domain(e));
    }

    nm_lock(&nm_prof_lock);
    samples++;
    nm_gstat_add(NM_C_prof_samples, 1);
    size_t si = (size_t)(h & (SITES - 1)), tries = 0;
    while (sites[si].used && sites[si].hash != h && tries < SITES) { si = (si + 1) & (SITES - 1); tries++; }
    if (tries == SITES) { dropped++; nm_unlock(&nm_prof_lock); return; }
    prof_site_t *s = &sites[si];
    if (!s->used) {
        s->used = 1;
        s->hash = h;
        s->depth = (uint32_t)depth;
        for (int i = 0; i < depth; i++) s->pc[i] = pc[i];
    }
    s->samples++;
    s->alloc_bytes += weight;
    s->alloc_blocks += wblocks;
    s->alloc_raw += n;
    if (huge_fb) s->huge_fallbacks += wblocks;
    /* remember the block so its free can subtract it */
    size_t li = live_slot((uintptr_t)p);
    for (tries = 0; tries < LIVE_SLOTS; tries++, li = (li + 1) & (LIVE_SLOTS - 1)) {
        if (live[li].ptr == 0 || live[li].ptr == TOMBSTONE) break;
    }
    if (tries == LIVE_SLOTS || tries > 64) {
        dropped++;                                 /* too crowded: count it, keep going */
    } else {
        live[li].site = (uint32_t)si;
        live[li].node = node;
        live[li].weight_bytes = weight;
        live[li].weight_blocks = wblocks;
        live[li].raw_bytes = n;
        __atomic_store_n(&live[li].ptr, (uintptr_t)p, __ATOMIC_RELEASE);
        s->live_bytes += weight;
        s->live_blocks += wblocks;
        s->live_samples++;
        s->live_raw += n;
    }
    nm_unlock(&nm_prof_lock);
}

bool nm_prof_forget(void *p)
{
    if (!nm_prof_on) return false;
    /* lock-free look first: entries never move, and p's own insert happened before
     * the program could free it */
    size_t li = live_slot((uintptr_t)p);
    size_t tries = 0;
    for (; tries <= 64; tries++, li = (li + 1) & (LIVE_SLOTS - 1)) {
        uintptr_t v = __atomic_load_n(&live[li].ptr, __ATOMIC_ACQUIRE);
        if (v == (uintptr_t)p) break;
        if (v == 0) return false;
    }
    if (tries > 64) return false;
    int here = nm_topo.nmem > 1 ? nm_topo_cpu_node(nm_os_cpu()) : -1;   /* the freeing thread's node */
    nm_lock(&nm_prof_lock);
    if (live[li].ptr == (uintptr_t)p) {
        prof_site_t *s = &sites[live[li].site];
        if (here >= 0 && live[li].node >= 0 && live[li].node != here) {
            s->remote_frees += live[li].weight_blocks;
            s->remote_free_bytes += live[li].weight_bytes;
        }
        s->live_bytes -= NM_MIN(s->live_bytes, live[li].weight_bytes);
        s->live_blocks -= NM_MIN(s->live_blocks, live[li].weight_blocks);
        if (s->live_samples) s->live_samples--;
        s->live_raw -= NM_MIN(s->live_raw, live[li].raw_bytes);
        __atomic_store_n(&live[li].ptr, TOMBSTONE, __ATOMIC_RELEASE);
    }
    nm_unlock(&nm_prof_lock);
    return true;
}

/* ---- report ------------------------------------------------------------------------------
 * In two steps, so that the dynamic loader is never called with a lock of ours held
 * (dladdr and dl_iterate_phdr take the loader's lock; a thread inside dlopen holds it
 * and may allocate, be sampled and wait for ours): nm_prof_snapshot copies the numbers
 * of the top sites under the profiler lock and releases it; a site's frames never
 * change once it is recorded, so they are read afterwards without the lock, and named
 * (unless from a signal handler) with no lock of ours held. nm_prof_report prints the
 * snapshot; the dump does that under its own lock. */

#define NAME_OBJ 112
#define NAME_SYM 128
typedef struct frame_name {
    char      object[NAME_OBJ];  /* path as the loader knows it; "" if unknown */
    char      symbol[NAME_SYM];  /* "" if unknown */
    uintptr_t offset;            /* from the symbol, or from the object's base */
} frame_name_t;
#define NAMES_BYTES (sizeof(frame_name_t) * NM_PROF_LISTS * NM_PROF_TOP * PROF_DEPTH)

static uint64_t site_key(const prof_site_t *s, int by)
{
    switch (by) {
    case NM_PROF_BY_LIVE:   return s->live_bytes;
    case NM_PROF_BY_ALLOC:  return s->alloc_bytes;
    case NM_PROF_BY_REMOTE: return s->remote_free_bytes;
    default:                return s->huge_fallbacks;
    }
}

/* the top sites by list `by`, largest first (profiler lock held) */
static int top_sites_locked(nm_prof_top_t *out, int by)
{
    int n = 0;
    for (uint32_t i = 0; i < SITES; i++) {
        if (!sites[i].used) continue;
        uint64_t v = site_key(&sites[i], by);
        if (v == 0) continue;
        int at = n < NM_PROF_TOP ? n : NM_PROF_TOP;
        while (at > 0) {
            if (site_key(&sites[out[at - 1].site], by) >= v) break;
            if (at < NM_PROF_TOP) out[at] = out[at - 1];
            at--;
        }
        if (at < NM_PROF_TOP) {
            const prof_site_t *s = &sites[i];
            out[at] = (nm_prof_top_t){ .site = i, .live_bytes = s->live_bytes, .live_blocks = s->live_blocks,
                                       .alloc_bytes = s->alloc_bytes, .alloc_blocks = s->alloc_blocks,
                                       .samples = s->samples, .remote_frees = s->remote_frees,
                                       .remote_free_bytes = s->remote_free_bytes, .huge_fallbacks = s->huge_fallbacks };
            if (n < NM_PROF_TOP) n++;
        }
    }
    return n;
}

/* dladdr only sees dynamic symbols; a program not linked with -rdynamic has none for
 * its own (static) functions. Then read the object's .symtab from the file itself
 * (mapped read-only, no malloc). Never from a signal handler, never under our locks.
 * A cache (NULL: none) keeps the last few files mapped across lookups. */
static const unsigned char *elf_map(const char *path, size_t *size, nm_prof_elf_cache_t *cache)
{
    if (cache)
        for (int i = 0; i < NM_PROF_ELF_CACHE; i++)
            if (cache->map[i] && nm_strcmp(cache->path[i], path) == 0) { *size = cache->size[i]; return cache->map[i]; }
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return NULL;
    struct stat st;
    const unsigned char *m = NULL;
    if (fstat(fd, &st) == 0 && st.st_size > (off_t)sizeof(Elf64_Ehdr)) {
        m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) m = NULL;
        *size = (size_t)st.st_size;
    }
    close(fd);
    if (m && cache && nm_strlen(path) < sizeof cache->path[0]) {
        int i = cache->next;
        cache->next = (cache->next + 1) % NM_PROF_ELF_CACHE;
        if (cache->map[i]) munmap((void *)cache->map[i], cache->size[i]);
        cache->map[i] = m;
        cache->size[i] = *size;
        nm_copy_cstr(cache->path[i], sizeof cache->path[i], path);
    }
    return m;
}

static void elf_unmap(const unsigned char *m, size_t size, const nm_prof_elf_cache_t *cache)
{
    if (cache)
        for (int i = 0; i < NM_PROF_ELF_CACHE; i++) if (cache->map[i] == m) return;
    munmap((void *)m, size);
}

void nm_prof_elf_cache_release(nm_prof_elf_cache_t *cache)
{
    for (int i = 0; i < NM_PROF_ELF_CACHE; i++)
        if (cache->map[i]) { munmap((void *)cache->map[i], cache->size[i]); cache->map[i] = NULL; }
}

static bool elf_lookup(const char *path, uintptr_t vaddr, char *name, size_t cap, uintptr_t *off, nm_prof_elf_cache_t *cache)
{
    size_t size = 0;
    const unsigned char *m = elf_map(path, &size, cache);
    if (m == NULL) return false;
    bool found = false;
    const Elf64_Ehdr *eh = (const Elf64_Ehdr *)m;
    bool ok = eh->e_ident[EI_MAG0] == ELFMAG0 && eh->e_ident[EI_MAG1] == ELFMAG1 && eh->e_ident[EI_CLASS] == ELFCLASS64 &&
              eh->e_shoff && eh->e_shoff + (size_t)eh->e_shnum * sizeof(Elf64_Shdr) <= size;
    const Elf64_Shdr *sh = ok ? (const Elf64_Shdr *)(m + eh->e_shoff) : NULL;
    /* the full symbol table if the file has one, else the dynamic one (stripped
     * libraries: libc's functions are there) */
    bool has_symtab = false;
    for (unsigned i = 0; ok && i < eh->e_shnum; i++) has_symtab |= sh[i].sh_type == SHT_SYMTAB;
    unsigned want = has_symtab ? SHT_SYMTAB : SHT_DYNSYM;
    for (unsigned i = 0; ok && i < eh->e_shnum && !found; i++) {
        if (sh[i].sh_type != want || sh[i].sh_link >= eh->e_shnum) continue;
        const Elf64_Shdr *strh = &sh[sh[i].sh_link];
        if (sh[i].sh_offset + sh[i].sh_size > size || strh->sh_offset + strh->sh_size > size) continue;
        const Elf64_Sym *sym = (const Elf64_Sym *)(m + sh[i].sh_offset);
        size_t n = sh[i].sh_size / sizeof(Elf64_Sym);
        for (size_t k = 0; k < n; k++) {
            if (ELF64_ST_TYPE(sym[k].st_info) != STT_FUNC || sym[k].st_value == 0) continue;
            if (vaddr < sym[k].st_value || vaddr >= sym[k].st_value + (sym[k].st_size ? sym[k].st_size : 1)) continue;
            if (sym[k].st_name >= strh->sh_size) continue;
            nm_copy_cstr(name, cap, (const char *)(m + strh->sh_offset + sym[k].st_name));
            *off = vaddr - sym[k].st_value;
            found = true;
            break;
        }
    }
    elf_unmap(m, size, cache);
    return found;
}

/* The object holding pc, found with dl_iterate_phdr: its name and load address are
 * copied while the loader holds its list steady (inside the callback). dladdr would
 * answer with pointers into the object itself (its string tables, its link map),
 * which a dlclose in another thread can unmap before we read them: seen as a
 * SIGSEGV in a dump taken while libraries were loaded and unloaded. */
typedef struct find_obj {
    uintptr_t pc, base;
    char path[NAME_OBJ];
    bool found;
} find_obj_t;

static int find_obj(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    find_obj_t *f = arg;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD) continue;
        uintptr_t lo = info->dlpi_addr + ph->p_vaddr;
        if (f->pc < lo || f->pc >= lo + ph->p_memsz) continue;
        f->base = info->dlpi_addr;
        nm_copy_cstr(f->path, sizeof f->path, info->dlpi_name ? info->dlpi_name : "");
        f->found = true;
        return 1;
    }
    return 0;
}

/* name pc into fn (object, and symbol from the object's file); false if no object
 * holds pc */
static bool frame_resolve(void *pc, frame_name_t *fn, nm_prof_elf_cache_t *cache)
{
    find_obj_t f = { .pc = (uintptr_t)pc };
    dl_iterate_phdr(find_obj, &f);
    if (!f.found) return false;
    /* the main program has an empty name: its file is /proc/self/exe */
    const char *file = f.path[0] ? f.path : "/proc/self/exe";
    if (f.path[0]) {
        nm_copy_cstr(fn->object, sizeof fn->object, f.path);
    } else {
        long n = readlink("/proc/self/exe", fn->object, sizeof fn->object - 1);
        fn->object[n > 0 ? n : 0] = '\0';
        if (n <= 0) nm_copy_cstr(fn->object, sizeof fn->object, "/proc/self/exe");
    }
    uintptr_t off = 0;
    if (elf_lookup(file, f.pc - f.base, fn->symbol, sizeof fn->symbol, &off, cache)) fn->offset = off;
    else fn->offset = f.pc - f.base;
    return true;
}

void nm_prof_snapshot(nm_prof_snap_t *ps, bool symbolize)
{
    *ps = (nm_prof_snap_t){ .on = nm_prof_on };
    if (!nm_prof_on) return;
    /* a signal handler never waits: the interrupted code may hold the lock */
    if (!symbolize ? !nm_trylock(&nm_prof_lock) : (nm_lock(&nm_prof_lock), false)) { ps->busy = true; return; }
    ps->samples = samples;
    ps->dropped = dropped;
    for (uint32_t i = 0; i < SITES; i++) {
        if (!sites[i].used) continue;
        if (sites[i].live_bytes) {
            ps->leak_bytes += sites[i].live_bytes;
            ps->leak_blocks += sites[i].live_blocks;
            ps->leak_sites++;
        }
        ps->remote_frees += sites[i].remote_frees;
        ps->remote_free_bytes += sites[i].remote_free_bytes;
        ps->huge_fallbacks += sites[i].huge_fallbacks;
    }
    int any = 0;
    for (int l = 0; l < NM_PROF_LISTS; l++) any += ps->n[l] = top_sites_locked(ps->top[l], l);
    nm_unlock(&nm_prof_lock);
    if (!symbolize || any == 0) return;
    frame_name_t *names = nm_meta_alloc(NAMES_BYTES);
    if (names == NULL) return;                       /* addresses only */
    nm_prof_elf_cache_t cache = { 0 };
    for (int l = 0; l < NM_PROF_LISTS; l++)
        for (int k = 0; k < ps->n[l]; k++) {
            const prof_site_t *s = &sites[ps->top[l][k].site];
            for (uint32_t f = 0; f < s->depth; f++)
                frame_resolve(s->pc[f], &names[((size_t)l * NM_PROF_TOP + (size_t)k) * PROF_DEPTH + f], &cache);
        }
    nm_prof_elf_cache_release(&cache);
    ps->names = names;
}

void nm_prof_snap_release(nm_prof_snap_t *ps)
{
    if (ps->names) nm_meta_free(ps->names, NAMES_BYTES);
    ps->names = NULL;
}

static const char *basename_of(const char *p)
{
    const char *slash = p;
    for (const char *q = p; *q; q++) if (*q == '/') slash = q + 1;
    return slash;
}

static const frame_name_t *frame_name(const nm_prof_snap_t *ps, int l, int k, uint32_t f)
{
    if (ps->names == NULL) return NULL;
    const frame_name_t *fn = &((const frame_name_t *)ps->names)[((size_t)l * NM_PROF_TOP + (size_t)k) * PROF_DEPTH + f];
    return fn->object[0] ? fn : NULL;
}

static void frame_text(nm_buf_t *b, void *pc, const frame_name_t *fn)
{
    if (fn == NULL) nm_buf_printf(b, "%p", pc);
    else if (fn->symbol[0]) nm_buf_printf(b, "%s+0x%lx (%s)", fn->symbol, (unsigned long)fn->offset, basename_of(fn->object));
    else nm_buf_printf(b, "%p (%s+0x%lx)", pc, basename_of(fn->object), (unsigned long)fn->offset);
}

static void frame_json(nm_buf_t *b, void *pc, const frame_name_t *fn)
{
    nm_buf_printf(b, "{\"addr\":\"%p\"", pc);
    if (fn) {
        nm_buf_puts(b, ",\"object\":");
        nm_buf_json_str(b, fn->object);
        if (fn->symbol[0]) {
            nm_buf_puts(b, ",\"symbol\":");
            nm_buf_json_str(b, fn->symbol);
        }
        nm_buf_printf(b, ",\"offset\":%lu", (unsigned long)fn->offset);
    }
    nm_buf_puts(b, "}");
}

static void report_list(nm_buf_t *b, int mode, const nm_prof_snap_t *ps, int l)
{
    int n = ps->n[l];
    if (mode == NM_EM_JSON) {
        nm_buf_puts(b, "[");
        for (int i = 0; i < n; i++) {
            const nm_prof_top_t *t = &ps->top[l][i];
            const prof_site_t *s = &sites[t->site];
            nm_buf_printf(b, "%s{\"live_bytes\":%lu,\"live_blocks\":%lu,\"alloc_bytes\":%lu,\"alloc_blocks\":%lu,\"samples\":%lu,"
                          "\"remote_frees\":%lu,\"remote_free_bytes\":%lu,\"huge_fallbacks\":%lu,\"frames\":[",
                          i ? "," : "", (unsigned long)t->live_bytes, (unsigned long)t->live_blocks,
                          (unsigned long)t->alloc_bytes, (unsigned long)t->alloc_blocks, (unsigned long)t->samples,
                          (unsigned long)t->remote_frees, (unsigned long)t->remote_free_bytes,
                          (unsigned long)t->huge_fallbacks);
            for (uint32_t f = 0; f < s->depth; f++) { if (f) nm_buf_puts(b, ","); frame_json(b, s->pc[f], frame_name(ps, l, i, f)); }
            nm_buf_puts(b, "]}");
        }
        nm_buf_puts(b, "]");
        return;
    }
    static const char *const titles[NM_PROF_LISTS] = {
        "live bytes", "allocated bytes", "remote frees (freed by a thread on another node than the block's)",
        "huge-page fallbacks (large blocks whose mapping did not get the huge pages asked for)",
    };
    nm_buf_printf(b, "  top sites by %s:\n", titles[l]);
    if (l == NM_PROF_BY_REMOTE && nm_topo.nmem <= 1) { nm_buf_puts(b, "    n/a (one node with memory)\n"); return; }
    if (n == 0) nm_buf_puts(b, "    (none)\n");
    for (int i = 0; i < n; i++) {
        const nm_prof_top_t *t = &ps->top[l][i];
        const prof_site_t *s = &sites[t->site];
        nm_buf_printf(b, "    #%d  ", i + 1);
        switch (l) {
        case NM_PROF_BY_LIVE:
        case NM_PROF_BY_ALLOC: {
            bool by_live = l == NM_PROF_BY_LIVE;
            nm_buf_size(b, by_live ? t->live_bytes : t->alloc_bytes);
            nm_buf_printf(b, " %s in ~%lu blocks (%lu samples); %s ", by_live ? "live" : "allocated",
                          (unsigned long)(by_live ? t->live_blocks : t->alloc_blocks), (unsigned long)t->samples,
                          by_live ? "allocated" : "live");
            nm_buf_size(b, by_live ? t->alloc_bytes : t->live_bytes);
            break;
        }
        case NM_PROF_BY_REMOTE:
            nm_buf_printf(b, "~%lu blocks, ", (unsigned long)t->remote_frees);
            nm_buf_size(b, t->remote_free_bytes);
            nm_buf_puts(b, " freed remotely; allocated ");
            nm_buf_size(b, t->alloc_bytes);
            break;
        default:
            nm_buf_printf(b, "~%lu blocks off huge pages; allocated ", (unsigned long)t->huge_fallbacks);
            nm_buf_size(b, t->alloc_bytes);
            break;
        }
        nm_buf_puts(b, "\n");
        uint32_t shown = NM_MIN(s->depth, 8u);
        for (uint32_t f = 0; f < shown; f++) {
            nm_buf_puts(b, f == 0 ? "        at " : "           ");
            frame_text(b, s->pc[f], frame_name(ps, l, i, f));
            nm_buf_puts(b, "\n");
        }
        if (s->depth > shown) nm_buf_printf(b, "           ... %u more frames\n", s->depth - shown);
    }
}

void nm_prof_report(nm_buf_t *b, int mode, const nm_prof_snap_t *ps)
{
    if (!ps->on) {
        if (mode == NM_EM_JSON) nm_buf_puts(b, "{\"enabled\":false}");
        else nm_buf_puts(b, "heap profile: n/a (NUMAMALLOC_PROF=0)\n");
        return;
    }
    if (ps->busy) {
        if (mode == NM_EM_JSON) nm_buf_puts(b, "{\"enabled\":true,\"busy\":true}");
        else nm_buf_puts(b, "heap profile: busy, skipped in this dump\n");
        return;
    }
    if (mode == NM_EM_JSON) {
        nm_buf_printf(b, "{\"enabled\":true,\"sample_bytes\":%lu,\"samples\":%lu,\"dropped\":%lu,\"live_bytes\":%lu,\"live_blocks\":%lu,\"live_sites\":%lu,",
                      (unsigned long)nm_opt.prof_sample, (unsigned long)ps->samples, (unsigned long)ps->dropped,
                      (unsigned long)ps->leak_bytes, (unsigned long)ps->leak_blocks, (unsigned long)ps->leak_sites);
        if (nm_topo.nmem > 1)
            nm_buf_printf(b, "\"remote_frees\":%lu,\"remote_free_bytes\":%lu,", (unsigned long)ps->remote_frees,
                          (unsigned long)ps->remote_free_bytes);
        else
            nm_buf_puts(b, "\"remote_frees\":null,\"remote_free_bytes\":null,");
        nm_buf_printf(b, "\"huge_fallbacks\":%lu,\"top_live\":", (unsigned long)ps->huge_fallbacks);
        report_list(b, mode, ps, NM_PROF_BY_LIVE);
        nm_buf_puts(b, ",\"top_alloc\":");
        report_list(b, mode, ps, NM_PROF_BY_ALLOC);
        nm_buf_puts(b, ",\"top_remote_free\":");
        report_list(b, mode, ps, NM_PROF_BY_REMOTE);
        nm_buf_puts(b, ",\"top_huge_fallback\":");
        report_list(b, mode, ps, NM_PROF_BY_HUGE_FB);
        nm_buf_puts(b, "}");
    } else {
        nm_buf_puts(b, "heap profile (estimates from sampling, one sample per ~");
        nm_buf_size(b, nm_opt.prof_sample);
        nm_buf_printf(b, " allocated; %lu samples, %lu dropped):\n", (unsigned long)ps->samples, (unsigned long)ps->dropped);
        report_list(b, mode, ps, NM_PROF_BY_LIVE);
        report_list(b, mode, ps, NM_PROF_BY_ALLOC);
        report_list(b, mode, ps, NM_PROF_BY_REMOTE);
        report_list(b, mode, ps, NM_PROF_BY_HUGE_FB);
        nm_buf_puts(b, "  still live (leaks, if this is the exit dump): ~");
        nm_buf_size(b, ps->leak_bytes);
        nm_buf_printf(b, " in ~%lu blocks from %lu sites\n", (unsigned long)ps->leak_blocks, (unsigned long)ps->leak_sites);
    }
}

void nm_prof_dump_exit(void)
{
    if (nm_opt.prof_file[0]) return;       /* the profile files replace the text on stderr */
    nm_prof_snap_t ps;
    nm_prof_snapshot(&ps, true);
    char space[4096];
    nm_buf_t b;
    nm_buf_init(&b, space, sizeof space, 2);
    nm_prof_report(&b, NM_EM_TEXT, &ps);
    nm_buf_flush(&b);
    nm_prof_snap_release(&ps);
}

/* ---- for the profile files (src/pprof.c) -------------------------------------------------- */

int nm_prof_copy_sites(nm_prof_site_copy_t *out, bool from_signal)
{
    if (!nm_prof_on) return 0;
    /* a signal handler never waits: the interrupted code may hold the lock */
    if (from_signal) { if (!nm_trylock(&nm_prof_lock)) return -1; }
    else nm_lock(&nm_prof_lock);
    int n = 0;
    for (uint32_t i = 0; i < SITES; i++) {
        const prof_site_t *s = &sites[i];
        if (!s->used) continue;
        out[n++] = (nm_prof_site_copy_t){ .live_samples = s->live_samples, .live_raw = s->live_raw,
                                          .alloc_samples = s->samples, .alloc_raw = s->alloc_raw,
                                          .pc = s->pc, .depth = s->depth };
    }
    nm_unlock(&nm_prof_lock);
    return n;
}

void nm_prof_frame_label(void *ret, char *out, size_t cap, nm_prof_elf_cache_t *cache)
{
    frame_name_t fn = { { 0 }, { 0 }, 0 };
    /* a return address: the call instruction ends just before it, and a call that is
     * the last instruction of its function returns to the start of the next one */
    if (!frame_resolve((char *)ret - 1, &fn, cache)) nm_snprintf(out, cap, "%p", ret);
    else if (fn.symbol[0]) nm_copy_cstr(out, cap, fn.symbol);
    else nm_snprintf(out, cap, "%s+0x%lx", basename_of(fn.object), (unsigned long)fn.offset);
}
