/* tests/unit/test_options.c — the options table and its parsers (src/options.c,
 * include/numamalloc/options.h): nm_parse_size, nm_option_parse (every accepted form
 * of every option and every rejected form with its exact one-line warning),
 * nm_options_defaults, and nm_options_init over an explicit envp (unknown names,
 * AT_SECURE, warnings on fd 2 captured through a temporary file).
 *
 * The warning format is the contract users see:
 *   NUMAMALLOC_<NAME>='<value>' ignored: accepts <accepts>; using '<default>'
 * so rejected values are checked against the whole text, built from the table. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "numamalloc/internal.h"

/* the same configuration: the fields, the effective texts (raw[] points at the
 * table's default or at the struct's own copy) and where each came from */
static bool same_options(const nm_options_t *a, const nm_options_t *b)
{
    if (memcmp(a, b, offsetof(nm_options_t, raw)) != 0) return false;
    for (int id = 0; id < NM_OPT_N; id++)
        if (strcmp(a->raw[id], b->raw[id]) != 0 || a->from_env[id] != b->from_env[id]) return false;
    return true;
}

static nm_options_t o;

static void fresh(void) { nm_options_defaults(&o); }

static int opt_id(const char *name)
{
    for (int i = 0; i < NM_OPT_N; i++)
        if (strcmp(nm_option_table[i].name, name) == 0) return i;
    cr_assert_fail("no option %s", name);
    return -1;
}

/* value must be accepted; raw text and from_env recorded */
static void accept(const char *name, const char *value)
{
    int id = opt_id(name);
    char err[512] = "untouched";
    cr_assert(nm_option_parse(&o, id, value, err, sizeof err), "NUMAMALLOC_%s='%s' rejected: %s", name, value, err);
    cr_assert_str_eq(o.raw[id], value, "raw text of %s", name);
    cr_assert(o.from_env[id]);
    cr_assert_str_eq(err, "untouched", "no warning for an accepted value");
}

/* value must be rejected, with exactly the documented warning, o unchanged */
static void reject_shown(const char *name, const char *value, const char *shown)
{
    int id = opt_id(name);
    nm_options_t before = o;
    char err[512], want[512];
    cr_assert_not(nm_option_parse(&o, id, value, err, sizeof err), "NUMAMALLOC_%s='%s' accepted", name, shown);
    snprintf(want, sizeof want, "NUMAMALLOC_%s='%s' ignored: accepts %s; using '%s'",
             name, shown, nm_option_table[id].accepts, nm_option_table[id].def);
    cr_assert_str_eq(err, want);
    cr_assert_null(strchr(err, '\n'), "one line");
    cr_assert_eq(memcmp(&before, &o, sizeof o), 0, "a rejected value changed the options (%s='%s')", name, shown);
}

static void reject(const char *name, const char *value) { reject_shown(name, value, value); }

/* ---- nm_parse_size --------------------------------------------------------------- */

static size_t size_of(const char *s)
{
    size_t v = 12345;
    cr_assert(nm_parse_size(s, &v), "'%s' rejected", s);
    return v;
}

Test(options, parse_size_accepts)
{
    cr_assert_eq(size_of("0"), 0);
    cr_assert_eq(size_of("123"), 123);
    cr_assert_eq(size_of("64K"), 64 << 10);
    cr_assert_eq(size_of("64k"), 64 << 10);
    cr_assert_eq(size_of("64KiB"), 64 << 10);
    cr_assert_eq(size_of("64KB"), 64 << 10);
    cr_assert_eq(size_of("1M"), 1 << 20);
    cr_assert_eq(size_of("1m"), 1 << 20);
    cr_assert_eq(size_of("1MiB"), 1 << 20);
    cr_assert_eq(size_of("3MB"), 3 << 20);
    cr_assert_eq(size_of("2G"), (size_t)2 << 30);
    cr_assert_eq(size_of("2g"), (size_t)2 << 30);
    cr_assert_eq(size_of("2GiB"), (size_t)2 << 30);
    cr_assert_eq(size_of("1T"), (size_t)1 << 40);
    cr_assert_eq(size_of("1t"), (size_t)1 << 40);
    cr_assert_eq(size_of("007"), 7);
    cr_assert_eq(size_of("18446744073709551615"), SIZE_MAX);
    cr_assert_eq(size_of("16777215T"), (size_t)16777215 << 40);
}

