/* numamalloc — the options table, environment scan, value parsing and warnings.
 *
 * Built from NM_OPTIONS (include/numamalloc/options.h). Read once, at process
 * start-up, by scanning `environ` directly: no getenv (it may be interposed), no
 * stdio, no malloc. A bad value prints exactly one line naming the variable, what
 * it accepts and the default used; unknown NUMAMALLOC_* names warn too. Parse
 * functions take strings so tests call them directly (tests/unit/test_options.c). */
#include <signal.h>
#include <stddef.h>

#include "numamalloc/options.h"
#include "numamalloc/out.h"
#include "numamalloc/os.h"

/* (page-aligned: what a start writes, the fields before text[], is one page) */
NM_BIG_BSS __attribute__((aligned(4096))) nm_options_t nm_opt;

#define NM_OPT_ROW(id, type, def, acc, desc) [NM_OPT_##id] = { #id, type, def, acc, desc },
const nm_option_desc_t nm_option_table[NM_OPT_N] = { NM_OPTIONS(NM_OPT_ROW) };
#undef NM_OPT_ROW

extern char **environ;

bool nm_parse_size(const char *s, size_t *out)
{
    uint64_t v;
    const char *end;
    if (!nm_parse_u64(s, &end, &v)) return false;
    uint64_t mul = 1;
    switch (*end) {
    case '\0': break;
    case 'k': case 'K': mul = (uint64_t)1 << 10; end++; break;
    case 'm': case 'M': mul = (uint64_t)1 << 20; end++; break;
    case 'g': case 'G': mul = (uint64_t)1 << 30; end++; break;
    case 't': case 'T': mul = (uint64_t)1 << 40; end++; break;
    default: return false;
    }
    if (*end == 'i' && end[1] == 'B') end += 2;       /* accept KiB, MiB, ... */
    else if (*end == 'B' && mul > 1) end++;            /* and KB, MB, ... */
    if (*end != '\0') return false;
    if (v > UINT64_MAX / mul) return false;
    *out = (size_t)(v * mul);
    return true;
}

static bool parse_bool(const char *s, bool *out)
{
    if (!nm_strcmp(s, "1") || !nm_strcmp(s, "yes") || !nm_strcmp(s, "on") || !nm_strcmp(s, "true")) { *out = true; return true; }
    if (!nm_strcmp(s, "0") || !nm_strcmp(s, "no") || !nm_strcmp(s, "off") || !nm_strcmp(s, "false")) { *out = false; return true; }
    return false;
}

static bool parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    uint64_t v;
    const char *end;
    if (!nm_parse_u64(s, &end, &v) || *end != '\0' || v > max) return false;
    *out = v;
    return true;
}

/* "N[,M...]" with N < NM_POLICY_MAX_NODES, no duplicates, at least one */
static bool parse_node_list(const char *s, uint16_t *nodes, unsigned *n)
{
    *n = 0;
    if (*s == '\0') return false;
    for (;;) {
        uint64_t v;
        const char *end;
        if (!nm_parse_u64(s, &end, &v) || v >= NM_POLICY_MAX_NODES) return false;
        uint64_t hi = v;
        if (*end == '-') {                      /* ranges, as numactl writes them */
            if (!nm_parse_u64(end + 1, &end, &hi) || hi < v || hi >= NM_POLICY_MAX_NODES) return false;
        }
        for (uint64_t x = v; x <= hi; x++) {
            for (unsigned i = 0; i < *n; i++) if (nodes[i] == x) return false;
            if (*n >= NM_POLICY_MAX_NODES) return false;
            nodes[(*n)++] = (uint16_t)x;
        }
        if (*end == '\0') return true;
        if (*end != ',') return false;
        s = end + 1;
    }
}

bool nm_policy_text_parse(const char *s, int *kind, uint16_t *nodes, unsigned *nnodes)
{
    if (!nm_strcmp(s, "local")) { *kind = NM_POL_LOCAL; *nnodes = 0; return true; }
    if (!nm_strcmp(s, "interleave")) { *kind = NM_POL_INTERLEAVE; *nnodes = 0; return true; }
    if (!nm_strncmp(s, "interleave:", 11)) { *kind = NM_POL_INTERLEAVE; return parse_node_list(s + 11, nodes, nnodes); }
    if (!nm_strncmp(s, "bind:", 5)) { *kind = NM_POL_BIND; return parse_node_list(s + 5, nodes, nnodes); }
    if (!nm_strncmp(s, "preferred:", 10)) {
        *kind = NM_POL_PREFERRED;
        return parse_node_list(s + 10, nodes, nnodes) && *nnodes == 1;
    }
    return false;
}

