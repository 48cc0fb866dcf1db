/* numamalloc — fork(2) safety.
 *
 * pthread_atfork handlers take every allocator lock before fork and release them in
 * both processes after it, so the child never inherits a lock held by a thread that
 * does not exist there. THE LOCK ORDER (every nesting in the allocator follows it):
 *
 *   init -> dump -> decay -> threads -> policy -> [fallback gate] -> depot[d][c]
 *        for every domain d whose locks were used, class c -> seg_lock[d] for every
 *        such d -> large_lock[d] for every such d -> meta -> pagemap -> profiler
 *
 * Only domains whose locks were ever taken are locked: a fork pays a fault for every
 * page whose lock words it writes, in the parent before the fork (the last fork left
 * it write-protected), in the parent after it (a copy, with a TLB shootdown) and in
 * the child (a copy), and a domain's 60 depots span three pages. A domain's first
 * lock marks it under the policy lock (nm_domain_lock), and the policy lock comes
 * before the domains here, so the set cannot change while fork holds them. That is
 * deadlock-free because the policy lock is otherwise a leaf: nothing is taken under
 * it, and no domain lock is held when it is taken (no lock nests across domains).
 * The fallback gate (src/fallback.c) is not a lock but waits for every thread inside
 * mimalloc to leave it; no lock of ours is taken inside it.
 * (depot -> seg -> meta and depot -> pagemap are the nestings of slab creation;
 * decay -> threads -> depot/seg/large of its pass; threads -> depot of retiring a
 * dead thread's cache.) No lock of ours is held across a call into the dynamic
 * loader or stdio (numamalloc(7), THREADS, THE LOADER AND LOCKS).
 * In the child, the thread list is cut down to the forking thread: the other
 * threads' caches are retired without giving their magazines back (their owners were
 * changing them, unlocked, at the fork; src/tcache.c), and the helper threads the
 * parent had (interval dumps, background) are started again. The handlers are
 * registered while booting, before any thread can allocate from our slabs. */
#include <pthread.h>

#include "numamalloc/internal.h"


static void first_locks(void (*op)(nm_lock_t *))
{
    op(&nm_init_lock);
    op(&nm_stats_dump_lock);
    op(&nm_decay_lock);
    op(&nm_threads_lock);
    op(&nm_policy_lock);
}

/* a domain whose locks fork takes (the policy lock held: the set stays the same) */
static bool used(uint32_t d) { return nm_domain_locks_used(d); }

static void other_locks(void (*op)(nm_lock_t *))
{
    uint32_t nd = nm_domains_set_up();
    for (uint32_t d = 0; d < nd; d++)
        for (unsigned c = 0; c < NM_NUM_CLASSES && used(d); c++) op(&nm_depot(d, c)->lock);
    for (uint32_t d = 0; d < nd; d++) if (used(d)) op(&nm_domains[d].seg_lock);
    for (uint32_t d = 0; d < nd; d++) if (used(d)) op(&nm_domains[d].large_lock);
    op(&nm_meta_lock);
    op(&nm_pm_lock);
    op(&nm_prof_lock);
}

static void unlock_reverse(void)
{
    nm_unlock(&nm_prof_lock);
    nm_unlock(&nm_pm_lock);
    nm_unlock(&nm_meta_lock);
    uint32_t nd = nm_domains_set_up();
    for (uint32_t d = nd; d-- > 0;) if (used(d)) nm_unlock(&nm_domains[d].large_lock);
    for (uint32_t d = nd; d-- > 0;) if (used(d)) nm_unlock(&nm_domains[d].seg_lock);
    for (uint32_t d = nd; d-- > 0;)
        for (unsigned c = NM_NUM_CLASSES; c-- > 0 && used(d);) nm_unlock(&nm_depot(d, c)->lock);
    nm_unlock(&nm_policy_lock);
    nm_unlock(&nm_threads_lock);
    nm_unlock(&nm_decay_lock);
    nm_unlock(&nm_stats_dump_lock);
    nm_unlock(&nm_init_lock);
}

static void prepare(void)
{
    first_locks(nm_lock);
    nm_fallback_fork_close();
    other_locks(nm_lock);
}

static void parent(void)
{
    unlock_reverse();
    nm_fallback_fork_open(false);
}

static void child(void)
{
    first_locks(nm_lock_reinit);
    other_locks(nm_lock_reinit);
    nm_fallback_fork_open(true);
    nm_tcache_fork_child();
    nm_large_fork_child(nm_tcp->state == NM_T_ACTIVE ? nm_tcp : NULL);
    nm_decay_fork_child();
    nm_stats_fork_child();
}

void nm_fork_init(void)
{
    if (pthread_atfork(prepare, parent, child) != 0)
        nm_warn("pthread_atfork failed: a child forked while other threads allocate may deadlock");
}
