/* tests/api/test_misuse.c — what happens when a program misuses the allocator.
 *
 * It covers: the exact message and SIGABRT of every kind NUMAMALLOC_CHECK=1 reports
 * (messages_*), writes past the end of small, medium and large blocks caught by the
 * check-mode canary (with malloc_usable_size answering the size asked for), double
 * and interior frees of medium blocks (refused from the live map, without a header),
 * a large double free followed by allocation, and writes into freed small and medium
 * blocks (use after free) followed by heavy allocation: never a crash, never two live
 * blocks overlapping.
 *
 * With NUMAMALLOC_CHECK=1 (scenarios run by tests/helpers/api_misuse in a child with
 * an explicit environment): a double free and an interior pointer into a small block,
 * a free of a stack or global address, an interior pointer into a large block, a
 * double free of a large block, and realloc of a freed, interior or foreign pointer
 * all abort (SIGABRT) after one line containing "free(): invalid pointer" (or
 * "realloc(): ..."); correct use stays silent.
 * Without it: foreign frees are counted and ignored (the process goes on, silently, and
 * its exit stats JSON shows misuse.foreign_frees), realloc of a foreign pointer returns
 * NULL with EINVAL after exactly one warning line, and malloc_usable_size of a foreign
 * pointer is 0. */
#include <malloc.h>

#include "api/api_util.h"

static const char *const check_env[] = { "NUMAMALLOC_CHECK=1", NULL };

/* scenario must die of SIGABRT with a message containing each of `want` (NULL-ended) */
static void expect_abort(const char *scenario, const char *const *want)
{
    const char *args[] = { scenario, NULL };
    child_t c = run_helper("api_misuse", args, check_env);
    cr_assert_not(c.timed_out, "%s: hung", scenario);
    cr_assert(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT,
              "%s under NUMAMALLOC_CHECK=1: status %#x (exit %d), expected SIGABRT; stdout: %s stderr: %s",
              scenario, c.status, WIFEXITED(c.status) ? WEXITSTATUS(c.status) : -1, c.out, c.err);
    cr_assert_null(strstr(c.out, "survived"), "%s: went on after the misuse", scenario);
    for (int i = 0; want[i]; i++)
        cr_assert_not_null(strstr(c.err, want[i]), "%s: stderr lacks '%s': %s", scenario, want[i], c.err);
    cr_assert_eq(strncmp(c.err, "numamalloc: ", 12), 0, "%s: the message is ours: %s", scenario, c.err);
    cr_assert_eq(count_lines(c.err), 1, "%s: one line: %s", scenario, c.err);
    child_free(&c);
}

Test(misuse, check_double_free_aborts)
{
    expect_abort("double_free", (const char *[]){ "free(): invalid pointer 0x", "double free", "NUMAMALLOC_CHECK=1", NULL });
}

Test(misuse, check_interior_pointer_aborts)
{
    expect_abort("interior", (const char *[]){ "free(): invalid pointer 0x", "interior pointer", NULL });
}

Test(misuse, check_interior_pointer_into_large_block_aborts)
{
    expect_abort("interior_large", (const char *[]){ "free(): invalid pointer 0x", "interior pointer into a large block", NULL });
}

Test(misuse, check_double_free_of_large_block_aborts)
{
    expect_abort("double_free_large", (const char *[]){ "free(): invalid pointer 0x", "not allocated by numamalloc", NULL });
}

/* realloc validates the old block too (it always moves under NUMAMALLOC_CHECK=1, and
 * the free of the old block is checked) */
Test(misuse, check_realloc_of_freed_block_aborts)
{
    expect_abort("realloc_freed", (const char *[]){ "invalid pointer 0x", "double free", NULL });
}

Test(misuse, check_realloc_of_interior_pointer_aborts)
{
    expect_abort("realloc_interior", (const char *[]){ "invalid pointer 0x", "interior pointer", NULL });
}

Test(misuse, check_free_of_stack_pointer_aborts)
{
    expect_abort("free_stack", (const char *[]){ "free(): invalid pointer 0x", "not allocated by numamalloc", NULL });
}

Test(misuse, check_free_of_global_pointer_aborts)
{
    expect_abort("free_global", (const char *[]){ "free(): invalid pointer 0x", "not allocated by numamalloc", NULL });
}

Test(misuse, check_realloc_of_foreign_pointer_aborts)
{
    expect_abort("realloc_foreign", (const char *[]){ "realloc(): invalid pointer 0x", "not allocated by numamalloc", NULL });
}

