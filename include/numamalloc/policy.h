/* numamalloc — placement policy (src/policy.c): the domains, which one serves a
 * thread, and how a domain's fresh memory is bound.
 *
 * Domains, by index (N = max_node + 1):
 *   0 .. N-1                node n, MPOL_PREFERRED: a full node spills
 *   N                       interleaved over the process's interleave nodes
 *   N + 1                   the profiler's (sampled blocks, unbound, first touch)
 *   N + 2 .. 2N + 1         strict twin of node n: MPOL_BIND, faulted in when a slab
 *                           or mapping is made, after checking the node has room
 *   2N + 2 .. + EXTRA - 1   interleaved over other node sets (per-thread policies),
 *                           created on first use
 * On a machine with one node with memory nothing is bound and the strict twin of
 * node 0 is node 0's domain itself. */
#ifndef NM_POLICY_H
#define NM_POLICY_H

#include "numamalloc/base.h"

extern uint32_t nm_ndomains;          /* capacity: every index above */
extern uint32_t nm_dom_interleave;    /* index of the interleaved pseudo-domain */
extern uint32_t nm_dom_sampled;       /* index of the profiler's pseudo-domain */
extern uint32_t nm_dom_strict0;       /* strict twin of node n: nm_dom_strict0 + n */
extern uint32_t nm_dom_extra0;        /* first per-thread interleaved domain */
extern struct nm_domain *nm_domains;
/* the depots, NM_NUM_CLASSES per domain (nm_depot): apart from the domains, so that
 * setting a domain up writes one small header, not one page in every 12 KiB */
extern struct nm_depot *nm_depots;
extern nm_lock_t nm_policy_lock;      /* per-thread policy table and extra domains; never nested */

bool nm_policy_init(void);            /* validates NUMAMALLOC_POLICY against the topology */
/* the domain of a thread running on cpu_node under the process policy */
uint32_t nm_policy_domain_for(int cpu_node);
/* ... under per-thread policy tpol (0: the process policy) */
uint32_t nm_policy_domain_for_thread(uint8_t tpol, int cpu_node);
/* node n's domain that binds strictly (MPOL_BIND, faulted in, never spills) */
uint32_t nm_policy_strict_domain(int node);
/* bind fresh memory [p, p+len) to domain d before first touch; counts failures */
bool nm_policy_bind(uint32_t d, void *p, size_t len);
/* strict domains: fault [p, p+len) in now if node's free memory can hold it; false
 * (errno ENOMEM, counted as strict_node_full) when it cannot. true for other domains */
bool nm_policy_populate(uint32_t d, void *p, size_t len);
/* node id a domain stands for (its strict twin too), or -1 for the pseudo-domains */
int  nm_domain_node(uint32_t d);
/* is d a node's domain (or its strict twin) and cpu_node another node? */
bool nm_domain_is_remote(uint32_t d, int cpu_node);
/* the same, given d's node */
NM_INLINE bool nm_node_is_remote(int domain_node, int cpu_node) { return domain_node >= 0 && domain_node != cpu_node; }
/* does domain d place memory on node n (its node, or one of its interleave nodes)? */
bool nm_domain_spans(uint32_t d, int n);
/* was domain d set up (extra domains exist once a thread asked for one)? */
bool nm_domain_used(uint32_t d);
/* domains set up so far: those below the result (the base ones and the extras made) */
uint32_t nm_domains_set_up(void);
/* Domains whose locks (depots, segments, large cache) were ever taken: src/fork.c
 * takes those only (a fork writes every page of lock words it takes, and pays a fault
 * for each, three times). The first nm_domain_lock in a domain marks it under
 * nm_policy_lock, which fork holds while it looks; so it must not hold another
 * domain's lock (none nests across domains) nor anything after the policy lock. */
extern uint64_t nm_dom_locks_used[NM_MAX_DOMAINS / 64];     /* a bit per domain */
void nm_domain_locks_use(uint32_t d);
NM_INLINE bool nm_domain_locks_used(uint32_t d)
{
    return (nm_load_relaxed(&nm_dom_locks_used[d / 64]) >> (d % 64)) & 1;
}
NM_INLINE void nm_domain_lock(uint32_t d, nm_lock_t *l)
{
    if (NM_UNLIKELY(!nm_domain_locks_used(d))) nm_domain_locks_use(d);
    nm_lock(l);
}

/* ---- per-thread policies ------------------------------------------------------------
 * A thread's policy is an index into a table of the distinct policies threads asked
 * for (at most NM_THREAD_POLICIES per process): the text is parsed and checked once,
 * and an interleaved node set gets its domain then. */
/* tpol for the text (NUMAMALLOC_POLICY grammar), or 0 with errno EINVAL (not in the
 * grammar, a node without memory) or ENOSPC (table or extra domains full); NULL or
 * "" is tpol 0, the process policy (returns 0, errno untouched) */
uint8_t nm_policy_thread_parse(const char *text, bool *ok);
/* the policy text of tpol (0: NUMAMALLOC_POLICY in effect) */
const char *nm_policy_thread_text(uint8_t tpol);

#endif
