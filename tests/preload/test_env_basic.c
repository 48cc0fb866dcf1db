/* tests/preload/test_env_basic.c — the environment, basics only (every option's
 * accepted and rejected forms are tested elsewhere): a bad NUMAMALLOC_POLICY gives
 * exactly one warning line and changes nothing else; NUMAMALLOC_CHECK=1 is silent
 * for a correct program. The reference output comes from the same helper run
 * without the preload. */
#include <criterion/criterion.h>
#include <string.h>

#include "helpers/spawn.h"

static nm_proc_t run_work(const char *const env[])
{
    nm_proc_t p;
    cr_assert_eq(nm_run_helper("prog_work", NULL, env, 60, &p), 0);
    NM_ASSERT_PROC_OK(&p);
    return p;
}

Test(env_basic, bad_policy_warns_once_and_changes_nothing)
{
    const char *plain_env[] = { "LD_PRELOAD=", NULL };
    nm_proc_t plain = run_work(plain_env);
    cr_assert_str_empty(plain.err);
    nm_proc_t base = run_work(NULL);
    cr_assert_str_eq(base.out, plain.out);
    cr_assert_str_empty(base.err, "stderr without any variable: %s", base.err);

    const char *env[] = { "NUMAMALLOC_POLICY=sideways", NULL };
    nm_proc_t bad = run_work(env);
    cr_assert_str_eq(bad.out, plain.out, "the warning changed the program's output");
    cr_assert_eq(nm_count_lines(bad.err), 1, "not exactly one line on stderr:\n%s", bad.err);
    cr_assert_str_eq(bad.err,
        "numamalloc: NUMAMALLOC_POLICY='sideways' ignored: accepts local, interleave[:N,M...], "
        "bind:N[,M...], preferred:N; using 'local'\n");
    nm_proc_free(&plain);
    nm_proc_free(&base);
    nm_proc_free(&bad);
}

Test(env_basic, check_mode_is_silent_for_a_correct_program)
{
    nm_proc_t base = run_work(NULL);
    const char *env[] = { "NUMAMALLOC_CHECK=1", NULL };
    nm_proc_t chk = run_work(env);
    cr_assert_str_eq(chk.out, base.out);
    cr_assert_str_empty(chk.err, "NUMAMALLOC_CHECK=1 printed: %s", chk.err);
    cr_assert(strstr(chk.out, "checks: ok") != NULL);
    nm_proc_free(&base);
    nm_proc_free(&chk);
}
