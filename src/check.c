/* numamalloc — misuse reports and NUMAMALLOC_CHECK=1's canaries and verdicts.
 *
 * A pointer that is not a live block of ours (foreign, interior, already freed) is
 * counted and left alone; under NUMAMALLOC_CHECK=1 the process aborts with a message
 * naming the function, the pointer and why. Check mode also catches writes past the
 * end of a block: every block is taken with at least one byte to spare (a small or
 * medium request that fills its class takes the next; large ones ask for one byte
 * more) and the first up to NM_CANARY_MAX spare bytes get a pattern that free and
 * realloc verify. The pattern depends on the offset and always has its top bit set,
 * so an off-by-one NUL or ASCII byte always shows. Where the size asked for is kept
 * is each block kind's business (slab.c, large.c); this file only judges.
 * No locks, no allocation: any file may call it. */
#include "numamalloc/internal.h"

void nm_invalid_pointer(const char *fn, const void *p, const char *why)
{
    nm_gstat_add(NM_C_invalid_free, 1);
    if (nm_opt.check)
        nm_fatal("%s(): invalid pointer %p: %s (NUMAMALLOC_CHECK=1: aborting)", fn, p, why);
}

static inline unsigned char canary_byte(size_t off) { return (unsigned char)(0x80 | ((off * 37) & 0x7f)); }

void nm_canary_fill(void *p, size_t req, size_t usable)
{
    unsigned char *b = p;
    size_t end = usable - req > NM_CANARY_MAX ? req + NM_CANARY_MAX : usable;
    for (size_t i = req; i < end; i++) b[i] = canary_byte(i);
}

size_t nm_canary_check(const void *p, size_t req, size_t usable)
{
    const unsigned char *b = p;
    size_t end = usable - req > NM_CANARY_MAX ? req + NM_CANARY_MAX : usable;
    for (size_t i = req; i < end; i++)
        if (b[i] != canary_byte(i)) return i;
    return NM_CANARY_OK;
}

bool nm_verdict_ok(const char *fn, const void *p, nm_verdict_t v)
{
    if (v.why) { nm_invalid_pointer(fn, p, v.why); return false; }
    if (v.bad != NM_CANARY_OK) {
        nm_gstat_add(NM_C_invalid_free, 1);
        nm_fatal("%s(): heap buffer overflow past %lu-byte block %p: byte at offset %lu overwritten "
                 "(NUMAMALLOC_CHECK=1: aborting)", fn, (unsigned long)v.req, p, (unsigned long)v.bad);
    }
    return true;
}
