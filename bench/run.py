#!/usr/bin/env python3
"""numamalloc benchmarks — every workload under glibc, jemalloc, tcmalloc, mimalloc
and numamalloc in one run, side by side.

Each workload runs under every allocator through bench/nmrun (LD_PRELOAD set for the
program only), repeats alternate the allocators (the order rotates every repeat, so
a burst of load from other users hits all of them alike), and the report takes the
median of the repeats for wall time, CPU time (user + sys) and peak RSS, the ratio of
each allocator to the fastest (leanest) for every workload, and the geometric mean of
those ratios per allocator. Single-threaded runs are pinned to one CPU per repeat
(--pin; see "pinning" below: this VM's CPUs differ on memory-bound work). Also
measured: hot-path instructions under callgrind (bench/hotpath.py), ns per
malloc+free pair, NUMAMALLOC_STATS on vs off, and the start-up of a process that
makes 10 allocations. Some workloads print a number of
their own (free-all-16t: RSS after the free); its median goes next to the tables.

Memory return over time (bench/bench_memreturn.c): four scenarios free a burst and
then watch their own RSS every 50 ms, under every allocator and numamalloc with
NUMAMALLOC_BACKGROUND=1 ("numamalloc+bg"), 3 runs each, medians per time point; a
table per scenario in latest.md and a line plot in memreturn.svg.

Writes bench/results/latest.md, latest.json, latest.svg and memreturn.svg. Called by bench/run.sh,
which installs the allocators and builds the programs first. Standard library only.
"""
import argparse
import concurrent.futures
import datetime
import hashlib
import json
import math
import os
import platform
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hotpath  # noqa: E402

ALLOC_COLORS = {"glibc": "#7f7f7f", "jemalloc": "#1f77b4", "tcmalloc": "#2ca02c",
                "mimalloc": "#ff7f0e", "numamalloc": "#d62728"}


# ---- workloads ---------------------------------------------------------------------
# (name, group, description, argv, scale): argv uses {bin} (benchmark programs),
# {work} (generated inputs) and {here} (bench/); scale is the multiplier of the
# program's default work in a full run (None: not scalable, the argv is complete).

def workloads(quick):
    q = 0.1 if quick else 1.0            # --quick: a tenth of the work
    W = []

    def w(name, group, desc, argv, scale=1.0, env=None, extra=None, pin=True):
        # extra: {key: regular expression with one number group}, read from the
        # program's output of every run (medians reported next to the tables)
        W.append({"name": name, "group": group, "desc": desc, "argv": argv,
                  "scale": None if scale is None else scale * q, "env": env or {}, "extra": extra or {},
                  "pin": pin})

    for size, label in ((16, "16"), (256, "256"), (4096, "4K"), (32768, "32K"), (262144, "256K"),
                        (2 << 20, "2M"), (32 << 20, "32M")):
        w(f"pairs-{label}", "size", f"malloc/write/free pairs of {label} B (8 more live), one thread",
          ["{bin}/bench_pairs", "pairs", "-b", str(size)])
    w("tmpbuf-256K", "size", "a 256 KiB scratch buffer taken and freed in a loop, nothing else of its size live",
      ["{bin}/bench_pairs", "pairs", "-b", "262144", "-o", "alone"])
    for order in ("lifo", "fifo", "random"):
        w(f"batch-{order}", "order", f"4096 blocks of 16-512 B, freed in {order.upper()} order",
          ["{bin}/bench_pairs", "batch", "-o", order])
    w("pareto-1t", "mix", "Pareto sizes 16 B-4 MiB, mixed lifetimes, 1 thread",
      ["{bin}/bench_pairs", "pareto", "-t", "1"])
    w("pareto-16t", "mix", "Pareto sizes, mixed lifetimes, 16 threads",
      ["{bin}/bench_pairs", "pareto", "-t", "16"], pin=False)
    w("realloc", "mix", "256 buffers grown by realloc (append / 1.5x)", ["{bin}/bench_pairs", "realloc"])
    w("calloc-large", "mix", "calloc 64 KiB-16 MiB, zeroing checked", ["{bin}/bench_pairs", "calloc"])
    w("aligned", "mix", "posix_memalign/aligned_alloc 16 B-64 KiB alignment", ["{bin}/bench_pairs", "aligned"])
    w("prodcons-1x2", "xthread", "1 producer/consumer pair, frees by the consumer",
      ["{bin}/bench_xthread", "prodcons", "-t", "1"], pin=False)
    w("prodcons-8x2", "xthread", "8 producer/consumer pairs (16 threads)",
      ["{bin}/bench_xthread", "prodcons", "-t", "8"], pin=False)
    w("larson-2t", "xthread", "larson server: 2 lineages of replaced threads",
      ["{bin}/bench_xthread", "larson", "-t", "2"], pin=False)
    w("larson-16t", "xthread", "larson server: 16 lineages of replaced threads",
      ["{bin}/bench_xthread", "larson", "-t", "16"], pin=False)
    w("xmalloc-100x100", "xthread", "100 producers vs 100 consumers, one channel",
      ["{bin}/bench_xthread", "xmalloc", "-t", "100"], pin=False)
    w("cache-scratch-2t", "false-sharing", "passive false sharing (cache-scratch), 2 threads",
      ["{bin}/bench_xthread", "scratch", "-t", "2"], pin=False)
    w("cache-scratch-16t", "false-sharing", "passive false sharing, 16 threads",
      ["{bin}/bench_xthread", "scratch", "-t", "16"], pin=False)
    w("cache-thrash-2t", "false-sharing", "active false sharing (cache-thrash), 2 threads",
      ["{bin}/bench_xthread", "thrash", "-t", "2"], pin=False)
    w("cache-thrash-16t", "false-sharing", "active false sharing, 16 threads",
      ["{bin}/bench_xthread", "thrash", "-t", "16"], pin=False)
    w("thread-churn", "threads", "waves of 8 short threads, hand-over between waves",
      ["{bin}/bench_xthread", "churn"], pin=False)
    w("large-blocks", "large", "8 live blocks of 1-8 MiB, every page written",
      ["{bin}/bench_large", "large"])
    w("fragmentation", "large", "allocate, free random 90 %, reallocate 2x sizes (peak RSS)",
      ["{bin}/bench_large", "frag"])
    w("pareto-1t-touch", "mix", "Pareto sizes 16 B-1 MiB, mixed lifetimes, every block written in full, 1 thread",
      ["{bin}/bench_mix", "pareto-touch"])
    w("interp-strings", "mix", "interpreter: strings grown by realloc, 48-96 B dict entries, 100 KiB read buffers",
      ["{bin}/bench_mix", "interp"])
    for n in (1, 4):
        w(f"prodcons64-{n}x{n}", "xthread", f"{n} producer(s) hand batches of 4096 x 64 B (batch array just over "
          f"32 KiB) to {n} consumer(s)", ["{bin}/bench_threads", "prodcons64", "-t", str(n)], pin=False)
    w("dbuf-64t", "xthread", "64 threads, 64 B-512 KiB buffers (every page written), window of 32, "
      "1 in 16 freed by another thread (peak RSS)", ["{bin}/bench_threads", "dbuf", "-t", "64"], pin=False)
    w("many-256t", "threads", "256 threads at once on 2 CPUs, 10,000 malloc/realloc/free each, "
      "cross-thread frees through a shared array", ["{bin}/bench_threads", "many", "-t", "256"], pin=False)
    w("free-all-16t", "large", "16 threads allocate 64 MiB of 256 KiB blocks each (1 GiB live), free all; "
      "RSS 100 ms later", ["{bin}/bench_threads", "free-all", "-t", "16"],
      extra={"rss_after_free_kb": r"rss_after_free_kb (\d+)"}, pin=False)
    w("cxx-containers", "real", "C++: strings, unordered_map, map, vector, shared_ptr",
      ["{bin}/bench_cxx"])
    w("python-json", "real", "python3: build records, JSON dump/load, index, sort",
      ["/usr/bin/python3", "{here}/real_json.py", "0.25" if quick else "1"], scale=None)
    w("sort", "real", "GNU sort of a generated text file (LC_ALL=C, 2 threads)",
      ["sort", "-o", "/dev/null", "{work}/words.txt"], scale=None, env={"LC_ALL": "C"}, pin=False)
    w("gcc-O2", "real", "gcc -O2 -c of a generated C file",
      ["gcc", "-O2", "-c", "-o", "{work}/big.o", "{work}/big.c"], scale=None)
    w("sqlite-insert", "real", "sqlite3 :memory:, indexed inserts, update, delete, group by",
      ["sqlite3", ":memory:", ".read {work}/insert.sql"], scale=None)
    return W


