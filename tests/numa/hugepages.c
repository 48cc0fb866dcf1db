/* tests/numa/hugepages.c — how numamalloc backs large blocks: hugetlb pages from
 * the node's pool, else transparent huge pages, else 4 KiB pages, and never a
 * SIGBUS on the way down.
 *
 * Run under LD_PRELOAD=libnumamalloc.so by tests/numa/hugepage-test.sh (the host,
 * one node; the script sizes /proc/sys/vm/nr_hugepages before each run and
 * restores it) and by tests/numa/vm-run.sh (per-node pools in the QEMU VM). Each
 * block is checked three ways: numamalloc_block_info (kind and pages), the
 * kernel's view of its mapping in /proc/self/smaps (KernelPageSize, THPeligible,
 * AnonHugePages) and the pool's free_hugepages before and after; every page is
 * touched, and its node read with move_pages. The fallback reasons these runs
 * cause are counted in the stats dump, which the calling script checks. Runs with
 * NUMAMALLOC_LARGE_CACHE=0, so that every block is a fresh mapping.
 * Without hugetlb pages a block gets THP only when NUMAMALLOC_HUGEPAGES asks for
 * it (thp, or hugetlb+thp / 1g+thp), else 4 KiB pages: the scenarios that fall
 * back expect what the environment asks for.
 * Scenarios (argv[1]):
 *   pool        free pages cover the blocks: 2, 4 and 8 MiB are hugetlb-backed
 *   nopool      no free pages: THP-backed (madvise'd, 2 MiB aligned) or 4 KiB
 *   scarce      a pool one page short: the first block takes all but one page, the
 *               next falls back to THP
 *   reserved    every free page is reserved by another mapping: free_hugepages
 *               says yes, mmap(MAP_HUGETLB) says no; the block falls back
 *   off         NUMAMALLOC_HUGEPAGES=off with a pool: 4 KiB pages
 *   thp         NUMAMALLOC_HUGEPAGES=thp with a pool: THP, the pool untouched
 *   small       1 and 1.5 MiB blocks (above the large threshold, under a huge
 *               page) stay on 4 KiB pages even with a pool
 *   giant       NUMAMALLOC_HUGEPAGES=1g with one free 1 GiB page: a block of
 *               1 GiB - 4 KiB takes it; the next, with the pool empty, falls back
 *   vm-pool     (VM) a thread on every node with CPUs, and alloc_onnode for every
 *               node with memory: hugetlb blocks on the right node
 *   vm-empty N  (VM) node N's pool is empty, node 0's is not: a thread on N falls
 *               back (THP or 4 KiB) on node N, a thread on node 0 still gets hugetlb */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "numa/numa_common.h"

#define MIB (1UL << 20)
#define HUGE_2M (2UL << 20)

enum backing { B_HUGETLB, B_THP, B_4K, B_NOT_HUGETLB };
static const char *backing_name[] = { "hugetlb 2M", "THP", "4 KiB", "THP or 4 KiB" };
static int thp_mode;                 /* 0 never, 1 madvise, 2 always */

static void read_thp_mode(void)
{
    char buf[128] = "";
    FILE *f = fopen("/sys/kernel/mm/transparent_hugepage/enabled", "r");
    if (f) { if (!fgets(buf, sizeof buf, f)) buf[0] = 0; fclose(f); }
    thp_mode = strstr(buf, "[always]") ? 2 : strstr(buf, "[madvise]") ? 1 : 0;
}

/* with THP set to never, what numamalloc calls THP is plain 4 KiB pages */
/* what a block that cannot have hugetlb pages gets: THP only when asked for
 * (NUMAMALLOC_HUGEPAGES=thp or ...+thp) and the kernel allows it, else 4 KiB */
static enum backing thp_or_4k(void)
{
    const char *h = getenv("NUMAMALLOC_HUGEPAGES");
    bool asked = h && (strcmp(h, "thp") == 0 || strstr(h, "+thp") != NULL);
    return asked && thp_mode ? B_THP : B_4K;
}

/* allocate size bytes (malloc, or alloc_onnode if node_api >= 0), touch every
 * page, check its backing and that its pages are on want_node (-1: do not care);
 * returns the block (the caller frees it) */
