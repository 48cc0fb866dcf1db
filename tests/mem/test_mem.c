/* tests/mem/test_mem.c — memory freed by a program goes back to the OS: on every
 * allocation path, when the memory is a large block kept by a thread that sits idle,
 * and (NUMAMALLOC_BACKGROUND=1) when the program makes no allocator call at all.
 * Each case runs tests/mem/mem_return.c in a fresh preloaded process with an
 * explicit environment (helpers/spawn.h) and judges the key=value lines it prints.
 * RSS bounds leave tens of MiB of room against what the runs hold; no timing is
 * asserted (the helper's own waits are the decay time several times over). */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "helpers/spawn.h"

#ifndef NM_MEM_DIR
#define NM_MEM_DIR "build/tests/mem"
#endif

#define MIB ((uint64_t)1 << 20)
#define MB(x) ((double)(x) / (double)MIB)

static void run(const char *mode, const char *const env[], nm_proc_t *p)
{
    const char *args[] = { mode, NULL };
    cr_assert_eq(nm_run_helper(NM_MEM_DIR "/mem_return", args, env, 40, p), 0, "cannot start mem_return: %s", p->err);
    NM_ASSERT_PROC_OK(p);
}

static uint64_t get(const nm_proc_t *p, const char *key)
{
    uint64_t v = 0;
    cr_assert(nm_kv_u64(p->out, key, &v), "no %s= in the helper's output:\n%s\nstderr:\n%s", key, p->out, p->err);
    return v;
}

/* RSS a mode reports (keys prefix + rss_start, rss_full, rss_end) at its start, with
 * its blocks live (`live` names them) and at its end (`after`: what happened since);
 * the blocks must have added min_grow, or the case tests nothing. The caller frees p. */
typedef struct { uint64_t start, full, end; } rss3_t;

static rss3_t rss_case(const char *mode, const char *const env[], const char *prefix, const char *live,
                       const char *after, uint64_t min_grow, nm_proc_t *p)
{
    run(mode, env, p);
    char k[3][64];
    snprintf(k[0], sizeof k[0], "%srss_start", prefix);
    snprintf(k[1], sizeof k[1], "%srss_full", prefix);
    snprintf(k[2], sizeof k[2], "%srss_end", prefix);
    rss3_t r = { get(p, k[0]), get(p, k[1]), get(p, k[2]) };
    fprintf(stderr, "%s: RSS %.1f MiB at start, %.1f with %s, %.1f after %s\n", mode, MB(r.start), MB(r.full), live,
            MB(r.end), after);
    cr_assert_geq(r.full, r.start + min_grow, "%s were not resident (%.1f -> %.1f MiB): the case tests nothing", live,
                  MB(r.start), MB(r.full));
    return r;
}

/* ---- decay on every path ----------------------------------------------------------------
 * 20 blocks of 3 MiB, every page written (60 MiB resident), are freed; then the
 * program does nothing but 1 MiB malloc/free pairs for 3 s, with NUMAMALLOC_DECAY_MS
 * at 200: what was freed has been idle 15 decay periods and must be gone, whichever
 * path the pairs take (the large blocks the thread keeps, the node's cache). */
Test(decay, freed_large_blocks_return_while_only_1mib_pairs_run, .timeout = 120)
{
    const char *env[] = { "NUMAMALLOC_DECAY_MS=200", NULL };
    nm_proc_t p;
    rss3_t r = rss_case("decay-path", env, "", "the 60 MiB of 3 MiB blocks", "3 s of 1 MiB pairs", 50 * MIB, &p);
    cr_assert_lt(r.end, 20 * MIB, "RSS still %.1f MiB after 3 s of 1 MiB pairs with NUMAMALLOC_DECAY_MS=200 "
                 "(%.1f MiB with the freed blocks resident)", MB(r.end), MB(r.full));
    nm_proc_free(&p);
}

/* ---- threads that exit ---------------------------------------------------------------------
 * 4 threads write and free 32 MiB of 256 KiB blocks each and exit; the decay time
 * is the default 1 s, and RSS is read right after the joins: the free slab pages over
 * the bound (1 MiB and an eighth of the heap) went back when the threads exited, not
 * after the decay time. */
Test(decay, free_pages_over_the_bound_return_when_threads_exit, .timeout = 120)
{
    const char *env[] = { NULL };
    nm_proc_t p;
    rss3_t r = rss_case("exit-trim", env, "", "the 128 MiB of 256 KiB blocks", "the threads exited", 120 * MIB, &p);
    cr_assert_lt(r.end, r.start + 80 * MIB, "RSS still %.1f MiB right after the threads exited (%.1f at start)",
                 MB(r.end), MB(r.start));
    nm_proc_free(&p);
}

/* ---- large blocks kept by a thread that sits idle -------------------------------------------
 * Thread A allocates and frees two 8 MiB blocks (every page written), so it keeps
 * both for its own next requests, then waits on a condition variable: alive, making
 * no allocator call. */

static uint64_t kept_before(const nm_proc_t *p)
{
    uint64_t kept = get(p, "kept_thread_cache_bytes");
    cr_assert_geq(kept, 16 * MIB, "thread A keeps %.1f MiB, not its two 8 MiB blocks: the case tests nothing", MB(kept));
    return kept;
}

/* The main thread's 200 malloc(8 MiB)/free pairs: every one but the first must be a
 * cache hit, also when the cache's bound is no more than what A keeps (16 MiB). */
