/* bench/bench_locality.c — what NUMA locality is worth, and how much of it each
 * allocator gives a multi-threaded program.
 *
 *   bench_locality topo
 *       the nodes, their CPUs and memory, and the SLIT distance matrix
 *   bench_locality latency [MIB [STEPS]]
 *       for every node with CPUs c and every node with memory m: a thread pinned to
 *       c chases pointers through a MIB MiB working set (default 256) on m (one
 *       random cyclic permutation of 64-byte lines: every load misses the caches)
 *       and then streams through it; prints ns per load and GB/s. The memory is
 *       numamalloc_alloc_onnode's when numamalloc is preloaded, else mmap + mbind
 *       (MPOL_BIND); where its pages really are is checked with move_pages.
 *   bench_locality share NAME [BLOCKS [ROUNDS [HANDOFF%]]]
 *       one thread per node with CPUs, pinned there; every round each builds BLOCKS
 *       blocks of 32 B .. 64 KiB (and every 64th of 256 KiB), writes them, reads
 *       them twice, hands HANDOFF% of them (default 25) to the thread of the next
 *       node, which reads and frees them, and frees the rest. NAME labels the
 *       allocator the program runs on (LD_PRELOAD). Prints the time (the slowest
 *       thread's work, sampling excluded) and the share of bytes read that were
 *       on another node than the reading thread (the first page of every block,
 *       by move_pages).
 * Raw system calls and sysfs only (no libnuma): runs unchanged on a multi-socket
 * machine and in the QEMU VMs of scripts/numa-vm.sh (bench/numa.sh drives both). In
 * a VM remote and local memory cost the same: the latency ratios need real
 * hardware; the remote shares are what the VMs measure. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_NODES 64
#define LINE 64

static int nnodes, max_node;
static int has_mem[MAX_NODES], ncpus[MAX_NODES];
static cpu_set_t cpus[MAX_NODES];
static int dist[MAX_NODES][MAX_NODES];

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int read_text(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) return -1;
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose(f);
    return (int)n;
}

typedef void (*each_fn)(int, void *);
static int parse_list(const char *s, each_fn fn, void *arg)
{
    int max = -1;
    while (*s && *s != '\n') {
        char *e;
        long a = strtol(s, &e, 10), b = a;
        if (e == s) break;
        if (*e == '-') b = strtol(e + 1, &e, 10);
        for (long i = a; i <= b; i++) { if (fn) fn((int)i, arg); if (i > max) max = (int)i; }
        s = *e == ',' ? e + 1 : e;
    }
    return max;
}
static void mark_mem(int n, void *a) { (void)a; if (n < MAX_NODES) has_mem[n] = 1; }
static void mark_cpu(int c, void *a) { CPU_SET(c, (cpu_set_t *)a); }

static void topo_read(void)
{
    char buf[4096], path[128];
    if (read_text("/sys/devices/system/node/possible", buf, sizeof buf) <= 0) {
        max_node = 0;
        has_mem[0] = 1;
        sched_getaffinity(0, sizeof cpus[0], &cpus[0]);
        ncpus[0] = CPU_COUNT(&cpus[0]);
        dist[0][0] = 10;
        nnodes = 1;
        return;
    }
    max_node = parse_list(buf, NULL, NULL);
    if (max_node >= MAX_NODES) max_node = MAX_NODES - 1;
    if (read_text("/sys/devices/system/node/has_memory", buf, sizeof buf) > 0) parse_list(buf, mark_mem, NULL);
    for (int n = 0; n <= max_node; n++) {
        snprintf(path, sizeof path, "/sys/devices/system/node/node%d/cpulist", n);
        CPU_ZERO(&cpus[n]);
        if (read_text(path, buf, sizeof buf) > 0) parse_list(buf, mark_cpu, &cpus[n]);
        ncpus[n] = CPU_COUNT(&cpus[n]);
        nnodes += has_mem[n] || ncpus[n];
        snprintf(path, sizeof path, "/sys/devices/system/node/node%d/distance", n);
        if (read_text(path, buf, sizeof buf) > 0) {
            char *s = buf;
            for (int m = 0; m <= max_node; m++) dist[n][m] = (int)strtol(s, &s, 10);
        }
    }
}

static int current_node(void)
{
    unsigned cpu = 0, node = 0;
    syscall(SYS_getcpu, &cpu, &node, NULL);
    return (int)node;
}

static int pin(int node)
{
    if (sched_setaffinity(0, sizeof cpus[node], &cpus[node]) != 0) return -1;
    for (int i = 0; i < 1000 && current_node() != node; i++) sched_yield();
    return current_node() == node ? 0 : -1;
}

static void print_topo(void)
{
    printf("TOPO nodes %d (max id %d)\n", nnodes, max_node);
    for (int n = 0; n <= max_node; n++) {
        char buf[4096], path[128];
        unsigned long long kb = 0;
        snprintf(path, sizeof path, "/sys/devices/system/node/node%d/meminfo", n);
        if (read_text(path, buf, sizeof buf) > 0) {
            char *p = strstr(buf, "MemTotal:");
            if (p) kb = strtoull(p + 9, NULL, 10);
        }
        printf("TOPO node %d: %d CPU(s), %s, %.0f MiB\n", n, ncpus[n], has_mem[n] ? "memory" : "no memory", kb / 1024.0);
    }
    printf("TOPO distances (SLIT):");
    for (int m = 0; m <= max_node; m++) printf(" %4d", m);
    printf("\n");
    for (int n = 0; n <= max_node; n++) {
        printf("TOPO   node %2d:", n);
        for (int m = 0; m <= max_node; m++) printf(" %4d", dist[n][m]);
        printf("\n");
    }
}

/* ---- (a) latency and bandwidth ----------------------------------------------------------- */