Test(options, parse_size_rejects)
{
    static const char *bad[] = {
        "", " 1", "1 ", "+1", "-1", "1.5M", "0x10", "K", "1X", "1KK", "1Ki", "1KiBB", "1iB",
        "1B", "1 K", "1K ", "1k\n", "18446744073709551616", "16777216T", "99999999999999999999999",
        "1e6", "1M1",
    };
    for (unsigned i = 0; i < NM_ARRAY_LEN(bad); i++) {
        size_t v = 777;
        cr_assert_not(nm_parse_size(bad[i], &v), "'%s' accepted as %zu", bad[i], v);
        cr_assert_eq(v, 777, "'%s': output written on failure", bad[i]);
    }
}

/* ---- defaults ----------------------------------------------------------------------- */

Test(options, defaults_parse_and_apply)
{
    fresh();
    cr_assert_eq(o.policy, NM_POL_LOCAL);
    cr_assert_eq(o.policy_nnodes, 0);
    cr_assert_eq(o.hugepages, NM_HUGE_AUTO);
    cr_assert_eq(o.large_threshold, (size_t)1 << 20);
    cr_assert_eq(o.prefault, NM_PREFAULT_AUTO);
    cr_assert_eq(o.decay_ms, 1000);
    cr_assert_eq(o.large_cache, (size_t)64 << 20);
    cr_assert_eq(o.background, false);
    cr_assert_eq(o.check, false);
    cr_assert_eq(o.stats, NM_STATS_OFF);
    cr_assert_str_eq(o.stats_file, "");
    cr_assert_eq(o.stats_signal, 0);
    cr_assert_eq(o.stats_interval, 0);
    cr_assert_eq(o.verbose, false);
    cr_assert_eq(o.prof, false);
    cr_assert_eq(o.prof_sample, (size_t)512 << 10);
    for (int id = 0; id < NM_OPT_N; id++) {
        const nm_option_desc_t *d = &nm_option_table[id];
        cr_assert_str_eq(o.raw[id], d->def, "raw default of %s", d->name);
        cr_assert_not(o.from_env[id], "%s marked as from the environment", d->name);
        cr_assert_not_null(d->accepts);
        cr_assert_not_null(d->desc);
        cr_assert_gt(strlen(d->accepts), 0, "%s: empty accepts text", d->name);
        /* each default is a value its own parser accepts, and applying it is a no-op */
        nm_options_t t = o;
        char err[512];
        cr_assert(nm_option_parse(&t, id, d->def, err, sizeof err), "default of %s rejected: %s", d->name, err);
        t.from_env[id] = false;
        cr_assert(same_options(&t, &o), "re-applying the default of %s changed something", d->name);
    }
    /* the table names every option once, in enum order */
    for (int a = 0; a < NM_OPT_N; a++)
        for (int b = a + 1; b < NM_OPT_N; b++)
            cr_assert_str_neq(nm_option_table[a].name, nm_option_table[b].name);
    cr_assert_str_eq(nm_option_table[NM_OPT_POLICY].name, "POLICY");
    cr_assert_str_eq(nm_option_table[NM_OPT_PROF_SAMPLE].name, "PROF_SAMPLE");
}

/* ---- every option ------------------------------------------------------------------ */

static void nodes_are(const unsigned *want, unsigned n)
{
    cr_assert_eq(o.policy_nnodes, n);
    for (unsigned i = 0; i < n; i++) cr_assert_eq(o.policy_nodes[i], want[i], "node %u", i);
}

