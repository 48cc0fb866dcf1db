/* tests/obs/test_obs.c — where the statistics dumps go and when they are written, and
 * what the environment parser says. Criterion; every case runs the helper
 * tests/obs/prog_obs in a fresh preloaded process with an explicit environment
 * (tests/helpers/spawn.c), never setenv in this process.
 *
 *   statsfile  NUMAMALLOC_STATS_FILE: %p, %t and %% expansion, mode 0600, appending
 *              to an existing file, symbolic links refused (O_NOFOLLOW), one dump
 *              per forked child; a FIFO nobody reads or a directory (one warning,
 *              the dump on stderr, no hang, also from a signal handler); a path
 *              whose expansion does not fit (one warning, no file)
 *   trigger    NUMAMALLOC_STATS_SIGNAL=USR1 while three threads allocate (a dump
 *              per signal, no deadlock), NUMAMALLOC_STATS_INTERVAL=1, also in a
 *              forked child; dumps with the profiler on while libraries are
 *              dlopen()ed and dlclose()d
 *   env        a bad value for every row of NM_OPTIONS prints exactly the documented
 *              line and changes nothing else; unknown names; NUMAMALLOC_VERBOSE=1;
 *              AT_SECURE (a set-uid copy of the helper) ignores NUMAMALLOC_STATS_FILE
 * The dump's contents are checked by tests/obs/test_dumps.py. Timeouts only guard
 * against hangs; no timing is asserted. */
#include <criterion/criterion.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <regex.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers/spawn.h"
#include "numamalloc/options.h"

#ifndef NM_OBS_VERSION
#define NM_OBS_VERSION "0.1.0"
#endif
/* the set-uid test needs a copy of the helper linked to the library (the loader
 * ignores LD_PRELOAD paths in secure-execution mode) */
#ifndef NM_OBS_LINKED_HELPER
#define NM_OBS_LINKED_HELPER "build/tests/obs/prog_obs_linked"
#endif

#define TIMEOUT 60u          /* hang guard for one helper run; they take milliseconds */

/* the helper exited 0 in time; otherwise say how it ended, with its output */
#define OBS_ASSERT_OK(p)                                                                   \
    do {                                                                                   \
        char st_[96];                                                                      \
        cr_assert(nm_proc_ok(p), "helper ended with %s\n--- stderr:\n%s--- stdout:\n%s",  \
                  nm_proc_status((p), st_, sizeof st_), (p)->err, (p)->out);               \
    } while (0)

/* ---- small utilities ------------------------------------------------------------------ */

static char *new_tmpdir(void)
{
    char *d = strdup("/tmp/nm-obs-XXXXXX");
    cr_assert(d && mkdtemp(d), "mkdtemp: %s", strerror(errno));
    return d;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st; (void)flag; (void)ftw;
    return remove(path);
}

static void rm_tree(char *dir)
{
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* the whole file, NUL-terminated (NULL if it cannot be read) */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    for (;;) {
        if (n + 4096 + 1 > cap) { cap *= 2; b = realloc(b, cap); }
        size_t r = fread(b + n, 1, 4096, f);
        n += r;
        if (r == 0) break;
    }
    fclose(f);
    b[n] = '\0';
    if (len) *len = n;
    return b;
}

static int helper_pid(const nm_proc_t *p)
{
    int pid = -1;
    cr_assert(sscanf(p->out, "pid %d", &pid) == 1, "no 'pid N' line from the helper:\n%s", p->out);
    return pid;
}

/* calls f(line, len, arg) for each line of s; returns the number of lines */
static size_t each_line(const char *s, void (*f)(const char *, size_t, void *), void *arg)
{
    size_t n = 0;
    while (*s) {
        const char *e = strchr(s, '\n');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (f) f(s, len, arg);
        n++;
        s += len + (e ? 1 : 0);
    }
    return n;
}

static void check_json_line(const char *l, size_t len, void *arg)
{
    const char *what = arg;
    cr_assert(nm_json_valid(l, len), "%s: a line is not one JSON object: %.*s", what, (int)(len > 300 ? 300 : len), l);
}

/* every line of the file is a valid JSON dump; returns the number of lines */
static size_t json_lines(const char *path)
{
    char *s = slurp(path, NULL);
    cr_assert(s, "cannot read %s: %s", path, strerror(errno));
    size_t n = each_line(s, check_json_line, (void *)path);
    free(s);
    return n;
}

static size_t count_substr(const char *s, const char *needle)
{
    size_t n = 0, k = strlen(needle);
    for (const char *p = strstr(s, needle); p; p = strstr(p + k, needle)) n++;
    return n;
}

/* stdout without its first line ("pid N at_secure M"): what must not change */
static const char *after_pid_line(const char *out)
{
    const char *nl = strchr(out, '\n');
    return nl ? nl + 1 : "";
}

static void run_obs(const char *const args[], const char *const env[], nm_proc_t *p)
{
    cr_assert(nm_run_helper("prog_obs", args, env, TIMEOUT, p) == 0, "cannot start prog_obs: %s", p->err);
}

/* ---- NUMAMALLOC_STATS_FILE -------------------------------------------------------------- */

