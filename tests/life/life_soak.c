/* tests/life/life_soak.c — a long run of mixed work whose memory must stay bounded
 * (`make soak`, tests/life/soak.sh; not part of `make test`).
 *
 *   life_soak SECONDS
 *
 * For SECONDS, all at once:
 *  - WORKERS long-lived threads, each cycling through four phases of PHASE_S seconds
 *    (staggered, so all four run at any time): small-block churn; medium blocks
 *    with realloc growth; large blocks (1-8 MiB, aligned ones too) grown and shrunk
 *    with realloc; a working set built up to WSET_BYTES and then released. A
 *    quarter of all blocks are swapped through shared slots, so threads free each
 *    other's blocks;
 *  - a churn thread starting CHURN_WAVE short-lived threads every 20 ms, whose
 *    blocks also go through the slots;
 *  - a fork thread forking every 500 ms; each child frees what it inherited in the
 *    slots, allocates and frees, runs a thread, and ends with exit() (so it writes
 *    its own exit dump when NUMAMALLOC_STATS is set);
 *  - the main thread reading VmRSS every second.
 * Then everything stops and the slots are drained. The bound: the highest RSS of
 * the second half of the run may exceed the highest of the first half by at most
 * 20% plus RSS_SLACK (steady work must not grow the heap).
 * Prints key=value lines: pid, seconds, samples, rss_first_max, rss_last_max, rss_min,
 * rss_final, worker_ops, churn_threads, forks, forks_ok, bad, and bounded=1 or 0;
 * exits 0 when bad == 0, every child exited 0 and bounded == 1.
 * Hang guard: alarm(SECONDS + 120). Only write(2) for output (fork). */
#include <errno.h>
#include <malloc.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "life/life.h"

enum { WORKERS = 4, NSLOTS = 256, PHASE_S = 15, CHURN_WAVE = 4, MAX_SAMPLES = 100000 };
#define WSET_BYTES ((size_t)48 << 20)
#define RSS_SLACK  ((uint64_t)16 << 20)
#define NM_LIFE_MIN3(a, b, c) ((a) < (b) ? ((a) < (c) ? (a) : (c)) : ((b) < (c) ? (b) : (c)))

static _Atomic(life_blk_t *) slots[NSLOTS];
static atomic_bool stop;
static atomic_ulong bad, worker_ops, churn_threads, forks, forks_ok;
static double t_start;

static void check_free(life_blk_t *b)
{
    if (!life_ok(b)) atomic_fetch_add(&bad, 1);
    free(b);
}

/* keep b, or pass it through a slot (freeing what was there) */
static void keep_or_swap(life_blk_t *b, uint64_t r)
{
    if (b == NULL) return;
    if (r % 4 == 0) {
        life_blk_t *old = atomic_exchange(&slots[(r >> 8) % NSLOTS], b);
        if (old) check_free(old);
    } else {
        check_free(b);
    }
}

static life_blk_t *blk_sized(size_t n, uint64_t tag)
{
    if (n < sizeof(life_blk_t)) n = sizeof(life_blk_t);
    life_blk_t *b = malloc(n);
    if (b == NULL) { atomic_fetch_add(&bad, 1); return NULL; }
    life_fill(b, n, tag);
    return b;
}

/* realloc must keep the common prefix (header and the head of the pattern); the
 * block is stamped again for its new size */
static life_blk_t *blk_resize(life_blk_t *b, size_t n, uint64_t tag)
{
    if (!life_ok(b)) atomic_fetch_add(&bad, 1);
    uint64_t old_tag = b->tag;
    size_t old_n = b->n, keep = NM_LIFE_MIN3(old_n, n, sizeof *b + 64) - sizeof *b;
    life_blk_t *c = realloc(b, n);
    if (c == NULL) { atomic_fetch_add(&bad, 1); free(b); return NULL; }
    bool same = c->n == old_n && c->tag == old_tag;
    for (size_t i = 0; i < keep && same; i++) same = c->data[i] == (unsigned char)(old_tag + i);
    if (!same) atomic_fetch_add(&bad, 1);
    life_fill(c, n, tag);
    return c;
}

/* ---- the workers' phases ------------------------------------------------------------ */

static void phase_small(uint64_t *seed)
{
    life_blk_t *b[64];
    for (int k = 0; k < 64; k++) b[k] = blk_sized(life_mix(*seed + (uint64_t)k) % 2048 + 16, life_mix(*seed ^ (uint64_t)k));
    for (int k = 0; k < 64; k++) keep_or_swap(b[k], life_mix(*seed + 1000 + (uint64_t)k));
    *seed += 64;
}

