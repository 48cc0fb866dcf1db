/* tests/unit/test_stats.c — allocation-free output and the statistics dump:
 * nm_buf_t (truncation that remembers the size needed, streaming to a descriptor),
 * nm_snprintf (compared with the C library's snprintf format by format), nm_buf_size
 * and nm_buf_pct, the emitter (include/numamalloc/out.h) in JSON mode (judged by
 * python3's json module) and text mode (aligned tables), and nm_stats_print after a
 * boot: small buffers report the length needed, the JSON dump parses with
 * schema_version 2, per-thread counters merged at thread exit keep their totals, and
 * fast-path frees (derived from how far a bin's cursor moved) stay exact across
 * magazine exchanges, slow-path pushes and pops, and another thread's frees. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "numamalloc/internal.h"
#include "numamalloc/out.h"
#include "unit/json_py.h"

/* ---- nm_buf_t -------------------------------------------------------------------------- */

Test(stats, buf_truncates_and_reports_needed_size)
{
    char p[8];
    memset(p, '#', sizeof p);
    nm_buf_t b;
    nm_buf_init(&b, p, sizeof p, -1);
    nm_buf_puts(&b, "hello ");
    nm_buf_puts(&b, "world, and more");
    cr_assert_eq(b.len, sizeof p, "stored up to capacity");
    cr_assert_eq(b.need, 21);
    cr_assert_eq(nm_buf_finish(&b), 21, "finish returns what the whole text needs");
    cr_assert_str_eq(p, "hello w", "NUL-terminated inside the buffer");

    /* exactly full: the last byte becomes the NUL */
    nm_buf_init(&b, p, 6, -1);
    nm_buf_puts(&b, "abcdef");
    cr_assert_eq(nm_buf_finish(&b), 6);
    cr_assert_str_eq(p, "abcde");

    /* fits: nothing lost */
    nm_buf_init(&b, p, sizeof p, -1);
    nm_buf_put(&b, "abc", 3);
    cr_assert_eq(nm_buf_finish(&b), 3);
    cr_assert_str_eq(p, "abc");

    /* zero capacity: only counts */
    nm_buf_init(&b, NULL, 0, -1);
    nm_buf_printf(&b, "%d-%s", 12345, "xyz");
    cr_assert_eq(nm_buf_finish(&b), 9);
}

Test(stats, buf_streams_to_a_descriptor)
{
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    char small[5];
    nm_buf_t b;
    nm_buf_init(&b, small, sizeof small, fds[1]);
    for (int i = 0; i < 10; i++) nm_buf_printf(&b, "line %d\n", i);
    size_t need = nm_buf_finish(&b);
    close(fds[1]);
    char got[256] = { 0 };
    ssize_t n = read(fds[0], got, sizeof got - 1);
    close(fds[0]);
    cr_assert_eq((size_t)n, need);
    cr_assert_str_eq(got, "line 0\nline 1\nline 2\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\nline 9\n");
}

/* ---- nm_snprintf against snprintf ----------------------------------------------------- */