Test(options, policy)
{
    fresh();
    accept("POLICY", "interleave");
    cr_assert_eq(o.policy, NM_POL_INTERLEAVE);
    nodes_are(NULL, 0);
    accept("POLICY", "interleave:0,1");
    cr_assert_eq(o.policy, NM_POL_INTERLEAVE);
    nodes_are((unsigned[]){ 0, 1 }, 2);
    accept("POLICY", "interleave:0-3");
    nodes_are((unsigned[]){ 0, 1, 2, 3 }, 4);
    accept("POLICY", "bind:2");
    cr_assert_eq(o.policy, NM_POL_BIND);
    nodes_are((unsigned[]){ 2 }, 1);
    accept("POLICY", "bind:1,3");
    nodes_are((unsigned[]){ 1, 3 }, 2);
    accept("POLICY", "bind:0-2,5,7-8");
    nodes_are((unsigned[]){ 0, 1, 2, 5, 7, 8 }, 6);
    accept("POLICY", "bind:1023");
    nodes_are((unsigned[]){ 1023 }, 1);
    accept("POLICY", "preferred:1");
    cr_assert_eq(o.policy, NM_POL_PREFERRED);
    nodes_are((unsigned[]){ 1 }, 1);
    accept("POLICY", "local");
    cr_assert_eq(o.policy, NM_POL_LOCAL);
    nodes_are(NULL, 0);

    /* a bad value leaves the previous policy and its nodes in place */
    accept("POLICY", "bind:4,6");
    static const char *bad[] = {
        "sideways", "", "Local", "LOCAL", "local ", " local", "bind", "bind:", "bind:x", "bind:0,",
        "bind:,0", "bind:0,0", "bind:0-1,1", "bind:3-1", "bind:1024", "bind:0-1024", "bind:-1",
        "preferred", "preferred:", "preferred:0,1", "preferred:0-1", "interleave:", "interleave:a",
        "interleave:0;1", "interleaved", "bind:1 ", "bind:99999999999999999999",
    };
    for (unsigned i = 0; i < NM_ARRAY_LEN(bad); i++) reject("POLICY", bad[i]);
    cr_assert_eq(o.policy, NM_POL_BIND);
    nodes_are((unsigned[]){ 4, 6 }, 2);
    cr_assert_str_eq(o.raw[NM_OPT_POLICY], "bind:4,6");

    /* the example from the documentation, whole */
    char err[512];
    cr_assert_not(nm_option_parse(&o, NM_OPT_POLICY, "sideways", err, sizeof err));
    cr_assert_str_eq(err, "NUMAMALLOC_POLICY='sideways' ignored: accepts local, interleave[:N,M...], "
                          "bind:N[,M...], preferred:N; using 'local'");
}

Test(options, hugepages)
{
    fresh();
    accept("HUGEPAGES", "off");      cr_assert_eq(o.hugepages, NM_HUGE_OFF);
    accept("HUGEPAGES", "hugetlb");  cr_assert_eq(o.hugepages, NM_HUGE_HUGETLB);
    accept("HUGEPAGES", "1g");       cr_assert_eq(o.hugepages, NM_HUGE_1G);
    accept("HUGEPAGES", "1G");       cr_assert_eq(o.hugepages, NM_HUGE_1G);
    accept("HUGEPAGES", "thp");      cr_assert_eq(o.hugepages, NM_HUGE_THP);
    accept("HUGEPAGES", "auto");     cr_assert_eq(o.hugepages, NM_HUGE_AUTO); cr_assert_not(o.thp_fallback);
    accept("HUGEPAGES", "hugetlb+thp"); cr_assert_eq(o.hugepages, NM_HUGE_HUGETLB); cr_assert(o.thp_fallback);
    accept("HUGEPAGES", "1g+thp");   cr_assert_eq(o.hugepages, NM_HUGE_1G); cr_assert(o.thp_fallback);
    accept("HUGEPAGES", "thp");      cr_assert_not(o.thp_fallback, "a value replaces the whole setting");
    static const char *bad[] = { "yes", "", "on", "THP", "Auto", "2m", "1", "0", "hugetlb:2M", "none" };
    for (unsigned i = 0; i < NM_ARRAY_LEN(bad); i++) reject("HUGEPAGES", bad[i]);
    char err[512];
    cr_assert_not(nm_option_parse(&o, NM_OPT_HUGEPAGES, "yes", err, sizeof err));
    cr_assert_str_eq(err, "NUMAMALLOC_HUGEPAGES='yes' ignored: accepts auto, hugetlb, 1g, thp, off, hugetlb+thp or 1g+thp; using 'auto'");
}

