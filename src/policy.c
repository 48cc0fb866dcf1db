/* numamalloc — placement policy: which domain serves a thread, and how a domain's
 * fresh memory is bound (the domains are listed in include/numamalloc/policy.h).
 *
 * Each domain owns depots, segments and a large-mapping cache (nm_domain_t).
 *   local        thread's node (nearest node with memory for memory-less nodes);
 *                the node's domain, MPOL_PREFERRED: a full node spills
 *   bind:N,..    thread's node if listed, else the nearest listed: that node's strict
 *                twin (MPOL_BIND)
 *   preferred:N  node N's domain for everyone (MPOL_PREFERRED)
 *   interleave   one interleaved domain for everyone; MPOL_INTERLEAVE over the
 *                listed nodes (default: every node with memory)
 * Strict domains never spill and never leave a page to fail at first touch: when
 * a slab or a mapping is made for one, the node's free memory (nodeN/meminfo, less
 * a reserve above the kernel's watermarks) must hold it, and it is faulted in at
 * once with MADV_POPULATE_WRITE, which fails with ENOMEM instead of a fault that
 * could only end in the OOM killer. (The check and the fault are two steps: another
 * process filling the node between them can still bring the kernel's OOM handling;
 * Linux has no way to fault bound memory that fails softly on every path.)
 * Per-thread policies (numamalloc_thread_policy_set) use the same grammar and map
 * onto the same domains; an interleaved node set other than the process's gets an
 * extra domain, made on first use (NM_EXTRA_DOMAINS of them).
 * With one node with memory, nothing is ever mbind'ed: the kernel's default is
 * already right and every policy degrades to plain behaviour, with no errors.
 * Locks: nm_policy_lock guards the per-thread policy table and the setting up of
 * extra domains; nothing is taken under it, and it is never taken under another lock
 * of ours (so src/fork.c may take it before the depots). Everything else is written at start-up
 * (nm_policy_init) and read-only after; the node room estimates are relaxed atomics. */
#include <errno.h>
#include <linux/mempolicy.h>
#include <sys/mman.h>

#include "numamalloc/internal.h"

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif

uint32_t nm_ndomains;
uint32_t nm_dom_interleave;
uint32_t nm_dom_sampled;
uint32_t nm_dom_strict0;
uint32_t nm_dom_extra0;
nm_domain_t *nm_domains;
nm_depot_t *nm_depots;
NM_GLOBAL_LOCK nm_lock_t nm_policy_lock = NM_LOCK_INIT;

#define MASK_WORDS (NM_MAX_DOMAINS / (8 * sizeof(unsigned long)))
static unsigned long interleave_mask[MASK_WORDS];
static unsigned long bind_set[MASK_WORDS];
static bool multi;                              /* more than one node: bind at all */
static uint64_t *room_left, *room_at;           /* strict domains: room per node (below) */

/* extra interleaved domains (per-thread node sets), set up under nm_policy_lock */
NM_BIG_BSS static unsigned long extra_mask[NM_EXTRA_DOMAINS][MASK_WORDS];
static uint32_t extra_used;

/* per-thread policies; [0] is the process policy. Entries are written once, under
 * nm_policy_lock, before their index is handed out, and never change after. */
#define TPOL_TEXT 256
typedef struct tpol {
    int      kind;                              /* enum nm_policy_kind */
    int      node;                              /* preferred: the node */
    uint32_t dom;                               /* interleave: its domain */
    unsigned long set[MASK_WORDS];              /* bind, interleave: the nodes */
    char     text[TPOL_TEXT];                   /* canonical text */
} tpol_t;
NM_BIG_BSS static tpol_t tpols[NM_THREAD_POLICIES + 1];
static uint32_t ntpols;

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