Test(misuse, check_is_silent_on_correct_use)
{
    const char *args[] = { "clean", NULL };
    child_t c = run_helper("api_misuse", args, check_env);
    cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "status %#x; stderr: %s", c.status, c.err);
    cr_assert_str_eq(c.out, "survived clean\n");
    cr_assert_str_eq(c.err, "", "NUMAMALLOC_CHECK=1 complained about correct use");
    child_free(&c);
}

Test(misuse, foreign_frees_are_counted_and_ignored)
{
    char stats[] = "/tmp/nm-misuse-stats-XXXXXX";
    int fd = mkstemp(stats);
    cr_assert_geq(fd, 0);
    close(fd);
    char file_env[128];
    snprintf(file_env, sizeof file_env, "NUMAMALLOC_STATS_FILE=%s", stats);
    const char *env[] = { "NUMAMALLOC_STATS=json", file_env, NULL };
    const char *args[] = { "foreign_frees", NULL };
    child_t c = run_helper("api_misuse", args, env);
    cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "status %#x; stderr: %s", c.status, c.err);
    cr_assert_str_eq(c.out, "survived foreign_frees\n");
    cr_assert_str_eq(c.err, "", "foreign frees are ignored silently without NUMAMALLOC_CHECK");
    size_t len = 0;
    char *json = slurp(stats, &len);
    unlink(stats);
    cr_assert_not_null(json);
    cr_assert_gt(len, 0, "no stats dump at exit");
    cr_assert_eq(count_lines(json), 1, "one dump, one line");
    char res[512];
    cr_assert(json_py(json, len, "[d['misuse']['foreign_frees'], d['misuse']['invalid_pointers'], d['schema_version']]",
                      res, sizeof res), "%s\n%.300s", res, json);
    cr_assert_str_eq(res, "[2,2,2]", "the stack and the global free, counted once each");
    free(json);
    child_free(&c);
}

Test(misuse, free_of_foreign_pointers_in_process_keeps_errno)
{
    int on_stack = 5;
    static int in_data = 6;
    errno = 777;
    free(hide(&on_stack));
    free(hide(&in_data));
    cr_assert_eq(errno, 777);
    cr_assert_eq(on_stack, 5);
    cr_assert_eq(in_data, 6);
    cr_assert_eq(malloc_usable_size(hide(&on_stack)), 0, "not ours: no usable size");
}

/* stderr of fn() through a temporary file */
static char *capture_stderr(void (*fn)(void))
{
    char path[] = "/tmp/nm-misuse-err-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    fflush(stderr);
    int saved = dup(2);
    dup2(fd, 2);
    fn();
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    off_t n = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)n + 1);
    cr_assert_eq(pread(fd, out, (size_t)n, 0), n);
    close(fd);
    return out;
}

static int realloc_errno;
static void *realloc_result;
static int victim = 31;

static void do_realloc_foreign(void)
{
    errno = 0;
    realloc_result = realloc(hide(&victim), 100);
    realloc_errno = errno;
}

Test(misuse, realloc_of_foreign_pointer_returns_null_and_warns_once)
{
    char *err = capture_stderr(do_realloc_foreign);
    cr_assert_null(realloc_result);
    cr_assert_eq(realloc_errno, EINVAL, "errno %d", realloc_errno);
    cr_assert_eq(victim, 31, "the foreign memory is left alone");
    cr_assert_eq(count_lines(err), 1, "one warning line: '%s'", err);
    cr_assert_eq(strncmp(err, "numamalloc: realloc(0x", 22), 0, "%s", err);
    cr_assert_not_null(strstr(err, "not allocated by numamalloc"), "%s", err);
    char addr[32];
    snprintf(addr, sizeof addr, "%p", (void *)&victim);
    cr_assert_not_null(strstr(err, addr), "the warning names the pointer %s: %s", addr, err);
    free(err);
    /* the same through a child, to see it at the process level too */
    const char *args[] = { "realloc_foreign", NULL };
    child_t c = run_helper("api_misuse", args, NULL);
    cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "status %#x; stderr %s", c.status, c.err);
    cr_assert_not_null(strstr(c.out, "\nresult NULL errno EINVAL value 7\nsurvived realloc_foreign\n"), "%s", c.out);
    cr_assert_eq(count_lines(c.err), 1, "%s", c.err);
    child_free(&c);
}

