/* tests/numa/numa_common.h — what the NUMA and huge-page test programs share:
 * the machine's nodes (from sysfs, like the allocator, so nothing here needs
 * libnuma), where a page really is (move_pages(2) in status mode, cross-checked
 * with get_mempolicy(MPOL_F_NODE|MPOL_F_ADDR)), tallies of touched pages per node,
 * the numamalloc_* API looked up with dlsym (the programs run under LD_PRELOAD and
 * are not linked with the library), /proc/self/smaps of one mapping, and the
 * PASS/FAIL bookkeeping. Every measured number is printed as a "RESULT" line. */
#ifndef NT_NUMA_COMMON_H
#define NT_NUMA_COMMON_H

#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "numamalloc.h"

#define NT_MAX_NODES 64
#define NT_PAGE 4096UL

/* ---- topology -------------------------------------------------------------------- */
typedef struct nt_topo {
    int max_node;                     /* highest node id seen */
    int nmem;                         /* nodes with memory */
    bool has_memory[NT_MAX_NODES];
    int ncpus[NT_MAX_NODES];          /* 0: memory-only node */
    cpu_set_t cpus[NT_MAX_NODES];
} nt_topo_t;
extern nt_topo_t nt_topo;
void nt_topo_read(void);
/* the node of the CPU we run on now (getcpu) */
int nt_current_node(void);
/* pin the calling thread to the CPUs of node n; false (and a FAIL) if impossible */
bool nt_pin_to_node(int n);
/* run fn(arg) on a new thread created already pinned to node n's CPUs, and join it */
void nt_run_on_node(int n, void *(*fn)(void *), void *arg);

/* ---- the library's API, through dlsym ------------------------------------------- */
typedef struct nt_api {
    void *(*alloc_onnode)(size_t, int);
    void *(*alloc_onnode_flags)(size_t, int, int);
    void *(*alloc_interleaved)(size_t);
    int (*node_of)(const void *);
    int (*resident_node)(const void *);
    int (*block_info)(const void *, struct numamalloc_block_info *);
    size_t (*stats_json)(char *, size_t);
    const char *(*option_get)(const char *);
    int (*thread_policy_set)(const char *);
    int (*thread_policy_get)(char *, size_t);
    int (*nodes_with_memory)(int *, int);
    int (*node_of_cpu)(int);
    int (*current_node)(void);
} nt_api_t;
extern nt_api_t nt_api;
/* exits with status 2 if the library is not preloaded */
void nt_api_load(void);

/* ---- page placement ---------------------------------------------------------------- */
/* A set of page addresses: the pages a test touched. Tallying sorts it, drops
 * duplicates (small blocks share pages) and asks the kernel where each one is. */
typedef struct nt_pages {
    uintptr_t *v;
    size_t n, cap;
} nt_pages_t;
void nt_pages_add(nt_pages_t *s, const void *p, size_t len);
void nt_pages_free(nt_pages_t *s);

typedef struct nt_tally {
    size_t total;                    /* distinct touched pages */
    size_t on[NT_MAX_NODES];         /* pages per node by move_pages */
    size_t missing;                  /* move_pages status < 0 (e.g. -ENOENT: not present) */
    size_t disagree;                 /* get_mempolicy named another node than move_pages */
} nt_tally_t;
void nt_tally(nt_pages_t *s, nt_tally_t *t);
/* node of one page by move_pages (status mode); negative errno if not present */
int nt_page_node(const void *p);
/* node of one page by get_mempolicy(MPOL_F_NODE|MPOL_F_ADDR) */
int nt_page_node_gm(const void *p);

/* the memory policy of the mapping holding p (get_mempolicy(MPOL_F_ADDR)): its mode
 * (MPOL_* number; -errno on failure) and node mask */
int nt_policy_of(const void *p, uint64_t *mask);
#define NT_MPOL_INTERLEAVE 3

/* touch a block: memset small ones whole, one byte per page of bigger ones */
void nt_touch(void *p, size_t len);

/* ---- checks and reports -------------------------------------------------------------- */
/* Output is line-atomic: threads print concurrently and each line is written whole. */
extern int nt_failures;
/* one line of output */
void nt_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* a named check; prints "PASS what" or "FAIL what: why" and counts failures */
bool nt_check(bool ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "RESULT <label>: k/total pages on node N (pp.pp%) spread n0=..% n1=..% ..." (+ note) */
void nt_report_node(const char *label, const nt_tally_t *t, int node, const char *note);
/* the RESULT line, then check >= min_pct of the pages are on node, and that
 * move_pages and get_mempolicy agree on every page */
bool nt_expect_node(const char *label, const nt_tally_t *t, int node, double min_pct);
/* "RESULT <label>: total pages, even share E, spread ..." over the nodes in `nodes` */
void nt_report_spread(const char *label, const nt_tally_t *t, uint64_t nodes, const char *note);
/* the RESULT line, then check every node in `nodes` (bit mask) holds within
 * tolerance (0.25 = 25%) of an even share, and no page is elsewhere */
bool nt_expect_spread(const char *label, const nt_tally_t *t, uint64_t nodes, double tolerance);
/* a block interleaved by the kernel with THP: the unit is a 2 MiB page, and a node
 * without a free 2 MiB run serves that unit in 4 KiB pages, so the split is not
 * asserted; asserted: the mapping's policy is MPOL_INTERLEAVE over `nodes`, and
 * every node of `nodes` holds pages and no other node does */
bool nt_expect_interleaved(const char *label, const void *p, const nt_tally_t *t, uint64_t nodes);
/* the program's last line and exit status */
int nt_finish(const char *prog);

/* ---- the JSON dump, read without a JSON library (python3 is not in the VM) ------------ */
/* the value of "key" at the top level of the object or array element starting at
 * obj ('{'), as the text of the value (end: one past it); NULL if absent */
const char *nt_json_get(const char *obj, const char *key, const char **end);
/* ... as a number (false if absent, null or not a number) */
bool nt_json_u64(const char *obj, const char *key, uint64_t *v);
/* ... as a string into buf (false if absent or not a string) */
bool nt_json_str(const char *obj, const char *key, char *buf, size_t cap);
/* the i-th element of the array value starting at arr ('['); NULL past the end */
const char *nt_json_elem(const char *arr, int i);
/* one past the end of the value starting at v */
const char *nt_json_skip(const char *v);
/* the whole dump of numamalloc_stats_json, in a mapping of NT_JSON_CAP bytes (not
 * one of our blocks) the caller releases with nt_stats_json_free */
#define NT_JSON_CAP (1UL << 20)
char *nt_stats_json(void);
void nt_stats_json_free(char *json);

/* ---- /proc/self/smaps ------------------------------------------------------------------ */
typedef struct nt_smaps {
    bool found;
    uintptr_t start, end;
    long kernel_page_kb;             /* KernelPageSize */
    long anon_huge_kb;               /* AnonHugePages */
    long rss_kb;
    int thp_eligible;                /* THPeligible, -1 if the kernel does not say */
} nt_smaps_t;
/* the mapping that contains p */
nt_smaps_t nt_smaps_of(const void *p);

/* ---- hugetlb pool counters (sysfs; node -1: the global pool) ---------------------------- */
long nt_huge_free(int node);
long nt_huge_nr(int node);
bool nt_huge_set_nr(int node, long n);

/* sizes used by the placement tests, in bytes */
extern const size_t nt_small_sizes[];
extern const size_t nt_medium_sizes[];
extern const size_t nt_large_sizes[];
extern const size_t nt_n_small, nt_n_medium, nt_n_large;

#endif
