/* tests/numa/truth.c — what the statistics dump says about placement, against what
 * the kernel says (move_pages over every page of the program's own ranges), and the
 * placement controls of the API. Run under LD_PRELOAD=libnumamalloc.so inside the
 * multi-node QEMU VMs (tests/numa/vm-run.sh) and once on the one-node host.
 * Scenarios (argv[1]):
 *   residency   threads on every node with CPUs hold small, medium, live large and
 *               freed (cached) large blocks, plus strict and spill blocks on another
 *               node; per range kind (slab, large_live, large_cached) and node, the
 *               dump's resident and misplaced bytes agree with move_pages over all
 *               the program's ranges within 1 % of the kind's total
 *               (NUMAMALLOC_DECAY_MS must keep freed mappings: vm-run.sh sets it)
 *   migrate     a large block (preferred domain), a strict large block and a medium
 *               block moved to another node with move_pages(MPOL_MF_MOVE) show up as
 *               misplaced (and as foreign on the other node) in the next dump;
 *               numamalloc_resident_node follows the pages, numamalloc_node_of not
 *   strict      a hog process bound to the last node leaves it about 24 MiB free;
 *               there, strict numamalloc_alloc_onnode of 64 MiB is NULL/ENOMEM, the
 *               spill form succeeds (partly elsewhere, which the dump shows as
 *               spilled), strict 32 KiB blocks succeed until the node's room is
 *               used up and then give NULL/ENOMEM, every page of them on the node
 *   threadpol   per-thread policies on small, medium and large blocks: bind,
 *               preferred, interleave over all nodes and over a subset, local; a
 *               thread without one keeps NUMAMALLOC_POLICY; reset with NULL; get
 *               round trip; EINVAL leaves the policy alone; ENOSPC when the process
 *               asks for too many distinct policies or interleaved node sets
 *   prof        (NUMAMALLOC_PROF=1) blocks allocated by planted_remote_site on one
 *               node and freed on another make it the first site by remote frees;
 *               with THP off and NUMAMALLOC_HUGEPAGES=hugetlb+thp (no hugetlb pool,
 *               no THP: both fall back), planted_huge_site's large blocks make it
 *               the first by huge-page fallbacks
 * On one node every scenario that needs two says so and checks what it can. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <malloc.h>

#include "numa/numa_common.h"

#define MIN_PCT 99.9
#define SEGMENT (4UL << 20)           /* numamalloc's slab segments (config.h) */
#define MPOL_PREFERRED_ 1
#define MPOL_BIND_ 2
#define MPOL_INTERLEAVE_ 3
#define MPOL_MF_MOVE_ (1 << 1)

enum { K_SLAB, K_LIVE, K_CACHED, NKINDS };
static const char *const kind_name[NKINDS] = { "slab", "large_live", "large_cached" };

/* bookkeeping lives in mappings of its own: none of it may be a block we measure */
static void *scratch(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { nt_say("FAIL mmap scratch"); exit(2); }
    return p;
}

static int mem_nodes(int *out)
{
    int k = 0;
    for (int n = 0; n <= nt_topo.max_node; n++) if (nt_topo.has_memory[n]) out[k++] = n;
    return k;
}

static int cpu_nodes(int *out)
{
    int k = 0;
    for (int n = 0; n <= nt_topo.max_node; n++) if (nt_topo.ncpus[n] > 0 && nt_topo.has_memory[n]) out[k++] = n;
    return k;
}

/* ---- the program's own ranges and what the kernel says about them ------------------- */

typedef struct range { uintptr_t start; size_t len; int kind, want; } range_t;
#define MAX_RANGES 65536
static range_t *ranges;
static size_t nranges;
static pthread_mutex_t ranges_lock = PTHREAD_MUTEX_INITIALIZER;

static void add_range(int kind, const void *p, size_t len, int want)
{
    pthread_mutex_lock(&ranges_lock);
    if (kind == K_SLAB) {
        /* a slab block stands for its whole segment, as the dump measures segments */
        uintptr_t base = (uintptr_t)p & ~(SEGMENT - 1);
        for (size_t i = 0; i < nranges; i++)
            if (ranges[i].kind == K_SLAB && ranges[i].start == base) { pthread_mutex_unlock(&ranges_lock); return; }
        p = (const void *)base;
        len = SEGMENT;
    }
    if (nranges < MAX_RANGES) ranges[nranges++] = (range_t){ (uintptr_t)p, len, kind, want };
    pthread_mutex_unlock(&ranges_lock);
}

/* a block the program holds: slab or large by what the library says */
static void add_block(const void *p, size_t len)
{
    struct numamalloc_block_info bi;
    if (nt_api.block_info(p, &bi) != 0) { nt_check(false, "block_info(%p)", p); return; }
    int want = nt_api.node_of(p);
    if (bi.kind == NUMAMALLOC_KIND_SLAB) add_range(K_SLAB, p, len, want);
    else add_range(K_LIVE, p, malloc_usable_size((void *)p), want);
}

typedef struct truth {
    uint64_t resident[NKINDS][NT_MAX_NODES];
    uint64_t misplaced[NKINDS][NT_MAX_NODES];
    uint64_t total[NKINDS];
} truth_t;