static void phase_medium(uint64_t *seed)
{
    for (int k = 0; k < 8; k++) {
        uint64_t r = life_mix((*seed)++);
        life_blk_t *b = blk_sized(r % 4096 + 64, r);
        if (b && r % 2) b = blk_resize(b, (size_t)(r >> 16) % (1u << 20) + (40u << 10), r >> 1);
        keep_or_swap(b, r >> 3);
    }
}

static void phase_large(uint64_t *seed)
{
    uint64_t r = life_mix((*seed)++);
    size_t n = (size_t)(r >> 8) % (7u << 20) + (1u << 20);
    life_blk_t *b;
    if (r % 3 == 0) {
        size_t align = (size_t)4096 << (r >> 4) % 8;          /* 4 KiB .. 512 KiB */
        void *p = NULL;
        if (posix_memalign(&p, align, n) != 0 || ((uintptr_t)p & (align - 1))) { atomic_fetch_add(&bad, 1); free(p); return; }
        b = p;
        life_fill(b, n, r);
    } else {
        b = blk_sized(n, r);
    }
    if (b == NULL) return;
    for (size_t off = 4096; off + 64 < n; off += 256 << 10) ((unsigned char *)b)[off] = 1;   /* touch some pages */
    b = blk_resize(b, n + (size_t)(r >> 20) % (4u << 20), r >> 2);
    if (b) b = blk_resize(b, n / 2 + 64, r >> 3);
    keep_or_swap(b, r >> 5);
}

static void phase_wset(uint64_t *seed)
{
    enum { MAXB = 8192 };
    life_blk_t **set = calloc(MAXB, sizeof *set);
    if (set == NULL) { atomic_fetch_add(&bad, 1); return; }
    size_t total = 0;
    unsigned n = 0;
    while (total < WSET_BYTES && n < MAXB && !atomic_load_explicit(&stop, memory_order_relaxed)) {
        uint64_t r = life_mix((*seed)++);
        size_t sz = life_size(r, 5);
        set[n] = blk_sized(sz, r);
        if (set[n]) { memset(set[n]->data, (int)r, sz - sizeof(life_blk_t)); life_fill(set[n], sz, r); total += sz; n++; }
    }
    for (unsigned i = 0; i < n; i++) {                    /* release in a scrambled order */
        unsigned j = (unsigned)(life_mix(*seed + i) % n);
        life_blk_t *t = set[i]; set[i] = set[j]; set[j] = t;
    }
    for (unsigned i = 0; i < n; i++) keep_or_swap(set[i], life_mix(*seed ^ i));
    free(set);
}

static void *worker(void *arg)
{
    unsigned me = (unsigned)(uintptr_t)arg;
    uint64_t seed = (uint64_t)(me + 1) << 48;
    while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
        unsigned phase = ((unsigned)((life_now() - t_start) / PHASE_S) + me) % 4;
        switch (phase) {
        case 0: phase_small(&seed); break;
        case 1: phase_medium(&seed); break;
        case 2: phase_large(&seed); break;
        default: phase_wset(&seed); break;
        }
        atomic_fetch_add_explicit(&worker_ops, 1, memory_order_relaxed);
    }
    return NULL;
}

/* ---- short-lived threads ---------------------------------------------------------------- */

static void *short_thread(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg << 20;
    for (uint64_t i = 0; i < 40; i++) {
        uint64_t r = life_mix(seed + i);
        keep_or_swap(life_new(r, 1), r >> 7);
    }
    return NULL;
}

