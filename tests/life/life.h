/* tests/life/life.h — what the lifecycle helpers (tests/life/life_*.c) share:
 * a deterministic mixer, blocks that carry a check pattern (so a block handed out
 * twice, or written after its free, is seen by whoever checks it next), the size
 * mix, and /proc/self/status readings. Everything here is static inline: each
 * helper is one .c file linked with tests/helpers/spawn.o (nm_say, the JSON
 * reader). Nothing here allocates or uses stdio: helpers fork and take signals. */
#ifndef NM_LIFE_H
#define NM_LIFE_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers/spawn.h"

static inline uint64_t life_mix(uint64_t x)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* A size from r: 80% small classes up to 2 KiB, 15% up to 32 KiB (the largest
 * slab classes), the rest medium (fallback arena, 40..440 KiB) except large_permille
 * per thousand (at most 50) large (own mapping, 1..3 MiB). */
static inline size_t life_size(uint64_t r, unsigned large_permille)
{
    unsigned k = (unsigned)(r % 1000);
    if (k < 800) return (size_t)(r >> 10) % 2048 + 16;
    if (k < 950) return (size_t)(r >> 10) % 30000 + 2049;
    if (k >= 1000 - large_permille) return (size_t)(r >> 10) % (2u << 20) + (1u << 20);
    return (size_t)(r >> 10) % 400000 + 40000;
}

/* A block with its length and tag at the front and the pattern over its first and
 * last 64 bytes of payload (the whole block is not written: large blocks would make
 * the tests measure memset). */
typedef struct life_blk {
    size_t n;                /* bytes, header included */
    uint64_t tag;
    unsigned char data[];
} life_blk_t;

static inline void life_fill(life_blk_t *b, size_t n, uint64_t tag)
{
    b->n = n;
    b->tag = tag;
    size_t body = n - sizeof *b, head = body < 64 ? body : 64;
    for (size_t i = 0; i < head; i++) b->data[i] = (unsigned char)(tag + i);
    if (body >= 128)
        for (size_t i = body - 64; i < body; i++) b->data[i] = (unsigned char)((tag >> 8) ^ i);
}

static inline bool life_ok(const life_blk_t *b)
{
    if (b->n < sizeof *b) return false;
    size_t body = b->n - sizeof *b, head = body < 64 ? body : 64;
    for (size_t i = 0; i < head; i++) if (b->data[i] != (unsigned char)(b->tag + i)) return false;
    if (body >= 128)
        for (size_t i = body - 64; i < body; i++) if (b->data[i] != (unsigned char)((b->tag >> 8) ^ i)) return false;
    return true;
}

/* malloc'ed and filled block of life_size(tag, large_permille) bytes, or NULL */
static inline life_blk_t *life_new(uint64_t tag, unsigned large_permille)
{
    size_t n = life_size(tag, large_permille);
    if (n < sizeof(life_blk_t)) n = sizeof(life_blk_t);
    life_blk_t *b = malloc(n);
    if (b) life_fill(b, n, tag);
    return b;
}

/* "VmRSS" or "VmHWM" (or any "Name:  N kB" line) of /proc/self/status, in bytes; 0 if
 * not found */
static inline uint64_t life_status_kb(const char *name)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) return 0;
    buf[n] = '\0';
    size_t len = strlen(name);
    for (char *l = buf; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (strncmp(l, name, len) != 0 || l[len] != ':') continue;
        char *p = l + len + 1;
        while (*p == ' ' || *p == '\t') p++;
        uint64_t v = 0;
        while (*p >= '0' && *p <= '9') v = v * 10 + (uint64_t)(*p++ - '0');
        return v << 10;
    }
    return 0;
}

/* reset VmHWM to the current RSS (Linux >= 4.0); false if the kernel refused */
static inline bool life_reset_hwm(void)
{
    int fd = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = write(fd, "5", 1) == 1;
    close(fd);
    return ok;
}

static inline double life_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

#endif