static void query(truth_t *t, void **pg, int *st, const int *want, const int *kind, size_t n)
{
    if (syscall(SYS_move_pages, 0, (unsigned long)n, pg, NULL, st, 0) != 0)
        for (size_t i = 0; i < n; i++) st[i] = -errno;
    for (size_t i = 0; i < n; i++) {
        if (st[i] < 0 || st[i] >= NT_MAX_NODES) continue;
        t->resident[kind[i]][st[i]] += NT_PAGE;
        t->total[kind[i]] += NT_PAGE;
        if (want[i] >= 0 && want[i] != st[i]) t->misplaced[kind[i]][want[i]] += NT_PAGE;
    }
}

/* move_pages over every page of every range (one thread at a time) */
static void measure(truth_t *t)
{
    enum { B = 4096 };
    static void *pg[B];
    static int st[B], want[B], kind[B];
    memset(t, 0, sizeof *t);
    size_t n = 0;
    for (size_t r = 0; r < nranges; r++)
        for (uintptr_t a = ranges[r].start; a < ranges[r].start + ranges[r].len; a += NT_PAGE) {
            pg[n] = (void *)a;
            want[n] = ranges[r].want;
            kind[n] = ranges[r].kind;
            if (++n == B) { query(t, pg, st, want, kind, n); n = 0; }
        }
    if (n) query(t, pg, st, want, kind, n);
}

/* the dump's residency row for (kind, node) */
typedef struct row { bool found; uint64_t resident, misplaced, spilled, foreign, placed; } row_t;

static row_t dump_row(const char *json, const char *kind, int node)
{
    row_t r = { 0 };
    const char *res = nt_json_get(json, "residency", NULL);
    const char *rows = res ? nt_json_get(res, "nodes", NULL) : NULL;
    char want[16];
    snprintf(want, sizeof want, "%d", node);
    for (int i = 0; rows; i++) {
        const char *o = nt_json_elem(rows, i);
        if (o == NULL) break;
        char k[32], n[16];
        if (!nt_json_str(o, "kind", k, sizeof k) || !nt_json_str(o, "node", n, sizeof n)) continue;
        if (strcmp(k, kind) != 0 || strcmp(n, want) != 0) continue;
        r.found = nt_json_u64(o, "resident_bytes", &r.resident) && nt_json_u64(o, "misplaced_bytes", &r.misplaced) &&
                  nt_json_u64(o, "spilled_bytes", &r.spilled) && nt_json_u64(o, "foreign_bytes", &r.foreign) &&
                  nt_json_u64(o, "placed_bytes", &r.placed);
        break;
    }
    return r;
}

static bool dump_measured(const char *json)
{
    const char *res = nt_json_get(json, "residency", NULL);
    const char *m = res ? nt_json_get(res, "measured", NULL) : NULL;
    return m && strncmp(m, "true", 4) == 0;
}

static double mib(uint64_t b) { return (double)b / (1 << 20); }

static uint64_t absdiff(uint64_t a, uint64_t b) { return a > b ? a - b : b - a; }

/* every (kind, node) of the kinds in mask: resident and misplaced within 1 % of the
 * kind's total */
static void compare(const char *label, const truth_t *t, const char *json, unsigned mask)
{
    int nodes[NT_MAX_NODES], k = mem_nodes(nodes);
    for (int kind = 0; kind < NKINDS; kind++) {
        if (!((mask >> kind) & 1)) continue;
        uint64_t tol = t->total[kind] / 100;
        if (tol < 4 * NT_PAGE) tol = 4 * NT_PAGE;
        for (int i = 0; i < k; i++) {
            int n = nodes[i];
            row_t r = dump_row(json, kind_name[kind], n);
            if (!nt_check(r.found, "%s: the dump has a residency row for %s on node %d", label, kind_name[kind], n)) continue;
            nt_say("RESULT %s %s node %d: dump resident %.2f MiB misplaced %.2f MiB; move_pages resident %.2f MiB misplaced %.2f MiB (kind total %.2f MiB)",
                   label, kind_name[kind], n, mib(r.resident), mib(r.misplaced), mib(t->resident[kind][n]),
                   mib(t->misplaced[kind][n]), mib(t->total[kind]));
            nt_check(absdiff(r.resident, t->resident[kind][n]) <= tol,
                     "%s: %s resident on node %d agrees with move_pages within 1%% of %.2f MiB (off by %.3f MiB)", label,
                     kind_name[kind], n, mib(t->total[kind]), mib(absdiff(r.resident, t->resident[kind][n])));
            nt_check(absdiff(r.misplaced, t->misplaced[kind][n]) <= tol,
                     "%s: %s misplaced for node %d agrees with move_pages within 1%% (off by %.3f MiB)", label,
                     kind_name[kind], n, mib(absdiff(r.misplaced, t->misplaced[kind][n])));
        }
    }
}

static void touch_all(void *p, size_t len)
{
    char *c = p;
    for (size_t off = 0; off < len; off += NT_PAGE) c[off] = 0x5a;
    c[len - 1] = 0x5a;
}

/* ---- residency -------------------------------------------------------------------------- */

typedef struct worker {
    int node, other;
    pthread_barrier_t *bar;
    void **keep;
    size_t nkeep;
} worker_t;

