/* tests/unit/json_py.h — ask python3 (standard library) about a JSON text: is it one
 * valid JSON document, and what is the value of an expression over it. Used by the
 * unit stats tests and the API tests (tests/api/api_util.h includes it).
 *
 * python3 runs without LD_PRELOAD so that the judge of the allocator's output never
 * runs on the allocator under test; its verdict comes back on stdout. */
#ifndef NM_TEST_JSON_PY_H
#define NM_TEST_JSON_PY_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Evaluate python expression `expr` with d = json.loads(text) (strict: NaN, trailing
 * data, duplicate-free parse errors all fail). Returns the printed result without its
 * final newline in out, or false if text is not valid JSON / the expression failed
 * (python's error message is then in out). */
static inline bool json_py(const char *text, size_t len, const char *expr, char *out, size_t cap)
{
    char data[] = "/tmp/nm-json-XXXXXX";
    int fd = mkstemp(data);
    if (fd < 0) { snprintf(out, cap, "mkstemp failed"); return false; }
    size_t done = 0;
    while (done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w <= 0) break;
        done += (size_t)w;
    }
    close(fd);
    static const char script[] =
        "import json, sys\n"
        "def fail(*a):\n"
        "    raise ValueError('non-standard constant')\n"
        "try:\n"
        "    d = json.loads(open(sys.argv[1], encoding='utf-8').read(), parse_constant=fail)\n"
        "    r = eval(open(sys.argv[2], encoding='utf-8').read())\n"
        "except Exception as e:\n"
        "    print('ERROR', type(e).__name__, str(e)[:300].replace(chr(10), ' '))\n"
        "    sys.exit(1)\n"
        "print(r if isinstance(r, str) else json.dumps(r, sort_keys=True, separators=(',', ':')))\n";
    char py[] = "/tmp/nm-json-py-XXXXXX";
    int pf = mkstemp(py);
    if (pf < 0) { unlink(data); snprintf(out, cap, "mkstemp failed"); return false; }
    if (write(pf, script, sizeof script - 1) != (ssize_t)(sizeof script - 1)) { close(pf); unlink(py); unlink(data); return false; }
    close(pf);
    /* the expression goes through a file too: no shell quoting of arbitrary text */
    char ex[] = "/tmp/nm-json-ex-XXXXXX";
    int ef = mkstemp(ex);
    if (ef < 0) { unlink(py); unlink(data); return false; }
    if (write(ef, expr, strlen(expr)) != (ssize_t)strlen(expr)) { close(ef); unlink(ex); unlink(py); unlink(data); return false; }
    close(ef);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "env -u LD_PRELOAD python3 %s %s %s 2>&1", py, data, ex);
    FILE *p = popen(cmd, "r");
    bool ok = false;
    if (p) {
        size_t n = fread(out, 1, cap - 1, p);
        out[n] = '\0';
        while (n > 0 && out[n - 1] == '\n') out[--n] = '\0';
        ok = pclose(p) == 0;
    } else {
        snprintf(out, cap, "popen failed");
    }
    unlink(data);
    unlink(py);
    unlink(ex);
    return ok;
}

#endif
