#!/usr/bin/env python3
"""bench/numa_report.py LOG... — the tables of bench/results/numa.md from the logs of
bench/bench_locality.c that bench/numa.sh collects (this machine, then each VM).
Medians of the repeated runs; standard library only."""
import datetime
import re
import statistics
import sys

NOTE_VM = ("In a QEMU VM every node is the same host memory: local and remote loads cost the "
           "same, so the latency and bandwidth ratios below say nothing about NUMA (they show the "
           "benchmark runs). What locality is worth needs real multi-socket hardware: run "
           "`bench/numa.sh --host-only` there.")


def parse(path):
    d = {"host": "", "topo": [], "dist": [], "lat": [], "share": {}, "nodes": 1}
    with open(path, errors="replace") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("HOST "):
                d["host"] = line[5:]
            elif line.startswith("TOPO nodes"):
                d["nodes"] = int(line.split()[2])
            elif re.match(r"TOPO node \d+:", line):
                d["topo"].append(line[5:])
            elif re.match(r"TOPO +node +\d+: ", line):
                d["dist"].append([int(x) for x in line.split(":", 1)[1].split()])
            elif line.startswith("LAT cpu-node"):
                m = re.match(r"LAT cpu-node (\d+) mem-node (\d+) distance (\d+): ([0-9.]+) ns/load, ([0-9.]+) GB/s read \((\d+)%", line)
                if m:
                    d["lat"].append(tuple(int(m.group(i)) for i in (1, 2, 3)) + (float(m.group(4)), float(m.group(5)), int(m.group(6))))
            elif line.startswith("SHARE "):
                kv = dict(x.split("=", 1) for x in line.split()[1:])
                d["share"].setdefault(kv["allocator"], []).append(kv)
    return d


def med(rows, key):
    return statistics.median(float(r[key].rstrip("%")) for r in rows)


def section(d, title, vm):
    out = ["## %s" % title, "", d["host"], ""]
    if d["topo"]:
        out.append("Nodes: " + "; ".join(d["topo"]) + ".")
        out.append("")
    if d["dist"] and len(d["dist"]) > 1:
        n = len(d["dist"])
        out += ["SLIT distances:", "", "| from \\ to | " + " | ".join(str(i) for i in range(n)) + " |",
                "|---|" + "---|" * n]
        out += ["| %d | %s |" % (i, " | ".join(str(x) for x in row)) for i, row in enumerate(d["dist"])]
        out.append("")
    out += ["### (a) Access latency and bandwidth by node", ""]
    if vm:
        out += [NOTE_VM, ""]
    if d["lat"]:
        mems = sorted({r[1] for r in d["lat"]})
        out += ["| CPU node \\ memory node | " + " | ".join("node %d" % m for m in mems) + " | remote/local latency |",
                "|---|" + "---|" * (len(mems) + 1)]
        for c in sorted({r[0] for r in d["lat"]}):
            cells, local, remote = [], None, []
            for m in mems:
                r = next((x for x in d["lat"] if x[0] == c and x[1] == m), None)
                if r is None:
                    cells.append("-")
                    continue
                cells.append("%.1f ns, %.2f GB/s" % (r[3], r[4]))
                if c == m:
                    local = r[3]
                else:
                    remote.append(r[3])
            ratio = ("%.2fx" % (max(remote) / local)) if local and remote else "n/a (one node)"
            out.append("| %d | %s | %s |" % (c, " | ".join(cells), ratio))
        out.append("")
        placed = min(r[5] for r in d["lat"])
        out += ["Pointer chase over one random cycle of 64-byte lines (every load a cache miss); streaming "
                "read of the same set. Every page checked with move_pages: at least %d%% on the node asked for." % placed, ""]
    else:
        out += ["(no latency results in this log)", ""]
    out += ["### (b) A program sharing blocks across nodes: remote share per allocator", ""]
    if d["share"]:
        any_row = next(iter(d["share"].values()))[0]
        out += ["One thread per node (%s thread(s)), pinned; each round every thread builds %s blocks of 32 B..64 KiB "
                "(every 64th 256 KiB), reads them twice, hands %s of them to the next node's thread (which reads "
                "them twice and frees them) and frees the rest; %s rounds. Medians of %d runs. *Remote* is the share "
                "of bytes read from a block whose first page is on another node than the reading thread's "
                "(move_pages on every block). A handed block is read by a thread on another node by design: with "
                "%s handed, that share of the reads is the floor for an allocator that keeps each thread's own "
                "blocks on its node; *of own blocks* above 0 is memory the allocator gave a thread from another "
                "node (blocks freed there, reused here)."
                % (any_row["threads"], any_row["blocks"], any_row["handoff"], any_row["rounds"],
                   len(next(iter(d["share"].values()))), any_row["handoff"]), ""]
        out += ["| allocator | work (ms, slowest thread) | remote, all reads | of own blocks | of handed blocks |",
                "|---|---|---|---|---|"]
        for a, rows in d["share"].items():
            out.append("| %s | %.1f | %.1f%% | %.1f%% | %.1f%% |" % (a, med(rows, "work_ms"), med(rows, "remote_pct"),
                                                               med(rows, "own_remote_pct"), med(rows, "handed_remote_pct")))
        out.append("")
        if vm:
            out += ["Times in a TCG VM are emulation times (and remote costs as much as local there): compare "
                    "the remote shares, not the times.", ""]
    return out


def main(paths):
    out = ["# What NUMA locality is worth", "",
           "Generated by `bench/numa.sh` (bench/bench_locality.c) on %s." % datetime.date.today().isoformat(), "",
           "* **Remote share** (b) is measured with move_pages: the kernel's real placement, in the QEMU VMs "
           "as on real hardware.",
           "* **Latency and bandwidth ratios** (a) need real multi-socket hardware: in the VMs every node is the "
           "same host memory, and this build machine has one node.", ""]
    for p in paths:
        d = parse(p)
        vm = "QEMU" in d["host"]
        title = ("QEMU VM, %d nodes" % d["nodes"]) if vm else "This machine (%d node%s)" % (d["nodes"], "" if d["nodes"] == 1 else "s")
        out += section(d, title, vm)
    sys.stdout.write("\n".join(out) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