static void keep(worker_t *w, void *p) { w->keep[w->nkeep++] = p; }

static void *residency_worker(void *v)
{
    worker_t *w = v;
    static const size_t small[] = { 16, 100, 1000, 4000, 20000 };
    for (size_t i = 0; i < sizeof small / sizeof small[0]; i++)
        for (size_t k = 0; k < (256UL << 10) / small[i]; k++) {
            void *p = malloc(small[i]);
            memset(p, 1, small[i]);
            add_block(p, small[i]);
            keep(w, p);
        }
    static const size_t medium[] = { 100000, 100000, 100000, 100000, 300000, 300000 };
    for (size_t i = 0; i < sizeof medium / sizeof medium[0]; i++) {
        void *p = malloc(medium[i]);
        touch_all(p, medium[i]);
        add_block(p, medium[i]);
        keep(w, p);
    }
    static const size_t large[] = { 2UL << 20, 3UL << 20 };
    for (size_t i = 0; i < 2; i++) {
        void *p = malloc(large[i]);
        touch_all(p, large[i]);
        add_block(p, large[i]);
        keep(w, p);
    }
    /* freed large blocks: the thread keeps two, its node's cache the rest */
    void *fr[4];
    for (int i = 0; i < 4; i++) {
        fr[i] = malloc(2UL << 20);
        touch_all(fr[i], 2UL << 20);
        add_range(K_CACHED, fr[i], malloc_usable_size(fr[i]), nt_api.node_of(fr[i]));
    }
    for (int i = 0; i < 4; i++) free(fr[i]);
    /* strict blocks on another node, and spill-allowed ones */
    if (w->other >= 0) {
        for (int i = 0; i < 64; i++) {
            void *p = nt_api.alloc_onnode(100, w->other);
            if (!nt_check(p != NULL, "alloc_onnode(100, %d)", w->other)) break;
            memset(p, 2, 100);
            add_block(p, 100);
            keep(w, p);
        }
        void *p = nt_api.alloc_onnode(4UL << 20, w->other);
        if (nt_check(p != NULL, "alloc_onnode(4 MiB, %d)", w->other)) { touch_all(p, 4UL << 20); add_block(p, 4UL << 20); keep(w, p); }
        for (int i = 0; i < 4; i++) {
            p = nt_api.alloc_onnode_flags(50000, w->other, NUMAMALLOC_ONNODE_SPILL);
            if (!nt_check(p != NULL, "alloc_onnode_flags(50000, %d, SPILL)", w->other)) break;
            touch_all(p, 50000);
            add_block(p, 50000);
            keep(w, p);
        }
    }
    pthread_barrier_wait(w->bar);       /* 1: everything in place */
    pthread_barrier_wait(w->bar);       /* 2: measured */
    for (size_t i = 0; i < w->nkeep; i++) free(w->keep[i]);
    return NULL;
}

static void *pinned_worker(void *v)
{
    worker_t *w = v;
    if (!nt_pin_to_node(w->node)) { pthread_barrier_wait(w->bar); pthread_barrier_wait(w->bar); return NULL; }
    return residency_worker(v);
}

static void scenario_residency(void)
{
    int cn[NT_MAX_NODES], k = cpu_nodes(cn), mn[NT_MAX_NODES], m = mem_nodes(mn);
    ranges = scratch(MAX_RANGES * sizeof *ranges);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)k + 1);
    worker_t w[NT_MAX_NODES];
    pthread_t t[NT_MAX_NODES];
    for (int i = 0; i < k; i++) {
        int other = -1;
        for (int j = 0; j < m; j++) if (mn[j] == cn[i]) other = m > 1 ? mn[(j + 1) % m] : -1;
        w[i] = (worker_t){ .node = cn[i], .other = other, .bar = &bar, .keep = scratch(1UL << 20) };
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setaffinity_np(&at, sizeof nt_topo.cpus[cn[i]], &nt_topo.cpus[cn[i]]);
        pthread_create(&t[i], &at, pinned_worker, &w[i]);
        pthread_attr_destroy(&at);
    }
    pthread_barrier_wait(&bar);
    /* the main thread's own slab blocks (stdio's buffer, ...) share its domain's segments */
    void *probe = malloc(16);
    add_block(probe, 16);
    truth_t before, after;
    measure(&before);
    char *json = nt_stats_json();
    measure(&after);
    nt_check(memcmp(&before, &after, sizeof before) == 0, "residency: nothing moved while the dump was taken");
    if (nt_topo.nmem < 2) {
        const char *res = nt_json_get(json, "residency", NULL);
        char why[96] = "";
        nt_check(res && !dump_measured(json) && nt_json_str(res, "why", why, sizeof why) && strstr(why, "one node"),
                 "residency on one node: not measured, because '%s'", why);
    } else {
        nt_check(dump_measured(json), "residency: measured");
        compare("residency", &before, json, 7);
        uint64_t mis = 0;
        const char *sum = nt_json_get(json, "summary", NULL);
        nt_check(sum && nt_json_u64(sum, "misplaced_bytes", &mis) && mis <= (before.total[0] + before.total[1] + before.total[2]) / 100,
                 "residency: summary.misplaced_bytes %.2f MiB is about 0 (nothing was moved)", mib(mis));
    }
    nt_stats_json_free(json);
    free(probe);
    pthread_barrier_wait(&bar);
    for (int i = 0; i < k; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&bar);
}

