/* tests/fault/fault_secure.c — NUMAMALLOC_FAULT in a set-uid (AT_SECURE) process.
 *
 * Linked with the fault-injection build (a set-uid program ignores LD_PRELOAD with
 * a path). tests/fault/fault-test.sh copies it, makes the copy set-uid to another
 * user and runs it with NUMAMALLOC_FAULT=mmap:p=1: the variable must be ignored
 * (with a warning), so the 8 MiB block is served. Without AT_SECURE (the plain
 * binary) the same setting makes it fail: that run shows the check can fail.
 * Prints "secure=0|1 malloc=ok|null"; exits 0. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>

int main(void)
{
    size_t n = (size_t)8 << 20;
    char *p = malloc(n);
    if (p) memset(p, 1, n);
    printf("secure=%d malloc=%s\n", getauxval(AT_SECURE) != 0, p ? "ok" : "null");
    free(p);
    return 0;
}
