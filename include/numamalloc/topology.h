/* numamalloc — NUMA topology (src/topology.c): what the machine is. */
#ifndef NM_TOPOLOGY_H
#define NM_TOPOLOGY_H

#include "numamalloc/base.h"

typedef struct nm_node_info {
    bool     online;
    bool     has_memory;
    uint32_t ncpus;
    uint64_t mem_total;       /* bytes (nodeN/meminfo MemTotal) */
} nm_node_info_t;

typedef struct nm_topo {
    int      max_node;        /* highest possible node id (0 without NUMA sysfs) */
    int      nnodes;          /* online nodes */
    int      nmem;            /* online nodes with memory */
    int      max_cpu;         /* highest possible CPU id */
    bool     sysfs;           /* /sys/devices/system/node exists */
    int16_t *cpu_node;        /* [max_cpu + 1]: node of each CPU (0 if unknown) */
    nm_node_info_t *node;     /* [max_node + 1] */
    uint8_t *dist;            /* [(max_node + 1)^2] SLIT distances, 10 = local */
    uint64_t total_mem;       /* bytes, all nodes */
} nm_topo_t;

extern nm_topo_t nm_topo;

/* read topology under root ("" for the real /sys); allocation-free (metadata only) */
bool nm_topo_init(const char *root);
/* parse a sysfs list ("0-3,8,10-11") into mask (nbits bits); returns the highest id
 * seen or -1 for an empty list, -2 on a syntax error. mask may be NULL. */
int  nm_topo_parse_list(const char *s, unsigned long *mask, int nbits);
/* MemTotal of a nodeN/meminfo text, in bytes (0 if absent) */
uint64_t nm_topo_parse_meminfo(const char *s);
/* the value of a "Key:" line of a meminfo text ("Node 0 MemFree:  123 kB" or
 * "MemFree:  123 kB"), in bytes; false if absent */
bool nm_topo_meminfo_key(const char *s, const char *key, uint64_t *bytes);
/* memory node n could give now without swapping: MemFree plus half its file pages
 * (nodeN/meminfo, read now: a few microseconds); UINT64_MAX if unknown */
uint64_t nm_topo_node_available(int node);
NM_INLINE int nm_topo_cpu_node(int cpu)
{
    return (cpu >= 0 && cpu <= nm_topo.max_cpu && nm_topo.cpu_node) ? nm_topo.cpu_node[cpu] : 0;
}
NM_INLINE int nm_topo_distance(int a, int b)
{
    if (!nm_topo.dist || a < 0 || b < 0 || a > nm_topo.max_node || b > nm_topo.max_node) return a == b ? 10 : 20;
    return nm_topo.dist[a * (nm_topo.max_node + 1) + b];
}
NM_INLINE bool nm_topo_has_memory(int n)
{
    return n >= 0 && n <= nm_topo.max_node && nm_topo.node[n].has_memory;
}
/* free hugetlb pages of the given size (kB) on node n (n < 0: whole system); -1 if unknown */
long nm_topo_free_hugepages(int node, unsigned long size_kb);
long nm_topo_nr_hugepages(int node, unsigned long size_kb);

#endif
