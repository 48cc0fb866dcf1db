/* tests/stress/test_stress.c — runs the deterministic stress program (stress.c)
 * under the preload, and once without it for reference: the "result" line
 * (allocation count, checksum of ids and sizes, errors) depends only on the
 * arguments, so both must print the same one, with errors=0; the preloaded run
 * must also end with as many live blocks as it started with, and no invalid or
 * foreign pointer. Shorter runs repeat it under option variants that take other
 * paths (checked frees, immediate decay, large mappings only, profiler). Untimed. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/spawn.h"

#ifndef NM_STRESS_BIN
#define NM_STRESS_BIN "build/tests/stress/stress"
#endif

static char *result_line(const char *out)
{
    static char line[512];
    const char *r = strstr(out, "result: ");
    if (r == NULL) return NULL;
    size_t n = strcspn(r, "\n");
    if (n >= sizeof line) n = sizeof line - 1;
    memcpy(line, r, n);
    line[n] = '\0';
    return line;
}

/* run the stress program preloaded with env; returns its result line (strdup'ed) */
static char *run_preloaded(const char *threads, const char *ops, const char *const env[], const char *what)
{
    const char *args[] = { threads, ops, "42", NULL };
    nm_proc_t p;
    cr_assert_eq(nm_run_helper(NM_STRESS_BIN, args, env, 150, &p), 0);
    NM_ASSERT_PROC_OK(&p);
    char *got = result_line(p.out);
    cr_assert_not_null(got, "%s: no result line:\n%s", what, p.out);
    char want_prefix[128];
    snprintf(want_prefix, sizeof want_prefix, "result: threads=%s ops=%s ", threads, ops);
    cr_assert(strncmp(got, want_prefix, strlen(want_prefix)) == 0, "%s: %s", what, got);
    cr_assert(strstr(got, " errors=0") != NULL, "%s: %s\n%s", what, got, p.err);
    const char *st = strstr(p.out, "stats: live_before=");
    cr_assert_not_null(st, "%s: no stats line: is it preloaded?\n%s", what, p.out);
    fprintf(stderr, "stress %s x %s ops, %s: %.1f s; %s", threads, ops, what, p.seconds, st);
    got = strdup(got);
    nm_proc_free(&p);
    return got;
}

/* the same arguments without the preload: the reference result line */
static char *run_glibc(const char *threads, const char *ops)
{
    const char *args[] = { threads, ops, "42", NULL };
    const char *plain[] = { "LD_PRELOAD=", NULL };
    nm_proc_t ref;
    cr_assert_eq(nm_run_helper(NM_STRESS_BIN, args, plain, 150, &ref), 0);
    NM_ASSERT_PROC_OK(&ref);
    char *want = result_line(ref.out);
    cr_assert_not_null(want);
    cr_assert(strstr(want, " errors=0") != NULL, "glibc: %s", want);
    fprintf(stderr, "stress %s x %s ops, glibc: %.1f s\n", threads, ops, ref.seconds);
    want = strdup(want);
    nm_proc_free(&ref);
    return want;
}

Test(stress, eight_threads_cross_thread_frees, .timeout = 320)
{
    char *got = run_preloaded("8", "60000", NULL, "defaults");
    char *want = run_glibc("8", "60000");
    cr_assert_str_eq(got, want, "the preloaded run differs from glibc's");
    free(got);
    free(want);
}

/* other paths through the allocator, same invariants: checked frees and reallocs;
 * no decay delay (purging races with allocation); everything >= 64 KiB on its own
 * mapping and no mapping cache; the profiler sampling every 4 KiB */
Test(stress, option_variants, .timeout = 320)
{
    static const char *const variants[][3] = {
        { "NUMAMALLOC_CHECK=1", NULL, NULL },
        { "NUMAMALLOC_DECAY_MS=0", NULL, NULL },
        { "NUMAMALLOC_LARGE_THRESHOLD=64K", "NUMAMALLOC_LARGE_CACHE=0", NULL },
        { "NUMAMALLOC_PROF=1", "NUMAMALLOC_PROF_SAMPLE=4K", NULL },
    };
    char *want = run_glibc("4", "20000");
    for (unsigned i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        char what[128];
        snprintf(what, sizeof what, "%s%s%s", variants[i][0], variants[i][1] ? " " : "", variants[i][1] ? variants[i][1] : "");
        char *got = run_preloaded("4", "20000", variants[i], what);
        cr_assert_str_eq(got, want, "%s: the preloaded run differs from glibc's", what);
        free(got);
    }
    free(want);
}