def make_inputs(work, quick):
    """Inputs of the real-program workloads; deterministic (fixed seed)."""
    rng = random.Random(1234)
    letters = "abcdefghijklmnopqrstuvwxyz"
    # sort: lines of words and numbers
    nlines = 250_000 if quick else 2_500_000
    with open(os.path.join(work, "words.txt"), "w") as f:
        for i in range(nlines):
            f.write("".join(rng.choice(letters) for _ in range(rng.randint(4, 24))))
            f.write(f" {rng.randint(0, 10**9)} {i}\n")
    # gcc: many functions with loops, switches and structs
    nfuncs = 30 if quick else 180
    with open(os.path.join(work, "big.c"), "w") as f:
        f.write("#include <stddef.h>\nstruct s { int a, b; double c; char name[16]; };\n")
        f.write("static inline int mix(int x, int y) { return (x * 31) ^ (y >> 3); }\n")
        for i in range(nfuncs):
            f.write(f"int f{i}(struct s *v, size_t n, int k) {{\n  int acc = {i};\n")
            f.write("  for (size_t j = 0; j < n; j++) {\n    switch ((v[j].a + k) & 7) {\n")
            for c in range(8):
                f.write(f"    case {c}: acc += mix(v[j].b, {rng.randint(1, 999)}) * {c + 1}; "
                        f"v[j].c += acc * {rng.random():.3f}; break;\n")
            f.write("    }\n    if (acc > %d) acc -= v[j].name[j & 15];\n  }\n" % rng.randint(100, 10**6))
            f.write(f"  for (int r = 0; r < k; r++) acc = mix(acc, r * {i + 1});\n  return acc;\n}}\n")
        f.write("int all(struct s *v, size_t n) { int t = 0;\n")
        for i in range(nfuncs):
            f.write(f"  t += f{i}(v, n, {i % 7});\n")
        f.write("  return t; }\n")
    # sqlite: inserts in one transaction into an indexed table, then queries
    nrows = 30_000 if quick else 300_000
    with open(os.path.join(work, "insert.sql"), "w") as f:
        f.write("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, val REAL, payload TEXT);\n")
        f.write("CREATE INDEX t_name ON t(name);\nBEGIN;\n")
        for i in range(nrows):
            name = "".join(rng.choice(letters) for _ in range(rng.randint(3, 12)))
            payload = "".join(rng.choice(letters) for _ in range(rng.randint(10, 200)))
            f.write(f"INSERT INTO t(name, val, payload) VALUES('{name}', {rng.random():.6f}, '{payload}');\n")
        f.write("COMMIT;\n")
        f.write("SELECT substr(name, 1, 1), count(*), avg(val) FROM t GROUP BY 1 ORDER BY 2 DESC LIMIT 3;\n")
        f.write("UPDATE t SET val = val * 2, payload = payload || 'x' WHERE id % 3 = 0;\n")
        f.write("DELETE FROM t WHERE id % 5 = 0;\nSELECT count(*), sum(length(payload)) FROM t;\n")


# ---- running ---------------------------------------------------------------------

class Runner:
    def __init__(self, bench_bin, timeout, log):
        self.nmrun = os.path.join(bench_bin, "nmrun")
        self.timeout = timeout
        self.log = log
        self.tmp = tempfile.mkdtemp(prefix="nm-bench-out.")

    def run(self, argv, preload, env, runs=1, cwd=None, out_name="out.txt", cpu=None):
        """list of {wall, user, sys, maxrss_kb, status, cpu} (one per run), plus the output text;
        runs in parallel threads need their own out_name; cpu: run on that CPU only"""
        out = os.path.join(self.tmp, out_name)
        if os.path.exists(out):
            os.unlink(out)
        cmd = [self.nmrun, "-n", str(runs), "-o", out, "-t", str(self.timeout)]
        if preload:
            cmd += ["-E", f"LD_PRELOAD={preload}"]
        else:
            cmd += ["-U", "LD_PRELOAD"]
        for k, v in env.items():
            cmd += ["-E", f"{k}={v}"]
        cmd += ["--"] + argv
        pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, preexec_fn=pin)
        res = []
        for line in r.stdout.splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue
            d["cpu"] = d["user"] + d["sys"]
            res.append(d)
        if not res:
            res = [{"wall": None, "user": None, "sys": None, "cpu": None, "maxrss_kb": None,
                    "status": f"runner failed: {r.stderr.strip()[-200:]}"}]
        text = open(out, errors="replace").read() if os.path.exists(out) else ""
        return res, text

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)


def cpu_busy_seconds():
    """all CPUs' busy time so far (from /proc/stat), seconds"""
    with open("/proc/stat") as f:
        parts = f.readline().split()
    ticks = os.sysconf("SC_CLK_TCK")
    user, nice, system, idle, iowait, irq, softirq, steal = (int(x) for x in parts[1:9])
    return (user + nice + system + irq + softirq + steal) / ticks


def own_cpu_seconds():
    """CPU used by this process and every child it waited for"""
    c = resource.getrusage(resource.RUSAGE_CHILDREN)
    s = resource.getrusage(resource.RUSAGE_SELF)
    return c.ru_utime + c.ru_stime + s.ru_utime + s.ru_stime


class LoadMeter:
    """Share of the machine other users took while we measured: busy time of all
    CPUs minus our own (children included), over wall time x CPUs."""

    def __init__(self):
        self.t0, self.busy0, self.own0 = time.monotonic(), cpu_busy_seconds(), own_cpu_seconds()

    def foreign(self):
        wall = time.monotonic() - self.t0
        if wall <= 0:
            return 0.0
        other = (cpu_busy_seconds() - self.busy0) - (own_cpu_seconds() - self.own0)
        return max(0.0, other) / (wall * (os.cpu_count() or 1))


def rotated(seq, k):
    k %= len(seq)
    return seq[k:] + seq[:k]


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def geomean(xs):
    xs = [x for x in xs if x]
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else None


# ---- pinning -----------------------------------------------------------------------
# The CPUs of a VM need not be alike: on the 2-CPU VM these runs were made on, one
# CPU runs memory-bound code much slower than the other for minutes at a time, and
# which one changes (its neighbours' load; compute-bound loops run the same on both),
# so an unpinned run's time said more about which CPU the scheduler picked than about
# the allocator. Single-threaded workloads therefore run on one CPU, the same for
# every allocator of a repeat: the one a memory-bound probe finds fastest just before
# the repeat. Threaded workloads use every CPU, as a program would.

def probe_cpus(runner, bench_bin, rounds=3):
    """{cpu: fastest wall seconds of a short bench_cxx under glibc}, alternating CPUs"""
    cpus = sorted(os.sched_getaffinity(0))
    best = {}
    for _ in range(rounds):
        for c in cpus:
            res, _ = runner.run([os.path.join(bench_bin, "bench_cxx"), "-s", "0.05"], None, {}, cpu=c)
            w = res[0]["wall"]
            if res[0]["status"] == "exit 0" and w is not None:
                best[c] = min(best.get(c, w), w)
    return best


def pin_line(meta, results):
    """the report's line on where single-threaded workloads ran"""
    pinned = [r for r in results if r.get("cpus") and r["cpus"][0] is not None]
    if not pinned:
        return "- no workload pinned to a CPU (--pin none, or one CPU)"
    cpus = sorted({c for r in pinned for c in r["cpus"]})
    gaps = sorted(max(p.values()) / min(p.values()) for r in pinned for p in r["probe_s"] if len(p) > 1)
    how = (f"the CPU a memory-bound probe (bench_cxx -s 0.05 under glibc, 3 runs per CPU) found fastest just "
           f"before each repeat; slowest/fastest CPU in the probes: median {statistics.median(gaps):.2f}x, "
           f"max {gaps[-1]:.2f}x" if gaps else f"CPU {meta.get('pin')}, as asked")
    many = "the {} single-threaded workloads".format(len(pinned)) if len(pinned) > 1 else "the single-threaded workload"
    return (f"- {many} ran pinned to one CPU, the same for every allocator "
            f"of a repeat (CPUs used: {', '.join(map(str, cpus))}): {how}; threaded workloads ran on every CPU")


def choose_cpu(runner, bench_bin, pin):
    """(cpu or None, probe times): pin is "auto", "none" or a CPU number"""
    if pin == "none" or len(os.sched_getaffinity(0)) < 2:
        return None, {}
    if pin != "auto":
        return int(pin), {}
    probe = probe_cpus(runner, bench_bin)
    return (min(probe, key=probe.get) if probe else None), probe


