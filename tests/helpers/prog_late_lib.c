/* tests/helpers/prog_late_lib.c — built as libnmlate.so, a library prog_exit links.
 *
 * Its destructor runs after the preloaded allocator's: the dynamic loader runs
 * destructors in the reverse order of constructors, and a library the program
 * needs is initialised before the LD_PRELOADed one (it sits after it in the search
 * list and nothing orders them otherwise). So by the time this destructor runs the
 * allocator has printed its exit dump (NUMAMALLOC_STATS=text), and the frees and
 * allocations here are the "after the dump" case: glibc and other libraries'
 * destructors do exactly this. prog_exit hands blocks over with nm_late_keep();
 * the destructor checks their contents, frees them, allocates and frees a few
 * more, and reports on stdout and stderr (the test checks the order on stderr). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void nm_late_keep(void *p, size_t n, unsigned seed);

enum { MAX_KEPT = 64 };
static struct { unsigned char *p; size_t n; unsigned seed; } kept[MAX_KEPT];
static int nkept;

static void out(int fd, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0) (void)!write(fd, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

void nm_late_keep(void *p, size_t n, unsigned seed)
{
    if (nkept < MAX_KEPT) kept[nkept++] = (typeof(kept[0])){ p, n, seed };
}

__attribute__((destructor)) static void late_destructor(void)
{
    int bad = 0;
    for (int i = 0; i < nkept; i++) {
        for (size_t k = 0; k < kept[i].n; k++)
            if (kept[i].p[k] != (unsigned char)(k * 7u + kept[i].seed)) { bad++; break; }
        free(kept[i].p);
    }
    /* allocate and free after the dump too, across the size ranges */
    static const size_t sizes[] = { 16, 200, 4000, 30000, 100000, 600000, 3u << 20 };
    for (int r = 0; r < 20; r++)
        for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            unsigned char *q = malloc(sizes[i]);
            if (q == NULL) { bad++; continue; }
            memset(q, r, sizes[i]);
            if (q[sizes[i] - 1] != (unsigned char)r) bad++;
            free(q);
        }
    out(2, "late destructor: after the dump\n");
    if (bad) out(1, "late destructor: %d bad blocks\n", bad);
    else out(1, "late destructor: freed %d blocks, allocated after the dump, ok\n", nkept);
    if (bad) _exit(3);
}