Test(misuse, interior_pointer_into_large_block_is_ignored_without_check)
{
    const char *args[] = { "interior_large", NULL };
    child_t c = run_helper("api_misuse", args, NULL);
    cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "status %#x; stderr %s", c.status, c.err);
    cr_assert_not_null(strstr(c.out, "\nsurvived interior_large\n"), "%s", c.out);
    child_free(&c);
}

/* ---- exact messages (NUMAMALLOC_CHECK=1) ---------------------------------------------
 * The helper prints "target <pointer>" before it misuses <pointer>; the whole of
 * stderr must then be the one line `fmt` with that pointer for %s, and the process
 * must die of SIGABRT without going on. */

static void expect_message(const char *const *args, const char *fmt)
{
    child_t c = run_helper("api_misuse", args, check_env);
    cr_assert_not(c.timed_out, "%s: hung", args[0]);
    cr_assert(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT,
              "%s: status %#x (exit %d), expected SIGABRT; stdout: %s stderr: %s",
              args[0], c.status, WIFEXITED(c.status) ? WEXITSTATUS(c.status) : -1, c.out, c.err);
    cr_assert_null(strstr(c.out, "survived"), "%s: went on after the misuse", args[0]);
    const char *t = strstr(c.out, "target ");
    cr_assert_not_null(t, "%s: no target line: %s", args[0], c.out);
    char ptr[64];
    cr_assert_eq(sscanf(t, "target %63s", ptr), 1);
    char want[512];
    snprintf(want, sizeof want, fmt, ptr);
    cr_assert_str_eq(c.err, want, "%s: the message", args[0]);
    child_free(&c);
}

#define CHECK_ABORT "(NUMAMALLOC_CHECK=1: aborting)\n"
#define ARGS(...) ((const char *const[]){ __VA_ARGS__, NULL })

Test(misuse, messages_invalid_pointers)
{
    expect_message(ARGS("double_free"), "numamalloc: free(): invalid pointer %s: block is not allocated (double free?) " CHECK_ABORT);
    expect_message(ARGS("interior"), "numamalloc: free(): invalid pointer %s: not the start of a block (interior pointer) " CHECK_ABORT);
    expect_message(ARGS("free_stack"), "numamalloc: free(): invalid pointer %s: not allocated by numamalloc " CHECK_ABORT);
    expect_message(ARGS("free_global"), "numamalloc: free(): invalid pointer %s: not allocated by numamalloc " CHECK_ABORT);
    expect_message(ARGS("interior_large"), "numamalloc: free(): invalid pointer %s: interior pointer into a large block " CHECK_ABORT);
    /* a freed large block's page-map entry is gone: the page map cannot tell it from a foreign pointer */
    expect_message(ARGS("double_free_large"), "numamalloc: free(): invalid pointer %s: not allocated by numamalloc " CHECK_ABORT);
    expect_message(ARGS("usable_stack"), "numamalloc: malloc_usable_size(): invalid pointer %s: not allocated by numamalloc " CHECK_ABORT);
}

Test(misuse, messages_realloc)
{
    expect_message(ARGS("realloc_freed"), "numamalloc: realloc(): invalid pointer %s: block is not allocated (double free?) " CHECK_ABORT);
    expect_message(ARGS("realloc_interior"), "numamalloc: realloc(): invalid pointer %s: not the start of a block (interior pointer) " CHECK_ABORT);
    expect_message(ARGS("realloc_foreign"), "numamalloc: realloc(): invalid pointer %s: not allocated by numamalloc " CHECK_ABORT);
    expect_message(ARGS("realloc_freed_medium"), "numamalloc: realloc(): invalid pointer %s: medium block is not allocated (double free?) " CHECK_ABORT);
    expect_message(ARGS("realloc_interior_medium"), "numamalloc: realloc(): invalid pointer %s: not the start of a medium block "
                   "(interior pointer) " CHECK_ABORT);
}

Test(misuse, messages_medium_blocks)
{
    expect_message(ARGS("double_free_medium", "100000"),
                   "numamalloc: free(): invalid pointer %s: medium block is not allocated (double free?) " CHECK_ABORT);
    expect_message(ARGS("double_free_medium", "65536"),
                   "numamalloc: free(): invalid pointer %s: medium block is not allocated (double free?) " CHECK_ABORT);
    expect_message(ARGS("interior_medium"), "numamalloc: free(): invalid pointer %s: not the start of a medium block "
                   "(interior pointer) " CHECK_ABORT);
}

/* writes past the end: one byte (a NUL, the usual off-by-one, unless a value is
 * given) at the offset, then free or realloc */