static void *check_block(const char *label, size_t size, int node_api, enum backing want, int want_node)
{
    int pool_node = want_node >= 0 && nt_topo.nmem > 1 ? want_node : -1;
    long free_before = nt_huge_free(pool_node);
    void *p = node_api >= 0 ? nt_api.alloc_onnode(size, node_api) : malloc(size);
    if (!nt_check(p != NULL, "%s: allocation of %zu bytes", label, size)) return NULL;
    nt_touch(p, size);                       /* a SIGBUS here kills the test: that is the check */
    struct numamalloc_block_info bi;
    int rc = nt_api.block_info(p, &bi);
    nt_smaps_t sm = nt_smaps_of(p);
    long free_after = nt_huge_free(pool_node);
    nt_say("INFO %s: %zu KiB at %p kind=%d pages=%d node=%d; smaps KernelPageSize=%ld kB THPeligible=%d "
           "AnonHugePages=%ld kB Rss=%ld kB; free_hugepages %s %ld -> %ld",
           label, size >> 10, p, bi.kind, bi.pages, bi.node, sm.kernel_page_kb, sm.thp_eligible, sm.anon_huge_kb,
           sm.rss_kb, pool_node >= 0 ? "on its node" : "(all nodes)", free_before, free_after);
    nt_check(rc == 0 && sm.found, "%s: numamalloc_block_info and smaps know the block", label);
    switch (want) {
    case B_HUGETLB:
        nt_check(bi.kind == NUMAMALLOC_KIND_HUGE && bi.pages == NUMAMALLOC_PAGES_HUGETLB_2M,
                 "%s: block_info says hugetlb 2M (kind %d, pages %d)", label, bi.kind, bi.pages);
        nt_check(sm.kernel_page_kb == 2048, "%s: smaps KernelPageSize 2048 kB (got %ld)", label, sm.kernel_page_kb);
        nt_check(free_before - free_after >= (long)((size + HUGE_2M - 1) / HUGE_2M),
                 "%s: the pool gave %zu pages (free %ld -> %ld)", label, (size + HUGE_2M - 1) / HUGE_2M, free_before,
                 free_after);
        break;
    case B_THP:
        nt_check(bi.kind == NUMAMALLOC_KIND_LARGE && bi.pages == NUMAMALLOC_PAGES_THP,
                 "%s: block_info says THP (kind %d, pages %d)", label, bi.kind, bi.pages);
        nt_check(sm.kernel_page_kb == 4, "%s: smaps KernelPageSize 4 kB (got %ld)", label, sm.kernel_page_kb);
        /* eligibility is ours to give (MADV_HUGEPAGE, 2 MiB alignment); whether
         * the kernel found huge pages (AnonHugePages) is its luck: printed only */
        nt_check(sm.thp_eligible == 1, "%s: smaps THPeligible 1 (got %d)", label, sm.thp_eligible);
        nt_check(((uintptr_t)p & (HUGE_2M - 1)) == 0, "%s: block 2 MiB aligned", label);
        break;
    case B_4K:
        nt_check(bi.kind == NUMAMALLOC_KIND_LARGE && bi.pages == NUMAMALLOC_PAGES_4K,
                 "%s: block_info says 4 KiB pages (kind %d, pages %d)", label, bi.kind, bi.pages);
        nt_check(sm.kernel_page_kb == 4, "%s: smaps KernelPageSize 4 kB (got %ld)", label, sm.kernel_page_kb);
        if (thp_mode == 1)                   /* madvise mode: nobody asked for THP */
            nt_check(sm.thp_eligible == 0 && sm.anon_huge_kb == 0, "%s: smaps THPeligible 0, AnonHugePages 0 (got %d, %ld kB)",
                     label, sm.thp_eligible, sm.anon_huge_kb);
        break;
    case B_NOT_HUGETLB:
        nt_check(bi.kind == NUMAMALLOC_KIND_LARGE && bi.pages != NUMAMALLOC_PAGES_HUGETLB_2M,
                 "%s: block_info says not hugetlb (kind %d, pages %d)", label, bi.kind, bi.pages);
        nt_check(sm.kernel_page_kb == 4, "%s: smaps KernelPageSize 4 kB (got %ld)", label, sm.kernel_page_kb);
        break;
    }
    if (want != B_HUGETLB)
        nt_check(free_after >= free_before, "%s: the pool was left alone (free %ld -> %ld)", label, free_before, free_after);
    if (want_node >= 0) {
        nt_pages_t s = { 0 };
        nt_tally_t t;
        char l2[160];
        nt_pages_add(&s, p, size);
        nt_tally(&s, &t);
        nt_pages_free(&s);
        snprintf(l2, sizeof l2, "%s %s", label, backing_name[want]);
        nt_expect_node(l2, &t, want_node, 99.9);
        nt_check(nt_api.node_of(p) == want_node, "%s: numamalloc_node_of %d", label, nt_api.node_of(p));
    }
    return p;
}

/* ---- host scenarios --------------------------------------------------------------- */

static bool need_free(long want)
{
    long f = nt_huge_free(-1);
    return nt_check(f >= want, "precondition: %ld free hugetlb pages (want >= %ld)", f, want);
}