/* ---- migrate ------------------------------------------------------------------------------- */

static size_t move_all(void *p, size_t len, int node)
{
    size_t n = (len + NT_PAGE - 1) / NT_PAGE, moved = 0;
    void **pg = scratch(n * sizeof *pg);
    int *nodes = scratch(n * sizeof *nodes), *st = scratch(n * sizeof *st);
    for (size_t i = 0; i < n; i++) { pg[i] = (char *)p + i * NT_PAGE; nodes[i] = node; }
    for (int tries = 0; tries < 5; tries++) {
        if (syscall(SYS_move_pages, 0, (unsigned long)n, pg, nodes, st, MPOL_MF_MOVE_) < 0) nt_say("INFO move_pages: %s", strerror(errno));
        moved = 0;
        for (size_t i = 0; i < n; i++) moved += st[i] == node;
        if (moved == n) break;
    }
    munmap(pg, n * sizeof *pg);
    munmap(nodes, n * sizeof *nodes);
    munmap(st, n * sizeof *st);
    return moved;
}

static void *migrate_thread(void *v)
{
    int *to = v;
    int from = nt_current_node();
    char label[64];
    snprintf(label, sizeof label, "migrate %d->%d", from, *to);
    ranges = scratch(MAX_RANGES * sizeof *ranges);
    nranges = 0;
    size_t lsz = 8UL << 20, ssz = 4UL << 20, msz = 256UL << 10;
    char *L = malloc(lsz), *S = nt_api.alloc_onnode(ssz, from), *M = malloc(msz);
    if (!nt_check(L && S && M, "%s: blocks", label)) return NULL;
    touch_all(L, lsz);
    touch_all(S, ssz);
    touch_all(M, msz);
    add_block(L, lsz);
    add_block(S, ssz);
    add_block(M, msz);
    truth_t t;
    measure(&t);
    char *json = nt_stats_json();
    row_t r = dump_row(json, "large_live", from);
    nt_check(r.found && r.misplaced <= t.total[K_LIVE] / 100, "%s before: large_live misplaced for node %d is %.2f MiB (want about 0)",
             label, from, mib(r.misplaced));
    nt_stats_json_free(json);

    size_t nl = move_all(L, lsz, *to), ns = move_all(S, ssz, *to), nm = move_all(M, msz, *to);
    nt_check(nl == lsz / NT_PAGE && ns == ssz / NT_PAGE && nm == msz / NT_PAGE,
             "%s: move_pages(MPOL_MF_MOVE) moved %zu+%zu+%zu of %zu pages", label, nl, ns, nm, (lsz + ssz + msz) / NT_PAGE);
    measure(&t);
    json = nt_stats_json();
    compare(label, &t, json, 1u << K_LIVE);      /* (the slab segments of this process are not all known here) */
    row_t a = dump_row(json, "large_live", from), b = dump_row(json, "large_live", *to);
    uint64_t tol = t.total[K_LIVE] / 100;
    nt_check(a.found && absdiff(a.misplaced, lsz + ssz) <= tol, "%s: large_live misplaced for node %d is %.2f MiB (want %.2f)", label,
             from, mib(a.misplaced), mib(lsz + ssz));
    nt_check(a.found && absdiff(a.spilled, lsz) <= tol,
             "%s: of which %.2f MiB from the spill-allowed domain (want %.2f: the strict block is not spilled)", label,
             mib(a.spilled), mib(lsz));
    nt_check(b.found && b.foreign >= lsz + ssz - tol, "%s: large_live foreign on node %d is %.2f MiB (want >= %.2f)", label, *to,
             mib(b.foreign), mib(lsz + ssz));
    row_t ms = dump_row(json, "slab", from);
    nt_check(ms.found && ms.misplaced + t.total[K_SLAB] / 100 + 4 * NT_PAGE >= msz,
             "%s: slab misplaced for node %d is %.2f MiB (want >= the 0.25 MiB block)", label, from, mib(ms.misplaced));
    uint64_t mis = 0;
    const char *sum = nt_json_get(json, "summary", NULL);
    nt_check(sum && nt_json_u64(sum, "misplaced_bytes", &mis) && mis + tol >= lsz + ssz + msz,
             "%s: summary.misplaced_bytes %.2f MiB (want >= %.2f)", label, mib(mis), mib(lsz + ssz + msz));
    nt_stats_json_free(json);
    nt_check(nt_api.resident_node(L) == *to && nt_api.resident_node(S) == *to && nt_api.resident_node(M) == *to,
             "%s: numamalloc_resident_node follows the pages (%d %d %d)", label, nt_api.resident_node(L),
             nt_api.resident_node(S), nt_api.resident_node(M));
    nt_check(nt_api.node_of(L) == from && nt_api.node_of(S) == from,
             "%s: numamalloc_node_of still says node %d (what was asked for)", label, from);
    free(L);
    free(S);
    free(M);
    return NULL;
}