Test(options, prefault)
{
    fresh();
    accept("PREFAULT", "1");     cr_assert_eq(o.prefault, NM_PREFAULT_ON);
    accept("PREFAULT", "0");     cr_assert_eq(o.prefault, NM_PREFAULT_OFF);
    accept("PREFAULT", "yes");   cr_assert_eq(o.prefault, NM_PREFAULT_ON);
    accept("PREFAULT", "off");   cr_assert_eq(o.prefault, NM_PREFAULT_OFF);
    accept("PREFAULT", "auto");  cr_assert_eq(o.prefault, NM_PREFAULT_AUTO);
    static const char *bad[] = { "", "2", "Auto", "AUTO", "always", "never", "1 ", "01" };
    for (unsigned i = 0; i < NM_ARRAY_LEN(bad); i++) reject("PREFAULT", bad[i]);
    char err[512];
    cr_assert_not(nm_option_parse(&o, NM_OPT_PREFAULT, "maybe", err, sizeof err));
    cr_assert_str_eq(err, "NUMAMALLOC_PREFAULT='maybe' ignored: accepts auto, 0 or 1; using 'auto'");
}

Test(options, large_threshold)
{
    fresh();
    accept("LARGE_THRESHOLD", "64K");    cr_assert_eq(o.large_threshold, (size_t)64 << 10);
    accept("LARGE_THRESHOLD", "65536");  cr_assert_eq(o.large_threshold, 65536);
    accept("LARGE_THRESHOLD", "512k");   cr_assert_eq(o.large_threshold, (size_t)512 << 10);
    accept("LARGE_THRESHOLD", "2M");     cr_assert_eq(o.large_threshold, (size_t)2 << 20);
    accept("LARGE_THRESHOLD", "4MiB");   cr_assert_eq(o.large_threshold, (size_t)4 << 20);
    accept("LARGE_THRESHOLD", "1G");     cr_assert_eq(o.large_threshold, (size_t)1 << 30);
    accept("LARGE_THRESHOLD", "1M");     cr_assert_eq(o.large_threshold, (size_t)1 << 20);
    static const char *bad[] = { "65535", "63K", "0", "1025M", "2G", "1T", "", "1X", "-1M", "1.5M", "big" };
    for (unsigned i = 0; i < NM_ARRAY_LEN(bad); i++) reject("LARGE_THRESHOLD", bad[i]);
    cr_assert_eq(o.large_threshold, (size_t)1 << 20);
}

static void check_bool(const char *name, const bool *field)
{
    fresh();
    static const char *yes[] = { "1", "yes", "on", "true" };
    static const char *no[] = { "0", "no", "off", "false" };
    for (unsigned i = 0; i < 4; i++) {
        accept(name, yes[i]);
        cr_assert(*field, "%s=%s", name, yes[i]);
        accept(name, no[i]);
        cr_assert_not(*field, "%s=%s", name, no[i]);
    }
    static const char *bad[] = { "", "2", "-1", "Yes", "TRUE", "y", "n", "enable", "1 ", "01" };
    for (unsigned i = 0; i < NM_ARRAY_LEN(bad); i++) reject(name, bad[i]);
    char err[512], want[512];
    cr_assert_not(nm_option_parse(&o, opt_id(name), "maybe", err, sizeof err));
    snprintf(want, sizeof want, "NUMAMALLOC_%s='maybe' ignored: accepts 0 or 1; using '0'", name);
    cr_assert_str_eq(err, want);
}

Test(options, booleans)
{
    check_bool("CHECK", &o.check);
    check_bool("VERBOSE", &o.verbose);
    check_bool("PROF", &o.prof);
}

Test(options, decay_ms)
{
    fresh();
    accept("DECAY_MS", "0");        cr_assert_eq(o.decay_ms, 0);
    accept("DECAY_MS", "3600000");  cr_assert_eq(o.decay_ms, 3600000);
    accept("DECAY_MS", "250");      cr_assert_eq(o.decay_ms, 250);
    static const char *bad[] = { "3600001", "-1", "1s", "", "1.5", "1K", "0x10", "99999999999999999999999" };
    for (unsigned i = 0; i < NM_ARRAY_LEN(bad); i++) reject("DECAY_MS", bad[i]);
    cr_assert_eq(o.decay_ms, 250);
}

