/* tests/api/test_numamalloc_api.c — the public numamalloc_* API (include/numamalloc.h)
 * as a preloaded program reaches it: through dlsym(RTLD_DEFAULT, ...).
 *
 * Owns: numamalloc_version, numamalloc_block_info (kind per size range, class and
 * usable size, foreign pointers -> -1/EINVAL), numamalloc_node_of (0 on this one-node
 * machine, -1 for pointers that are not ours), numamalloc_alloc_onnode (node 0 works
 * and is freeable, a node without memory is EINVAL), numamalloc_alloc_interleaved,
 * numamalloc_option_get (with and without the NUMAMALLOC_ prefix, unknown names),
 * numamalloc_stats_print / numamalloc_stats_json (size queries through a 64-byte
 * buffer, NUL termination, a JSON dump python3 accepts with schema_version 2),
 * and on this one-node machine: numamalloc_alloc_onnode_flags (both forms, bad
 * flags), numamalloc_resident_node (touched, untouched, foreign),
 * numamalloc_thread_policy_set/get (round trip, reset, EINVAL leaves the policy,
 * ERANGE, per thread), the topology calls (nodes_with_memory, node_of_cpu,
 * current_node, node_distance). Placement itself is checked in the NUMA VMs
 * (tests/numa/truth.c). */
#include <malloc.h>
#include <pthread.h>

#include "api/api_util.h"

static int global_int;

Test(numamalloc_api, version)
{
    const char *v = api()->version();
    cr_assert_not_null(v);
    cr_assert_gt(strlen(v), 0);
    unsigned a, b, c;
    cr_assert_eq(sscanf(v, "%u.%u.%u", &a, &b, &c), 3, "version '%s' is not N.N.N", v);
    cr_assert_eq(api()->version(), v, "a constant string");
}

static void info_of(const void *p, struct numamalloc_block_info *bi)
{
    memset(bi, 0x5a, sizeof *bi);
    int rc = api()->block_info(p, bi);
    cr_assert_eq(rc, 0, "block_info(%p) = %d, errno %d", p, rc, errno);
}

Test(numamalloc_api, block_info_small)
{
    void *p = malloc(100);
    struct numamalloc_block_info bi;
    info_of(p, &bi);
    cr_assert_eq(bi.kind, NUMAMALLOC_KIND_SLAB);
    cr_assert_eq(bi.size_class, 6, "100 bytes are class 6 (112 bytes)");
    cr_assert_eq(bi.usable_size, 112);
    cr_assert_eq(bi.usable_size, malloc_usable_size(p));
    cr_assert_eq(bi.node, 0);
    cr_assert_eq(bi.pages, NUMAMALLOC_PAGES_4K);
    free(p);
    /* every class: index and usable size agree with malloc_usable_size */
    int last = -1;
    for (size_t n = 1; n <= 32768; n += (n < 256 ? 1 : 97)) {
        void *q = malloc(n);
        info_of(q, &bi);
        cr_assert_eq(bi.kind, NUMAMALLOC_KIND_SLAB, "size %zu", n);
        cr_assert(bi.size_class >= 0 && bi.size_class < 40, "size %zu: class %d", n, bi.size_class);
        cr_assert_geq(bi.size_class, last, "classes grow with the size");
        last = bi.size_class;
        cr_assert_eq(bi.usable_size, malloc_usable_size(q), "size %zu", n);
        free(q);
    }
    cr_assert_eq(last, 39);
}

