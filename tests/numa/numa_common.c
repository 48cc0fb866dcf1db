/* tests/numa/numa_common.c — helpers shared by tests/numa/placement.c and
 * tests/numa/hugepages.c (see numa_common.h). Page placement is asked with raw
 * system calls (move_pages, get_mempolicy), the topology is read from sysfs: the
 * programs link nothing but libc and run unchanged on the host and in the VM. */
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "numa/numa_common.h"

#define MPOL_F_NODE_ (1 << 0)
#define MPOL_F_ADDR_ (1 << 1)

nt_topo_t nt_topo;
nt_api_t nt_api;
int nt_failures;

const size_t nt_small_sizes[] = { 16, 24, 48, 100, 128, 200, 512, 1000, 2048, 4000, 8192, 16384, 20000, 32768 };
const size_t nt_medium_sizes[] = { 65536, 100000, 131072, 200000, 262144, 400000, 524288 };
/* 2, 4 and 8 MiB are huge-page sized; 3 MiB would waste a quarter on 2 MiB pages
 * and stays on 4 KiB pages: both paths of src/large.c */
const size_t nt_large_sizes[] = { 2UL << 20, 3UL << 20, 4UL << 20, 8UL << 20 };
const size_t nt_n_small = sizeof nt_small_sizes / sizeof nt_small_sizes[0];
const size_t nt_n_medium = sizeof nt_medium_sizes / sizeof nt_medium_sizes[0];
const size_t nt_n_large = sizeof nt_large_sizes / sizeof nt_large_sizes[0];

/* ---- topology ------------------------------------------------------------------------ */

static bool read_line(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return false;
    bool ok = fgets(buf, (int)cap, f) != NULL;
    fclose(f);
    return ok;
}

/* "0-2,5" -> callback per number; returns the highest, -1 if empty */
static int parse_list(const char *s, void (*fn)(int, void *), void *arg)
{
    int max = -1;
    while (*s && *s != '\n') {
        char *e;
        long a = strtol(s, &e, 10), b = a;
        if (e == s) break;
        if (*e == '-') b = strtol(e + 1, &e, 10);
        for (long i = a; i <= b; i++) { fn((int)i, arg); if (i > max) max = (int)i; }
        s = *e == ',' ? e + 1 : e;
    }
    return max;
}

static void mark_mem(int n, void *arg) { (void)arg; if (n < NT_MAX_NODES) nt_topo.has_memory[n] = true; }
static void mark_cpu(int c, void *arg) { CPU_SET(c, (cpu_set_t *)arg); }
static void note_node(int n, void *arg) { (void)n; (void)arg; }

void nt_topo_read(void)
{
    char buf[4096];
    memset(&nt_topo, 0, sizeof nt_topo);
    if (!read_line("/sys/devices/system/node/possible", buf, sizeof buf)) {
        /* no NUMA sysfs: one node with every CPU */
        nt_topo.has_memory[0] = true;
        nt_topo.nmem = 1;
        sched_getaffinity(0, sizeof nt_topo.cpus[0], &nt_topo.cpus[0]);
        nt_topo.ncpus[0] = CPU_COUNT(&nt_topo.cpus[0]);
        return;
    }
    nt_topo.max_node = parse_list(buf, note_node, NULL);
    if (nt_topo.max_node >= NT_MAX_NODES) nt_topo.max_node = NT_MAX_NODES - 1;
    if (read_line("/sys/devices/system/node/has_memory", buf, sizeof buf)) parse_list(buf, mark_mem, NULL);
    else nt_topo.has_memory[0] = true;
    for (int n = 0; n <= nt_topo.max_node; n++) {
        char path[128];
        nt_topo.nmem += nt_topo.has_memory[n];
        CPU_ZERO(&nt_topo.cpus[n]);
        snprintf(path, sizeof path, "/sys/devices/system/node/node%d/cpulist", n);
        if (read_line(path, buf, sizeof buf)) parse_list(buf, mark_cpu, &nt_topo.cpus[n]);
        nt_topo.ncpus[n] = CPU_COUNT(&nt_topo.cpus[n]);
    }
}

int nt_current_node(void)
{
    unsigned cpu = 0, node = 0;
    if (syscall(SYS_getcpu, &cpu, &node, NULL) != 0) return -1;
    return (int)node;
}

