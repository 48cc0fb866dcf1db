/* tests/numa/placement.c — where numamalloc's memory really lands, page by page.
 *
 * Run under LD_PRELOAD=libnumamalloc.so, inside the multi-node QEMU VM
 * (tests/numa/vm-run.sh) and once on the one-node host (tests/numa/vm-test.sh).
 * Each scenario allocates small (16 B..32 KiB, slabs), medium (64..512 KiB, the
 * mimalloc arena) and large (2..8 MiB, own mappings) blocks from threads pinned to
 * a node, touches them, and asks the kernel (move_pages status mode, checked
 * against get_mempolicy) where every touched page is; numamalloc_node_of must
 * name the same node. Scenarios (argv[1]):
 *   local                  each node's thread gets >= 99.9% of its pages on its node
 *   xnode                  blocks of node A freed by a thread on node B go home:
 *                          A allocates again on A, B's new blocks are on B and are
 *                          none of the blocks it freed
 *   migrate                a thread moved to another node (sched_setaffinity) after
 *                          it started allocating gets its next large blocks there
 *   policy bind|preferred N   (NUMAMALLOC_POLICY=bind:N / preferred:N) every page on N
 *   policy interleave [strict]   (NUMAMALLOC_POLICY=interleave) a 16 MiB block of
 *                          each thread spreads evenly over the nodes with memory;
 *                          strict (run with THP off): every size range does too
 *   api                    numamalloc_alloc_onnode / _alloc_interleaved
 * Prints a RESULT line with the measured percentages for every size range. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "numa/numa_common.h"

#define MIN_PCT 99.9
#define SPREAD_TOL 0.25

enum range { SMALL, MEDIUM, LARGE, NRANGES };
static const char *range_name[NRANGES] = { "small 16B-32KiB", "medium 64-512KiB", "large 2-8MiB" };

typedef struct blocks {
    void **p;
    size_t *len;
    size_t n, cap;
} blocks_t;

static void blocks_push(blocks_t *b, void *p, size_t len)
{
    if (b->n == b->cap) {
        b->cap = b->cap ? b->cap * 2 : 64;
        b->p = realloc(b->p, b->cap * sizeof *b->p);
        b->len = realloc(b->len, b->cap * sizeof *b->len);
        if (!b->p || !b->len) { nt_say("FAIL out of memory"); exit(2); }
    }
    b->p[b->n] = p;
    b->len[b->n++] = len;
}

static void blocks_free_all(blocks_t *b)
{
    for (size_t i = 0; i < b->n; i++) free(b->p[i]);
    b->n = 0;
}

static void blocks_release(blocks_t *b)
{
    free(b->p);
    free(b->len);
    memset(b, 0, sizeof *b);
}

/* allocate and touch one range's set of sizes; NULL is a failure */
static void alloc_range(enum range r, blocks_t *out)
{
    const size_t *sizes = r == SMALL ? nt_small_sizes : r == MEDIUM ? nt_medium_sizes : nt_large_sizes;
    size_t n = r == SMALL ? nt_n_small : r == MEDIUM ? nt_n_medium : nt_n_large;
    for (size_t i = 0; i < n; i++) {
        /* enough small blocks of each size to fill several slab pages */
        size_t count = r == SMALL ? (128 * 1024 / sizes[i] < 4 ? 4 : 128 * 1024 / sizes[i]) : r == MEDIUM ? 2 : 1;
        for (size_t k = 0; k < count; k++) {
            void *p = malloc(sizes[i]);
            if (p == NULL) { nt_check(false, "malloc(%zu) returned NULL", sizes[i]); continue; }
            nt_touch(p, sizes[i]);
            blocks_push(out, p, sizes[i]);
        }
    }
}

static void tally_blocks(const blocks_t *b, nt_tally_t *t)
{
    nt_pages_t s = { 0 };
    for (size_t i = 0; i < b->n; i++) nt_pages_add(&s, b->p[i], b->len[i]);
    nt_tally(&s, t);
    nt_pages_free(&s);
}

/* numamalloc_node_of(block) against move_pages of the block's first page;
 * want_interleaved: the library must say -1 (no single node) */