#define SAME(...) do {                                                                     \
        char mine[256], libc[256];                                                         \
        int a = nm_snprintf(mine, sizeof mine, __VA_ARGS__);                               \
        int b = snprintf(libc, sizeof libc, __VA_ARGS__);                                  \
        cr_assert_str_eq(mine, libc, "format %s", #__VA_ARGS__);                           \
        cr_assert_eq(a, b, "length for %s", #__VA_ARGS__);                                 \
    } while (0)

Test(stats, snprintf_matches_libc)
{
    const char *volatile null_str = NULL;   /* volatile: hide the NULL from -Wformat-overflow */
    SAME("plain text");
    SAME("%s|%s", "abc", "");
    SAME("[%8s][%-8s][%2s]", "abc", "abc", "abcdef");
    SAME("%d %d %d %d", 0, 42, -42, INT_MAX);
    SAME("%d", INT_MIN);
    SAME("%i", -7);
    SAME("%u %u", 0u, UINT_MAX);
    SAME("%x %x %x", 0u, 255u, 0xdeadbeefu);
    SAME("%lx", 0xffffffffffffffffUL);
    SAME("%lu %lu", 0UL, ULONG_MAX);
    SAME("%ld %ld", LONG_MIN, LONG_MAX);
    SAME("%lld %llu", -1LL, 18446744073709551615ULL);
    SAME("%zu %zu", (size_t)0, SIZE_MAX);
    SAME("%p", (void *)0x1234abcdUL);
    SAME("%p", (void *)0x7fffffffffffUL);
    SAME("[%5d][%-5d][%05d][%05d][%5u][%-6x]", 42, 42, 42, -42, 7u, 255u);
    SAME("[%08lu][%-12lu][%12lu]", 123UL, 123UL, 123UL);
    SAME("[%3d][%1d]", 12345, 12345);
    SAME("%c%c%c", 'a', 'b', 'c');
    SAME("100%% %s", "done");
    SAME("%s=%d; %s=%lu", "a", 1, "b", 2UL);
    /* NULL strings print as "(null)", like glibc */
    char mine[32];
    nm_snprintf(mine, sizeof mine, "[%s]", null_str);
    cr_assert_str_eq(mine, "[(null)]");
    /* %p of NULL: glibc says "(nil)", we say 0x0; both are unambiguous */
    nm_snprintf(mine, sizeof mine, "%p", (void *)0);
    cr_assert_str_eq(mine, "0x0");
}

Test(stats, snprintf_truncation_returns_full_length)
{
    char p[4];
    cr_assert_eq(nm_snprintf(p, sizeof p, "%d", 123456), 6);
    cr_assert_str_eq(p, "123");
    cr_assert_eq(nm_snprintf(p, sizeof p, "%s%s", "ab", "cd"), 4);
    cr_assert_str_eq(p, "abc");
    cr_assert_eq(nm_snprintf(NULL, 0, "%lu", 18446744073709551615UL), 20, "size query with no buffer");
    cr_assert_eq(nm_snprintf(p, 1, "xyz"), 3);
    cr_assert_str_eq(p, "");
}

/* ---- human sizes and percentages ----------------------------------------------------- */

static const char *fmt_size(uint64_t v)
{
    static char out[64];
    nm_buf_t b;
    nm_buf_init(&b, out, sizeof out, -1);
    nm_buf_size(&b, v);
    nm_buf_finish(&b);
    return out;
}

static const char *fmt_pct(uint64_t num, uint64_t den)
{
    static char out[64];
    nm_buf_t b;
    nm_buf_init(&b, out, sizeof out, -1);
    nm_buf_pct(&b, num, den);
    nm_buf_finish(&b);
    return out;
}

Test(stats, human_sizes)
{
    cr_assert_str_eq(fmt_size(0), "0 B");
    cr_assert_str_eq(fmt_size(1), "1 B");
    cr_assert_str_eq(fmt_size(1023), "1023 B");
    cr_assert_str_eq(fmt_size(1024), "1.0 KiB");
    cr_assert_str_eq(fmt_size(1536), "1.5 KiB");
    cr_assert_str_eq(fmt_size(10 * 1024 + 51), "10.0 KiB");
    cr_assert_str_eq(fmt_size(10 * 1024 + 52), "10.1 KiB", "rounded to nearest");
    cr_assert_str_eq(fmt_size((uint64_t)1 << 20), "1.0 MiB");
    cr_assert_str_eq(fmt_size((uint64_t)5 << 29), "2.5 GiB");
    cr_assert_str_eq(fmt_size((uint64_t)3 << 40), "3.0 TiB");
    cr_assert_str_eq(fmt_size((uint64_t)1 << 50), "1024.0 TiB", "TiB is the largest unit");
    cr_assert_str_eq(fmt_size(UINT64_MAX), "16777216.0 TiB", "no overflow at the top");
}

Test(stats, percentages)
{
    cr_assert_str_eq(fmt_pct(1, 2), "50.0%");
    cr_assert_str_eq(fmt_pct(1, 3), "33.3%");
    cr_assert_str_eq(fmt_pct(2, 3), "66.7%");
    cr_assert_str_eq(fmt_pct(0, 5), "0.0%");
    cr_assert_str_eq(fmt_pct(5, 5), "100.0%");
    cr_assert_str_eq(fmt_pct(3, 2), "150.0%");
    cr_assert_str_eq(fmt_pct(1, 1000), "0.1%");
    cr_assert_str_eq(fmt_pct(1, 100000), "0.0%");
    cr_assert_str_eq(fmt_pct(5, 0), "n/a", "den 0");
    cr_assert_str_eq(fmt_pct(0, 0), "n/a");
    cr_assert_str_eq(fmt_pct((uint64_t)1 << 50, (uint64_t)1 << 51), "50.0%", "a petabyte of a two");
}

/* ---- the emitter ----------------------------------------------------------------------- */

static const nm_col_t cols[] = {
    { "name", "name", -8 }, { "count", "count", 6 }, { "bytes", "bytes", 10 },
    { "ratio", "ratio", 7 }, { "delta", "delta", 6 }, { "note", "note", 5 },
};

/* one document using every emitter call, nested objects, tables (one empty) */
static size_t emit_doc(char *out, size_t cap, int mode)
{
    nm_buf_t b;
    nm_buf_init(&b, out, cap, -1);
    nm_emit_t em;
    em_begin(&em, &b, mode);
    em_u64(&em, "zero", "zero", 0);
    em_u64(&em, "max", "max", UINT64_MAX);
    em_i64(&em, "neg", "negative", -5);
    em_i64(&em, "min", "minimum", INT64_MIN);
    em_str(&em, "text", "text", "quote\" back\\ nl\n tab\t ctl\x01 \xc3\xa9t\xc3\xa9");
    em_note(&em, "a note only text readers see");
    em_obj_begin(&em, "outer", "outer:");
    em_bytes(&em, "small", "small", 100);
    em_bytes(&em, "big", "big", (uint64_t)3 << 20);
    em_bool(&em, "yes", "yes", true);
    em_bool(&em, "no", "no", false);
    em_obj_begin(&em, "inner", "inner:");
    em_pct(&em, "third", "a third", 1, 3);
    em_pct(&em, "none", "nothing", 7, 0);
    em_na(&em, "na", "not available", "why not");
    em_obj_end(&em);
    em_u64(&em, "after_inner", "after inner", 1);
    em_table_begin(&em, "rows", "rows:", cols, (int)NM_ARRAY_LEN(cols));
    for (int r = 0; r < 3; r++) {
        em_row_begin(&em);
        em_cell_str(&em, r == 0 ? "alpha" : r == 1 ? "b\"q" : "gamma-long");
        em_cell_u64(&em, (uint64_t)r * 1000);
        em_cell_bytes(&em, (uint64_t)r << 20);
        em_cell_pct(&em, (uint64_t)r, 4);
        em_cell_i64(&em, -r);
        if (r == 1) em_cell_na(&em); else em_cell_str(&em, "x");
        em_row_end(&em);
    }
    em_table_end(&em);
    em_table_begin(&em, "empty", "empty:", cols, (int)NM_ARRAY_LEN(cols));
    em_table_end(&em);
    em_obj_end(&em);
    em_obj_begin(&em, "last", "last:");
    em_obj_end(&em);
    em_end(&em);
    return nm_buf_finish(&b);
}

Test(stats, emitter_json_is_valid_and_exact)
{
    char doc[4096], res[4096];
    size_t n = emit_doc(doc, sizeof doc, NM_EM_JSON);
    cr_assert_lt(n, sizeof doc);
    cr_assert_eq(strlen(doc), n);
    cr_assert_eq(doc[n - 1], '\n', "a JSON dump ends its line");
    cr_assert_eq(strchr(doc, '\n'), doc + n - 1, "one line (JSON Lines)");
    cr_assert(json_py(doc, n, "d", res, sizeof res), "not valid JSON: %s\n%s", res, doc);
    cr_assert_str_eq(res,
        "{\"last\":{},\"max\":18446744073709551615,\"min\":-9223372036854775808,\"neg\":-5,"
        "\"outer\":{\"after_inner\":1,\"big\":3145728,\"empty\":[],\"inner\":{\"na\":null,\"none\":null,"
        "\"third\":0.3333},\"no\":false,\"rows\":["
        "{\"bytes\":0,\"count\":0,\"delta\":0,\"name\":\"alpha\",\"note\":\"x\",\"ratio\":0.0},"
        "{\"bytes\":1048576,\"count\":1000,\"delta\":-1,\"name\":\"b\\\"q\",\"note\":null,\"ratio\":0.25},"
        "{\"bytes\":2097152,\"count\":2000,\"delta\":-2,\"name\":\"gamma-long\",\"note\":\"x\",\"ratio\":0.5}],"
        "\"small\":100,\"yes\":true},"
        "\"text\":\"quote\\\" back\\\\ nl\\n tab\\t ctl\\u0001 \\u00e9t\\u00e9\",\"zero\":0}",
        "%s", doc);
}

Test(stats, emitter_text_tables_are_aligned)
{
    char doc[4096];
    size_t n = emit_doc(doc, sizeof doc, NM_EM_TEXT);
    cr_assert_lt(n, sizeof doc);
    /* the table: header and rows, equally long, every column ending at the same place */
    const char *t = strstr(doc, "  rows:\n");
    cr_assert_not_null(t, "%s", doc);
    t += strlen("  rows:\n");
    char lines[4][160];
    for (int i = 0; i < 4; i++) {
        const char *nl = strchr(t, '\n');
        cr_assert_not_null(nl);
        cr_assert_lt((size_t)(nl - t), sizeof lines[i]);
        memcpy(lines[i], t, (size_t)(nl - t));
        lines[i][nl - t] = '\0';
        t = nl + 1;
    }
    cr_assert_str_eq(lines[0], "    name      count      bytes   ratio  delta  note");
    cr_assert_str_eq(lines[1], "    alpha         0        0 B    0.0%      0     x");
    cr_assert_str_eq(lines[2], "    b\"q        1000    1.0 MiB   25.0%     -1   n/a");
    /* a value wider than its column pushes the rest of its row; it is never cut */
    cr_assert_str_eq(lines[3], "    gamma-long   2000    2.0 MiB   50.0%     -2     x");
    /* labels: padded to 30 columns, indented two spaces per level */
    static const char head[] = "zero                           0\nmax                            18446744073709551615\n";
    cr_assert_eq(strncmp(doc, head, strlen(head)), 0, "%s", doc);
    cr_assert_not_null(strstr(doc, "\nouter:\n  small                          100 B\n"), "%s", doc);
    cr_assert_not_null(strstr(doc, "\n  big                            3.0 MiB (3145728)\n"), "%s", doc);
    cr_assert_not_null(strstr(doc, "\n  inner:\n    a third                        33.3%\n"), "%s", doc);
    cr_assert_not_null(strstr(doc, "\n    nothing                        n/a\n"), "%s", doc);
    cr_assert_not_null(strstr(doc, "\n    not available                  n/a (why not)\n"), "%s", doc);
    cr_assert_not_null(strstr(doc, "\n  yes                            yes\n"), "%s", doc);
    cr_assert_not_null(strstr(doc, "\na note only text readers see\n"), "%s", doc);
    cr_assert_null(strchr(doc, '{'), "no JSON in text mode");
}

Test(stats, emitter_json_truncated_reports_needed_size)
{
    char full[4096], small[40];
    size_t n = emit_doc(full, sizeof full, NM_EM_JSON);
    size_t m = emit_doc(small, sizeof small, NM_EM_JSON);
    cr_assert_eq(m, n, "the same length needed whatever the buffer");
    cr_assert_eq(strlen(small), sizeof small - 1);
    cr_assert_eq(strncmp(small, full, sizeof small - 1), 0, "a truncated dump is a prefix of the whole");
}

/* ---- the dump of a booted allocator -------------------------------------------------- */

static void boot(void)
{
    cr_assert(nm_process_init());
    cr_assert(nm_thread_cache() != NULL && nm_tcp->state == NM_T_ACTIVE);
}

Test(stats, dump_into_small_buffer_reports_needed_length, .init = boot)
{
    for (int mode = NM_STATS_TEXT; mode <= NM_STATS_JSON; mode++) {
        char small[64];
        memset(small, '#', sizeof small);
        size_t need = nm_stats_print(small, sizeof small, mode);
        cr_assert_gt(need, sizeof small, "mode %d: %zu", mode, need);
        cr_assert_eq(strlen(small), sizeof small - 1, "NUL-terminated, full");
        size_t cap = need + 4096;             /* the next dump may be a little longer */
        char *big = malloc(cap);
        size_t again = nm_stats_print(big, cap, mode);
        cr_assert_lt(again, cap);
        cr_assert_eq(strlen(big), again, "returns exactly what it wrote");
        cr_assert_eq(strncmp(small, big, 40), 0, "same start: %.40s / %.40s", small, big);
        cr_assert_gt(nm_stats_print(big, 0, mode), sizeof small, "a size query with no room");
        free(big);
    }
}

static char *dump_json(size_t *len)
{
    size_t need = nm_stats_print(NULL, 0, NM_STATS_JSON);
    size_t cap = need + 8192;
    char *j = malloc(cap);
    *len = nm_stats_print(j, cap, NM_STATS_JSON);
    cr_assert_lt(*len, cap);
    return j;
}

Test(stats, json_dump_parses_with_schema_2, .init = boot)
{
    size_t n;
    char *j = dump_json(&n);
    char res[4096];
    /* the sections other tests and tools rely on (the full schema: tests/obs) */
    cr_assert(json_py(j, n, "[d['schema_version'], d['allocator'], "
                            "[k for k in ('config', 'summary', 'classes', 'nodes', 'residency', 'large', 'arena', 'misuse') "
                            "if k not in d]]", res, sizeof res), "%s", res);
    cr_assert_str_eq(res, "[2,\"numamalloc\",[]]");
    cr_assert(json_py(j, n, "[d['summary']['threads_live'], d['misuse']['foreign_frees'], type(d['classes']).__name__]",
                      res, sizeof res), "%s", res);
    cr_assert_str_eq(res, "[1,0,\"list\"]");
    free(j);
}

/* counts of one class, as the dump reports them: [allocs, frees, live] */
static void class_counts(unsigned cls, char *res, size_t cap)
{
    size_t n;
    char *j = dump_json(&n);
    char expr[160];
    snprintf(expr, sizeof expr, "[[r['allocs'], r['frees'], r['live']] for r in d['classes'] if r['class'] == %u]", cls);
    cr_assert(json_py(j, n, expr, res, cap), "%s", res);
    free(j);
}

Test(stats, counters_survive_the_merge_at_thread_exit, .init = boot)
{
    enum { N = 1000, K = 300 };
    static void *p[N];
    unsigned cls = nm_size_class(64);
    char res[256];
    class_counts(cls, res, sizeof res);
    cr_assert_str_eq(res, "[]", "class %u unused before the test", cls);
    for (int i = 0; i < N; i++) cr_assert_not_null(p[i] = nm_malloc(64));
    for (int i = 0; i < K; i++) nm_free(p[i]);
    /* live thread: fast-path counts still pending in its bins are included */
    class_counts(cls, res, sizeof res);
    cr_assert_str_eq(res, "[[1000,300,700]]");
    /* thread exit merges them into the globals: the totals do not change */
    nm_thread_exit(nm_tcp);
    cr_assert_eq(nm_tcp->state, NM_T_DEAD);
    class_counts(cls, res, sizeof res);
    cr_assert_str_eq(res, "[[1000,300,700]]");
    /* a dead thread still frees (straight to the slabs), and is counted */
    for (int i = K; i < N; i++) nm_free(p[i]);
    class_counts(cls, res, sizeof res);
    cr_assert_str_eq(res, "[[1000,1000,0]]");
}

/* frees whose block another thread allocated: that thread's bins count them */
static void *free_half(void *arg)
{
    void **q = arg;
    for (int i = 0; i < 200; i += 2) nm_free(q[i]);
    return NULL;
}

Test(stats, fast_frees_stay_exact_across_magazine_changes, .init = boot)
{
    enum { N = 3000 };
    static void *p[N];
    unsigned cls = nm_size_class(48);
    char res[256], want[64];
    /* more blocks than two magazines and the depot's floor: loads, swaps, depot
     * exchanges and slab fills and drains on the way up and down */
    for (int i = 0; i < N; i++) cr_assert_not_null(p[i] = nm_malloc(48));
    for (int i = 0; i < N; i += 3) nm_free(p[i]);                /* every third, then */
    for (int i = N - 1; i >= 0; i--) if (i % 3) nm_free(p[i]);   /* the rest, LIFO */
    class_counts(cls, res, sizeof res);
    snprintf(want, sizeof want, "[[%d,%d,0]]", N, N);
    cr_assert_str_eq(res, want);
    /* interleaved: every refill and flush in the middle of fast-path runs */
    for (int r = 0; r < 5; r++) {
        for (int i = 0; i < N; i++) cr_assert_not_null(p[i] = nm_malloc(48));
        for (int i = 0; i < N; i += 2) { nm_free(p[i]); cr_assert_not_null(p[i] = nm_malloc(48)); }
        for (int i = 0; i < N; i++) nm_free(p[i]);
    }
    class_counts(cls, res, sizeof res);
    snprintf(want, sizeof want, "[[%d,%d,0]]", 6 * N + 5 * (N / 2), 6 * N + 5 * (N / 2));
    cr_assert_str_eq(res, want);
    /* another thread frees 100 of ours: read while it is gone and before we reconcile */
    for (int i = 0; i < 200; i++) cr_assert_not_null(p[i] = nm_malloc(48));
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, free_half, p), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    class_counts(cls, res, sizeof res);
    snprintf(want, sizeof want, "[[%d,%d,100]]", 6 * N + 5 * (N / 2) + 200, 6 * N + 5 * (N / 2) + 100);
    cr_assert_str_eq(res, want);
    /* a medium class: its own fast paths (live-map bit) and refills, same counting */
    unsigned mcls = (unsigned)nm_class_of(100 << 10);
    cr_assert(nm_class_is_medium(mcls));
    for (int r = 0; r < 3; r++) {
        for (int i = 0; i < 40; i++) cr_assert_not_null(p[i] = nm_malloc(100 << 10));
        for (int i = 0; i < 40; i += 2) nm_free(p[i]);
        for (int i = 39; i > 0; i -= 2) nm_free(p[i]);
    }
    class_counts(mcls, res, sizeof res);
    cr_assert_str_eq(res, "[[120,120,0]]");
}

