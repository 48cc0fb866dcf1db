/* numamalloc — allocation-free formatting and output (src/out.c), and the stats
 * emitter (src/emit.c). Everything that prints goes through nm_buf_t: a
 * caller-provided buffer that never overflows and remembers how many bytes the whole
 * text needed. */
#ifndef NM_OUT_H
#define NM_OUT_H

#include "numamalloc/base.h"

typedef struct nm_buf {
    char  *p;        /* storage (caller's) */
    size_t cap;      /* bytes available in p */
    size_t len;      /* bytes stored (<= cap) */
    size_t need;     /* bytes the text would take without truncation */
    int    fd;       /* >= 0: flush to this fd whenever p fills up (streaming) */
} nm_buf_t;

void nm_buf_init(nm_buf_t *b, char *p, size_t cap, int fd);
void nm_buf_put(nm_buf_t *b, const char *s, size_t n);
void nm_buf_puts(nm_buf_t *b, const char *s);
void nm_buf_printf(nm_buf_t *b, const char *fmt, ...) NM_PRINTF(2, 3);
void nm_buf_vprintf(nm_buf_t *b, const char *fmt, va_list ap);
void nm_buf_size(nm_buf_t *b, uint64_t bytes);       /* "12.3 MiB" */
void nm_buf_pct(nm_buf_t *b, uint64_t num, uint64_t den); /* "12.3%", or "n/a" when den == 0 */
void nm_buf_json_str(nm_buf_t *b, const char *s);    /* quoted, escaped */
void nm_buf_flush(nm_buf_t *b);                      /* write out if streaming */
size_t nm_buf_finish(nm_buf_t *b);                   /* NUL-terminate (truncating), return need */

int  nm_snprintf(char *dst, size_t cap, const char *fmt, ...) NM_PRINTF(3, 4);
void nm_write_all(int fd, const char *p, size_t n);
extern int nm_stderr_fd;          /* a private copy of the start-up stderr (src/init.c) */

/* one line "numamalloc: <text>\n" on stderr, formatted without allocating */
void nm_warn(const char *fmt, ...) NM_PRINTF(1, 2);
/* the same, then abort() */
__attribute__((noreturn)) void nm_fatal(const char *fmt, ...) NM_PRINTF(1, 2);

/* small string helpers that never call into libc's locale or allocator */
size_t nm_strlen(const char *s);
int    nm_strcmp(const char *a, const char *b);
int    nm_strncmp(const char *a, const char *b, size_t n);
void   nm_copy_cstr(char *dst, size_t cap, const char *src);
/* a bad value as a one-line warning shows it: non-printable bytes as '?', cut to
 * fit cap (>= 8) with "..." */
void   nm_copy_printable(char *dst, size_t cap, const char *src);
const char *nm_strstr(const char *hay, const char *needle);
bool   nm_parse_u64(const char *s, const char **end, uint64_t *out);

/* ---- one walk, two formats: the stats emitter (src/emit.c), after jemalloc's
 * emitter.h. The dump calls em_* once per value; in text mode that prints aligned
 * "label  value" lines and tables, in JSON mode one compact object (one line per
 * dump, so appended dumps form a JSON Lines file). */
enum { NM_EM_TEXT = 1, NM_EM_JSON = 2 };

typedef struct nm_col {
    const char *key;         /* JSON member name */
    const char *title;       /* text column header */
    int         width;       /* text column width (negative: left-aligned) */
} nm_col_t;

typedef struct nm_emit {
    nm_buf_t *b;
    int mode;
    int depth;
    bool need_comma[12];
    const nm_col_t *cols;    /* current table */
    int ncols, col;
} nm_emit_t;

void em_begin(nm_emit_t *em, nm_buf_t *b, int mode);
void em_end(nm_emit_t *em);
void em_obj_begin(nm_emit_t *em, const char *key, const char *title);
void em_obj_end(nm_emit_t *em);
void em_u64(nm_emit_t *em, const char *key, const char *label, uint64_t v);
void em_i64(nm_emit_t *em, const char *key, const char *label, int64_t v);
void em_bytes(nm_emit_t *em, const char *key, const char *label, uint64_t v);
void em_str(nm_emit_t *em, const char *key, const char *label, const char *s);
void em_bool(nm_emit_t *em, const char *key, const char *label, bool v);
void em_pct(nm_emit_t *em, const char *key, const char *label, uint64_t num, uint64_t den);
void em_na(nm_emit_t *em, const char *key, const char *label, const char *why);
void em_note(nm_emit_t *em, const char *text);      /* text mode only: a comment line */
void em_table_begin(nm_emit_t *em, const char *key, const char *title, const nm_col_t *cols, int ncols);
void em_row_begin(nm_emit_t *em);
void em_cell_u64(nm_emit_t *em, uint64_t v);
void em_cell_i64(nm_emit_t *em, int64_t v);
void em_cell_str(nm_emit_t *em, const char *s);
void em_cell_bytes(nm_emit_t *em, uint64_t v);      /* text: human; JSON: integer */
void em_cell_pct(nm_emit_t *em, uint64_t num, uint64_t den);  /* JSON: ratio or null */
void em_cell_na(nm_emit_t *em);
void em_row_end(nm_emit_t *em);
void em_table_end(nm_emit_t *em);

#endif
