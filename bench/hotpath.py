#!/usr/bin/env python3
"""numamalloc benchmarks — hot-path instruction counts under callgrind.

Counts instructions (callgrind's Ir), which do not depend on how busy the machine
is, so they are the numbers to compare in review. For every allocator:
  pairN    instructions per malloc(N)+free pair, N = 16, 256, 4000 (small classes)
           and 262144 (a medium class): bench_hot runs
           the pair loop twice, with N1 and N2 iterations; (Ir2 - Ir1) / (N2 - N1)
           cancels start-up, exit and the first (slow) allocations. It includes the
           loop's own instructions (reported as `loop`, the same for everyone).
  start    instructions of a whole process that makes 10 allocations and exits
           (dynamic loading and initialisation of the allocator included).
"numamalloc+stats" is numamalloc with NUMAMALLOC_STATS=json (dump at exit).

Used by scripts/hotpath.sh (prints current next to bench/hotpath.golden) and by
bench/run.py (puts the numbers in the report). Standard library only.
"""
import argparse
import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile

SIZES = (16, 256, 4000, 262144)
MEDIUM = (262144,)   # target: at most MEDIUM_MAX_IR per pair from the thread cache
MEDIUM_MAX_IR = 100
N1, N2 = 100_000, 300_000
METRICS = tuple(f"pair{s}" for s in SIZES) + ("start",)


def allocators(nm_lib):
    """(name, LD_PRELOAD or None, extra environment) in report order."""
    lib = "/usr/lib/x86_64-linux-gnu"
    return [
        ("glibc", None, {}),
        ("jemalloc", f"{lib}/libjemalloc.so.2", {}),
        ("tcmalloc", f"{lib}/libtcmalloc_minimal.so.4", {}),
        ("mimalloc", f"{lib}/libmimalloc.so.2", {}),
        ("numamalloc", nm_lib, {}),
    ]


def stats_variant(nm_lib):
    return ("numamalloc+stats", nm_lib, {"NUMAMALLOC_STATS": "json", "NUMAMALLOC_STATS_FILE": "/dev/null"})


def _env(preload, extra):
    # a fixed, minimal environment: the dynamic loader and the allocators scan it
    # at start-up, so its size changes the start counts (not the per-pair ones)
    env = {"PATH": "/usr/bin:/bin", "LANG": "C"}
    if preload:
        env["LD_PRELOAD"] = preload
    env.update(extra)
    return env


def callgrind(prog_args, preload, extra, tmpdir):
    """Total Ir of one run, and the self cost of bench_hot's pair_loop (None if absent)."""
    fd, out = tempfile.mkstemp(prefix="cg.", dir=tmpdir)
    os.close(fd)
    cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--dump-instr=no"] + prog_args
    r = subprocess.run(cmd, env=_env(preload, extra), stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"callgrind {' '.join(prog_args)} (LD_PRELOAD={preload}) exited "
                           f"{r.returncode}: {r.stderr[-600:]}")
    total = None
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
                break
    if total is None:
        raise RuntimeError(f"no totals in callgrind output for {prog_args}")
    loop = None
    ann = subprocess.run(["callgrind_annotate", "--threshold=100", "--auto=no", out],
                         capture_output=True, text=True)
    for line in ann.stdout.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+\S*:pair_loop\s", line)
        if m:
            loop = int(m.group(1).replace(",", ""))
    os.unlink(out)
    return total, loop


def measure(bench_bin, nm_lib, with_stats=True, jobs=None, names=None, log=None):
    """{allocator: {metric: value}} plus {"loop": per-iteration loop cost}."""
    hot = os.path.join(bench_bin, "bench_hot")
    allocs = allocators(nm_lib)
    if with_stats:
        allocs.append(stats_variant(nm_lib))
    if names:
        allocs = [a for a in allocs if a[0] in names]
    tasks = []
    for name, pre, extra in allocs:
        for s in SIZES:
            for n in (N1, N2):
                tasks.append((name, f"pair{s}", n, [hot, "pairs", str(s), str(n)], pre, extra))
        tasks.append((name, "start", 0, [hot, "start"], pre, extra))
    results = {}
    jobs = jobs or os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="nm-hotpath.") as tmp, \
            concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
        futs = {ex.submit(callgrind, t[3], t[4], t[5], tmp): t for t in tasks}
        for fut in concurrent.futures.as_completed(futs):
            name, metric, n, *_ = futs[fut]
            results[(name, metric, n)] = fut.result()
    out = {}
    loop = None
    for name, _, _ in allocs:
        row = {}
        for s in SIZES:
            (t1, l1), (t2, l2) = results[(name, f"pair{s}", N1)], results[(name, f"pair{s}", N2)]
            row[f"pair{s}"] = round((t2 - t1) / (N2 - N1), 1)
            if name == "glibc" and l1 is not None and l2 is not None:
                loop = round((l2 - l1) / (N2 - N1), 1)
        row["start"] = results[(name, "start", 0)][0]
        out[name] = row
    out["loop"] = loop
    return out


