/* numamalloc — booting the process, and its constructor and destructor.
 *
 * The process boots on the first allocator call of any thread, which may come before
 * our constructor (libnuma's and other libraries' constructors allocate): UNINIT ->
 * BOOTING -> READY by compare-and-swap under nm_init_lock (the state lives in
 * src/tcache.c). Booting reads the environment (environ scan, src/options.c), sysfs
 * (src/topology.c) and the overcommit mode (src/segment.c), sets up domains,
 * counters, the thread-exit key and the fork handlers. Nothing on this path calls
 * getenv, fopen, dlsym or libnuma. While the process boots, every allocation (the
 * booting thread's own re-entrant ones: pthread_atfork allocates; or another
 * thread's) is served by the fallback arena and counted as bootstrap_allocs
 * (src/alloc.c).
 *
 * Exit: the destructor prints the stats dump and the profile and writes the profile
 * files (once per process, forked children included), and keeps everything working
 * for code that runs after it. Locks: nm_init_lock (boot only). */
#include <errno.h>
#include <fcntl.h>
#include <sys/auxv.h>
#include <unistd.h>

#include "numamalloc/internal.h"

static void boot(void)
{
    unsigned long pg = getauxval(AT_PAGESZ);
    if (pg) nm_os_page = pg;
    nm_start_ms = nm_os_now_ms();
    int fd = fcntl(2, F_DUPFD_CLOEXEC, 64);
    if (fd >= 0) nm_stderr_fd = fd;
    nm_options_init(NULL, getauxval(AT_SECURE) != 0);
    if (!nm_topo_init("")) nm_fatal("cannot read the NUMA topology (out of memory)");
    if (!nm_policy_init()) nm_fatal("cannot set up NUMA domains (out of memory)");
    if (!nm_counters_init(nm_ndomains) || !nm_stats_init()) nm_fatal("cannot set up the counters (out of memory)");
    nm_large_init();
    nm_segment_init();
    nm_fallback_init();
    nm_prof_init();
    if (!nm_tcache_init()) nm_warn("pthread_key_create failed: thread caches are not flushed at thread exit");
    nm_fork_init();
}

bool nm_process_init(void)
{
    int s = nm_load_acquire(&nm_pstate);
    if (NM_LIKELY(s == NM_P_READY)) return true;
    if (s == NM_P_BOOTING) return false;
    nm_lock(&nm_init_lock);
    if (nm_load_relaxed(&nm_pstate) != NM_P_UNINIT) {
        nm_unlock(&nm_init_lock);
        return nm_load_acquire(&nm_pstate) == NM_P_READY;
    }
    nm_store_release(&nm_pstate, NM_P_BOOTING);
    nm_unlock(&nm_init_lock);
    int saved = errno;
    boot();
    errno = saved;
    nm_store_release(&nm_pstate, NM_P_READY);
    if (nm_opt.verbose) nm_verbose_print();
    return true;
}

/* ---- process constructor and destructor -------------------------------------------- */
/* Not in the white-box test archive: unit tests drive the pieces themselves. */
#ifndef NM_TESTING
static int dumped_pid;

__attribute__((constructor)) static void nm_constructor(void)
{
    if (!nm_process_init()) return;
    nm_thread_cache();
    nm_stats_start_triggers();
    if (nm_prof_on) nm_prof_prime();
}

__attribute__((destructor)) static void nm_destructor(void)
{
    if (nm_load_acquire(&nm_pstate) != NM_P_READY) return;
    int pid = nm_os_getpid();
    if (__atomic_exchange_n(&dumped_pid, pid, __ATOMIC_ACQ_REL) == pid) return;
    if (nm_opt.stats != NM_STATS_OFF) nm_stats_dump("exit");
    else if (nm_prof_on) nm_prof_dump_exit();
    nm_prof_write_files("exit", false);
}
#endif