Test(statsfile, pid_is_expanded)
{
    char *dir = new_tmpdir();
    char file[512];
    snprintf(file, sizeof file, "NUMAMALLOC_STATS_FILE=%s/dump.%%p.json", dir);
    const char *env[] = { "NUMAMALLOC_STATS=json", file, NULL };
    const char *args[] = { "alloc", "10", "100", NULL };
    nm_proc_t p;
    run_obs(args, env, &p);
    OBS_ASSERT_OK(&p);
    int pid = helper_pid(&p);
    char path[600];
    snprintf(path, sizeof path, "%s/dump.%d.json", dir, pid);
    cr_assert_eq(json_lines(path), 1, "%s should hold exactly one dump", path);
    char *s = slurp(path, NULL);
    uint64_t v = 0;
    cr_assert(nm_json_u64(s, "pid", &v) && v == (uint64_t)pid, "the dump's pid is %lu, the helper's %d", (unsigned long)v, pid);
    cr_assert(strstr(p.err, "numamalloc:") == NULL, "unexpected warning:\n%s", p.err);
    free(s);
    nm_proc_free(&p);
    rm_tree(dir);
}

Test(statsfile, time_and_percent_are_expanded)
{
    char *dir = new_tmpdir();
    char file[512];
    snprintf(file, sizeof file, "NUMAMALLOC_STATS_FILE=%s/t.%%t.100%%%%.json", dir);   /* t.%t.100%%.json */
    const char *env[] = { "NUMAMALLOC_STATS=json", file, NULL };
    const char *args[] = { "alloc", "1", "16", NULL };
    nm_proc_t p;
    /* %t is the dumping process's CLOCK_REALTIME; time() reads the coarse clock,
     * which may still show the previous second: fine below, not above */
    time_t t0 = time(NULL);
    run_obs(args, env, &p);
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    time_t t1 = now.tv_sec;
    OBS_ASSERT_OK(&p);
    DIR *d = opendir(dir);
    cr_assert(d);
    int files = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue;
        files++;
        long long t = -1;
        char tail[64] = "";
        cr_assert(sscanf(e->d_name, "t.%lld.%63s", &t, tail) == 2, "unexpected file name '%s'", e->d_name);
        cr_assert(t >= (long long)t0 && t <= (long long)t1, "%%t gave %lld, not a time between %lld and %lld",
                  t, (long long)t0, (long long)t1);
        cr_assert_str_eq(tail, "100%.json", "'%%%%' should become one '%%' (file '%s')", e->d_name);
    }
    closedir(d);
    cr_assert_eq(files, 1, "expected one dump file in %s, found %d", dir, files);
    nm_proc_free(&p);
    rm_tree(dir);
}

Test(statsfile, created_with_mode_0600)
{
    char *dir = new_tmpdir();
    umask(022);                                   /* what the helper inherits */
    char path[512], file[600];
    snprintf(path, sizeof path, "%s/fresh.json", dir);
    snprintf(file, sizeof file, "NUMAMALLOC_STATS_FILE=%s", path);
    const char *env[] = { "NUMAMALLOC_STATS=json", file, NULL };
    const char *args[] = { "alloc", "1", "16", NULL };
    nm_proc_t p;
    run_obs(args, env, &p);
    OBS_ASSERT_OK(&p);
    struct stat st;
    cr_assert(lstat(path, &st) == 0, "no dump file %s", path);
    cr_assert(S_ISREG(st.st_mode));
    cr_assert_eq(st.st_mode & 07777, 0600, "dump file mode is %o, not 600", (unsigned)(st.st_mode & 07777));
    nm_proc_free(&p);
    rm_tree(dir);
}

Test(statsfile, second_process_appends)
{
    char *dir = new_tmpdir();
    char path[512], file[600];
    snprintf(path, sizeof path, "%s/shared.json", dir);
    /* an existing file with content and its own mode: kept as it is */
    FILE *f = fopen(path, "w");
    cr_assert(f);
    fputs("{\"earlier\":true}\n", f);
    fclose(f);
    chmod(path, 0644);
    snprintf(file, sizeof file, "NUMAMALLOC_STATS_FILE=%s", path);
    const char *env[] = { "NUMAMALLOC_STATS=json", file, NULL };
    const char *args[] = { "alloc", "1", "16", NULL };
    int pids[2];
    for (int i = 0; i < 2; i++) {
        nm_proc_t p;
        run_obs(args, env, &p);
        OBS_ASSERT_OK(&p);
        pids[i] = helper_pid(&p);
        nm_proc_free(&p);
    }
    cr_assert_eq(json_lines(path), 3, "the file should hold the earlier line and two dumps");
    char *s = slurp(path, NULL);
    cr_assert(strncmp(s, "{\"earlier\":true}\n", 17) == 0, "the existing content was not kept:\n%.200s", s);
    char want[64];
    for (int i = 0; i < 2; i++) {
        snprintf(want, sizeof want, "\"pid\":%d,", pids[i]);
        cr_assert(strstr(s, want), "no dump of process %d in the file", pids[i]);
    }
    struct stat st;
    cr_assert(stat(path, &st) == 0 && (st.st_mode & 07777) == 0644, "an existing file's mode must not change");
    free(s);
    rm_tree(dir);
}

/* a symbolic link at the path (to a file, or dangling) is not followed: the dump
 * goes to stderr after one warning line, and the link's target is untouched */