def fmt(v):
    """integers as integers, per-pair counts with one decimal"""
    return f"{v:.0f}" if float(v) >= 1000 or float(v) == int(v) else f"{v:.1f}"


def read_golden(path):
    g = {}
    if not os.path.exists(path):
        return g
    cols = None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                m = re.match(r"#\s*allocator\s+(.*)", line)
                if m:
                    cols = m.group(1).split()
                continue
            parts = line.split()
            if cols and len(parts) == len(cols) + 1:
                g[parts[0]] = {c: float(v) for c, v in zip(cols, parts[1:])}
    return g


def write_golden(path, res, note=""):
    names = [k for k in res if k != "loop"]
    with open(path, "w") as f:
        f.write("# bench/hotpath.golden — callgrind instruction counts (Ir) of the hot paths.\n")
        f.write("# Written by `scripts/hotpath.sh --update`; `scripts/hotpath.sh` prints the current\n")
        f.write("# numbers next to these. Reported, not gated: a change here shows in review.\n")
        f.write("# pairN: instructions per malloc(N)+free pair, (Ir(N2 runs) - Ir(N1 runs)) / (N2 - N1),\n")
        f.write(f"#        N1={N1}, N2={N2}; includes {res.get('loop')} instructions of bench_hot's loop per pair.\n")
        f.write("# start: instructions of a whole process making 10 allocations (bench_hot start), run\n")
        f.write("#        with PATH and LANG only; varies by tens of instructions with the binary's path.\n")
        f.write("# numamalloc+stats: NUMAMALLOC_STATS=json (counters are always compiled in).\n")
        if note:
            f.write(f"# {note}\n")
        f.write("#\n# allocator " + " ".join(METRICS) + "\n")
        for n in names:
            f.write(f"{n:<18}" + " ".join(f"{fmt(res[n][m]):>10}" for m in METRICS) + "\n")


def compare_table(res, golden):
    """Lines: allocator, metric, golden, current, change."""
    lines = [f"{'allocator':<18} {'metric':<9} {'golden':>11} {'current':>11} {'change':>9}"]
    for n in (k for k in res if k != "loop"):
        for m in METRICS:
            cur = res[n][m]
            old = golden.get(n, {}).get(m)
            if old is None:
                lines.append(f"{n:<18} {m:<9} {'-':>11} {fmt(cur):>11} {'new':>9}")
            else:
                ch = (cur - old) / old * 100 if old else 0.0
                flag = "  <-- worse" if ch > 2 else ("  <-- better" if ch < -2 else "")
                lines.append(f"{n:<18} {m:<9} {fmt(old):>11} {fmt(cur):>11} {ch:>+8.1f}%{flag}")
    return lines


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", required=True, help="directory with bench_hot")
    ap.add_argument("--lib", required=True, help="libnumamalloc.so to measure")
    ap.add_argument("--golden", required=True)
    ap.add_argument("--update", action="store_true", help="rewrite the golden file with the current numbers")
    ap.add_argument("--note", default="", help="with --update: a comment line for the golden file "
                    "(which build, which library versions)")
    ap.add_argument("--jobs", type=int, default=None)
    a = ap.parse_args()
    res = measure(a.bin, a.lib, jobs=a.jobs)
    golden = read_golden(a.golden)
    print(f"hot-path instructions under callgrind (pairN per pair incl. {res['loop']} of loop; start per process)")
    for line in compare_table(res, golden):
        print(line)
    nm, mi = res["numamalloc"], res["mimalloc"]
    print()
    for s in SIZES:
        m = f"pair{s}"
        if s in MEDIUM:
            verdict = "meets" if nm[m] <= MEDIUM_MAX_IR else "misses"
            print(f"target medium pair <= {MEDIUM_MAX_IR} instructions, {s} B: numamalloc {fmt(nm[m])}: {verdict}")
            continue
        verdict = "meets" if nm[m] <= mi[m] else "misses"
        print(f"target fast path <= mimalloc, {s:>4} B: numamalloc {fmt(nm[m])} vs mimalloc {fmt(mi[m])}: {verdict}")
    st = res.get("numamalloc+stats")
    if st:
        for s in SIZES:
            m = f"pair{s}"
            d = (st[m] - nm[m]) / nm[m] * 100
            print(f"stats on vs off (counters always compiled in), {s:>4} B: {fmt(st[m])} vs {fmt(nm[m])} ({d:+.1f}%)")
    if a.update:
        write_golden(a.golden, res, a.note)
        print(f"\nwrote {a.golden}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
