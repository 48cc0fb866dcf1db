/* tests/preload/test_bootstrap.c — start-up paths under the preload: libnuma's
 * constructor allocating before ours, libraries dlopen'ed later, dlsym/dlerror,
 * libc functions that allocate internally, a priority-101 constructor. Each also
 * runs with NUMAMALLOC_CHECK=1, where a block the allocator cannot place (one
 * served while it was booting, say) would abort instead of being ignored. */
#include <criterion/criterion.h>
#include <stdio.h>

#include "helpers/spawn.h"

static void run(const char *prog, const char *mode, const char *want)
{
    static const char *const envs[][2] = { { NULL, NULL }, { "NUMAMALLOC_CHECK=1", NULL } };
    for (int i = 0; i < 2; i++) {
        nm_proc_t p;
        const char *args[] = { mode, NULL };
        cr_assert_eq(nm_run_helper(prog, mode ? args : NULL, envs[i][0] ? envs[i] : NULL, 60, &p), 0);
        NM_ASSERT_PROC_OK(&p);
        cr_assert_str_eq(p.out, want, "%s %s%s", prog, mode ? mode : "", i ? " with NUMAMALLOC_CHECK=1" : "");
        cr_assert_str_empty(p.err, "unexpected stderr: %s", p.err);
        nm_proc_free(&p);
    }
}

Test(bootstrap, linked_with_libnuma) { run("prog_boot_numa", NULL, "libnuma: ok\n"); }
Test(bootstrap, constructor_priority_101_allocates) { run("prog_boot", "ctor", "ctor101: ok\nctor: ok\n"); }
Test(bootstrap, dlopen_libunwind_and_libnuma_after_start) { run("prog_boot", "dlopen", "ctor101: ok\ndlopen: ok\n"); }
Test(bootstrap, dlsym_and_dlerror_in_a_loop) { run("prog_boot", "dlsym", "ctor101: ok\ndlsym: ok\n"); }
Test(bootstrap, libc_functions_that_allocate) { run("prog_boot", "libc", "ctor101: ok\nlibc: ok\n"); }