# ---- phases ------------------------------------------------------------------------

def run_workloads(runner, allocs, wls, repeats, subst, log, pin="auto"):
    results = []
    for i, wl in enumerate(wls, 1):
        argv = [a.format(**subst) for a in wl["argv"]]
        if wl["scale"] is not None:
            argv += ["-s", f"{wl['scale']:g}"]
        cpus, probes = [], []
        meter = LoadMeter()
        runs = {a[0]: [] for a in allocs}
        failures = {}
        t0 = time.monotonic()
        for rep in range(repeats):
            cpu, probe = choose_cpu(runner, subst["bin"], pin) if wl["pin"] else (None, {})
            cpus.append(cpu)
            probes.append(probe)
            for name, pre, extra in rotated(allocs, rep):
                env = dict(extra)
                env.update(wl["env"])
                res, text = runner.run(argv, pre, env, cwd=subst["work"], cpu=cpu)
                r = res[0]
                if wl.get("extra"):
                    found = {k: re.search(rx, text) for k, rx in wl["extra"].items()}
                    r["extra"] = {k: float(m.group(1)) if m else None for k, m in found.items()}
                runs[name].append(r)
                if r["status"] != "exit 0":
                    failures.setdefault(name, f"{r['status']}: {text.strip()[-300:]}")
        med = {}
        for name in runs:
            ok = [r for r in runs[name] if r["status"] == "exit 0"]
            if name in failures or not ok:
                med[name] = None
            else:
                med[name] = {"wall": median(r["wall"] for r in ok), "cpu": median(r["cpu"] for r in ok),
                             "rss_kb": median(r["maxrss_kb"] for r in ok)}
        good = {n: m for n, m in med.items() if m}
        best_t = min((m["wall"] for m in good.values()), default=None)
        best_c = min((m["cpu"] for m in good.values()), default=None)
        best_r = min((m["rss_kb"] for m in good.values()), default=None)
        ratio = {n: ({"wall": m["wall"] / best_t, "cpu": m["cpu"] / best_c if best_c else None,
                      "rss": m["rss_kb"] / best_r} if m else None) for n, m in med.items()}
        rec = {"name": wl["name"], "group": wl["group"], "desc": wl["desc"], "argv": argv,
               "median": med, "ratio": ratio, "runs": runs, "failures": failures,
               "foreign_load": round(meter.foreign(), 3), "seconds": round(time.monotonic() - t0, 1),
               "cpus": cpus, "probe_s": [{str(c): round(t, 4) for c, t in p.items()} for p in probes]}
        if wl.get("extra"):
            rec["extra"] = {k: {n: (median(r["extra"][k] for r in runs[n] if r["status"] == "exit 0")
                                    if med[n] else None) for n in runs} for k in wl["extra"]}
        results.append(rec)
        cells = "  ".join(f"{n} {m['wall']:.3f}s x{ratio[n]['wall']:.2f}" if m else f"{n} FAIL"
                          for n, m in med.items())
        where = "" if cpus[0] is None else ", CPUs " + " ".join(map(str, cpus))
        log(f"[{i:>2}/{len(wls)}] {wl['name']:<18} {cells}  (other load {rec['foreign_load']:.0%}, {rec['seconds']}s{where})")
        for n, why in failures.items():
            log(f"        {n} failed: {why}")
    return results


def run_micro(runner, allocs, sizes, n, repeats, bench_bin, log, pin="auto"):
    """ns per malloc+free pair, median over alternated repeats (pinned as the
    single-threaded workloads are)"""
    hot = os.path.join(bench_bin, "bench_hot")
    vals = {a[0]: {s: [] for s in sizes} for a in allocs}
    for rep in range(repeats):
        cpu, _ = choose_cpu(runner, bench_bin, pin)
        for name, pre, extra in rotated(allocs, rep):
            for s in sizes:
                res, text = runner.run([hot, "time", str(s), str(n)], pre, extra, cpu=cpu)
                m = re.search(r"ns_per_pair ([\d.]+)", text)
                if res[0]["status"] == "exit 0" and m:
                    vals[name][s].append(float(m.group(1)))
                else:
                    log(f"  ns/pair {name} {s}: {res[0]['status']} {text.strip()[-200:]}")
    return {name: {str(s): median(v[s]) for s in sizes} for name, v in vals.items()}, vals