Test(numamalloc_api, block_info_medium_and_large)
{
    void *m = malloc(100000);
    struct numamalloc_block_info bi;
    info_of(m, &bi);
    /* medium: a slab block of a class above the 40 small ones (100000 -> 112 KiB) */
    cr_assert_eq(bi.kind, NUMAMALLOC_KIND_SLAB, "100000 bytes: kind %d", bi.kind);
    cr_assert_eq(bi.size_class, 46, "100000 bytes: class %d", bi.size_class);
    cr_assert_eq(bi.usable_size, 114688);
    cr_assert_eq(bi.usable_size, malloc_usable_size(m));
    cr_assert_eq(bi.node, 0);
    free(m);

    void *l = malloc(8 << 20);
    info_of(l, &bi);
    cr_assert(bi.kind == NUMAMALLOC_KIND_LARGE || bi.kind == NUMAMALLOC_KIND_HUGE, "8 MiB: kind %d", bi.kind);
    cr_assert_eq(bi.size_class, -1);
    cr_assert_geq(bi.usable_size, (size_t)8 << 20);
    cr_assert_eq(bi.usable_size, malloc_usable_size(l));
    cr_assert_eq(bi.node, 0);
    cr_assert(bi.pages >= NUMAMALLOC_PAGES_4K && bi.pages <= NUMAMALLOC_PAGES_HUGETLB_1G, "pages %d", bi.pages);
    if (bi.kind == NUMAMALLOC_KIND_HUGE) cr_assert_geq(bi.pages, NUMAMALLOC_PAGES_HUGETLB_2M);
    else cr_assert_leq(bi.pages, NUMAMALLOC_PAGES_THP);
    /* an interior pointer of a large block is not the start of a block */
    errno = 0;
    cr_assert_eq(api()->block_info((char *)l + 4096, &bi), -1);
    cr_assert_eq(errno, EINVAL);
    free(l);
    /* freed: no longer ours */
    errno = 0;
    cr_assert_eq(api()->block_info(l, &bi), -1);
    cr_assert_eq(errno, EINVAL);
    cr_assert_eq(bi.kind, NUMAMALLOC_KIND_UNKNOWN);
}

Test(numamalloc_api, block_info_foreign_pointers)
{
    int on_stack = 0;
    const void *foreign[] = { &on_stack, &global_int, (const void *)&info_of, NULL, (const void *)16,
                              (const void *)0xffff800000000000UL, (const void *)0x00ff000000000000UL };
    for (unsigned i = 0; i < ARRAY_LEN(foreign); i++) {
        struct numamalloc_block_info bi;
        memset(&bi, 0x5a, sizeof bi);
        errno = 0;
        int rc = api()->block_info(foreign[i], &bi);
        cr_assert_eq(rc, -1, "block_info(%p) = %d", foreign[i], rc);
        cr_assert_eq(errno, EINVAL, "block_info(%p): errno %d", foreign[i], errno);
        cr_assert_eq(bi.kind, NUMAMALLOC_KIND_UNKNOWN, "info cleared");
        cr_assert_eq(bi.node, -1);
        cr_assert_eq(bi.size_class, -1);
        cr_assert_eq(bi.usable_size, 0);
    }
}

Test(numamalloc_api, node_of)
{
    static const size_t sizes[] = { 1, 100, 32768, 40000, 100000, 1 << 20, 8 << 20 };
    for (unsigned i = 0; i < ARRAY_LEN(sizes); i++) {
        void *p = malloc(sizes[i]);
        cr_assert_eq(api()->node_of(p), 0, "size %zu: node %d on a one-node machine", sizes[i], api()->node_of(p));
        free(p);
    }
    int on_stack = 0;
    ESCAPE(&on_stack);
    cr_assert_eq(api()->node_of(&on_stack), -1);
    cr_assert_eq(api()->node_of(&global_int), -1);
    cr_assert_eq(api()->node_of(NULL), -1);
    cr_assert_eq(api()->node_of((void *)0xffff800000000000UL), -1);
}

