/* numamalloc — counter storage (the lists and nm_count() are in stats.h).
 *
 * The ground floor: nothing here calls anything of ours, so every file may count.
 * The global copy's per-domain table is sized at boot from the topology; until then
 * per-domain counts made without a live thread are dropped (only booting allocations
 * can be). Merges and sums read or write with relaxed atomics: a live thread's
 * counters are read racily by dumps, a global copy is added to from every thread. */
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "numamalloc/stats.h"

nm_counters_t nm_global_ctr;
uint64_t nm_gctr[NM_GLOBAL_CTR_N];
uint64_t nm_fallback[NM_FB_N];
int nm_fallback_errno[NM_FB_N];

#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

bool nm_counters_init(uint32_t ndomains)
{
    size_t bytes = ((size_t)ndomains * NM_DOMAIN_CTR_N * sizeof(uint64_t) + 4095) & ~(size_t)4095;
    long r = syscall(SYS_mmap, NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (r == -1) return false;
    __atomic_store_n(&nm_global_ctr.dom, (uint64_t *)r, __ATOMIC_RELEASE);
    return true;
}

static void merge_one(uint64_t *dst, uint64_t *src)
{
    uint64_t v = *src;
    if (v) { __atomic_fetch_add(dst, v, __ATOMIC_RELAXED); *src = 0; }
}

void nm_counters_merge(nm_counters_t *c, uint32_t ndomains)
{
    for (unsigned k = 0; k < NM_NUM_CLASSES; k++)
        for (int i = 0; i < NM_CLASS_CTR_N; i++) merge_one(&nm_global_ctr.cls[k][i], &c->cls[k][i]);
    for (int i = 0; i < NM_THREAD_CTR_N; i++) merge_one(&nm_global_ctr.thr[i], &c->thr[i]);
    for (int i = 0; i < NM_BACKING_CTR_N; i++)
        for (int b = 0; b < NM_BACK_COUNT; b++) merge_one(&nm_global_ctr.bk[i][b], &c->bk[i][b]);
    if (c->dom && nm_global_ctr.dom)
        for (size_t i = 0; i < (size_t)ndomains * NM_DOMAIN_CTR_N; i++) merge_one(&nm_global_ctr.dom[i], &c->dom[i]);
}

void nm_counters_sum(nm_counters_t *dst, const nm_counters_t *src, uint32_t ndomains)
{
    for (unsigned k = 0; k < NM_NUM_CLASSES; k++)
        for (int i = 0; i < NM_CLASS_CTR_N; i++) dst->cls[k][i] += LD(src->cls[k][i]);
    for (int i = 0; i < NM_THREAD_CTR_N; i++) dst->thr[i] += LD(src->thr[i]);
    for (int i = 0; i < NM_BACKING_CTR_N; i++)
        for (int b = 0; b < NM_BACK_COUNT; b++) dst->bk[i][b] += LD(src->bk[i][b]);
    const uint64_t *sd = LD(src->dom);
    if (sd && dst->dom)
        for (size_t i = 0; i < (size_t)ndomains * NM_DOMAIN_CTR_N; i++) dst->dom[i] += LD(sd[i]);
}
