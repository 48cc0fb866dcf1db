/* tests/helpers/prog_ctor_lib.c — built as libnmctor.so, a library that
 * tests/helpers/prog_dlopen_ctor.c loads with dlopen().
 *
 * Its constructor runs inside dlopen(), while the dynamic loader holds its own lock,
 * starts a thread and joins it before returning. NM_CTOR_MODE (read by the
 * constructor) says what the thread does:
 *   alloc    malloc/free small (100 B), medium (100 KB) and large (2 MiB) blocks,
 *            every byte written and checked: the thread's first allocator call
 *            happens while dlopen() is still running in the thread that waits for it
 *   keydtor  nothing but pthread_setspecific() of a key whose destructor allocates:
 *            the thread's first allocation happens in its key destructors
 * nm_ctor_result() reports what the constructor saw: the number of blocks that held
 * their contents (3 per thread), or -1 if the thread could not be started. Built with
 * -fno-builtin so that no malloc/free pair is folded away. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

int nm_ctor_result(void);

static const size_t sizes[] = { 100, 100 * 1000, 2u << 20 };
static pthread_key_t key;
static int result = -1;
static int blocks_ok;

/* every size, written whole and read back; the count of blocks that held */
static int alloc_all(void)
{
    int ok = 0;
    for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = malloc(sizes[i]);
        if (p == NULL) continue;
        memset(p, 0x40 + (int)i, sizes[i]);
        size_t bad = 0;
        for (size_t k = 0; k < sizes[i]; k += 4096) bad += p[k] != (unsigned char)(0x40 + i);
        bad += p[sizes[i] - 1] != (unsigned char)(0x40 + i);
        free(p);
        ok += bad == 0;
    }
    return ok;
}

static void key_dtor(void *v)
{
    (void)v;
    blocks_ok = alloc_all();
}

static void *thread_alloc(void *arg)
{
    (void)arg;
    blocks_ok = alloc_all();
    return NULL;
}

static void *thread_keydtor(void *arg)
{
    (void)arg;
    pthread_setspecific(key, &key);           /* not a malloc'ed pointer: nothing allocated yet */
    return NULL;
}

__attribute__((constructor)) static void ctor(void)
{
    const char *mode = getenv("NM_CTOR_MODE");
    int keydtor = mode && strcmp(mode, "keydtor") == 0;
    if (keydtor && pthread_key_create(&key, key_dtor) != 0) return;
    pthread_t t;
    if (pthread_create(&t, NULL, keydtor ? thread_keydtor : thread_alloc, NULL) != 0) return;
    pthread_join(t, NULL);
    result = blocks_ok;
}

int nm_ctor_result(void) { return result; }
