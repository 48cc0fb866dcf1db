/* tests/helpers/spawn.c — fork+execve a helper with an explicit environment,
 * capture its output and status, kill it after a timeout; plus the small JSON
 * reader the tests and helpers share. See spawn.h for the contract.
 *
 * The child runs in a process group of its own so that a timeout kills whatever it
 * forked too (the fork helper has hundreds of children). SIGCHLD is set to its
 * default while we wait, so that a test runner ignoring it cannot make waitpid
 * lose the status. Nothing here is ever run under the preload on purpose: the
 * Criterion runners are plain glibc processes; only the helpers they start are
 * preloaded. The helper programs link this file too, for the JSON reader. */
#include "helpers/spawn.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef NM_TEST_LIB
#define NM_TEST_LIB "build/libnumamalloc.so"
#endif
#ifndef NM_TEST_HELPER_DIR
#define NM_TEST_HELPER_DIR "build/tests/helpers"
#endif

const char *nm_test_lib(void) { return NM_TEST_LIB; }
const char *nm_test_helper_dir(void) { return NM_TEST_HELPER_DIR; }

/* ---- capture buffers --------------------------------------------------------- */

typedef struct cap {
    char  *buf;
    size_t len, cap;
    int    fd;             /* -1 once at end of file */
} cap_t;

static void cap_append(cap_t *c, const char *s, size_t n)
{
    if (c->len + n + 1 > c->cap) {
        size_t nc = c->cap ? c->cap : 4096;
        while (c->len + n + 1 > nc) nc *= 2;
        char *nb = realloc(c->buf, nc);
        if (nb == NULL) return;              /* keep what we have; the status still counts */
        c->buf = nb;
        c->cap = nc;
    }
    memcpy(c->buf + c->len, s, n);
    c->len += n;
    c->buf[c->len] = '\0';
}

/* read what is available; returns false at end of file or error */
static bool cap_read(cap_t *c)
{
    char tmp[16384];
    for (;;) {
        ssize_t r = read(c->fd, tmp, sizeof tmp);
        if (r > 0) { cap_append(c, tmp, (size_t)r); continue; }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && errno == EAGAIN) return true;
        close(c->fd);
        c->fd = -1;
        return false;
    }
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the child side: only async-signal-safe calls between fork and execve ------- */

static void child_exec(const char *path, char *const argv[], char *const envp[], int out_w, int err_w, int status_w)
{
    setpgid(0, 0);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int s = 1; s < NSIG; s++) {
        if (s == SIGKILL || s == SIGSTOP) continue;
        signal(s, SIG_DFL);
    }
    int in = open("/dev/null", O_RDONLY);
    if (in >= 0 && in != 0) { dup2(in, 0); close(in); }
    dup2(out_w, 1);
    dup2(err_w, 2);
    if (out_w > 2) close(out_w);
    if (err_w > 2) close(err_w);
    execve(path, argv, envp);
    int e = errno;
    (void)!write(status_w, &e, sizeof e);
    _exit(127);
}