/* Apply one value; returns false (field untouched) if the text is not acceptable. */
static bool apply(nm_options_t *o, int id, const char *v)
{
    bool b;
    uint64_t u;
    size_t sz;
    switch (id) {
    case NM_OPT_POLICY: {
        int kind;
        unsigned nnodes = 0;
        uint16_t nodes[NM_POLICY_MAX_NODES];   /* (2 KiB of stack, not a copy of *o) */
        if (!nm_policy_text_parse(v, &kind, nodes, &nnodes)) return false;
        o->policy = kind;
        o->policy_nnodes = nnodes;
        for (unsigned i = 0; i < nnodes; i++) o->policy_nodes[i] = nodes[i];
        return true;
    }
    case NM_OPT_HUGEPAGES:
        o->thp_fallback = false;
        if (!nm_strcmp(v, "auto")) o->hugepages = NM_HUGE_AUTO;
        else if (!nm_strcmp(v, "hugetlb")) o->hugepages = NM_HUGE_HUGETLB;
        else if (!nm_strcmp(v, "1g") || !nm_strcmp(v, "1G")) o->hugepages = NM_HUGE_1G;
        else if (!nm_strcmp(v, "thp")) o->hugepages = NM_HUGE_THP;
        else if (!nm_strcmp(v, "off")) o->hugepages = NM_HUGE_OFF;
        else if (!nm_strcmp(v, "hugetlb+thp")) { o->hugepages = NM_HUGE_HUGETLB; o->thp_fallback = true; }
        else if (!nm_strcmp(v, "1g+thp") || !nm_strcmp(v, "1G+thp")) { o->hugepages = NM_HUGE_1G; o->thp_fallback = true; }
        else return false;
        return true;
    case NM_OPT_LARGE_THRESHOLD:
        if (!nm_parse_size(v, &sz) || sz < ((size_t)64 << 10) || sz > ((size_t)1 << 30)) return false;
        o->large_threshold = sz;
        return true;
    case NM_OPT_PREFAULT:
        if (!nm_strcmp(v, "auto")) { o->prefault = NM_PREFAULT_AUTO; return true; }
        if (!parse_bool(v, &b)) return false;
        o->prefault = b ? NM_PREFAULT_ON : NM_PREFAULT_OFF;
        return true;
    case NM_OPT_DECAY_MS: if (!parse_uint(v, 3600000, &u)) return false; o->decay_ms = u; return true;
    case NM_OPT_BACKGROUND: if (!parse_bool(v, &b)) return false; o->background = b; return true;
    case NM_OPT_LARGE_CACHE:
        if (!nm_parse_size(v, &sz) || sz > ((size_t)64 << 30)) return false;
        o->large_cache = sz;
        return true;
    case NM_OPT_CHECK: if (!parse_bool(v, &b)) return false; o->check = b; return true;
    case NM_OPT_STATS:
        if (!nm_strcmp(v, "off") || !nm_strcmp(v, "0")) o->stats = NM_STATS_OFF;
        else if (!nm_strcmp(v, "text") || !nm_strcmp(v, "1")) o->stats = NM_STATS_TEXT;
        else if (!nm_strcmp(v, "json")) o->stats = NM_STATS_JSON;
        else return false;
        return true;
    case NM_OPT_STATS_FILE:
        if (nm_strlen(v) >= sizeof o->stats_file) return false;
        nm_copy_cstr(o->stats_file, sizeof o->stats_file, v);
        return true;
    case NM_OPT_STATS_SIGNAL:
        if (!nm_strcmp(v, "")) o->stats_signal = 0;
        else if (!nm_strcmp(v, "USR1") || !nm_strcmp(v, "SIGUSR1")) o->stats_signal = SIGUSR1;
        else if (!nm_strcmp(v, "USR2") || !nm_strcmp(v, "SIGUSR2")) o->stats_signal = SIGUSR2;
        else return false;
        return true;
    case NM_OPT_STATS_INTERVAL: if (!parse_uint(v, 86400, &u)) return false; o->stats_interval = u; return true;
    case NM_OPT_VERBOSE: if (!parse_bool(v, &b)) return false; o->verbose = b; return true;
    case NM_OPT_PROF: if (!parse_bool(v, &b)) return false; o->prof = b; return true;
    case NM_OPT_PROF_SAMPLE:
        if (!nm_parse_size(v, &sz) || sz < 1 || sz > ((size_t)1 << 30)) return false;
        o->prof_sample = sz;
        return true;
    case NM_OPT_PROF_FILE:
        if (nm_strlen(v) >= sizeof o->prof_file) return false;
        nm_copy_cstr(o->prof_file, sizeof o->prof_file, v);
        return true;
    }
    return false;
}

