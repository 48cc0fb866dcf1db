/* numamalloc — bootstrap, process start and exit, thread start and exit.
 *
 * Process state machine: UNINIT -> BOOTING -> READY, by compare-and-swap on the
 * first malloc of any thread (which may come before our constructor: libnuma's and
 * other libraries' constructors allocate). Booting reads the environment (environ
 * scan, src/options.c), sysfs (src/topology.c), sets up domains, the fallback arena,
 * the thread-exit key and the fork handlers. Nothing on this path calls getenv,
 * fopen, dlsym or libnuma. While booting, any allocation (the booting thread's own
 * re-entrant ones: pthread_atfork allocates; or another thread's) is served by
 * mimalloc, which works before any constructor, and counted as bootstrap_allocs;
 * free() recognises those blocks later through mi_is_in_heap_region.
 *
 * Thread state (nm_tcache_t.state): NEW (all zero TLS) -> ACTIVE on the first slow
 * path -> DEAD in the pthread key destructor, which flushes the thread's magazines
 * to the depots and merges its counters. A DEAD thread still allocates and frees
 * (later key destructors, glibc's own thread cleanup), straight from the slabs.
 *
 * Exit: the library destructor prints the stats dump and the profile, writes the
 * profile files (once per process, forked children included), and keeps everything
 * working for code that runs after it. Locks: nm_init_lock (boot), nm_threads_lock (thread list). */
#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/auxv.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "numamalloc/internal.h"

int nm_pstate;
nm_lock_t nm_init_lock = NM_LOCK_INIT;
nm_lock_t nm_threads_lock = NM_LOCK_INIT;
nm_tcache_t *nm_threads;
static uintptr_t boot_thread;
static pthread_key_t thread_key;
static uint64_t start_ms;
extern uint64_t *nm_gdom;

uint64_t nm_start_ms(void) { return start_ms; }

/* an address unique to the calling thread, usable before anything is set up */
static NM_TLS char self_marker;
static uintptr_t self_id(void) { return (uintptr_t)&self_marker; }

bool nm_is_boot_thread(void) { return __atomic_load_n(&boot_thread, __ATOMIC_RELAXED) == self_id(); }

static void key_destructor(void *arg)
{
    nm_thread_exit(arg);
}

static void boot(void)
{
    unsigned long pg = getauxval(AT_PAGESZ);
    if (pg) nm_os_page = pg;
    start_ms = nm_os_now_ms();
    int fd = fcntl(2, F_DUPFD_CLOEXEC, 64);
    if (fd >= 0) nm_stderr_fd = fd;
    nm_options_init(NULL, getauxval(AT_SECURE) != 0);
    if (!nm_topo_init("")) nm_fatal("cannot read the NUMA topology (out of memory)");
    if (!nm_policy_init()) nm_fatal("cannot set up NUMA domains (out of memory)");
    nm_gdom = nm_meta_alloc((size_t)nm_ndomains * NM_DOMAIN_CTR_N * sizeof(uint64_t));
    nm_large_init();
    nm_stats_init();
    if (!nm_fallback_init()) nm_warn("fallback arena could not reserve its memory; medium blocks use unbound memory");
    nm_prof_init();
    if (pthread_key_create(&thread_key, key_destructor) != 0)
        nm_warn("pthread_key_create failed: thread caches are not flushed at thread exit");
    nm_fork_init();
}

bool nm_process_init(void)
{
    int s = __atomic_load_n(&nm_pstate, __ATOMIC_ACQUIRE);
    if (NM_LIKELY(s == NM_P_READY)) return true;
    if (s == NM_P_BOOTING) return false;
    nm_lock(&nm_init_lock);
    if (__atomic_load_n(&nm_pstate, __ATOMIC_RELAXED) != NM_P_UNINIT) {
        nm_unlock(&nm_init_lock);
        return __atomic_load_n(&nm_pstate, __ATOMIC_ACQUIRE) == NM_P_READY;
    }
    __atomic_store_n(&boot_thread, self_id(), __ATOMIC_RELAXED);
    __atomic_store_n(&nm_pstate, NM_P_BOOTING, __ATOMIC_RELEASE);
    nm_unlock(&nm_init_lock);
    int saved = errno;
    boot();
    errno = saved;
    __atomic_store_n(&boot_thread, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&nm_pstate, NM_P_READY, __ATOMIC_RELEASE);
    if (nm_opt.verbose) nm_verbose_print();
    return true;
}

