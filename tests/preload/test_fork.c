/* tests/preload/test_fork.c — fork(2) under the preload while other threads
 * allocate, and per-process exit dumps of forked children.
 * Criterion isolates tests in processes of its own; that does not exercise fork
 * with allocating threads, which is what tests/helpers/prog_fork.c does. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "helpers/spawn.h"

static void busy(const char *forks, const char *const env[], const char *want)
{
    nm_proc_t p;
    const char *args[] = { "busy", forks, NULL };
    cr_assert_eq(nm_run_helper("prog_fork", args, env, 240, &p), 0);
    NM_ASSERT_PROC_OK(&p);
    cr_assert_str_eq(p.out, want);
    cr_assert_str_empty(p.err, "children failed:\n%s", p.err);
    fprintf(stderr, "fork %s%s: %.1f s\n", forks, env ? " (NUMAMALLOC_CHECK=1)" : "", p.seconds);
    nm_proc_free(&p);
}

Test(fork, three_hundred_forks_while_three_threads_allocate, .timeout = 300)
{
    busy("300", NULL, "forks=300 ok=300 exec=30 worker_bad=0\n");
}

Test(fork, forks_with_check_mode, .timeout = 300)
{
    const char *env[] = { "NUMAMALLOC_CHECK=1", NULL };
    busy("60", env, "forks=60 ok=60 exec=6 worker_bad=0\n");
}

static char *slurp(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0) { close(fd); return NULL; }
    char *s = malloc((size_t)st.st_size + 1);
    ssize_t n = s ? read(fd, s, (size_t)st.st_size) : -1;
    close(fd);
    if (n != st.st_size) { free(s); return NULL; }
    s[n] = '\0';
    *len = (size_t)n;
    return s;
}

Test(fork, every_child_writes_its_own_json_dump)
{
    char dir[] = "/tmp/nm-fork-dump-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char file_env[256];
    snprintf(file_env, sizeof file_env, "NUMAMALLOC_STATS_FILE=%s/d.%%p.json", dir);
    const char *env[] = { "NUMAMALLOC_STATS=json", file_env, NULL };
    const char *args[] = { "dump", "4", NULL };
    nm_proc_t p;
    cr_assert_eq(nm_run_helper("prog_fork", args, env, 60, &p), 0);
    NM_ASSERT_PROC_OK(&p);
    cr_assert_str_empty(p.err, "unexpected stderr (the dumps belong in files): %s", p.err);

    /* the pids: four children, then the helper itself */
    int pids[8], n = 0;
    for (const char *l = p.out; l && *l && n < 8; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        int pid;
        if (sscanf(l, "child=%d", &pid) == 1 || sscanf(l, "parent=%d", &pid) == 1) pids[n++] = pid;
    }
    cr_assert_eq(n, 5, "expected 4 children and the parent in:\n%s", p.out);
    cr_assert_eq(pids[4], p.pid);

    for (int i = 0; i < n; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/d.%d.json", dir, pids[i]);
        size_t len = 0;
        char *s = slurp(path, &len);
        cr_assert_not_null(s, "no dump %s for pid %d", path, pids[i]);
        cr_assert_eq(nm_count_lines(s), 1, "%s holds %zu lines, not one dump", path, nm_count_lines(s));
        cr_assert(nm_json_valid(s, len), "%s is not valid JSON:\n%s", path, s);
        uint64_t pid = 0, schema = 0, live = 0;
        cr_assert(nm_json_u64(s, "pid", &pid) && pid == (uint64_t)pids[i], "%s: pid %lu", path, (unsigned long)pid);
        cr_assert(nm_json_u64(s, "schema_version", &schema) && schema == 2);
        /* a forked child has one thread, whatever its parent had; the parent joined its workers */
        cr_assert(nm_json_u64(s, "summary.threads_live", &live) && live == 1,
                  "%s: threads_live %lu at exit", path, (unsigned long)live);
        cr_assert(strstr(s, "\"reason\":\"exit\"") != NULL, "%s: not an exit dump", path);
        free(s);
        unlink(path);
    }
    /* nothing else: no process dumped twice or under another name */
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int extra = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        fprintf(stderr, "unexpected file %s/%s\n", dir, e->d_name);
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        unlink(path);
        extra++;
    }
    closedir(d);
    rmdir(dir);
    cr_assert_eq(extra, 0);
    nm_proc_free(&p);
}