void nm_options_defaults(nm_options_t *o)
{
    for (size_t i = 0; i < offsetof(nm_options_t, text); i++) ((char *)o)[i] = 0;
    for (int id = 0; id < NM_OPT_N; id++) {
        bool ok = apply(o, id, nm_option_table[id].def);
        (void)ok;   /* defaults are valid by construction; test_options.c checks it */
        o->raw[id] = nm_option_table[id].def;
    }
}

bool nm_option_parse(nm_options_t *o, int id, const char *value, char *err, size_t errlen)
{
    if (apply(o, id, value)) {
        nm_copy_cstr(o->text[id], sizeof o->text[id], value);
        o->raw[id] = o->text[id];
        o->from_env[id] = true;
        return true;
    }
    const nm_option_desc_t *d = &nm_option_table[id];
    /* keep the whole warning on one line even for hostile values */
    char shown[64];
    nm_copy_printable(shown, sizeof shown, value);
    nm_snprintf(err, errlen, "NUMAMALLOC_%s='%s' ignored: accepts %s; using '%s'",
                d->name, shown, d->accepts, d->def);
    return false;
}

void nm_options_init(char **envp, bool is_secure)
{
    nm_options_defaults(&nm_opt);
    if (envp == NULL) envp = environ;
    if (envp == NULL) return;
    static const char prefix[] = "NUMAMALLOC_";
    for (char **e = envp; *e; e++) {
        const char *s = *e;
        if (nm_strncmp(s, prefix, sizeof prefix - 1) != 0) continue;
        const char *name = s + sizeof prefix - 1;
        const char *eq = name;
        while (*eq && *eq != '=') eq++;
        if (*eq != '=') continue;
        size_t nlen = (size_t)(eq - name);
#ifdef NM_FAULT_INJECT
        /* the fault-injection build's own variable (src/os.c); unknown elsewhere */
        if (nlen == 5 && nm_strncmp(name, "FAULT", 5) == 0) { nm_fault_configure(eq + 1, is_secure); continue; }
#endif
        int id = -1;
        for (int i = 0; i < NM_OPT_N; i++) {
            const char *n = nm_option_table[i].name;
            if (nm_strlen(n) == nlen && nm_strncmp(n, name, nlen) == 0) { id = i; break; }
        }
        if (id < 0 && nlen == 13 && nm_strncmp(name, "ARENA_RESERVE", 13) == 0) {
            nm_warn("NUMAMALLOC_ARENA_RESERVE is no longer used (medium blocks come from numamalloc's own "
                    "segments, not a reserved arena): ignored");
            continue;
        }
        if (id < 0) {
            /* the name is the caller's text: keep the warning one printable line */
            char nm[64];
            size_t k = 0;
            for (; k < nlen && k + 4 < sizeof nm; k++) nm[k] = (name[k] >= 0x20 && name[k] < 0x7f) ? name[k] : '?';
            if (k < nlen) { nm[k++] = '.'; nm[k++] = '.'; nm[k++] = '.'; }
            nm[k] = '\0';
            nm_warn("NUMAMALLOC_%s is not a numamalloc variable: ignored (see numamalloc(7) for the list)", nm);
            continue;
        }
        if (is_secure && nm_option_table[id].type == NM_T_PATH) {
            nm_warn("NUMAMALLOC_%s ignored in a set-uid/set-gid (AT_SECURE) process", nm_option_table[id].name);
            continue;
        }
        char err[384];
        if (!nm_option_parse(&nm_opt, id, eq + 1, err, sizeof err)) nm_warn("%s", err);
    }
}