static void *(*onnode)(size_t, int);

static void *alloc_on(size_t len, int node, const char **how)
{
    if (onnode) { *how = "numamalloc_alloc_onnode"; return onnode(len, node); }
    *how = "mmap+mbind";
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
    madvise(p, len, MADV_HUGEPAGE);
    unsigned long mask[MAX_NODES / 64 + 1] = { 0 };
    mask[node / 64] = 1UL << (node % 64);
    if (syscall(SYS_mbind, p, len, 2 /* MPOL_BIND */, mask, (unsigned long)MAX_NODES + 1, 0) != 0) {
        munmap(p, len);
        return NULL;
    }
    return p;
}

static void free_on(void *p, size_t len)
{
    if (onnode) free(p);
    else munmap(p, len);
}

/* share of the pages of [p, p+len) on node, sampled every 64th page */
static double share_on(const char *p, size_t len, int node)
{
    enum { B = 1024 };
    void *pg[B];
    int st[B];
    size_t on = 0, all = 0, n = 0;
    for (size_t off = 0; off < len; off += 64 * 4096) {
        pg[n++] = (void *)(p + off);
        if (n == B || off + 64 * 4096 >= len) {
            if (syscall(SYS_move_pages, 0, (unsigned long)n, pg, NULL, st, 0) == 0)
                for (size_t i = 0; i < n; i++) { all++; on += st[i] == node; }
            n = 0;
        }
    }
    return all ? (double)on / (double)all : 0;
}

