/* numamalloc — the heap profile as files (NUMAMALLOC_PROF=1 with NUMAMALLOC_PROF_FILE).
 *
 * Three files, rewritten at exit, on NUMAMALLOC_STATS_SIGNAL and at every
 * NUMAMALLOC_STATS_INTERVAL (hooks in src/init.c and src/stats.c):
 *  - PATH: the legacy gperftools heap-profile text, as google-pprof and jeprof read it:
 *        heap profile: <inuse objs>: <inuse bytes> [<alloc objs>: <alloc bytes>] @ heap_v2/<mean>
 *        <inuse objs>: <inuse bytes> [<alloc objs>: <alloc bytes>] @ 0xpc1 0xpc2 ...
 *        ...
 *        MAPPED_LIBRARIES:
 *        <the contents of /proc/self/maps>
 *    The numbers are the samples themselves (blocks sampled and their sampled sizes);
 *    heap_v2 tells pprof the samples come from a Poisson process of the given mean,
 *    and pprof scales each site by 1 / (1 - exp(-(bytes/objs)/mean)). Frames are
 *    innermost first. pprof subtracts 1 from every address but the first (they are
 *    return addresses: the byte before is inside the call); the first is written
 *    minus 1 here, so that it too names the call to malloc and not the instruction
 *    after it, which can belong to another line (a function's epilogue is on its
 *    closing brace: edge_alloc in tests/pprof/prog_pprof.c).
 *  - PATH.collapsed: one line per site with live bytes, "outer;...;inner bytes", for
 *    flame-graph tools (flamegraph.pl, speedscope, scripts/numamalloc-report), and
 *    PATH.alloc.collapsed the same for every byte allocated. The bytes are pprof's
 *    numbers for the site (the same scaling), so the files add up to pprof's in-use
 *    and allocated totals. Frames are named with dladdr and the ELF symbol table
 *    (src/profile.c), outside every lock of ours; from a signal handler, where the
 *    loader must not be called, they are addresses (of the call instruction).
 *
 * Writing never calls malloc (stack buffers, metadata memory for the site copies and
 * the name table, write(2) through nm_buf_t), never waits for a lock from a signal
 * handler, and calls the loader only with no lock of ours held. Files are opened as
 * NUMAMALLOC_STATS_FILE is (src/dest.c: %p/%t expansion, O_NOFOLLOW, O_NONBLOCK,
 * regular files only, 0600), but replaced instead of appended to: one file holds
 * one profile, written beside it and renamed over it. Writes are serialised by
 * write_owner (below), never waited for without a bound. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "numamalloc/internal.h"

#define LABEL_MAX   256
#define NO_NAME     UINT64_MAX
static const char suffix[] = ".collapsed", alloc_suffix[] = ".alloc.collapsed";
static const char instead[] = "profile not written";

/* ---- one writer at a time ---------------------------------------------------------------
 * The pid of the process writing, 0 when free. All threads of a process share the pid,
 * so a value that is not ours was copied by fork from a parent that was writing: no
 * thread here will ever release it, and it is taken over. */
static int write_owner;

