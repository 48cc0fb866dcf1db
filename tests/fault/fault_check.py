#!/usr/bin/env python3
"""tests/fault/fault_check.py - check a numamalloc JSON stats dump after a fault run.

Usage: fault_check.py LABEL FILE EXPR...
FILE holds NUMAMALLOC_STATS=json dumps, one JSON object per line; the last one
(the dump at exit) is checked. Each EXPR is KIND:NAME.FIELD OP VALUE:
    fallback:REASON[|REASON...].count     sum over the fallbacks table
    fallback:REASON.last_errno            e.g. ENOMEM, "-" for none
    syscall:CALL.calls|failures|last_errno  a row of the syscalls table
    backing:NAME.FIELD                    a row of large.backing (4k, thp, hugetlb_2m)
    summary:FIELD, misuse:FIELD, arena:FIELD, large:FIELD   plain numbers
OP is one of >= <= == != > <; numbers compare as numbers, anything else as text.
Prints "STATS LABEL: ..." with every non-zero fallback and every failing system
call (the numbers the report quotes), then one FAIL line per EXPR that does not
hold; exits 1 if any failed, 2 if the dump is missing or unreadable.
"""
import json
import re
import sys

OPS = {
    ">=": lambda a, b: a >= b, "<=": lambda a, b: a <= b, "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b, ">": lambda a, b: a > b, "<": lambda a, b: a < b,
}
EXPR = re.compile(r"^(fallback|syscall|backing|summary|misuse|arena|large):([A-Za-z0-9_|]+)(?:\.([a-z_]+))?(>=|<=|==|!=|>|<)(.+)$")


def rows(dump, kind):
    if kind == "fallback":
        return {r["reason"]: r for r in dump["fallbacks"]}
    if kind == "syscall":
        return {r["call"]: r for r in dump["syscalls"]}
    return {r["backing"]: r for r in dump["large"]["backing"]}


def value(dump, kind, name, field):
    if kind in ("summary", "misuse", "arena", "large"):
        return dump[kind][name]
    table = rows(dump, kind)
    names = name.split("|")
    for n in names:
        if n not in table:
            raise KeyError(f"no {kind} row {n}")
    if len(names) == 1:
        return table[name][field]
    return sum(table[n][field] for n in names)


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    label, path, exprs = argv[0], argv[1], argv[2:]
    try:
        with open(path, encoding="utf-8") as f:
            lines = [ln for ln in f.read().splitlines() if ln.strip()]
        dump = json.loads(lines[-1])
    except (OSError, ValueError, IndexError) as e:
        print(f"FAIL {label}: stats dump unreadable: {e}")
        return 2
    fb = " ".join(f"{r['reason']}={r['count']}" + (f"({r['last_errno']})" if r["last_errno"] != "-" else "")
                  for r in dump["fallbacks"] if r["count"])
    sc = " ".join(f"{r['call']}={r['failures']}/{r['calls']}({r['last_errno']})" for r in dump["syscalls"] if r["failures"])
    bk = " ".join(f"{r['backing']}={r['mapped_total']}" for r in dump["large"]["backing"] if r["mapped_total"])
    print(f"STATS {label}: fallbacks {fb or 'none'}; failed calls {sc or 'none'}; mappings {bk or 'none'}")
    failed = 0
    for e in exprs:
        m = EXPR.match(e)
        if not m:
            print(f"FAIL {label}: bad expression {e!r}")
            failed += 1
            continue
        kind, name, field, op, want = m.groups()
        try:
            got = value(dump, kind, name, field)
        except KeyError as err:
            print(f"FAIL {label}: {err}")
            failed += 1
            continue
        if isinstance(got, (int, float)) and re.fullmatch(r"-?\d+", want):
            ok = OPS[op](got, int(want))
        else:
            ok = OPS[op](str(got), want)
        if not ok:
            print(f"FAIL {label}: stats {e}: got {got}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
