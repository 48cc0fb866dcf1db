/* numamalloc — the stats emitter: text or JSON from the same calls.
 *
 * Text: sections are a title line and two-space indented "label  value" lines;
 * tables have a header row and right-aligned columns. JSON: one object written on a
 * single line; sections are nested objects, tables are arrays of objects keyed by
 * the column keys; "n/a" is null. Formatting goes through nm_buf_t (src/out.c): no
 * allocation, no locks, usable from a signal handler. */
#include "numamalloc/out.h"

static void sep(nm_emit_t *em)
{
    if (em->need_comma[em->depth]) nm_buf_put(em->b, ",", 1);
    em->need_comma[em->depth] = true;
}

static void json_key(nm_emit_t *em, const char *key)
{
    sep(em);
    nm_buf_json_str(em->b, key);
    nm_buf_put(em->b, ":", 1);
}

static void text_label(nm_emit_t *em, const char *label)
{
    for (int i = 1; i < em->depth; i++) nm_buf_puts(em->b, "  ");
    nm_buf_printf(em->b, "%-30s ", label);
}

void em_begin(nm_emit_t *em, nm_buf_t *b, int mode)
{
    em->b = b;
    em->mode = mode;
    em->depth = 0;
    for (unsigned i = 0; i < NM_ARRAY_LEN(em->need_comma); i++) em->need_comma[i] = false;
    if (mode == NM_EM_JSON) nm_buf_put(b, "{", 1);
    em->depth = 1;
    em->need_comma[1] = false;
}

void em_end(nm_emit_t *em)
{
    if (em->mode == NM_EM_JSON) nm_buf_put(em->b, "}\n", 2);
    em->depth = 0;
}

void em_obj_begin(nm_emit_t *em, const char *key, const char *title)
{
    if (em->mode == NM_EM_JSON) {
        json_key(em, key);
        nm_buf_put(em->b, "{", 1);
    } else {
        for (int i = 1; i < em->depth; i++) nm_buf_puts(em->b, "  ");
        nm_buf_printf(em->b, "%s\n", title);
    }
    if (em->depth + 1 < (int)NM_ARRAY_LEN(em->need_comma)) em->depth++;
    em->need_comma[em->depth] = false;
}

void em_obj_end(nm_emit_t *em)
{
    if (em->depth > 1) em->depth--;
    if (em->mode == NM_EM_JSON) nm_buf_put(em->b, "}", 1);
}

void em_u64(nm_emit_t *em, const char *key, const char *label, uint64_t v)
{
    if (em->mode == NM_EM_JSON) { json_key(em, key); nm_buf_printf(em->b, "%lu", (unsigned long)v); }
    else { text_label(em, label); nm_buf_printf(em->b, "%lu\n", (unsigned long)v); }
}

void em_i64(nm_emit_t *em, const char *key, const char *label, int64_t v)
{
    if (em->mode == NM_EM_JSON) { json_key(em, key); nm_buf_printf(em->b, "%ld", (long)v); }
    else { text_label(em, label); nm_buf_printf(em->b, "%ld\n", (long)v); }
}

void em_bytes(nm_emit_t *em, const char *key, const char *label, uint64_t v)
{
    if (em->mode == NM_EM_JSON) { json_key(em, key); nm_buf_printf(em->b, "%lu", (unsigned long)v); return; }
    text_label(em, label);
    nm_buf_size(em->b, v);
    if (v >= 1024) nm_buf_printf(em->b, " (%lu)", (unsigned long)v);
    nm_buf_puts(em->b, "\n");
}

/* text mode: strings come from the environment (paths); keep the dump one line per
 * value and free of terminal escapes */
static void text_safe(nm_buf_t *b, const char *s)
{
    for (; *s; s++) {
        char c = (*s >= 0x20 && *s != 0x7f) ? *s : '?';
        nm_buf_put(b, &c, 1);
    }
}

void em_str(nm_emit_t *em, const char *key, const char *label, const char *s)
{
    if (em->mode == NM_EM_JSON) { json_key(em, key); nm_buf_json_str(em->b, s); }
    else { text_label(em, label); text_safe(em->b, s); nm_buf_puts(em->b, "\n"); }
}

void em_bool(nm_emit_t *em, const char *key, const char *label, bool v)
{
    if (em->mode == NM_EM_JSON) { json_key(em, key); nm_buf_puts(em->b, v ? "true" : "false"); }
    else { text_label(em, label); nm_buf_puts(em->b, v ? "yes\n" : "no\n"); }
}

static void json_ratio(nm_buf_t *b, uint64_t num, uint64_t den)
{
    if (den == 0) { nm_buf_puts(b, "null"); return; }
    unsigned __int128 r = ((unsigned __int128)num * 10000 + den / 2) / den;
    uint64_t v = (uint64_t)r;
    nm_buf_printf(b, "%lu.%04lu", (unsigned long)(v / 10000), (unsigned long)(v % 10000));
}

void em_pct(nm_emit_t *em, const char *key, const char *label, uint64_t num, uint64_t den)
{
    if (em->mode == NM_EM_JSON) { json_key(em, key); json_ratio(em->b, num, den); return; }
    text_label(em, label);
    nm_buf_pct(em->b, num, den);
    nm_buf_puts(em->b, "\n");
}