static void scenario_pool(void)
{
    if (!need_free(7)) return;
    static const size_t sizes[] = { 2 * MIB, 4 * MIB, 8 * MIB };
    void *p[3];
    char label[64];
    for (int i = 0; i < 3; i++) {
        snprintf(label, sizeof label, "pool %zu MiB", sizes[i] / MIB);
        p[i] = check_block(label, sizes[i], -1, B_HUGETLB, nt_current_node());
    }
    for (int i = 0; i < 3; i++) free(p[i]);
}

static void scenario_nopool(void)
{
    long f = nt_huge_free(-1);
    if (!nt_check(f == 0, "precondition: no free hugetlb pages (have %ld)", f)) return;
    free(check_block("nopool 4 MiB", 4 * MIB, -1, thp_or_4k(), nt_current_node()));
    free(check_block("nopool 8 MiB", 8 * MIB, -1, thp_or_4k(), nt_current_node()));
}

static void scenario_scarce(void)
{
    long f = nt_huge_free(-1);
    if (!nt_check(f >= 2, "precondition: >= 2 free hugetlb pages (have %ld)", f)) return;
    /* all but one page, then a block that needs two */
    void *a = check_block("scarce first (all but one page)", (size_t)(f - 1) * HUGE_2M, -1, B_HUGETLB, nt_current_node());
    void *b = check_block("scarce second (needs 2, 1 free)", 4 * MIB, -1, thp_or_4k(), nt_current_node());
    free(a);
    free(b);
}

static void scenario_reserved(void)
{
    long f = nt_huge_free(-1);
    if (!nt_check(f >= 2, "precondition: >= 2 free hugetlb pages (have %ld)", f)) return;
    /* a mapping that reserves every free page without touching them: free_hugepages
     * still counts them, but the next MAP_HUGETLB mapping cannot be reserved */
    size_t len = (size_t)f * HUGE_2M;
    void *hog = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
    if (!nt_check(hog != MAP_FAILED, "reserve all %ld free pages with an untouched MAP_HUGETLB mapping: %s", f,
                  hog == MAP_FAILED ? strerror(errno) : "ok"))
        return;
    nt_say("INFO reserved: free_hugepages %ld after reserving %ld pages", nt_huge_free(-1), f);
    free(check_block("reserved 4 MiB", 4 * MIB, -1, thp_or_4k(), nt_current_node()));
    munmap(hog, len);
}

static void scenario_off(void)
{
    if (!need_free(4)) return;
    free(check_block("off 4 MiB", 4 * MIB, -1, B_4K, nt_current_node()));
}

static void scenario_thp(void)
{
    if (!need_free(4)) return;
    free(check_block("thp 4 MiB", 4 * MIB, -1, thp_or_4k(), nt_current_node()));
}

static void scenario_small(void)
{
    if (!need_free(4)) return;
    free(check_block("small 1 MiB", 1 * MIB, -1, B_4K, nt_current_node()));
    free(check_block("small 1.5 MiB", 3 * MIB / 2, -1, B_4K, nt_current_node()));
}

static long giant_free(void)
{
    long v = -1;
    FILE *f = fopen("/sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages", "r");
    if (f) { if (fscanf(f, "%ld", &v) != 1) v = -1; fclose(f); }
    return v;
}

static void scenario_giant(void)
{
    const size_t size = (1UL << 30) - 4096;          /* rounds up to one page: 4 KiB of waste */
    long before = giant_free();
    if (!nt_check(before == 1, "precondition: one free 1 GiB page (have %ld)", before)) return;
    void *p = malloc(size);
    if (!nt_check(p != NULL, "giant: allocation of %zu bytes", size)) return;
    nt_touch(p, size);
    struct numamalloc_block_info bi;
    int rc = nt_api.block_info(p, &bi);
    nt_smaps_t sm = nt_smaps_of(p);
    nt_say("INFO giant: %zu KiB at %p kind=%d pages=%d; smaps KernelPageSize=%ld kB; free 1 GiB pages %ld -> %ld",
           size >> 10, p, bi.kind, bi.pages, sm.kernel_page_kb, before, giant_free());
    nt_check(rc == 0 && bi.kind == NUMAMALLOC_KIND_HUGE && bi.pages == NUMAMALLOC_PAGES_HUGETLB_1G,
             "giant: block_info says hugetlb 1G (rc %d, kind %d, pages %d)", rc, bi.kind, bi.pages);
    nt_check(sm.found && sm.kernel_page_kb == 1048576, "giant: smaps KernelPageSize 1048576 kB (got %ld)",
             sm.kernel_page_kb);
    nt_check(((uintptr_t)p & ((1UL << 30) - 1)) == 0, "giant: block 1 GiB aligned");
    nt_check(giant_free() == 0, "giant: the pool gave its page (free %ld)", giant_free());
    /* the pool is empty now: the same request steps down, counted as no_1g_pool */
    void *q = malloc(size);
    if (nt_check(q != NULL, "giant second: allocation with the 1 GiB pool empty")) {
        nt_touch(q, size);
        rc = nt_api.block_info(q, &bi);
        nt_check(rc == 0 && bi.pages != NUMAMALLOC_PAGES_HUGETLB_1G, "giant second: not on a 1 GiB page (pages %d)",
                 bi.pages);
        free(q);
    }
    free(p);
}

