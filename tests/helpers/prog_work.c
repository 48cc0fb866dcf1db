/* tests/helpers/prog_work.c — a small, correct, deterministic program.
 *
 * Builds a hash table of strings, sorts them, grows and shrinks buffers with
 * realloc, uses aligned and zeroed allocations and frees everything, printing
 * results through stdio. Its output depends only on its arguments, never on the
 * allocator or the environment, so tests run it with and without the preload, and
 * with different NUMAMALLOC_* settings, and compare stdout. Exits 0, or 1 if a
 * check inside fails. Usage: prog_work [ROUNDS] (default 3). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next;
    char *key;
    size_t count;
} entry_t;

static uint64_t rng = 0x1234567887654321ull;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

static int cmp_entry(const void *a, const void *b)
{
    const entry_t *x = *(entry_t *const *)a, *y = *(entry_t *const *)b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    return strcmp(x->key, y->key);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 3;
    int bad = 0;
    for (int r = 0; r < rounds; r++) {
        enum { NB = 4096 };
        entry_t **table = calloc(NB, sizeof *table);
        size_t nentries = 0;
        for (int i = 0; i < 50000; i++) {
            char word[48];
            int len = 1 + (int)(next() % 3);
            for (int k = 0; k < len; k++) word[k] = (char)('a' + next() % 6);
            word[len] = '\0';
            uint64_t h = 1469598103934665603ull;
            for (char *c = word; *c; c++) h = (h ^ (unsigned char)*c) * 1099511628211ull;
            entry_t **slot = &table[h % NB];
            while (*slot && strcmp((*slot)->key, word) != 0) slot = &(*slot)->next;
            if (*slot == NULL) {
                *slot = calloc(1, sizeof **slot);
                (*slot)->key = strdup(word);
                nentries++;
            }
            (*slot)->count++;
        }
        entry_t **all = malloc(nentries * sizeof *all);
        size_t k = 0;
        for (int b = 0; b < NB; b++) for (entry_t *e = table[b]; e; e = e->next) all[k++] = e;
        qsort(all, nentries, sizeof *all, cmp_entry);
        printf("round %d: %zu distinct words; top:", r, nentries);
        for (size_t i = 0; i < 5 && i < nentries; i++) printf(" %s=%zu", all[i]->key, all[i]->count);
        printf("\n");

        /* realloc growth and shrink keep the contents */
        unsigned char *buf = NULL;
        size_t n = 0;
        uint64_t sum = 0;
        for (int step = 0; step < 40; step++) {
            size_t nn = step < 22 ? (n + 1) * 2 : n / 2 + 1;
            unsigned char *nb = realloc(buf, nn);
            if (nb == NULL) { bad++; break; }
            for (size_t i = 0; i < (n < nn ? n : nn); i++) if (nb[i] != (unsigned char)(i * 31)) { bad++; break; }
            for (size_t i = 0; i < nn; i++) nb[i] = (unsigned char)(i * 31);
            buf = nb;
            n = nn;
            sum += n;
        }
        free(buf);
        printf("round %d: realloc sizes sum %llu\n", r, (unsigned long long)sum);

        /* aligned and zeroed blocks */
        static const size_t aligns[] = { 16, 64, 256, 4096, 65536 };
        for (unsigned a = 0; a < sizeof aligns / sizeof aligns[0]; a++) {
            void *p = NULL;
            if (posix_memalign(&p, aligns[a], 1000 + a * 5000) != 0 || ((uintptr_t)p % aligns[a])) bad++;
            free(p);
            unsigned char *z = calloc(1, 100000 + a);
            for (size_t i = 0; z && i < 100000 + a; i++) if (z[i]) { bad++; break; }
            free(z);
        }
        for (size_t i = 0; i < nentries; i++) { free(all[i]->key); free(all[i]); }
        free(all);
        free(table);
    }
    printf("checks: %s\n", bad ? "FAILED" : "ok");
    return bad ? 1 : 0;
}
