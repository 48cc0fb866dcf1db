/* tests/obs/prog_obs_dl_lib.c — built as libnmobsdl.so, a small library that
 * tests/obs/prog_obs_guard.c loads and unloads in a loop. Its constructor and
 * destructor allocate and free a few hundred blocks (with -fno-builtin, real calls),
 * so every dlopen and dlclose spends its time in the allocator while the dynamic
 * loader holds its lock: with the profiler on, many of them are sampled. */
#include <stdlib.h>
#include <string.h>

enum { KEPT = 128 };
static char *kept[KEPT];

__attribute__((constructor)) static void ctor(void)
{
    for (int i = 0; i < KEPT; i++) {
        kept[i] = malloc(500 + (size_t)i * 8);
        if (kept[i]) memset(kept[i], i, 64);
        free(malloc(1000 + (size_t)i * 16));
    }
    free(malloc(70000));
}

__attribute__((destructor)) static void dtor(void)
{
    for (int i = 0; i < KEPT; i++) { free(kept[i]); kept[i] = NULL; }
}

int nm_obs_dl_answer(void) { return 42; }
