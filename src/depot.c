/* numamalloc — the depot: per domain and size class, Bonwick's lists of full and
 * empty magazines between the thread caches and the slabs.
 *
 * Threads exchange whole magazines with the depot (one lock round trip per
 * magazine of rounds, not per block), so a producer thread and a consumer thread
 * meet here: the consumer's full magazines become the producer's supply. Blocks freed
 * on the wrong node come back here too, as full magazines, to their own domain.
 * Working set (Bonwick 2001, section 3.4): the depot remembers the fewest full and
 * empty magazines it held since the last decay tick; those were never needed during
 * the interval, so decay returns the rounds of that many, oldest first, to the slabs
 * and frees the magazines.
 *
 * Bound: unlike Bonwick's, our depot does not grow without limit: every cached block
 * costs a pointer in a magazine (8 bytes against a 16-byte block), so a program that
 * frees everything at once would otherwise keep it all cached. A depot keeps full
 * magazines holding up to NM_DEPOT_THREAD_BYTES of blocks per live thread, at most
 * NM_DEPOT_BYTES and, for small classes, at least 2 magazines. Not fewer: a single
 * thread whose working set swings by more than a few magazines would otherwise send
 * every magazine to the slabs and take it back. A medium class (one to six blocks
 * of 40 KiB to 1 MiB a magazine) gets a quarter of that room and no floor: twenty
 * classes with 256 KiB or two magazines each would keep 5-10 MiB of touched memory
 * for one thread, whose own bins already hold what it reuses. Not more for few
 * threads, and with one thread alive at most NM_DEPOT_SOLO_BLOCKS blocks of a small
 * class (it bites on the tiny classes, where 256 KiB is up to 16K blocks): there is
 * little or nothing to exchange, and the depot hands blocks out in the order they
 * were freed, scattered over every slab of the class, where the slabs hand them out
 * in address order; a program rebuilding what it tore down would otherwise spread its
 * new objects over many more pages (TLB misses). A full magazine beyond the bound is
 * emptied into the slabs on the spot (the slabs then return whole pages to the OS
 * after decay), and decay returns what stays unused for an interval. Empty
 * magazines: at most 64.
 *
 * Order: full magazines form one list, newest first. A thread gets back its own newest
 * (still in its cache); any other thread gets the oldest, not the blocks another
 * thread freed a moment ago, whose lines are still in that thread's cache.
 *
 * Lock: nm_depot_t.lock guards the lists, counters and the class's slabs in this
 * domain (src/slab.c runs under it). */
#include "numamalloc/internal.h"

static size_t mag_bytes(unsigned cap) { return sizeof(nm_mag_t) + (size_t)cap * sizeof(void *); }

nm_mag_t *nm_mag_new(unsigned cls)
{
    unsigned cap = nm_class_mag_cap[cls];
    nm_mag_t *m = nm_meta_alloc(mag_bytes(cap));
    if (m) m->cap = cap;                             /* (metadata comes zeroed: holder 0) */
    return m;
}

void nm_mag_delete(nm_mag_t *m)
{
    if (m) nm_meta_free(m, mag_bytes(m->cap));
}

#define NM_DEPOT_BYTES ((size_t)2 << 20)
#define NM_DEPOT_THREAD_BYTES ((size_t)256 << 10)
#define NM_DEPOT_EMPTY 64
#define NM_DEPOT_SOLO_BLOCKS 2048

static uint32_t depot_cap(nm_depot_t *d)
{
    unsigned cls = nm_depot_cls(d);
    if (NM_UNLIKELY(d->mag_bytes == 0)) {
        d->mag_bytes = (uint32_t)(nm_class_mag_cap[cls] * nm_class_size[cls]);
        d->solo_mags = NM_DEPOT_SOLO_BLOCKS / nm_class_mag_cap[cls];
    }
    size_t bytes = d->mag_bytes;
    uint64_t threads = nm_gstat_get(NM_C_threads_live);
    size_t room = NM_MIN(NM_DEPOT_BYTES, (size_t)NM_MAX(threads, 1u) * NM_DEPOT_THREAD_BYTES);
    if (nm_class_is_medium(cls)) return (uint32_t)(room / 4 / bytes);
    size_t cap = room / bytes;
    if (threads <= 1) cap = NM_MIN(cap, d->solo_mags);
    return (uint32_t)NM_MAX(cap, 2u);
}

void nm_depot_push_empty_locked(nm_depot_t *d, nm_mag_t *m)
{
    if (d->nempty >= NM_DEPOT_EMPTY) { nm_mag_delete(m); return; }
    m->count = 0;
    m->next = d->empty;
    d->empty = m;
    d->nempty++;
}