int nm_spawn(const char *path, char *const argv[], char *const envp[], unsigned timeout_s, nm_proc_t *p)
{
    memset(p, 0, sizeof *p);
    cap_t out = { .fd = -1 }, err = { .fd = -1 };
    cap_append(&out, "", 0);
    cap_append(&err, "", 0);
    int po[2], pe[2], ps[2];
    if (pipe2(po, O_CLOEXEC) != 0) goto fail0;
    if (pipe2(pe, O_CLOEXEC) != 0) goto fail1;
    if (pipe2(ps, O_CLOEXEC) != 0) goto fail2;

    struct sigaction dfl = { .sa_handler = SIG_DFL }, old;
    sigemptyset(&dfl.sa_mask);
    sigaction(SIGCHLD, &dfl, &old);
    double t0 = now_s();
    pid_t pid = fork();
    if (pid < 0) { sigaction(SIGCHLD, &old, NULL); goto fail3; }
    if (pid == 0) child_exec(path, argv, envp, po[1], pe[1], ps[1]);
    setpgid(pid, pid);                      /* also in the parent: no race with kill(-pid) */
    close(po[1]);
    close(pe[1]);
    close(ps[1]);
    p->pid = pid;
    out.fd = po[0];
    err.fd = pe[0];
    fcntl(out.fd, F_SETFL, O_NONBLOCK);
    fcntl(err.fd, F_SETFL, O_NONBLOCK);

    double deadline = t0 + (timeout_s ? timeout_s : 60);
    int status = 0;
    bool reaped = false;
    while (!(reaped && out.fd < 0 && err.fd < 0)) {
        double left = deadline - now_s();
        if (left <= 0) break;
        struct pollfd fds[2];
        int n = 0;
        if (out.fd >= 0) fds[n++] = (struct pollfd){ .fd = out.fd, .events = POLLIN };
        if (err.fd >= 0) fds[n++] = (struct pollfd){ .fd = err.fd, .events = POLLIN };
        int ms = left > 0.05 ? 50 : (int)(left * 1000) + 1;
        if (n > 0) {
            if (poll(fds, (nfds_t)n, ms) > 0) {
                if (out.fd >= 0) cap_read(&out);
                if (err.fd >= 0) cap_read(&err);
            }
        } else {
            struct timespec ts = { 0, 5 * 1000 * 1000 };
            nanosleep(&ts, NULL);
        }
        if (!reaped) {
            pid_t w = waitpid(pid, &status, WNOHANG);
            if (w == pid) reaped = true;
        }
    }
    if (!(reaped && out.fd < 0 && err.fd < 0)) {
        /* the helper, or something it forked that still holds its output, hung */
        p->timed_out = true;
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        if (!reaped) { while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {} reaped = true; }
        if (out.fd >= 0) { cap_read(&out); close(out.fd); }
        if (err.fd >= 0) { cap_read(&err); close(err.fd); }
    }
    sigaction(SIGCHLD, &old, NULL);
    p->seconds = now_s() - t0;
    int e = 0;
    if (read(ps[0], &e, sizeof e) == (ssize_t)sizeof e) {
        p->exec_failed = true;
        char msg[512];
        snprintf(msg, sizeof msg, "spawn: cannot execute %s: %s\n", path, strerror(e));
        cap_append(&err, msg, strlen(msg));
    }
    close(ps[0]);
    if (WIFEXITED(status)) { p->exited = true; p->exit_code = WEXITSTATUS(status); }
    else if (WIFSIGNALED(status)) p->signal = WTERMSIG(status);
    p->out = out.buf; p->out_len = out.len;
    p->err = err.buf; p->err_len = err.len;
    return 0;

fail3:
    close(ps[0]); close(ps[1]);
fail2:
    close(pe[0]); close(pe[1]);
fail1:
    close(po[0]); close(po[1]);
fail0:;
    int saved = errno;
    char msg[256];
    snprintf(msg, sizeof msg, "spawn: cannot start %s: %s\n", path, strerror(saved));
    cap_append(&err, msg, strlen(msg));
    p->out = out.buf; p->out_len = out.len;
    p->err = err.buf; p->err_len = err.len;
    errno = saved;
    return -1;
}

void nm_proc_free(nm_proc_t *p)
{
    free(p->out);
    free(p->err);
    p->out = p->err = NULL;
}

bool nm_proc_ok(const nm_proc_t *p)
{
    return p->exited && p->exit_code == 0 && !p->timed_out && !p->exec_failed;
}

const char *nm_proc_status(const nm_proc_t *p, char *buf, size_t len)
{
    if (p->exec_failed) snprintf(buf, len, "could not be executed");
    else if (p->timed_out) snprintf(buf, len, "timed out (killed after %.0f s)", p->seconds);
    else if (p->exited) snprintf(buf, len, "exit %d", p->exit_code);
    else if (p->signal) snprintf(buf, len, "signal %d (%s)", p->signal, strsignal(p->signal));
    else snprintf(buf, len, "not started");
    return buf;
}

/* ---- helpers under the preload ------------------------------------------------- */

static bool same_name(const char *a, const char *b)
{
    size_t n = strcspn(a, "=");
    return strncmp(a, b, n) == 0 && b[n] == '=';
}