static void *churner(void *arg)
{
    (void)arg;
    for (uint64_t wave = 0; !atomic_load_explicit(&stop, memory_order_relaxed); wave++) {
        pthread_t t[CHURN_WAVE];
        unsigned made = 0;
        for (unsigned i = 0; i < CHURN_WAVE; i++)
            if (pthread_create(&t[made], NULL, short_thread, (void *)(uintptr_t)(wave * CHURN_WAVE + i)) == 0) made++;
        for (unsigned i = 0; i < made; i++) pthread_join(t[i], NULL);
        atomic_fetch_add(&churn_threads, made);
        if (made < CHURN_WAVE) atomic_fetch_add(&bad, 1);
        struct timespec ts = { 0, 20 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* ---- forks ------------------------------------------------------------------------------- */

static int child_work(uint64_t seed)
{
    int nbad = 0;
    for (int s = 0; s < NSLOTS; s++) {
        life_blk_t *b = atomic_exchange(&slots[s], NULL);
        if (b) { nbad += !life_ok(b); free(b); }
    }
    for (uint64_t i = 0; i < 100; i++) {
        life_blk_t *b = life_new(life_mix(seed + i), 5);
        if (b == NULL || !life_ok(b)) nbad++;
        free(b);
    }
    return nbad;
}

static void *child_thread(void *arg) { return (void *)(uintptr_t)child_work((uint64_t)(uintptr_t)arg); }

static void *forker(void *arg)
{
    (void)arg;
    for (uint64_t n = 0; !atomic_load_explicit(&stop, memory_order_relaxed); n++) {
        struct timespec ts = { 0, 500 * 1000 * 1000 };
        nanosleep(&ts, NULL);
        pid_t pid = fork();
        if (pid < 0) { atomic_fetch_add(&bad, 1); continue; }
        if (pid == 0) {
            alarm(30);
            int nbad = child_work(n << 32);
            pthread_t t;
            void *res = NULL;
            if (pthread_create(&t, NULL, child_thread, (void *)(uintptr_t)(n << 32 | 1)) != 0) _exit(12);
            pthread_join(t, &res);
            exit(nbad || res ? 11 : 0);
        }
        atomic_fetch_add(&forks, 1);
        int pfd = (int)syscall(SYS_pidfd_open, pid, 0), status = 0;
        if (pfd >= 0) {
            struct pollfd p = { .fd = pfd, .events = POLLIN };
            if (poll(&p, 1, 30000) == 0) kill(pid, SIGKILL);
            close(pfd);
        }
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        if (WIFEXITED(status) && WEXITSTATUS(status) == 0) atomic_fetch_add(&forks_ok, 1);
        else nm_say(2, "child %d: status %#x\n", (int)pid, status);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 2) { nm_say(2, "usage: life_soak SECONDS\n"); return 2; }
    unsigned seconds = (unsigned)strtoul(argv[1], NULL, 10);
    if (seconds < 4 || seconds > MAX_SAMPLES) { nm_say(2, "life_soak: SECONDS from 4 to %d\n", MAX_SAMPLES); return 2; }
    alarm(seconds + 120);
    t_start = life_now();
    pthread_t w[WORKERS], ch, fk;
    for (unsigned i = 0; i < WORKERS; i++)
        if (pthread_create(&w[i], NULL, worker, (void *)(uintptr_t)i) != 0) return 1;
    if (pthread_create(&ch, NULL, churner, NULL) != 0 || pthread_create(&fk, NULL, forker, NULL) != 0) return 1;

    static uint64_t rss[MAX_SAMPLES];
    unsigned ns = 0;
    while (ns < seconds) {
        double next = t_start + ns + 1;
        double left = next - life_now();
        if (left > 0) {
            struct timespec ts = { (time_t)left, (long)((left - (double)(time_t)left) * 1e9) };
            nanosleep(&ts, NULL);
        }
        rss[ns++] = life_status_kb("VmRSS");
    }
    atomic_store(&stop, true);
    for (unsigned i = 0; i < WORKERS; i++) pthread_join(w[i], NULL);
    pthread_join(ch, NULL);
    pthread_join(fk, NULL);
    for (int s = 0; s < NSLOTS; s++) {
        life_blk_t *b = atomic_exchange(&slots[s], NULL);
        if (b) check_free(b);
    }
    uint64_t first = 0, last = 0, lo = UINT64_MAX;
    for (unsigned i = 0; i < ns; i++) {
        if (i < ns / 2) first = rss[i] > first ? rss[i] : first;
        else last = rss[i] > last ? rss[i] : last;
        lo = rss[i] < lo ? rss[i] : lo;
    }
    bool bounded = last <= first + first / 5 + RSS_SLACK;
    nm_say(1, "pid=%d\nseconds=%.0f\nsamples=%u\nrss_first_max=%lu\nrss_last_max=%lu\nrss_min=%lu\nrss_final=%lu\n"
           "worker_ops=%lu\nchurn_threads=%lu\nforks=%lu\nforks_ok=%lu\nbad=%lu\nbounded=%d\n",
           (int)getpid(), life_now() - t_start, ns, (unsigned long)first, (unsigned long)last, (unsigned long)lo,
           (unsigned long)life_status_kb("VmRSS"), (unsigned long)atomic_load(&worker_ops),
           (unsigned long)atomic_load(&churn_threads), (unsigned long)atomic_load(&forks),
           (unsigned long)atomic_load(&forks_ok), (unsigned long)atomic_load(&bad), bounded);
    for (unsigned i = 0; i < ns; i++) nm_say(1, "rss %u %lu\n", i + 1, (unsigned long)rss[i]);
    return atomic_load(&bad) == 0 && atomic_load(&forks_ok) == atomic_load(&forks) && bounded ? 0 : 1;
}
