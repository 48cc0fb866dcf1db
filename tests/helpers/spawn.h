/* tests/helpers/spawn.h — run a helper program under the preload, with an explicit
 * environment, and read what it did.
 *
 * Environment-dependent behaviour (NUMAMALLOC_* variables, the start-up path, exit
 * and fork) is tested in fresh processes started by fork+execve with an envp built
 * here, never by setenv() in a running test: the allocator reads its environment
 * once, at boot. nm_spawn() captures stdout and stderr, the exit status or signal,
 * and kills the whole process group after a timeout so that a hang fails the test
 * instead of blocking the suite.
 *
 * Also here, because both the Criterion tests and the helper programs need them:
 * a strict JSON validator and a dotted-path lookup of an unsigned number in a
 * JSON object (the stats dump is one JSON line). */
#ifndef NM_TEST_SPAWN_H
#define NM_TEST_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct nm_proc {
    char  *out;          /* captured stdout, NUL-terminated (never NULL after nm_spawn) */
    size_t out_len;
    char  *err;          /* captured stderr, NUL-terminated */
    size_t err_len;
    int    pid;          /* the child's pid */
    bool   exited;       /* ended by exit(): exit_code is valid */
    int    exit_code;
    int    signal;       /* ended by this signal (0: exited) */
    bool   timed_out;    /* we killed its process group after the timeout */
    bool   exec_failed;  /* execve failed (exit code 127, message on stderr) */
    double seconds;      /* wall time, informational only */
} nm_proc_t;

/* Run `path` with argv and exactly envp, in a new process group, stdin /dev/null.
 * Returns 0 when the process was started and reaped (whatever its outcome: see *p),
 * -1 if it could not be started (errno set; p->err says why). */
int nm_spawn(const char *path, char *const argv[], char *const envp[], unsigned timeout_s, nm_proc_t *p);
void nm_proc_free(nm_proc_t *p);

/* exited with status 0, in time */
bool nm_proc_ok(const nm_proc_t *p);
/* "exit 0", "exit 3", "signal 11 (Segmentation fault)", "timed out after 30 s"... */
const char *nm_proc_status(const nm_proc_t *p, char *buf, size_t len);

/* Absolute paths baked in at build time (tests/runtime.mk): the preload library
 * and the directory holding the helper programs. */
const char *nm_test_lib(void);
const char *nm_test_helper_dir(void);

/* Run helper `name` (looked up in nm_test_helper_dir() unless it contains a '/')
 * with arguments args (NULL-terminated, may be NULL) and the environment
 *   PATH=/usr/bin:/bin LC_ALL=C HOME=/tmp LD_PRELOAD=<lib>
 * plus each "NAME=value" of env (NULL-terminated, may be NULL), where an entry
 * replaces a base one of the same name and "LD_PRELOAD=" runs without the preload. */
int nm_run_helper(const char *name, const char *const args[], const char *const env[],
                  unsigned timeout_s, nm_proc_t *p);

/* number of '\n'-terminated lines in s (a final unterminated line counts too) */
size_t nm_count_lines(const char *s);
/* the value after "key=" at the start of a line of s, as unsigned; false if absent */
bool nm_kv_u64(const char *s, const char *key, uint64_t *out);

/* ---- for the helper programs (which link this file and run preloaded) ---- */
/* printf to a file descriptor through a stack buffer: no stdio, no malloc */
void nm_say(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* numamalloc_stats_json() found with dlsym(RTLD_DEFAULT): the dump's length, 0 when
 * the process is not preloaded (or the dump did not fit in len) */
size_t nm_self_stats_json(char *buf, size_t len);
/* resident set size from /proc/self/statm, in bytes (0 if unreadable) */
uint64_t nm_self_rss(void);

/* true if s[0..len) is exactly one JSON value (RFC 8259), surrounding whitespace allowed */
bool nm_json_valid(const char *s, size_t len);
/* the unsigned integer at a dotted path of objects ("summary.live") in JSON text */
bool nm_json_u64(const char *json, const char *path, uint64_t *out);

/* For Criterion tests (cr_assert must be visible where it is used): the helper
 * exited 0 in time; otherwise show how it ended, its stderr and its stdout. */
#define NM_ASSERT_PROC_OK(p)                                                          \
    do {                                                                              \
        char nm_st_[96];                                                              \
        cr_assert(nm_proc_ok(p), "%s ended with %s\n--- stderr:\n%s--- stdout:\n%s", \
                  #p, nm_proc_status((p), nm_st_, sizeof nm_st_), (p)->err, (p)->out); \
    } while (0)

#endif