Test(numamalloc_api, alloc_onnode)
{
    static const size_t sizes[] = { 1, 64, 4096, 32768, 40000, 100000, 1 << 20, 8 << 20 };
    for (unsigned i = 0; i < ARRAY_LEN(sizes); i++) {
        unsigned char *p = api()->alloc_onnode(sizes[i], 0);
        cr_assert_not_null(p, "alloc_onnode(%zu, 0): errno %d", sizes[i], errno);
        cr_assert_eq((uintptr_t)p % 16, 0);
        cr_assert_eq(api()->node_of(p), 0);
        cr_assert_geq(malloc_usable_size(p), sizes[i]);
        memset(p, 0x42, sizes[i]);
        free(p);
    }
    /* 4096 bytes, kept across other allocations, freed, and the memory reused */
    void *a = api()->alloc_onnode(4096, 0);
    void *b = malloc(4096);
    cr_assert(a && b && a != b);
    free(a);
    free(b);
    static const int bad[] = { 999, 1, 4095, 4096, 1 << 20, -1, -999 };
    for (unsigned i = 0; i < ARRAY_LEN(bad); i++) {
        errno = 0;
        void *p = api()->alloc_onnode(64, bad[i]);
        cr_assert_null(p, "alloc_onnode(64, %d) = %p", bad[i], p);
        cr_assert_eq(errno, EINVAL, "alloc_onnode(64, %d): errno %d", bad[i], errno);
    }
    errno = 0;
    cr_assert_null(api()->alloc_onnode(opaque_size(SIZE_MAX), 0));
    cr_assert_eq(errno, ENOMEM);
}

Test(numamalloc_api, alloc_interleaved)
{
    static const size_t sizes[] = { 1, 4096, 100000, 1 << 20, 16 << 20 };
    for (unsigned i = 0; i < ARRAY_LEN(sizes); i++) {
        unsigned char *p = api()->alloc_interleaved(sizes[i]);
        cr_assert_not_null(p, "alloc_interleaved(%zu)", sizes[i]);
        cr_assert_neq(kind_of(p), NUMAMALLOC_KIND_UNKNOWN);
        cr_assert_geq(malloc_usable_size(p), sizes[i]);
        memset(p, 0x24, sizes[i]);
        /* one node: "a plain allocation", so it is on node 0 */
        cr_assert_eq(api()->node_of(p), 0);
        free(p);
    }
    errno = 0;
    cr_assert_null(api()->alloc_interleaved(opaque_size(SIZE_MAX)));
    cr_assert_eq(errno, ENOMEM);
}

Test(numamalloc_api, option_get)
{
    const nm_api_t *a = api();
    cr_assert_str_eq(a->option_get("POLICY"), "local");
    cr_assert_str_eq(a->option_get("NUMAMALLOC_POLICY"), "local");
    cr_assert_str_eq(a->option_get("STATS"), "off");
    cr_assert_str_eq(a->option_get("HUGEPAGES"), "auto");
    cr_assert_str_eq(a->option_get("LARGE_THRESHOLD"), "1M");
    cr_assert_str_eq(a->option_get("DECAY_MS"), "1000");
    cr_assert_str_eq(a->option_get("STATS_FILE"), "");
    cr_assert_null(a->option_get("NO_SUCH_OPTION"));
    cr_assert_null(a->option_get("NUMAMALLOC_NO_SUCH_OPTION"));
    cr_assert_null(a->option_get("policy"), "names are upper case");
    cr_assert_null(a->option_get(""));
    cr_assert_null(a->option_get("NUMAMALLOC_"));
    cr_assert_null(a->option_get(NULL));
}

Test(numamalloc_api, option_get_reports_the_environment)
{
    /* a child started with settings reports them (and the defaults it did not set) */
    const char *env[] = { "NUMAMALLOC_POLICY=interleave", "NUMAMALLOC_DECAY_MS=250", NULL };
    const char *args[] = { "option_get", "POLICY", "DECAY_MS", "CHECK", "NUMAMALLOC_DECAY_MS", NULL };
    child_t c = run_helper("api_misuse", args, env);
    cr_assert(WIFEXITED(c.status) && WEXITSTATUS(c.status) == 0, "status %#x, stderr: %s", c.status, c.err);
    cr_assert_str_eq(c.out, "POLICY=interleave\nDECAY_MS=250\nCHECK=0\nNUMAMALLOC_DECAY_MS=250\n");
    cr_assert_str_eq(c.err, "");
    child_free(&c);
}

