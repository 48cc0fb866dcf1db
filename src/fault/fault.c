/* numamalloc — fault injection, built into build/libnumamalloc_fault.so only
 * (tests/fault/fault.mk; the Makefile adds this file when NM_FAULT_INJECT is set).
 *
 * NUMAMALLOC_FAULT is a comma-separated list of items:
 *   CLASS:RULE[:ERRNO]  CLASS mmap (every mmap, MAP_HUGETLB ones too), hugetlb (MAP_HUGETLB
 *                       mmaps only), madvise, mbind or mremap; RULE nth=N (the Nth call
 *                       fails, once), every=N (every Nth call) or p=P (each call with
 *                       probability P, 0 to 1, six decimals at most); ERRNO the error the
 *                       call fails with (default ENOMEM; madvise EINVAL; mbind EIO)
 *   seed=N              the random sequence of p= rules (default 1)
 *   bind=1              mbind fresh memory even with one node (policy.c)
 *   boot=1              fail calls made while the allocator boots too (default: calls
 *                       are counted from the moment it is ready)
 *   wait=1              count and fail nothing until numamalloc_fault_arm(1)
 * A p= decision is a hash of (seed, class, call number), so a single-threaded run
 * fails the same calls every time. Counters are relaxed atomics; no locks. At exit one
 * line reports, per class, the calls seen and the calls failed. Exported for test
 * programs (found with dlsym): numamalloc_fault_arm, numamalloc_fault_count. */
#ifdef NM_FAULT_INJECT
#include <errno.h>
#include <unistd.h>

#include "numamalloc/internal.h"

enum { RULE_NONE, RULE_NTH, RULE_EVERY, RULE_P };
typedef struct fault_rule { int kind; uint64_t n; uint32_t ppm; int err; } fault_rule_t;
typedef struct fault_conf {
    fault_rule_t rule[NM_FAULT_N];
    uint64_t seed;
    bool bind, boot, wait;
} fault_conf_t;

static const char *const fault_class_name[NM_FAULT_N] = { "mmap", "hugetlb", "madvise", "mbind", "mremap" };
static const int fault_default_err[NM_FAULT_N] = { ENOMEM, ENOMEM, EINVAL, EIO, ENOMEM };
static const struct { const char *name; int err; } fault_errnos[] = {
    { "ENOMEM", ENOMEM }, { "EINVAL", EINVAL }, { "EIO", EIO }, { "EPERM", EPERM },
    { "EFAULT", EFAULT }, { "EAGAIN", EAGAIN }, { "EBUSY", EBUSY },
};

static fault_conf_t fault;
static bool fault_on;                   /* a valid, non-empty NUMAMALLOC_FAULT */
static int fault_armed = 1;             /* 0 between numamalloc_fault_arm(0) and (1) */
static uint64_t fault_calls[NM_FAULT_N], fault_injected[NM_FAULT_N];
static char fault_spec[160];

static bool word_is(const char *s, size_t n, const char *w) { return nm_strlen(w) == n && nm_strncmp(s, w, n) == 0; }

/* "0", "1", "0.25", "1.000000" -> parts per million */
static bool parse_prob(const char *s, size_t n, uint32_t *ppm)
{
    uint64_t whole = 0, frac = 0, scale = 1000000;
    size_t i = 0;
    if (i == n || s[i] < '0' || s[i] > '9') return false;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) whole = whole * 10 + (uint64_t)(s[i] - '0');
    if (whole > 1 || i > 1) return false;             /* one digit before the point */
    if (i < n && s[i] == '.') {
        i++;
        if (i == n) return false;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            if (scale == 1) return false;              /* more than six decimals */
            scale /= 10;
            frac += (uint64_t)(s[i] - '0') * scale;
        }
    }
    if (i != n) return false;
    uint64_t v = whole * 1000000 + frac;
    if (v > 1000000) return false;
    *ppm = (uint32_t)v;
    return true;
}

static bool parse_count(const char *s, size_t n, uint64_t *out)
{
    const char *end;
    if (!nm_parse_u64(s, &end, out) || (size_t)(end - s) != n || *out == 0) return false;
    return true;
}

static bool parse_flag(const char *s, size_t n, bool *out)
{
    if (word_is(s, n, "1")) { *out = true; return true; }
    if (word_is(s, n, "0")) { *out = false; return true; }
    return false;
}

/* one item, s[0..n) */
static bool parse_item(fault_conf_t *c, const char *s, size_t n)
{
    size_t colon = 0;
    while (colon < n && s[colon] != ':' && s[colon] != '=') colon++;
    if (colon < n && s[colon] == '=') {
        const char *v = s + colon + 1;
        size_t vn = n - colon - 1;
        if (word_is(s, colon, "seed")) {
            const char *end;
            return vn > 0 && nm_parse_u64(v, &end, &c->seed) && (size_t)(end - v) == vn;
        }
        if (word_is(s, colon, "bind")) return parse_flag(v, vn, &c->bind);
        if (word_is(s, colon, "boot")) return parse_flag(v, vn, &c->boot);
        if (word_is(s, colon, "wait")) return parse_flag(v, vn, &c->wait);
        return false;
    }
    if (colon == n) return false;
    int cls = -1;
    for (int k = 0; k < NM_FAULT_N; k++) if (word_is(s, colon, fault_class_name[k])) cls = k;
    if (cls < 0) return false;
    const char *r = s + colon + 1;
    size_t rn = n - colon - 1, rlen = 0;
    while (rlen < rn && r[rlen] != ':') rlen++;
    fault_rule_t rule = { .err = fault_default_err[cls] };
    if (rlen > 4 && nm_strncmp(r, "nth=", 4) == 0) {
        rule.kind = RULE_NTH;
        if (!parse_count(r + 4, rlen - 4, &rule.n)) return false;
    } else if (rlen > 6 && nm_strncmp(r, "every=", 6) == 0) {
        rule.kind = RULE_EVERY;
        if (!parse_count(r + 6, rlen - 6, &rule.n)) return false;
    } else if (rlen > 2 && nm_strncmp(r, "p=", 2) == 0) {
        rule.kind = RULE_P;
        if (!parse_prob(r + 2, rlen - 2, &rule.ppm)) return false;
    } else {
        return false;
    }
    if (rlen < rn) {                                   /* :ERRNO */
        const char *e = r + rlen + 1;
        size_t en = rn - rlen - 1;
        int err = 0;
        for (unsigned k = 0; k < NM_ARRAY_LEN(fault_errnos); k++)
            if (word_is(e, en, fault_errnos[k].name)) err = fault_errnos[k].err;
        if (err == 0) return false;
        rule.err = err;
    }
    c->rule[cls] = rule;
    return true;
}