static void scenario_migrate(void)
{
    int cn[NT_MAX_NODES], k = cpu_nodes(cn), mn[NT_MAX_NODES], m = mem_nodes(mn);
    if (m < 2) { nt_say("INFO migrate: needs two nodes with memory, have %d: nothing to check", m); return; }
    int to = mn[m - 1] != cn[0] ? mn[m - 1] : mn[0];
    (void)k;
    nt_run_on_node(cn[0], migrate_thread, &to);
}

/* ---- strict: a node without room ------------------------------------------------------------- */

static uint64_t node_free(int node)
{
    char path[96], line[256];
    snprintf(path, sizeof path, "/sys/devices/system/node/node%d/meminfo", node);
    FILE *f = fopen(path, "r");
    uint64_t kb = 0;
    if (f == NULL) return 0;
    while (fgets(line, sizeof line, f)) {
        char *p = strstr(line, "MemFree:");
        if (p) { kb = strtoull(p + 8, NULL, 10); break; }
    }
    fclose(f);
    return kb << 10;
}

#define HOG_LEAVE (24UL << 20)

/* a child bound to node h that takes the node's memory until HOG_LEAVE is left;
 * writes one byte to fd when done, then waits to be killed */
static void hog(int h, int fd)
{
    unsigned long mask[16] = { 0 };
    mask[h / 64] = 1UL << (h % 64);
    if (syscall(SYS_set_mempolicy, MPOL_BIND_, mask, 1025UL) != 0) { (void)!write(fd, "E", 1); _exit(1); }
    size_t chunk = 2UL << 20;
    for (int i = 0; i < 4096; i++) {
        uint64_t f = node_free(h);
        if (f <= HOG_LEAVE + chunk) break;
        if (f < HOG_LEAVE + (16UL << 20)) chunk = 1UL << 20;
        char *p = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) break;
        for (size_t off = 0; off < chunk; off += NT_PAGE) p[off] = 1;
    }
    (void)!write(fd, "R", 1);
    for (;;) pause();
}

static void scenario_strict(void)
{
    int cn[NT_MAX_NODES], mn[NT_MAX_NODES], m = mem_nodes(mn);
    cpu_nodes(cn);
    if (m < 2) {
        /* one node: strict and spill forms both work, and bad flags are refused */
        void *p = nt_api.alloc_onnode(1000, 0), *q = nt_api.alloc_onnode_flags(1000, 0, NUMAMALLOC_ONNODE_SPILL);
        nt_check(p && q, "strict on one node: both forms allocate");
        errno = 0;
        nt_check(nt_api.alloc_onnode_flags(1000, 0, 0x100) == NULL && errno == EINVAL, "unknown flags: NULL, EINVAL");
        free(p);
        free(q);
        nt_say("INFO strict: needs two nodes with memory, have %d: the rest is not checked", m);
        return;
    }
    int h = mn[m - 1], other = mn[0] != h ? mn[0] : mn[1];
    if (!nt_pin_to_node(cn[0])) return;
    int pfd[2];
    if (pipe(pfd) != 0) { nt_check(false, "pipe"); return; }
    pid_t pid = fork();
    if (pid == 0) { close(pfd[0]); hog(h, pfd[1]); }
    close(pfd[1]);
    char c = 0;
    (void)!read(pfd[0], &c, 1);
    close(pfd[0]);
    if (!nt_check(c == 'R', "strict: a hog process filled node %d (%.1f MiB left free)", h, mib(node_free(h)))) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return;
    }
    /* large, strict: refused at once */
    errno = 0;
    void *p = nt_api.alloc_onnode(64UL << 20, h);
    int e = errno;
    nt_check(p == NULL && e == ENOMEM, "strict: alloc_onnode(64 MiB, %d) with %.1f MiB free is NULL with ENOMEM (got %p, %s)", h,
             mib(node_free(h)), p, strerror(e));
    free(p);
    /* large, spill: succeeds, partly elsewhere, and the dump says how much spilled */
    size_t qsz = 64UL << 20;
    char *q = nt_api.alloc_onnode_flags(qsz, h, NUMAMALLOC_ONNODE_SPILL);
    if (nt_check(q != NULL, "strict: alloc_onnode_flags(64 MiB, %d, SPILL) succeeds", h)) {
        touch_all(q, qsz);
        ranges = scratch(MAX_RANGES * sizeof *ranges);
        nranges = 0;
        add_block(q, qsz);
        truth_t t;
        measure(&t);
        nt_say("RESULT strict spill: %.1f of 64 MiB on node %d, %.1f MiB elsewhere", mib(t.resident[K_LIVE][h]), h,
               mib(t.total[K_LIVE] - t.resident[K_LIVE][h]));
        nt_check(t.total[K_LIVE] - t.resident[K_LIVE][h] > (8UL << 20), "strict: the spill form put pages elsewhere (%.1f MiB)",
                 mib(t.total[K_LIVE] - t.resident[K_LIVE][h]));
        char *json = nt_stats_json();
        row_t r = dump_row(json, "large_live", h);
        nt_check(r.found && absdiff(r.spilled, t.misplaced[K_LIVE][h]) <= t.total[K_LIVE] / 100,
                 "strict: the dump's spilled bytes for node %d (%.2f MiB) agree with move_pages (%.2f MiB)", h, mib(r.spilled),
                 mib(t.misplaced[K_LIVE][h]));
        nt_stats_json_free(json);
        free(q);
    }
    /* small, strict: blocks until the node's room is used up, all of them on it */
    size_t max = (64UL << 20) / 32768, got = 0;
    void **blocks = scratch(max * sizeof *blocks);
    errno = 0;
    for (; got < max; got++) {
        blocks[got] = nt_api.alloc_onnode(32768, h);
        if (blocks[got] == NULL) break;
        memset(blocks[got], 3, 32768);
    }
    e = errno;
    nt_check(got < max && e == ENOMEM, "strict: 32 KiB blocks on node %d: %zu (%.1f MiB) succeeded, then NULL with ENOMEM (%s)", h,
             got, mib(got * 32768UL), strerror(e));
    nt_pages_t s = { 0 };
    nt_tally_t tally;
    for (size_t i = 0; i < got; i++) nt_pages_add(&s, blocks[i], 32768);
    nt_tally(&s, &tally);
    nt_pages_free(&s);
    if (got) nt_expect_node("strict 32 KiB blocks", &tally, h, 100.0);
    void *sp = nt_api.alloc_onnode_flags(32768, h, NUMAMALLOC_ONNODE_SPILL);
    nt_check(sp != NULL, "strict: the spill form still gives a 32 KiB block for node %d", h);
    void *ok = nt_api.alloc_onnode(1UL << 20, other);
    nt_check(ok != NULL && (memset(ok, 1, 1UL << 20), nt_page_node(ok) == other),
             "strict: alloc_onnode(1 MiB, %d) on a node with room works", other);
    free(sp);
    free(ok);
    for (size_t i = 0; i < got; i++) free(blocks[i]);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
}

