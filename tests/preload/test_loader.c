/* tests/preload/test_loader.c — allocation while the dynamic loader holds its lock.
 *
 * dlopen() runs a library's constructors with the loader's lock held. A constructor
 * that starts a thread and joins it is legal (the thread must only not dlopen
 * itself): the thread's allocator calls, the first ones it makes, must not need
 * that lock, or dlopen() never returns. tests/helpers/prog_dlopen_ctor loads
 * libnmctor.so (tests/helpers/prog_ctor_lib.c) three times; its constructor's
 * thread either allocates small, medium and large blocks at once, or allocates for
 * the first time in a pthread key destructor as it exits. The helper's hang guard
 * (10 s) turns a stuck dlopen into exit 3 with a "hang:" line; the same runs
 * without the preload give the expected output. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "helpers/spawn.h"

static void dlopen_ctor(const char *mode)
{
    char want[64];
    snprintf(want, sizeof want, "dlopen %s: ok\n", mode);
    const char *args[] = { mode, NULL };
    static const char *const plain[] = { "LD_PRELOAD=", NULL };
    static const char *const check[] = { "NUMAMALLOC_CHECK=1", NULL };
    const char *const *envs[] = { plain, NULL, check };
    static const char *const what[] = { "without the preload", "preloaded", "preloaded, NUMAMALLOC_CHECK=1" };
    for (int i = 0; i < 3; i++) {
        nm_proc_t p;
        cr_assert_eq(nm_run_helper("prog_dlopen_ctor", args, envs[i], 30, &p), 0, "%s", p.err);
        char st[96];
        cr_assert(nm_proc_ok(&p), "%s: helper ended with %s\n--- stderr:\n%s--- stdout:\n%s", what[i],
                  nm_proc_status(&p, st, sizeof st), p.err, p.out);
        cr_assert_str_eq(p.out, want, "%s", what[i]);
        cr_assert_str_empty(p.err, "%s: unexpected stderr: %s", what[i], p.err);
        nm_proc_free(&p);
    }
}

Test(loader, dlopen_constructor_thread_allocates_small_medium_large, .timeout = 120) { dlopen_ctor("alloc"); }
Test(loader, dlopen_constructor_thread_first_allocation_in_key_destructor, .timeout = 120) { dlopen_ctor("keydtor"); }
