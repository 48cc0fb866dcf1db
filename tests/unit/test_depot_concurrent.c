/* tests/unit/test_depot_concurrent.c — the depot, the slabs under it and the
 * remote-free path with several threads at once (src/tcache.c, src/depot.c,
 * src/slab.c, src/segment.c), through nm_malloc/nm_free of a booted white-box
 * allocator. Written for ThreadSanitizer (tests/sanitize.mk builds it with
 * -fsanitize=thread) but a plain test too: it checks what it can see.
 *
 * Threads come and go in waves; each allocates small blocks of every class, stamps
 * them with its id and a sequence number, frees most itself and swaps the others
 * into shared slots, freeing whatever another thread (alive, or gone: the slots
 * outlive the waves) left there after checking its stamp. Half the threads are
 * moved to the interleaved domain (the white-box way: their cache's domain and
 * free tag), so every swap between the halves is a remote free: the block goes
 * into a per-(domain, class) magazine and home to its own depot when that fills.
 * A decay thread runs decay passes meanwhile (working-set trims, spare slabs and
 * purges), a forced one every tenth pass.
 * At the end, with every thread gone (their exit handlers flushed their caches),
 * the slots freed and the main thread's caches flushed and a forced decay run,
 * every depot must hold no block: not one was lost or counted twice. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>

#include "numamalloc/internal.h"

enum { WAVES = 3, PER_WAVE = 4, ROUNDS = 2000, BATCH = 24, NSLOTS = 128 };

static _Atomic(uint64_t *) slots[NSLOTS];
static atomic_ulong bad, remote_moves;
static atomic_bool stop_decay;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* a block: [0] its stamp, [1] its size; bigger ones repeat the stamp in their last word */
static uint64_t *block_new(uint64_t stamp)
{
    size_t n = 16 + (size_t)(mix(stamp) % NM_SMALL_MAX);
    if (n > NM_SMALL_MAX) n = NM_SMALL_MAX;
    uint64_t *b = nm_malloc(n);
    if (b == NULL) return NULL;
    b[0] = stamp;
    b[1] = n;
    if (n >= 24) b[n / 8 - 1] = ~stamp;
    return b;
}

static void block_free(uint64_t *b)
{
    size_t n = b[1];
    if (n < 16 || n > NM_SMALL_MAX || (n >= 24 && b[n / 8 - 1] != ~b[0])) atomic_fetch_add(&bad, 1);
    nm_free(b);
}

static void *worker(void *arg)
{
    uint64_t id = (uint64_t)(uintptr_t)arg;
    nm_tcache_t *tc = nm_thread_cache();
    if (tc == NULL || tc->state != NM_T_ACTIVE) { atomic_fetch_add(&bad, 1); return NULL; }
    if (id % 2) {
        tc->domain = nm_dom_interleave;
        tc->free_tag_hi = (uint64_t)nm_pme_tag_make(nm_dom_interleave, NM_KIND_SLAB) << NM_PME_TAG_SHIFT;
    }
    for (uint64_t r = 0; r < ROUNDS; r++) {
        uint64_t *mine[BATCH];
        for (unsigned k = 0; k < BATCH; k++) {
            mine[k] = block_new(id << 40 | r << 8 | k);
            if (mine[k] == NULL) atomic_fetch_add(&bad, 1);
        }
        for (unsigned k = 0; k < BATCH; k++) {
            if (mine[k] == NULL) continue;
            if (k % 4 == 0) {
                uint64_t *old = atomic_exchange(&slots[mix(mine[k][0]) % NSLOTS], mine[k]);
                if (old == NULL) continue;
                if (nm_pme_domain(nm_pagemap_get((uintptr_t)old)) != tc->domain) atomic_fetch_add(&remote_moves, 1);
                block_free(old);
            } else {
                block_free(mine[k]);
            }
        }
    }
    return NULL;                          /* the pthread key destructor flushes the cache */
}

static void *decayer(void *arg)
{
    (void)arg;
    for (unsigned i = 0; !atomic_load(&stop_decay); i++) {
        nm_decay(i % 10 == 9);
        struct timespec ts = { 0, 200 * 1000 };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

Test(depot_concurrent, threads_in_waves_exchange_magazines_and_free_remotely)
{
    cr_assert(nm_process_init(), "allocator boot");
    nm_tcache_t *self = nm_thread_cache();
    cr_assert(self != NULL && self->state == NM_T_ACTIVE);
    cr_assert_gt(nm_ndomains, 1, "a node domain and the interleaved one");

    pthread_t dec;
    cr_assert_eq(pthread_create(&dec, NULL, decayer, NULL), 0);
    for (unsigned w = 0; w < WAVES; w++) {
        pthread_t t[PER_WAVE];
        for (unsigned i = 0; i < PER_WAVE; i++)
            cr_assert_eq(pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(w * PER_WAVE + i + 1)), 0);
        for (unsigned i = 0; i < PER_WAVE; i++) pthread_join(t[i], NULL);
    }
    atomic_store(&stop_decay, true);
    pthread_join(dec, NULL);

    cr_assert_eq(atomic_load(&bad), 0, "%lu blocks lost their stamp or could not be allocated", atomic_load(&bad));
    cr_assert_gt(atomic_load(&remote_moves), 100, "only %lu remote frees: the case tests little", atomic_load(&remote_moves));
    cr_assert_eq(nm_gstat_get(NM_C_threads_live), 1, "every worker's cache retired");

    for (unsigned s = 0; s < NSLOTS; s++) {
        uint64_t *b = atomic_exchange(&slots[s], NULL);
        if (b) block_free(b);
    }
    cr_assert_eq(atomic_load(&bad), 0);
    nm_tcache_flush_all(self);
    nm_decay(true);
    for (uint32_t d = 0; d < nm_ndomains; d++) {
        for (unsigned c = 0; c < NM_NUM_CLASSES; c++) {
            nm_depot_t *dp = nm_depot(d, c);
            nm_lock(&dp->lock);
            uint64_t held = dp->held, nfull = dp->nfull;
            nm_unlock(&dp->lock);
            cr_assert_eq(held, 0, "domain %u class %u: %lu blocks still out of the slabs", d, c, (unsigned long)held);
            cr_assert_eq(nfull, 0, "domain %u class %u: full magazines after a forced decay", d, c);
        }
    }
}
