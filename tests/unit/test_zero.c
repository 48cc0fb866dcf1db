/* tests/unit/test_zero.c — zeroing for calloc of reused blocks (nm_os_zero_resident
 * in src/os.c, nm_zero_block in internal.h, and the large and medium calloc paths).
 *
 * Owns: every byte of the range reads zero afterwards, bytes outside it are kept,
 * unaligned heads and tails, pages that were never touched (or were purged) stay
 * out of memory, and calloc of a reused sparse block leaves it sparse. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "numamalloc/internal.h"

#define PG ((size_t)4096)

static bool resident(const void *p)
{
    unsigned char v = 0;
    cr_assert_eq(mincore((void *)p, PG, &v), 0, "mincore: %s", strerror(errno));
    return v & 1;
}

static unsigned resident_pages(const char *p, size_t n)
{
    unsigned k = 0;
    for (size_t off = 0; off < n; off += PG) k += resident(p + off);
    return k;
}

static char *map(size_t n)
{
    char *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    cr_assert_neq(p, MAP_FAILED);
    return p;
}

Test(zero, written_pages_are_zeroed_and_untouched_ones_stay_out)
{
    cr_assert_eq((size_t)sysconf(_SC_PAGESIZE), PG);
    const size_t pages = 1100;                    /* more than one pagemap read of 512 */
    char *p = map(pages * PG);
    static const size_t written[] = { 0, 1, 5, 511, 512, 513, 900, 1099 };
    for (size_t i = 0; i < NM_ARRAY_LEN(written); i++) memset(p + written[i] * PG, 0xa5, PG);
    /* an unaligned range: the head of page 0 and the tail of page 1099 are outside */
    char *from = p + 100, *to = p + pages * PG - 7;
    nm_os_zero_resident(from, (size_t)(to - from));
    for (size_t i = 0; i < 100; i++) cr_assert_eq((unsigned char)p[i], 0xa5, "head byte %zu outside the range", i);
    for (size_t i = 0; i < 7; i++) cr_assert_eq((unsigned char)to[i], 0xa5, "tail byte %zu outside the range", i);
    cr_assert_eq(resident_pages(p, pages * PG), NM_ARRAY_LEN(written), "only the written pages are in memory");
    for (char *q = from; q < to; q++) if (*q) cr_assert_fail("byte at +%zu not zero", (size_t)(q - p));
    munmap(p, pages * PG);
}

Test(zero, purged_pages_are_not_faulted_back_in)
{
    const size_t pages = 64;
    char *p = map(pages * PG);
    memset(p, 0x5a, pages * PG);
    cr_assert_eq(madvise(p + 8 * PG, 48 * PG, MADV_DONTNEED), 0);
    nm_os_zero_resident(p, pages * PG);
    cr_assert_eq(resident_pages(p, pages * PG), 16, "the purged pages stay out");
    for (size_t i = 0; i < pages * PG; i++) if (p[i]) cr_assert_fail("byte %zu not zero", i);
    munmap(p, pages * PG);
}

Test(zero, small_ranges_are_written_whole)
{
    char *p = map(4 * PG);
    memset(p, 1, 4 * PG);
    nm_os_zero_resident(p + 10, 3 * PG);
    for (size_t i = 10; i < 10 + 3 * PG; i++) cr_assert_eq(p[i], 0, "byte %zu", i);
    cr_assert_eq(p[9], 1);
    cr_assert_eq(p[10 + 3 * PG], 1);
    munmap(p, 4 * PG);
}

/* calloc of a large block the thread kept: the pages its last user never touched are
 * not brought in by the zeroing */
Test(zero, calloc_of_a_reused_sparse_large_block_stays_sparse)
{
    cr_assert(nm_process_init(), "allocator boot");
    cr_assert(nm_thread_cache() != NULL && nm_tcp->state == NM_T_ACTIVE, "thread start");
    const size_t n = (size_t)8 << 20;
    char *p = nm_malloc(n);
    cr_assert_not_null(p);
    for (size_t off = 0; off < n; off += 16 * PG) p[off] = 7;
    nm_free(p);
    char *q = nm_calloc(1, n);
    cr_assert_eq(q, p, "the thread's kept block serves the calloc");
    unsigned in = resident_pages(q, n);
    cr_assert_leq(in, n / (16 * PG), "%u pages in memory: the zeroing touched more than the written ones", in);
    for (size_t off = 0; off < n; off += 8) cr_assert_eq(*(uint64_t *)(q + off), 0, "+%zu", off);
    nm_free(q);
}
