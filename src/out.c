/* numamalloc — allocation-free formatting and write(2) output.
 *
 * Owns: nm_buf_t (bounded text buffer that counts what it would have needed, and can
 * stream to a file descriptor), a small printf (%s %c %d %i %u %x %p %%, with l/ll/z
 * modifiers, width and '-'), human sizes, percentages and JSON strings, and the one
 * warning/fatal printer. Nothing here allocates, takes a lock, or touches stdio, so
 * it is usable from malloc's slow path, from signal handlers and during exit. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "numamalloc/out.h"

size_t nm_strlen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }

int nm_strcmp(const char *a, const char *b)
{
    while (*a && *a == *b) { a++; b++; }
    return (unsigned char)*a - (unsigned char)*b;
}

int nm_strncmp(const char *a, const char *b, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (a[i] != b[i] || !a[i]) return (unsigned char)a[i] - (unsigned char)b[i];
    }
    return 0;
}

bool nm_parse_u64(const char *s, const char **end, uint64_t *out)
{
    uint64_t v = 0;
    const char *p = s;
    if (*p < '0' || *p > '9') return false;
    while (*p >= '0' && *p <= '9') {
        unsigned d = (unsigned)(*p - '0');
        if (v > (UINT64_MAX - d) / 10) return false;
        v = v * 10 + d;
        p++;
    }
    *out = v;
    if (end) *end = p;
    return true;
}

int nm_stderr_fd = 2;

void nm_write_all(int fd, const char *p, size_t n)
{
    int saved = errno;
    /* coreutils and others close stderr at exit (gnulib close_stdout); our
     * messages then go to the copy of it taken at start-up */
    if (fd == 2 && fcntl(2, F_GETFD) < 0) fd = nm_stderr_fd;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) { if (errno == EINTR) continue; break; }
        p += w;
        n -= (size_t)w;
    }
    errno = saved;
}

void nm_buf_init(nm_buf_t *b, char *p, size_t cap, int fd)
{
    b->p = p; b->cap = cap; b->len = 0; b->need = 0; b->fd = fd;
}

void nm_buf_flush(nm_buf_t *b)
{
    if (b->fd >= 0 && b->len) { nm_write_all(b->fd, b->p, b->len); b->len = 0; }
}

void nm_buf_put(nm_buf_t *b, const char *s, size_t n)
{
    b->need += n;
    while (n > 0) {
        size_t room = b->cap - b->len;
        if (room == 0) {
            if (b->fd < 0) return;
            nm_buf_flush(b);
            room = b->cap;
        }
        size_t k = n < room ? n : room;
        for (size_t i = 0; i < k; i++) b->p[b->len + i] = s[i];
        b->len += k; s += k; n -= k;
    }
}

void nm_buf_puts(nm_buf_t *b, const char *s) { nm_buf_put(b, s, nm_strlen(s)); }

static void put_pad(nm_buf_t *b, const char *s, size_t n, int width, bool left)
{
    size_t pad = (width > 0 && (size_t)width > n) ? (size_t)width - n : 0;
    if (!left) for (size_t i = 0; i < pad; i++) nm_buf_put(b, " ", 1);
    nm_buf_put(b, s, n);
    if (left) for (size_t i = 0; i < pad; i++) nm_buf_put(b, " ", 1);
}

static size_t fmt_u64(char *tmp, uint64_t v, unsigned base)
{
    char rev[24];
    size_t n = 0;
    do { unsigned d = (unsigned)(v % base); rev[n++] = (char)(d < 10 ? '0' + d : 'a' + d - 10); v /= base; } while (v);
    for (size_t i = 0; i < n; i++) tmp[i] = rev[n - 1 - i];
    return n;
}

void nm_buf_vprintf(nm_buf_t *b, const char *fmt, va_list ap)
{
    for (const char *f = fmt; *f; f++) {
        if (*f != '%') {
            const char *s = f;
            while (f[1] && f[1] != '%') f++;
            nm_buf_put(b, s, (size_t)(f - s + 1));
            continue;
        }
        f++;
        bool left = false, zero = false;
        if (*f == '-') { left = true; f++; }
        if (*f == '0') { zero = true; f++; }
        int width = 0;
        while (*f >= '0' && *f <= '9') width = width * 10 + (*f++ - '0');
        int lng = 0;
        while (*f == 'l') { lng++; f++; }
        if (*f == 'z') { lng = 2; f++; }
        char tmp[32];
        size_t n = 0;
        switch (*f) {
        case 's': {
            const char *s = va_arg(ap, const char *);
            if (!s) s = "(null)";
            put_pad(b, s, nm_strlen(s), width, left);
            continue;
        }
        case 'c': tmp[0] = (char)va_arg(ap, int); n = 1; break;
        case 'd': case 'i': {
            int64_t v = lng ? va_arg(ap, int64_t) : va_arg(ap, int);
            uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
            if (v < 0) tmp[n++] = '-';
            n += fmt_u64(tmp + n, u, 10);
            break;
        }
        case 'u': case 'x': {
            uint64_t v = lng ? va_arg(ap, uint64_t) : va_arg(ap, unsigned);
            n = fmt_u64(tmp, v, *f == 'x' ? 16 : 10);
            break;
        }
        case 'p': tmp[0] = '0'; tmp[1] = 'x'; n = 2 + fmt_u64(tmp + 2, (uintptr_t)va_arg(ap, void *), 16); break;
        case '%': tmp[0] = '%'; n = 1; break;
        default: tmp[0] = '%'; tmp[1] = *f ? *f : '?'; n = 2; if (!*f) f--; break;
        }
        if (zero && !left && width > 0 && (size_t)width > n) {
            char z[32];
            size_t pad = (size_t)width - n, k = 0;
            if (pad + n > sizeof z) pad = sizeof z - n;
            if (tmp[0] == '-') { z[k++] = '-'; }
            for (size_t i = 0; i < pad; i++) z[k++] = '0';
            for (size_t i = (tmp[0] == '-'); i < n; i++) z[k++] = tmp[i];
            nm_buf_put(b, z, k);
        } else {
            put_pad(b, tmp, n, width, left);
        }
    }
}