/* ---- per-thread policies ----------------------------------------------------------------------- */

typedef struct tp {
    const char *policy;       /* NULL: none */
    int node;                 /* the thread runs here */
    int want;                 /* every page here (-1: interleaved over want_mask) */
    uint64_t want_mask;
    int want_mode;            /* mapping policy of its blocks (0: not checked) */
    bool process_interleave;  /* no policy, NUMAMALLOC_POLICY=interleave */
} tp_t;

static void check_blocks(const char *label, const tp_t *a, void **b, const size_t *sz, int n)
{
    static const char *const rn[] = { "small", "medium", "large" };
    for (int r = 0; r < 3; r++) {
        nt_pages_t s = { 0 };
        nt_tally_t t;
        for (int i = 0; i < n; i++) {
            if ((r == 0) != (sz[i] <= 32768) || (r == 2) != (sz[i] >= (1UL << 20))) continue;
            nt_pages_add(&s, b[i], sz[i]);
        }
        nt_tally(&s, &t);
        nt_pages_free(&s);
        char l[160];
        snprintf(l, sizeof l, "%s %s", label, rn[r]);
        if (a->want >= 0) {
            nt_expect_node(l, &t, a->want, MIN_PCT);
        } else {
            size_t inside = 0, nodes = 0;
            for (int k = 0; k <= nt_topo.max_node; k++) {
                if ((a->want_mask >> k) & 1) inside += t.on[k];
                nodes += t.on[k] > 0;
            }
            nt_report_node(l, &t, 0, "interleaved");
            /* (with THP a few blocks may touch a single 2 MiB unit: the spread is not asserted) */
            nt_check(inside == t.total && t.total > 0, "%s: every page on the interleave nodes 0x%llx (%zu of them used)", l,
                     (unsigned long long)a->want_mask, nodes);
        }
    }
    if (a->want_mode) {
        for (int i = 0; i < n; i++) {
            uint64_t mask;
            int mode = nt_policy_of(b[i], &mask);
            uint64_t want_mask = a->want >= 0 ? 1ULL << a->want : a->want_mask;
            if (!nt_check(mode == a->want_mode && mask == want_mask, "%s: block of %zu bytes: mapping policy %d nodes 0x%llx (want %d 0x%llx)",
                          label, sz[i], mode, (unsigned long long)mask, a->want_mode, (unsigned long long)want_mask))
                break;
        }
    }
}

