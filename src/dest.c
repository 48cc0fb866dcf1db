/* numamalloc — where dumps and profiles go: NUMAMALLOC_STATS_FILE and
 * NUMAMALLOC_PROF_FILE are checked the same way.
 *
 * %p and %t expand (a name that would not fit is refused, never cut short); the file
 * is opened O_NOFOLLOW (a symbolic link is refused) and O_NONBLOCK (opening a FIFO
 * nobody reads cannot block the exit or a signal handler), anything but a regular
 * file is refused, and a file created is mode 0600. Every refusal is one line naming
 * the variable, the path and what happens instead, said once per caller's flag (a
 * dump every second would repeat it). Only system calls: usable from a signal
 * handler. No locks. */
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "numamalloc/internal.h"

#define WARN_ONCE(flag, ...) do { if (!__atomic_exchange_n((flag), 1, __ATOMIC_RELAXED)) nm_warn(__VA_ARGS__); } while (0)

bool nm_dest_expand(const char *var, const char *pattern, char *path, size_t cap, const char *instead, int *warned)
{
    nm_buf_t b;
    nm_buf_init(&b, path, cap, -1);
    for (const char *p = pattern; *p; p++) {
        if (p[0] == '%' && p[1] == 'p') { nm_buf_printf(&b, "%d", nm_os_getpid()); p++; }
        else if (p[0] == '%' && p[1] == 't') {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            nm_buf_printf(&b, "%lu", (unsigned long)ts.tv_sec);
            p++;
        }
        else if (p[0] == '%' && p[1] == '%') { nm_buf_put(&b, "%", 1); p++; }
        else nm_buf_put(&b, p, 1);
    }
    if (nm_buf_finish(&b) < cap) return true;
    char shown[256];
    nm_copy_printable(shown, sizeof shown, pattern);
    WARN_ONCE(warned, "%s: '%s' expands to more than %d bytes: %s", var, shown, (int)cap - 1, instead);
    return false;
}

int nm_dest_open(const char *var, const char *path, const char *instead, int *warned)
{
    int fd = (int)syscall(SYS_openat, AT_FDCWD, path,
                          O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY, 0600);
    char shown[256];
    if (fd < 0) {
        int e = errno;
        const char *why = e == ENXIO ? "a FIFO nobody reads" : e == EISDIR ? "a directory" : NULL;
        nm_copy_printable(shown, sizeof shown, path);
        if (why) WARN_ONCE(warned, "%s: '%s' is not a regular file (%s): %s", var, shown, why, instead);
        else WARN_ONCE(warned, "%s: cannot open '%s' (errno %d): %s", var, shown, e, instead);
        return -1;
    }
    struct stat st;
    if (syscall(SYS_fstat, fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        nm_copy_printable(shown, sizeof shown, path);
        WARN_ONCE(warned, "%s: '%s' is not a regular file: %s", var, shown, instead);
        syscall(SYS_close, fd);
        return -1;
    }
    syscall(SYS_fcntl, fd, F_SETFL, O_WRONLY | O_APPEND);   /* a regular file: blocking writes */
    return fd;
}