static void check_small_buffer(size_t (*fn)(char *, size_t), const char *what)
{
    char buf[64];
    memset(buf, '#', sizeof buf);
    size_t need = fn(buf, sizeof buf);
    cr_assert_gt(need, sizeof buf, "%s: needed %zu", what, need);
    cr_assert_eq(buf[sizeof buf - 1], '\0', "%s: NUL-terminated in the last byte", what);
    cr_assert_eq(strlen(buf), sizeof buf - 1, "%s: filled", what);
    /* a size query without a buffer */
    cr_assert_gt(fn(NULL, 0), sizeof buf, "%s(NULL, 0)", what);
    char one[1] = { 'x' };
    cr_assert_gt(fn(one, 1), sizeof buf, "%s into 1 byte", what);
    cr_assert_eq(one[0], '\0');
}

Test(numamalloc_api, stats_into_a_small_buffer)
{
    void *p = malloc(1000);
    check_small_buffer(api()->stats_print, "numamalloc_stats_print");
    check_small_buffer(api()->stats_json, "numamalloc_stats_json");
    free(p);
}

Test(numamalloc_api, stats_text_and_json_whole)
{
    void *keep[100];
    for (int i = 0; i < 100; i++) keep[i] = malloc(100 * (size_t)(i + 1));
    void *big = malloc(5 << 20);
    size_t need = api()->stats_print(NULL, 0);
    size_t cap = need + 16384;
    char *text = malloc(cap);
    size_t n = api()->stats_print(text, cap);
    cr_assert_lt(n, cap);
    cr_assert_eq(strlen(text), n);
    cr_assert_eq(strncmp(text, "=== numamalloc ", 15), 0, "%.80s", text);
    cr_assert_not_null(strstr(text, "=== end of numamalloc statistics ===\n"));
    free(text);

    need = api()->stats_json(NULL, 0);
    cap = need + 16384;
    char *json = malloc(cap);
    n = api()->stats_json(json, cap);
    cr_assert_lt(n, cap);
    cr_assert_eq(strlen(json), n);
    cr_assert_eq(strchr(json, '\n'), json + n - 1, "one line");
    char res[1024];
    cr_assert(json_py(json, n, "[d['schema_version'], d['allocator'], d['version'], "
                               "d['summary']['live'] >= 100, d['large']['allocs'] >= 1]", res, sizeof res), "%s\n%.300s", res, json);
    char want[256];
    snprintf(want, sizeof want, "[2,\"numamalloc\",\"%s\",true,true]", api()->version());
    cr_assert_str_eq(res, want);
    free(json);
    for (int i = 0; i < 100; i++) free(keep[i]);
    free(big);
}

/* the value of "key": in the current JSON dump (first occurrence) */
static uint64_t json_number(const char *key)
{
    size_t cap = api()->stats_json(NULL, 0) + 16384;
    char *json = malloc(cap);
    api()->stats_json(json, cap);
    char pat[96];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *at = strstr(json, pat);
    cr_assert_not_null(at, "no %s in the dump", key);
    uint64_t v = strtoull(at + strlen(pat), NULL, 10);
    free(json);
    return v;
}

/* A freed large block stays with the freeing thread for its next request of about
 * that size (src/large.c), and is not a block meanwhile: free, realloc,
 * malloc_usable_size and block_info refuse it; malloc_trim hands it on. */
Test(numamalloc_api, large_block_kept_by_freeing_thread)
{
    const size_t n = 3 << 20;
    char *p = malloc(n);
    cr_assert_not_null(p);
    memset(p, 1, n);
    free(p);
    cr_assert_eq(kind_of(p), NUMAMALLOC_KIND_UNKNOWN, "a freed large block is not a block");
    cr_assert_eq(api()->node_of(p), -1);
    cr_assert_geq(json_number("thread_cache_bytes"), n, "the thread kept it");
    uint64_t bad = json_number("invalid_pointers");
    free(hide(p));                                      /* a double free: refused, counted */
    cr_assert_eq(json_number("invalid_pointers"), bad + 1);
    cr_assert_eq(malloc_usable_size(hide(p)), 0);
    cr_assert_eq(json_number("invalid_pointers"), bad + 2);
    char *q = malloc(n - 4096);                          /* fits: the same mapping */
    cr_assert_eq(q, p, "the kept block serves the next request (got %p, kept %p)", (void *)q, (void *)p);
    cr_assert_eq(kind_of(q), NUMAMALLOC_KIND_LARGE);
    char *r = malloc(n);                                 /* the double free gave nothing twice */
    cr_assert_neq(r, q);
    memset(q, 2, n - 4096);
    memset(r, 3, n);
    cr_assert_eq(q[n - 4097], 2);
    cr_assert_eq(r[0], 3);
    char *z = calloc(1, n);                              /* a kept block comes back zeroed */
    free(r);
    char *z2 = calloc(1, n);
    for (size_t i = 0; i < n; i += 4096) cr_assert_eq(z2[i], 0, "calloc byte %zu", i);
    free(z);
    free(z2);
    free(q);
    malloc_trim(0);
    cr_assert_eq(json_number("thread_cache_bytes"), 0, "malloc_trim hands kept blocks on");
}