static void latency(size_t mib, long steps)
{
    size_t len = mib << 20, lines = len / LINE;
    *(void **)&onnode = dlsym(RTLD_DEFAULT, "numamalloc_alloc_onnode");
    printf("LAT working set %zu MiB, %ld dependent loads, memory from %s\n", mib, steps,
           onnode ? "numamalloc_alloc_onnode" : "mmap+mbind");
    size_t *perm = malloc(lines * sizeof *perm);
    for (int c = 0; c <= max_node; c++) {
        if (!ncpus[c] || pin(c) != 0) continue;
        for (int m = 0; m <= max_node; m++) {
            if (!has_mem[m]) continue;
            const char *how;
            char *mem = alloc_on(len, m, &how);
            if (mem == NULL) { printf("LAT cpu-node %d mem-node %d: allocation failed (%s)\n", c, m, strerror(errno)); continue; }
            /* Sattolo: one cycle through every line, in random order */
            for (size_t i = 0; i < lines; i++) perm[i] = i;
            uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)(c * 131 + m);
            for (size_t i = lines - 1; i > 0; i--) {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                size_t j = x % i, t = perm[i];
                perm[i] = perm[j];
                perm[j] = t;
            }
            for (size_t i = 0; i < lines; i++) *(char **)(mem + perm[i] * LINE) = mem + perm[(i + 1) % lines] * LINE;
            double placed = share_on(mem, len, m);
            char *p = mem;
            for (long i = 0; i < steps / 10; i++) p = *(char **)p;              /* warm the TLB and the path */
            double t0 = now();
            for (long i = 0; i < steps; i++) p = *(char **)p;
            double lat = (now() - t0) * 1e9 / (double)steps;
            /* streaming read: 64-bit loads, the whole set, several times */
            volatile uint64_t sink = (uint64_t)(uintptr_t)p;
            uint64_t sum = 0;
            int passes = 4;
            t0 = now();
            for (int r = 0; r < passes; r++) {
                const uint64_t *q = (const uint64_t *)mem;
                for (size_t i = 0; i < len / 8; i += 8)
                    sum += q[i] + q[i + 1] + q[i + 2] + q[i + 3] + q[i + 4] + q[i + 5] + q[i + 6] + q[i + 7];
            }
            double bw = (double)len * passes / (now() - t0) / 1e9;
            sink += sum;
            printf("LAT cpu-node %d mem-node %d distance %d: %.1f ns/load, %.2f GB/s read (%.0f%% of pages on node %d)\n", c,
                   m, dist[c][m], lat, bw, placed * 100, m);
            free_on(mem, len);
        }
    }
    free(perm);
}

/* ---- (b) a program sharing blocks across nodes --------------------------------------------- */

typedef struct blk { char *p; size_t n; } blk_t;

typedef struct worker {
    int node, idx;
    int nblocks, rounds, handoff;
    blk_t *mine;                       /* this round's blocks */
    blk_t *inbox;                      /* handed over by the previous node's thread */
    int ninbox;
    struct worker *next;
    pthread_barrier_t *bar;
    double work;                       /* seconds, sampling excluded */
    uint64_t own_read, own_remote;     /* bytes read of its own blocks, of which on another node */
    uint64_t in_read, in_remote;       /* the same for the blocks handed to it */
    uint64_t sum;
} worker_t;

static size_t block_size(uint64_t *x, int i)
{
    *x ^= *x << 13; *x ^= *x >> 7; *x ^= *x << 17;
    if (i % 64 == 63) return 256 << 10;
    return (size_t)32 << (*x % 12);     /* 32 B .. 64 KiB */
}

/* node of each block's first page, for blocks [0, n) of b; read weights */
static void sample(const blk_t *b, int n, int node, uint64_t *read, uint64_t *remote)
{
    enum { B = 1024 };
    void *pg[B];
    int st[B];
    for (int i = 0; i < n; i += B) {
        int k = n - i < B ? n - i : B;
        for (int j = 0; j < k; j++) pg[j] = (void *)((uintptr_t)b[i + j].p & ~4095UL);
        if (syscall(SYS_move_pages, 0, (unsigned long)k, pg, NULL, st, 0) != 0) continue;
        for (int j = 0; j < k; j++) {
            if (st[j] < 0) continue;
            *read += b[i + j].n;
            if (st[j] != node) *remote += b[i + j].n;
        }
    }
}

static uint64_t read_blocks(const blk_t *b, int n, int times)
{
    uint64_t s = 0;
    for (int t = 0; t < times; t++)
        for (int i = 0; i < n; i++) {
            const uint64_t *q = (const uint64_t *)b[i].p;
            for (size_t k = 0; k < b[i].n / 8; k += 4) s += q[k];
        }
    return s;
}