def run_startup(runner, allocs, blocks, per_block, bench_bin, log, pin="auto"):
    hot = os.path.join(bench_bin, "bench_hot")
    walls = {a[0]: [] for a in allocs}
    for b in range(blocks):
        cpu, _ = choose_cpu(runner, bench_bin, pin)
        for name, pre, extra in rotated(allocs, b):
            res, text = runner.run([hot, "start"], pre, extra, runs=per_block, cpu=cpu)
            for r in res:
                if r["status"] == "exit 0":
                    walls[name].append(r["wall"])
                else:
                    log(f"  startup {name}: {r['status']} {text.strip()[-200:]}")
    out = {}
    for name, w in walls.items():
        out[name] = {"median_ms": median(w) * 1e3 if w else None, "runs": len(w),
                     "p10_ms": sorted(w)[len(w) // 10] * 1e3 if w else None,
                     "p90_ms": sorted(w)[len(w) * 9 // 10] * 1e3 if w else None}
    return out


def run_fork(runner, allocs, blocks, forks, bench_bin, log, pin="auto"):
    """us per fork + child malloc/free/_exit + wait (bench_hot fork): blocks alternated runs
    per allocator, pinned like start-up; medians"""
    hot = os.path.join(bench_bin, "bench_hot")
    us = {a[0]: [] for a in allocs}
    for b in range(blocks):
        cpu, _ = choose_cpu(runner, bench_bin, pin)
        for name, pre, extra in rotated(allocs, b):
            res, text = runner.run([hot, "fork", str(forks)], pre, extra, cpu=cpu)
            m = re.search(r"us_per_fork ([\d.]+)", text)
            if res[0]["status"] == "exit 0" and m:
                us[name].append(float(m.group(1)))
            else:
                log(f"  fork {name}: {res[0]['status']} {text.strip()[-200:]}")
    return {name: {"median_us": median(v) if v else None, "runs": len(v),
                   "min_us": min(v) if v else None, "max_us": max(v) if v else None} for name, v in us.items()}


# ---- memory return over time -------------------------------------------------------
# bench_memreturn samples its own RSS every 50 ms around a burst and its free; each
# scenario runs under every allocator plus numamalloc+bg (NUMAMALLOC_BACKGROUND=1,
# NUMAMALLOC_DECAY_MS left at its default). The runs mostly sleep while they
# watch, so a few run at a time (--memreturn-jobs) to keep the suite short; CPU
# contention can only stretch a burst, not change what stays resident after it.

MEMRETURN_SCENARIOS = (
    ("large-then-pairs", "20 x 3 MiB written and freed; then a 1 MiB malloc/write first and last page/free "
                         "pair every 100 us"),
    ("burst-idle", "about 400 MiB of mixed sizes (16 B-32 KiB, 64-512 KiB, 2-8 MiB) written and freed; "
                   "then no allocator call at all"),
    ("burst-active", "the same burst and free; then 64-byte malloc/free pairs, 100 every 100 us"),
    ("threads-idle", "8 threads allocate about 40 MiB each of the same mix, free it and wait on a condition "
                     "variable (alive); the main thread watches"),
)
# (key, column heading, seconds after the free; None: the burst-end reading)
MEMRETURN_POINTS = (("burst_end", "burst end", None), ("freed", "after free", 0.0), ("+0.5s", "+0.5 s", 0.5),
                    ("+1s", "+1 s", 1.0), ("+2s", "+2 s", 2.0), ("+4s", "+4 s", 4.0))
MEMRETURN_STEP = 0.05            # the program's sampling period, s
MEMRETURN_BEFORE = 0.5           # the plot starts this long before the free


def grid(head, rows, md):
    """a table: markdown, or plain text with the first column left-aligned and the rest right"""
    if md:
        return ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)] + ["| " + " | ".join(c) + " |" for c in rows]
    widths = [max(len(x[i]) for x in [head] + rows) for i in range(len(head))]
    return ["  ".join(c.ljust(widths[i]) if i == 0 else c.rjust(widths[i]) for i, c in enumerate(row))
            for row in [head] + rows]


def also_variants(specs, taken):
    """--also LABEL=LIB: (label, lib, {}) for each; exits on a bad spec"""
    out = []
    for spec in specs:
        label, sep, lib = spec.partition("=")
        if not sep or not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", label) or not lib:
            sys.exit(f"run.py: --also {spec!r}: expected LABEL=PATH, LABEL of a-z 0-9 _ . - "
                     "(e.g. exp=/tmp/x/libnumamalloc.so)")
        if label in taken or label.startswith("numamalloc"):
            sys.exit(f"run.py: --also {spec!r}: label {label!r} is taken (allocators and numamalloc* are reserved)")
        if not os.path.isfile(lib):
            sys.exit(f"run.py: --also {spec!r}: {lib} not found")
        taken = taken + [label]
        out.append((label, os.path.realpath(lib), {}))
    return out


def variant_lines(results, variants, md):
    """each --also build against numamalloc: ratios of the median and the fastest wall time and of the
    median peak RSS (on a noisy host the fastest run is often the steadier estimate)"""
    nm = "numamalloc"
    keys = (("wall", "time"), ("best", "fastest run"), ("rss_kb", "RSS"))
    head = ["workload"] + [f"{v} {label}" for v in variants for _, label in keys]
    rows, logs = [], {v: {k: [] for k, _ in keys} for v in variants}

    def value(r, n, k):
        if k != "best":
            return (r["median"].get(n) or {}).get(k)
        walls = [x["wall"] for x in r["runs"].get(n, []) if x["status"] == "exit 0"]
        return min(walls) if walls else None

    for r in results:
        cells = [r["name"]]
        for v in variants:
            for k, _ in keys:
                base, m = value(r, nm, k), value(r, v, k)
                if base and m:
                    logs[v][k].append(m / base)
                    cells.append(f"{m / base:.3f}x")
                else:
                    cells.append("-")
        rows.append(cells)
    rows.append(["geomean"] + [f"{geomean(logs[v][k]):.3f}x" if logs[v][k] else "-"
                               for v in variants for k, _ in keys])
    return grid(head, rows, md)


def memreturn_variants(allocs):
    v = list(allocs)
    for name, pre, extra in allocs:
        if name == "numamalloc":
            v.append(("numamalloc+bg", pre, dict(extra, NUMAMALLOC_BACKGROUND="1")))
    return v


def parse_memreturn(text):
    """{burst_end, freed, ops, series: [(seconds from the end of the free, rss bytes)]} or None"""
    marks, samples = {}, []
    for line in text.splitlines():
        f = line.split()
        try:
            if len(f) == 4 and f[0] == "#" and f[1] in ("burst_end", "freed"):
                marks[f[1]] = (float(f[2]), int(f[3]))
            elif len(f) == 3 and f[0] == "#" and f[1] == "ops":
                marks["ops"] = int(f[2])
            elif len(f) == 2 and f[0] != "#":
                samples.append((float(f[0]), int(f[1])))
        except ValueError:
            continue                                  # a warning line from the allocator
    if "burst_end" not in marks or "freed" not in marks or not samples:
        return None
    t0 = marks["freed"][0]
    series = [((t - t0) / 1000, rss) for t, rss in samples]
    series += [((marks["burst_end"][0] - t0) / 1000, marks["burst_end"][1]), (0.0, marks["freed"][1])]
    series.sort()
    return {"burst_end": marks["burst_end"][1], "freed": marks["freed"][1], "ops": marks.get("ops"),
            "burst_t": round((marks["burst_end"][0] - t0) / 1000, 4),
            "series": [(round(t, 4), r) for t, r in series]}


def value_at(series, t):
    """RSS of the last sample taken at or before t (with half a period for the sampling
    jitter); None before the first sample or after the last"""
    tol = MEMRETURN_STEP / 2
    if not series or t > series[-1][0] + tol:
        return None
    v = None
    for ts, rss in series:
        if ts > t + tol:
            break
        v = rss
    return v


def interp_at(series, t):
    """RSS at t, linear between the samples around it; None outside the samples"""
    if not series or t < series[0][0] or t > series[-1][0] + MEMRETURN_STEP / 2:
        return None
    prev = series[0]
    for cur in series:
        if cur[0] >= t:
            if cur[0] == prev[0]:
                return cur[1]
            return prev[1] + (cur[1] - prev[1]) * (t - prev[0]) / (cur[0] - prev[0])
        prev = cur
    return prev[1]


def run_memreturn(runner, allocs, scenarios, repeats, window, jobs, bench_bin, log):
    variants = memreturn_variants(allocs)
    prog = os.path.join(bench_bin, "bench_memreturn")
    grid = [round(-MEMRETURN_BEFORE + MEMRETURN_STEP * i, 3)
            for i in range(int(round((window + MEMRETURN_BEFORE) / MEMRETURN_STEP)) + 1)]
    out = {}
    for si, (scen, desc) in enumerate(scenarios):
        meter, t0 = LoadMeter(), time.monotonic()
        tasks = [v for rep in range(repeats) for v in rotated(variants, rep + si)]

        def one(k):
            name, pre, extra = tasks[k]
            res, text = runner.run([prog, scen, "-w", f"{window:g}"], pre, extra, out_name=f"memreturn{k}.txt")
            return name, res[0], text

        with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as ex:
            done = list(ex.map(one, range(len(tasks))))
        per = {v[0]: {"runs": [], "failure": None} for v in variants}
        for name, r, text in done:
            parsed = parse_memreturn(text) if r["status"] == "exit 0" else None
            if parsed is None:
                per[name]["failure"] = per[name]["failure"] or f"{r['status']}: {text.strip()[-300:]}"
                continue
            pts = {"burst_end": parsed["burst_end"], "freed": parsed["freed"]}
            for key, _, t in MEMRETURN_POINTS[2:]:
                pts[key] = value_at(parsed["series"], t)
            per[name]["runs"].append({"points": pts, "ops": parsed["ops"], "burst_t": parsed["burst_t"], "wall": r["wall"],
                                      "maxrss_kb": r["maxrss_kb"], "series": parsed["series"]})
        for name, d in per.items():
            runs = d["runs"] if not d["failure"] else []
            d["points"] = {key: median(r["points"][key] for r in runs) for key, _, _ in MEMRETURN_POINTS} if runs else None
            d["ops"] = median(r["ops"] for r in runs) if runs else None
            # the plotted line: at each point of a 50 ms grid, the median of the runs that
            # cover it (all of them: runs whose burst started later begin the line later)
            d["series"] = []
            for g in grid:
                vals = [interp_at(r["series"], g) for r in runs]
                if vals and None not in vals:
                    d["series"].append([g, round(median(vals))])
            if runs:
                # the burst's end and the free's end exactly, not where the grid falls
                bt = median(r["burst_t"] for r in runs)
                d["series"] = sorted([p for p in d["series"] if not bt <= p[0] <= 0]
                                     + [[bt, d["points"]["burst_end"]], [0.0, d["points"]["freed"]]])
        out[scen] = {"desc": desc, "variants": per, "foreign_load": round(meter.foreign(), 3),
                     "seconds": round(time.monotonic() - t0, 1)}
        cells = "  ".join(f"{n} {fmt_mib(d['points']['freed'])}>{fmt_mib(d['points']['+1s'])}"
                          if d["points"] else f"{n} FAIL" for n, d in per.items())
        log(f"[memreturn] {scen:<17} after free > +1 s, MiB: {cells}  "
            f"(other load {out[scen]['foreign_load']:.0%}, {out[scen]['seconds']}s)")
        for n, d in per.items():
            if d["failure"]:
                log(f"        {n} failed: {d['failure']}")
    return {"window_s": window, "repeats": repeats, "jobs": jobs, "step_s": MEMRETURN_STEP,
            "variants": [v[0] for v in variants],
            "env": {v[0]: {k: x for k, x in v[2].items()} for v in variants}, "scenarios": out}


def fmt_mib(b):
    return "-" if b is None else (f"{b / 2**20:.1f}" if b < 100 * 2**20 else f"{b / 2**20:.0f}")


# ---- reporting ---------------------------------------------------------------------

def fmt_s(x):
    return "-" if x is None else (f"{x:.3f}s" if x < 10 else f"{x:.1f}s")


def fmt_mb(kb):
    return "-" if kb is None else (f"{kb / 1024:.1f}M" if kb < 1024 * 1000 else f"{kb / 1024 / 1024:.2f}G")


def summarize(results, names):
    """geomeans over workloads where every allocator ran, per allocator"""
    complete = [r for r in results if all(r["median"].get(n) for n in names)]
    g = {}
    for n in names:
        g[n] = {"time": geomean([r["ratio"][n]["wall"] for r in complete]),
                "cpu": geomean([r["ratio"][n]["cpu"] for r in complete]),
                "rss": geomean([r["ratio"][n]["rss"] for r in complete])}
    return g, len(complete)


def targets(results, names, geo, hot, onoff, startup):
    """every performance target, with where we stand"""
    T = []
    nm = "numamalloc"
    peers = [n for n in names if n != nm]
    if geo.get(nm) and geo[nm]["time"]:
        behind = [p for p in peers if geo[p]["time"] and geo[p]["time"] <= geo[nm]["time"]]
        T.append(("time geomean ahead of every peer", not behind,
                  f"numamalloc {geo[nm]['time']:.3f}x; " + ", ".join(f"{p} {geo[p]['time']:.3f}x" for p in peers)
                  + (f"; not ahead of {', '.join(behind)}" if behind else "")))
    ok = [r for r in results if r["ratio"].get(nm)]
    over5 = [r for r in ok if r["ratio"][nm]["wall"] > 1.05]
    over25 = [r for r in ok if r["ratio"][nm]["wall"] > 1.25]
    fails = [r["name"] for r in results if not r["ratio"].get(nm)]
    T.append(("<= 1.05x the fastest on every workload", not over5 and not fails,
              f"{len(ok) - len(over5)}/{len(results)} workloads within 1.05x"
              + (f"; over: " + ", ".join(f"{r['name']} {r['ratio'][nm]['wall']:.2f}x" for r in over5) if over5 else "")
              + (f"; failed: {', '.join(fails)}" if fails else "")))
    T.append(("none slower than 1.25x the fastest", not over25 and not fails,
              ("slower than 1.25x: " + ", ".join(f"{r['name']} {r['ratio'][nm]['wall']:.2f}x" for r in over25))
              if over25 else "none over 1.25x"))
    if geo.get(nm) and geo[nm]["rss"]:
        T.append(("peak RSS geomean <= 1.15x the leanest", geo[nm]["rss"] <= 1.15,
                  f"numamalloc {geo[nm]['rss']:.3f}x; " + ", ".join(f"{p} {geo[p]['rss']:.3f}x" for p in peers)))
    if hot and "numamalloc" in hot and "mimalloc" in hot:
        small = [s for s in hotpath.SIZES if s not in hotpath.MEDIUM]
        worse = [s for s in small if hot[nm][f"pair{s}"] > hot["mimalloc"][f"pair{s}"]]
        T.append(("fast path <= mimalloc's instruction count", not worse,
                  ", ".join(f"{s} B: {hotpath.fmt(hot[nm][f'pair{s}'])} vs {hotpath.fmt(hot['mimalloc'][f'pair{s}'])}"
                            for s in small) + " instructions per pair"))
        for s in hotpath.MEDIUM:
            v = hot[nm].get(f"pair{s}")
            if v is not None:
                T.append((f"medium pair ({s} B) <= {hotpath.MEDIUM_MAX_IR} instructions", v <= hotpath.MEDIUM_MAX_IR,
                          f"numamalloc {hotpath.fmt(v)}; tcmalloc {hotpath.fmt(hot.get('tcmalloc', {}).get(f'pair{s}', 0))}, "
                          f"mimalloc {hotpath.fmt(hot['mimalloc'][f'pair{s}'])}"))
    if hot and "numamalloc+stats" in hot:
        d_ir = max((hot["numamalloc+stats"][f"pair{s}"] - hot[nm][f"pair{s}"]) / hot[nm][f"pair{s}"]
                   for s in hotpath.SIZES)
        d_ns = []
        if onoff and onoff.get("numamalloc+stats"):
            for s, v in onoff[nm].items():
                w = onoff["numamalloc+stats"].get(s)
                if v and w:
                    d_ns.append((s, (w - v) / v))
        worst_ns = max(d for _, d in d_ns) if d_ns else None
        T.append(("stats on vs off <= 3% (numamalloc's counters are always compiled in; "
                  "NUMAMALLOC_STATS only adds the dump)",
                  d_ir <= 0.03 and (worst_ns is None or worst_ns <= 0.03),
                  f"instructions per pair {d_ir:+.1%} (worst size)"
                  + ("; ns/pair " + ", ".join(f"{s} B {d:+.1%}" for s, d in d_ns)
                     + " (medians of alternated runs; timing noise included)" if d_ns else "")))
    if startup and startup.get(nm) and startup.get("mimalloc") and startup[nm]["median_ms"]:
        a, b = startup[nm]["median_ms"], startup["mimalloc"]["median_ms"]
        ir = ""
        ok_ir = True
        if hot and nm in hot and "mimalloc" in hot:
            ok_ir = hot[nm]["start"] <= hot["mimalloc"]["start"]
            ir = f"; instructions {hotpath.fmt(hot[nm]['start'])} vs {hotpath.fmt(hot['mimalloc']['start'])}"
        T.append(("start-up no slower than mimalloc", a <= b * 1.02 and ok_ir,
                  f"median wall {a:.3f} ms vs {b:.3f} ms (within 2 % counts as equal){ir}"))
    return T


def table_lines(results, names, key, md):
    """time (key=wall), cpu or rss table"""
    head = ["workload"] + names
    rows = []
    for r in results:
        cells = [r["name"]]
        for n in names:
            m = r["median"].get(n)
            if not m:
                cells.append("FAIL")
                continue
            rat = r["ratio"][n]["wall" if key == "wall" else key]
            v = fmt_s(m[key]) if key in ("wall", "cpu") else fmt_mb(m["rss_kb"])
            c = f"{v} {rat:.2f}x"
            if n == "numamalloc" and rat > 1.25:
                c += " !"
            if md and rat == 1.0:
                c = f"**{c}**"
            cells.append(c)
        rows.append(cells)
    return grid(head, rows, md)


def geo_lines(geo, names, ncomplete, nall, md):
    lines = []
    if md:
        lines.append(f"| geomean ratio to best ({ncomplete} of {nall} workloads) | " + " | ".join(names) + " |")
        lines.append("|---|" + "---|" * len(names))
        for k, label in (("time", "wall time"), ("cpu", "CPU time"), ("rss", "peak RSS")):
            lines.append(f"| {label} | " + " | ".join(f"{geo[n][k]:.3f}x" if geo[n][k] else "-" for n in names) + " |")
    else:
        for k, label in (("time", "geomean wall"), ("cpu", "geomean CPU"), ("rss", "geomean RSS")):
            lines.append(f"{label:<13}" + "  ".join(f"{n} {geo[n][k]:.3f}x" if geo[n][k] else f"{n} -" for n in names))
        lines.append(f"(geometric means of the ratio to the best allocator, over the {ncomplete} of {nall} "
                     "workloads every allocator completed)")
    return lines


def svg_chart(results, names, path, title):
    """two panels: wall-time ratio and peak-RSS ratio to the best, log scale"""
    bar_h, gap, label_w, panel_w, top = 4, 8, 150, 330, 70
    group_h = bar_h * len(names) + gap
    height = top + group_h * len(results) + 40
    width = label_w + 2 * panel_w + 60
    max_ratio = 16.0
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'font-family="sans-serif" font-size="10">',
         f'<rect width="{width}" height="{height}" fill="white"/>',
         f'<text x="10" y="16" font-size="13" font-weight="bold">{title}</text>']
    for i, n in enumerate(names):
        x = 10 + i * 110
        o.append(f'<rect x="{x}" y="26" width="10" height="10" fill="{ALLOC_COLORS.get(n, "#000")}"/>')
        o.append(f'<text x="{x + 14}" y="35">{n}</text>')
    for p, (key, label) in enumerate((("wall", "wall time / fastest"), ("rss", "peak RSS / leanest"))):
        x0 = label_w + p * (panel_w + 30)
        o.append(f'<text x="{x0}" y="{top - 14}" font-weight="bold">{label} (log scale, clipped at {max_ratio:g}x)</text>')
        for t in (1, 1.25, 2, 4, 8, 16):
            x = x0 + panel_w * math.log(t) / math.log(max_ratio)
            o.append(f'<line x1="{x:.1f}" y1="{top - 6}" x2="{x:.1f}" y2="{height - 36}" stroke="#ddd"/>')
            o.append(f'<text x="{x:.1f}" y="{height - 24}" text-anchor="middle">{t:g}x</text>')
        for j, r in enumerate(results):
            y = top + j * group_h
            if p == 0:
                o.append(f'<text x="{label_w - 6}" y="{y + group_h / 2}" text-anchor="end">{r["name"]}</text>')
            for i, n in enumerate(names):
                rat = r["ratio"].get(n)
                yy = y + i * bar_h
                if not rat:
                    o.append(f'<text x="{x0 + 2}" y="{yy + bar_h}" font-size="6" fill="red">FAIL {n}</text>')
                    continue
                v = rat[key]
                w = panel_w * min(math.log(v), math.log(max_ratio)) / math.log(max_ratio)
                o.append(f'<rect x="{x0}" y="{yy}" width="{max(w, 1.5):.1f}" height="{bar_h - 0.5}" '
                         f'fill="{ALLOC_COLORS.get(n, "#000")}"><title>{r["name"]} {n}: {v:.2f}x</title></rect>')
                if v > max_ratio:
                    o.append(f'<text x="{x0 + panel_w + 2}" y="{yy + bar_h}" font-size="6">{v:.0f}x</text>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


def memreturn_lines(mr, md):
    """one table per scenario: RSS (MiB) at the burst end, after the free and later"""
    pts = [p for p in MEMRETURN_POINTS if p[2] is None or p[2] <= mr["window_s"] + 1e-9]
    lines = []
    for scen, sd in mr["scenarios"].items():
        per = sd["variants"]
        active = any(d["ops"] for d in per.values() if d["points"])
        head = ["allocator"] + [p[1] for p in pts] + (["pairs in window"] if active else [])
        best = {}
        for key, _, _ in pts:
            vals = [d["points"][key] for d in per.values() if d["points"] and d["points"][key] is not None]
            best[key] = min(vals) if vals else None
        rows = []
        for n, d in per.items():
            if not d["points"]:
                rows.append([n] + ["FAIL"] * (len(head) - 1))
                continue
            cells = [n]
            for key, _, _ in pts:
                v = d["points"][key]
                c = fmt_mib(v)
                if md and v is not None and v == best[key] and key != "burst_end":
                    c = f"**{c}**"
                cells.append(c)
            if active:
                cells.append(f"{d['ops']:.0f}" if d["ops"] is not None else "-")
            rows.append(cells)
        if md:
            lines += [f"### {scen}", "", f"{sd['desc'][0].upper()}{sd['desc'][1:]}. Other load {sd['foreign_load']:.0%}.", ""]
            lines += grid(head, rows, True)
            lines.append("")
        else:
            lines.append(f"-- {scen}: {sd['desc']}")
            lines += grid(head, rows, False)
    return lines


def nice_ceiling(v):
    """an axis maximum of 1, 2 or 5 x 10^k steps (at most 6 of them) covering v; returns (max, step)"""
    v = max(v, 1.0)
    k = 10 ** math.floor(math.log10(v / 6))
    for m in (1, 2, 5, 10):
        step = m * k
        if v / step <= 6:
            return step * math.ceil(v / step - 1e-9), step
    return v, v


def svg_memreturn(mr, path, title):
    """one panel per scenario: median RSS over time, one line per allocator"""
    scen = list(mr["scenarios"])
    names = mr["variants"]
    colors = dict(ALLOC_COLORS, **{"numamalloc+bg": ALLOC_COLORS["numamalloc"]})
    cols, pw, ph, left, top, gx, gy = 2, 400, 210, 60, 78, 80, 70
    nrows = (len(scen) + cols - 1) // cols
    width, height = left + cols * (pw + gx), top + nrows * (ph + gy)
    xmin, xmax = -MEMRETURN_BEFORE, mr["window_s"]
    o = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
         f'font-family="sans-serif" font-size="10">',
         f'<rect width="{width}" height="{height}" fill="white"/>',
         f'<text x="10" y="16" font-size="13" font-weight="bold">{title}</text>']
    for i, n in enumerate(names):
        x = 10 + i * 115
        dash = ' stroke-dasharray="5,3"' if n == "numamalloc+bg" else ""
        o.append(f'<line x1="{x}" y1="31" x2="{x + 14}" y2="31" stroke="{colors.get(n, "#000")}" '
                 f'stroke-width="2"{dash}/>')
        o.append(f'<text x="{x + 18}" y="35">{n}</text>')
    o.append(f'<text x="10" y="52">RSS (MiB, median of {mr["repeats"]} runs, sampled every '
             f'{mr["step_s"] * 1000:.0f} ms) against seconds since the end of the free</text>')
    for p, sname in enumerate(scen):
        per = mr["scenarios"][sname]["variants"]
        x0 = left + (p % cols) * (pw + gx)
        y0 = top + (p // cols) * (ph + gy)
        peak = max((v for d in per.values() for _, v in d["series"]), default=0) / 2**20
        ymax, ystep = nice_ceiling(peak)

        def X(t):
            return x0 + pw * (t - xmin) / (xmax - xmin)

        def Y(mib):
            return y0 + ph - ph * mib / ymax
        o.append(f'<text x="{x0}" y="{y0 - 8}" font-weight="bold">{sname}</text>')
        o.append(f'<rect x="{x0}" y="{y0}" width="{pw}" height="{ph}" fill="none" stroke="#999"/>')
        yv = 0.0
        while yv <= ymax + 1e-9:
            o.append(f'<line x1="{x0}" y1="{Y(yv):.1f}" x2="{x0 + pw}" y2="{Y(yv):.1f}" stroke="#eee"/>')
            o.append(f'<text x="{x0 - 4}" y="{Y(yv) + 3:.1f}" text-anchor="end">{yv:g}</text>')
            yv += ystep
        for i in range(math.ceil(xmin * 2), math.floor(xmax * 2 + 1e-9) + 1):     # every 0.5 s
            t = i / 2
            o.append(f'<line x1="{X(t):.1f}" y1="{y0}" x2="{X(t):.1f}" y2="{y0 + ph}" '
                     f'stroke="{"#888" if t == 0 else "#eee"}"/>')
            o.append(f'<text x="{X(t):.1f}" y="{y0 + ph + 12}" text-anchor="middle">'
                     f'{"free" if t == 0 else f"{t:+g} s"}</text>')
        for n in names:
            d = per.get(n)
            if not d or not d["series"]:
                continue
            pts = " ".join(f"{X(t):.1f},{Y(v / 2**20):.1f}" for t, v in d["series"])
            dash = ' stroke-dasharray="5,3"' if n == "numamalloc+bg" else ""
            o.append(f'<polyline points="{pts}" fill="none" stroke="{colors.get(n, "#000")}" '
                     f'stroke-width="1.5"{dash}><title>{sname} {n}</title></polyline>')
    o.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(o) + "\n")


