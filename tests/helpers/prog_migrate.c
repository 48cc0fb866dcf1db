/* tests/helpers/prog_migrate.c — a thread that moves between CPUs keeps working.
 *
 * A worker thread pins itself with sched_setaffinity to the first allowed CPU, then
 * the second, back and forth (200 moves), and at each stop allocates blocks,
 * checks and frees the ones it allocated at the previous stop (on the other CPU),
 * across small, medium and large sizes. On a machine with one NUMA node the node
 * never changes, so the allocator must also report no node move. Prints
 * "migrate: ok, N moves" (or "one CPU" when only one is allowed) and exits 0. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/spawn.h"

enum { MOVES = 200, PER_STOP = 64 };

static char json[1 << 16];

static size_t size_for(unsigned stop, unsigned i)
{
    unsigned k = (stop * 131 + i * 7) % 64;
    if (k == 0) return (1u << 20) + i * 4096;        /* large */
    if (k < 4) return 40000 + i * 1000;              /* medium */
    return 8 + (size_t)((stop * 977 + i * 389) % 8000);
}

static int fill_check(unsigned char *p, size_t n, unsigned tag, bool check)
{
    for (size_t i = 0; i < n; i += 61) {
        unsigned char v = (unsigned char)(tag * 13 + i);
        if (check) { if (p[i] != v) return 1; }
        else p[i] = v;
    }
    return 0;
}

static void *worker(void *arg)
{
    int *cpus = arg;
    int bad = 0, wrong_cpu = 0;
    unsigned char *prev[PER_STOP] = { 0 };
    size_t prev_n[PER_STOP] = { 0 };
    for (unsigned stop = 0; stop <= MOVES; stop++) {
        int cpu = cpus[stop % 2];
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) bad++;
        if (sched_getcpu() != cpu) wrong_cpu++;
        unsigned char *cur[PER_STOP];
        for (unsigned i = 0; i < PER_STOP; i++) {
            size_t n = size_for(stop, i);
            cur[i] = malloc(n);
            if (cur[i] == NULL) { bad++; continue; }
            fill_check(cur[i], n, stop * PER_STOP + i, false);
        }
        for (unsigned i = 0; i < PER_STOP; i++) {
            if (prev[i] && fill_check(prev[i], prev_n[i], (stop - 1) * PER_STOP + i, true)) bad++;
            free(prev[i]);
            prev[i] = cur[i];
            prev_n[i] = size_for(stop, i);
        }
    }
    for (unsigned i = 0; i < PER_STOP; i++) {
        if (prev[i] && fill_check(prev[i], prev_n[i], MOVES * PER_STOP + i, true)) bad++;
        free(prev[i]);
    }
    if (wrong_cpu) nm_say(2, "migrate: %d stops not on the CPU asked for\n", wrong_cpu);
    return (void *)(intptr_t)(bad + wrong_cpu);
}

int main(void)
{
    cpu_set_t allowed;
    if (sched_getaffinity(0, sizeof allowed, &allowed) != 0) return 1;
    int cpus[2] = { -1, -1 }, n = 0;
    for (int c = 0; c < CPU_SETSIZE && n < 2; c++) if (CPU_ISSET(c, &allowed)) cpus[n++] = c;
    if (n == 1) cpus[1] = cpus[0];
    pthread_t t;
    void *res;
    if (pthread_create(&t, NULL, worker, cpus) != 0) return 1;
    pthread_join(t, &res);
    int bad = (int)(intptr_t)res;
    uint64_t nodes = 0, moves = 0;
    if (nm_self_stats_json(json, sizeof json) && nm_json_u64(json, "nodes_with_memory", &nodes) &&
        nm_json_u64(json, "metadata.node_moves", &moves) && nodes == 1 && moves != 0) {
        nm_say(2, "migrate: one node with memory, yet %lu node moves counted\n", (unsigned long)moves);
        bad++;
    }
    if (bad) { nm_say(2, "migrate: %d failures\n", bad); return 1; }
    if (n == 1) nm_say(1, "migrate: ok, one CPU\n");
    else nm_say(1, "migrate: ok, %d moves\n", MOVES);
    return 0;
}
