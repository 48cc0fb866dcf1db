#!/usr/bin/env bash
# tests/life/soak.sh — `make soak`: life_soak (tests/life/life_soak.c) for
# SOAK_SECONDS (default 600) under the preload, with a JSON stats dump every
# SOAK_INTERVAL seconds (default 5) and at every exit, one file per process
# (NUMAMALLOC_STATS_FILE=DIR/soak.%p.json). Then:
#   - life_soak's own verdict: blocks intact, every forked child exited 0, RSS
#     bounded (the highest sample of the second half <= 1.2 x the first half's
#     highest + 16 MiB);
#   - every line of every dump file parses as JSON (python3's json module, not the
#     test helpers' validator), is a schema_version 2 numamalloc dump of the pid in
#     the file name, with reason "interval" (the soak process) or "exit";
#   - the soak process wrote its exit dump and at least one interval dump per
#     2 x SOAK_INTERVAL seconds; every child that was forked wrote one exit dump;
#   - the heap the dumps report (summary.heap_bytes) is bounded like RSS.
# Prints a summary; exits 0 only if everything holds. SOAK_KEEP=1 keeps the
# directory with the dumps and life_soak's output. Usage:
#   tests/life/soak.sh LIB LIFE_SOAK_BINARY
set -euo pipefail

lib=$1
bin=$2
secs=${SOAK_SECONDS:-600}
interval=${SOAK_INTERVAL:-5}
dir=$(mktemp -d /tmp/nm-soak-XXXXXX)
[ "${SOAK_KEEP:-0}" = 1 ] || trap 'rm -rf "$dir"' EXIT

echo "soak: ${secs} s of threads, forks and dumps every ${interval} s (files in $dir)"
start=$(date +%s)
set +e
# only life_soak (and what it forks) runs preloaded: not timeout, whose dump would count
timeout --kill-after=10 $((secs + 180)) env -i PATH=/usr/bin:/bin LC_ALL=C HOME=/tmp LD_PRELOAD="$lib" \
    NUMAMALLOC_STATS=json NUMAMALLOC_STATS_INTERVAL="$interval" NUMAMALLOC_STATS_FILE="$dir/soak.%p.json" \
    "$bin" "$secs" >"$dir/out.txt" 2>"$dir/err.txt"
rc=$?
set -e
pid=$(sed -n 's/^pid=//p' "$dir/out.txt")
echo "soak: life_soak (pid ${pid:-?}) exited $rc after $(( $(date +%s) - start )) s"
if [ -s "$dir/err.txt" ]; then echo "soak: stderr:"; head -20 "$dir/err.txt"; fi

python3 - "$dir" "${pid:-0}" "$rc" "$secs" "$interval" <<'EOF'
import json, os, re, sys

d, pid, rc, secs, interval = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
out = open(os.path.join(d, "out.txt")).read()
kv = dict(l.split("=", 1) for l in out.splitlines() if "=" in l and not l.startswith("rss "))
samples = [int(l.split()[2]) for l in out.splitlines() if l.startswith("rss ")]
fails = []
MiB = 1 << 20

def need(cond, what):
    if not cond:
        fails.append(what)

need(rc == 0, f"life_soak exited {rc}")
for k in ("bad", "forks", "forks_ok", "bounded", "rss_first_max", "rss_last_max"):
    need(k in kv, f"life_soak printed no {k}")
if fails:
    print("soak: FAILED:", "; ".join(fails))
    print(out[:2000])
    sys.exit(1)

files = sorted(f for f in os.listdir(d) if re.fullmatch(r"soak\.\d+\.json", f))
lines = bad_json = 0
parent_dumps, child_exit = [], 0
for f in files:
    fpid = int(f.split(".")[1])
    for n, line in enumerate(open(os.path.join(d, f), encoding="utf-8"), 1):
        lines += 1
        try:
            j = json.loads(line)
        except ValueError as e:
            bad_json += 1
            if bad_json <= 5:
                print(f"soak: {f}:{n}: not JSON: {e}")
            continue
        ok = (j.get("schema_version") == 2 and j.get("allocator") == "numamalloc" and j.get("pid") == fpid
              and j.get("reason") in ("interval", "exit"))
        need(ok, f"{f}:{n}: unexpected header {dict((k, j.get(k)) for k in ('schema_version', 'allocator', 'pid', 'reason'))}")
        if fpid == pid:
            parent_dumps.append(j)
        else:
            need(j.get("reason") == "exit", f"{f}:{n}: a child wrote a {j.get('reason')} dump")
            child_exit += 1

forks = int(kv["forks"])
intervals = [j for j in parent_dumps if j["reason"] == "interval"]
exits = [j for j in parent_dumps if j["reason"] == "exit"]
need(bad_json == 0, f"{bad_json} of {lines} dump lines are not valid JSON")
need(len(exits) == 1, f"the soak process wrote {len(exits)} exit dumps")
need(len(intervals) >= secs // (2 * interval), f"only {len(intervals)} interval dumps in {secs} s")
need(child_exit == forks, f"{forks} children forked, {child_exit} child exit dumps")
need(int(kv["bad"]) == 0, f"{kv['bad']} blocks lost their pattern or allocations failed")
need(kv["forks_ok"] == kv["forks"], f"{kv['forks_ok']} of {kv['forks']} children exited 0")

first, last = int(kv["rss_first_max"]), int(kv["rss_last_max"])
need(kv["bounded"] == "1" and last <= first * 1.2 + 16 * MiB,
     f"RSS not bounded: highest {last / MiB:.1f} MiB in the second half, {first / MiB:.1f} MiB in the first")
heap = [(j["uptime_ms"], j["summary"]["heap_bytes"]) for j in intervals]
half = secs * 1000 / 2
h1 = max((h for t, h in heap if t < half), default=0)
h2 = max((h for t, h in heap if t >= half), default=0)
need(h2 <= h1 * 1.2 + 16 * MiB, f"heap not bounded: {h2 / MiB:.1f} MiB in the second half, {h1 / MiB:.1f} MiB in the first")
rss_dump = [j["summary"].get("rss_bytes") or 0 for j in intervals]

print(f"soak: {kv.get('seconds')} s, {kv.get('worker_ops')} worker operations, {kv.get('churn_threads')} short threads, "
      f"{forks} forks ({kv['forks_ok']} ok)")
print(f"soak: RSS (VmRSS, {len(samples)} samples): min {int(kv['rss_min']) / MiB:.1f} MiB, highest first half "
      f"{first / MiB:.1f} MiB, second half {last / MiB:.1f} MiB, at the end {int(kv['rss_final']) / MiB:.1f} MiB")
print(f"soak: heap (dumps): highest first half {h1 / MiB:.1f} MiB, second half {h2 / MiB:.1f} MiB; "
      f"RSS in dumps {min(rss_dump, default=0) / MiB:.1f}..{max(rss_dump, default=0) / MiB:.1f} MiB")
print(f"soak: {len(files)} dump files, {lines} dumps ({len(intervals)} interval, {len(exits)} exit of the soak process, "
      f"{child_exit} child exit), {bad_json} not JSON")
if fails:
    print("soak: FAILED:")
    for f in fails[:20]:
        print("  " + f)
    sys.exit(1)
print("soak: ok")
EOF