Test(options, large_cache)
{
    fresh();
    accept("LARGE_CACHE", "0");     cr_assert_eq(o.large_cache, 0);
    accept("LARGE_CACHE", "64G");   cr_assert_eq(o.large_cache, (size_t)64 << 30);
    accept("LARGE_CACHE", "256M");  cr_assert_eq(o.large_cache, (size_t)256 << 20);
    accept("LARGE_CACHE", "4096");  cr_assert_eq(o.large_cache, 4096);
    static const char *bad[] = { "65G", "1T", "", "lots", "-1", "64GiBs" };
    for (unsigned i = 0; i < NM_ARRAY_LEN(bad); i++) reject("LARGE_CACHE", bad[i]);
    cr_assert_eq(o.large_cache, 4096);
}

Test(options, background)
{
    fresh();
    accept("BACKGROUND", "1");  cr_assert(o.background);
    accept("BACKGROUND", "0");  cr_assert_not(o.background);
    static const char *bad[] = { "2", "", "enabled", "-1" };
    for (unsigned i = 0; i < NM_ARRAY_LEN(bad); i++) reject("BACKGROUND", bad[i]);
    cr_assert_not(o.background);
}

Test(options, stats)
{
    fresh();
    accept("STATS", "text");  cr_assert_eq(o.stats, NM_STATS_TEXT);
    accept("STATS", "off");   cr_assert_eq(o.stats, NM_STATS_OFF);
    accept("STATS", "1");     cr_assert_eq(o.stats, NM_STATS_TEXT);
    accept("STATS", "0");     cr_assert_eq(o.stats, NM_STATS_OFF);
    accept("STATS", "json");  cr_assert_eq(o.stats, NM_STATS_JSON);
    static const char *bad[] = { "JSON", "yes", "2", "", "txt", "json " };
    for (unsigned i = 0; i < NM_ARRAY_LEN(bad); i++) reject("STATS", bad[i]);
    cr_assert_eq(o.stats, NM_STATS_JSON);
}

