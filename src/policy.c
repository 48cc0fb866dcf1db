/* numamalloc — placement policy: which domain serves a thread, and how a domain's
 * fresh memory is bound.
 *
 * A domain is a NUMA node id, the interleaved pseudo-domain (index max_node+1) or
 * the profiler's (max_node+2: sampled blocks, never bound, placed by first touch;
 * its blocks never match a thread's free tag, so their free forgets the sample).
 * Each domain owns depots, segments and a large-mapping cache (nm_domain_t).
 *   local        thread's node (nearest node with memory for memory-less nodes);
 *                memory mbind(MPOL_PREFERRED) so a full node spills instead of OOM
 *   bind:N,..    thread's node if listed, else the nearest listed; MPOL_BIND
 *   preferred:N  node N for everyone; MPOL_PREFERRED (falls back when N is full)
 *   interleave   one interleaved domain for everyone; MPOL_INTERLEAVE over the
 *                listed nodes (default: every node with memory)
 * With one node with memory, nothing is ever mbind'ed: the kernel's default is
 * already right and the policy degrades to plain behaviour, with no errors.
 * Written at start-up (nm_policy_init), read-only after. */
#include <linux/mempolicy.h>

#include "numamalloc/internal.h"

uint32_t nm_ndomains;
uint32_t nm_dom_interleave;
uint32_t nm_dom_sampled;
nm_domain_t *nm_domains;

#define MASK_WORDS (NM_MAX_DOMAINS / (8 * sizeof(unsigned long)))
static unsigned long interleave_mask[MASK_WORDS];
static unsigned long bind_set[MASK_WORDS];
static int effective_policy;

static bool in_set(const unsigned long *m, int n)
{
    const unsigned W = 8 * sizeof(unsigned long);
    return n >= 0 && n < NM_MAX_DOMAINS && ((m[n / W] >> (n % W)) & 1);
}

static void set_bit(unsigned long *m, int n)
{
    const unsigned W = 8 * sizeof(unsigned long);
    m[n / W] |= 1UL << (n % W);
}

/* nearest node (by SLIT distance) to `from` among nodes in set (or with memory if set == NULL) */
static int nearest(int from, const unsigned long *set)
{
    int best = -1, bestd = 1 << 30;
    for (int n = 0; n <= nm_topo.max_node; n++) {
        if (!nm_topo_has_memory(n)) continue;
        if (set && !in_set(set, n)) continue;
        int d = nm_topo_distance(from, n);
        if (d < bestd) { bestd = d; best = n; }
    }
    return best < 0 ? 0 : best;
}

bool nm_policy_init(void)
{
    nm_ndomains = (uint32_t)nm_topo.max_node + 3;
    nm_dom_interleave = (uint32_t)nm_topo.max_node + 1;
    nm_dom_sampled = (uint32_t)nm_topo.max_node + 2;
    nm_domains = nm_meta_alloc(sizeof(nm_domain_t) * nm_ndomains);
    if (nm_domains == NULL) return false;
    /* all-zero pthread mutexes are PTHREAD_MUTEX_INITIALIZER in glibc; init anyway */
    for (uint32_t d = 0; d < nm_ndomains; d++) {
        nm_domain_t *dm = &nm_domains[d];
        for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
            pthread_mutex_init(&dm->depots[c].lock, NULL);
            dm->depots[c].cls = c;
            dm->depots[c].domain = d;
        }
        pthread_mutex_init(&dm->seg_lock, NULL);
        pthread_mutex_init(&dm->large_lock, NULL);
        dm->node = d >= nm_dom_interleave ? -1 : (int)d;
    }

    /* validate the node list against what exists */
    int pol = nm_opt.policy;
    for (unsigned i = 0; i < nm_opt.policy_nnodes; i++) {
        int n = nm_opt.policy_nodes[i];
        if (!nm_topo_has_memory(n)) {
            char have[256];
            nm_buf_t b;
            nm_buf_init(&b, have, sizeof have, -1);
            bool first = true;
            for (int k = 0; k <= nm_topo.max_node; k++)
                if (nm_topo_has_memory(k)) { nm_buf_printf(&b, first ? "%d" : ",%d", k); first = false; }
            nm_buf_finish(&b);
            nm_warn("NUMAMALLOC_POLICY='%s' ignored: node %d does not exist or has no memory (nodes with memory: %s); using 'local'",
                    nm_opt.raw[NM_OPT_POLICY], n, have);
            pol = NM_POL_LOCAL;
            nm_opt.policy = NM_POL_LOCAL;
            nm_opt.policy_nnodes = 0;
            nm_copy_cstr(nm_opt.raw[NM_OPT_POLICY], sizeof nm_opt.raw[NM_OPT_POLICY], "local");
            break;
        }
        set_bit(bind_set, n);
    }
    /* the interleaved domain also serves numamalloc_alloc_interleaved() under any
     * policy: every node with memory, or the nodes of interleave:N,M... */
    if (pol == NM_POL_INTERLEAVE && nm_opt.policy_nnodes)
        for (unsigned i = 0; i < NM_ARRAY_LEN(interleave_mask); i++) interleave_mask[i] = bind_set[i];
    else
        for (int n = 0; n <= nm_topo.max_node; n++) if (nm_topo_has_memory(n)) set_bit(interleave_mask, n);
    effective_policy = pol;

    /* the fault-injection build may bind with one node too, to exercise mbind failures */
    bool multi = nm_topo.nmem > 1 || nm_fault_force_bind();
    for (uint32_t d = 0; d < nm_ndomains; d++) {
        nm_domain_t *dm = &nm_domains[d];
        dm->bind = multi && d != nm_dom_sampled;
        if (d == nm_dom_interleave) dm->mpol_mode = MPOL_INTERLEAVE;
        else if (pol == NM_POL_BIND) dm->mpol_mode = MPOL_BIND;
        else dm->mpol_mode = MPOL_PREFERRED;
    }
    return true;
}

uint32_t nm_policy_domain_for(int cpu_node)
{
    switch (effective_policy) {
    case NM_POL_PREFERRED:
        return nm_opt.policy_nodes[0];
    case NM_POL_BIND:
        return (uint32_t)(in_set(bind_set, cpu_node) ? cpu_node : nearest(cpu_node, bind_set));
    case NM_POL_INTERLEAVE:
        if (nm_topo.nmem > 1) return nm_dom_interleave;
        __attribute__((fallthrough));     /* one node: interleaving is the same as local */
    default:
        return (uint32_t)(nm_topo_has_memory(cpu_node) ? cpu_node : nearest(cpu_node, NULL));
    }
}

bool nm_policy_bind(uint32_t d, void *p, size_t len)
{
    nm_domain_t *dm = &nm_domains[d];
    if (!dm->bind) return true;
    bool ok;
    if (d == nm_dom_interleave)
        ok = nm_os_mbind(p, len, MPOL_INTERLEAVE, interleave_mask, (unsigned long)nm_topo.max_node + 1);
    else
        ok = nm_os_mbind_node(p, len, dm->mpol_mode, dm->node);
    if (!ok) nm_fallback_count(NM_FB_MBIND, nm_os_last_errno[NM_OS_MBIND]);
    return ok;
}

int nm_domain_node(uint32_t d) { return d >= nm_dom_interleave ? -1 : (int)d; }