bool nt_pin_to_node(int n)
{
    if (n < 0 || n > nt_topo.max_node || nt_topo.ncpus[n] == 0)
        return nt_check(false, "pin to node %d: the node has no CPUs", n);
    if (sched_setaffinity(0, sizeof nt_topo.cpus[n], &nt_topo.cpus[n]) != 0)
        return nt_check(false, "pin to node %d: sched_setaffinity: %s", n, strerror(errno));
    /* the scheduler moves us at the next tick at the latest; yield to hurry it */
    for (int i = 0; i < 1000 && nt_current_node() != n; i++) sched_yield();
    return nt_check(nt_current_node() == n, "pinned to node %d (running on node %d)", n, nt_current_node());
}

typedef struct pinned_arg {
    int node;
    void *(*fn)(void *);
    void *arg;
} pinned_arg_t;

static void *pinned_start(void *v)
{
    pinned_arg_t *a = v;
    /* created with the affinity already set; setting it again checks we run there */
    if (!nt_pin_to_node(a->node)) return NULL;
    return a->fn(a->arg);
}

void nt_run_on_node(int n, void *(*fn)(void *), void *arg)
{
    pthread_attr_t at;
    pthread_t t;
    pinned_arg_t a = { n, fn, arg };
    pthread_attr_init(&at);
    /* the new thread's first malloc must already see node n (its cache is bound
     * to the domain of the CPU it first allocates on) */
    if (nt_topo.ncpus[n] && pthread_attr_setaffinity_np(&at, sizeof nt_topo.cpus[n], &nt_topo.cpus[n]) != 0)
        nt_check(false, "pthread_attr_setaffinity_np(node %d)", n);
    int e = pthread_create(&t, &at, pinned_start, &a);
    pthread_attr_destroy(&at);
    if (e != 0) { nt_check(false, "pthread_create: %s", strerror(e)); return; }
    pthread_join(t, NULL);
}

/* ---- API ------------------------------------------------------------------------------- */

void nt_api_load(void)
{
#define LOAD(field, name) *(void **)&nt_api.field = dlsym(RTLD_DEFAULT, name)
    LOAD(alloc_onnode, "numamalloc_alloc_onnode");
    LOAD(alloc_onnode_flags, "numamalloc_alloc_onnode_flags");
    LOAD(alloc_interleaved, "numamalloc_alloc_interleaved");
    LOAD(node_of, "numamalloc_node_of");
    LOAD(resident_node, "numamalloc_resident_node");
    LOAD(block_info, "numamalloc_block_info");
    LOAD(stats_json, "numamalloc_stats_json");
    LOAD(option_get, "numamalloc_option_get");
    LOAD(thread_policy_set, "numamalloc_thread_policy_set");
    LOAD(thread_policy_get, "numamalloc_thread_policy_get");
    LOAD(nodes_with_memory, "numamalloc_nodes_with_memory");
    LOAD(node_of_cpu, "numamalloc_node_of_cpu");
    LOAD(current_node, "numamalloc_current_node");
#undef LOAD
    if (!nt_api.alloc_onnode || !nt_api.alloc_interleaved || !nt_api.node_of || !nt_api.block_info ||
        !nt_api.stats_json || !nt_api.option_get || !nt_api.alloc_onnode_flags || !nt_api.resident_node ||
        !nt_api.thread_policy_set || !nt_api.thread_policy_get || !nt_api.nodes_with_memory ||
        !nt_api.node_of_cpu || !nt_api.current_node) {
        nt_say("FAIL numamalloc_* not found: run under LD_PRELOAD=libnumamalloc.so");
        exit(2);
    }
}

/* ---- pages --------------------------------------------------------------------------- */

void nt_pages_add(nt_pages_t *s, const void *p, size_t len)
{
    if (len == 0) return;
    uintptr_t a = (uintptr_t)p & ~(NT_PAGE - 1), end = (uintptr_t)p + len;
    for (; a < end; a += NT_PAGE) {
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 1024;
            s->v = realloc(s->v, s->cap * sizeof *s->v);
            if (s->v == NULL) { nt_say("FAIL out of memory"); exit(2); }
        }
        s->v[s->n++] = a;
    }
}

void nt_pages_free(nt_pages_t *s)
{
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
}

static int cmp_addr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

int nt_page_node(const void *p)
{
    void *pg[1] = { (void *)((uintptr_t)p & ~(NT_PAGE - 1)) };
    int st = -1;
    if (syscall(SYS_move_pages, 0, 1UL, pg, NULL, &st, 0) != 0) return -errno;
    return st;
}

int nt_page_node_gm(const void *p)
{
    int node = -1;
    if (syscall(SYS_get_mempolicy, &node, NULL, 0UL, p, (unsigned long)(MPOL_F_NODE_ | MPOL_F_ADDR_)) != 0) return -errno;
    return node;
}