/* ---- NUMA controls on one node --------------------------------------------------------- */

Test(numamalloc_api, alloc_onnode_flags)
{
    static const size_t sizes[] = { 16, 4000, 100000, 4 << 20 };
    for (unsigned i = 0; i < ARRAY_LEN(sizes); i++) {
        for (int spill = 0; spill < 2; spill++) {
            unsigned char *p = api()->alloc_onnode_flags(sizes[i], 0, spill ? NUMAMALLOC_ONNODE_SPILL : 0);
            cr_assert_not_null(p, "alloc_onnode_flags(%zu, 0, %d): errno %d", sizes[i], spill, errno);
            memset(p, 1, sizes[i]);
            cr_assert_eq(api()->node_of(p), 0);
            cr_assert_eq(api()->resident_node(p), 0, "size %zu: resident on %d", sizes[i], api()->resident_node(p));
            free(p);
        }
    }
    static const int bad_flags[] = { 2, 0x100, -1 };
    for (unsigned i = 0; i < ARRAY_LEN(bad_flags); i++) {
        errno = 0;
        cr_assert_null(api()->alloc_onnode_flags(64, 0, bad_flags[i]));
        cr_assert_eq(errno, EINVAL, "flags %#x: errno %d", bad_flags[i], errno);
    }
    errno = 0;
    cr_assert_null(api()->alloc_onnode_flags(64, 7, NUMAMALLOC_ONNODE_SPILL));
    cr_assert_eq(errno, EINVAL);
}

Test(numamalloc_api, resident_node)
{
    char *p = malloc(100);
    memset(p, 1, 100);
    cr_assert_eq(api()->resident_node(p), 0);
    /* a large block nobody touched: no page yet */
    char *l = malloc(8 << 20);
    errno = 0;
    cr_assert_eq(api()->resident_node(l), -1);
    cr_assert_eq(errno, ENOENT, "untouched: errno %d", errno);
    l[0] = 1;
    cr_assert_eq(api()->resident_node(l), 0);
    int on_stack = 1;
    errno = 0;
    cr_assert_eq(api()->resident_node(&on_stack), -1);
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_eq(api()->resident_node(NULL), -1);
    cr_assert_eq(errno, EINVAL);
    free(p);
    free(l);
}