void *nm_bootstrap_alloc(size_t n, size_t align, bool zero)
{
    if (n > PTRDIFF_MAX) { errno = ENOMEM; return NULL; }
    nm_gstat_add(NM_C_bootstrap_allocs, 1);
    void *p = nm_fallback_raw_alloc(n, align, zero);
    if (p == NULL) errno = ENOMEM;
    return p;
}

static NM_TLS uint8_t thread_starting;

/* free a cache's own arrays and the cache itself (it is unlinked) */
static void tcache_free(nm_tcache_t *tc)
{
    if (tc->remote) nm_meta_free(tc->remote, (size_t)nm_ndomains * NM_NUM_CLASSES * sizeof(nm_mag_t *));
    if (tc->ctr.dom) nm_meta_free(tc->ctr.dom, (size_t)nm_ndomains * NM_DOMAIN_CTR_N * sizeof(uint64_t));
    nm_meta_free(tc, sizeof *tc);
}

static void unlink_locked(nm_tcache_t *tc)
{
    if (tc->prev) tc->prev->next = tc->next; else nm_threads = tc->next;
    if (tc->next) tc->next->prev = tc->prev;
    tc->next = tc->prev = NULL;
}

/* retire the cache of a thread that no longer runs: its counters go into the
 * globals and, when `give_back`, its magazines to the depots and its medium blocks
 * to mimalloc. Threads lock held (-> depots: in order). */
static void retire_locked(nm_tcache_t *tc, bool give_back)
{
    if (give_back) {
        nm_fallback_cache_flush(tc);     /* mi_free works from any thread */
        tc->mheap = NULL;                /* its mimalloc heap died with the thread */
        nm_tcache_flush_all(tc);
    }
    nm_stats_merge_thread(tc);
    unlink_locked(tc);
    tcache_free(tc);
    nm_gstat_sub(NM_C_threads_live, 1);
}

/* Has thread tid of this process stopped running user code for good? Gone (tgkill:
 * ESRCH), or exiting: pthread_join returns once the kernel cleared the thread's tid,
 * a moment before the thread disappears (seen: 1 dump in 40 right after a join still
 * counted the thread, on a loaded machine); the kernel flags a thread PF_EXITING
 * (0x4 in field 9 of /proc/.../stat) before it clears the tid, so a dump right after
 * a join counts it out, as it should. */
static bool thread_gone(int pid, int tid)
{
    if (syscall(SYS_tgkill, pid, tid, 0) != 0) return errno == ESRCH;
    char path[48] = "/proc/self/task/", buf[512];
    size_t n = 16;
    char digits[12];
    int k = 0;
    for (unsigned v = (unsigned)tid; k == 0 || v; v /= 10) digits[k++] = (char)('0' + v % 10);
    while (k) path[n++] = digits[--k];
    memcpy(path + n, "/stat", 6);
    long len = nm_os_read_file(path, buf, sizeof buf - 1);
    if (len <= 0) return true;                          /* gone between the two calls */
    buf[len] = 0;
    const char *f = NULL;                               /* the last ')': the name may hold one */
    for (const char *c = buf; *c; c++) if (*c == ')') f = c;
    if (f == NULL) return false;
    int field = 2;                                      /* ")" ends field 2; each space starts the next */
    for (f++; *f && field < 9; f++) if (*f == ' ') field++;
    unsigned long flags = 0;
    for (; *f >= '0' && *f <= '9'; f++) flags = flags * 10 + (unsigned long)(*f - '0');
    return field == 9 && (flags & 0x4) != 0;            /* PF_EXITING */
}

/* all_but_self (a forked child): the other threads' caches are dropped, not given
 * back. Their owners kept running through the fork, and a cache is changed without
 * a lock, so the child's copy may show its owner stopped anywhere: between a depot
 * call and the update of its bin, say (a magazine the depot already owns still in
 * the bin: given back again, it would sit twice in the depot, its blocks handed out
 * twice), or halfway through putting a block into its medium cache. Their cached
 * blocks are lost to the child, as glibc's and jemalloc's thread caches are.
 * (Seen: a fork storm beside 8 threads churning magazines, 33 of 1,000 children
 * crashed or looped when the caches were given back.) */