int nt_policy_of(const void *p, uint64_t *mask)
{
    int mode = -1;
    unsigned long m[16] = { 0 };             /* 1024 nodes; NT_MAX_NODES is far below */
    *mask = 0;
    if (syscall(SYS_get_mempolicy, &mode, m, 1024UL, p, (unsigned long)MPOL_F_ADDR_) != 0) return -errno;
    *mask = m[0];
    return mode;
}

void nt_tally(nt_pages_t *s, nt_tally_t *t)
{
    memset(t, 0, sizeof *t);
    if (s->n == 0) return;
    qsort(s->v, s->n, sizeof *s->v, cmp_addr);
    size_t u = 1;
    for (size_t i = 1; i < s->n; i++) if (s->v[i] != s->v[u - 1]) s->v[u++] = s->v[i];
    s->n = u;
    enum { BATCH = 4096 };
    static __thread void *pg[BATCH];
    static __thread int st[BATCH];
    for (size_t i = 0; i < s->n; i += BATCH) {
        size_t k = s->n - i < BATCH ? s->n - i : BATCH;
        for (size_t j = 0; j < k; j++) { pg[j] = (void *)s->v[i + j]; st[j] = -1; }
        if (syscall(SYS_move_pages, 0, (unsigned long)k, pg, NULL, st, 0) != 0)
            for (size_t j = 0; j < k; j++) st[j] = -errno;
        for (size_t j = 0; j < k; j++) {
            t->total++;
            if (st[j] < 0 || st[j] >= NT_MAX_NODES) { t->missing++; continue; }
            t->on[st[j]]++;
            if (nt_page_node_gm(pg[j]) != st[j]) t->disagree++;
        }
    }
}

void nt_touch(void *p, size_t len)
{
    char *c = p;
    if (len <= 65536) { memset(c, 0x5a, len); return; }
    for (size_t off = 0; off < len; off += NT_PAGE) c[off] = 0x5a;
    c[len - 1] = 0x5a;
}

/* ---- checks ---------------------------------------------------------------------------- */

/* Threads of one test print at the same time: every line is formatted whole and
 * written with one stdio call, so lines never interleave. */
typedef struct line {
    char buf[1024];
    size_t len;
} line_t;

