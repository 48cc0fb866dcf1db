/* tests/unit/test_topology.c — the sysfs topology reader (src/topology.c) fed fake
 * trees: nm_topo_parse_list, nm_topo_parse_meminfo, nm_topo_meminfo_key, and
 * nm_topo_init(root) on directories built under /tmp that mimic
 * /sys/devices/system/{cpu,node}:
 *   - 4 nodes, node 2 without CPUs, node 3 without memory, asymmetric distances;
 *   - sparse node ids (0 and 2 online out of 0-3 possible);
 *   - no node directory at all (a kernel without NUMA): one node, every CPU on it;
 *   - an empty root (nothing readable): still one node, one CPU.
 * plus the hugetlb counters read under the same root. This machine has one node,
 * so these trees are the only multi-node input the host tests see (the placement
 * itself is checked in the NUMA VM). Nothing is booted: nm_topo_init only
 * needs metadata memory. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "numamalloc/internal.h"

/* ---- nm_topo_parse_list -------------------------------------------------------------- */

static bool bit(const unsigned long *m, int i) { return (m[i / (8 * sizeof *m)] >> (i % (8 * sizeof *m))) & 1; }

Test(topology, parse_list)
{
    unsigned long m[2] = { 0 };
    cr_assert_eq(nm_topo_parse_list("0-3,8,10-11", m, 128), 11);
    for (int i = 0; i < 128; i++)
        cr_assert_eq(bit(m, i), (i <= 3 || i == 8 || i == 10 || i == 11), "bit %d", i);

    memset(m, 0, sizeof m);
    cr_assert_eq(nm_topo_parse_list("0-3,8,10-11\n", m, 128), 11, "sysfs files end in a newline");
    cr_assert_eq(m[0], 0xd0fUL);

    memset(m, 0, sizeof m);
    cr_assert_eq(nm_topo_parse_list("5", m, 128), 5);
    cr_assert_eq(m[0], 1UL << 5);
    cr_assert_eq(nm_topo_parse_list("0", NULL, 0), 0, "mask may be NULL");
    cr_assert_eq(nm_topo_parse_list("64-65\n", m, 128), 65);
    cr_assert(bit(m, 64) && bit(m, 65), "second word");
    cr_assert_eq(nm_topo_parse_list(" 7\n", NULL, 0), 7, "leading blanks");
    cr_assert_eq(nm_topo_parse_list("3,1", NULL, 0), 3, "highest id, not the last one");

    /* ids beyond nbits are counted in the result but not written past the mask */
    unsigned long small[2] = { 0, 0x5a5a5a5a };
    cr_assert_eq(nm_topo_parse_list("0-200", small, 64), 200);
    cr_assert_eq(small[0], ~0UL);
    cr_assert_eq(small[1], 0x5a5a5a5a, "bits past nbits written");
}

Test(topology, parse_list_empty_and_junk)
{
    unsigned long m[1] = { 0 };
    cr_assert_eq(nm_topo_parse_list("", m, 64), -1, "empty list");
    cr_assert_eq(nm_topo_parse_list("\n", m, 64), -1, "a lone newline (a node without CPUs)");
    cr_assert_eq(nm_topo_parse_list("   \n", m, 64), -1);
    cr_assert_eq(m[0], 0, "nothing set by empty lists");
    static const char *junk[] = { "a", "0-", "-3", "3-1", "1,,2", "1;2", "0-3x", "1 2", "0x3", "1-2-3", "0-99999999" };
    for (unsigned i = 0; i < NM_ARRAY_LEN(junk); i++)
        cr_assert_eq(nm_topo_parse_list(junk[i], NULL, 0), -2, "'%s' accepted", junk[i]);
}

Test(topology, parse_meminfo)
{
    const char *node = "Node 1 MemTotal:       16303404 kB\nNode 1 MemFree:        15000000 kB\n";
    cr_assert_eq(nm_topo_parse_meminfo(node), (uint64_t)16303404 << 10);
    const char *proc = "MemTotal:       24608396 kB\nMemFree:        20000000 kB\n";
    cr_assert_eq(nm_topo_parse_meminfo(proc), (uint64_t)24608396 << 10);
    cr_assert_eq(nm_topo_parse_meminfo("Node 3 MemTotal:              0 kB\n"), 0);
    cr_assert_eq(nm_topo_parse_meminfo("MemFree: 100 kB\n"), 0, "no MemTotal line");
    cr_assert_eq(nm_topo_parse_meminfo(""), 0);
    cr_assert_eq(nm_topo_parse_meminfo("MemTotal: lots\n"), 0);
    cr_assert_eq(nm_topo_parse_meminfo("Node 0 MemFree: 1 kB\nNode 0 MemTotal:\t2048 kB\n"), 2048 << 10, "not the first line");
}

