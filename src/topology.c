/* numamalloc — NUMA topology from sysfs.
 *
 * Reads /sys/devices/system/{node,cpu} with open/read (src/os.c), never libnuma:
 * libnuma's constructor allocates, its API allocates bitmasks with malloc, and it
 * uses dynamic TLS, so it cannot serve a malloc that may run before it is set up.
 * Tables are sized from what the system reports ("possible" ranges), not from a
 * fixed 64 or 1024, and live in metadata memory. Works with no NUMA sysfs at all
 * (one node, every CPU on node 0). A root prefix lets unit tests feed fake sysfs
 * trees (tests/unit/test_topology.c). Written once at start-up, read-only after. */
#include "numamalloc/internal.h"

nm_topo_t nm_topo;
static char topo_root[256];

int nm_topo_parse_list(const char *s, unsigned long *mask, int nbits)
{
    int max = -1;
    const unsigned W = 8 * sizeof(unsigned long);
    while (*s == ' ' || *s == '\n' || *s == '\t') s++;
    while (*s && *s != '\n') {
        uint64_t a, b;
        const char *end;
        if (!nm_parse_u64(s, &end, &a) || a > 1u << 20) return -2;
        b = a;
        if (*end == '-' && (!nm_parse_u64(end + 1, &end, &b) || b < a || b > 1u << 20)) return -2;
        for (uint64_t i = a; i <= b; i++) {
            if (mask && (int)i < nbits) mask[i / W] |= 1UL << (i % W);
            if ((int)i > max) max = (int)i;
        }
        if (*end == ',') end++;
        else if (*end && *end != '\n') return -2;
        s = end;
    }
    return max;
}

bool nm_topo_meminfo_key(const char *s, const char *key, uint64_t *bytes)
{
    size_t kl = nm_strlen(key);
    for (const char *p = s; *p; p++) {
        if ((p != s && p[-1] != ' ' && p[-1] != '\n') || nm_strncmp(p, key, kl) != 0) continue;
        p += kl;
        while (*p == ' ' || *p == '\t') p++;
        uint64_t kb;
        if (!nm_parse_u64(p, NULL, &kb)) return false;
        *bytes = kb << 10;
        return true;
    }
    return false;
}

uint64_t nm_topo_parse_meminfo(const char *s)
{
    uint64_t bytes;
    return nm_topo_meminfo_key(s, "MemTotal:", &bytes) ? bytes : 0;
}

static long read_path(char *buf, size_t cap, const char *fmt, int a)
{
    char path[384];
    char tail[256];
    nm_snprintf(tail, sizeof tail, fmt, a);
    nm_snprintf(path, sizeof path, "%s%s", topo_root, tail);
    return nm_os_read_file(path, buf, cap);
}

static int read_list_max(const char *rel)
{
    char buf[4096];
    if (read_path(buf, sizeof buf, rel, 0) <= 0) return -1;
    return nm_topo_parse_list(buf, NULL, 0);
}

