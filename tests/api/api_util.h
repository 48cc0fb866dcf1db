/* tests/api/api_util.h — shared by the API tests, which run under
 * LD_PRELOAD=libnumamalloc.so (tests/core.mk): the numamalloc_* API found with dlsym,
 * an optimisation barrier so the compiler keeps every allocation we test, resident
 * set size, and running a helper program with an explicit environment while
 * capturing its output and how it ended. Self-contained (libc + python3 for JSON). */
#ifndef NM_TEST_API_UTIL_H
#define NM_TEST_API_UTIL_H

#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "numamalloc.h"
#include "unit/json_py.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* the pointer escapes: the compiler must assume it is read and written */
#define ESCAPE(p) __asm__ volatile("" : : "g"(p) : "memory")

/* the same pointer, as far as the compiler can tell a different one: for calls that
 * must fail and leave the block alone (realloc to an impossible size), which GCC's
 * -Wuse-after-free would otherwise reject */
static inline void *hide(void *p)
{
    __asm__ volatile("" : "+r"(p));
    return p;
}

/* a size the compiler cannot see (for requests it would warn about or fold) */
static inline size_t opaque_size(size_t n)
{
    volatile size_t v = n;
    return v;
}

static inline void *nm_api_sym(const char *name)
{
    void *f = dlsym(RTLD_DEFAULT, name);
    cr_assert_not_null(f, "dlsym(%s): %s (is the test running under LD_PRELOAD=libnumamalloc.so?)", name, dlerror());
    return f;
}

/* the numamalloc_* API, resolved once per process */
typedef struct nm_api {
    const char *(*version)(void);
    void *(*alloc_onnode)(size_t, int);
    void *(*alloc_interleaved)(size_t);
    int (*node_of)(const void *);
    int (*block_info)(const void *, struct numamalloc_block_info *);
    size_t (*stats_print)(char *, size_t);
    size_t (*stats_json)(char *, size_t);
    const char *(*option_get)(const char *);
    void *(*alloc_onnode_flags)(size_t, int, int);
    int (*resident_node)(const void *);
    int (*thread_policy_set)(const char *);
    int (*thread_policy_get)(char *, size_t);
    int (*nodes_with_memory)(int *, int);
    int (*node_of_cpu)(int);
    int (*current_node)(void);
    int (*node_distance)(int, int);
} nm_api_t;

static inline const nm_api_t *api(void)
{
    static nm_api_t a;
    if (a.version == NULL) {
        *(void **)&a.alloc_onnode = nm_api_sym("numamalloc_alloc_onnode");
        *(void **)&a.alloc_interleaved = nm_api_sym("numamalloc_alloc_interleaved");
        *(void **)&a.node_of = nm_api_sym("numamalloc_node_of");
        *(void **)&a.block_info = nm_api_sym("numamalloc_block_info");
        *(void **)&a.stats_print = nm_api_sym("numamalloc_stats_print");
        *(void **)&a.stats_json = nm_api_sym("numamalloc_stats_json");
        *(void **)&a.option_get = nm_api_sym("numamalloc_option_get");
        *(void **)&a.alloc_onnode_flags = nm_api_sym("numamalloc_alloc_onnode_flags");
        *(void **)&a.resident_node = nm_api_sym("numamalloc_resident_node");
        *(void **)&a.thread_policy_set = nm_api_sym("numamalloc_thread_policy_set");
        *(void **)&a.thread_policy_get = nm_api_sym("numamalloc_thread_policy_get");
        *(void **)&a.nodes_with_memory = nm_api_sym("numamalloc_nodes_with_memory");
        *(void **)&a.node_of_cpu = nm_api_sym("numamalloc_node_of_cpu");
        *(void **)&a.current_node = nm_api_sym("numamalloc_current_node");
        *(void **)&a.node_distance = nm_api_sym("numamalloc_node_distance");
        *(void **)&a.version = nm_api_sym("numamalloc_version");
    }
    return &a;
}

/* kind of the block at p (NUMAMALLOC_KIND_UNKNOWN = not ours) */
static inline int kind_of(const void *p)
{
    struct numamalloc_block_info bi;
    return api()->block_info(p, &bi) == 0 ? bi.kind : NUMAMALLOC_KIND_UNKNOWN;
}

/* a medium block: in a slab, in one of the classes above 32 KiB (size_class >= 40) */
static inline bool is_medium(const void *p)
{
    struct numamalloc_block_info bi;
    return api()->block_info(p, &bi) == 0 && bi.kind == NUMAMALLOC_KIND_SLAB && bi.size_class >= 40 &&
           bi.usable_size > 32768;
}

