/* tests/api/test_misuse.c — what happens when a program misuses the allocator.
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
    size_t len;
    char *json = slurp(stats, &len);
    unlink(stats);
    cr_assert_not_null(json);
    cr_assert_gt(len, 0, "no stats dump at exit");
    cr_assert_eq(count_lines(json), 1, "one dump, one line");
    char res[512];
    cr_assert(json_py(json, len, "[d['misuse']['foreign_frees'], d['misuse']['invalid_pointers'], d['schema_version']]",
                      res, sizeof res), "%s\n%.300s", res, json);
    cr_assert_str_eq(res, "[2,2,1]", "the stack and the global free, counted once each");
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
    cr_assert_str_eq(c.out, "result NULL errno EINVAL value 7\nsurvived realloc_foreign\n");
    cr_assert_eq(count_lines(c.err), 1, "%s", c.err);
    child_free(&c);
}

Test(misuse, interior_pointer_into_large_block_is_ignored_without_check)
{
    const char *args[] = { "interior_large", NULL };
    child_t c = run_helper("api_misuse", args, NULL);
    cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "status %#x; stderr %s", c.status, c.err);
    cr_assert_str_eq(c.out, "survived interior_large\n");
    child_free(&c);
}