/* ---- VM scenarios --------------------------------------------------------------------- */

static void *vm_pool_worker(void *v)
{
    (void)v;
    int self = nt_current_node();
    static const size_t sizes[] = { 2 * MIB, 4 * MIB, 8 * MIB };
    void *p[3];
    char label[96];
    for (int i = 0; i < 3; i++) {
        snprintf(label, sizeof label, "vm-pool thread-node %d malloc %zu MiB", self, sizes[i] / MIB);
        p[i] = check_block(label, sizes[i], -1, B_HUGETLB, self);
    }
    for (int i = 0; i < 3; i++) free(p[i]);
    for (int n = 0; n <= nt_topo.max_node; n++) {
        if (!nt_topo.has_memory[n]) continue;
        snprintf(label, sizeof label, "vm-pool thread-node %d alloc_onnode(4 MiB, %d)", self, n);
        free(check_block(label, 4 * MIB, n, B_HUGETLB, n));
    }
    return NULL;
}

static void scenario_vm_pool(void)
{
    for (int n = 0; n <= nt_topo.max_node; n++)
        if (nt_topo.has_memory[n]) nt_say("INFO node %d: nr_hugepages %ld free %ld", n, nt_huge_nr(n), nt_huge_free(n));
    for (int n = 0; n <= nt_topo.max_node; n++)
        if (nt_topo.ncpus[n] && nt_topo.has_memory[n]) nt_run_on_node(n, vm_pool_worker, NULL);
}

static void *vm_empty_worker(void *v)
{
    int empty = *(int *)v, self = nt_current_node();
    char label[96];
    snprintf(label, sizeof label, "vm-empty thread-node %d (node %d pool %s)", self, self, self == empty ? "empty" : "full");
    free(check_block(label, 4 * MIB, -1, self == empty ? thp_or_4k() : B_HUGETLB, self));
    return NULL;
}

static void scenario_vm_empty(int empty)
{
    if (!nt_check(empty > 0 && empty <= nt_topo.max_node && nt_topo.ncpus[empty] > 0,
                  "node %d (the one with the empty pool) exists and has CPUs", empty))
        return;
    if (!nt_check(nt_huge_free(empty) == 0 && nt_huge_free(0) >= 2,
                  "precondition: node %d has no free hugetlb pages (%ld), node 0 has some (%ld)", empty,
                  nt_huge_free(empty), nt_huge_free(0)))
        return;
    nt_run_on_node(empty, vm_empty_worker, &empty);
    nt_run_on_node(0, vm_empty_worker, &empty);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    nt_topo_read();
    nt_api_load();
    read_thp_mode();
    const char *what = argc > 1 ? argv[1] : "";
    /* a freed block waits in the large-mapping cache and serves the next request of
     * its size without touching the pool: the pool accounting below needs it off */
    const char *cache = nt_api.option_get("LARGE_CACHE");
    if (!nt_check(cache && strcmp(cache, "0") == 0, "run with NUMAMALLOC_LARGE_CACHE=0 (have '%s')", cache ? cache : "(null)"))
        return nt_finish("hugepages");
    nt_say("INFO hugepages %s: THP mode %s, NUMAMALLOC_HUGEPAGES=%s, %d node(s) with memory, free hugetlb pages %ld", what,
           thp_mode == 2 ? "always" : thp_mode == 1 ? "madvise" : "never", nt_api.option_get("HUGEPAGES"), nt_topo.nmem,
           nt_huge_free(-1));
    if (strcmp(what, "pool") == 0) scenario_pool();
    else if (strcmp(what, "nopool") == 0) scenario_nopool();
    else if (strcmp(what, "scarce") == 0) scenario_scarce();
    else if (strcmp(what, "reserved") == 0) scenario_reserved();
    else if (strcmp(what, "off") == 0) scenario_off();
    else if (strcmp(what, "thp") == 0) scenario_thp();
    else if (strcmp(what, "small") == 0) scenario_small();
    else if (strcmp(what, "giant") == 0) scenario_giant();
    else if (strcmp(what, "vm-pool") == 0) scenario_vm_pool();
    else if (strcmp(what, "vm-empty") == 0 && argc > 2) scenario_vm_empty(atoi(argv[2]));
    else {
        fprintf(stderr, "usage: hugepages pool|nopool|scarce|reserved|off|thp|small|vm-pool|vm-empty N\n");
        return 2;
    }
    return nt_finish("hugepages");
}
