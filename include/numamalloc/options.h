/* numamalloc — the single list of environment variables.
 *
 * One row per variable NUMAMALLOC_<ID>: type, default, what it accepts (shown in
 * warnings, the NUMAMALLOC_VERBOSE listing and man/numamalloc.7), and a one-line
 * description. src/options.c builds the parse table from it; scripts/gen-man-env.sh
 * checks the man page against it. Values are parsed once at start-up into
 * nm_opt (plain globals); no hot path reads the table. */
#ifndef NM_OPTIONS_H
#define NM_OPTIONS_H

#include "numamalloc/base.h"

/*  ID               type          default   accepts                                              description */
#define NM_OPTIONS(X) \
  X(POLICY,          NM_T_POLICY,  "local",  "local, interleave[:N,M...], bind:N[,M...], preferred:N", \
    "where memory goes: the thread's node, spread over nodes, confined to nodes, or one node first") \
  X(HUGEPAGES,       NM_T_ENUM,    "auto",   "auto, hugetlb, 1g, thp, off, hugetlb+thp or 1g+thp", \
    "huge pages for large blocks: hugetlb pages when the node has free ones, else 4 KiB; +thp: else transparent huge pages") \
  X(LARGE_THRESHOLD, NM_T_SIZE,    "1M",     "a size from 64K to 1G (suffix K, M or G)", \
    "blocks of at least this size get their own NUMA-bound mapping") \
  X(PREFAULT,        NM_T_ENUM,    "auto",   "auto, 0 or 1", \
    "populate new large mappings at allocation (no page faults later): 1 always, auto once a node's large blocks are found written densely") \
  X(DECAY_MS,        NM_T_UINT,    "1000",   "milliseconds from 0 to 3600000", \
    "how long unused cached memory is kept before it is returned to the OS") \
  X(BACKGROUND,      NM_T_BOOL,    "0",      "0 or 1", \
    "a background thread returns idle memory after NUMAMALLOC_DECAY_MS even when the program makes no allocator calls") \
  X(LARGE_CACHE,     NM_T_SIZE,    "64M",    "a size from 0 to 64G (suffix K, M or G)", \
    "bytes of freed large mappings kept per node for reuse") \
  X(CHECK,           NM_T_BOOL,    "0",      "0 or 1", \
    "validate every free and realloc (double free, interior and foreign pointers, writes past the end) and abort on misuse") \
  X(STATS,           NM_T_ENUM,    "off",    "off, text or json", \
    "print a statistics dump when the process exits") \
  X(STATS_FILE,      NM_T_PATH,    "",       "a file path; %p becomes the pid, %t a timestamp", \
    "where dumps go (appended, mode 0600, O_NOFOLLOW); default stderr; ignored in set-uid programs") \
  X(STATS_SIGNAL,    NM_T_ENUM,    "",       "USR1 or USR2", \
    "also dump when the process receives this signal") \
  X(STATS_INTERVAL,  NM_T_UINT,    "0",      "seconds from 0 (never) to 86400", \
    "also dump every so many seconds") \
  X(VERBOSE,         NM_T_BOOL,    "0",      "0 or 1", \
    "print version, topology and the effective configuration at start-up") \
  X(PROF,            NM_T_BOOL,    "0",      "0 or 1", \
    "sampling heap profiler: top allocation sites and leaks at exit") \
  X(PROF_SAMPLE,     NM_T_SIZE,    "512K",   "a size from 1 to 1G (suffix K, M or G)", \
    "mean bytes between profiler samples (exponential, like jemalloc and tcmalloc)") \
  X(PROF_FILE,       NM_T_PATH,    "",       "a file path; %p becomes the pid, %t a timestamp", \
    "write the heap profile in pprof's format there, and collapsed stacks of live and of allocated bytes to that path plus .collapsed and .alloc.collapsed (replaced at each dump, mode 0600, O_NOFOLLOW); ignored in set-uid programs")

enum nm_opt_type { NM_T_BOOL, NM_T_UINT, NM_T_SIZE, NM_T_ENUM, NM_T_PATH, NM_T_POLICY };

#define NM_OPT_ENUM(id, type, def, acc, desc) NM_OPT_##id,
enum { NM_OPTIONS(NM_OPT_ENUM) NM_OPT_N };
#undef NM_OPT_ENUM

enum nm_policy_kind { NM_POL_LOCAL, NM_POL_INTERLEAVE, NM_POL_BIND, NM_POL_PREFERRED };
enum nm_huge_mode   { NM_HUGE_AUTO, NM_HUGE_HUGETLB, NM_HUGE_1G, NM_HUGE_THP, NM_HUGE_OFF };
enum nm_stats_mode  { NM_STATS_OFF, NM_STATS_TEXT, NM_STATS_JSON };
enum nm_prefault    { NM_PREFAULT_OFF, NM_PREFAULT_ON, NM_PREFAULT_AUTO };

#define NM_POLICY_MAX_NODES 1024

/* effective configuration, filled once by nm_options_init() */
typedef struct nm_options {
    int      policy;                 /* enum nm_policy_kind */
    uint16_t policy_nodes[NM_POLICY_MAX_NODES];
    unsigned policy_nnodes;          /* nodes listed (bind, preferred, interleave:...) */
    int      hugepages;              /* enum nm_huge_mode */
    bool     thp_fallback;           /* "+thp": THP when hugetlb pages cannot be had */
    size_t   large_threshold;
    int      prefault;               /* enum nm_prefault */
    uint64_t decay_ms;
    bool     background;
    size_t   large_cache;
    bool     check;
    int      stats;                  /* enum nm_stats_mode */
    char     stats_file[512];
    int      stats_signal;           /* 0 or SIGUSR1/SIGUSR2 */
    uint64_t stats_interval;
    bool     verbose;
    bool     prof;
    size_t   prof_sample;
    char     prof_file[512];
    const char *raw[NM_OPT_N];       /* the text in effect, for listings and dumps: the
                                        table's default or text[id] */
    bool     from_env[NM_OPT_N];     /* set by the environment (else default) */
    /* last, and written only for values from the environment: the pages of a process
     * that sets none stay untouched */
    char     text[NM_OPT_N][520];
} nm_options_t;

extern nm_options_t nm_opt;

typedef struct nm_option_desc {
    const char *name;                /* "POLICY" */
    int         type;
    const char *def;
    const char *accepts;
    const char *desc;
} nm_option_desc_t;
extern const nm_option_desc_t nm_option_table[NM_OPT_N];

/* parse every NUMAMALLOC_* variable of envp (NULL: environ); warns on bad values and
 * unknown names; is_secure: ignore variables that name files (AT_SECURE) */
void nm_options_init(char **envp, bool is_secure);
/* parse one value into o; on failure writes the warning text into err (no newline)
 * and returns false, leaving o's field at its default. Exposed for unit tests. */
bool nm_option_parse(nm_options_t *o, int id, const char *value, char *err, size_t errlen);
void nm_options_defaults(nm_options_t *o);
/* parse a NUMAMALLOC_POLICY text ("bind:0,2") into its kind and nodes (nodes has
 * room for NM_POLICY_MAX_NODES); false if it is not in the grammar */
bool nm_policy_text_parse(const char *s, int *kind, uint16_t *nodes, unsigned *nnodes);
/* parse "123", "64K", "1M", "2G", "1T"; false on junk or overflow */
bool nm_parse_size(const char *s, size_t *out);

#endif