static void line_add(line_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void line_add(line_t *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (l->len < sizeof l->buf) {
        int n = vsnprintf(l->buf + l->len, sizeof l->buf - l->len, fmt, ap);
        if (n > 0) l->len += (size_t)n;
        if (l->len >= sizeof l->buf) l->len = sizeof l->buf - 1;
    }
    va_end(ap);
}

static void line_put(line_t *l)
{
    flockfile(stdout);
    fputs(l->buf, stdout);
    fputc('\n', stdout);
    fflush(stdout);
    funlockfile(stdout);
}

void nt_say(const char *fmt, ...)
{
    line_t l = { .len = 0 };
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(l.buf, sizeof l.buf, fmt, ap);
    va_end(ap);
    (void)n;
    line_put(&l);
}

bool nt_check(bool ok, const char *fmt, ...)
{
    line_t l = { .len = 0 };
    va_list ap;
    line_add(&l, "%s ", ok ? "PASS" : "FAIL");
    va_start(ap, fmt);
    if (l.len < sizeof l.buf) {
        int n = vsnprintf(l.buf + l.len, sizeof l.buf - l.len, fmt, ap);
        if (n > 0) l.len += (size_t)n;
    }
    va_end(ap);
    line_put(&l);
    if (!ok) __atomic_fetch_add(&nt_failures, 1, __ATOMIC_RELAXED);
    return ok;
}

static double pct(size_t k, size_t n) { return n ? 100.0 * (double)k / (double)n : 0.0; }

static void add_spread(line_t *l, const nt_tally_t *t)
{
    line_add(l, " spread");
    for (int n = 0; n <= nt_topo.max_node; n++)
        if (t->on[n] || nt_topo.has_memory[n]) line_add(l, " n%d=%.1f%%", n, pct(t->on[n], t->total));
    line_add(l, " missing=%zu gm_disagree=%zu", t->missing, t->disagree);
}

void nt_report_node(const char *label, const nt_tally_t *t, int node, const char *note)
{
    line_t l = { .len = 0 };
    line_add(&l, "RESULT %s: %zu/%zu pages on node %d (%.2f%%)", label, t->on[node], t->total, node,
             pct(t->on[node], t->total));
    add_spread(&l, t);
    if (note) line_add(&l, " (%s)", note);
    line_put(&l);
}

bool nt_expect_node(const char *label, const nt_tally_t *t, int node, double min_pct)
{
    nt_report_node(label, t, node, NULL);
    bool ok = t->total > 0 && pct(t->on[node], t->total) >= min_pct && t->disagree == 0;
    return nt_check(ok, "%s: >= %.1f%% of %zu touched pages on node %d, move_pages and get_mempolicy agree",
                    label, min_pct, t->total, node);
}

static int count_nodes(uint64_t nodes)
{
    int k = 0;
    for (int n = 0; n <= nt_topo.max_node; n++) k += (int)((nodes >> n) & 1);
    return k;
}

void nt_report_spread(const char *label, const nt_tally_t *t, uint64_t nodes, const char *note)
{
    int k = count_nodes(nodes);
    line_t l = { .len = 0 };
    line_add(&l, "RESULT %s: %zu pages, even share %.0f,", label, t->total, k ? (double)t->total / k : 0.0);
    add_spread(&l, t);
    if (note) line_add(&l, " (%s)", note);
    line_put(&l);
}

bool nt_expect_spread(const char *label, const nt_tally_t *t, uint64_t nodes, double tolerance)
{
    int k = count_nodes(nodes);
    double even = k ? (double)t->total / k : 0;
    bool ok = t->total > 0 && k > 0 && t->disagree == 0 && t->missing == 0;
    size_t inside = 0;
    nt_report_spread(label, t, nodes, NULL);
    for (int n = 0; n <= nt_topo.max_node; n++) {
        if (!((nodes >> n) & 1)) continue;
        inside += t->on[n];
        double dev = even > 0 ? ((double)t->on[n] - even) / even : 1;
        if (dev < -tolerance || dev > tolerance) ok = false;
    }
    if (inside != t->total) ok = false;        /* pages outside the set of nodes */
    return nt_check(ok, "%s: each of %d nodes within %.0f%% of an even share of %zu pages", label, k,
                    tolerance * 100, t->total);
}

bool nt_expect_interleaved(const char *label, const void *p, const nt_tally_t *t, uint64_t nodes)
{
    uint64_t mask;
    int mode = nt_policy_of(p, &mask);
    nt_report_spread(label, t, nodes, "2 MiB units with THP: split measured, not asserted");
    bool ok = nt_check(mode == NT_MPOL_INTERLEAVE && mask == nodes,
                       "%s: mapping policy is MPOL_INTERLEAVE over nodes 0x%llx (got mode %d nodes 0x%llx)", label,
                       (unsigned long long)nodes, mode, (unsigned long long)mask);
    size_t inside = 0;
    bool all = t->total > 0 && t->missing == 0 && t->disagree == 0;
    for (int n = 0; n <= nt_topo.max_node; n++) {
        if (!((nodes >> n) & 1)) continue;
        inside += t->on[n];
        if (t->on[n] == 0) all = false;
    }
    if (inside != t->total) all = false;
    return nt_check(all, "%s: every one of %d nodes holds pages of the block and no other node does", label,
                    count_nodes(nodes)) && ok;
}

int nt_finish(const char *prog)
{
    nt_say("%s: %d failure(s)", prog, nt_failures);
    return nt_failures ? 1 : 0;
}

/* ---- JSON ---------------------------------------------------------------------------------- */

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r') p++;
    return p;
}

static const char *skip_string(const char *p)    /* p at the opening quote */
{
    for (p++; *p && *p != '"'; p++) if (*p == '\\' && p[1]) p++;
    return *p ? p + 1 : p;
}

const char *nt_json_skip(const char *v)
{
    v = skip_ws(v);
    if (*v == '"') return skip_string(v);
    if (*v == '{' || *v == '[') {
        int depth = 0;
        for (const char *p = v; *p; ) {
            if (*p == '"') { p = skip_string(p); continue; }
            if (*p == '{' || *p == '[') depth++;
            else if ((*p == '}' || *p == ']') && --depth == 0) return p + 1;
            p++;
        }
        return v + strlen(v);
    }
    while (*v && *v != ',' && *v != '}' && *v != ']') v++;
    return v;
}

const char *nt_json_get(const char *obj, const char *key, const char **end)
{
    const char *p = skip_ws(obj);
    if (*p != '{') return NULL;
    p++;
    size_t kl = strlen(key);
    for (;;) {
        p = skip_ws(p);
        if (*p != '"') return NULL;
        const char *k = p + 1, *ke = skip_string(p);
        p = skip_ws(ke);
        if (*p != ':') return NULL;
        const char *v = skip_ws(p + 1), *ve = nt_json_skip(v);
        if ((size_t)(ke - 1 - k) == kl && strncmp(k, key, kl) == 0) {
            if (end) *end = ve;
            return v;
        }
        p = skip_ws(ve);
        if (*p != ',') return NULL;
        p++;
    }
}