static bool same_mask(const unsigned long *a, const unsigned long *b)
{
    for (unsigned i = 0; i < MASK_WORDS; i++) if (a[i] != b[i]) return false;
    return true;
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

/* Is a zeroed mutex an unlocked default one (PTHREAD_MUTEX_INITIALIZER all zero
 * bytes, as in glibc)? Then a domain, set up in zeroed memory, needs no write to its
 * 61 locks, and the pages of a domain no thread uses (the strict twins on one node,
 * the profiler's) stay untouched. */
static bool zero_is_unlocked(void)
{
    static const nm_lock_t init = PTHREAD_MUTEX_INITIALIZER;
    const unsigned char *b = (const unsigned char *)&init;
    for (size_t i = 0; i < sizeof init; i++)
        if (b[i]) return false;
    return true;
}

static void domain_setup(uint32_t d, int node, int mode, bool bind, bool strict)
{
    nm_domain_t *dm = &nm_domains[d];
    if (!zero_is_unlocked()) {
        for (unsigned c = 0; c < NM_NUM_CLASSES; c++) pthread_mutex_init(&nm_depot(d, c)->lock, NULL);
        pthread_mutex_init(&dm->seg_lock, NULL);
        pthread_mutex_init(&dm->large_lock, NULL);
    }
    dm->node = node;
    dm->mpol_mode = mode;
    dm->bind = bind;
    dm->strict = strict;
}

bool nm_policy_init(void)
{
    uint32_t n = (uint32_t)nm_topo.max_node + 1;
    nm_dom_interleave = n;
    nm_dom_sampled = n + 1;
    nm_dom_strict0 = n + 2;
    nm_dom_extra0 = 2 * n + 2;
    nm_ndomains = nm_dom_extra0 + NM_EXTRA_DOMAINS;
    /* zeroed; a domain's depots stay untouched until a thread uses them */
    nm_domains = nm_meta_alloc(sizeof(nm_domain_t) * nm_ndomains);
    nm_depots = nm_meta_alloc(sizeof(nm_depot_t) * NM_NUM_CLASSES * nm_ndomains);
    if (nm_domains == NULL || nm_depots == NULL) return false;

    /* validate the node list against what exists */
    int pol = nm_opt.policy;
    for (unsigned i = 0; i < nm_opt.policy_nnodes; i++) {
        int k = nm_opt.policy_nodes[i];
        if (!nm_topo_has_memory(k)) {
            char have[256];
            nm_buf_t b;
            nm_buf_init(&b, have, sizeof have, -1);
            bool first = true;
            for (int m = 0; m <= nm_topo.max_node; m++)
                if (nm_topo_has_memory(m)) { nm_buf_printf(&b, first ? "%d" : ",%d", m); first = false; }
            nm_buf_finish(&b);
            nm_warn("NUMAMALLOC_POLICY='%s' ignored: node %d does not exist or has no memory (nodes with memory: %s); using 'local'",
                    nm_opt.raw[NM_OPT_POLICY], k, have);
            pol = NM_POL_LOCAL;
            nm_opt.policy = NM_POL_LOCAL;
            nm_opt.policy_nnodes = 0;
            nm_opt.raw[NM_OPT_POLICY] = "local";
            for (unsigned w = 0; w < MASK_WORDS; w++) bind_set[w] = 0;
            break;
        }
        set_bit(bind_set, k);
    }
    /* the interleaved domain also serves numamalloc_alloc_interleaved() under any
     * policy: every node with memory, or the nodes of interleave:N,M... */
    if (pol == NM_POL_INTERLEAVE && nm_opt.policy_nnodes)
        for (unsigned i = 0; i < MASK_WORDS; i++) interleave_mask[i] = bind_set[i];
    else
        for (int k = 0; k <= nm_topo.max_node; k++) if (nm_topo_has_memory(k)) set_bit(interleave_mask, k);
    /* the process policy is per-thread policy 0: one rule picks a thread's domain */
    tpols[0].kind = pol;
    tpols[0].node = nm_opt.policy_nnodes ? nm_opt.policy_nodes[0] : -1;
    tpols[0].dom = nm_dom_interleave;
    for (unsigned w = 0; w < MASK_WORDS; w++) tpols[0].set[w] = bind_set[w];

    /* the fault-injection build may bind with one node too, to exercise mbind failures */
    multi = nm_topo.nmem > 1 || nm_fault_force_bind();
    for (uint32_t k = 0; k < n; k++) {
        domain_setup(k, (int)k, MPOL_PREFERRED, multi, false);
        domain_setup(nm_dom_strict0 + k, (int)k, MPOL_BIND, multi, nm_topo.nmem > 1);
    }
    domain_setup(nm_dom_interleave, -1, MPOL_INTERLEAVE, multi, false);
    domain_setup(nm_dom_sampled, -1, MPOL_DEFAULT, false, false);
    room_left = nm_meta_alloc(n * sizeof *room_left);
    room_at = nm_meta_alloc(n * sizeof *room_at);
    return room_left && room_at;
}

static uint32_t local_domain(int cpu_node)
{
    return (uint32_t)(nm_topo_has_memory(cpu_node) ? cpu_node : nearest(cpu_node, NULL));
}

uint32_t nm_policy_strict_domain(int node)
{
    return nm_topo.nmem > 1 ? nm_dom_strict0 + (uint32_t)node : (uint32_t)node;
}

static uint32_t domain_for(const tpol_t *t, int cpu_node)
{
    switch (t->kind) {
    case NM_POL_PREFERRED:
        return (uint32_t)t->node;
    case NM_POL_BIND:
        return nm_policy_strict_domain(in_set(t->set, cpu_node) ? cpu_node : nearest(cpu_node, t->set));
    case NM_POL_INTERLEAVE:
        if (nm_topo.nmem > 1) return t->dom;
        __attribute__((fallthrough));     /* one node: interleaving is the same as local */
    default:
        return local_domain(cpu_node);
    }
}

uint32_t nm_policy_domain_for(int cpu_node) { return domain_for(&tpols[0], cpu_node); }

uint32_t nm_policy_domain_for_thread(uint8_t tpol, int cpu_node)
{
    return domain_for(&tpols[tpol <= NM_THREAD_POLICIES ? tpol : 0], cpu_node);
}

static const unsigned long *interleave_set_of(uint32_t d)
{
    if (d == nm_dom_interleave) return interleave_mask;
    if (d >= nm_dom_extra0 && d < nm_dom_extra0 + NM_EXTRA_DOMAINS) return extra_mask[d - nm_dom_extra0];
    return NULL;
}

bool nm_policy_bind(uint32_t d, void *p, size_t len)
{
    nm_domain_t *dm = &nm_domains[d];
    if (!dm->bind) return true;
    bool ok;
    const unsigned long *set = interleave_set_of(d);
    if (set)
        ok = nm_os_mbind(p, len, MPOL_INTERLEAVE, set, (unsigned long)nm_topo.max_node + 1);
    else
        ok = nm_os_mbind_node(p, len, dm->mpol_mode, dm->node);
    if (!ok) nm_fallback_count(NM_FB_MBIND, nm_os_last_errno[NM_OS_MBIND]);
    return ok;
}

int nm_domain_node(uint32_t d) { return d < nm_ndomains ? nm_domains[d].node : -1; }

bool nm_domain_is_remote(uint32_t d, int cpu_node)
{
    return nm_node_is_remote(nm_domain_node(d), cpu_node);
}

bool nm_domain_used(uint32_t d)
{
    return d < nm_domains_set_up();
}

uint32_t nm_domains_set_up(void)
{
    return nm_dom_extra0 + nm_load_acquire(&extra_used);
}

uint64_t nm_dom_locks_used[NM_MAX_DOMAINS / 64];

void nm_domain_locks_use(uint32_t d)
{
    nm_lock(&nm_policy_lock);
    __atomic_fetch_or(&nm_dom_locks_used[d / 64], (uint64_t)1 << (d % 64), __ATOMIC_RELAXED);
    nm_unlock(&nm_policy_lock);
}

bool nm_domain_spans(uint32_t d, int n)
{
    if (!nm_topo_has_memory(n)) return false;
    const unsigned long *set = interleave_set_of(d);
    if (set) return in_set(set, n);
    if (d == nm_dom_sampled) return true;
    return nm_domain_node(d) == n;
}

/* ---- strict domains: room on the node ----------------------------------------------------
 * What a node can still give: its available memory (MemFree and half the file pages)
 * less a reserve of twice its high watermark plus 4 MiB, estimated the kernel's way
 * from vm.min_free_kbytes (shared by node size) and vm.watermark_scale_factor.
 * Re-read at most every ROOM_MS; in between, what we fault in is charged to it. */
#define ROOM_MS 100
static uint64_t min_free_bytes, scale_factor;   /* read on first use (the same by every reader) */

static void room_setup(void)
{
    if (nm_load_acquire(&min_free_bytes)) return;
    uint64_t v;
    nm_store_relaxed(&scale_factor, nm_os_read_u64("/proc/sys/vm/watermark_scale_factor", &v) ? v : 10);
    nm_store_release(&min_free_bytes, nm_os_read_u64("/proc/sys/vm/min_free_kbytes", &v) && v ? v << 10 : (uint64_t)64 << 20);
}

static uint64_t reserve_of(int node)
{
    uint64_t total = nm_topo.total_mem ? nm_topo.total_mem : 1, mine = nm_topo.node[node].mem_total;
    uint64_t min = (uint64_t)((unsigned __int128)min_free_bytes * mine / total);
    uint64_t gap = NM_MAX(min / 4, mine / 10000 * scale_factor);
    return 2 * (min + 2 * gap) + ((uint64_t)4 << 20);
}

/* take len bytes of node's room; false if it does not have them */
static bool room_take(int node, size_t len)
{
    if (node < 0 || node > nm_topo.max_node) return true;
    room_setup();
    uint64_t now = nm_os_now_ms();
    uint64_t left = nm_load_relaxed(&room_left[node]);
    if (now - nm_load_relaxed(&room_at[node]) >= ROOM_MS || left < len) {
        uint64_t avail = nm_topo_node_available(node);
        if (avail == UINT64_MAX) return true;   /* unknown: the fault decides */
        uint64_t res = reserve_of(node);
        left = avail > res ? avail - res : 0;
        nm_store_relaxed(&room_left[node], left);
        nm_store_relaxed(&room_at[node], now);
    }
    while (left >= len && !nm_cas_acq_rel(&room_left[node], &left, left - len)) {}
    return left >= len;
}

bool nm_policy_populate(uint32_t d, void *p, size_t len)
{
    nm_domain_t *dm = &nm_domains[d];
    if (!dm->strict || len == 0) return true;
    int err = ENOMEM;
    if (room_take(dm->node, len)) {
        if (nm_os_advise(p, len, MADV_POPULATE_WRITE)) return true;
        err = nm_os_last_errno[NM_OS_MADVISE];
        if (err == EINVAL) return true;           /* a kernel before 5.14: the room check is all there is */
        nm_store_relaxed(&room_at[dm->node], 0);  /* the estimate was wrong: read it again next time */
    }
    nm_fallback_count(NM_FB_STRICT_NODE_FULL, err);
    errno = ENOMEM;
    return false;
}

/* ---- per-thread policies ------------------------------------------------------------------ */

/* "0-3,5" from a node list in its order: runs of consecutive ids become ranges */
static bool node_list_text(nm_buf_t *b, const uint16_t *nodes, unsigned n)
{
    for (unsigned i = 0; i < n;) {
        unsigned j = i;
        while (j + 1 < n && nodes[j + 1] == nodes[j] + 1) j++;
        if (j > i + 1) nm_buf_printf(b, "%s%u-%u", i ? "," : "", nodes[i], nodes[j]);
        else { nm_buf_printf(b, "%s%u", i ? "," : "", nodes[i]); j = i; }
        i = j + 1;
    }
    return true;
}

/* the domain interleaving over set: the process's, or an extra one (made now);
 * UINT32_MAX when none is left (policy lock held) */
static uint32_t interleave_domain_locked(const unsigned long *set)
{
    if (same_mask(set, interleave_mask)) return nm_dom_interleave;
    uint32_t used = extra_used;
    for (uint32_t i = 0; i < used; i++)
        if (same_mask(set, extra_mask[i])) return nm_dom_extra0 + i;
    if (used == NM_EXTRA_DOMAINS) return UINT32_MAX;
    for (unsigned w = 0; w < MASK_WORDS; w++) extra_mask[used][w] = set[w];
    domain_setup(nm_dom_extra0 + used, -1, MPOL_INTERLEAVE, multi, false);
    nm_store_release(&extra_used, used + 1);
    return nm_dom_extra0 + used;
}

uint8_t nm_policy_thread_parse(const char *text, bool *ok)
{
    *ok = true;
    if (text == NULL || text[0] == '\0') return 0;
    int kind;
    unsigned nn = 0;
    uint16_t nodes[NM_POLICY_MAX_NODES];
    tpol_t t = { 0 };
    if (!nm_policy_text_parse(text, &kind, nodes, &nn)) goto invalid;
    for (unsigned i = 0; i < nn; i++) {
        if (!nm_topo_has_memory(nodes[i])) goto invalid;
        set_bit(t.set, nodes[i]);
    }
    t.kind = kind;
    t.node = nn ? nodes[0] : -1;
    if (kind == NM_POL_INTERLEAVE && nn == 0)
        for (int k = 0; k <= nm_topo.max_node; k++) if (nm_topo_has_memory(k)) set_bit(t.set, k);
    nm_buf_t b;
    nm_buf_init(&b, t.text, sizeof t.text, -1);
    static const char *const names[] = { [NM_POL_LOCAL] = "local", [NM_POL_INTERLEAVE] = "interleave",
                                         [NM_POL_BIND] = "bind", [NM_POL_PREFERRED] = "preferred" };
    nm_buf_puts(&b, names[kind]);
    if (nn) { nm_buf_puts(&b, ":"); node_list_text(&b, nodes, nn); }
    if (nm_buf_finish(&b) >= sizeof t.text) goto invalid;

    nm_lock(&nm_policy_lock);
    uint8_t idx = 0;
    for (uint32_t i = 1; i <= ntpols && idx == 0; i++)
        if (nm_strcmp(tpols[i].text, t.text) == 0) idx = (uint8_t)i;
    if (idx == 0 && ntpols < NM_THREAD_POLICIES) {
        t.dom = UINT32_MAX - 1;
        if (kind == NM_POL_INTERLEAVE && nm_topo.nmem > 1) t.dom = interleave_domain_locked(t.set);
        if (t.dom != UINT32_MAX) {
            idx = (uint8_t)(ntpols + 1);
            tpols[idx] = t;
            nm_store_release(&ntpols, (uint32_t)idx);
        }
    }
    nm_unlock(&nm_policy_lock);
    if (idx == 0) { *ok = false; errno = ENOSPC; }
    return idx;
invalid:
    *ok = false;
    errno = EINVAL;
    return 0;
}

const char *nm_policy_thread_text(uint8_t tpol)
{
    if (tpol == 0 || tpol > nm_load_acquire(&ntpols)) return nm_opt.raw[NM_OPT_POLICY];
    return tpols[tpol].text;
}
