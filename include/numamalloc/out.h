/* numamalloc — allocation-free formatting and output (src/out.c).
 * Everything that prints goes through nm_buf_t: a caller-provided buffer that
 * never overflows and remembers how many bytes the whole text needed. */
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

#endif