static bool write_lock(bool from_signal)
{
    int me = nm_os_getpid();
    for (int tries = 0;; tries++) {
        int cur = 0;
        if (__atomic_compare_exchange_n(&write_owner, &cur, me, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED)) return true;
        if (cur != me && __atomic_compare_exchange_n(&write_owner, &cur, me, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return true;
        if (from_signal || tries >= 2000) return false;
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
}

static void write_unlock(void) { __atomic_store_n(&write_owner, 0, __ATOMIC_RELEASE); }

/* ---- frame names --------------------------------------------------------------------------
 * Every distinct return address of the copied sites, named once: an open-addressing
 * table (at most half full) of addresses and offsets into a pool of labels. */
typedef struct pc_name {
    uintptr_t pc;                 /* 0: empty */
    uint64_t  off;                /* into the pool, NO_NAME if unnamed */
} pc_name_t;

typedef struct names {
    pc_name_t *slot;
    size_t     nslots, slot_bytes;
    char      *pool;
    size_t     pool_bytes, pool_used;
} names_t;

static size_t pc_hash(uintptr_t pc, size_t nslots) { return (size_t)((pc * 0x9e3779b97f4a7c15ull) >> 20) & (nslots - 1); }

/* the entry of pc; with insert, added if missing (and counted in *added) */
static pc_name_t *pc_find(const names_t *nt, uintptr_t pc, size_t *added)
{
    for (size_t i = pc_hash(pc, nt->nslots);; i = (i + 1) & (nt->nslots - 1)) {
        pc_name_t *e = &nt->slot[i];
        if (e->pc == pc) return e;
        if (e->pc == 0) {
            if (added == NULL) return NULL;
            e->pc = pc;
            e->off = NO_NAME;
            ++*added;
            return e;
        }
    }
}

/* a frame of a collapsed line: no ';' (the separator) and nothing unprintable */
static void clean_label(char *s)
{
    for (; *s; s++) if (*s == ';' || (unsigned char)*s < 0x20 || *s == 0x7f) *s = *s == ';' ? ':' : '?';
}

/* name every frame of the n sites; false (no names) if there is no memory for it */
static bool names_build(names_t *nt, const nm_prof_site_copy_t *sc, int n)
{
    size_t frames = 0;
    for (int i = 0; i < n; i++) frames += sc[i].depth;
    nt->nslots = 1024;
    while (nt->nslots < 2 * frames) nt->nslots *= 2;
    nt->slot_bytes = nt->nslots * sizeof(pc_name_t);
    nt->slot = nm_meta_alloc(nt->slot_bytes);
    if (nt->slot == NULL) return false;
    size_t unique = 0;
    for (int i = 0; i < n; i++)
        for (uint32_t f = 0; f < sc[i].depth; f++) {
            uintptr_t pc = (uintptr_t)sc[i].pc[f];
            if (pc) pc_find(nt, pc, &unique);
        }
    nt->pool_bytes = NM_MAX(unique * LABEL_MAX, (size_t)16 << 10);
    nt->pool = nm_meta_alloc(nt->pool_bytes);
    if (nt->pool == NULL) return false;
    nm_prof_elf_cache_t cache = { 0 };
    for (size_t i = 0; i < nt->nslots; i++) {
        pc_name_t *e = &nt->slot[i];
        if (e->pc == 0) continue;
        char *dst = nt->pool + nt->pool_used;
        nm_prof_frame_label((void *)e->pc, dst, LABEL_MAX, &cache);
        clean_label(dst);
        e->off = nt->pool_used;
        nt->pool_used += nm_strlen(dst) + 1;
    }
    nm_prof_elf_cache_release(&cache);
    return true;
}

static void names_release(names_t *nt)
{
    if (nt->slot) nm_meta_free(nt->slot, nt->slot_bytes);
    if (nt->pool) nm_meta_free(nt->pool, nt->pool_bytes);
    *nt = (names_t){ 0 };
}

/* ---- replacing a file ---------------------------------------------------------------------------
 * path is checked as NUMAMALLOC_STATS_FILE is (nm_dest_open: created with mode 0600 if
 * missing; a symbolic link, FIFO, directory or other non-regular file refused with one
 * line); the new contents go to path.PID.tmp beside it, which is then renamed over
 * path: a reader sees the old file or the new one, never part of one, and a process
 * killed while writing leaves the old file (and the temporary one). All system calls
 * here are async-signal-safe. */
#define TMP_EXTRA 24                           /* ".<pid>.tmp" */
static int dest_warned;                        /* a refused path is said once (src/dest.c) */

static int replace_begin(const char *path, char *tmp, size_t cap, const char *what_instead)
{
    int fd = nm_dest_open("NUMAMALLOC_PROF_FILE", path, what_instead, &dest_warned);
    if (fd < 0) return -1;
    syscall(SYS_close, fd);
    nm_snprintf(tmp, cap, "%s.%d.tmp", path, nm_os_getpid());
    unlink(tmp);                               /* left by a writer with our pid that was killed */
    fd = (int)syscall(SYS_openat, AT_FDCWD, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
    if (fd < 0) {
        int e = errno;
        char shown[256];
        nm_copy_printable(shown, sizeof shown, tmp);
        nm_warn("NUMAMALLOC_PROF_FILE: cannot create '%s' (errno %d): %s", shown, e, what_instead);
    }
    return fd;
}

/* size: the bytes written; a temporary file that did not get them all (disk full) is
 * removed, and the old file stays; true when path has the new contents */
static bool replace_end(int fd, size_t size, const char *tmp, const char *path, const char *what_instead)
{
    struct stat st;
    bool whole = syscall(SYS_fstat, fd, &st) == 0 && (size_t)st.st_size == size;
    syscall(SYS_close, fd);
    char shown[256];
    if (!whole) {
        unlink(tmp);
        nm_copy_printable(shown, sizeof shown, tmp);
        nm_warn("NUMAMALLOC_PROF_FILE: '%s' was not written in full (disk full?): %s", shown, what_instead);
        return false;
    }
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        nm_copy_printable(shown, sizeof shown, path);
        nm_warn("NUMAMALLOC_PROF_FILE: cannot rename the new profile over '%s' (errno %d): %s", shown, e, what_instead);
        return false;
    }
    return true;
}

/* ---- the three files --------------------------------------------------------------------------- */

/* each writer returns the bytes it wrote */
static size_t write_pprof(int fd, const nm_prof_site_copy_t *sc, int n)
{
    char space[4096];
    nm_buf_t b;
    nm_buf_init(&b, space, sizeof space, fd);
    uint64_t lo = 0, lb = 0, ao = 0, ab = 0;
    for (int i = 0; i < n; i++) { lo += sc[i].live_samples; lb += sc[i].live_raw; ao += sc[i].alloc_samples; ab += sc[i].alloc_raw; }
    nm_buf_printf(&b, "heap profile: %6lu: %8lu [%6lu: %8lu] @ heap_v2/%lu\n", (unsigned long)lo, (unsigned long)lb,
                  (unsigned long)ao, (unsigned long)ab, (unsigned long)nm_opt.prof_sample);
    for (int i = 0; i < n; i++) {
        if (sc[i].alloc_samples == 0) continue;
        nm_buf_printf(&b, "%6lu: %8lu [%6lu: %8lu] @", (unsigned long)sc[i].live_samples, (unsigned long)sc[i].live_raw,
                      (unsigned long)sc[i].alloc_samples, (unsigned long)sc[i].alloc_raw);
        /* a sample taken before our constructor has no stack: one unknown frame keeps
         * its bytes in the totals (pprof needs at least one address) */
        if (sc[i].depth == 0) nm_buf_puts(&b, " 0x0");
        for (uint32_t f = 0; f < sc[i].depth; f++)
            nm_buf_printf(&b, " 0x%lx", (unsigned long)((uintptr_t)sc[i].pc[f] - (f == 0)));
        nm_buf_puts(&b, "\n");
    }
    nm_buf_puts(&b, "\nMAPPED_LIBRARIES:\n");
    int maps = (int)syscall(SYS_openat, AT_FDCWD, "/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (maps >= 0) {
        char chunk[1024];
        for (;;) {
            long r = syscall(SYS_read, maps, chunk, sizeof chunk);
            if (r < 0 && errno == EINTR) continue;
            if (r <= 0) break;
            nm_buf_put(&b, chunk, (size_t)r);
        }
        syscall(SYS_close, maps);
    }
    return nm_buf_finish(&b);
}

/* live bytes per site, or (alloc) every byte allocated */
static size_t write_collapsed(int fd, const nm_prof_site_copy_t *sc, int n, const names_t *nt, bool alloc)
{
    char space[4096];
    nm_buf_t b;
    nm_buf_init(&b, space, sizeof space, fd);
    for (int i = 0; i < n; i++) {
        uint64_t bytes = alloc ? nm_prof_unsampled(sc[i].alloc_raw, sc[i].alloc_samples)
                               : nm_prof_unsampled(sc[i].live_raw, sc[i].live_samples);
        if (bytes == 0) continue;
        if (sc[i].depth == 0) nm_buf_puts(&b, "[no stack]");
        for (uint32_t k = sc[i].depth; k-- > 0;) {             /* outermost first */
            uintptr_t pc = (uintptr_t)sc[i].pc[k];
            const pc_name_t *e = nt->slot && pc ? pc_find(nt, pc, NULL) : NULL;
            if (e && e->off != NO_NAME) nm_buf_puts(&b, nt->pool + e->off);
            else nm_buf_printf(&b, "0x%lx", (unsigned long)(pc ? pc - 1 : 0));
            if (k) nm_buf_puts(&b, ";");
        }
        nm_buf_printf(&b, " %lu\n", (unsigned long)bytes);
    }
    return nm_buf_finish(&b);
}

void nm_prof_write_files(const char *why, bool from_signal)
{
    if (!nm_prof_on || nm_opt.prof_file[0] == '\0') return;
    if (__atomic_load_n(&nm_pstate, __ATOMIC_ACQUIRE) != NM_P_READY) return;
    int saved = errno;
    nm_tcache_t *tc = nm_tcp;
    bool own = tc->state == NM_T_ACTIVE;       /* the empty and dead caches are read-only */
    uint8_t busy = tc->busy;
    if (own) tc->busy = 1;                     /* nothing we call may sample */
    /* above the metadata allocator's small sizes: a mapping of its own, no lock */
    size_t copy_bytes = sizeof(nm_prof_site_copy_t) * NM_PROF_SITES;
    nm_prof_site_copy_t *sc = nm_meta_alloc(copy_bytes);
    names_t nt = { 0 };
    int n = sc ? nm_prof_copy_sites(sc, from_signal) : 0;
    if (sc == NULL) {
        nm_warn("NUMAMALLOC_PROF_FILE: no memory to copy the profile at %s: %s", why, instead);
    } else if (n < 0) {
        nm_warn("NUMAMALLOC_PROF_FILE: the profiler was busy when the %s came: %s this time", why, instead);
    } else {
        /* names first: the loader is called with no lock of ours held */
        if (!from_signal && !names_build(&nt, sc, n)) names_release(&nt);
        if (!write_lock(from_signal)) {
            nm_warn("NUMAMALLOC_PROF_FILE: another profile write is in progress at %s: %s this time", why, instead);
        } else {
            char path[NM_DEST_MAX], tmp[NM_DEST_MAX];
            if (nm_dest_expand("NUMAMALLOC_PROF_FILE", nm_opt.prof_file, path, sizeof path - (sizeof alloc_suffix - 1) - TMP_EXTRA, instead, &dest_warned)) {
                /* the collapsed files only beside a profile: one line when the name is refused */
                int fd = replace_begin(path, tmp, sizeof tmp, instead);
                bool written = fd >= 0 && replace_end(fd, write_pprof(fd, sc, n), tmp, path, instead);
                size_t len = nm_strlen(path);
                for (int alloc = 0; written && alloc < 2; alloc++) {
                    nm_copy_cstr(path + len, sizeof path - len, alloc ? alloc_suffix : suffix);
                    fd = replace_begin(path, tmp, sizeof tmp, "collapsed stacks not written");
                    if (fd >= 0) replace_end(fd, write_collapsed(fd, sc, n, &nt, alloc), tmp, path, "collapsed stacks not written");
                }
            }
            write_unlock();
        }
    }
    names_release(&nt);
    if (sc) nm_meta_free(sc, copy_bytes);
    if (own) tc->busy = busy;
    errno = saved;
}