void nm_fault_configure(const char *spec, bool is_secure)
{
    if (is_secure) {
        nm_warn("NUMAMALLOC_FAULT ignored in a set-uid/set-gid (AT_SECURE) process");
        return;
    }
    fault_conf_t c = { .seed = 1 };
    bool any = false, ok = true;
    for (const char *s = spec; ok && *s; ) {
        size_t n = 0;
        while (s[n] && s[n] != ',') n++;
        ok = n > 0 && parse_item(&c, s, n);
        s += n;
        if (*s == ',') { s++; ok = ok && *s != '\0'; }
    }
    for (int k = 0; k < NM_FAULT_N; k++) any |= c.rule[k].kind != RULE_NONE;
    if (!ok) {
        char shown[64];
        nm_copy_printable(shown, sizeof shown, spec);
        nm_warn("NUMAMALLOC_FAULT='%s' ignored: accepts comma-separated CLASS:nth=N, CLASS:every=N or "
                "CLASS:p=P (0 to 1) with an optional :ERRNO, CLASS mmap, hugetlb, madvise, mbind or mremap, "
                "and seed=N, bind=1, boot=1, wait=1; using '' (no faults)", shown);
        return;
    }
    fault = c;
    fault_on = any;
    fault_armed = !c.wait;
    nm_copy_cstr(fault_spec, sizeof fault_spec, spec);
}

bool nm_fault_force_bind(void) { return fault.bind; }

static bool fault_active(void)
{
    if (!fault_on || !__atomic_load_n(&fault_armed, __ATOMIC_RELAXED)) return false;
    return fault.boot || __atomic_load_n(&nm_pstate, __ATOMIC_ACQUIRE) == NM_P_READY;
}

static uint64_t fault_mix(uint64_t x)                 /* splitmix64's finaliser */
{
    x ^= x >> 30; x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27; x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

bool nm_fault_hit(int c)
{
    if (!fault_active()) return false;
    uint64_t i = __atomic_add_fetch(&fault_calls[c], 1, __ATOMIC_RELAXED);
    const fault_rule_t *r = &fault.rule[c];
    bool hit = false;
    switch (r->kind) {
    case RULE_NTH:   hit = i == r->n; break;
    case RULE_EVERY: hit = i % r->n == 0; break;
    case RULE_P:     hit = fault_mix(fault.seed * 0x9e3779b97f4a7c15ull + ((uint64_t)c << 56) + i) % 1000000 < r->ppm; break;
    }
    if (!hit) return false;
    __atomic_add_fetch(&fault_injected[c], 1, __ATOMIC_RELAXED);
    errno = r->err;
    return true;
}

/* the test program's switch: nothing is counted or failed while off */
NM_EXPORT void numamalloc_fault_arm(int on) { __atomic_store_n(&fault_armed, on ? 1 : 0, __ATOMIC_RELAXED); }

/* calls seen (while armed) and failed of class name; -1 for an unknown name */
NM_EXPORT int numamalloc_fault_count(const char *name, unsigned long long *calls, unsigned long long *injected)
{
    for (int k = 0; k < NM_FAULT_N; k++) {
        if (nm_strcmp(name, fault_class_name[k]) != 0) continue;
        if (calls) *calls = __atomic_load_n(&fault_calls[k], __ATOMIC_RELAXED);
        if (injected) *injected = __atomic_load_n(&fault_injected[k], __ATOMIC_RELAXED);
        return 0;
    }
    return -1;
}

__attribute__((destructor)) static void fault_report(void)
{
    if (!fault_on) return;
    uint64_t total = 0;
    for (int k = 0; k < NM_FAULT_N; k++) total += __atomic_load_n(&fault_injected[k], __ATOMIC_RELAXED);
    nm_warn("fault injection '%s': failed mmap %lu of %lu, hugetlb %lu of %lu, madvise %lu of %lu, "
            "mbind %lu of %lu, mremap %lu of %lu calls; %lu in all", fault_spec,
            (unsigned long)fault_injected[NM_FAULT_MMAP], (unsigned long)fault_calls[NM_FAULT_MMAP],
            (unsigned long)fault_injected[NM_FAULT_HUGETLB], (unsigned long)fault_calls[NM_FAULT_HUGETLB],
            (unsigned long)fault_injected[NM_FAULT_MADVISE], (unsigned long)fault_calls[NM_FAULT_MADVISE],
            (unsigned long)fault_injected[NM_FAULT_MBIND], (unsigned long)fault_calls[NM_FAULT_MBIND],
            (unsigned long)fault_injected[NM_FAULT_MREMAP], (unsigned long)fault_calls[NM_FAULT_MREMAP],
            (unsigned long)total);
}
#endif