static void check_symlink_refused(bool dangling)
{
    char *dir = new_tmpdir();
    char target[512], link[512], file[600];
    snprintf(target, sizeof target, "%s/target", dir);
    snprintf(link, sizeof link, "%s/dump.json", dir);
    if (!dangling) {
        FILE *f = fopen(target, "w");
        cr_assert(f);
        fclose(f);
    }
    cr_assert(symlink(target, link) == 0);
    snprintf(file, sizeof file, "NUMAMALLOC_STATS_FILE=%s", link);
    const char *env[] = { "NUMAMALLOC_STATS=json", file, NULL };
    const char *args[] = { "alloc", "1", "16", NULL };
    nm_proc_t p;
    run_obs(args, env, &p);
    OBS_ASSERT_OK(&p);
    char want[700];
    snprintf(want, sizeof want, "numamalloc: NUMAMALLOC_STATS_FILE: cannot open '%s' (errno %d): writing the dump to stderr\n",
             link, ELOOP);
    cr_assert(strncmp(p.err, want, strlen(want)) == 0, "stderr should start with\n%swas:\n%s", want, p.err);
    const char *dump = p.err + strlen(want);
    cr_assert(dump[0] == '{' && nm_json_valid(dump, strlen(dump)), "the dump should follow on stderr as JSON:\n%.300s", dump);
    struct stat st;
    if (dangling) {
        cr_assert(lstat(target, &st) != 0 && errno == ENOENT, "the dangling link's target was created");
    } else {
        cr_assert(stat(target, &st) == 0 && st.st_size == 0, "the link's target was written to");
    }
    cr_assert(lstat(link, &st) == 0 && S_ISLNK(st.st_mode), "the link was replaced");
    nm_proc_free(&p);
    rm_tree(dir);
}

Test(statsfile, symlink_to_file_refused) { check_symlink_refused(false); }
Test(statsfile, dangling_symlink_refused) { check_symlink_refused(true); }

Test(statsfile, forked_children_write_their_own)
{
    char *dir = new_tmpdir();
    char file[512];
    snprintf(file, sizeof file, "NUMAMALLOC_STATS_FILE=%s/f.%%p.json", dir);
    const char *env[] = { "NUMAMALLOC_STATS=json", file, NULL };
    const char *args[] = { "fork", "3", NULL };
    nm_proc_t p;
    run_obs(args, env, &p);
    OBS_ASSERT_OK(&p);
    int pids[4], n = 0;
    pids[n++] = helper_pid(&p);
    for (const char *l = strstr(p.out, "child "); l && n < 4; l = strstr(l + 1, "child "))
        cr_assert(sscanf(l, "child %d", &pids[n++]) == 1);
    cr_assert_eq(n, 4, "expected 3 children, stdout:\n%s", p.out);
    for (int i = 0; i < n; i++) {
        char path[600], want[64];
        snprintf(path, sizeof path, "%s/f.%d.json", dir, pids[i]);
        cr_assert_eq(json_lines(path), 1, "%s: one dump expected", path);
        char *s = slurp(path, NULL);
        snprintf(want, sizeof want, "\"pid\":%d,", pids[i]);
        cr_assert(strstr(s, want) && strstr(s, "\"reason\":\"exit\""), "%s is not the exit dump of %d", path, pids[i]);
        free(s);
    }
    int files = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; (e = readdir(d)) != NULL;) files += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(files, 4, "one file per process expected, found %d", files);
    nm_proc_free(&p);
    rm_tree(dir);
}

/* ---- destinations that are not regular files -------------------------------------------
 * tests/obs/prog_obs_guard runs these: its hang guard (12 s) prints "hang: ..." and
 * exits 3, also when the exit dump is what got stuck. */

static void run_guard(const char *const args[], const char *const env[], nm_proc_t *p)
{
    cr_assert(nm_run_helper("prog_obs_guard", args, env, TIMEOUT, p) == 0, "cannot start prog_obs_guard: %s", p->err);
}

/* lines of s that start with prefix */
static size_t lines_starting(const char *s, const char *prefix)
{
    size_t n = 0, k = strlen(prefix);
    for (const char *l = s; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) n += strncmp(l, prefix, k) == 0;
    return n;
}