static void check_node_of(const char *label, const blocks_t *b, bool want_interleaved)
{
    size_t bad = 0, n = 0;
    int first_bad_api = 0, first_bad_page = 0;
    for (size_t i = 0; i < b->n; i++) {
        int api = nt_api.node_of(b->p[i]);
        int page = nt_page_node(b->p[i]);
        bool ok = want_interleaved ? api == -1 : api == page;
        n++;
        if (!ok && bad++ == 0) { first_bad_api = api; first_bad_page = page; }
    }
    if (bad)
        nt_check(false, "%s: numamalloc_node_of %s for %zu of %zu blocks (first: node_of=%d, move_pages=%d)", label,
                 want_interleaved ? "is not -1 (interleaved)" : "disagrees with move_pages", bad, n, first_bad_api,
                 first_bad_page);
    else
        nt_check(true, "%s: numamalloc_node_of %s for all %zu blocks", label,
                 want_interleaved ? "is -1 (interleaved)" : "agrees with move_pages", n);
}

/* allocate all three ranges (large first if asked), expect them on `node` (the
 * ranges in assert_mask; the others are measured and printed only), optionally
 * keep them */
#define ALL_RANGES ((1 << SMALL) | (1 << MEDIUM) | (1 << LARGE))
static void alloc_and_expect_ex(const char *scenario, int node, blocks_t keep[NRANGES], unsigned assert_mask,
                                bool large_first)
{
    for (int i = 0; i < NRANGES; i++) {
        int r = large_first ? NRANGES - 1 - i : i;
        blocks_t b = { 0 };
        nt_tally_t t;
        char label[160];
        alloc_range((enum range)r, &b);
        tally_blocks(&b, &t);
        snprintf(label, sizeof label, "%s thread-node %d %s", scenario, nt_current_node(), range_name[r]);
        if (assert_mask & (1u << r)) {
            nt_expect_node(label, &t, node, MIN_PCT);
            check_node_of(label, &b, false);
        } else {
            nt_report_node(label, &t, node, "measured, not asserted");
        }
        if (keep) {
            for (size_t k = 0; k < b.n; k++) blocks_push(&keep[r], b.p[k], b.len[k]);
            blocks_release(&b);
        } else {
            blocks_free_all(&b);
            blocks_release(&b);
        }
    }
}

static void alloc_and_expect(const char *scenario, int node, blocks_t keep[NRANGES])
{
    alloc_and_expect_ex(scenario, node, keep, ALL_RANGES, false);
}

static int cpu_nodes(int *out)
{
    int k = 0;
    for (int n = 0; n <= nt_topo.max_node; n++)
        if (nt_topo.ncpus[n] > 0 && nt_topo.has_memory[n]) out[k++] = n;
    return k;
}

/* ---- local ------------------------------------------------------------------------- */

typedef struct local_arg {
    int node;
    blocks_t left[NRANGES];          /* half of the blocks outlive the thread */
} local_arg_t;

static void *local_worker(void *v)
{
    local_arg_t *a = v;
    blocks_t mine[NRANGES] = { 0 };
    alloc_and_expect("local", a->node, mine);
    /* free every other block here; the rest is freed by main after this thread has
     * exited, as a producer thread's results would be */
    for (int r = 0; r < NRANGES; r++) {
        for (size_t i = 0; i < mine[r].n; i++) {
            if (i % 2) free(mine[r].p[i]);
            else blocks_push(&a->left[r], mine[r].p[i], mine[r].len[i]);
        }
        blocks_release(&mine[r]);
    }
    return NULL;
}

static void scenario_local(void)
{
    int nodes[NT_MAX_NODES], k = cpu_nodes(nodes);
    local_arg_t args[NT_MAX_NODES];
    memset(args, 0, sizeof args);
    /* one after the other: a later node's thread starts when the earlier ones have
     * exited and left live blocks behind */
    for (int i = 0; i < k; i++) {
        args[i].node = nodes[i];
        nt_run_on_node(nodes[i], local_worker, &args[i]);
    }
    for (int i = 0; i < k; i++)
        for (int r = 0; r < NRANGES; r++) { blocks_free_all(&args[i].left[r]); blocks_release(&args[i].left[r]); }
}