Test(topology, meminfo_key)
{
    /* what strict domains read for a node's room (src/policy.c) */
    const char *node = "Node 1 MemTotal:       16303404 kB\nNode 1 MemFree:        15000000 kB\n"
                       "Node 1 Active(file):      4000 kB\nNode 1 Inactive(file):    6000 kB\n";
    uint64_t v = 0;
    cr_assert(nm_topo_meminfo_key(node, "MemFree:", &v) && v == (uint64_t)15000000 << 10);
    cr_assert(nm_topo_meminfo_key(node, "Active(file):", &v) && v == (uint64_t)4000 << 10,
              "not the tail of Inactive(file): %lu", (unsigned long)v);
    cr_assert(nm_topo_meminfo_key(node, "Inactive(file):", &v) && v == (uint64_t)6000 << 10);
    cr_assert(nm_topo_meminfo_key("MemFree:  7 kB\n", "MemFree:", &v) && v == 7 << 10, "/proc/meminfo form");
    cr_assert_not(nm_topo_meminfo_key(node, "Shmem:", &v));
    cr_assert_not(nm_topo_meminfo_key("MemFree: lots\n", "MemFree:", &v));
}

/* ---- fake sysfs trees ------------------------------------------------------------------ */

static char root[256];

static void mkdirs(const char *path)
{
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        cr_assert(mkdir(tmp, 0755) == 0 || errno == EEXIST, "mkdir %s", tmp);
        *p = '/';
    }
    cr_assert(mkdir(tmp, 0755) == 0 || errno == EEXIST, "mkdir %s", tmp);
}

/* write root/rel (creating directories) */
static void put(const char *rel, const char *text)
{
    char path[512], dir[512];
    snprintf(path, sizeof path, "%s%s", root, rel);
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = '\0';
    mkdirs(dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f, "create %s", path);
    fputs(text, f);
    fclose(f);
}

static void new_root(void)
{
    snprintf(root, sizeof root, "/tmp/nm-topo-XXXXXX");
    cr_assert_not_null(mkdtemp(root));
}

static void remove_root(void)
{
    if (root[0] == '\0') return;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    cr_assert_eq(system(cmd), 0);
    root[0] = '\0';
}

#define CPU  "/sys/devices/system/cpu"
#define NODE "/sys/devices/system/node"

/* 4 nodes, 8 CPUs: node 0 CPUs 0-1, node 1 CPUs 2-3, node 2 none (memory only),
 * node 3 CPUs 4-7 without memory. Distances are asymmetric so rows and columns
 * cannot be swapped unnoticed. */
static void four_nodes(void)
{
    put(CPU "/possible", "0-7\n");
    put(NODE "/possible", "0-3\n");
    put(NODE "/online", "0-3\n");
    put(NODE "/has_memory", "0-2\n");
    put(NODE "/node0/cpulist", "0-1\n");
    put(NODE "/node1/cpulist", "2-3\n");
    put(NODE "/node2/cpulist", "\n");
    put(NODE "/node3/cpulist", "4-7\n");
    put(NODE "/node0/meminfo", "Node 0 MemTotal:        1048576 kB\nNode 0 MemFree:          524288 kB\n");
    put(NODE "/node1/meminfo", "Node 1 MemTotal:        2097152 kB\n");
    put(NODE "/node2/meminfo", "Node 2 MemTotal:         524288 kB\n");
    put(NODE "/node3/meminfo", "Node 3 MemTotal:              0 kB\n");
    put(NODE "/node0/distance", "10 21 31 41\n");
    put(NODE "/node1/distance", "22 10 32 42\n");
    put(NODE "/node2/distance", "23 33 10 43\n");
    put(NODE "/node3/distance", "24 34 44 10\n");
}