int nm_run_helper(const char *name, const char *const args[], const char *const env[],
                  unsigned timeout_s, nm_proc_t *p)
{
    memset(p, 0, sizeof *p);
    char path[4096];
    if (strchr(name, '/')) snprintf(path, sizeof path, "%s", name);
    else snprintf(path, sizeof path, "%s/%s", nm_test_helper_dir(), name);
    char preload[4200];
    snprintf(preload, sizeof preload, "LD_PRELOAD=%s", nm_test_lib());

    const char *base[] = { "PATH=/usr/bin:/bin", "LC_ALL=C", "HOME=/tmp", preload };
    enum { NBASE = sizeof base / sizeof base[0] };
    size_t nextra = 0;
    while (env && env[nextra]) nextra++;
    size_t nargs = 0;
    while (args && args[nargs]) nargs++;

    char **envp = calloc(NBASE + nextra + 1, sizeof *envp);
    char **argv = calloc(nargs + 2, sizeof *argv);
    if (envp == NULL || argv == NULL) {
        free(envp);
        free(argv);
        p->out = calloc(1, 1);
        p->err = strdup("spawn: out of memory\n");
        errno = ENOMEM;
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < NBASE; i++) {
        bool replaced = false;
        for (size_t j = 0; j < nextra; j++) replaced |= same_name(base[i], env[j]);
        if (!replaced) envp[k++] = (char *)base[i];
    }
    for (size_t j = 0; j < nextra; j++)
        if (strcmp(env[j], "LD_PRELOAD=") != 0) envp[k++] = (char *)env[j];
    argv[0] = path;
    for (size_t i = 0; i < nargs; i++) argv[i + 1] = (char *)args[i];
    int r = nm_spawn(path, argv, envp, timeout_s, p);
    free(envp);
    free(argv);
    return r;
}

/* ---- text ------------------------------------------------------------------------ */

size_t nm_count_lines(const char *s)
{
    size_t n = 0;
    for (const char *q = s; *q; q++) if (*q == '\n') n++;
    size_t len = strlen(s);
    if (len && s[len - 1] != '\n') n++;
    return n;
}

bool nm_kv_u64(const char *s, const char *key, uint64_t *out)
{
    size_t kl = strlen(key);
    for (const char *line = s; line && *line;) {
        if (strncmp(line, key, kl) == 0 && line[kl] == '=') {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(line + kl + 1, &end, 10);
            if (errno || end == line + kl + 1) return false;
            *out = v;
            return true;
        }
        line = strchr(line, '\n');
        if (line) line++;
    }
    return false;
}

/* ---- inside the helpers ------------------------------------------------------------ */

void nm_say(int fd, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    size_t len = (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1;
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd, buf + done, len - done);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return;
        done += (size_t)w;
    }
}

size_t nm_self_stats_json(char *buf, size_t len)
{
    size_t (*fn)(char *, size_t) = (size_t (*)(char *, size_t))dlsym(RTLD_DEFAULT, "numamalloc_stats_json");
    if (fn == NULL) { if (len) buf[0] = '\0'; return 0; }
    size_t need = fn(buf, len);
    return need < len ? need : 0;
}

