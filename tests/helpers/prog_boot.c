/* tests/helpers/prog_boot.c — start-up and libraries that allocate behind our back.
 *
 * Always: a constructor with priority 101 (the first of the program's own) calls
 * malloc, calloc, realloc and free before main; main checks what it kept.
 * Usage: prog_boot MODE, MODE one of
 *   ctor     only the constructor check
 *   dlopen   dlopen() libunwind.so.8 and libnuma.so.1 after start (20 times, with
 *            dlclose: their constructors allocate) and call into them
 *   dlsym    dlsym() of missing and present names and dlerror() in a loop, from the
 *            main thread and two others (dlerror's per-thread buffer is malloc'ed
 *            and freed by glibc at thread exit, after the allocator's key destructor)
 *   libc     libc functions that allocate internally: getaddrinfo, iconv,
 *            regcomp, getpwuid, setlocale, open_memstream, scandir, qsort, strdup
 * Prints "ctor101: ok" and "<mode>: ok", exits 0; otherwise exits 1. */
#include <dirent.h>
#include <dlfcn.h>
#include <iconv.h>
#include <locale.h>
#include <netdb.h>
#include <pthread.h>
#include <pwd.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "helpers/spawn.h"

static char *ctor_block;
static int *ctor_zeros;

__attribute__((constructor(101))) static void early(void)
{
    char *p = malloc(10);
    if (p) { strcpy(p, "early"); p = realloc(p, 100000); }
    if (p) strcat(p, " constructor");
    ctor_block = p;
    ctor_zeros = calloc(1000, sizeof(int));
    void *tmp = malloc(3u << 20);
    free(tmp);
}

static int check_ctor(void)
{
    if (ctor_block == NULL || strcmp(ctor_block, "early constructor") != 0) return 1;
    if (ctor_zeros == NULL) return 1;
    for (int i = 0; i < 1000; i++) if (ctor_zeros[i]) return 1;
    free(ctor_block);
    free(ctor_zeros);
    return 0;
}

static int run_dlopen(void)
{
    int bad = 0;
    for (int round = 0; round < 20; round++) {
        void *unw = dlopen("libunwind.so.8", RTLD_NOW | RTLD_LOCAL);
        void *numa = dlopen("libnuma.so.1", RTLD_NOW | RTLD_LOCAL);
        if (unw == NULL || numa == NULL) { nm_say(2, "dlopen: %s\n", dlerror()); return 1; }
        int (*bt)(void **, int) = (int (*)(void **, int))dlsym(unw, "unw_backtrace");
        int (*avail)(void) = (int (*)(void))dlsym(numa, "numa_available");
        void *(*cpumask)(void) = (void *(*)(void))dlsym(numa, "numa_allocate_cpumask");
        void (*mask_free)(void *) = (void (*)(void *))dlsym(numa, "numa_bitmask_free");
        if (!bt || !avail || !cpumask || !mask_free) { nm_say(2, "dlsym: %s\n", dlerror()); return 1; }
        void *frames[32];
        if (bt(frames, 32) < 1) bad++;
        int a = avail();
        if (a != 0 && a != -1) bad++;
        if (a == 0) {
            void *m = cpumask();
            if (m == NULL) bad++; else mask_free(m);
        }
        char *s = malloc((size_t)round * 1000 + 1);
        if (s == NULL) bad++;
        free(s);
        dlclose(numa);
        dlclose(unw);
    }
    return bad;
}

static void *dlsym_loop(void *arg)
{
    int n = (int)(intptr_t)arg, bad = 0;
    char name[64];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "no_such_symbol_%d", i);
        if (dlsym(RTLD_DEFAULT, name) != NULL) bad++;
        const char *e = dlerror();
        if (e == NULL || strstr(e, name) == NULL) bad++;
        if (dlsym(RTLD_DEFAULT, i % 2 ? "malloc" : "pthread_create") == NULL) bad++;
        if (dlerror() != NULL) bad++;
    }
    return (void *)(intptr_t)bad;
}

static int run_dlsym(void)
{
    pthread_t t[2];
    for (int i = 0; i < 2; i++) if (pthread_create(&t[i], NULL, dlsym_loop, (void *)(intptr_t)5000) != 0) return 1;
    int bad = (int)(intptr_t)dlsym_loop((void *)(intptr_t)10000);
    for (int i = 0; i < 2; i++) { void *r; pthread_join(t[i], &r); bad += (int)(intptr_t)r; }
    return bad;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }
static int no_dots(const struct dirent *d) { return d->d_name[0] != '.'; }

static int run_libc(void)
{
    int bad = 0;
    if (setlocale(LC_ALL, "C.UTF-8") == NULL) setlocale(LC_ALL, "C");
    for (int round = 0; round < 100; round++) {
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res = NULL;
        hints.ai_flags = AI_NUMERICHOST;
        if (getaddrinfo("127.0.0.1", "80", &hints, &res) != 0 || res == NULL) bad++;
        else freeaddrinfo(res);
        hints.ai_flags = AI_PASSIVE;
        res = NULL;
        if (getaddrinfo(NULL, "8080", &hints, &res) != 0 || res == NULL) bad++;
        else freeaddrinfo(res);
        res = NULL;
        hints.ai_flags = 0;                         /* /etc/hosts through NSS; may fail, must not crash */
        if (getaddrinfo("localhost", "22", &hints, &res) == 0 && res) freeaddrinfo(res);

        iconv_t cd = iconv_open("UTF-16LE", "ISO-8859-1");
        if (cd == (iconv_t)-1) bad++;
        else {
            char in[] = "caf\xe9 cr\xe8me", out[64];
            char *ip = in, *op = out;
            size_t il = strlen(in), ol = sizeof out;
            if (iconv(cd, &ip, &il, &op, &ol) == (size_t)-1 || il != 0 || sizeof out - ol != 2 * strlen(in)) bad++;
            iconv_close(cd);
        }

        regex_t re;
        if (regcomp(&re, "^([a-z]+)-([0-9]{2,})$", REG_EXTENDED) != 0) bad++;
        else {
            regmatch_t m[3];
            if (regexec(&re, "numa-2024", 3, m, 0) != 0 || m[2].rm_so != 5) bad++;
            regfree(&re);
        }

        struct passwd *pw = getpwuid(0);
        if (pw == NULL || strcmp(pw->pw_name, "root") != 0) bad++;

        char *buf = NULL;
        size_t len = 0;
        FILE *ms = open_memstream(&buf, &len);
        if (ms == NULL) bad++;
        else {
            for (int i = 0; i < 500; i++) fprintf(ms, "%d:%s;", i, "abcdefghij");
            fclose(ms);
            if (len < 500 * 12) bad++;
            free(buf);
        }

        struct dirent **ents = NULL;
        int n = scandir("/", &ents, no_dots, alphasort);
        if (n <= 0) bad++;
        for (int i = 0; i < n; i++) free(ents[i]);
        free(ents);

        char *words[300];
        for (int i = 0; i < 300; i++) {
            char tmp[32];
            snprintf(tmp, sizeof tmp, "w%07d", (i * 7919) % 300);
            words[i] = strdup(tmp);
            if (words[i] == NULL) bad++;
        }
        qsort(words, 300, sizeof words[0], cmp_str);
        for (int i = 0; i < 300; i++) {
            char tmp[32];
            snprintf(tmp, sizeof tmp, "w%07d", i);
            if (strcmp(words[i], tmp) != 0) bad++;
            free(words[i]);
        }
    }
    return bad;
}

int main(int argc, char **argv)
{
    if (argc != 2) { nm_say(2, "usage: prog_boot ctor|dlopen|dlsym|libc\n"); return 2; }
    if (check_ctor()) { nm_say(2, "ctor101: the constructor's blocks are wrong\n"); return 1; }
    nm_say(1, "ctor101: ok\n");
    int bad;
    if (strcmp(argv[1], "ctor") == 0) bad = 0;
    else if (strcmp(argv[1], "dlopen") == 0) bad = run_dlopen();
    else if (strcmp(argv[1], "dlsym") == 0) bad = run_dlsym();
    else if (strcmp(argv[1], "libc") == 0) bad = run_libc();
    else { nm_say(2, "unknown mode %s\n", argv[1]); return 2; }
    if (bad) { nm_say(2, "%s: %d failures\n", argv[1], bad); return 1; }
    nm_say(1, "%s: ok\n", argv[1]);
    return 0;
}