Test(topology, four_nodes_memoryless_and_cpuless, .init = new_root, .fini = remove_root)
{
    four_nodes();
    cr_assert(nm_topo_init(root));
    cr_assert(nm_topo.sysfs);
    cr_assert_eq(nm_topo.max_node, 3);
    cr_assert_eq(nm_topo.nnodes, 4);
    cr_assert_eq(nm_topo.nmem, 3, "node 3 has no memory");
    cr_assert_eq(nm_topo.max_cpu, 7);
    static const int cpu_node[8] = { 0, 0, 1, 1, 3, 3, 3, 3 };
    for (int c = 0; c <= 7; c++) cr_assert_eq(nm_topo_cpu_node(c), cpu_node[c], "cpu %d", c);
    cr_assert_eq(nm_topo_cpu_node(8), 0, "beyond the possible CPUs: node 0");
    cr_assert_eq(nm_topo_cpu_node(-1), 0);
    static const uint32_t ncpus[4] = { 2, 2, 0, 4 };
    static const uint64_t mem_kb[4] = { 1048576, 2097152, 524288, 0 };
    for (int n = 0; n < 4; n++) {
        cr_assert(nm_topo.node[n].online, "node %d online", n);
        cr_assert_eq(nm_topo.node[n].ncpus, ncpus[n], "node %d CPUs", n);
        cr_assert_eq(nm_topo.node[n].mem_total, mem_kb[n] << 10, "node %d memory", n);
        cr_assert_eq(nm_topo_has_memory(n), n != 3, "node %d has_memory", n);
    }
    cr_assert_not(nm_topo_has_memory(4));
    cr_assert_not(nm_topo_has_memory(-1));
    cr_assert_eq(nm_topo.total_mem, (uint64_t)(1048576 + 2097152 + 524288) << 10);
    static const int dist[4][4] = { { 10, 21, 31, 41 }, { 22, 10, 32, 42 }, { 23, 33, 10, 43 }, { 24, 34, 44, 10 } };
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++) cr_assert_eq(nm_topo_distance(a, b), dist[a][b], "distance %d -> %d", a, b);
    cr_assert_eq(nm_topo_distance(0, 9), 20, "unknown node: remote");
    cr_assert_eq(nm_topo_distance(9, 9), 10);
}

Test(topology, sparse_node_ids, .init = new_root, .fini = remove_root)
{
    put(CPU "/possible", "0-3\n");
    put(NODE "/possible", "0-3\n");
    put(NODE "/online", "0,2\n");
    put(NODE "/has_memory", "0,2\n");
    put(NODE "/node0/cpulist", "0,2\n");
    put(NODE "/node2/cpulist", "1,3\n");
    put(NODE "/node0/meminfo", "Node 0 MemTotal: 4096 kB\n");
    put(NODE "/node2/meminfo", "Node 2 MemTotal: 8192 kB\n");
    /* one value per online node, in node order: 0 and 2 */
    put(NODE "/node0/distance", "10 21\n");
    put(NODE "/node2/distance", "21 10\n");
    cr_assert(nm_topo_init(root));
    cr_assert_eq(nm_topo.max_node, 3, "tables sized by the possible ids");
    cr_assert_eq(nm_topo.nnodes, 2);
    cr_assert_eq(nm_topo.nmem, 2);
    cr_assert(nm_topo.node[0].online);
    cr_assert_not(nm_topo.node[1].online);
    cr_assert(nm_topo.node[2].online);
    cr_assert_not(nm_topo.node[3].online);
    cr_assert_not(nm_topo_has_memory(1));
    cr_assert(nm_topo_has_memory(2));
    cr_assert_eq(nm_topo_cpu_node(0), 0);
    cr_assert_eq(nm_topo_cpu_node(1), 2);
    cr_assert_eq(nm_topo_cpu_node(2), 0);
    cr_assert_eq(nm_topo_cpu_node(3), 2);
    cr_assert_eq(nm_topo.node[0].ncpus, 2);
    cr_assert_eq(nm_topo.node[2].ncpus, 2);
    cr_assert_eq(nm_topo.node[2].mem_total, (uint64_t)8192 << 10);
    cr_assert_eq(nm_topo.total_mem, (uint64_t)(4096 + 8192) << 10);
    cr_assert_eq(nm_topo_distance(0, 2), 21, "the second value of node0/distance is node 2");
    cr_assert_eq(nm_topo_distance(2, 0), 21);
    cr_assert_eq(nm_topo_distance(0, 0), 10);
    cr_assert_eq(nm_topo_distance(2, 2), 10);
    cr_assert_eq(nm_topo_distance(0, 1), 20, "offline node: default remote distance");
    cr_assert_eq(nm_topo_distance(1, 1), 10);
}