RSS_FOCUS = ("dbuf-64t", "many-256t", "free-all-16t")


def rss_focus_lines(results, names, md):
    """peak RSS (and RSS after free where measured) of the memory-centred rows, against glibc"""
    rows = []
    for r in results:
        if r["name"] not in RSS_FOCUS and not r.get("extra"):
            continue
        items = [("peak RSS", {n: (m["rss_kb"] if m else None) for n, m in r["median"].items()})]
        for k, v in (r.get("extra") or {}).items():
            if k.endswith("_kb"):
                items.append((k[:-3].replace("_", " ").replace("rss", "RSS"), v))
        for label, vals in items:
            base = vals.get("glibc")
            cells = [f"{r['name']}: {label}"]
            for n in names:
                v = vals.get(n)
                c = fmt_mb(v)
                if v is not None and base:
                    c += f" {v / base:.2f}x"
                cells.append(c)
            rows.append(cells)
    if not rows:
        return []
    head = ["workload: measure (ratio to glibc)"] + names
    return grid(head, rows, md)


def write_reports(outdir, data, names, log):
    results = data["workloads"]
    geo, ncomp = data["geomean"], data["geomean_workloads"]
    meta = data["meta"]
    T = data["targets"]
    hot, micro, startup = data.get("hotpath"), data.get("ns_per_pair"), data.get("startup")
    forkc = data.get("fork")
    onoff = data.get("stats_on_off")
    mr = data.get("memreturn")
    # terminal
    log("")
    log(f"== wall time, median of {meta['repeats']} (ratio to the fastest; ! = numamalloc over 1.25x)")
    for line in table_lines(results, names, "wall", False):
        log(line)
    log("")
    log("== peak RSS, median (ratio to the leanest)")
    for line in table_lines(results, names, "rss", False):
        log(line)
    variants = data.get("variants") or []
    if variants and "numamalloc" in names:
        log("")
        log("== --also builds against numamalloc: median and fastest wall time, median peak RSS, variant / numamalloc")
        for line in variant_lines(results, variants, False):
            log(line)
    focus = rss_focus_lines(results, names, False)
    if focus:
        log("")
        log("== peak RSS against glibc where memory use is the point (and RSS after free, median)")
        for line in focus:
            log(line)
    log("")
    for line in geo_lines(geo, names, ncomp, len(results), False):
        log(line)
    if mr:
        log("")
        log(f"== memory return: RSS in MiB, median of {mr['repeats']} runs (t = 0: end of the free)")
        for line in memreturn_lines(mr, False):
            log(line)
    if hot:
        log("")
        log(f"== hot path, callgrind instructions per malloc+free pair (incl. {hot.get('loop')} of loop) and per start-up")
        hn = [n for n in hot if n != "loop"]
        log(f"{'':<10}" + "".join(f"{n:>18}" for n in hn))
        for m in hotpath.METRICS:
            log(f"{m:<10}" + "".join(f"{hotpath.fmt(hot[n][m]):>18}" for n in hn))
    if micro:
        log("")
        log("== ns per malloc+free pair (median of alternated runs, each the fastest of 5 rounds)")
        mn = list(micro)
        log(f"{'size':<10}" + "".join(f"{n:>18}" for n in mn))
        for s in next(iter(micro.values())):
            log(f"{s + ' B':<10}" + "".join(f"{micro[n][s]:>18.2f}" if micro[n][s] else f"{'-':>18}" for n in mn))
    if onoff:
        log("")
        log("== NUMAMALLOC_STATS=json vs unset (counters always compiled in), ns per pair, "
            f"median of {3 * meta['repeats']} alternated runs each")
        for s in onoff["numamalloc"]:
            a, b = onoff["numamalloc"][s], onoff["numamalloc+stats"][s]
            if a and b:
                log(f"{s + ' B':<10} off {a:.2f}  on {b:.2f}  ({(b - a) / a:+.1%})")
    if startup:
        log("")
        log("== start-up: process making 10 allocations, median wall (p10-p90)")
        for n, s in startup.items():
            if s["median_ms"]:
                log(f"{n:<18} {s['median_ms']:.3f} ms ({s['p10_ms']:.3f}-{s['p90_ms']:.3f}), {s['runs']} runs")
    if forkc:
        log("")
        log("== fork: fork, child malloc/free/_exit, wait (100 per run); median us per fork (min-max of runs)")
        for n, s in forkc.items():
            if s["median_us"]:
                log(f"{n:<18} {s['median_us']:.0f} us ({s['min_us']:.0f}-{s['max_us']:.0f}), {s['runs']} runs")
    log("")
    log("== targets")
    for name, ok, detail in T:
        log(f"[{'MET ' if ok else 'MISS'}] {name}: {detail}")
    log(f"\nmachine: {meta['machine']}; other users took {meta['foreign_load']:.0%} of the CPUs on average "
        f"(per workload {meta['foreign_load_min']:.0%}-{meta['foreign_load_max']:.0%})")

    # markdown
    md = [f"# numamalloc benchmark results ({'quick' if meta['quick'] else 'full'} run)", "",
          f"- date: {meta['date']}; numamalloc {meta['nm_version']} ({meta['nm_lib']}, built {meta['lib_built']}, "
          f"sha256 {meta['lib_sha256']}), source: {meta['git']} (when the run started)",
          f"- machine: {meta['machine']}",
          f"- load from other users during the run: {meta['foreign_load']:.0%} of the CPUs on average, "
          f"{meta['foreign_load_min']:.0%}-{meta['foreign_load_max']:.0%} per workload "
          f"(load average {meta['loadavg_start']} at start, {meta['loadavg_end']} at end)",
          f"- {meta['repeats']} repeats per workload and allocator, allocators alternated (order rotated every "
          f"repeat); medians; total {meta['elapsed_s']:.0f} s",
          pin_line(meta, results),
          "- wall time is what the tables rank; CPU time is user+sys of the process and its children; "
          "peak RSS is ru_maxrss from wait4 (includes about 1 MB of the runner, the same for all)", "",
          "## Targets", ""]
    for name, ok, detail in T:
        md.append(f"- **{'met' if ok else 'MISSED'}** — {name}: {detail}")
    if variants and "numamalloc" in names:
        md += ["", "## --also builds against numamalloc (median and fastest wall time, median peak RSS; "
               "variant / numamalloc)", ""]
        md += variant_lines(results, variants, True)
    md += ["", "## Geometric means", ""] + geo_lines(geo, names, ncomp, len(results), True)
    md += ["", "## Wall time (median; ratio to the fastest; bold = fastest; ! = numamalloc over 1.25x)", ""]
    md += table_lines(results, names, "wall", True)
    md += ["", "## Peak RSS (median; ratio to the leanest)", ""] + table_lines(results, names, "rss", True)
    md += ["", "## CPU time, user+sys (median; ratio to the least)", ""] + table_lines(results, names, "cpu", True)
    focus = rss_focus_lines(results, names, True)
    if focus:
        md += ["", "## Peak RSS against glibc where memory use is the point", "",
               "Medians; RSS after free: read by the program itself (/proc/self/statm) 100 ms after every "
               "thread freed everything and exited.", ""] + focus
    if mr:
        md += ["", "## Memory return over time", "",
               f"RSS (resident pages of /proc/self/statm) in MiB, sampled every {mr['step_s'] * 1000:.0f} ms by "
               f"bench/bench_memreturn, median of {mr['repeats']} runs at each point; t = 0 is the end of the "
               f"free, the window lasts {mr['window_s']:g} s. Bold: the least at that point. numamalloc+bg: "
               "numamalloc with " + ", ".join(f"{k}={v}" for k, v in mr["env"].get("numamalloc+bg", {}).items())
               + " (NUMAMALLOC_DECAY_MS at its default). "
               f"Runs of a scenario go {mr['jobs']} at a time (they mostly sleep while they watch).", ""]
        md += memreturn_lines(mr, True)
        md += ["![memory return over time](memreturn.svg)", ""]
    if hot:
        hn = [n for n in hot if n != "loop"]
        md += ["", "## Hot path (callgrind, instructions; deterministic, load-independent)", "",
               f"pairN: per malloc(N)+free pair, difference of two runs ({hotpath.N1} and {hotpath.N2} pairs), "
               f"including {hot.get('loop')} instructions of the benchmark loop itself. "
               "start: a whole process that makes 10 allocations and exits. numamalloc+stats: "
               "NUMAMALLOC_STATS=json; numamalloc's counters are always compiled in, the variable only adds the dump.", "",
               "| metric | " + " | ".join(hn) + " |", "|---|" + "---|" * len(hn)]
        for m in hotpath.METRICS:
            md.append(f"| {m} | " + " | ".join(hotpath.fmt(hot[n][m]) for n in hn) + " |")
    if micro:
        mn = list(micro)
        md += ["", "## ns per malloc+free pair (median over alternated runs; each run the fastest of 5 rounds; pinned like the single-threaded workloads)", "",
               "| size | " + " | ".join(mn) + " |", "|---|" + "---|" * len(mn)]
        for s in next(iter(micro.values())):
            md.append(f"| {s} B | " + " | ".join(f"{micro[n][s]:.2f}" if micro[n][s] else "-" for n in mn) + " |")
    if onoff:
        md += ["", "## NUMAMALLOC_STATS=json vs unset", "",
               "numamalloc's counters are always compiled in and counted; the variable only adds the dump at exit. "
               f"ns per malloc+free pair, median of {3 * meta['repeats']} alternated runs each "
               "(instructions per pair are in the hot-path table: numamalloc vs numamalloc+stats).", "",
               "| size | unset | json | difference |", "|---|---|---|---|"]
        for s in onoff["numamalloc"]:
            a, b = onoff["numamalloc"][s], onoff["numamalloc+stats"][s]
            if a and b:
                md.append(f"| {s} B | {a:.2f} | {b:.2f} | {(b - a) / a:+.1%} |")
    if startup:
        md += ["", "## Start-up (process making 10 allocations and exiting; pinned like the single-threaded workloads)", "",
               "| allocator | median wall | p10-p90 | runs |", "|---|---|---|---|"]
        for n, s in startup.items():
            if s["median_ms"]:
                md.append(f"| {n} | {s['median_ms']:.3f} ms | {s['p10_ms']:.3f}-{s['p90_ms']:.3f} ms | {s['runs']} |")
    if forkc:
        md += ["", "## Fork (fork, the child allocates, frees and _exits, the parent waits; 100 a run, pinned like start-up)", "",
               "| allocator | median per fork | min-max of runs | runs |", "|---|---|---|---|"]
        for n, s in forkc.items():
            if s["median_us"]:
                md.append(f"| {n} | {s['median_us']:.0f} us | {s['min_us']:.0f}-{s['max_us']:.0f} us | {s['runs']} |")
    md += ["", "## Workloads", "", "| workload | what | other load | failures |", "|---|---|---|---|"]
    for r in results:
        f = "; ".join(f"{n}: {w}" for n, w in r["failures"].items()).replace("|", "/").replace("\n", " ")
        md.append(f"| {r['name']} | {r['desc']} | {r['foreign_load']:.0%} | {f or '-'} |")
    md += ["", "![ratios](latest.svg)", ""]
    with open(os.path.join(outdir, "latest.md"), "w") as f:
        f.write("\n".join(md))
    with open(os.path.join(outdir, "latest.json"), "w") as f:
        json.dump(data, f, indent=1)
    svg_chart(results, names, os.path.join(outdir, "latest.svg"),
              f"numamalloc vs peers — {meta['date']} ({'quick' if meta['quick'] else 'full'} run)")
    if mr:
        svg_memreturn(mr, os.path.join(outdir, "memreturn.svg"),
                      f"Memory return over time — {meta['date']} ({'quick' if meta['quick'] else 'full'} run)")