uint64_t nm_self_rss(void)
{
    char buf[256];
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    unsigned long size, resident;
    if (sscanf(buf, "%lu %lu", &size, &resident) != 2) return 0;
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* ---- JSON ------------------------------------------------------------------------ */

typedef struct jp { const char *s, *e; int depth; } jp_t;

static void ws(jp_t *j) { while (j->s < j->e && (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' || *j->s == '\r')) j->s++; }
static bool lit(jp_t *j, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(j->e - j->s) < n || memcmp(j->s, w, n) != 0) return false;
    j->s += n;
    return true;
}
static bool isdig(char c) { return c >= '0' && c <= '9'; }
static bool ishex(char c) { return isdig(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* a string; if key is non-NULL, *match tells whether its raw text equals key */
static bool jstring(jp_t *j, const char *key, bool *match)
{
    if (j->s >= j->e || *j->s != '"') return false;
    const char *start = ++j->s;
    while (j->s < j->e && *j->s != '"') {
        unsigned char c = (unsigned char)*j->s;
        if (c < 0x20) return false;
        if (c == '\\') {
            j->s++;
            if (j->s >= j->e) return false;
            char x = *j->s;
            if (x == 'u') {
                for (int i = 1; i <= 4; i++) if (j->s + i >= j->e || !ishex(j->s[i])) return false;
                j->s += 4;
            } else if (!strchr("\"\\/bfnrt", x)) return false;
        }
        j->s++;
    }
    if (j->s >= j->e) return false;
    if (key) *match = strlen(key) == (size_t)(j->s - start) && memcmp(start, key, (size_t)(j->s - start)) == 0;
    j->s++;
    return true;
}

static bool jnumber(jp_t *j)
{
    if (j->s < j->e && *j->s == '-') j->s++;
    if (j->s >= j->e || !isdig(*j->s)) return false;
    if (*j->s == '0') j->s++;
    else while (j->s < j->e && isdig(*j->s)) j->s++;
    if (j->s < j->e && *j->s == '.') {
        j->s++;
        if (j->s >= j->e || !isdig(*j->s)) return false;
        while (j->s < j->e && isdig(*j->s)) j->s++;
    }
    if (j->s < j->e && (*j->s == 'e' || *j->s == 'E')) {
        j->s++;
        if (j->s < j->e && (*j->s == '+' || *j->s == '-')) j->s++;
        if (j->s >= j->e || !isdig(*j->s)) return false;
        while (j->s < j->e && isdig(*j->s)) j->s++;
    }
    return true;
}

static bool jvalue(jp_t *j);

static bool jobject(jp_t *j)
{
    j->s++;
    ws(j);
    if (j->s < j->e && *j->s == '}') { j->s++; return true; }
    for (;;) {
        ws(j);
        if (!jstring(j, NULL, NULL)) return false;
        ws(j);
        if (j->s >= j->e || *j->s != ':') return false;
        j->s++;
        if (!jvalue(j)) return false;
        ws(j);
        if (j->s < j->e && *j->s == ',') { j->s++; continue; }
        if (j->s < j->e && *j->s == '}') { j->s++; return true; }
        return false;
    }
}

static bool jarray(jp_t *j)
{
    j->s++;
    ws(j);
    if (j->s < j->e && *j->s == ']') { j->s++; return true; }
    for (;;) {
        if (!jvalue(j)) return false;
        ws(j);
        if (j->s < j->e && *j->s == ',') { j->s++; continue; }
        if (j->s < j->e && *j->s == ']') { j->s++; return true; }
        return false;
    }
}

static bool jvalue(jp_t *j)
{
    ws(j);
    if (j->s >= j->e || ++j->depth > 200) return false;
    bool ok;
    switch (*j->s) {
    case '{': ok = jobject(j); break;
    case '[': ok = jarray(j); break;
    case '"': ok = jstring(j, NULL, NULL); break;
    case 't': ok = lit(j, "true"); break;
    case 'f': ok = lit(j, "false"); break;
    case 'n': ok = lit(j, "null"); break;
    default:  ok = jnumber(j); break;
    }
    j->depth--;
    return ok;
}

bool nm_json_valid(const char *s, size_t len)
{
    jp_t j = { s, s + len, 0 };
    if (!jvalue(&j)) return false;
    ws(&j);
    return j.s == j.e;
}

bool nm_json_u64(const char *json, const char *path, uint64_t *out)
{
    jp_t j = { json, json + strlen(json), 0 };
    char seg[128];
    for (;;) {
        size_t n = strcspn(path, ".");
        if (n == 0 || n >= sizeof seg) return false;
        memcpy(seg, path, n);
        seg[n] = '\0';
        ws(&j);
        if (j.s >= j.e || *j.s != '{') return false;
        j.s++;
        bool found = false;
        for (;;) {
            ws(&j);
            if (j.s < j.e && *j.s == '}') return false;
            bool match = false;
            if (!jstring(&j, seg, &match)) return false;
            ws(&j);
            if (j.s >= j.e || *j.s != ':') return false;
            j.s++;
            if (match) { found = true; break; }
            if (!jvalue(&j)) return false;
            ws(&j);
            if (j.s < j.e && *j.s == ',') { j.s++; continue; }
            return false;
        }
        if (!found) return false;
        if (path[n] == '\0') {
            ws(&j);
            if (j.s >= j.e || !isdig(*j.s)) return false;
            char *end;
            errno = 0;
            unsigned long long v = strtoull(j.s, &end, 10);
            if (errno) return false;
            *out = v;
            return true;
        }
        path += n + 1;
    }
}
