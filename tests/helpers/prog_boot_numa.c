/* tests/helpers/prog_boot_numa.c — a program linked with -lnuma.
 *
 * libnuma's constructor (numa_init) allocates, and as a library the program needs
 * it is initialised before the preloaded allocator's constructor has run: the
 * allocator's first call may come from there. This program then uses libnuma the
 * way NUMA-aware programs do (node masks are malloc'ed by libnuma and freed by
 * numa_bitmask_free, numa_parse_nodestring allocates) and allocates on its own.
 * Prints "libnuma: ok" and exits 0, or says what failed and exits 1. */
#include <numa.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/spawn.h"

int main(void)
{
    int avail = numa_available();
    if (avail != 0 && avail != -1) { nm_say(2, "numa_available() returned %d\n", avail); return 1; }
    int bad = 0;
    for (int round = 0; round < 200; round++) {
        if (avail == 0) {
            struct bitmask *nodes = numa_allocate_nodemask();
            struct bitmask *cpus = numa_allocate_cpumask();
            if (nodes == NULL || cpus == NULL) bad++;
            else {
                numa_bitmask_setbit(nodes, 0);
                if (!numa_bitmask_isbitset(nodes, 0)) bad++;
                if (numa_node_to_cpus(0, cpus) != 0) bad++;
            }
            if (nodes) numa_bitmask_free(nodes);
            if (cpus) numa_bitmask_free(cpus);
            struct bitmask *parsed = numa_parse_nodestring("0");
            if (parsed == NULL) bad++;
            else numa_bitmask_free(parsed);
            if (numa_max_node() < 0 || numa_node_of_cpu(0) < 0) bad++;
        }
        size_t n = (size_t)(round * 4099 % 70000) + 1;
        unsigned char *p = malloc(n);
        if (p == NULL) { bad++; continue; }
        memset(p, round, n);
        unsigned char *q = realloc(p, n * 2);
        if (q == NULL) { free(p); bad++; continue; }
        if (q[n - 1] != (unsigned char)round) bad++;
        free(q);
    }
    if (bad) { nm_say(2, "libnuma: %d failures\n", bad); return 1; }
    nm_say(1, "libnuma: ok\n");
    return 0;
}
