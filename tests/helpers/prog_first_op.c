/* tests/helpers/prog_first_op.c — the first allocator call of a new thread.
 *
 * A thread's cache starts all zero and is set up on its first slow path, so the
 * very first call a thread makes is an edge entry of its own (snmalloc tests it as
 * func/first_operation). Usage: prog_first_op MODE, where MODE is
 *   free-small | free-medium | free-large   the thread's first call is free() of a
 *                                           block the main thread allocated
 *   calloc-small | calloc-medium | calloc-large          first call is calloc()
 *   memalign-small | memalign-medium | memalign-large    first call is posix_memalign()
 *   realloc-small | realloc-medium | realloc-large       first call is realloc() of a
 *                                           block the main thread allocated, to
 *                                           twice its size
 * Each mode runs in two fresh threads one after the other (the second reuses the
 * first one's cached stack and TLS block, which glibc re-initialises), then the
 * main thread checks that the memory is still usable and, when preloaded, that the
 * allocator's counters saw the free. Prints "<mode>: ok" and exits 0; any
 * failure prints a line on stderr and exits 1. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers/spawn.h"

static char json[1 << 16];
enum { FOLLOW_UP = 200 };      /* small malloc/free pairs each thread does after its first call */
static int failures;

#define FAIL(...) do { nm_say(2, "prog_first_op: " __VA_ARGS__); failures++; } while (0)

static size_t size_of(const char *kind)
{
    if (strcmp(kind, "small") == 0) return 48;
    if (strcmp(kind, "medium") == 0) return 100 * 1024;       /* a medium class */
    return 4u << 20;                                           /* own mapping */
}

static void fill(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) p[i] = (unsigned char)(i * 131u + seed);
}

static bool check(const unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) if (p[i] != (unsigned char)(i * 131u + seed)) return false;
    return true;
}

typedef struct job {
    const char *op;       /* "free", "calloc", "memalign", "realloc" */
    size_t size;
    void *block;          /* free: the block to free; others: the result */
    int err;
} job_t;

static void *thread_main(void *arg)
{
    job_t *j = arg;
    /* the first thing this thread does is the call under test */
    if (strcmp(j->op, "free") == 0) {
        free(j->block);
        j->block = NULL;
    } else if (strcmp(j->op, "realloc") == 0) {
        void *q = realloc(j->block, j->size * 2);
        if (q == NULL) j->err = errno ? errno : -1;
        else j->block = q;
    } else if (strcmp(j->op, "calloc") == 0) {
        j->block = calloc(j->size / 8, 8);
        if (j->block == NULL) j->err = errno ? errno : -1;
    } else {
        size_t align = j->size >= (1u << 20) ? (2u << 20) : j->size >= 65536 ? 65536 : 64;
        j->err = posix_memalign(&j->block, align, j->size);
        if (j->err == 0 && ((uintptr_t)j->block & (align - 1))) j->err = -2;
    }
    /* and afterwards the thread keeps working normally */
    for (int i = 0; i < FOLLOW_UP; i++) {
        void *q = malloc((size_t)(i * 37 % 4000) + 1);
        if (q == NULL) { j->err = ENOMEM; break; }
        memset(q, i, (size_t)(i * 37 % 4000) + 1);
        free(q);
    }
    return NULL;
}

static bool stat_u64(const char *path, uint64_t *v)
{
    return nm_self_stats_json(json, sizeof json) && nm_json_u64(json, path, v);
}

static void one_round(const char *op, const char *kind, int round)
{
    size_t size = size_of(kind);
    job_t j = { .op = op, .size = size };
    const char *counter = strcmp(kind, "large") == 0 ? "large.frees" : "summary.frees";
    uint64_t before = 0, after = 0;
    bool have_stats = false;
    if (strcmp(op, "free") == 0 || strcmp(op, "realloc") == 0) {
        j.block = malloc(size);
        if (j.block == NULL) { FAIL("malloc(%zu) failed\n", size); return; }
        fill(j.block, size, (unsigned)round);
        if (strcmp(op, "free") == 0) have_stats = stat_u64(counter, &before);
    }
    pthread_t t;
    int e = pthread_create(&t, NULL, thread_main, &j);
    if (e) { FAIL("pthread_create: %s\n", strerror(e)); free(j.block); return; }
    pthread_join(t, NULL);
    if (j.err) { FAIL("%s-%s round %d: thread error %d\n", op, kind, round, j.err); return; }
    if (strcmp(op, "free") == 0) {
        /* the thread has exited: its counters are merged, its frees must show */
        uint64_t expect = before + 1 + (strcmp(kind, "small") == 0 ? FOLLOW_UP : 0);
        if (have_stats && stat_u64(counter, &after) && after < expect)
            FAIL("%s-%s: %s went from %lu to %lu, the thread's free was not counted\n", op, kind,
                 counter, (unsigned long)before, (unsigned long)after);
    } else {
        unsigned char *p = j.block;
        if (p == NULL) { FAIL("%s-%s: no block\n", op, kind); return; }
        if (strcmp(op, "realloc") == 0) {
            if (!check(p, size, (unsigned)round)) FAIL("realloc-%s: the contents did not move with the block\n", kind);
            size *= 2;
        }
        if (strcmp(op, "calloc") == 0)
            for (size_t i = 0; i < size; i++)
                if (p[i]) { FAIL("calloc-%s: byte %zu is %d, not 0\n", kind, i, p[i]); break; }
        /* the main thread writes, reads back and frees a block another thread made */
        fill(p, size, 7);
        if (!check(p, size, 7)) FAIL("%s-%s: block does not hold its contents\n", op, kind);
        free(p);
    }
    /* the memory is reusable afterwards */
    unsigned char *q = malloc(size);
    if (q == NULL) { FAIL("malloc(%zu) after the round failed\n", size); return; }
    fill(q, size, 3);
    if (!check(q, size, 3)) FAIL("%s-%s: reused block does not hold its contents\n", op, kind);
    free(q);
}

int main(int argc, char **argv)
{
    if (argc != 2) { nm_say(2, "usage: prog_first_op MODE (e.g. free-small)\n"); return 2; }
    char op[32];
    const char *dash = strchr(argv[1], '-');
    if (dash == NULL || (size_t)(dash - argv[1]) >= sizeof op) { nm_say(2, "bad mode %s\n", argv[1]); return 2; }
    memcpy(op, argv[1], (size_t)(dash - argv[1]));
    op[dash - argv[1]] = '\0';
    const char *kind = dash + 1;
    if ((strcmp(op, "free") && strcmp(op, "calloc") && strcmp(op, "memalign") && strcmp(op, "realloc")) ||
        (strcmp(kind, "small") && strcmp(kind, "medium") && strcmp(kind, "large"))) {
        nm_say(2, "bad mode %s\n", argv[1]);
        return 2;
    }
    for (int round = 0; round < 2; round++) one_round(op, kind, round);
    if (failures) return 1;
    nm_say(1, "%s: ok\n", argv[1]);
    return 0;
}