/* realloc by a thread that never made another allocator call: kept in place it
 * needs no thread cache and is counted all the same; moved, it starts the cache */
static uint64_t realloc_counts(const char *key)
{
    size_t n;
    char *j = dump_json(&n), res[64], expr[96];
    snprintf(expr, sizeof expr, "d['metadata']['%s']", key);
    cr_assert(json_py(j, n, expr, res, sizeof res), "%s", res);
    free(j);
    return strtoull(res, NULL, 10);
}

static void *realloc_only(void *arg)
{
    void **q = arg;
    q[1] = nm_realloc(q[0], 100);            /* the 112-byte class: still fits */
    q[2] = (void *)(uintptr_t)nm_tcp->state;
    q[3] = nm_realloc(q[1], 4000);           /* moves */
    q[4] = (void *)(uintptr_t)nm_tcp->state;
    return NULL;
}

Test(stats, reallocs_are_counted_by_threads_that_never_started, .init = boot)
{
    void *q[5] = { nm_malloc(110) };
    cr_assert_not_null(q[0]);
    memset(q[0], 0x3c, 110);
    uint64_t inplace = realloc_counts("realloc_inplace"), moved = realloc_counts("realloc_moved");
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, realloc_only, q), 0);
    cr_assert_eq(pthread_join(t, NULL), 0);
    cr_assert_eq(q[1], q[0], "kept in place");
    cr_assert_eq((uintptr_t)q[2], NM_T_NEW, "without starting the thread's cache");
    cr_assert_neq(q[3], q[1]);
    cr_assert_eq((uintptr_t)q[4], NM_T_ACTIVE, "a move allocates: the cache started");
    for (int i = 0; i < 100; i++) cr_assert_eq(((unsigned char *)q[3])[i], 0x3c, "byte %d kept", i);
    cr_assert_eq(realloc_counts("realloc_inplace"), inplace + 1);
    cr_assert_eq(realloc_counts("realloc_moved"), moved + 1);
    nm_free(q[3]);
}
