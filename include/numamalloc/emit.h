/* numamalloc — one walk, two formats: the stats emitter (src/emit.c), after
 * jemalloc's emitter.h. The dump code calls em_* once per value; in text mode that
 * prints aligned "label  value" lines and tables, in JSON mode one compact object
 * (one line per dump, so appended dumps form a JSON Lines file). */
#ifndef NM_EMIT_H
#define NM_EMIT_H

#include "numamalloc/out.h"

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