Test(misuse, messages_heap_buffer_overflow)
{
    static const struct { const char *size, *off, *how, *byte; } cases[] = {
        { "24", "24", "free", "0" },              /* small, first byte past the end */
        { "32", "32", "free", "0" },              /* fills its class: check mode takes the next one */
        { "100", "110", "free", "65" },           /* further into the slack, an 'A' */
        { "1", "15", "free", "0" },               /* last byte of the class */
        { "500", "508", "realloc", "0" },         /* realloc checks the old block (class 512) */
        { "32768", "32768", "free", "0" },        /* the largest small request: a medium block in check mode */
        { "100000", "100000", "free", "0" },      /* medium */
        { "65536", "65536", "free", "0" },        /* medium, exactly a class */
        { "40000", "40100", "realloc", "255" },   /* medium, through realloc */
        { "8388608", "8388608", "free", "0" },    /* large, whole pages: one page more in check mode */
        { "3000000", "3000005", "realloc", "0" }, /* large, through realloc */
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char fmt[256];
        snprintf(fmt, sizeof fmt, "numamalloc: %s(): heap buffer overflow past %s-byte block %%s: byte at offset %s overwritten "
                 CHECK_ABORT, cases[i].how, cases[i].size, cases[i].off);
        expect_message(ARGS("overflow", cases[i].size, cases[i].off, cases[i].how, cases[i].byte), fmt);
    }
}

/* a write inside the block, and writes up to malloc_usable_size (which answers the
 * size asked for in check mode), are no overflow */
Test(misuse, check_canary_has_no_false_positives)
{
    static const char *const sizes[] = { "1", "24", "32", "4000", "32768", "40000", "65536", "100000", "1048576", "8388608" };
    for (size_t i = 0; i < ARRAY_LEN(sizes); i++) {
        child_t c = run_helper("api_misuse", ARGS("write_usable", sizes[i]), check_env);
        cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "%s: status %#x; stderr: %s", sizes[i], c.status, c.err);
        char want[128];
        snprintf(want, sizeof want, "usable %s\nsurvived write_usable\n", sizes[i]);
        cr_assert_str_eq(c.out, want, "malloc_usable_size is the size asked for under NUMAMALLOC_CHECK=1");
        cr_assert_str_eq(c.err, "");
        child_free(&c);
        char last[32];
        snprintf(last, sizeof last, "%lu", strtoul(sizes[i], NULL, 10) - 1);
        c = run_helper("api_misuse", ARGS("overflow", sizes[i], last, "free", "0"), check_env);
        cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "%s: a write to the last byte: status %#x; %s", sizes[i], c.status, c.err);
        cr_assert_str_eq(c.err, "");
        child_free(&c);
    }
}

/* ---- without NUMAMALLOC_CHECK: refused, counted, never corrupting -------------------- */

/* run a scenario with the stats dump going to a file; expect exit 0 and "survived";
 * returns the JSON expression `expr` evaluated on the dump */
static void survive_with_stats(const char *const *args, const char *extra_env, const char *expr, char *res, size_t cap,
                               const char *want_err)
{
    char stats[] = "/tmp/nm-misuse-stats-XXXXXX";
    int fd = mkstemp(stats);
    cr_assert_geq(fd, 0);
    close(fd);
    char file_env[128];
    snprintf(file_env, sizeof file_env, "NUMAMALLOC_STATS_FILE=%s", stats);
    const char *env[] = { "NUMAMALLOC_STATS=json", file_env, extra_env, NULL };
    child_t c = run_helper("api_misuse", args, env);
    cr_assert_not(c.timed_out, "%s: hung", args[0]);
    cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "%s: status %#x (signal %d); stdout: %s stderr: %s",
              args[0], c.status, WIFSIGNALED(c.status) ? WTERMSIG(c.status) : 0, c.out, c.err);
    char tail[96];
    snprintf(tail, sizeof tail, "survived %s\n", args[0]);
    cr_assert_not_null(strstr(c.out, tail), "%s: %s", args[0], c.out);
    if (want_err) cr_assert_str_eq(c.err, want_err, "%s: stderr", args[0]);
    size_t len = 0;
    char *json = slurp(stats, &len);
    unlink(stats);
    cr_assert(json && len > 0, "%s: no stats dump", args[0]);
    cr_assert(json_py(json, len, expr, res, cap), "%s\n%.300s", res, json);
    free(json);
    child_free(&c);
}