void em_na(nm_emit_t *em, const char *key, const char *label, const char *why)
{
    if (em->mode == NM_EM_JSON) { json_key(em, key); nm_buf_puts(em->b, "null"); return; }
    text_label(em, label);
    nm_buf_printf(em->b, "n/a (%s)\n", why);
}

void em_note(nm_emit_t *em, const char *text)
{
    if (em->mode != NM_EM_TEXT) return;
    for (int i = 1; i < em->depth; i++) nm_buf_puts(em->b, "  ");
    nm_buf_printf(em->b, "%s\n", text);
}

/* s in a column of |width| characters, right-aligned (left if width < 0) */
static void padded(nm_buf_t *b, const char *s, size_t n, int width)
{
    size_t aw = (size_t)(width < 0 ? -width : width);
    size_t pad = aw > n ? aw - n : 0;
    if (width > 0) for (size_t i = 0; i < pad; i++) nm_buf_put(b, " ", 1);
    nm_buf_put(b, s, n);
    if (width < 0) for (size_t i = 0; i < pad; i++) nm_buf_put(b, " ", 1);
}

void em_table_begin(nm_emit_t *em, const char *key, const char *title, const nm_col_t *cols, int ncols)
{
    em->cols = cols;
    em->ncols = ncols;
    if (em->mode == NM_EM_JSON) {
        json_key(em, key);
        nm_buf_put(em->b, "[", 1);
        if (em->depth + 1 < (int)NM_ARRAY_LEN(em->need_comma)) em->depth++;
        em->need_comma[em->depth] = false;
        return;
    }
    for (int i = 1; i < em->depth; i++) nm_buf_puts(em->b, "  ");
    nm_buf_printf(em->b, "%s\n", title);
    for (int i = 0; i < em->depth; i++) nm_buf_puts(em->b, "  ");
    for (int c = 0; c < ncols; c++) {
        padded(em->b, cols[c].title, nm_strlen(cols[c].title), cols[c].width);
        nm_buf_puts(em->b, c + 1 < ncols ? " " : "\n");
    }
}

static void pad_put(nm_emit_t *em, const char *s, size_t n)
{
    padded(em->b, s, n, em->cols[em->col].width);
    nm_buf_puts(em->b, em->col + 1 < em->ncols ? " " : "");
}

void em_row_begin(nm_emit_t *em)
{
    em->col = 0;
    if (em->mode == NM_EM_JSON) {
        sep(em);
        nm_buf_put(em->b, "{", 1);
        if (em->depth + 1 < (int)NM_ARRAY_LEN(em->need_comma)) em->depth++;
        em->need_comma[em->depth] = false;
    } else {
        for (int i = 0; i < em->depth; i++) nm_buf_puts(em->b, "  ");
    }
}

static void cell_text(nm_emit_t *em, const char *s)
{
    if (em->col < em->ncols) pad_put(em, s, nm_strlen(s));
    em->col++;
}

void em_cell_u64(nm_emit_t *em, uint64_t v)
{
    char t[32];
    nm_snprintf(t, sizeof t, "%lu", (unsigned long)v);
    if (em->mode == NM_EM_JSON) { json_key(em, em->cols[em->col++].key); nm_buf_puts(em->b, t); }
    else cell_text(em, t);
}

void em_cell_i64(nm_emit_t *em, int64_t v)
{
    char t[32];
    nm_snprintf(t, sizeof t, "%ld", (long)v);
    if (em->mode == NM_EM_JSON) { json_key(em, em->cols[em->col++].key); nm_buf_puts(em->b, t); }
    else cell_text(em, t);
}

void em_cell_str(nm_emit_t *em, const char *s)
{
    if (em->mode == NM_EM_JSON) { json_key(em, em->cols[em->col++].key); nm_buf_json_str(em->b, s); }
    else cell_text(em, s);
}

void em_cell_bytes(nm_emit_t *em, uint64_t v)
{
    if (em->mode == NM_EM_JSON) { json_key(em, em->cols[em->col++].key); nm_buf_printf(em->b, "%lu", (unsigned long)v); return; }
    char t[32];
    nm_buf_t b;
    nm_buf_init(&b, t, sizeof t, -1);
    nm_buf_size(&b, v);
    nm_buf_finish(&b);
    cell_text(em, t);
}

void em_cell_pct(nm_emit_t *em, uint64_t num, uint64_t den)
{
    if (em->mode == NM_EM_JSON) { json_key(em, em->cols[em->col++].key); json_ratio(em->b, num, den); return; }
    char t[32];
    nm_buf_t b;
    nm_buf_init(&b, t, sizeof t, -1);
    nm_buf_pct(&b, num, den);
    nm_buf_finish(&b);
    cell_text(em, t);
}

void em_cell_na(nm_emit_t *em)
{
    if (em->mode == NM_EM_JSON) { json_key(em, em->cols[em->col++].key); nm_buf_puts(em->b, "null"); }
    else cell_text(em, "n/a");
}

void em_row_end(nm_emit_t *em)
{
    if (em->mode == NM_EM_JSON) {
        if (em->depth > 1) em->depth--;
        nm_buf_put(em->b, "}", 1);
    } else {
        nm_buf_puts(em->b, "\n");
    }
}

void em_table_end(nm_emit_t *em)
{
    if (em->mode == NM_EM_JSON) {
        if (em->depth > 1) em->depth--;
        nm_buf_put(em->b, "]", 1);
    }
    em->cols = NULL;
}
