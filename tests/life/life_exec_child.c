/* tests/life/life_exec_child.c — the small program life_fork starts with
 * posix_spawn and vfork+execve. It inherits LD_PRELOAD, so the allocator boots
 * again in it; it checks that it did (numamalloc_version found), allocates and
 * frees across the size range on two threads, and exits 0, or:
 *   3  not preloaded      4  a block lost its pattern or malloc failed
 *   5  pthread_create failed
 * Hang guard: alarm(20). */
#include <dlfcn.h>
#include <pthread.h>

#include "life/life.h"

static int work(uint64_t seed)
{
    int bad = 0;
    life_blk_t *keep[16] = { 0 };
    for (uint64_t i = 0; i < 200; i++) {
        life_blk_t *b = life_new(life_mix(seed + i), 10);
        if (b == NULL) { bad++; continue; }
        life_blk_t **slot = &keep[i % 16];
        if (*slot) { if (!life_ok(*slot)) bad++; free(*slot); }
        *slot = b;
    }
    for (int i = 0; i < 16; i++) if (keep[i]) { if (!life_ok(keep[i])) bad++; free(keep[i]); }
    return bad;
}

static void *thread_main(void *arg)
{
    return (void *)(uintptr_t)work((uint64_t)(uintptr_t)arg);
}

int main(int argc, char **argv)
{
    alarm(20);
    if (dlsym(RTLD_DEFAULT, "numamalloc_version") == NULL) return 3;
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 10) << 20 : 0;
    pthread_t t;
    if (pthread_create(&t, NULL, thread_main, (void *)(uintptr_t)(seed | 1)) != 0) return 5;
    int bad = work(seed);
    void *res = NULL;
    pthread_join(t, &res);
    return bad || res ? 4 : 0;
}