/* the first line of s that starts with prefix, as a new string ("" if none) */
static char *line_starting(const char *s, const char *prefix)
{
    size_t k = strlen(prefix);
    for (const char *l = s; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
        if (strncmp(l, prefix, k) == 0) return strndup(l, strcspn(l, "\n"));
    return strdup("");
}

/* a FIFO nobody opens for reading: opening it for writing would block forever */
static char *make_fifo(char **dir)
{
    *dir = new_tmpdir();
    char *path = malloc(600);
    snprintf(path, 600, "%s/fifo", *dir);
    cr_assert(mkfifo(path, 0600) == 0, "mkfifo: %s", strerror(errno));
    return path;
}

Test(statsfile, fifo_nobody_reads_warns_and_dumps_to_stderr, .timeout = 120)
{
    char *dir, *fifo = make_fifo(&dir);
    char file[700];
    snprintf(file, sizeof file, "NUMAMALLOC_STATS_FILE=%s", fifo);
    const char *env[] = { "NUMAMALLOC_STATS=text", file, NULL };
    const char *args[] = { "trivial", NULL };
    nm_proc_t p;
    run_guard(args, env, &p);
    OBS_ASSERT_OK(&p);
    cr_assert_eq(lines_starting(p.err, "numamalloc: "), 1, "exactly one warning line expected:\n%s", p.err);
    char *w = line_starting(p.err, "numamalloc: NUMAMALLOC_STATS_FILE");
    cr_assert(strstr(w, "not a regular file"), "the warning should say the path is not a regular file:\n%s", p.err);
    cr_assert(strstr(p.err, "=== end of numamalloc statistics ===") && count_substr(p.err, " statistics (exit) pid ") == 1,
              "the exit dump should go to stderr instead:\n%s", p.err);
    free(w);
    free(fifo);
    nm_proc_free(&p);
    rm_tree(dir);
}

Test(statsfile, directory_warns_and_dumps_to_stderr, .timeout = 120)
{
    char *dir = new_tmpdir();
    char file[700];
    snprintf(file, sizeof file, "NUMAMALLOC_STATS_FILE=%s", dir);
    const char *env[] = { "NUMAMALLOC_STATS=text", file, NULL };
    const char *args[] = { "trivial", NULL };
    nm_proc_t p;
    run_guard(args, env, &p);
    OBS_ASSERT_OK(&p);
    cr_assert_eq(lines_starting(p.err, "numamalloc: "), 1, "exactly one warning line expected:\n%s", p.err);
    cr_assert_eq(lines_starting(p.err, "numamalloc: NUMAMALLOC_STATS_FILE"), 1, "no warning naming the variable:\n%s", p.err);
    cr_assert_eq(count_substr(p.err, " statistics (exit) pid "), 1, "the exit dump should go to stderr:\n%s", p.err);
    nm_proc_free(&p);
    rm_tree(dir);
}

/* the signal handler must not open the FIFO either: it would never return */
Test(statsfile, fifo_with_signal_dumps_does_not_block_the_handler, .timeout = 120)
{
    char *dir, *fifo = make_fifo(&dir);
    char file[700];
    snprintf(file, sizeof file, "NUMAMALLOC_STATS_FILE=%s", fifo);
    const char *env[] = { "NUMAMALLOC_STATS_SIGNAL=USR1", file, NULL };
    const char *args[] = { "raise", "3", NULL };
    nm_proc_t p;
    run_guard(args, env, &p);
    OBS_ASSERT_OK(&p);
    cr_assert(strstr(p.out, "raise: ok\n"), "%s", p.out);
    cr_assert_eq(lines_starting(p.err, "numamalloc: "), 1, "exactly one warning line expected:\n%s", p.err);
    char *w = line_starting(p.err, "numamalloc: NUMAMALLOC_STATS_FILE");
    cr_assert(strstr(w, "not a regular file"), "the warning should say the path is not a regular file:\n%s", p.err);
    cr_assert_eq(count_substr(p.err, " statistics (signal) pid "), 3, "the three signal dumps should go to stderr:\n%s",
                 p.err);
    free(w);
    free(fifo);
    nm_proc_free(&p);
    rm_tree(dir);
}

/* %p and %t expand to more than a path may hold (1023 bytes): no truncated name is
 * opened, the dump goes to stderr after one warning */
Test(statsfile, expansion_too_long_warns_and_creates_no_file, .timeout = 120)
{
    char *dir = new_tmpdir();
    char file[600];
    int n = snprintf(file, sizeof file, "NUMAMALLOC_STATS_FILE=%s/", dir);
    for (int i = 0; i < 110; i++) n += snprintf(file + n, sizeof file - (size_t)n, "%%p%%t");  /* >= 1210 bytes */
    cr_assert_lt(strlen(file) - strlen("NUMAMALLOC_STATS_FILE="), 511, "the value itself must fit the option");
    const char *env[] = { "NUMAMALLOC_STATS=json", file, NULL };
    const char *args[] = { "trivial", NULL };
    nm_proc_t p;
    run_guard(args, env, &p);
    OBS_ASSERT_OK(&p);
    cr_assert_eq(lines_starting(p.err, "numamalloc: "), 1, "exactly one warning line expected:\n%s", p.err);
    char *w = line_starting(p.err, "numamalloc: NUMAMALLOC_STATS_FILE");
    cr_assert(strstr(w, "expands"), "the warning should say what the path expands to:\n%.600s", p.err);
    const char *dump = strchr(p.err, '\n') + 1;
    cr_assert(dump[0] == '{' && nm_json_valid(dump, strlen(dump)), "the dump should follow on stderr as JSON:\n%.300s", dump);
    int files = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; (e = readdir(d)) != NULL;) files += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(files, 0, "%d file(s) created in %s", files, dir);
    free(w);
    nm_proc_free(&p);
    rm_tree(dir);
}

/* ---- dump triggers while the program runs --------------------------------------------- */

/* a helper started in the background: stdin is a pipe we hold, stdout and stderr
 * go to files, so the test can signal it while it runs */
typedef struct bg {
    pid_t pid;
    int stdin_w;
    char out[600], err[600];
} bg_t;