def machine_info():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} CPUs ({model}), {mem:.0f} GiB, Linux {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a tenth of the work, 3 repeats, 2 s memreturn windows: under 4 minutes")
    ap.add_argument("--repeats", type=int, default=None, help="repeats per workload and allocator (>= 3)")
    ap.add_argument("--only", default=None, help="regular expression: run only matching workloads")
    ap.add_argument("--allocators", default=None, help="comma-separated subset, e.g. glibc,numamalloc")
    ap.add_argument("--bin", required=True, help="directory with the built benchmark programs")
    ap.add_argument("--lib", required=True, help="libnumamalloc.so to measure")
    ap.add_argument("--out", default=None,
                    help="where latest.{md,json,svg} go (default bench/results; with --also /tmp/nm-bench-ab)")
    ap.add_argument("--also", action="append", default=[], metavar="LABEL=LIB",
                    help="measure another numamalloc build too, alternated with the others in the same run "
                         "(repeatable), e.g. --also exp=/tmp/x/libnumamalloc.so; the report adds its ratios "
                         "to numamalloc's")
    ap.add_argument("--source", default=None,
                    help="what the library was built from, for the report (default: this tree's git state)")
    ap.add_argument("--no-extras", action="store_true", help="workloads only: no callgrind, ns/pair, start-up")
    ap.add_argument("--pin", default="auto", help="single-threaded workloads: auto (the CPU a probe finds "
                    "fastest, per workload), none, or a CPU number")
    ap.add_argument("--no-memreturn", action="store_true", help="skip the memory-return-over-time scenarios")
    ap.add_argument("--memreturn-repeats", type=int, default=3, help="runs per memreturn scenario and allocator")
    ap.add_argument("--memreturn-jobs", type=int, default=3,
                    help="memreturn runs at a time (they mostly sleep; default 3)")
    a = ap.parse_args()
    if a.pin not in ("auto", "none") and not (a.pin.isdigit() and int(a.pin) in os.sched_getaffinity(0)):
        sys.exit(f"run.py: --pin {a.pin}: accepts auto, none or one of the CPUs this process may use "
                 f"({', '.join(map(str, sorted(os.sched_getaffinity(0))))})")
    t_start = time.monotonic()
    log = lambda s: print(s, flush=True)  # noqa: E731
    repeats = a.repeats or (3 if a.quick else 5)
    if repeats < 3:
        log("run.py: fewer than 3 repeats: medians are not robust (allowed for trying things out)")
    allocs = hotpath.allocators(a.lib)
    if a.allocators:
        want = a.allocators.split(",")
        allocs = [x for x in allocs if x[0] in want]
    also = also_variants(a.also, [x[0] for x in hotpath.allocators(a.lib)])
    allocs += also
    if a.out is None:
        a.out = "/tmp/nm-bench-ab" if a.also else os.path.join(HERE, "results")
    for name, pre, _ in allocs:
        if pre and not os.path.exists(pre):
            sys.exit(f"run.py: {name}: {pre} not found (scripts/deps.sh bench installs the allocators)")
    names = [x[0] for x in allocs]
    wls = workloads(a.quick)
    mrs = [] if a.no_memreturn else list(MEMRETURN_SCENARIOS)
    if a.only:
        wls = [w for w in wls if re.search(a.only, w["name"])]
        mrs = [m for m in mrs if re.search(a.only, "memreturn-" + m[0])]
    os.makedirs(a.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="nm-bench-work.")
    runner = Runner(a.bin, 60 if a.quick else 300, log)
    meter = LoadMeter()
    load0 = open("/proc/loadavg").read().split()[:3]
    # what is measured, read before the run (others may commit meanwhile)
    git = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", HERE, "status", "--porcelain", "--", "../src", "../include", "../preload"],
                           capture_output=True, text=True)
    git_desc = a.source or ((git.stdout.strip() or "?")
                            + (" + uncommitted changes in src/include/preload" if dirty.stdout.strip() else ""))
    with open(a.lib, "rb") as f:
        lib_sha = hashlib.sha256(f.read()).hexdigest()[:12]
    lib_time = datetime.datetime.fromtimestamp(os.path.getmtime(a.lib)).strftime("%Y-%m-%d %H:%M")
    try:
        if any(w["group"] == "real" for w in wls):
            make_inputs(work, a.quick)
        data = {"meta": {}, "allocators": names, "variants": [x[0] for x in also]}
        hot = micro = startup = onoff = forkc = None
        if not a.no_extras:
            # callgrind counts instructions, unaffected by load: it runs first, on every CPU
            log("hot path: callgrind instruction counts ...")
            hot = hotpath.measure(a.bin, a.lib, names=names + ["numamalloc+stats"])
            micro_allocs = allocs + ([hotpath.stats_variant(a.lib)] if "numamalloc" in names else [])
            log("ns per malloc+free pair ...")
            n = 2_000_000 if a.quick else 5_000_000
            micro, _ = run_micro(runner, micro_allocs, hotpath.SIZES, n, repeats, a.bin, log, a.pin)
            if "numamalloc" in names:
                # the 3 % question needs more than the repeats above: 3x as many,
                # numamalloc with and without NUMAMALLOC_STATS alternating
                log("NUMAMALLOC_STATS=json vs unset, ns per pair ...")
                onoff, _ = run_micro(runner, [x for x in micro_allocs if x[0].startswith("numamalloc")],
                                     (16, 256, 4000), n, 3 * repeats, a.bin, log, a.pin)
            log("start-up of a 10-allocation process ...")
            startup = run_startup(runner, allocs, 4 if a.quick else 10, 30 if a.quick else 60, a.bin, log, a.pin)
            log("fork cost ...")
            forkc = run_fork(runner, allocs, 3 if a.quick else 7, 100, a.bin, log, a.pin)
        log(f"workloads: {len(wls)} x {len(names)} allocators x {repeats} repeats")
        subst = {"bin": a.bin, "work": work, "here": HERE}
        results = run_workloads(runner, allocs, wls, repeats, subst, log, a.pin)
        mr = None
        if mrs:
            # --quick: a 2 s window (the +4 s point is left out)
            window = 2.0 if a.quick else 4.0
            log(f"memory return: {len(mrs)} scenarios x {len(memreturn_variants(allocs))} allocators x "
                f"{a.memreturn_repeats} runs, {window:g} s window, {a.memreturn_jobs} at a time")
            mr = run_memreturn(runner, allocs, mrs, a.memreturn_repeats, window, max(1, a.memreturn_jobs),
                               a.bin, log)
        geo, ncomp = summarize(results, names)
        loads = [r["foreign_load"] for r in results] or [0]
        version = "?"
        vf = os.path.join(HERE, "..", "VERSION")
        if os.path.exists(vf):
            version = open(vf).read().strip()
        data.update({
            "meta": {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), "quick": a.quick,
                     "repeats": repeats, "pin": a.pin, "machine": machine_info(), "nm_lib": a.lib, "nm_version": version,
                     "git": git_desc, "lib_sha256": lib_sha, "lib_built": lib_time, "foreign_load": meter.foreign(),
                     "foreign_load_min": min(loads), "foreign_load_max": max(loads),
                     "loadavg_start": " ".join(load0), "loadavg_end": " ".join(open("/proc/loadavg").read().split()[:3]),
                     "elapsed_s": time.monotonic() - t_start},
            "workloads": results, "geomean": geo, "geomean_workloads": ncomp,
            "hotpath": hot, "ns_per_pair": micro, "startup": startup, "fork": forkc, "stats_on_off": onoff,
            "memreturn": mr,
        })
        data["targets"] = targets(results, names, geo, hot, onoff or micro, startup)
        write_reports(a.out, data, names, log)
        log(f"\nwrote {a.out}/latest.md, latest.json, latest.svg{', memreturn.svg' if mr else ''} ({time.monotonic() - t_start:.0f} s)")
    finally:
        runner.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