Test(misuse, medium_double_free_is_refused_without_check)
{
    char res[256];
    /* the helper frees twice, then takes 64 blocks of the size 4 times and checks that
     * none overlaps another and each keeps its contents */
    survive_with_stats(ARGS("double_free_medium", "100000"), NULL, "d['misuse']['invalid_pointers']", res, sizeof res, "");
    cr_assert_str_eq(res, "1", "the second free is counted once");
    survive_with_stats(ARGS("double_free_medium", "65536"), NULL, "d['misuse']['invalid_pointers']", res, sizeof res, "");
    cr_assert_str_eq(res, "1");
    /* a block not cached by the thread (beyond the cache's 1 MiB per class) */
    survive_with_stats(ARGS("double_free_medium", "700000"), NULL, "d['misuse']['invalid_pointers']", res, sizeof res, "");
    cr_assert_str_eq(res, "1");
}

Test(misuse, medium_interior_free_is_refused_without_check)
{
    char res[256];
    survive_with_stats(ARGS("interior_medium"), NULL, "d['misuse']['invalid_pointers']", res, sizeof res, "");
    cr_assert_str_eq(res, "1");
}

/* the helper's realloc `mode` of a medium block returns NULL without NUMAMALLOC_CHECK,
 * with one warning that gives `why`, and the helper goes on */
static void expect_realloc_refused(const char *mode, const char *why)
{
    child_t c = run_helper("api_misuse", ARGS(mode), NULL);
    cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "status %#x; stderr %s", c.status, c.err);
    char out[128], err[160];
    snprintf(out, sizeof out, "realloc returned NULL\nsurvived %s\n", mode);
    snprintf(err, sizeof err, "%s; returning NULL and leaving it alone", why);
    cr_assert_not_null(strstr(c.out, out), "%s", c.out);
    cr_assert_eq(count_lines(c.err), 1, "one warning: %s", c.err);
    cr_assert_not_null(strstr(c.err, err), "%s", c.err);
    child_free(&c);
}

Test(misuse, medium_realloc_of_freed_block_returns_null_without_check)
{
    expect_realloc_refused("realloc_freed_medium", "medium block is not allocated (double free?)");
}

/* 8 KiB in, where a block of another class could start, and to a size the block
 * would keep in place: refused all the same, and the block itself still good */
Test(misuse, medium_realloc_of_interior_pointer_returns_null_without_check)
{
    expect_realloc_refused("realloc_interior_medium", "not the start of a medium block (interior pointer)");
}

Test(misuse, large_double_free_then_allocation_without_check)
{
    char res[256];
    /* the freeing thread keeps the 8 MiB block (src/large.c), flagged as freed: the
     * second free is refused as a double free (an invalid pointer, not a foreign one);
     * then large (the freed mapping's size among them, so the caches are used), medium
     * and small blocks are taken three times over and checked for overlap and contents */
    survive_with_stats(ARGS("double_free_large_alloc"), NULL, "[d['misuse']['foreign_frees'], d['misuse']['invalid_pointers']]",
                       res, sizeof res, "");
    cr_assert_str_eq(res, "[0,1]");
}

/* Use after free: the helper frees 1200 small and medium blocks (half from another
 * thread), overwrites every byte of each with 0x41, then allocates and frees 1200
 * blocks three times, checking contents and overlap each time; six rounds. Our small
 * blocks keep no link in freed memory (magazines and free bitmaps are metadata), and
 * medium blocks start 16 bytes into mimalloc's, past its free-list link (before the
 * header this crashed in mimalloc). NUMAMALLOC_DECAY_MS keeps freed memory mapped:
 * writing to memory the allocator has returned to the OS would be the program's
 * own SIGSEGV, not the allocator's corruption. */
Test(misuse, writes_into_freed_blocks_do_not_corrupt_the_allocator)
{
    char res[256];
    survive_with_stats(ARGS("uaf_writes"), "NUMAMALLOC_DECAY_MS=3600000", "d['misuse']['invalid_pointers']", res, sizeof res, "");
    cr_assert_str_eq(res, "0", "nothing was misfreed");
}

Test(misuse, writes_into_freed_blocks_do_not_corrupt_the_allocator_in_check_mode)
{
    const char *env[] = { "NUMAMALLOC_CHECK=1", "NUMAMALLOC_DECAY_MS=3600000", NULL };
    child_t c = run_helper("api_misuse", ARGS("uaf_writes"), env);
    cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "status %#x; stderr %s", c.status, c.err);
    cr_assert_str_eq(c.out, "survived uaf_writes\n");
    cr_assert_str_eq(c.err, "");
    child_free(&c);
}
