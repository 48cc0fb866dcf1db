/* tests/helpers/prog_dlopen_ctor.c — dlopen() of a library whose constructor starts
 * a thread that allocates, and joins it (tests/helpers/prog_ctor_lib.c, libnmctor.so).
 *
 *   prog_dlopen_ctor alloc|keydtor [ROUNDS]
 *
 * The constructor runs while dlopen() holds the dynamic loader's lock; the new
 * thread's first allocator call must not need that lock. MODE says what the thread
 * does (see prog_ctor_lib.c). ROUNDS (default 3) dlopen/dlclose pairs, each running
 * the constructor again in a new thread. Prints "dlopen <mode>: ok" and exits 0 when
 * every dlopen returned and every block held its contents; a dlopen that has not
 * returned after HANG_S seconds prints "hang: ..." on stderr and exits 3. */
#include <dlfcn.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "helpers/spawn.h"

#ifndef NM_CTOR_LIB
#define NM_CTOR_LIB "libnmctor.so"
#endif

enum { HANG_S = 10 };
static volatile sig_atomic_t round_no;

static void on_alarm(int sig)
{
    (void)sig;
    nm_say(2, "hang: dlopen of %s (round %d) has not returned after %d s: the constructor's thread is stuck\n",
           NM_CTOR_LIB, (int)round_no, HANG_S);
    _exit(3);
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "alloc") && strcmp(argv[1], "keydtor"))) {
        nm_say(2, "usage: prog_dlopen_ctor alloc|keydtor [ROUNDS]\n");
        return 2;
    }
    int rounds = argc > 2 ? atoi(argv[2]) : 3;
    setenv("NM_CTOR_MODE", argv[1], 1);
    signal(SIGALRM, on_alarm);
    alarm(HANG_S);
    for (int r = 0; r < rounds; r++) {
        round_no = r;
        void *h = dlopen(NM_CTOR_LIB, RTLD_NOW | RTLD_LOCAL);
        if (h == NULL) { nm_say(2, "dlopen: %s\n", dlerror()); return 1; }
        int (*result)(void) = (int (*)(void))dlsym(h, "nm_ctor_result");
        int got = result ? result() : -2;
        if (got != 3) { nm_say(2, "round %d: the constructor's thread saw %d good blocks of 3\n", r, got); return 1; }
        if (dlclose(h) != 0) { nm_say(2, "dlclose: %s\n", dlerror()); return 1; }
    }
    alarm(0);
    nm_say(1, "dlopen %s: ok\n", argv[1]);
    return 0;
}