/* ---- xnode: origin-aware free ------------------------------------------------------------ */

typedef struct xnode {
    int a, b;
    pthread_barrier_t bar;
    blocks_t from_a[NRANGES];        /* allocated on A, freed by B */
} xnode_t;

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(void *const *)a, y = (uintptr_t)*(void *const *)b;
    return x < y ? -1 : x > y;
}

/* how many of `fresh` are among `old` (tens of thousands each: sort, then search) */
static size_t count_reused(const blocks_t *old, const blocks_t *fresh)
{
    void **sorted = malloc((old->n ? old->n : 1) * sizeof *sorted);
    if (sorted == NULL) { nt_say("FAIL out of memory"); exit(2); }
    memcpy(sorted, old->p, old->n * sizeof *sorted);
    qsort(sorted, old->n, sizeof *sorted, cmp_ptr);
    size_t reused = 0;
    for (size_t i = 0; i < fresh->n; i++)
        reused += bsearch(&fresh->p[i], sorted, old->n, sizeof *sorted, cmp_ptr) != NULL;
    free(sorted);
    return reused;
}

static void *xnode_a(void *v)
{
    xnode_t *x = v;
    char scen[64];
    snprintf(scen, sizeof scen, "xnode %d->%d before", x->a, x->b);
    alloc_and_expect(scen, x->a, x->from_a);
    pthread_barrier_wait(&x->bar);      /* 1: A's blocks are ready */
    pthread_barrier_wait(&x->bar);      /* 2: B has freed them */
    snprintf(scen, sizeof scen, "xnode %d->%d A-again", x->a, x->b);
    alloc_and_expect(scen, x->a, NULL);
    pthread_barrier_wait(&x->bar);      /* 3 */
    return NULL;
}

static void *xnode_b(void *v)
{
    xnode_t *x = v;
    /* B starts allocating before the frees, so its cache is live when they come */
    void *warm = malloc(64);
    pthread_barrier_wait(&x->bar);      /* 1 */
    size_t freed = 0;
    for (int r = 0; r < NRANGES; r++)
        for (size_t i = 0; i < x->from_a[r].n; i++) { free(x->from_a[r].p[i]); freed++; }
    nt_say("INFO xnode %d->%d: thread on node %d freed %zu blocks of node %d", x->a, x->b, nt_current_node(), freed, x->a);
    pthread_barrier_wait(&x->bar);      /* 2 */
    char scen[64];
    snprintf(scen, sizeof scen, "xnode %d->%d B-after-free", x->a, x->b);
    blocks_t mine[NRANGES] = { 0 };
    alloc_and_expect(scen, x->b, mine);
    size_t reused = count_reused(&x->from_a[SMALL], &mine[SMALL]);
    nt_check(reused == 0, "%s: %zu of %zu new small blocks of B are blocks of A it freed (want 0)", scen, reused,
             mine[SMALL].n);
    for (int r = 0; r < NRANGES; r++) { blocks_free_all(&mine[r]); blocks_release(&mine[r]); }
    free(warm);
    pthread_barrier_wait(&x->bar);      /* 3 */
    return NULL;
}

typedef struct pinned { int node; void *(*fn)(void *); void *arg; } pinned_t;

static void *pinned_thread(void *v)
{
    pinned_t *p = v;
    if (!nt_pin_to_node(p->node)) {
        /* keep the barrier count right so the partner does not hang */
        xnode_t *x = p->arg;
        for (int i = 0; i < 3; i++) pthread_barrier_wait(&x->bar);
        return NULL;
    }
    return p->fn(p->arg);
}