Test(kept, idle_thread_kept_blocks_do_not_stop_other_threads_reusing_mappings, .timeout = 120)
{
    static const char *const bounds[] = { "NUMAMALLOC_LARGE_CACHE=16M", NULL };
    for (int i = 0; i < 2; i++) {
        const char *env[] = { bounds[i], NULL };
        nm_proc_t p;
        run("kept-hits", bounds[i] ? env : NULL, &p);
        uint64_t hits = get(&p, "hits"), misses = get(&p, "misses");
        fprintf(stderr, "kept blocks (%s): 200 pairs of 8 MiB: %" PRIu64 " cache hits, %" PRIu64 " misses\n",
                bounds[i] ? bounds[i] : "default cache bound", hits, misses);
        cr_assert_geq(hits, 150, "%s: %" PRIu64 " large cache hits and %" PRIu64 " misses over 200 malloc(8 MiB)/free "
                      "pairs while an idle thread keeps two blocks", bounds[i] ? bounds[i] : "default cache bound",
                      hits, misses);
        nm_proc_free(&p);
    }
}

/* malloc_trim(0) from the main thread gives A's kept blocks back too */
Test(kept, malloc_trim_returns_blocks_kept_by_an_idle_thread, .timeout = 120)
{
    nm_proc_t p;
    run("kept-trim", NULL, &p);
    kept_before(&p);
    uint64_t before = get(&p, "rss_before"), after = get(&p, "rss_after"), tcb = get(&p, "thread_cache_bytes");
    fprintf(stderr, "kept blocks: malloc_trim(0): RSS %.1f -> %.1f MiB, thread caches hold %.1f MiB after\n",
            MB(before), MB(after), MB(tcb));
    cr_assert_eq(tcb, 0, "large.thread_cache_bytes is %.1f MiB right after malloc_trim(0)", MB(tcb));
    cr_assert_geq(before, after + 12 * MIB, "malloc_trim(0) took RSS from %.1f to %.1f MiB only: the idle thread's "
                  "16 MiB of kept blocks are still resident", MB(before), MB(after));
    nm_proc_free(&p);
}

/* a forked child has only the forking thread: A's kept blocks are not the child's */
Test(kept, forked_child_drops_blocks_kept_by_other_threads, .timeout = 120)
{
    nm_proc_t p;
    run("kept-fork", NULL, &p);
    kept_before(&p);
    uint64_t tcb = get(&p, "child_thread_cache_bytes");
    cr_assert_eq(tcb, 0, "the forked child's large.thread_cache_bytes is %.1f MiB: it still counts the kept blocks "
                 "of a thread it does not have", MB(tcb));
    nm_proc_free(&p);
}

/* with NUMAMALLOC_DECAY_MS=200, A's kept blocks age out while the main thread keeps
 * allocating small blocks for 1 s */
Test(kept, blocks_kept_by_an_idle_thread_age_out, .timeout = 120)
{
    const char *env[] = { "NUMAMALLOC_DECAY_MS=200", NULL };
    nm_proc_t p;
    run("kept-age", env, &p);
    kept_before(&p);
    uint64_t tcb = get(&p, "thread_cache_bytes");
    cr_assert_eq(tcb, 0, "large.thread_cache_bytes is still %.1f MiB after 1 s of small allocations by another thread "
                 "with NUMAMALLOC_DECAY_MS=200", MB(tcb));
    nm_proc_free(&p);
}

/* ---- NUMAMALLOC_BACKGROUND ------------------------------------------------------------------ */

Test(background, option_accepted_and_bad_value_warned, .timeout = 120)
{
    static const char *const good[] = { "NUMAMALLOC_BACKGROUND=1", "NUMAMALLOC_BACKGROUND=0" };
    for (int i = 0; i < 2; i++) {
        const char *env[] = { good[i], NULL };
        nm_proc_t p;
        run("trivial", env, &p);
        cr_assert_str_eq(p.out, "trivial: ok\n");
        cr_assert_str_empty(p.err, "%s: unexpected stderr:\n%s", good[i], p.err);
        nm_proc_free(&p);
    }
    const char *env[] = { "NUMAMALLOC_BACKGROUND=sometimes", NULL };
    nm_proc_t p;
    run("trivial", env, &p);
    cr_assert_str_eq(p.out, "trivial: ok\n");
    cr_assert_eq(nm_count_lines(p.err), 1, "NUMAMALLOC_BACKGROUND=sometimes: not exactly one line on stderr:\n%s", p.err);
    static const char want[] = "numamalloc: NUMAMALLOC_BACKGROUND='sometimes' ignored: accepts ";
    cr_assert(strncmp(p.err, want, sizeof want - 1) == 0, "NUMAMALLOC_BACKGROUND=sometimes: the warning should start with\n"
              "%s\nwas:\n%s", want, p.err);
    nm_proc_free(&p);
}

/* ~100 MiB of small, 256 KiB and 4 MiB blocks, every page written, all freed; then
 * 1.5 s without a single allocator call (7 decay periods of 200 ms) */
static void idle(const char *mode, const char *prefix)
{
    const char *env[] = { "NUMAMALLOC_BACKGROUND=1", "NUMAMALLOC_DECAY_MS=200", NULL };
    nm_proc_t p;
    rss3_t r = rss_case(mode, env, prefix, "the blocks", "1.5 s idle", 80 * MIB, &p);
    uint64_t start = r.start, full = r.full, end = r.end;
    cr_assert_lt(end, start + 30 * MIB, "%s: RSS %.1f MiB after 1.5 s idle with NUMAMALLOC_BACKGROUND=1 and "
                 "NUMAMALLOC_DECAY_MS=200, %.1f MiB at start (%.1f with the blocks)%s%s", mode, MB(end), MB(start),
                 MB(full), p.err[0] ? "\nstderr:\n" : "", p.err);
    nm_proc_free(&p);
}

Test(background, idle_program_returns_freed_memory, .timeout = 120) { idle("idle", ""); }
Test(background, idle_forked_child_returns_freed_memory, .timeout = 120) { idle("idle-fork", "child_"); }
