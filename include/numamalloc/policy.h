/* numamalloc — placement policy (src/policy.c): the domains and which one serves a
 * thread. A domain is a NUMA node id (0 .. max_node), the interleaved pseudo-domain
 * (max_node + 1) or the profiler's pseudo-domain (max_node + 2). */
#ifndef NM_POLICY_H
#define NM_POLICY_H

#include "numamalloc/base.h"

extern uint32_t nm_ndomains;          /* max_node + 3 */
extern uint32_t nm_dom_interleave;    /* index of the interleaved pseudo-domain */
extern uint32_t nm_dom_sampled;       /* index of the profiler's pseudo-domain */
extern struct nm_domain *nm_domains;

bool nm_policy_init(void);            /* validates NUMAMALLOC_POLICY against the topology */
uint32_t nm_policy_domain_for(int cpu_node);
/* bind fresh memory [p, p+len) to domain d before first touch; counts failures */
bool nm_policy_bind(uint32_t d, void *p, size_t len);
/* node id a domain stands for, or -1 for the pseudo-domains */
int  nm_domain_node(uint32_t d);

#endif