void nm_buf_printf(nm_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    nm_buf_vprintf(b, fmt, ap);
    va_end(ap);
}

/* one decimal: value*10/div rounded, printed as "12.3" */
static void put_fixed1(nm_buf_t *b, uint64_t num, uint64_t den)
{
    unsigned __int128 t = ((unsigned __int128)num * 10 + den / 2) / den;
    uint64_t v = (uint64_t)t;
    nm_buf_printf(b, "%lu.%lu", (unsigned long)(v / 10), (unsigned long)(v % 10));
}

void nm_buf_size(nm_buf_t *b, uint64_t bytes)
{
    static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB" };
    unsigned u = 0;
    uint64_t div = 1;
    while (u + 1 < NM_ARRAY_LEN(units) && bytes >= div * 1024) { div *= 1024; u++; }
    if (u == 0) nm_buf_printf(b, "%lu B", (unsigned long)bytes);
    else { put_fixed1(b, bytes, div); nm_buf_printf(b, " %s", units[u]); }
}

void nm_buf_pct(nm_buf_t *b, uint64_t num, uint64_t den)
{
    if (den == 0) { nm_buf_puts(b, "n/a"); return; }
    unsigned __int128 t = ((unsigned __int128)num * 1000 + den / 2) / den;   /* per mille */
    nm_buf_printf(b, "%lu.%lu", (unsigned long)(t / 10), (unsigned long)(t % 10));
    nm_buf_puts(b, "%");
}

/* length of the valid UTF-8 sequence at s, or 0 if the bytes there are not one */
static size_t utf8_len(const unsigned char *s)
{
    unsigned c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) { n = 2; cp = c & 0x1f; }
    else if (c >= 0xe0 && c <= 0xef) { n = 3; cp = c & 0x0f; }
    else if (c >= 0xf0 && c <= 0xf4) { n = 4; cp = c & 0x07; }
    else return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
    return n;
}

/* a JSON string: escaped, and valid UTF-8 whatever the input (paths are bytes):
 * bytes that are not UTF-8 become U+FFFD */
void nm_buf_json_str(nm_buf_t *b, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    nm_buf_put(b, "\"", 1);
    while (*s) {
        unsigned char c = *s;
        if (c == '"' || c == '\\') { char e[2] = { '\\', (char)c }; nm_buf_put(b, e, 2); s++; continue; }
        if (c < 0x20 || c == 0x7f) { nm_buf_printf(b, "\\u%04x", c); s++; continue; }
        size_t n = utf8_len(s);
        if (n == 0) { nm_buf_puts(b, "\\ufffd"); s++; continue; }
        nm_buf_put(b, (const char *)s, n);
        s += n;
    }
    nm_buf_put(b, "\"", 1);
}

size_t nm_buf_finish(nm_buf_t *b)
{
    if (b->fd >= 0) { nm_buf_flush(b); return b->need; }
    if (b->cap == 0) return b->need;
    if (b->len == b->cap) b->len = b->cap - 1;
    b->p[b->len] = '\0';
    return b->need;
}

int nm_snprintf(char *dst, size_t cap, const char *fmt, ...)
{
    nm_buf_t b;
    nm_buf_init(&b, dst, cap, -1);
    va_list ap;
    va_start(ap, fmt);
    nm_buf_vprintf(&b, fmt, ap);
    va_end(ap);
    return (int)nm_buf_finish(&b);
}

static void vwarn(const char *fmt, va_list ap)
{
    char tmp[512];
    nm_buf_t b;
    nm_buf_init(&b, tmp, sizeof tmp - 1, -1);
    nm_buf_puts(&b, "numamalloc: ");
    nm_buf_vprintf(&b, fmt, ap);
    if (b.len > sizeof tmp - 2) b.len = sizeof tmp - 2;
    tmp[b.len++] = '\n';
    nm_write_all(2, tmp, b.len);
}

void nm_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap);
    va_end(ap);
}

void nm_fatal(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vwarn(fmt, ap);
    va_end(ap);
    abort();
}

void nm_copy_cstr(char *dst, size_t cap, const char *src)
{
    if (cap == 0) return;
    size_t i = 0;
    for (; src[i] && i + 1 < cap; i++) dst[i] = src[i];
    dst[i] = '\0';
}

void nm_copy_printable(char *dst, size_t cap, const char *src)
{
    size_t k = 0;
    for (; src[k] && k + 4 < cap; k++) dst[k] = (src[k] >= 0x20 && src[k] < 0x7f) ? src[k] : '?';
    if (src[k] != '\0') { dst[k++] = '.'; dst[k++] = '.'; dst[k++] = '.'; }
    dst[k] = '\0';
}

const char *nm_strstr(const char *hay, const char *needle)
{
    size_t n = nm_strlen(needle);
    for (; *hay; hay++)
        if (nm_strncmp(hay, needle, n) == 0) return hay;
    return n == 0 ? hay : NULL;
}