static void *share_worker(void *v)
{
    worker_t *w = v;
    if (pin(w->node) != 0) fprintf(stderr, "cannot pin to node %d\n", w->node);
    uint64_t x = 0x853c49e6748fea9bull + (uint64_t)w->idx;
    for (int r = 0; r < w->rounds; r++) {
        double t0 = now();
        for (int i = 0; i < w->nblocks; i++) {
            size_t n = block_size(&x, i);
            char *p = malloc(n);
            memset(p, (int)(i & 0xff), n);
            w->mine[i] = (blk_t){ p, n };
        }
        w->sum += read_blocks(w->mine, w->nblocks, 2);
        /* the last HANDOFF% go to the next node's thread */
        int keep = w->nblocks - w->nblocks * w->handoff / 100;
        w->next->ninbox = w->nblocks - keep;
        w->next->inbox = w->mine + keep;
        w->work += now() - t0;
        sample(w->mine, keep, w->node, &w->own_read, &w->own_remote);     /* (not timed) */
        pthread_barrier_wait(w->bar);
        t0 = now();
        w->sum += read_blocks(w->inbox, w->ninbox, 2);
        double t1 = now();
        sample(w->inbox, w->ninbox, w->node, &w->in_read, &w->in_remote);
        double t2 = now();
        for (int i = 0; i < w->ninbox; i++) free(w->inbox[i].p);
        for (int i = 0; i < keep; i++) free(w->mine[i].p);
        w->work += (t1 - t0) + (now() - t2);
        pthread_barrier_wait(w->bar);    /* the inbox arrays are reused next round */
    }
    return NULL;
}

static void share(const char *name, int nblocks, int rounds, int handoff)
{
    worker_t w[MAX_NODES];
    int k = 0;
    for (int n = 0; n <= max_node; n++)
        if (ncpus[n] && has_mem[n]) {
            w[k] = (worker_t){ .node = n, .idx = k, .nblocks = nblocks, .rounds = rounds, .handoff = handoff };
            w[k].mine = calloc((size_t)nblocks, sizeof(blk_t));
            k++;
        }
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)k);
    pthread_t t[MAX_NODES];
    for (int i = 0; i < k; i++) { w[i].next = &w[(i + 1) % k]; w[i].bar = &bar; }
    double t0 = now();
    for (int i = 0; i < k; i++) pthread_create(&t[i], NULL, share_worker, &w[i]);
    for (int i = 0; i < k; i++) pthread_join(t[i], NULL);
    double wall = now() - t0, slowest = 0;
    uint64_t or_ = 0, orem = 0, ir = 0, irem = 0;
    for (int i = 0; i < k; i++) {
        if (w[i].work > slowest) slowest = w[i].work;
        or_ += w[i].own_read; orem += w[i].own_remote; ir += w[i].in_read; irem += w[i].in_remote;
    }
    double own = or_ ? 100.0 * orem / or_ : 0, in = ir ? 100.0 * irem / ir : 0;
    /* each block is read twice by its allocating thread and twice by the one it was
     * handed to: weigh both as read */
    double all = (or_ + ir) ? 100.0 * (orem + irem) / (or_ + ir) : 0;
    printf("SHARE allocator=%s threads=%d blocks=%d rounds=%d handoff=%d%% work_ms=%.1f wall_ms=%.1f "
           "remote_pct=%.1f own_remote_pct=%.1f handed_remote_pct=%.1f\n",
           name, k, nblocks, rounds, handoff, slowest * 1e3, wall * 1e3, all, own, in);
    pthread_barrier_destroy(&bar);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    topo_read();
    const char *what = argc > 1 ? argv[1] : "";
    if (!strcmp(what, "topo")) print_topo();
    else if (!strcmp(what, "latency")) {
        print_topo();
        latency(argc > 2 ? (size_t)atol(argv[2]) : 256, argc > 3 ? atol(argv[3]) : 20000000);
    } else if (!strcmp(what, "share") && argc > 2) {
        share(argv[2], argc > 3 ? atoi(argv[3]) : 20000, argc > 4 ? atoi(argv[4]) : 10, argc > 5 ? atoi(argv[5]) : 25);
    } else {
        fprintf(stderr, "usage: bench_locality topo | latency [MIB [STEPS]] | share NAME [BLOCKS [ROUNDS [HANDOFF%%]]]\n");
        return 2;
    }
    return 0;
}