bool nt_json_u64(const char *obj, const char *key, uint64_t *v)
{
    const char *s = nt_json_get(obj, key, NULL);
    if (s == NULL || *s < '0' || *s > '9') return false;
    *v = strtoull(s, NULL, 10);
    return true;
}

bool nt_json_str(const char *obj, const char *key, char *buf, size_t cap)
{
    const char *e, *s = nt_json_get(obj, key, &e);
    if (s == NULL || *s != '"' || cap == 0) return false;
    size_t n = (size_t)(e - s) - 2;
    if (n >= cap) n = cap - 1;
    memcpy(buf, s + 1, n);
    buf[n] = 0;
    return true;
}

const char *nt_json_elem(const char *arr, int i)
{
    const char *p = skip_ws(arr);
    if (*p != '[') return NULL;
    p = skip_ws(p + 1);
    if (*p == ']') return NULL;
    for (int k = 0;; k++) {
        if (k == i) return p;
        p = skip_ws(nt_json_skip(p));
        if (*p != ',') return NULL;
        p = skip_ws(p + 1);
    }
}

char *nt_stats_json(void)
{
    /* mapped here, not malloc'ed: the buffer must not be one of the blocks measured */
    size_t cap = NT_JSON_CAP;
    char *buf = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (buf == MAP_FAILED) { nt_say("FAIL out of memory"); exit(2); }
    size_t need = nt_api.stats_json(buf, cap);
    if (need >= cap) nt_check(false, "stats dump of %zu bytes fits in %zu", need, cap);
    return buf;
}

void nt_stats_json_free(char *json) { munmap(json, NT_JSON_CAP); }

/* ---- smaps ------------------------------------------------------------------------------- */

nt_smaps_t nt_smaps_of(const void *p)
{
    nt_smaps_t r = { .thp_eligible = -1, .kernel_page_kb = -1 };
    FILE *f = fopen("/proc/self/smaps", "r");
    if (f == NULL) return r;
    char line[512];
    bool in = false;
    while (fgets(line, sizeof line, f)) {
        unsigned long a, b;
        char c;
        /* a mapping's header starts with its lower-case hex range; the fields
         * under it start with a capitalised name */
        if ((line[0] < 'A' || line[0] > 'Z') && sscanf(line, "%lx-%lx %c", &a, &b, &c) == 3) {
            if (in) break;                   /* past the mapping we wanted */
            in = (uintptr_t)p >= a && (uintptr_t)p < b;
            if (in) { r.found = true; r.start = a; r.end = b; }
            continue;
        }
        if (!in) continue;
        long v;
        if (sscanf(line, "KernelPageSize: %ld kB", &v) == 1) r.kernel_page_kb = v;
        else if (sscanf(line, "AnonHugePages: %ld kB", &v) == 1) r.anon_huge_kb = v;
        else if (sscanf(line, "Rss: %ld kB", &v) == 1) r.rss_kb = v;
        else if (sscanf(line, "THPeligible: %ld", &v) == 1) r.thp_eligible = (int)v;
    }
    fclose(f);
    return r;
}

/* ---- hugetlb pools -------------------------------------------------------------------------- */

static void huge_path(char *buf, size_t cap, int node, const char *what)
{
    if (node < 0) snprintf(buf, cap, "/sys/kernel/mm/hugepages/hugepages-2048kB/%s", what);
    else snprintf(buf, cap, "/sys/devices/system/node/node%d/hugepages/hugepages-2048kB/%s", node, what);
}

static long huge_read(int node, const char *what)
{
    char path[160], buf[64];
    huge_path(path, sizeof path, node, what);
    return read_line(path, buf, sizeof buf) ? strtol(buf, NULL, 10) : -1;
}

long nt_huge_free(int node) { return huge_read(node, "free_hugepages"); }
long nt_huge_nr(int node) { return huge_read(node, "nr_hugepages"); }

bool nt_huge_set_nr(int node, long n)
{
    char path[160];
    huge_path(path, sizeof path, node, "nr_hugepages");
    FILE *f = fopen(path, "w");
    if (f == NULL) return false;
    fprintf(f, "%ld\n", n);
    return fclose(f) == 0 && nt_huge_nr(node) == n;
}
