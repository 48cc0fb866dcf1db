/* numamalloc benchmarks — the runner: starts a program (posix_spawn, so a vfork:
 * no copy of the runner's memory), waits for it with wait4 and prints, per run,
 * one JSON line with wall time, user and system CPU time and peak RSS.
 *
 *   nmrun [-n RUNS] [-o FILE] [-t SECONDS] [-E NAME=VALUE]... [-U NAME]... -- PROG ARG...
 *
 *   -n RUNS       run the program RUNS times in a row (start-up timing), default 1
 *   -o FILE       the program's stdout and stderr (default /dev/null); stdin is /dev/null
 *   -t SECONDS    kill the program's process group after this long (status "timeout")
 *   -E NAME=VAL   set in the program's environment only (LD_PRELOAD goes here, so the
 *                 runner itself never runs on the allocator being measured)
 *   -U NAME       remove from the program's environment
 *
 * Why C and not Python: the kernel carries the parent's peak RSS into an exec'd
 * child's ru_maxrss (exec_mmap: setmax_mm_hiwater_rss), so the runner must be small
 * (about 1 MB here; a Python runner would add 10 MB to every number), and
 * start-up timings need a cheap spawn. wait4's rusage covers the program and every
 * descendant it waited for (gcc's cc1 and as, sort's helpers). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static volatile sig_atomic_t child_pgid;   /* 0: no child running */
static volatile sig_atomic_t timed_out;

static void on_alarm(int sig)
{
    (void)sig;
    timed_out = 1;
    if (child_pgid) kill(-child_pgid, SIGKILL);
}

/* Ctrl-C or a kill of the harness: take the program's process group with us */
static void on_term(int sig)
{
    if (child_pgid) kill(-child_pgid, SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

static void usage(void)
{
    fprintf(stderr, "usage: nmrun [-n RUNS] [-o FILE] [-t SECONDS] [-E NAME=VALUE]... [-U NAME]... -- PROG ARG...\n");
    exit(2);
}

/* does env entry e ("NAME=VALUE") have the name n (a "NAME" or "NAME=VALUE")? */
static int same_name(const char *e, const char *n)
{
    size_t len = strcspn(n, "=");
    return strncmp(e, n, len) == 0 && e[len] == '=';
}

int main(int argc, char **argv)
{
    long runs = 1;
    double timeout = 0;
    const char *out = "/dev/null";
    const char *set[64], *unset[64];
    int nset = 0, nunset = 0, opt;
    while ((opt = getopt(argc, argv, "+n:o:t:E:U:")) != -1) {
        switch (opt) {
        case 'n': runs = strtol(optarg, NULL, 10); if (runs < 1) usage(); break;
        case 'o': out = optarg; break;
        case 't': timeout = strtod(optarg, NULL); break;
        case 'E': if (nset == 64 || !strchr(optarg, '=')) usage(); set[nset++] = optarg; break;
        case 'U': if (nunset == 64) usage(); unset[nunset++] = optarg; break;
        default: usage();
        }
    }
    if (optind >= argc) usage();
    char **prog = &argv[optind];

    /* the program's environment: ours, minus -U names and names -E replaces, plus -E */
    size_t n = 0;
    while (environ[n]) n++;
    char **env = calloc(n + (size_t)nset + 1, sizeof(char *));
    if (env == NULL) { perror("nmrun"); return 2; }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        int drop = 0;
        for (int j = 0; j < nunset && !drop; j++) drop = same_name(environ[i], unset[j]);
        for (int j = 0; j < nset && !drop; j++) drop = same_name(environ[i], set[j]);
        if (!drop) env[k++] = environ[i];
    }
    for (int j = 0; j < nset; j++) env[k++] = (char *)set[j];
    env[k] = NULL;

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;                 /* no SA_RESTART: wait4 returns EINTR */
    sigaction(SIGALRM, &sa, NULL);
    signal(SIGINT, on_term);
    signal(SIGTERM, on_term);
    signal(SIGHUP, on_term);

    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, out, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_t at;
    posix_spawnattr_init(&at);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP);
    posix_spawnattr_setpgroup(&at, 0);         /* own group: a timeout kills cc1 and as too */

    int worst = 0;
    for (long r = 0; r < runs; r++) {
        struct timespec t0, t1;
        pid_t pid;
        timed_out = 0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int e = posix_spawnp(&pid, prog[0], &fa, &at, prog, env);
        if (e) { fprintf(stderr, "nmrun: %s: %s\n", prog[0], strerror(e)); return 2; }
        child_pgid = pid;
        if (timeout > 0) {
            struct itimerval it = { { 0, 0 }, { (time_t)timeout, (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6) } };
            setitimer(ITIMER_REAL, &it, NULL);
        }
        int status;
        struct rusage ru;
        while (wait4(pid, &status, 0, &ru) < 0) {
            if (errno != EINTR) { perror("nmrun: wait4"); return 2; }
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        if (timeout > 0) {
            struct itimerval off = { { 0, 0 }, { 0, 0 } };
            setitimer(ITIMER_REAL, &off, NULL);
        }
        child_pgid = 0;
        char st[32];
        if (timed_out) { snprintf(st, sizeof st, "timeout"); worst = 1; }
        else if (WIFSIGNALED(status)) { snprintf(st, sizeof st, "signal %d", WTERMSIG(status)); worst = 1; }
        else { snprintf(st, sizeof st, "exit %d", WEXITSTATUS(status)); if (WEXITSTATUS(status)) worst = 1; }
        double wall = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
        double user = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6;
        double sys = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
        printf("{\"wall\": %.6f, \"user\": %.6f, \"sys\": %.6f, \"maxrss_kb\": %ld, \"status\": \"%s\"}\n",
               wall, user, sys, ru.ru_maxrss, st);
    }
    fflush(stdout);
    return worst;
}