Test(numamalloc_api, thread_policy_round_trip)
{
    char buf[64];
    const char *proc = api()->option_get("POLICY");
    cr_assert_eq(api()->thread_policy_get(buf, sizeof buf), 0, "a new thread follows the process policy");
    cr_assert_str_eq(buf, proc);
    static const char *const good[] = { "local", "interleave", "interleave:0", "bind:0", "preferred:0" };
    for (unsigned i = 0; i < ARRAY_LEN(good); i++) {
        cr_assert_eq(api()->thread_policy_set(good[i]), 0, "%s: errno %d", good[i], errno);
        cr_assert_eq(api()->thread_policy_get(buf, sizeof buf), 1);
        cr_assert_str_eq(buf, good[i]);
        /* small, medium and large blocks are served under it (one node: all on node 0) */
        static const size_t sizes[] = { 24, 5000, 200000, 3 << 20 };
        for (unsigned k = 0; k < ARRAY_LEN(sizes); k++) {
            char *p = malloc(sizes[k]);
            cr_assert_not_null(p);
            memset(p, 2, sizes[k]);
            cr_assert_eq(api()->node_of(p), 0, "%s, %zu bytes", good[i], sizes[k]);
            free(p);
        }
    }
    /* bad values: -1 EINVAL, the policy stays */
    static const char *const bad[] = { "sideways", "bind:", "bind:7", "preferred:0,0", "preferred:0,1", "interleave:",
                                       "bind:0,0", "LOCAL", " local" };
    for (unsigned i = 0; i < ARRAY_LEN(bad); i++) {
        errno = 0;
        cr_assert_eq(api()->thread_policy_set(bad[i]), -1, "'%s' accepted", bad[i]);
        cr_assert_eq(errno, EINVAL, "'%s': errno %d", bad[i], errno);
        cr_assert_eq(api()->thread_policy_get(buf, sizeof buf), 1);
        cr_assert_str_eq(buf, "preferred:0", "'%s' changed the policy", bad[i]);
    }
    /* too small a buffer; NULL */
    char tiny[4];
    errno = 0;
    cr_assert_eq(api()->thread_policy_get(tiny, sizeof tiny), -1);
    cr_assert_eq(errno, ERANGE);
    cr_assert_str_eq(tiny, "");
    errno = 0;
    cr_assert_eq(api()->thread_policy_get(NULL, 8), -1);
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_eq(api()->thread_policy_get(buf, 0), -1);
    cr_assert_eq(errno, EINVAL);
    /* back to the process policy: NULL and "" */
    cr_assert_eq(api()->thread_policy_set(NULL), 0);
    cr_assert_eq(api()->thread_policy_get(buf, sizeof buf), 0);
    cr_assert_str_eq(buf, proc);
    cr_assert_eq(api()->thread_policy_set("bind:0"), 0);
    cr_assert_eq(api()->thread_policy_set(""), 0);
    cr_assert_eq(api()->thread_policy_get(buf, sizeof buf), 0);
}

static void *other_thread_policy(void *arg)
{
    char *buf = arg;
    api()->thread_policy_get(buf, 64);
    return NULL;
}

Test(numamalloc_api, thread_policy_is_per_thread)
{
    cr_assert_eq(api()->thread_policy_set("interleave"), 0);
    char theirs[64] = "", mine[64];
    pthread_t t;
    cr_assert_eq(pthread_create(&t, NULL, other_thread_policy, theirs), 0);
    pthread_join(t, NULL);
    cr_assert_str_eq(theirs, api()->option_get("POLICY"), "another thread keeps the process policy");
    cr_assert_eq(api()->thread_policy_get(mine, sizeof mine), 1);
    cr_assert_str_eq(mine, "interleave");
}

Test(numamalloc_api, topology)
{
    int nodes[8] = { -1, -1 };
    cr_assert_eq(api()->nodes_with_memory(NULL, 0), 1);
    cr_assert_eq(api()->nodes_with_memory(nodes, 8), 1);
    cr_assert_eq(nodes[0], 0);
    cr_assert_eq(nodes[1], -1, "nothing written past the count");
    errno = 0;
    cr_assert_eq(api()->nodes_with_memory(nodes, -1), -1);
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_eq(api()->nodes_with_memory(NULL, 4), -1);
    cr_assert_eq(errno, EINVAL);
    long ncpu = sysconf(_SC_NPROCESSORS_CONF);
    for (int c = 0; c < ncpu; c++) cr_assert_eq(api()->node_of_cpu(c), 0, "cpu %d", c);
    static const int bad_cpu[] = { -1, 1 << 20 };
    for (unsigned i = 0; i < ARRAY_LEN(bad_cpu); i++) {
        errno = 0;
        cr_assert_eq(api()->node_of_cpu(bad_cpu[i]), -1);
        cr_assert_eq(errno, EINVAL);
    }
    cr_assert_eq(api()->current_node(), 0);
    cr_assert_eq(api()->node_distance(0, 0), 10);
    errno = 0;
    cr_assert_eq(api()->node_distance(0, 1), -1);
    cr_assert_eq(errno, EINVAL);
    errno = 0;
    cr_assert_eq(api()->node_distance(-1, 0), -1);
    cr_assert_eq(errno, EINVAL);
}
