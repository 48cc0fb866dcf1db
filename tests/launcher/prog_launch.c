/* tests/launcher/prog_launch.c — the program tests/launcher/launcher-test.sh runs
 * through the launcher (scripts/numamalloc). Not linked to numamalloc: whether it runs
 * on it is asked at run time (dlsym of numamalloc_block_info, which only the library
 * defines).
 *
 *   prog_launch info           "block_info rc=R kind=K usable=U" for a malloc(100)
 *                              block, or "block_info missing" without the library
 *   prog_launch env            "pid P", LD_PRELOAD and every NUMAMALLOC_* variable,
 *                              one "NAME=VALUE" per line, sorted as in environ
 *   prog_launch args ARG...    each argument on its own line, as received
 *   prog_launch mark FILE      create FILE (the test's proof that it was started)
 *   prog_launch exit N         exit(N) after a malloc/free
 *   prog_launch signal N       raise(N) with the default action
 *   prog_launch marker         whether libmark.so (a test preload) is loaded too
 *   prog_launch term           print "ready", wait for SIGTERM, then exit(42) from the
 *                              handler (the exit dump is written)
 */
#include <dlfcn.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "numamalloc.h"             /* the declarations only: nothing is linked */

extern char **environ;

static void on_term(int s) { (void)s; exit(42); }

int main(int argc, char **argv)
{
    if (argc < 2) return 64;
    const char *m = argv[1];
    if (!strcmp(m, "info")) {
        int (*bi)(const void *, struct numamalloc_block_info *) =
            (int (*)(const void *, struct numamalloc_block_info *))dlsym(RTLD_DEFAULT, "numamalloc_block_info");
        if (bi == NULL) { printf("block_info missing\n"); return 0; }
        void *p = malloc(100);
        struct numamalloc_block_info in;
        memset(&in, 0, sizeof in);
        int rc = bi(p, &in);
        printf("block_info rc=%d kind=%d usable=%zu\n", rc, in.kind, in.usable_size);
        free(p);
        return 0;
    }
    if (!strcmp(m, "env")) {
        printf("pid %d\n", (int)getpid());
        for (char **e = environ; *e; e++)
            if (!strncmp(*e, "NUMAMALLOC_", 11) || !strncmp(*e, "LD_PRELOAD=", 11)) printf("%s\n", *e);
        return 0;
    }
    if (!strcmp(m, "args")) {
        for (int i = 2; i < argc; i++) printf("%s\n", argv[i]);
        return 0;
    }
    if (!strcmp(m, "mark") && argc == 3) {
        FILE *f = fopen(argv[2], "w");
        if (f) fclose(f);
        return f ? 0 : 1;
    }
    if (!strcmp(m, "exit") && argc == 3) {
        free(malloc(1000));
        return atoi(argv[2]);
    }
    if (!strcmp(m, "signal") && argc == 3) {
        signal(atoi(argv[2]), SIG_DFL);
        raise(atoi(argv[2]));
        return 99;
    }
    if (!strcmp(m, "marker")) {
        printf("marker %s\n", dlsym(RTLD_DEFAULT, "nm_launch_test_marker") ? "loaded" : "missing");
        return 0;
    }
    if (!strcmp(m, "term")) {
        signal(SIGTERM, on_term);
        void *p = malloc(5000);
        /* write(2), not stdio: exit() from the handler must find no half-done buffer */
        static const char ready[] = "ready\n";
        if (p == NULL || write(1, ready, sizeof ready - 1) != (ssize_t)(sizeof ready - 1)) return 1;
        for (;;) pause();
    }
    return 64;
}