Test(options, stats_file)
{
    fresh();
    accept("STATS_FILE", "/tmp/numamalloc.%p.json");
    cr_assert_str_eq(o.stats_file, "/tmp/numamalloc.%p.json");
    accept("STATS_FILE", "relative/dir/a=b %t");
    cr_assert_str_eq(o.stats_file, "relative/dir/a=b %t");
    char longest[512];
    memset(longest, 'p', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';          /* 511 characters: the most that fits */
    char err[512];
    cr_assert(nm_option_parse(&o, NM_OPT_STATS_FILE, longest, err, sizeof err), "%s", err);
    cr_assert_str_eq(o.stats_file, longest);
    accept("STATS_FILE", "");
    cr_assert_str_eq(o.stats_file, "");
    /* 512 characters do not fit: rejected, shown cut to 60 characters and "..." */
    char toolong[513];
    memset(toolong, 'q', sizeof toolong - 1);
    toolong[sizeof toolong - 1] = '\0';
    reject_shown("STATS_FILE", toolong, "qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq...");
    cr_assert_str_eq(o.stats_file, "");
}

/* raw[] is what numamalloc_option_get() and the dumps report as "the effective
 * value": a path the allocator really uses must come back whole (raw[] holds as
 * much as stats_file takes, 511 characters), or the dump's config.stats_file would
 * show a cut path while the dump itself goes to the whole one. */
Test(options, effective_text_of_a_long_path_is_whole)
{
    fresh();
    char path[300];
    memset(path, 'r', sizeof path - 1);
    path[0] = '/';
    path[sizeof path - 1] = '\0';
    char err[512];
    cr_assert(nm_option_parse(&o, NM_OPT_STATS_FILE, path, err, sizeof err), "%s", err);
    cr_assert_str_eq(o.stats_file, path, "the path in use");
    cr_assert_str_eq(o.raw[NM_OPT_STATS_FILE], path, "raw text (numamalloc_option_get) is cut to %zu characters",
                     strlen(o.raw[NM_OPT_STATS_FILE]));
}

Test(options, stats_signal)
{
    fresh();
    accept("STATS_SIGNAL", "USR1");     cr_assert_eq(o.stats_signal, SIGUSR1);
    accept("STATS_SIGNAL", "USR2");     cr_assert_eq(o.stats_signal, SIGUSR2);
    accept("STATS_SIGNAL", "SIGUSR1");  cr_assert_eq(o.stats_signal, SIGUSR1);
    accept("STATS_SIGNAL", "SIGUSR2");  cr_assert_eq(o.stats_signal, SIGUSR2);
    accept("STATS_SIGNAL", "");         cr_assert_eq(o.stats_signal, 0);
    static const char *bad[] = { "HUP", "usr1", "10", "SIGUSR3", "USR", "SIGINT", "USR1 " };
    for (unsigned i = 0; i < NM_ARRAY_LEN(bad); i++) reject("STATS_SIGNAL", bad[i]);
    cr_assert_eq(o.stats_signal, 0);
}

Test(options, stats_interval)
{
    fresh();
    accept("STATS_INTERVAL", "86400");  cr_assert_eq(o.stats_interval, 86400);
    accept("STATS_INTERVAL", "5");      cr_assert_eq(o.stats_interval, 5);
    accept("STATS_INTERVAL", "0");      cr_assert_eq(o.stats_interval, 0);
    static const char *bad[] = { "86401", "-", "1m", "", "-5", "5s" };
    for (unsigned i = 0; i < NM_ARRAY_LEN(bad); i++) reject("STATS_INTERVAL", bad[i]);
    cr_assert_eq(o.stats_interval, 0);
}

Test(options, prof_sample)
{
    fresh();
    accept("PROF_SAMPLE", "1");     cr_assert_eq(o.prof_sample, 1);
    accept("PROF_SAMPLE", "1G");    cr_assert_eq(o.prof_sample, (size_t)1 << 30);
    accept("PROF_SAMPLE", "64K");   cr_assert_eq(o.prof_sample, (size_t)64 << 10);
    static const char *bad[] = { "0", "2G", "", "1025M", "x", "-1" };
    for (unsigned i = 0; i < NM_ARRAY_LEN(bad); i++) reject("PROF_SAMPLE", bad[i]);
    cr_assert_eq(o.prof_sample, (size_t)64 << 10);
}

/* ---- hostile values ---------------------------------------------------------------- */

Test(options, hostile_values_stay_one_line)
{
    fresh();
    /* control characters become '?', so the warning stays one line on a terminal */
    reject_shown("POLICY", "bind:\n0\r\t\x1b[2J\x7f", "bind:?0???[2J?");
    reject_shown("STATS", "\n", "?");
    reject_shown("HUGEPAGES", "\xc3\xa9t\xc3\xa9", "??t??");   /* UTF-8 bytes too */
    /* very long values are cut to 60 characters and "..." */
    char big[100000];
    memset(big, 'A', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char shown[64];
    memset(shown, 'A', 60);
    strcpy(shown + 60, "...");
    reject_shown("DECAY_MS", big, shown);
    /* 60 characters exactly are shown whole, 61 are cut */
    char sixty[61], sixtyone[62];
    memset(sixty, 'B', 60); sixty[60] = '\0';
    memset(sixtyone, 'B', 61); sixtyone[61] = '\0';
    reject("STATS", sixty);
    char cut[64];
    memset(cut, 'B', 60);
    strcpy(cut + 60, "...");
    reject_shown("STATS", sixtyone, cut);
    /* a long value with control characters in the kept part */
    char mixed[200];
    for (unsigned i = 0; i < sizeof mixed - 1; i++) mixed[i] = (i % 3 == 0) ? '\n' : 'x';
    mixed[sizeof mixed - 1] = '\0';
    int id = NM_OPT_PROF_SAMPLE;
    char err[512];
    cr_assert_not(nm_option_parse(&o, id, mixed, err, sizeof err));
    cr_assert_null(strchr(err, '\n'));
    cr_assert_null(strchr(err, '\r'));
    for (const char *p = err; *p; p++) cr_assert(*p >= 0x20 && *p < 0x7f, "control byte %#x in the warning", *p);
}

Test(options, warning_truncated_to_buffer)
{
    fresh();
    char err[24];
    memset(err, '#', sizeof err);
    cr_assert_not(nm_option_parse(&o, NM_OPT_STATS, "bogus", err, sizeof err));
    cr_assert_eq(strlen(err), sizeof err - 1, "NUL-terminated at the end of the buffer");
    cr_assert_eq(strncmp(err, "NUMAMALLOC_STATS='bogus'", sizeof err - 1), 0, "%s", err);
}

/* ---- nm_options_init over an explicit environment --------------------------------- */

/* run nm_options_init(envp) with fd 2 sent to a temporary file; returns what was written */
static char *init_capture(char **envp, bool is_secure)
{
    char path[] = "/tmp/nm-test-options-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    unlink(path);
    int saved = dup(2);
    cr_assert_geq(saved, 0);
    cr_assert_eq(dup2(fd, 2), 2);
    nm_options_init(envp, is_secure);
    dup2(saved, 2);
    close(saved);
    off_t len = lseek(fd, 0, SEEK_END);
    char *out = calloc(1, (size_t)len + 1);
    cr_assert_eq(pread(fd, out, (size_t)len, 0), len);
    close(fd);
    return out;
}

static unsigned count_lines(const char *s)
{
    unsigned n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

Test(options, init_from_envp)
{
    char *env[] = {
        "PATH=/usr/bin:/bin",
        "NUMAMALLOC_POLICY=bind:0",
        "NUMAMALLOC_STATS=json",
        "NUMAMALLOC_STATS_FILE=/tmp/x=%p",
        "NUMAMALLOC_LARGE_THRESHOLD=2M",
        "NUMAMALLOC_CHECK=yes",
        "NOT_NUMAMALLOC_STATS=text",
        "numamalloc_stats=text",
        NULL,
    };
    char *out = init_capture(env, false);
    cr_assert_str_eq(out, "", "no warnings for good values: got '%s'", out);
    cr_assert_eq(nm_opt.policy, NM_POL_BIND);
    cr_assert_eq(nm_opt.policy_nnodes, 1);
    cr_assert_eq(nm_opt.stats, NM_STATS_JSON);
    cr_assert_str_eq(nm_opt.stats_file, "/tmp/x=%p");
    cr_assert_eq(nm_opt.large_threshold, (size_t)2 << 20);
    cr_assert(nm_opt.check);
    cr_assert(nm_opt.from_env[NM_OPT_POLICY]);
    cr_assert(nm_opt.from_env[NM_OPT_STATS]);
    cr_assert_not(nm_opt.from_env[NM_OPT_DECAY_MS]);
    cr_assert_str_eq(nm_opt.raw[NM_OPT_CHECK], "yes");
    cr_assert_str_eq(nm_opt.raw[NM_OPT_DECAY_MS], "1000");
    free(out);
}

Test(options, init_warns_once_per_bad_or_unknown_variable)
{
    char *env[] = {
        "NUMAMALLOC_STATS=bogus",
        "NUMAMALLOC_FOO=1",
        "NUMAMALLOC_POLICY=sideways",
        "NUMAMALLOC_=x",
        "NUMAMALLOC_NO_EQUALS_SIGN",
        "NUMAMALLOC_Stats=text",
        "NUMAMALLOC_DECAY_MS=5",
        NULL,
    };
    char *out = init_capture(env, false);
    cr_assert_str_eq(out,
        "numamalloc: NUMAMALLOC_STATS='bogus' ignored: accepts off, text or json; using 'off'\n"
        "numamalloc: NUMAMALLOC_FOO is not a numamalloc variable: ignored (see numamalloc(7) for the list)\n"
        "numamalloc: NUMAMALLOC_POLICY='sideways' ignored: accepts local, interleave[:N,M...], bind:N[,M...], preferred:N; using 'local'\n"
        "numamalloc: NUMAMALLOC_ is not a numamalloc variable: ignored (see numamalloc(7) for the list)\n"
        "numamalloc: NUMAMALLOC_Stats is not a numamalloc variable: ignored (see numamalloc(7) for the list)\n");
    cr_assert_eq(nm_opt.stats, NM_STATS_OFF);
    cr_assert_eq(nm_opt.policy, NM_POL_LOCAL);
    cr_assert_eq(nm_opt.decay_ms, 5, "good values next to bad ones still apply");
    cr_assert_not(nm_opt.from_env[NM_OPT_STATS]);
    free(out);
}

Test(options, retired_variable_named)
{
    char *env[] = { "NUMAMALLOC_ARENA_RESERVE=64M", NULL };
    char *out = init_capture(env, false);
    cr_assert_str_eq(out, "numamalloc: NUMAMALLOC_ARENA_RESERVE is no longer used (medium blocks come from "
                          "numamalloc's own segments, not a reserved arena): ignored\n");
    free(out);
}

/* every line written: "numamalloc: NUMAMALLOC_...", printable, under 512 bytes */
static void check_warning_lines(const char *out, unsigned want_lines)
{
    cr_assert_eq(count_lines(out), want_lines, "expected %u lines (one per variable), got:\n%s", want_lines, out);
    for (const char *line = out; *line; ) {
        const char *nl = strchr(line, '\n');
        cr_assert_not_null(nl);
        cr_assert_eq(strncmp(line, "numamalloc: NUMAMALLOC_", 23), 0, "line: %.*s", (int)(nl - line), line);
        cr_assert_lt(nl - line, 512, "a warning line of %ld bytes", (long)(nl - line));
        for (const char *p = line; p < nl; p++)
            cr_assert(*p >= 0x20 && *p < 0x7f, "control byte %#x in: %.*s", (unsigned char)*p, (int)(nl - line), line);
        line = nl + 1;
    }
}

Test(options, init_hostile_values_stay_one_line_each)
{
    static char longval[200000];
    strcpy(longval, "NUMAMALLOC_STATS=");
    memset(longval + strlen(longval), 'j', sizeof longval - strlen(longval) - 1);
    char *env[] = {
        "NUMAMALLOC_POLICY=\nnumamalloc: fake line\n",
        longval,
        "NUMAMALLOC_HUGEPAGES=\x1b[31mred\x1b[0m",
        NULL,
    };
    char *out = init_capture(env, false);
    check_warning_lines(out, 3);
    cr_assert_eq(nm_opt.stats, NM_STATS_OFF);
    cr_assert_eq(nm_opt.policy, NM_POL_LOCAL);
    free(out);
}

/* Variable names are as hostile as values (anything but '=' and NUL): an unknown
 * name is echoed in its warning, and must not be able to start a line of its own or
 * send terminal escapes either: "NUMAMALLOC_X\nnumamalloc: forged=1" must not print
 * a forged second line. */
Test(options, init_hostile_unknown_names_stay_one_line_each)
{
    static char longname[5000];
    strcpy(longname, "NUMAMALLOC_");
    memset(longname + strlen(longname), 'N', sizeof longname - strlen(longname) - 3);
    strcpy(longname + sizeof longname - 3, "=1");
    char *env[] = {
        longname,
        "NUMAMALLOC_BAD\nnumamalloc: fake line=1",
        "NUMAMALLOC_\x1b[31mRED=1",
        NULL,
    };
    char *out = init_capture(env, false);
    check_warning_lines(out, 3);
    free(out);
}

Test(options, init_secure_ignores_paths)
{
    char *env[] = { "NUMAMALLOC_STATS_FILE=/etc/shadow", "NUMAMALLOC_STATS=text", NULL };
    char *out = init_capture(env, true);
    cr_assert_str_eq(out, "numamalloc: NUMAMALLOC_STATS_FILE ignored in a set-uid/set-gid (AT_SECURE) process\n");
    cr_assert_str_eq(nm_opt.stats_file, "");
    cr_assert_eq(nm_opt.stats, NM_STATS_TEXT, "non-path options still apply");
    free(out);
    /* the same without AT_SECURE is accepted */
    out = init_capture(env, false);
    cr_assert_str_eq(out, "");
    cr_assert_str_eq(nm_opt.stats_file, "/etc/shadow");
    free(out);
}

Test(options, init_empty_environment_gives_defaults)
{
    char *env[] = { NULL };
    nm_options_t d;
    nm_options_defaults(&d);
    char *out = init_capture(env, false);
    cr_assert_str_eq(out, "");
    cr_assert(same_options(&d, &nm_opt));
    free(out);
}