static void bg_start(bg_t *b, const char *dir, const char *const args[], const char *const extra_env[])
{
    char exe[4096], preload[4200];
    snprintf(exe, sizeof exe, "%s/prog_obs", nm_test_helper_dir());
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", nm_test_lib());
    snprintf(b->out, sizeof b->out, "%s/stdout", dir);
    snprintf(b->err, sizeof b->err, "%s/stderr", dir);
    char *envp[16] = { "PATH=/usr/bin:/bin", "LC_ALL=C", preload };
    int ne = 3;
    for (int i = 0; extra_env[i] && ne < 15; i++) envp[ne++] = (char *)extra_env[i];
    envp[ne] = NULL;
    char *argv[16] = { exe };
    int na = 1;
    for (int i = 0; args[i] && na < 15; i++) argv[na++] = (char *)args[i];
    argv[na] = NULL;
    int in[2];
    cr_assert(pipe2(in, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_addopen(&fa, 1, b->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, b->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK);
    int rc = posix_spawn(&b->pid, exe, &fa, &at, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(in[0]);
    cr_assert_eq(rc, 0, "posix_spawn %s: %s", exe, strerror(rc));
    b->stdin_w = in[1];
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* wait until file holds at least n occurrences of needle; false after timeout_s */
static bool wait_for(const char *file, const char *needle, size_t n, double timeout_s)
{
    double end = mono() + timeout_s;
    do {
        char *s = slurp(file, NULL);
        size_t have = s ? count_substr(s, needle) : 0;
        free(s);
        if (have >= n) return true;
        usleep(10000);
    } while (mono() < end);
    return false;
}

/* close stdin, wait for the exit (kill after timeout_s); the exit status */
static int bg_finish(bg_t *b, double timeout_s)
{
    if (b->stdin_w >= 0) close(b->stdin_w);
    b->stdin_w = -1;
    double end = mono() + timeout_s;
    int st = 0;
    for (;;) {
        pid_t w = waitpid(b->pid, &st, WNOHANG);
        if (w == b->pid) return st;
        if (mono() > end) {
            kill(b->pid, SIGKILL);
            waitpid(b->pid, &st, 0);
            cr_assert_fail("the helper did not exit within %.0f s after its stdin closed (deadlock?)", timeout_s);
        }
        usleep(10000);
    }
}

static void bg_abort(bg_t *b, const char *why, int i)
{
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
    char *err = slurp(b->err, NULL);
    cr_assert_fail("%s %d; the helper was killed. stderr:\n%.2000s", why, i, err ? err : "");
}

/* n signals, each answered by a dump before the next is sent; then a clean exit */
static void signal_dumps(const char *mode, const char *const more_env[], const char *end_marker)
{
    char *dir = new_tmpdir();
    char file[600], path[512];
    snprintf(path, sizeof path, "%s/dumps", dir);
    snprintf(file, sizeof file, "NUMAMALLOC_STATS_FILE=%s", path);
    char stats[64];
    snprintf(stats, sizeof stats, "NUMAMALLOC_STATS=%s", mode);
    const char *env[8] = { stats, file, "NUMAMALLOC_STATS_SIGNAL=USR1" };
    int ne = 3;
    for (int i = 0; more_env && more_env[i]; i++) env[ne++] = more_env[i];
    env[ne] = NULL;
    const char *args[] = { "busy-stdin", "3", NULL };
    bg_t b;
    bg_start(&b, dir, args, env);
    if (!wait_for(b.out, "started 3 threads", 1, 30)) bg_abort(&b, "the helper did not start its threads, attempt", 0);
    enum { SIGNALS = 6 };
    for (int i = 1; i <= SIGNALS; i++) {
        cr_assert(kill(b.pid, SIGUSR1) == 0);
        if (!wait_for(path, end_marker, (size_t)i, 20)) bg_abort(&b, "no dump (or a hang) after signal", i);
    }
    int st = bg_finish(&b, 30);
    char *err = slurp(b.err, NULL);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the helper ended with status 0x%x; stderr:\n%s", st, err);
    cr_assert(strstr(err, "numamalloc:") == NULL, "no warning expected (each signal came after the previous dump):\n%s", err);
    char *s = slurp(path, NULL);
    cr_assert_eq(count_substr(s, end_marker), SIGNALS + 1, "expected %d signal dumps and the exit dump", SIGNALS);
    if (!strcmp(mode, "json")) {
        cr_assert_eq(json_lines(path), SIGNALS + 1);
        cr_assert_eq(count_substr(s, "\"schema_version\":2"), SIGNALS + 1);
        cr_assert_eq(count_substr(s, "\"reason\":\"signal\""), SIGNALS);
        cr_assert_eq(count_substr(s, "\"reason\":\"exit\""), 1);
    } else {
        cr_assert_eq(count_substr(s, " statistics (signal) pid "), SIGNALS);
        cr_assert_eq(count_substr(s, " statistics (exit) pid "), 1);
    }
    free(s);
    free(err);
    rm_tree(dir);
}

Test(trigger, usr1_while_three_threads_allocate, .timeout = 240)
{
    /* a JSON dump is one line: its end is the newline (a marker near its start let the
     * next signal arrive while the dump was still being written, and find it busy) */
    signal_dumps("json", NULL, "}\n");
}

Test(trigger, usr1_with_profiler_text, .timeout = 240)
{
    const char *env[] = { "NUMAMALLOC_PROF=1", "NUMAMALLOC_PROF_SAMPLE=64K", NULL };
    signal_dumps("text", env, "=== end of numamalloc statistics ===");
}

Test(trigger, interval_dumps_while_running, .timeout = 120)
{
    char *dir = new_tmpdir();
    char path[512], file[600];
    snprintf(path, sizeof path, "%s/dumps", dir);
    snprintf(file, sizeof file, "NUMAMALLOC_STATS_FILE=%s", path);
    const char *env[] = { "NUMAMALLOC_STATS=json", file, "NUMAMALLOC_STATS_INTERVAL=1", NULL };
    const char *args[] = { "busy", "2", "3.5", NULL };
    nm_proc_t p;
    run_obs(args, env, &p);
    OBS_ASSERT_OK(&p);
    size_t n = json_lines(path);
    char *s = slurp(path, NULL);
    size_t intervals = count_substr(s, "\"reason\":\"interval\"");
    /* 3 expected in 3.5 s; a loaded machine may delay the last one */
    cr_assert(intervals >= 2, "expected periodic dumps while the helper ran 3.5 s, got %zu", intervals);
    cr_assert_eq(count_substr(s, "\"reason\":\"exit\""), 1, "one exit dump expected");
    cr_assert_eq(n, intervals + 1);
    /* each periodic dump is later than the previous one */
    uint64_t last = 0;
    for (const char *l = s; *l;) {
        uint64_t up = 0;
        cr_assert(nm_json_u64(l, "uptime_ms", &up));
        cr_assert(up >= last, "uptime_ms went back: %lu after %lu", (unsigned long)up, (unsigned long)last);
        last = up;
        const char *nl = strchr(l, '\n');
        l = nl ? nl + 1 : l + strlen(l);
    }
    free(s);
    nm_proc_free(&p);
    rm_tree(dir);
}

/* a forked child gets its own periodic dumps: the dump thread does not survive fork */
Test(trigger, interval_dumps_in_a_forked_child, .timeout = 120)
{
    char *dir = new_tmpdir();
    char file[600];
    snprintf(file, sizeof file, "NUMAMALLOC_STATS_FILE=%s/d.%%p.json", dir);
    const char *env[] = { "NUMAMALLOC_STATS=json", "NUMAMALLOC_STATS_INTERVAL=1", file, NULL };
    const char *args[] = { "fork-live", "2.5", NULL };
    nm_proc_t p;
    run_guard(args, env, &p);
    OBS_ASSERT_OK(&p);
    int child = -1;
    const char *c = strstr(p.out, "child ");
    cr_assert(c && sscanf(c, "child %d", &child) == 1, "no child pid in:\n%s", p.out);
    char path[700];
    snprintf(path, sizeof path, "%s/d.%d.json", dir, child);
    size_t lines = json_lines(path);
    char *s = slurp(path, NULL);
    cr_assert_eq(count_substr(s, "\"reason\":\"exit\""), 1, "%s: one exit dump expected", path);
    cr_assert_geq(count_substr(s, "\"reason\":\"interval\""), 1, "%s: the child ran 2.5 s with "
                  "NUMAMALLOC_STATS_INTERVAL=1 but has no interval dump (%zu dump(s))", path, lines);
    free(s);
    nm_proc_free(&p);
    rm_tree(dir);
}

/* The profiler walks and names call stacks (the dynamic loader's structures); dlopen
 * and dlclose change them and allocate with the loader's lock held. Dumps taken
 * meanwhile, from a thread calling numamalloc_stats_print or from the interval
 * thread, must not deadlock with them. 2 s of loads (3 s with interval dumps: the
 * deadlock needs a dump to meet a load); the helper's guard is 12 s. */
static void prof_dlopen(const char *sample, bool interval)
{
    char *dir = new_tmpdir();
    char file[600], samp[64];
    snprintf(file, sizeof file, "NUMAMALLOC_STATS_FILE=%s/dumps.json", dir);
    snprintf(samp, sizeof samp, "NUMAMALLOC_PROF_SAMPLE=%s", sample ? sample : "");
    const char *env[6] = { "NUMAMALLOC_PROF=1" };
    int ne = 1;
    if (sample) env[ne++] = samp;
    if (interval) { env[ne++] = "NUMAMALLOC_STATS_INTERVAL=1"; env[ne++] = "NUMAMALLOC_STATS=json"; env[ne++] = file; }
    env[ne] = NULL;
    /* with interval dumps: at least 2 s of loads, then on until three interval dumps were written */
    const char *args[] = { "dlopen", "2", interval ? "3" : "print", NULL };
    nm_proc_t p;
    run_guard(args, env, &p);
    OBS_ASSERT_OK(&p);
    cr_assert(strstr(p.out, "dlopen: ok\n"), "%s", p.out);
    if (interval) {
        char path[700];
        snprintf(path, sizeof path, "%s/dumps.json", dir);
        size_t n = json_lines(path);
        char *s = slurp(path, NULL);
        cr_assert_eq(count_substr(s, "\"reason\":\"exit\""), 1, "one exit dump expected in %zu line(s)", n);
        cr_assert_geq(count_substr(s, "\"reason\":\"interval\""), 3, "three interval dumps expected in %zu line(s)", n);
        free(s);
    }
    nm_proc_free(&p);
    rm_tree(dir);
}

Test(trigger, profiler_sample_1_stats_print_while_dlopen_dlclose, .timeout = 120) { prof_dlopen("1", false); }
Test(trigger, profiler_sample_4096_stats_print_while_dlopen_dlclose, .timeout = 120) { prof_dlopen("4096", false); }
Test(trigger, profiler_default_sample_stats_print_while_dlopen_dlclose, .timeout = 120) { prof_dlopen(NULL, false); }
Test(trigger, profiler_sample_1_interval_dumps_while_dlopen_dlclose, .timeout = 120) { prof_dlopen("1", true); }
Test(trigger, profiler_sample_4096_interval_dumps_while_dlopen_dlclose, .timeout = 120) { prof_dlopen("4096", true); }
Test(trigger, profiler_default_sample_interval_dumps_while_dlopen_dlclose, .timeout = 120) { prof_dlopen(NULL, true); }

/* ---- the environment parser ------------------------------------------------------------ */

#define OPT_ROW(id, type, def, acc, desc) { #id, type, def, acc },
static const struct { const char *name; int type; const char *def, *accepts; } options[] = { NM_OPTIONS(OPT_ROW) };
#undef OPT_ROW

/* a value each type rejects */
static const char *bad_value_for(int type, char *buf, size_t len)
{
    switch (type) {
    case NM_T_BOOL:   return "maybe";
    case NM_T_UINT:   return "12abc";
    case NM_T_SIZE:   return "lots";
    case NM_T_ENUM:   return "sideways";
    case NM_T_POLICY: return "sideways";
    case NM_T_PATH:   /* the only bad path is one too long to keep */
        memset(buf, 'a', len - 1);
        buf[len - 1] = '\0';
        return buf;
    }
    cr_assert_fail("option type %d has no bad value in this test: add one", type);
    return NULL;
}

/* the documented warning; values over 60 characters are shown cut, with "..." */
static void expected_warning(char *out, size_t len, const char *name, const char *value, const char *accepts, const char *def)
{
    char shown[64];
    snprintf(shown, sizeof shown, "%.60s%s", value, strlen(value) > 60 ? "..." : "");
    snprintf(out, len, "numamalloc: NUMAMALLOC_%s='%s' ignored: accepts %s; using '%s'\n", name, shown, accepts, def);
}

static char *baseline_work_output(void)
{
    const char *args[] = { "work", NULL };
    nm_proc_t p;
    run_obs(args, NULL, &p);
    OBS_ASSERT_OK(&p);
    cr_assert_str_empty(p.err, "the baseline run should print nothing on stderr:\n%s", p.err);
    char *out = strdup(after_pid_line(p.out));
    nm_proc_free(&p);
    cr_assert(strstr(out, "checksum "), "baseline output: %s", out);
    return out;
}

static void check_one_bad(const char *baseline, const char *name, const char *value, const char *want)
{
    char var[1024];
    snprintf(var, sizeof var, "NUMAMALLOC_%s=%s", name, value);
    const char *env[] = { var, NULL };
    const char *args[] = { "work", NULL };
    nm_proc_t p;
    run_obs(args, env, &p);
    OBS_ASSERT_OK(&p);
    cr_expect_str_eq(p.err, want, "NUMAMALLOC_%s='%.40s': stderr should be exactly one line", name, value);
    cr_expect_str_eq(after_pid_line(p.out), baseline, "NUMAMALLOC_%s='%.40s' changed the program's output", name, value);
    nm_proc_free(&p);
}

Test(env, bad_value_for_every_option, .timeout = 240)
{
    char *baseline = baseline_work_output();
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        char buf[600], want[2048];
        const char *bad = bad_value_for(options[i].type, buf, sizeof buf);
        expected_warning(want, sizeof want, options[i].name, bad, options[i].accepts, options[i].def);
        check_one_bad(baseline, options[i].name, bad, want);
    }
    free(baseline);
}

/* values of the right shape but outside the documented range */
Test(env, out_of_range_values, .timeout = 240)
{
    static const struct { const char *name, *value; } cases[] = {
        { "LARGE_THRESHOLD", "32K" }, { "LARGE_THRESHOLD", "2G" }, { "DECAY_MS", "3600001" },
        { "LARGE_CACHE", "65G" }, { "BACKGROUND", "2" }, { "STATS_INTERVAL", "86401" },
        { "PROF_SAMPLE", "0" }, { "PROF_SAMPLE", "2G" }, { "POLICY", "preferred:0,1" },
        { "POLICY", "bind:" }, { "PREFAULT", "2" }, { "STATS_SIGNAL", "HUP" },
    };
    char *baseline = baseline_work_output();
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        size_t i = 0;
        while (i < sizeof options / sizeof options[0] && strcmp(options[i].name, cases[c].name) != 0) i++;
        cr_assert(i < sizeof options / sizeof options[0], "no option %s in NM_OPTIONS", cases[c].name);
        char want[2048];
        expected_warning(want, sizeof want, options[i].name, cases[c].value, options[i].accepts, options[i].def);
        check_one_bad(baseline, cases[c].name, cases[c].value, want);
    }
    free(baseline);
}

Test(env, unknown_variable_warns)
{
    char *baseline = baseline_work_output();
    const char *env[] = { "NUMAMALLOC_FOO=1", NULL };
    const char *args[] = { "work", NULL };
    nm_proc_t p;
    run_obs(args, env, &p);
    OBS_ASSERT_OK(&p);
    cr_assert_str_eq(p.err, "numamalloc: NUMAMALLOC_FOO is not a numamalloc variable: ignored (see numamalloc(7) for the list)\n");
    cr_assert_str_eq(after_pid_line(p.out), baseline);
    nm_proc_free(&p);
    free(baseline);
}

static void assert_matches(const char *text, const char *pattern)
{
    regex_t re;
    cr_assert(regcomp(&re, pattern, REG_EXTENDED | REG_NEWLINE | REG_NOSUB) == 0, "bad pattern %s", pattern);
    int rc = regexec(&re, text, 0, NULL, 0);
    regfree(&re);
    cr_assert(rc == 0, "no line matches /%s/ in:\n%s", pattern, text);
}

Test(env, verbose_prints_the_startup_block)
{
    const char *env[] = { "NUMAMALLOC_VERBOSE=1", "NUMAMALLOC_DECAY_MS=500", NULL };
    const char *args[] = { "work", NULL };
    nm_proc_t p;
    run_obs(args, env, &p);
    OBS_ASSERT_OK(&p);
    const char *e = p.err;
    /* version and topology */
    assert_matches(e, "^numamalloc " NM_OBS_VERSION ": [0-9]+ node\\(s\\) online, [0-9]+ with memory, [0-9]+ CPU\\(s\\), NUMA sysfs (present|absent)$");
    assert_matches(e, "^numamalloc:   node 0: [0-9]+ CPU\\(s\\), [0-9.]+ (B|KiB|MiB|GiB|TiB), hugetlb 2M free -?[0-9]+ of -?[0-9]+, distances( [0-9]+)+$");
    assert_matches(e, "^numamalloc:   transparent huge pages: (never|madvise|always)$");
    /* the configuration: every variable in table order, (default) where not set */
    const char *at = e;
    for (size_t i = 0; i < sizeof options / sizeof options[0]; i++) {
        char line[700];
        const char *name = options[i].name;
        if (!strcmp(name, "VERBOSE")) snprintf(line, sizeof line, "numamalloc:   NUMAMALLOC_VERBOSE=1\n");
        else if (!strcmp(name, "DECAY_MS")) snprintf(line, sizeof line, "numamalloc:   NUMAMALLOC_DECAY_MS=500\n");
        else snprintf(line, sizeof line, "numamalloc:   NUMAMALLOC_%s=%s (default)\n", name, options[i].def);
        const char *hit = strstr(at, line);
        cr_assert(hit, "missing or out of order: %sin:\n%s", line, e);
        at = hit + strlen(line);
    }
    /* the block is all: nothing else on stderr */
    size_t lines = nm_count_lines(e);
    size_t nodes = count_substr(e, "numamalloc:   node ");
    cr_assert_eq(lines, 2 + nodes + sizeof options / sizeof options[0], "unexpected lines in:\n%s", e);
    nm_proc_free(&p);
}

/* The set-uid copy is owned by root and run by nobody (setpriv): secure-execution
 * mode, where a variable naming a file must be ignored. */
Test(env, at_secure_ignores_stats_file)
{
    if (geteuid() != 0) cr_skip_test("AT_SECURE test skipped: needs root (to make a set-uid root copy of the helper)");
    if (access("/usr/bin/setpriv", X_OK) != 0) cr_skip_test("AT_SECURE test skipped: setpriv (util-linux) not installed");
    char *bin = new_tmpdir(), *out = new_tmpdir();
    chmod(bin, 0755);
    chmod(out, 0777);                              /* nobody could create the dump here */
    char exe[600];
    snprintf(exe, sizeof exe, "%s/prog_obs", bin);
    size_t len = 0;
    char *img = slurp(NM_OBS_LINKED_HELPER, &len);
    cr_assert(img && len > 0, "cannot read %s", NM_OBS_LINKED_HELPER);
    FILE *f = fopen(exe, "wb");
    cr_assert(f && fwrite(img, 1, len, f) == len);
    fclose(f);
    free(img);
    cr_assert(chown(exe, 0, 0) == 0 && chmod(exe, 04755) == 0);

    char path[600], file[700];
    snprintf(path, sizeof path, "%s/dump.txt", out);
    snprintf(file, sizeof file, "NUMAMALLOC_STATS_FILE=%s", path);
    char *envp[] = { "PATH=/usr/bin:/bin", "LC_ALL=C", "NUMAMALLOC_STATS=text", file, NULL };
    char *argv[] = { "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe, "alloc", "1", "16", NULL };
    nm_proc_t p;
    int spawned = nm_spawn("/usr/bin/setpriv", argv, envp, TIMEOUT, &p);
    chmod(exe, 0755);                              /* no set-uid root file left behind if we fail */
    cr_assert(spawned == 0);
    OBS_ASSERT_OK(&p);
    unsigned long secure = 9;
    int pid;
    cr_assert(sscanf(p.out, "pid %d at_secure %lu", &pid, &secure) == 2, "helper output: %s", p.out);
    if (secure != 1) {
        nm_proc_free(&p);
        rm_tree(bin);
        rm_tree(out);
        cr_skip_test("AT_SECURE test skipped: the set-uid bit was not honoured here (nosuid mount?)");
    }
    cr_assert(strstr(p.err, "numamalloc: NUMAMALLOC_STATS_FILE ignored in a set-uid/set-gid (AT_SECURE) process\n"),
              "no AT_SECURE warning; stderr:\n%s", p.err);
    cr_assert(strstr(p.err, "=== numamalloc ") && strstr(p.err, "=== end of numamalloc statistics ==="),
              "the dump should go to stderr instead:\n%s", p.err);
    struct stat st;
    cr_assert(lstat(path, &st) != 0, "the dump file was created by a set-uid process");
    nm_proc_free(&p);

    /* control: the same binary, not in secure mode, does write the file */
    char *argv2[] = { exe, "alloc", "1", "16", NULL };
    cr_assert(nm_spawn(exe, argv2, envp, TIMEOUT, &p) == 0);
    OBS_ASSERT_OK(&p);
    cr_assert(lstat(path, &st) == 0, "control run (not set-uid) did not write %s; stderr:\n%s", path, p.err);
    nm_proc_free(&p);
    rm_tree(bin);
    rm_tree(out);
}