static void *policy_thread(void *v)
{
    tp_t *a = v;
    char label[128], buf[64];
    snprintf(label, sizeof label, "threadpol '%s' on node %d", a->policy ? a->policy : "(process)", nt_current_node());
    void *warm = malloc(64);                     /* the thread's cache exists before its policy is set */
    if (a->policy) {
        nt_check(nt_api.thread_policy_set(a->policy) == 0, "%s: thread_policy_set", label);
        int g = nt_api.thread_policy_get(buf, sizeof buf);
        nt_check(g == 1 && strcmp(buf, a->policy) == 0, "%s: thread_policy_get says 1 '%s'", label, buf);
    } else {
        int g = nt_api.thread_policy_get(buf, sizeof buf);
        nt_check(g == 0 && strcmp(buf, nt_api.option_get("POLICY")) == 0, "%s: no own policy: get says 0 '%s'", label, buf);
    }
    static const size_t sz[] = { 64, 64, 1000, 4000, 20000, 32768, 100000, 300000, 2UL << 20, 4UL << 20 };
    enum { N = sizeof sz / sizeof sz[0] };
    void *b[N];
    for (int i = 0; i < N; i++) { b[i] = malloc(sz[i]); touch_all(b[i], sz[i]); }
    check_blocks(label, a, b, sz, N);
    int want_of = a->want >= 0 ? a->want : -1;
    nt_check(nt_api.node_of(b[0]) == want_of && nt_api.node_of(b[N - 1]) == want_of,
             "%s: numamalloc_node_of says %d (got %d, %d)", label, want_of, nt_api.node_of(b[0]), nt_api.node_of(b[N - 1]));
    for (int i = 0; i < N; i++) free(b[i]);
    free(warm);
    if (a->policy) {
        /* bad values change nothing; NULL goes back to the process policy */
        errno = 0;
        nt_check(nt_api.thread_policy_set("bind:63") == -1 && errno == EINVAL, "%s: bind:63 is EINVAL", label);
        errno = 0;
        nt_check(nt_api.thread_policy_set("sideways") == -1 && errno == EINVAL, "%s: 'sideways' is EINVAL", label);
        nt_check(nt_api.thread_policy_get(buf, sizeof buf) == 1 && strcmp(buf, a->policy) == 0, "%s: still '%s'", label, buf);
        nt_check(nt_api.thread_policy_set(NULL) == 0 && nt_api.thread_policy_get(buf, sizeof buf) == 0,
                 "%s: reset to the process policy '%s'", label, buf);
        void *p = malloc(4000);
        touch_all(p, 4000);
        int expect = a->process_interleave ? -1 : nt_current_node();
        nt_check(nt_api.node_of(p) == expect, "%s: after the reset a block is node %d's again (node_of %d)", label, expect,
                 nt_api.node_of(p));
        free(p);
    }
    return NULL;
}

static void scenario_threadpol(void)
{
    int cn[NT_MAX_NODES], k = cpu_nodes(cn), mn[NT_MAX_NODES], m = mem_nodes(mn);
    const char *proc = nt_api.option_get("POLICY");
    bool proc_il = strcmp(proc, "interleave") == 0 && m > 1;
    uint64_t all = 0;
    for (int i = 0; i < m; i++) all |= 1ULL << mn[i];
    int a = cn[0], b = m > 1 ? (mn[m - 1] != a ? mn[m - 1] : mn[0]) : a;
    char bind[32], pref[32], sub[32];
    snprintf(bind, sizeof bind, "bind:%d", b);
    snprintf(pref, sizeof pref, "preferred:%d", b);
    uint64_t submask = m > 2 ? (1ULL << mn[m - 2]) | (1ULL << mn[m - 1]) : 1ULL << b;
    if (m > 2) snprintf(sub, sizeof sub, "interleave:%d,%d", mn[m - 2], mn[m - 1]);
    else snprintf(sub, sizeof sub, "interleave:%d", b);
    tp_t cases[] = {
        { bind, a, b, 0, m > 1 ? MPOL_BIND_ : 0, proc_il },
        { pref, a, b, 0, m > 1 ? MPOL_PREFERRED_ : 0, proc_il },
        { "interleave", a, m > 1 ? -1 : a, all, m > 1 ? MPOL_INTERLEAVE_ : 0, proc_il },
        { sub, a, m > 1 ? -1 : a, submask, m > 1 ? MPOL_INTERLEAVE_ : 0, proc_il },
        { "local", a, a, 0, m > 1 ? MPOL_PREFERRED_ : 0, proc_il },
        { NULL, a, proc_il ? -1 : a, all, proc_il ? MPOL_INTERLEAVE_ : 0, proc_il },
    };
    for (unsigned i = 0; i < sizeof cases / sizeof cases[0]; i++) nt_run_on_node(cases[i].node, policy_thread, &cases[i]);
    /* a thread with a policy and one without, at the same time, on the same node */
    if (k >= 1) {
        pthread_t t1, t2;
        pthread_attr_t at;
        pthread_attr_init(&at);
        pthread_attr_setaffinity_np(&at, sizeof nt_topo.cpus[a], &nt_topo.cpus[a]);
        pthread_create(&t1, &at, policy_thread, &cases[0]);
        pthread_create(&t2, &at, policy_thread, &cases[5]);
        pthread_join(t1, NULL);
        pthread_join(t2, NULL);
        pthread_attr_destroy(&at);
    }
    /* limits: distinct policies and interleaved node sets are bounded */
    char buf[64];
    nt_api.thread_policy_set(bind);
    int ok = 0, enospc = 0, einval = 0;
    for (int i = 0; i < 64; i++) {
        char p[48];
        int x = mn[i % m], y = mn[(i / m) % m];
        const char *kind = i < 32 ? "bind" : "interleave";
        if (x == y) snprintf(p, sizeof p, "%s:%d", kind, x);
        else snprintf(p, sizeof p, "%s:%d,%d", kind, x, y);
        errno = 0;
        int r = nt_api.thread_policy_set(p);
        ok += r == 0;
        enospc += r == -1 && errno == ENOSPC;
        einval += r == -1 && errno == EINVAL;
    }
    nt_say("INFO threadpol limits: %d of 64 policies accepted (repeats included), %d ENOSPC, %d EINVAL", ok, enospc, einval);
    nt_api.thread_policy_set(NULL);
    nt_check(nt_api.thread_policy_get(buf, sizeof buf) == 0, "threadpol: back to the process policy after the limits");
    if (m > 2) nt_check(enospc > 0, "threadpol: too many distinct policies give ENOSPC");
}