static void scenario_xnode(void)
{
    int nodes[NT_MAX_NODES], k = cpu_nodes(nodes);
    if (k < 2) { nt_say("INFO xnode: needs two nodes with CPUs, have %d: nothing to check", k); return; }
    /* 2 nodes: both directions; more: around the ring */
    int pairs = k == 2 ? 2 : k;
    for (int i = 0; i < pairs; i++) {
        xnode_t x;
        memset(&x, 0, sizeof x);
        x.a = nodes[i % k];
        x.b = nodes[(i + 1) % k];
        pthread_barrier_init(&x.bar, NULL, 2);
        pthread_t ta, tb;
        pinned_t pa = { x.a, xnode_a, &x }, pb = { x.b, xnode_b, &x };
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setaffinity_np(&at, sizeof nt_topo.cpus[x.a], &nt_topo.cpus[x.a]);
        pthread_create(&ta, &at, pinned_thread, &pa);
        pthread_attr_setaffinity_np(&at, sizeof nt_topo.cpus[x.b], &nt_topo.cpus[x.b]);
        pthread_create(&tb, &at, pinned_thread, &pb);
        pthread_attr_destroy(&at);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        pthread_barrier_destroy(&x.bar);
        for (int r = 0; r < NRANGES; r++) blocks_release(&x.from_a[r]);
    }
}

/* ---- migrate ------------------------------------------------------------------------------- */

static void *migrate_worker(void *v)
{
    int *to = v;
    /* start on our first node and warm every path up */
    blocks_t first[NRANGES] = { 0 };
    for (int r = 0; r < NRANGES; r++) alloc_range((enum range)r, &first[r]);
    int from = nt_current_node();
    if (!nt_pin_to_node(*to)) return NULL;
    char scen[64];
    snprintf(scen, sizeof scen, "migrate %d->%d", from, *to);
    /* Large blocks first: each is a mapping of its own, bound to the thread's
     * domain, so they must follow the thread at once. Small blocks may come from
     * the magazine loaded on the old node (the thread notices the move at its next
     * refill) and medium ones from its mimalloc heap's current segment: both lag by
     * design, and are printed only. */
    alloc_and_expect_ex(scen, *to, NULL, 1u << LARGE, true);
    for (int r = 0; r < NRANGES; r++) { blocks_free_all(&first[r]); blocks_release(&first[r]); }
    return NULL;
}

static void scenario_migrate(void)
{
    int nodes[NT_MAX_NODES], k = cpu_nodes(nodes);
    if (k < 2) { nt_say("INFO migrate: needs two nodes with CPUs, have %d: nothing to check", k); return; }
    for (int i = 0; i < k; i++) {
        int to = nodes[(i + 1) % k];
        nt_run_on_node(nodes[i], migrate_worker, &to);
    }
}

/* ---- policies ------------------------------------------------------------------------------- */

typedef struct policy_arg {
    const char *mode;
    int node;                        /* bind/preferred target */
    pthread_mutex_t lock;
    nt_tally_t spread[NRANGES];      /* interleave: summed over threads */
} policy_arg_t;

static uint64_t mem_nodes_mask(void)
{
    uint64_t m = 0;
    for (int n = 0; n <= nt_topo.max_node; n++) if (nt_topo.has_memory[n]) m |= 1ULL << n;
    return m;
}

/* one block spread by itself: 16 MiB is 8 transparent huge pages (the interleave
 * unit when THP backs the block) or 4096 pages */
#define SPREAD_BLOCK (16UL << 20)