Test(topology, no_node_directory_is_one_node, .init = new_root, .fini = remove_root)
{
    put(CPU "/possible", "0-5\n");
    put("/proc/meminfo", "MemTotal:        2048 kB\nMemFree:         1024 kB\n");
    cr_assert(nm_topo_init(root));
    cr_assert_not(nm_topo.sysfs);
    cr_assert_eq(nm_topo.max_node, 0);
    cr_assert_eq(nm_topo.nnodes, 1);
    cr_assert_eq(nm_topo.nmem, 1);
    cr_assert_eq(nm_topo.max_cpu, 5);
    cr_assert(nm_topo.node[0].online);
    cr_assert(nm_topo_has_memory(0));
    cr_assert_not(nm_topo_has_memory(1));
    cr_assert_eq(nm_topo.node[0].ncpus, 6);
    cr_assert_eq(nm_topo.node[0].mem_total, (uint64_t)2048 << 10);
    cr_assert_eq(nm_topo.total_mem, (uint64_t)2048 << 10);
    for (int c = 0; c <= 5; c++) cr_assert_eq(nm_topo_cpu_node(c), 0, "cpu %d", c);
    cr_assert_eq(nm_topo_distance(0, 0), 10);
}

Test(topology, empty_root_is_one_node_one_cpu, .init = new_root, .fini = remove_root)
{
    cr_assert(nm_topo_init(root));
    cr_assert_not(nm_topo.sysfs);
    cr_assert_eq(nm_topo.max_node, 0);
    cr_assert_eq(nm_topo.nnodes, 1);
    cr_assert_eq(nm_topo.nmem, 1);
    cr_assert_eq(nm_topo.max_cpu, 0);
    cr_assert_eq(nm_topo.node[0].ncpus, 1);
    cr_assert_eq(nm_topo.node[0].mem_total, 0, "no meminfo: unknown");
    cr_assert(nm_topo_has_memory(0));
}

Test(topology, node_dir_without_online_file, .init = new_root, .fini = remove_root)
{
    /* possible only: node 0 is assumed online, and has_memory follows online */
    put(CPU "/possible", "0-1\n");
    put(NODE "/possible", "0\n");
    put(NODE "/node0/cpulist", "0-1\n");
    cr_assert(nm_topo_init(root));
    cr_assert(nm_topo.sysfs);
    cr_assert_eq(nm_topo.nnodes, 1);
    cr_assert_eq(nm_topo.nmem, 1);
    cr_assert(nm_topo_has_memory(0));
    cr_assert_eq(nm_topo.node[0].ncpus, 2);
}

Test(topology, hugepage_counters, .init = new_root, .fini = remove_root)
{
    four_nodes();
    put(NODE "/node1/hugepages/hugepages-2048kB/free_hugepages", "7\n");
    put(NODE "/node1/hugepages/hugepages-2048kB/nr_hugepages", "12\n");
    put(NODE "/node0/hugepages/hugepages-1048576kB/free_hugepages", "1\n");
    put("/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages", "30\n");
    put("/sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages", "25\n");
    cr_assert(nm_topo_init(root));
    cr_assert_eq(nm_topo_free_hugepages(1, 2048), 7);
    cr_assert_eq(nm_topo_nr_hugepages(1, 2048), 12);
    cr_assert_eq(nm_topo_free_hugepages(0, 1048576), 1);
    cr_assert_eq(nm_topo_free_hugepages(0, 2048), -1, "absent: unknown");
    cr_assert_eq(nm_topo_free_hugepages(2, 2048), -1);
    cr_assert_eq(nm_topo_nr_hugepages(-1, 2048), 30, "whole system");
    cr_assert_eq(nm_topo_free_hugepages(-1, 2048), 25);
    cr_assert_eq(nm_topo_free_hugepages(-1, 1048576), -1);
}

Test(topology, real_sysfs_matches_this_machine)
{
    /* the host: one node with memory, every online CPU on node 0 */
    cr_assert(nm_topo_init(""));
    cr_assert_geq(nm_topo.nmem, 1);
    cr_assert_geq(nm_topo.max_cpu, 0);
    long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    cr_assert_geq(nm_topo.max_cpu + 1, ncpu, "possible CPUs cover the configured ones");
    cr_assert_gt(nm_topo.total_mem, 0);
    if (nm_topo.nmem == 1 && nm_topo.max_node == 0)
        for (int c = 0; c < ncpu; c++) cr_assert_eq(nm_topo_cpu_node(c), 0);
}
