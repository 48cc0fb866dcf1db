/* tests/fuzz/nmf.h — the operation-sequence engine of tests/fuzz/fuzz_alloc.c, shared by
 * the libFuzzer target (fuzz_alloc.c itself) and the replay / differential driver
 * (tests/fuzz/replay.c). How input bytes decode is written at the top of fuzz_alloc.c. */
#ifndef NMF_H
#define NMF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* what a single-threaded run records: one line per operation with only what any
 * correct malloc must reproduce (NULL or not, errno, checksums of defined contents),
 * never a pointer, a usable size or whether realloc moved */
typedef struct {
    FILE         *out;      /* every line, or NULL for the hash alone */
    uint64_t      hash;     /* FNV-1a over every line; start at NMF_HASH_INIT */
    unsigned long lines;
    unsigned long seq;      /* which input: the first field of each line */
} nmf_transcript_t;

#define NMF_HASH_INIT 0xcbf29ce484222325ull

/* Resolve free_sized, free_aligned_sized and numamalloc_block_info in the running
 * process; true when numamalloc serves it (every block is then also checked with
 * numamalloc_block_info). Call once before nmf_run. */
bool nmf_setup(void);
/* Decode and run one input. single: every operation on the calling thread in input
 * order, deterministic; tr (single only): record the transcript. touch_max bounds the
 * bytes written per input (allocations past it shrink to < 64 KiB). A violated check
 * prints what, where and which operation, then abort()s. */
void nmf_run(const uint8_t *data, size_t size, bool single, nmf_transcript_t *tr, size_t touch_max);
/* one line: operations run, blocks verified and by which numamalloc kind */
void nmf_summary(FILE *f);

#define NMF_TOUCH_MAX_FUZZ ((size_t)64 << 20)

#endif