/* resident set size from /proc/self/statm, bytes */
static inline uint64_t rss_bytes(void)
{
    char buf[128] = { 0 };
    int fd = open("/proc/self/statm", O_RDONLY);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    unsigned long size, rss;
    if (n <= 0 || sscanf(buf, "%lu %lu", &size, &rss) != 2) return 0;
    return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* whole file into a NUL-terminated malloc'ed buffer (NULL if unreadable) */
static inline char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (n + 1 >= cap) b = realloc(b, cap *= 2);
        ssize_t r = read(fd, b + n, cap - n - 1);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        n += (size_t)r;
    }
    close(fd);
    b[n] = '\0';
    if (len) *len = n;
    return b;
}

/* ---- helper programs ------------------------------------------------------------------ */

/* the preload library of this process (first word of LD_PRELOAD) */
static inline const char *preload_lib(void)
{
    static char lib[1024];
    const char *e = getenv("LD_PRELOAD");
    if (e == NULL || *e == '\0') e = getenv("NM_LIB_ABS");
    cr_assert(e && *e, "neither LD_PRELOAD nor NM_LIB_ABS is set");
    size_t i = 0;
    while (e[i] && e[i] != ' ' && e[i] != ':' && i + 1 < sizeof lib) { lib[i] = e[i]; i++; }
    lib[i] = '\0';
    return lib;
}

/* $(TB)/helpers: NM_TEST_HELPERS (set by tests/core.mk), else beside this binary */
static inline const char *helper_path(const char *name)
{
    static char path[1024];
    const char *dir = getenv("NM_TEST_HELPERS");
    if (dir && *dir) {
        snprintf(path, sizeof path, "%s/%s", dir, name);
    } else {
        char self[900];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        cr_assert_gt(n, 0);
        self[n] = '\0';
        *strrchr(self, '/') = '\0';                    /* $(TB)/api */
        snprintf(path, sizeof path, "%s/../helpers/%s", self, name);
    }
    cr_assert_eq(access(path, X_OK), 0, "helper %s not built", path);
    return path;
}

typedef struct child {
    int status;          /* from waitpid */
    bool timed_out;
    char *out, *err;     /* captured stdout, stderr (NUL-terminated) */
} child_t;

/* Run helper `name` with args (NULL-terminated) and exactly the environment
 * PATH, LC_ALL=C, LD_PRELOAD=<our library> plus env (NULL-terminated). Output is
 * captured through files (no pipe can fill up); a hang is killed after 60 s. */
static inline child_t run_helper(const char *name, const char *const *args, const char *const *env)
{
    char out_path[] = "/tmp/nm-api-out-XXXXXX", err_path[] = "/tmp/nm-api-err-XXXXXX";
    int ofd = mkstemp(out_path), efd = mkstemp(err_path);
    cr_assert(ofd >= 0 && efd >= 0);
    const char *path = helper_path(name);
    char preload[1100];
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", preload_lib());
    const char *envp[64] = { "PATH=/usr/bin:/bin", "LC_ALL=C", preload };
    int ne = 3;
    for (int i = 0; env && env[i] && ne < 63; i++) envp[ne++] = env[i];
    envp[ne] = NULL;
    const char *argv[32] = { path };
    int na = 1;
    for (int i = 0; args && args[i] && na < 31; i++) argv[na++] = args[i];
    argv[na] = NULL;
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        dup2(ofd, 1);
        dup2(efd, 2);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0) dup2(devnull, 0);
        execve(path, (char *const *)argv, (char *const *)envp);
        _exit(127);
    }
    child_t c = { 0 };
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        pid_t w = waitpid(pid, &c.status, WNOHANG);
        if (w == pid) break;
        struct timespec t1;
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (t1.tv_sec - t0.tv_sec > 60) {
            kill(pid, SIGKILL);
            waitpid(pid, &c.status, 0);
            c.timed_out = true;
            break;
        }
        usleep(2000);
    }
    close(ofd);
    close(efd);
    c.out = slurp(out_path, NULL);
    c.err = slurp(err_path, NULL);
    unlink(out_path);
    unlink(err_path);
    return c;
}

static inline void child_free(child_t *c)
{
    free(c->out);
    free(c->err);
}

static inline unsigned count_lines(const char *s)
{
    unsigned n = 0;
    for (; *s; s++) n += *s == '\n';
    return n;
}

#endif