bool nm_topo_init(const char *root)
{
    nm_copy_cstr(topo_root, sizeof topo_root, root ? root : "");
    nm_topo_t t = { 0 };
    t.max_cpu = read_list_max("/sys/devices/system/cpu/possible");
    if (t.max_cpu < 0) t.max_cpu = 0;
    t.max_node = read_list_max("/sys/devices/system/node/possible");
    t.sysfs = t.max_node >= 0;
    if (!t.sysfs) t.max_node = 0;
    /* a domain per node and a strict twin of each, two pseudo-domains and the extras
     * (src/policy.c) must fit the page map's domain bits */
    if (t.max_node > (NM_MAX_DOMAINS - 2 - NM_EXTRA_DOMAINS) / 2 - 1) t.max_node = (NM_MAX_DOMAINS - 2 - NM_EXTRA_DOMAINS) / 2 - 1;
    int nn = t.max_node + 1;

    t.cpu_node = nm_meta_alloc((size_t)(t.max_cpu + 1) * sizeof(int16_t));
    t.node = nm_meta_alloc((size_t)nn * sizeof(nm_node_info_t));
    t.dist = nm_meta_alloc((size_t)nn * (size_t)nn);
    if (!t.cpu_node || !t.node || !t.dist) return false;

    /* the node lists are small, but a machine may have thousands of CPUs */
    NM_BIG_BSS static char buf[65536];
    const unsigned W = 8 * sizeof(unsigned long);
    if (nn == 1) {
        /* one node, with or without a node directory: it is online, has the memory and
         * every CPU, so only its size is read (four files fewer at every start) */
        t.node[0].online = t.node[0].has_memory = true;
        t.node[0].ncpus = (uint32_t)t.max_cpu + 1;
        t.nnodes = t.nmem = 1;
        t.dist[0] = 10;
        char mi[4096];                       /* (MemTotal is on the first line) */
        long got = t.sysfs ? read_path(mi, sizeof mi, "/sys/devices/system/node/node%d/meminfo", 0)
                           : read_path(mi, sizeof mi, "/proc/meminfo", 0);
        t.node[0].mem_total = got > 0 ? nm_topo_parse_meminfo(mi) : 0;
    } else {
        unsigned long online[NM_MAX_DOMAINS / (8 * sizeof(unsigned long))] = { 0 };
        unsigned long hasmem[NM_MAX_DOMAINS / (8 * sizeof(unsigned long))] = { 0 };
        if (read_path(buf, sizeof buf, "/sys/devices/system/node/online", 0) > 0)
            nm_topo_parse_list(buf, online, NM_MAX_DOMAINS);
        else
            online[0] = 1;
        if (read_path(buf, sizeof buf, "/sys/devices/system/node/has_memory", 0) > 0)
            nm_topo_parse_list(buf, hasmem, NM_MAX_DOMAINS);
        else
            for (unsigned i = 0; i < NM_ARRAY_LEN(online); i++) hasmem[i] = online[i];
        for (int n = 0; n < nn; n++) {
            nm_node_info_t *ni = &t.node[n];
            ni->online = (online[n / W] >> (n % W)) & 1;
            if (!ni->online) continue;
            t.nnodes++;
            ni->has_memory = (hasmem[n / W] >> (n % W)) & 1;
            if (ni->has_memory) t.nmem++;
            if (read_path(buf, sizeof buf, "/sys/devices/system/node/node%d/meminfo", n) > 0)
                ni->mem_total = nm_topo_parse_meminfo(buf);
            if (read_path(buf, sizeof buf, "/sys/devices/system/node/node%d/cpulist", n) > 0) {
                /* parse the list by hand into cpu_node (the mask could be huge) */
                const char *s = buf;
                while (*s && *s != '\n') {
                    uint64_t a, b;
                    const char *end;
                    if (!nm_parse_u64(s, &end, &a)) break;
                    b = a;
                    if (*end == '-' && !nm_parse_u64(end + 1, &end, &b)) break;
                    for (uint64_t c = a; c <= b && (int)c <= t.max_cpu; c++) { t.cpu_node[c] = (int16_t)n; ni->ncpus++; }
                    if (*end == ',') end++;
                    s = end;
                }
            }
        }
        if (t.nnodes == 0) { t.node[0].online = t.node[0].has_memory = true; t.nnodes = t.nmem = 1; }
        /* distances: nodeN/distance lists one value per online node, in order */
        for (int a = 0; a < nn; a++) {
            for (int b = 0; b < nn; b++) t.dist[a * nn + b] = (uint8_t)(a == b ? 10 : 20);
            if (!t.node[a].online) continue;
            if (read_path(buf, sizeof buf, "/sys/devices/system/node/node%d/distance", a) <= 0) continue;
            const char *s = buf;
            for (int b = 0; b < nn; b++) {
                if (!t.node[b].online) continue;
                while (*s == ' ') s++;
                uint64_t v;
                if (!nm_parse_u64(s, &s, &v)) break;
                t.dist[a * nn + b] = (uint8_t)(v > 255 ? 255 : v);
            }
        }
    }
    for (int n = 0; n < nn; n++) t.total_mem += t.node[n].mem_total;
    nm_topo = t;
    return true;
}

uint64_t nm_topo_node_available(int node)
{
    char buf[4096];
    if (node < 0 || node > nm_topo.max_node) return UINT64_MAX;
    long n = nm_topo.sysfs ? read_path(buf, sizeof buf, "/sys/devices/system/node/node%d/meminfo", node)
                           : read_path(buf, sizeof buf, "/proc/meminfo", 0);
    uint64_t free_b, act = 0, inact = 0;
    if (n <= 0 || !nm_topo_meminfo_key(buf, "MemFree:", &free_b)) return UINT64_MAX;
    nm_topo_meminfo_key(buf, "Active(file):", &act);
    nm_topo_meminfo_key(buf, "Inactive(file):", &inact);
    return free_b + (act + inact) / 2;
}

static long hugepage_count(int node, unsigned long size_kb, const char *what)
{
    char path[384];
    if (node >= 0 && nm_topo.sysfs)
        nm_snprintf(path, sizeof path, "%s/sys/devices/system/node/node%d/hugepages/hugepages-%lukB/%s",
                    topo_root, node, size_kb, what);
    else
        nm_snprintf(path, sizeof path, "%s/sys/kernel/mm/hugepages/hugepages-%lukB/%s", topo_root, size_kb, what);
    uint64_t v;
    if (!nm_os_read_u64(path, &v)) return -1;
    return (long)v;
}

long nm_topo_free_hugepages(int node, unsigned long size_kb) { return hugepage_count(node, size_kb, "free_hugepages"); }
long nm_topo_nr_hugepages(int node, unsigned long size_kb)   { return hugepage_count(node, size_kb, "nr_hugepages"); }