void nm_threads_reap_locked(bool all_but_self)
{
    int saved = errno;
    int pid = nm_os_getpid();
    nm_tcache_t *self = nm_tcp;
    for (nm_tcache_t *tc = nm_threads, *next; tc; tc = next) {
        next = tc->next;
        if (tc == self) continue;
        if (all_but_self) retire_locked(tc, false);
        else if (thread_gone(pid, tc->tid)) retire_locked(tc, true);
    }
    errno = saved;
}

nm_tcache_t *nm_thread_start(void)
{
    if (!nm_process_init() || thread_starting) return NULL;
    thread_starting = 1;
    int saved = errno;
    nm_tcache_t *tc = nm_meta_alloc(sizeof *tc);
    if (tc == NULL) { thread_starting = 0; errno = saved; return NULL; }
    tc->ctr.dom = nm_meta_alloc((size_t)nm_ndomains * NM_DOMAIN_CTR_N * sizeof(uint64_t));
    tc->tid = (int32_t)syscall(SYS_gettid);
    tc->cpu_node = nm_topo_cpu_node(nm_os_cpu());
    tc->domain = nm_policy_domain_for(tc->cpu_node);
    tc->rng = (uint64_t)(uintptr_t)tc ^ nm_os_now_ns() ^ 0x9e3779b97f4a7c15ull;
    tc->state = NM_T_ACTIVE;
    for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
        nm_bin_t *b = &tc->bins[c];
        b->budget = b->period = nm_prof_on ? nm_prof_next_blocks(tc, c) : ((int64_t)1 << 62);
    }
    if (nm_prof_on) nm_prof_tick_bytes(tc, 0);
    tc->free_tag_hi = (uint64_t)nm_pme_tag_make(tc->domain, NM_KIND_SLAB) << NM_PME_TAG_SHIFT;
    nm_lock(&nm_threads_lock);
    /* thread ids are unique among live threads: a cache with ours belongs to a dead one */
    for (nm_tcache_t *t = nm_threads, *next; t; t = next) {
        next = t->next;
        if (t->tid == tc->tid) retire_locked(t, true);
    }
    tc->next = nm_threads;
    if (nm_threads) nm_threads->prev = tc;
    nm_threads = tc;
    nm_unlock(&nm_threads_lock);
    nm_gstat_add(NM_C_threads_seen, 1);
    nm_gstat_add(NM_C_threads_live, 1);
    nm_tcp = tc;
    /* both may allocate: the cache is active now, that is fine */
    nm_fallback_thread_start(tc);
    pthread_setspecific(thread_key, tc);
    thread_starting = 0;
    errno = saved;
    return tc;
}

void nm_thread_exit(nm_tcache_t *tc)
{
    if (tc != nm_tcp || tc->state != NM_T_ACTIVE) return;
    tc->busy = 1;
    nm_tcache_flush_all(tc);
    nm_fallback_cache_flush(tc);
    /* merge and unlink under the thread-list lock: a dump (which reads the globals
     * and the live threads under it) sees this thread's counters exactly once */
    nm_lock(&nm_threads_lock);
    nm_stats_merge_thread(tc);
    unlink_locked(tc);
    nm_unlock(&nm_threads_lock);
    nm_tcp = (nm_tcache_t *)&nm_tcache_dead;
    tcache_free(tc);
    nm_gstat_sub(NM_C_threads_live, 1);
}

/* ---- process constructor and destructor -------------------------------------------- */
/* Not in the white-box test archive: unit tests drive the pieces themselves. */
#ifndef NM_TESTING
static int dumped_pid;

__attribute__((constructor)) static void nm_constructor(void)
{
    nm_process_init();
    nm_thread_cache();
    nm_stats_start_triggers();
    if (nm_prof_on) nm_prof_prime();
}

__attribute__((destructor)) static void nm_destructor(void)
{
    if (__atomic_load_n(&nm_pstate, __ATOMIC_ACQUIRE) != NM_P_READY) return;
    int pid = nm_os_getpid();
    if (__atomic_exchange_n(&dumped_pid, pid, __ATOMIC_ACQ_REL) == pid) return;
    if (nm_opt.stats != NM_STATS_OFF) nm_stats_dump("exit");
    else if (nm_prof_on) nm_prof_dump_exit();
    nm_prof_write_files("exit", false);
}
#endif
