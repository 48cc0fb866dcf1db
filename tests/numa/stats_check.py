#!/usr/bin/env python3
"""tests/numa/stats_check.py - check counters in a numamalloc JSON stats dump.

Usage: stats_check.py LABEL FILE EXPR...
FILE holds NUMAMALLOC_STATS=json dumps, one JSON object per line; the last one
(the dump at exit) is checked. Each EXPR is
    fallback:REASON[|REASON...]OPN     sum of the fallbacks table's counts
    backing:NAME.FIELDOPN              a row of large.backing (4k, thp, hugetlb_2m, ...)
with OP one of >= == <= >. Prints one line with every non-zero fallback and the
backing totals (the numbers the test report quotes), then PASS/FAIL per EXPR;
exits 1 if any EXPR fails, 2 if the dump is missing or unreadable.
"""
import json
import re
import sys

OPS = {
    ">=": lambda a, b: a >= b,
    "<=": lambda a, b: a <= b,
    "==": lambda a, b: a == b,
    ">": lambda a, b: a > b,
}
EXPR = re.compile(r"^(fallback|backing):([A-Za-z0-9_.|]+?)(>=|<=|==|>)(\d+)$")


def load(path):
    with open(path, encoding="utf-8") as f:
        lines = [ln for ln in f.read().splitlines() if ln.strip()]
    if not lines:
        raise ValueError("no dump in " + path)
    return json.loads(lines[-1])


def value(dump, kind, name):
    if kind == "fallback":
        counts = {row["reason"]: row["count"] for row in dump["fallbacks"]}
        total = 0
        for reason in name.split("|"):
            if reason not in counts:
                raise KeyError("no fallback reason " + reason)
            total += counts[reason]
        return total
    row_name, _, field = name.partition(".")
    for row in dump["large"]["backing"]:
        if row["backing"] == row_name:
            return row[field]
    raise KeyError("no backing row " + row_name)


def main(argv):
    if len(argv) < 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    label, path, exprs = argv[0], argv[1], argv[2:]
    try:
        dump = load(path)
    except (OSError, ValueError) as e:
        print(f"FAIL {label}: stats dump unreadable: {e}")
        return 2
    fb = " ".join(f"{r['reason']}={r['count']}" + (f"({r['last_errno']})" if r["last_errno"] != "-" else "")
                  for r in dump["fallbacks"] if r["count"])
    bk = " ".join(f"{r['backing']}={r['mapped_total']}" for r in dump["large"]["backing"])
    print(f"STATS {label}: fallbacks {fb or 'none'}; large mappings made: {bk}")
    failed = 0
    for e in exprs:
        m = EXPR.match(e)
        if not m:
            print(f"FAIL {label}: bad expression {e!r}")
            failed += 1
            continue
        kind, name, op, want = m.group(1), m.group(2), m.group(3), int(m.group(4))
        try:
            got = value(dump, kind, name)
        except KeyError as err:
            print(f"FAIL {label}: {err}")
            failed += 1
            continue
        ok = OPS[op](got, want)
        failed += not ok
        print(f"{'PASS' if ok else 'FAIL'} {label}: stats {kind} {name} = {got} (want {op} {want})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
