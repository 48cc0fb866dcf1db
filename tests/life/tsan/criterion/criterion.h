/* tests/life/tsan/criterion/criterion.h — the part of Criterion's API the threaded
 * white-box tests use, for running them under ThreadSanitizer (tests/sanitize.mk puts
 * this directory first on the include path of the TSan build only).
 *
 * Why: Criterion 2.4 runs every test in a sandbox whose shared "arena" BoxFort maps
 * with MAP_FIXED at a random address between 0x2000'0000'0000 and 0x6000'0000'0000;
 * under TSan that range is shadow memory or outside application memory, TSan's mmap
 * refuses it and the runner aborts ("Could not initialize inheritable arena"). This
 * header keeps the tests' source unchanged: Test() registers the function, the
 * cr_assert family checks and reports like Criterion's, and main() runs every
 * test (or those named on the command line) in a forked child of its own, as
 * Criterion does, so each starts from a fresh allocator. A child that fails an
 * assertion exits 1; one with a TSan report exits 66 (TSAN_OPTIONS=exitcode=66); a
 * child past its .timeout (or 120 s) is killed. Exit status: 0 if every test passed. */
#ifndef NM_TSAN_CRITERION_H
#define NM_TSAN_CRITERION_H

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct criterion_test_extra_data {
    void (*init)(void);
    void (*fini)(void);
    double timeout;
    int signal;
    int exit_code;
    bool disabled;
    const char *description;
};

struct nm_cr_test {
    const char *suite, *name;
    void (*fn)(void);
    struct criterion_test_extra_data extra;
    struct nm_cr_test *next;
};

static struct nm_cr_test *nm_cr_tests;

#define Test(suite, name, ...)                                                           \
    static void suite##_##name##_fn(void);                                               \
    static struct nm_cr_test suite##_##name##_test = {                                   \
        #suite, #name, suite##_##name##_fn, { __VA_ARGS__ }, NULL };                     \
    __attribute__((constructor)) static void suite##_##name##_reg(void)                  \
    {                                                                                    \
        struct nm_cr_test **p = &nm_cr_tests;                                            \
        while (*p) p = &(*p)->next;                                                      \
        *p = &suite##_##name##_test;                                                     \
    }                                                                                    \
    static void suite##_##name##_fn(void)

__attribute__((format(printf, 4, 5), noreturn))
static void nm_cr_fail(const char *file, int line, const char *what, const char *fmt, ...)
{
    fprintf(stderr, "%s:%d: assertion failed: %s", file, line, what);
    if (fmt[1]) {                                 /* past the "\1" the macros put first */
        va_list ap;
        va_start(ap, fmt);
        fputs(": ", stderr);
        vfprintf(stderr, fmt + 1, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    fflush(stderr);
    _exit(1);
}

/* "\1" __VA_ARGS__: the optional message's format is a string literal (or nothing),
 * joined to a one-character prefix so that no message is not an empty format */
#define cr_assert(c, ...)        do { if (!(c)) nm_cr_fail(__FILE__, __LINE__, #c, "\1" __VA_ARGS__); } while (0)
#define cr_assert_not(c, ...)    cr_assert(!(c), __VA_ARGS__)
#define cr_assert_eq(a, b, ...)  cr_assert((a) == (b), __VA_ARGS__)
#define cr_assert_neq(a, b, ...) cr_assert((a) != (b), __VA_ARGS__)
#define cr_assert_lt(a, b, ...)  cr_assert((a) < (b), __VA_ARGS__)
#define cr_assert_leq(a, b, ...) cr_assert((a) <= (b), __VA_ARGS__)
#define cr_assert_gt(a, b, ...)  cr_assert((a) > (b), __VA_ARGS__)
#define cr_assert_geq(a, b, ...) cr_assert((a) >= (b), __VA_ARGS__)
#define cr_assert_null(a, ...)   cr_assert((a) == NULL, __VA_ARGS__)
#define cr_assert_not_null(a, ...) cr_assert((a) != NULL, __VA_ARGS__)
#define cr_assert_str_eq(a, b, ...) cr_assert(strcmp((a), (b)) == 0, __VA_ARGS__)

static bool nm_cr_selected(const struct nm_cr_test *t, int argc, char **argv)
{
    int names = 0;
    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-') continue;          /* Criterion's options: ignored */
        names++;
        char full[256];
        snprintf(full, sizeof full, "%s::%s", t->suite, t->name);
        if (strcmp(argv[i], full) == 0 || strcmp(argv[i], t->suite) == 0) return true;
    }
    return names == 0;
}

static int nm_cr_run(const struct nm_cr_test *t)
{
    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 0; }
    if (pid == 0) {
        if (t->extra.init) t->extra.init();
        t->fn();
        if (t->extra.fini) t->extra.fini();
        fflush(NULL);
        _exit(0);
    }
    double limit = t->extra.timeout > 0 ? t->extra.timeout : 120;
    int status = 0;
    for (double waited = 0;; waited += 0.01) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (waited >= limit) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "[FAIL] %s::%s: timed out after %.0f s\n", t->suite, t->name, limit);
            return 0;
        }
        struct timespec ts = { 0, 10 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    bool want_signal = t->extra.signal != 0;
    bool ok = want_signal ? WIFSIGNALED(status) && WTERMSIG(status) == t->extra.signal
                          : WIFEXITED(status) && WEXITSTATUS(status) == t->extra.exit_code;
    if (!ok) {
        if (WIFSIGNALED(status)) fprintf(stderr, "[FAIL] %s::%s: killed by signal %d\n", t->suite, t->name, WTERMSIG(status));
        else fprintf(stderr, "[FAIL] %s::%s: exit status %d%s\n", t->suite, t->name, WEXITSTATUS(status),
                     WEXITSTATUS(status) == 66 ? " (ThreadSanitizer report above)" : "");
    }
    return ok;
}

int main(int argc, char **argv)
{
    int tested = 0, passed = 0;
    for (const struct nm_cr_test *t = nm_cr_tests; t; t = t->next) {
        if (t->extra.disabled || !nm_cr_selected(t, argc, argv)) continue;
        tested++;
        passed += nm_cr_run(t);
    }
    fprintf(stderr, "[====] Synthesis (TSan, no Criterion sandbox): Tested: %d | Passing: %d | Failing: %d\n",
            tested, passed, tested - passed);
    return tested > 0 && passed == tested ? 0 : 1;
}

#endif