/* ---- profiler attribution ------------------------------------------------------------------------ */

volatile uintptr_t sink;

typedef struct handoff { void **blocks; size_t n; pthread_barrier_t bar; int a, b; } handoff_t;

__attribute__((noinline)) void planted_remote_site(handoff_t *h)
{
    for (size_t i = 0; i < h->n; i++) {
        h->blocks[i] = malloc(512);
        memset(h->blocks[i], 1, 512);
        sink += (uintptr_t)h->blocks[i];
    }
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void local_churn_site(size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *p = malloc(512);
        p[0] = 1;
        sink += (uintptr_t)p;
        free(p);
    }
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) void planted_huge_site(int n)
{
    for (int i = 0; i < n; i++) {
        char *p = malloc(4UL << 20);
        p[0] = 1;
        sink += (uintptr_t)p;
        free(p);
    }
    __asm__ volatile("" ::: "memory");
}

static void *prof_a(void *v)
{
    handoff_t *h = v;
    nt_pin_to_node(h->a);
    planted_remote_site(h);
    local_churn_site(4 * h->n);
    pthread_barrier_wait(&h->bar);
    return NULL;
}

static void *prof_b(void *v)
{
    handoff_t *h = v;
    nt_pin_to_node(h->b);
    pthread_barrier_wait(&h->bar);
    for (size_t i = 0; i < h->n; i++) free(h->blocks[i]);
    return NULL;
}

/* does the first site of the profile list `list` have a frame named `sym`? */
static bool first_site_is(const char *json, const char *list, const char *sym, uint64_t *count, const char *field)
{
    const char *prof = nt_json_get(json, "profile", NULL);
    const char *arr = prof ? nt_json_get(prof, list, NULL) : NULL;
    const char *site = arr ? nt_json_elem(arr, 0) : NULL;
    if (site == NULL) return false;
    nt_json_u64(site, field, count);
    const char *frames = nt_json_get(site, "frames", NULL);
    for (int i = 0; frames; i++) {
        const char *f = nt_json_elem(frames, i);
        char name[128];
        if (f == NULL) break;
        if (nt_json_str(f, "symbol", name, sizeof name) && strcmp(name, sym) == 0) return true;
    }
    return false;
}

static void scenario_prof(void)
{
    int cn[NT_MAX_NODES], k = cpu_nodes(cn);
    const char *prof = nt_api.option_get("PROF");
    if (!nt_check(prof && strcmp(prof, "1") == 0, "prof: NUMAMALLOC_PROF=1 in effect")) return;
    char thp[64] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) { if (!fgets(thp, sizeof thp, f)) thp[0] = 0; fclose(f); }
    planted_huge_site(8);
    if (k >= 2) {
        handoff_t h = { .n = 4000, .a = cn[0], .b = cn[1] };
        h.blocks = scratch(h.n * sizeof *h.blocks);
        pthread_barrier_init(&h.bar, NULL, 2);
        pthread_t ta, tb;
        pthread_create(&ta, NULL, prof_a, &h);
        pthread_create(&tb, NULL, prof_b, &h);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        pthread_barrier_destroy(&h.bar);
    } else {
        nt_say("INFO prof: needs two nodes with CPUs for remote frees, have %d", k);
    }
    char *json = nt_stats_json();
    uint64_t n = 0;
    bool first;
    if (k >= 2) {
        first = first_site_is(json, "top_remote_free", "planted_remote_site", &n, "remote_frees");
        nt_check(first && n > 0, "prof: planted_remote_site ranks first by remote frees (~%llu blocks)", (unsigned long long)n);
    }
    if (strstr(thp, "[never]")) {
        n = 0;
        first = first_site_is(json, "top_huge_fallback", "planted_huge_site", &n, "huge_fallbacks");
        nt_check(first && n > 0, "prof: planted_huge_site ranks first by huge-page fallbacks (THP off; ~%llu blocks)",
                 (unsigned long long)n);
    } else {
        nt_say("INFO prof: THP is not off here: no huge-page fallback to attribute");
    }
    nt_stats_json_free(json);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    nt_topo_read();
    nt_api_load();
    const char *what = argc > 1 ? argv[1] : "";
    nt_say("INFO truth %s: %d node(s) with memory, policy %s", what, nt_topo.nmem, nt_api.option_get("POLICY"));
    if (strcmp(what, "residency") == 0) scenario_residency();
    else if (strcmp(what, "migrate") == 0) scenario_migrate();
    else if (strcmp(what, "strict") == 0) scenario_strict();
    else if (strcmp(what, "threadpol") == 0) scenario_threadpol();
    else if (strcmp(what, "prof") == 0) scenario_prof();
    else {
        fprintf(stderr, "usage: truth residency|migrate|strict|threadpol|prof\n");
        return 2;
    }
    return nt_finish("truth");
}