nm_mag_t *nm_depot_take_empty_locked(nm_depot_t *d)
{
    nm_mag_t *m = d->empty;
    if (m == NULL) return NULL;
    d->empty = m->next;
    d->nempty--;
    if (d->nempty < d->nempty_min) d->nempty_min = d->nempty;
    return m;
}

static void full_push(nm_depot_t *d, nm_mag_t *m)
{
    m->next = d->full;
    m->newer = NULL;
    if (d->full) d->full->newer = m;
    else d->full_oldest = m;
    d->full = m;
    d->nfull++;
}

static void full_unlink(nm_depot_t *d, nm_mag_t *m)
{
    if (m->newer) m->newer->next = m->next;
    else d->full = m->next;
    if (m->next) m->next->newer = m->newer;
    else d->full_oldest = m->newer;
    d->nfull--;
}

/* the newest full magazine if thread tid filled it, else the oldest (see Order above):
 * every block taken from another thread's cache costs a transfer when the program
 * writes it */
nm_mag_t *nm_depot_take_full_locked(nm_depot_t *d, int32_t tid)
{
    nm_mag_t *m = d->full;
    if (m == NULL) return NULL;
    if (m->holder != tid) m = d->full_oldest;
    full_unlink(d, m);
    if (d->nfull < d->nfull_min) d->nfull_min = d->nfull;
    d->exchanges++;
    return m;
}

nm_mag_t *nm_depot_put_full(nm_depot_t *d, nm_mag_t *full)
{
    nm_depot_lock(d);
    if (d->nfull >= depot_cap(d)) {
        /* enough supply cached already: these rounds go back to their slabs */
        nm_slab_free_batch_locked(d, full->rounds, full->count);
        full->count = 0;
        d->drained++;
        nm_unlock(&d->lock);
        return full;
    }
    full_push(d, full);
    d->exchanges++;
    nm_mag_t *e = nm_depot_take_empty_locked(d);
    nm_unlock(&d->lock);
    return e;
}

void nm_depot_return(nm_depot_t *d, nm_mag_t *m)
{
    if (m == NULL) return;
    nm_depot_lock(d);
    if (m->count == m->cap && d->nfull < depot_cap(d)) {
        full_push(d, m);
    } else {
        if (m->count) nm_slab_free_batch_locked(d, m->rounds, m->count);
        nm_depot_push_empty_locked(d, m);
    }
    nm_unlock(&d->lock);
}

/* Decay takes the unused full magazines off the list in one lock hold, then gives
 * their rounds back to the slabs NM_DECAY_MAGS magazines per hold: a depot may hold
 * hundreds of magazines (2 MiB of 16-byte blocks), and a thread refilling from it
 * should wait for a few bitmap batches, not for all of them. Meanwhile those rounds
 * are still counted as held by the depot, and in use in their slabs. */
#define NM_DECAY_MAGS 16

void nm_depot_decay(nm_depot_t *d, uint64_t cutoff_ms, bool all)
{
    nm_mag_t *drop = NULL, *full = NULL;
    nm_depot_lock(d);
    uint32_t nf = all ? d->nfull : NM_MIN(d->nfull_min, d->nfull);
    for (uint32_t i = 0; i < nf; i++) {
        nm_mag_t *m = d->full_oldest;                 /* the longest unused first */
        full_unlink(d, m);
        m->next = full;
        full = m;
    }
    for (uint32_t i = 0; full; i++) {
        if (i && i % NM_DECAY_MAGS == 0) {                /* let waiting threads in */
            nm_unlock(&d->lock);
            nm_depot_lock(d);
        }
        nm_mag_t *m = full;
        full = m->next;
        nm_slab_free_batch_locked(d, m->rounds, m->count);
        m->count = 0;
        m->next = drop;
        drop = m;
    }
    uint32_t ne = all ? d->nempty : NM_MIN(d->nempty_min, d->nempty);
    for (uint32_t i = 0; i < ne; i++) {
        nm_mag_t *m = d->empty;
        d->empty = m->next;
        d->nempty--;
        m->next = drop;
        drop = m;
    }
    d->nfull_min = d->nfull;
    d->nempty_min = d->nempty;
    nm_slab_decay_locked(d, cutoff_ms, all);
    nm_unlock(&d->lock);
    while (drop) {
        nm_mag_t *m = drop;
        drop = m->next;
        nm_mag_delete(m);
    }
}
