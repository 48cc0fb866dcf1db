/* tests/fuzz/replay.c — run fuzz inputs without libFuzzer, on whatever malloc the process has.
 *
 *   nmf_replay check [--allow-system] PATH...
 *       every input once through the fuzz target's engine, threads as encoded, every check
 *       on; PATH is a file or a directory (its files in name order). Without
 *       --allow-system it refuses to run unless numamalloc serves the process (preloaded).
 *       make fuzz-test runs the committed corpus and regressions this way under
 *       LD_PRELOAD=build/libnumamalloc.so, the release build.
 *   nmf_replay diff [-o TRANSCRIPT] [-n SEQS] [-s SEED] [-t TOUCH_MIB] PATH...
 *       the differential half: the inputs, then SEQS sequences from a fixed PRNG, all
 *       single-threaded and in order, each operation writing one transcript line of what
 *       any correct malloc must reproduce (see nmf.h). Prints the FNV-1a hash of the whole
 *       transcript; tests/fuzz/differential.sh compares a glibc run with a numamalloc run.
 * Exit status 0; a failed check abort()s with a message naming the operation. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz/nmf.h"

typedef void (*input_fn)(const uint8_t *data, size_t size, void *ctx);

static uint8_t *read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) { fprintf(stderr, "nmf_replay: %s: %s\n", path, strerror(errno)); exit(2); }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    size_t k;
    while (buf && (k = fread(buf + n, 1, cap - n, f)) > 0) {
        n += k;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    if (buf == NULL) { fprintf(stderr, "nmf_replay: out of memory reading %s\n", path); exit(2); }
    fclose(f);
    *size = n;
    return buf;
}

static int only_files(const struct dirent *d) { return d->d_name[0] != '.'; }

/* a file, or the files of a directory in name order (deterministic across runs) */
static unsigned long each_input(const char *path, input_fn fn, void *ctx)
{
    struct stat st;
    if (stat(path, &st) != 0) { fprintf(stderr, "nmf_replay: %s: %s\n", path, strerror(errno)); exit(2); }
    if (!S_ISDIR(st.st_mode)) {
        size_t n;
        uint8_t *d = read_file(path, &n);
        fn(d, n, ctx);
        free(d);
        return 1;
    }
    struct dirent **ents;
    int k = scandir(path, &ents, only_files, alphasort);
    if (k < 0) { fprintf(stderr, "nmf_replay: %s: %s\n", path, strerror(errno)); exit(2); }
    unsigned long count = 0;
    for (int i = 0; i < k; i++) {
        char full[4096];
        snprintf(full, sizeof(full), "%s/%s", path, ents[i]->d_name);
        count += each_input(full, fn, ctx);
        free(ents[i]);
    }
    free(ents);
    return count;
}

static void check_one(const uint8_t *d, size_t n, void *ctx)
{
    (void)ctx;
    nmf_run(d, n, false, NULL, NMF_TOUCH_MAX_FUZZ);
}

typedef struct { nmf_transcript_t *tr; size_t touch; } diff_ctx_t;

static void diff_one(const uint8_t *d, size_t n, void *ctx)
{
    diff_ctx_t *c = ctx;
    nmf_run(d, n, true, c->tr, c->touch);
    c->tr->seq++;
}

static uint64_t xorshift(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static int usage(void)
{
    fprintf(stderr, "usage: nmf_replay check [--allow-system] PATH...\n"
                    "       nmf_replay diff [-o TRANSCRIPT] [-n SEQS] [-s SEED] [-t TOUCH_MIB] PATH...\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2) return usage();
    bool nm = nmf_setup();
    if (strcmp(argv[1], "check") == 0) {
        int i = 2;
        bool allow = false;
        if (i < argc && strcmp(argv[i], "--allow-system") == 0) { allow = true; i++; }
        if (!nm && !allow) {
            fprintf(stderr, "nmf_replay: numamalloc does not serve this process (preload it, or --allow-system)\n");
            return 2;
        }
        unsigned long inputs = 0;
        for (; i < argc; i++) inputs += each_input(argv[i], check_one, NULL);
        printf("nmf_replay check: %lu inputs passed on %s\n", inputs, nm ? "numamalloc" : "the system malloc");
        nmf_summary(stdout);
        return 0;
    }
    if (strcmp(argv[1], "diff") != 0) return usage();
    const char *out = NULL;
    unsigned long seqs = 0;
    uint64_t seed = 1;
    size_t touch = (size_t)8 << 20;
    int i = 2;
    for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        if (strcmp(argv[i], "-o") == 0) out = argv[i + 1];
        else if (strcmp(argv[i], "-n") == 0) seqs = strtoul(argv[i + 1], NULL, 0);
        else if (strcmp(argv[i], "-s") == 0) seed = strtoull(argv[i + 1], NULL, 0);
        else if (strcmp(argv[i], "-t") == 0) touch = strtoull(argv[i + 1], NULL, 0) << 20;
        else return usage();
    }
    nmf_transcript_t tr = { .hash = NMF_HASH_INIT };
    if (out && (tr.out = fopen(out, "w")) == NULL) { fprintf(stderr, "nmf_replay: %s: %s\n", out, strerror(errno)); return 2; }
    diff_ctx_t c = { &tr, touch };
    unsigned long inputs = 0;
    for (; i < argc; i++) inputs += each_input(argv[i], diff_one, &c);
    /* generated sequences: 64..575 bytes each, from one fixed seed */
    uint64_t s = seed * 0x9e3779b97f4a7c15ull | 1;
    uint8_t buf[576];
    for (unsigned long k = 0; k < seqs; k++) {
        size_t n = 64 + xorshift(&s) % 512;
        for (size_t j = 0; j < n; j++) buf[j] = (uint8_t)(xorshift(&s) >> 32);
        diff_one(buf, n, &c);
    }
    if (tr.out) fclose(tr.out);
    printf("nmf_replay diff: %lu inputs + %lu generated, %lu operations, transcript hash %016" PRIx64 " (%s)\n",
           inputs, seqs, tr.lines, tr.hash, nm ? "numamalloc" : "system malloc");
    return 0;
}