/* THP off: the kernel interleaves 4 KiB pages and the split must be even */
static bool thp_never(void)
{
    char thp[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (!f) return true;
    if (!fgets(thp, sizeof thp, f)) thp[0] = 0;
    fclose(f);
    return strstr(thp, "[never]") != NULL;
}

/* the split of one interleaved block: even with 4 KiB units; with THP a node short
 * of free 2 MiB runs takes its units in small pages (seen: 15.6% instead of 25% on
 * one node of four), so there the policy and the set of nodes are what is asserted */
static void expect_interleaved_block(const char *label, const void *p, const nt_tally_t *t)
{
    if (nt_topo.nmem > 1 && !thp_never()) nt_expect_interleaved(label, p, t, mem_nodes_mask());
    else nt_expect_spread(label, t, mem_nodes_mask(), SPREAD_TOL);
}

static void expect_block_spread(const char *label, void *p, size_t size)
{
    nt_pages_t s = { 0 };
    nt_tally_t t;
    nt_touch(p, size);
    nt_pages_add(&s, p, size);
    nt_tally(&s, &t);
    nt_pages_free(&s);
    expect_interleaved_block(label, p, &t);
    /* one node with memory: interleaving degrades to local (src/policy.c) */
    int want = nt_topo.nmem > 1 ? -1 : nt_page_node(p);
    nt_check(nt_api.node_of(p) == want, "%s: numamalloc_node_of is %d (got %d)", label, want, nt_api.node_of(p));
}

static void *policy_worker(void *v)
{
    policy_arg_t *a = v;
    char scen[96];
    if (strcmp(a->mode, "interleave") != 0) {
        snprintf(scen, sizeof scen, "%s:%d", a->mode, a->node);
        alloc_and_expect(scen, a->node, NULL);
        return NULL;
    }
    for (int r = 0; r < NRANGES; r++) {
        blocks_t b = { 0 };
        nt_tally_t t;
        alloc_range((enum range)r, &b);
        tally_blocks(&b, &t);
        snprintf(scen, sizeof scen, "interleave thread-node %d %s", nt_current_node(), range_name[r]);
        /* every range lands in the interleaved domain: no single node to name
         * (with one node with memory, interleave is local) */
        check_node_of(scen, &b, nt_topo.nmem > 1);
        pthread_mutex_lock(&a->lock);
        a->spread[r].total += t.total;
        a->spread[r].missing += t.missing;
        a->spread[r].disagree += t.disagree;
        for (int n = 0; n < NT_MAX_NODES; n++) a->spread[r].on[n] += t.on[n];
        pthread_mutex_unlock(&a->lock);
        blocks_free_all(&b);
        blocks_release(&b);
    }
    void *p = malloc(SPREAD_BLOCK);
    snprintf(scen, sizeof scen, "interleave thread-node %d one %lu MiB block", nt_current_node(), SPREAD_BLOCK >> 20);
    if (nt_check(p != NULL, "%s: malloc", scen)) expect_block_spread(scen, p, SPREAD_BLOCK);
    free(p);
    return NULL;
}

/* strict: assert the spread of every range summed over the threads. That needs
 * 4 KiB interleave units (THP off): with THP the unit is 2 MiB, and a few MiB of
 * small or medium blocks touch too few units to split evenly over 4 nodes. */
static void scenario_policy(const char *mode, int node, bool strict)
{
    char want[64];
    if (strcmp(mode, "interleave") == 0) snprintf(want, sizeof want, "interleave");
    else snprintf(want, sizeof want, "%s:%d", mode, node);
    /* the policy must really be in effect, or every check below proves nothing */
    const char *eff = nt_api.option_get("POLICY");
    if (!nt_check(eff && strcmp(eff, want) == 0, "NUMAMALLOC_POLICY in effect is '%s' (want '%s')", eff ? eff : "(null)", want))
        return;
    if (strict && !nt_check(thp_never(), "strict interleave runs with THP off"))
        return;
    int nodes[NT_MAX_NODES], k = cpu_nodes(nodes);
    policy_arg_t a;
    memset(&a, 0, sizeof a);
    pthread_mutex_init(&a.lock, NULL);
    a.mode = mode;
    a.node = node;
    for (int i = 0; i < k; i++) nt_run_on_node(nodes[i], policy_worker, &a);
    if (strcmp(mode, "interleave") == 0) {
        for (int r = 0; r < NRANGES; r++) {
            char label[96];
            snprintf(label, sizeof label, "interleave%s all-threads %s", strict ? "-4k" : "", range_name[r]);
            if (strict) nt_expect_spread(label, &a.spread[r], mem_nodes_mask(), SPREAD_TOL);
            else nt_report_spread(label, &a.spread[r], mem_nodes_mask(), "measured; 2 MiB units with THP, not asserted");
        }
    }
    pthread_mutex_destroy(&a.lock);
}

/* ---- api ---------------------------------------------------------------------------------- */

static void *api_worker(void *v)
{
    (void)v;
    static const size_t sizes[NRANGES][2] = { { 100, 20000 }, { 65536, 300000 }, { 2UL << 20, 6UL << 20 } };
    int self = nt_current_node();
    for (int n = 0; n <= nt_topo.max_node; n++) {
        if (!nt_topo.has_memory[n]) {
            errno = 0;
            void *p = nt_api.alloc_onnode(4096, n);
            nt_check(p == NULL && errno == EINVAL, "numamalloc_alloc_onnode(4096, %d) on a node without memory: NULL, EINVAL", n);
            continue;
        }
        for (int r = 0; r < NRANGES; r++) {
            blocks_t b = { 0 };
            nt_tally_t t;
            char label[96];
            for (int i = 0; i < 2; i++) {
                /* several of the small ones, so they span more than one page */
                int reps = r == SMALL ? 16 : 1;
                for (int k = 0; k < reps; k++) {
                    void *p = nt_api.alloc_onnode(sizes[r][i], n);
                    if (!nt_check(p != NULL, "numamalloc_alloc_onnode(%zu, %d) != NULL", sizes[r][i], n)) continue;
                    nt_touch(p, sizes[r][i]);
                    blocks_push(&b, p, sizes[r][i]);
                }
            }
            tally_blocks(&b, &t);
            snprintf(label, sizeof label, "alloc_onnode(node %d) thread-node %d %s", n, self, range_name[r]);
            nt_expect_node(label, &t, n, MIN_PCT);
            check_node_of(label, &b, false);
            blocks_free_all(&b);
            blocks_release(&b);
        }
    }
    /* interleaved: 16 MiB is 8 huge pages or 4096 small ones (checks: expect_interleaved_block) */
    static const size_t isz[] = { 256 * 1024, 16UL << 20 };
    for (int i = 0; i < 2; i++) {
        void *p = nt_api.alloc_interleaved(isz[i]);
        if (!nt_check(p != NULL, "numamalloc_alloc_interleaved(%zu) != NULL", isz[i])) continue;
        nt_touch(p, isz[i]);
        nt_pages_t s = { 0 };
        nt_tally_t t;
        nt_pages_add(&s, p, isz[i]);
        nt_tally(&s, &t);
        nt_pages_free(&s);
        char label[96];
        snprintf(label, sizeof label, "alloc_interleaved(%zu KiB) thread-node %d", isz[i] >> 10, self);
        if (nt_topo.nmem > 1) {
            expect_interleaved_block(label, p, &t);
            nt_check(nt_api.node_of(p) == -1, "%s: numamalloc_node_of is -1 (got %d)", label, nt_api.node_of(p));
        } else {
            nt_expect_node(label, &t, 0, MIN_PCT);
        }
        free(p);
    }
    return NULL;
}

static void scenario_api(void)
{
    int nodes[NT_MAX_NODES], k = cpu_nodes(nodes);
    for (int i = 0; i < k; i++) nt_run_on_node(nodes[i], api_worker, NULL);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    nt_topo_read();
    nt_api_load();
    const char *what = argc > 1 ? argv[1] : "";
    nt_say("INFO placement %s: %d node(s) with memory, max node %d, numamalloc policy %s", what, nt_topo.nmem,
           nt_topo.max_node, nt_api.option_get("POLICY"));
    if (strcmp(what, "local") == 0) scenario_local();
    else if (strcmp(what, "xnode") == 0) scenario_xnode();
    else if (strcmp(what, "migrate") == 0) scenario_migrate();
    else if (strcmp(what, "api") == 0) scenario_api();
    else if (strcmp(what, "policy") == 0 && argc > 2 && strcmp(argv[2], "interleave") == 0)
        scenario_policy("interleave", -1, argc > 3 && strcmp(argv[3], "strict") == 0);
    else if (strcmp(what, "policy") == 0 && argc > 3)
        scenario_policy(argv[2], atoi(argv[3]), false);
    else {
        fprintf(stderr, "usage: placement local|xnode|migrate|api|policy bind|preferred N|policy interleave [strict]\n");
        return 2;
    }
    return nt_finish("placement");
}
