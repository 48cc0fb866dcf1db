#!/usr/bin/env python3
"""tests/obs/test_dumps.py — what the statistics dump and the heap profile say, checked
against programs whose allocations are known, and the report tool on real dumps
. Standard library only; run by `make obs-test`:

    NM_OBS_LIB=build/libnumamalloc.so NM_OBS_BIN=build/tests/obs python3 tests/obs/test_dumps.py [-v]

  Dump        a real program (python3 doing JSON work): the dump parses and its numbers
              agree with each other and with the work; exact class, large and medium
              counts from tests/obs/prog_obs against a baseline run; the text dump's
              sections, n/a and (default) markers; every JSON key is in numamalloc(7)
  Profiler    tests/obs/prog_prof: the hot site first, the leak found within a factor
              of 2, NUMAMALLOC_PROF_SAMPLE=1 samples every allocation, four threads
  Report      scripts/numamalloc-report on one and several real dumps, and on dumps
              with sections missing or null
Every helper runs in a fresh process with an explicit environment; timeouts only
guard against hangs.
"""

import copy
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LIB = os.path.abspath(os.environ.get("NM_OBS_LIB", os.path.join(ROOT, "build", "libnumamalloc.so")))
BIN = os.path.abspath(os.environ.get("NM_OBS_BIN", os.path.join(ROOT, "build", "tests", "obs")))
REPORT = os.path.join(ROOT, "scripts", "numamalloc-report")
MAN7 = os.path.join(ROOT, "man", "numamalloc.7")
TIMEOUT = 120          # hang guard per helper run

with open(os.path.join(ROOT, "VERSION")) as f:
    VERSION = f.read().strip()


def option_names():
    """NM_OPTIONS row names, in table order, from include/numamalloc/options.h."""
    with open(os.path.join(ROOT, "include", "numamalloc", "options.h")) as f:
        return re.findall(r"^\s*X\((\w+),\s*NM_T_\w+", f.read(), re.M)


def fallback_keys():
    """NM_FALLBACK_REASONS keys, in order, from include/numamalloc/stats.h."""
    with open(os.path.join(ROOT, "include", "numamalloc", "stats.h")) as f:
        text = f.read()
    block = text[text.index("#define NM_FALLBACK_REASONS"):]
    return re.findall(r'X\(\w+,\s*"(\w+)"', block)


def class_sizes():
    """16..128 in steps of 16, then four classes per doubling up to 32 KiB (small) and
    on to 1 MiB (medium) (config.h)."""
    sizes = list(range(16, 129, 16))
    base = 128
    while base < 1 << 20:
        sizes += [base + base // 4 * k for k in range(1, 5)]
        base *= 2
    return sizes


BASE_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/tmp"}


def run(argv, env=None, preload=True, timeout=TIMEOUT):
    e = dict(BASE_ENV)
    if preload:
        e["LD_PRELOAD"] = LIB
    e.update(env or {})
    return subprocess.run(argv, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, universal_newlines=True)


def helper(name):
    return os.path.join(BIN, name)


def child_pid(proc):
    m = re.search(r"^pid (\d+)", proc.stdout, re.M)
    assert m, "no 'pid N' line in the helper's output:\n" + proc.stdout
    return int(m.group(1))


class Tmp:
    """A temporary directory per test class."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="nm-obs-py-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)


def json_dump(testcase, argv, env=None, name="d", timeout=TIMEOUT):
    """Run argv with NUMAMALLOC_STATS=json into a %p file; return (dump of that pid, proc)."""
    path = os.path.join(testcase.tmp, name + ".%p.json")
    e = {"NUMAMALLOC_STATS": "json", "NUMAMALLOC_STATS_FILE": path}
    e.update(env or {})
    proc = run(argv, e, timeout=timeout)
    testcase.assertEqual(proc.returncode, 0, "%s failed: %s" % (argv, proc.stderr))
    pid = child_pid(proc) if proc.stdout.startswith("pid ") else None
    files = sorted(f for f in os.listdir(testcase.tmp) if f.startswith(name + "."))
    if pid is not None:
        target = os.path.join(testcase.tmp, "%s.%d.json" % (name, pid))
    else:
        testcase.assertEqual(len(files), 1, "expected one dump file, found %s" % files)
        target = os.path.join(testcase.tmp, files[0])
    with open(target) as f:
        lines = f.read().splitlines()
    testcase.assertEqual(len(lines), 1, "one dump expected in %s" % target)
    for fn in files:
        os.unlink(os.path.join(testcase.tmp, fn))
    return json.loads(lines[0]), proc


def class_row(d, size):
    for row in d["classes"]:
        if row["size"] == size:
            return row
    return {"allocs": 0, "frees": 0, "live": 0, "live_bytes": 0}


# ---- the dump ------------------------------------------------------------------------------

PY_WORK = r"""
import json, os
N = 20000
data = [{"id": i, "name": "item-%d" % i, "tags": ["t%d" % (i % 7), "x" * (i % 50)]} for i in range(N)]
text = json.dumps(data)
back = json.loads(text)
assert back == data
print("pid", os.getpid())
print("objects", len(back), "json_bytes", len(text))
"""


class Dump(Tmp, unittest.TestCase):

    def check_invariants(self, d):
        s = d["summary"]
        self.assertEqual(d["schema_version"], 2)
        self.assertEqual(d["allocator"], "numamalloc")
        self.assertEqual(d["version"], VERSION)
        self.assertEqual(d["reason"], "exit")
        self.assertGreaterEqual(d["uptime_ms"], 0)
        self.assertGreaterEqual(d["nodes_with_memory"], 1)
        self.assertEqual(list(d["config"].keys()), [n.lower() for n in option_names()])
        self.assertTrue(all(isinstance(v, str) for v in d["config"].values()))
        # totals
        self.assertGreaterEqual(s["allocs"], s["frees"])
        self.assertEqual(s["live"], s["allocs"] - s["frees"])
        self.assertGreaterEqual(s["allocated_bytes"], s["freed_bytes"])
        self.assertEqual(s["live_bytes"], s["allocated_bytes"] - s["freed_bytes"])
        # heap_peak_bytes >= heap_bytes: its own test below (a reported bug)
        if s["fragmentation"] is not None:
            want = s["resident_free_bytes"] / float(s["live_bytes"] + s["resident_free_bytes"])
            self.assertAlmostEqual(s["fragmentation"], want, delta=1e-4)
        self.assertIsInstance(s["threads_read"], bool)
        # small + arena + large = totals
        cls, ar, lg = d["classes"], d["arena"], d["large"]
        self.assertEqual(sum(r["allocs"] for r in cls) + ar["allocs"] + lg["allocs"], s["allocs"])
        self.assertEqual(sum(r["frees"] for r in cls) + ar["frees"] + lg["frees"], s["frees"])
        self.assertEqual(sum(r["live_bytes"] for r in cls) + ar["live_bytes"] + lg["live_bytes"], s["live_bytes"])
        # classes
        sizes = class_sizes()
        self.assertEqual(len(sizes), 60)
        prev = -1
        for r in cls:
            self.assertGreater(r["class"], prev)
            prev = r["class"]
            self.assertEqual(r["size"], sizes[r["class"]])
            self.assertEqual(r["live"], r["allocs"] - r["frees"])
            self.assertEqual(r["live_bytes"], r["live"] * r["size"])
            self.assertTrue(r["hit_rate"] is None or 0 <= r["hit_rate"] <= 1)
        # nodes: sums equal the totals
        nodes = d["nodes"]
        self.assertEqual(sum(n["allocs"] for n in nodes), s["allocs"])
        self.assertEqual(sum(n["frees"] for n in nodes), s["frees"])
        self.assertEqual(sum(n["alloc_bytes"] for n in nodes), s["allocated_bytes"])
        self.assertEqual(sum(n["live_bytes"] for n in nodes), s["live_bytes"])
        for n in nodes:
            if d["nodes_with_memory"] == 1:
                self.assertIsNone(n["remote_allocs"])
                self.assertIsNone(n["remote_frees"])
                self.assertIsNone(n["local_ratio"])
            elif n["node"] != "interleave" and n["allocs"]:
                self.assertLessEqual(n["remote_allocs"], n["allocs"])
        # large blocks, fallbacks, system calls
        self.assertEqual([b["backing"] for b in lg["backing"]], ["4k", "thp", "hugetlb_2m", "hugetlb_1g"])
        self.assertEqual(sum(b["live_bytes"] for b in lg["backing"]), lg["live_bytes"])
        self.assertEqual(sum(b["live"] for b in lg["backing"]), lg["allocs"] - lg["frees"])
        self.assertTrue(lg["huge_coverage"] is None or 0 <= lg["huge_coverage"] <= 1)
        self.assertEqual([f["reason"] for f in d["fallbacks"]], fallback_keys())
        self.assertEqual([c["call"] for c in d["syscalls"]], ["mmap", "munmap", "madvise", "mbind", "mremap", "move_pages"])
        for sc in d["syscalls"]:
            self.assertLessEqual(sc["failures"], sc["calls"])
        # measured residency: n/a with the reason on one node (the VMs check the numbers)
        res = d["residency"]
        if d["nodes_with_memory"] == 1:
            self.assertIs(res["measured"], False)
            self.assertEqual(res["why"], "one node with memory")
            self.assertEqual((res["kinds"], res["nodes"]), ([], []))
            for k in ("resident_bytes", "misplaced_bytes", "spilled_bytes", "misplaced_ratio", "elapsed_us"):
                self.assertIsNone(res[k], k)
            self.assertIsNone(s["misplaced_bytes"])
            self.assertIsNone(s["misplaced_ratio"])
            self.assertEqual(next(c for c in d["syscalls"] if c["call"] == "move_pages")["calls"], 0)
        else:
            self.assertIs(res["measured"], True)
            self.assertEqual(res["misplaced_bytes"], s["misplaced_bytes"])
            self.assertEqual([k["kind"] for k in res["kinds"]], ["slab", "large_live", "large_cached"])
        self.assertEqual(res["sample_pages"], 16384)

    def test_python_json_work(self):
        """python3 doing JSON work (CPython on malloc for every object)."""
        plain = run([sys.executable, "-c", PY_WORK], {"PYTHONMALLOC": "malloc"}, preload=False)
        self.assertEqual(plain.returncode, 0, plain.stderr)
        d, proc = json_dump(self, [sys.executable, "-c", PY_WORK], {"PYTHONMALLOC": "malloc"}, name="py")
        self.assertEqual(proc.stdout.split("\n", 1)[1], plain.stdout.split("\n", 1)[1],
                         "the program's output changed under the preload")
        self.assertEqual(d["pid"], child_pid(proc))
        self.check_invariants(d)
        s = d["summary"]
        json_bytes = int(re.search(r"json_bytes (\d+)", proc.stdout).group(1))
        # 20000 dicts, each with a list and several strings, built twice (data and back)
        self.assertGreaterEqual(s["allocs"], 2 * 4 * 20000)
        self.assertGreaterEqual(s["allocated_bytes"], json_bytes)
        self.assertEqual(d["profile"], {"enabled": False})
        self.assertGreaterEqual(s["threads_seen"], 1)

    def alloc_pair(self, count, size):
        base, _ = json_dump(self, [helper("prog_obs"), "alloc", "0", str(size)], name="base")
        full, _ = json_dump(self, [helper("prog_obs"), "alloc", str(count), str(size)], name="full")
        self.check_invariants(base)
        self.check_invariants(full)
        return base, full

    def test_exact_class_counts(self):
        """1000 blocks of 200 bytes (class 193..224), kept: exactly 1000 more than the baseline."""
        base, full = self.alloc_pair(1000, 200)
        b, f = class_row(base, 224), class_row(full, 224)
        self.assertGreaterEqual(f["allocs"], 1000)
        self.assertGreaterEqual(f["live"], 1000)
        self.assertEqual(f["allocs"] - b["allocs"], 1000)
        self.assertEqual(f["live"] - b["live"], 1000)
        self.assertEqual(f["live_bytes"] - b["live_bytes"], 1000 * 224)

    def test_exact_large_counts(self):
        """3 blocks of 4 MiB: large.allocs grows by exactly 3, and they are live."""
        base, full = self.alloc_pair(3, 4 << 20)
        self.assertEqual(full["large"]["allocs"] - base["large"]["allocs"], 3)
        self.assertEqual(full["large"]["frees"] - base["large"]["frees"], 0)
        live = lambda d: sum(b["live"] for b in d["large"]["backing"])
        self.assertEqual(live(full) - live(base), 3)
        self.assertGreaterEqual(full["large"]["live_bytes"] - base["large"]["live_bytes"], 3 * (4 << 20))
        self.assertIsNotNone(full["large"]["huge_coverage"])

    def test_medium_blocks_in_their_classes(self):
        """5 blocks of 100 KiB: the 112 KiB medium class, not the fallback arena."""
        base, full = self.alloc_pair(5, 100 << 10)
        row = lambda d: next((r for r in d["classes"] if r["size"] == 112 << 10), {"live": 0, "allocs": 0})
        self.assertEqual(row(full)["live"] - row(base)["live"], 5)
        self.assertEqual(full["arena"]["allocs"], base["arena"]["allocs"])
        self.assertEqual(full["large"]["allocs"], base["large"]["allocs"])

    def test_held_memory_adds_up_and_explains_rss(self):
        """A program that writes every usable byte of ~100 MiB of small, medium and large
        blocks and frees them all: the held parts add up to the total, and RSS minus that
        total is the program's own memory, as it was before it allocated (within 4 MiB)."""
        d, proc = json_dump(self, [helper("prog_obs"), "free-all"], name="held")
        rss0 = int(re.search(r"^rss_start (\d+)", proc.stdout, re.M).group(1))
        h = d["held"]
        parts = ("live_bytes", "cached_bytes", "large_cached_bytes", "free_bytes", "fallback_slack_bytes", "metadata_bytes")
        self.assertEqual(sum(h[k] for k in parts), h["total_bytes"], h)
        self.assertEqual(h["not_ours_bytes"], h["rss_bytes"] - h["total_bytes"])
        self.assertGreater(h["total_bytes"], 60 << 20, "the freed blocks are still held (cached or free), until decay")
        self.assertLess(abs(h["not_ours_bytes"] - rss0), 4 << 20,
                        "RSS %d, held %d: %d not ours, but the program had %d before it allocated"
                        % (h["rss_bytes"], h["total_bytes"], h["not_ours_bytes"], rss0))

    def test_heap_peak_at_least_heap_now(self):
        """The heap's peak is never below the heap now (heap_bytes counts the live
        threads' pending fallback-arena batches; the peak once did not: 3 KiB vs 563 KiB).
        """
        d, _ = json_dump(self, [helper("prog_obs"), "alloc", "5", str(100 << 10)], name="peak")
        s = d["summary"]
        self.assertGreaterEqual(s["heap_peak_bytes"], s["heap_bytes"], "heap peak below heap now")

    def text_dump(self, env=None, argv=None):
        e = {"NUMAMALLOC_STATS": "text"}
        e.update(env or {})
        proc = run(argv or [helper("prog_obs"), "alloc", "1000", "200"], e)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        return proc.stderr

    def test_text_sections_and_markers(self):
        t = self.text_dump({"NUMAMALLOC_DECAY_MS": "500"})
        m = re.match(r"=== numamalloc (\S+) statistics \(exit\) pid (\d+), \d+\.\d{3} s after start, (\d+) node\(s\) with memory ===\n", t)
        self.assertTrue(m, "header:\n" + t[:300])
        self.assertEqual(m.group(1), VERSION)
        nodes = int(m.group(3))
        titles = ["configuration (effective):", "summary:", "size classes (", "nodes (", "residency (", "large blocks (",
                  "fallback arena (", "system calls:", "metadata and housekeeping:", "misuse (",
                  "heap profile: n/a (NUMAMALLOC_PROF=0)", "=== end of numamalloc statistics ==="]
        at = 0
        for title in titles:
            i = t.find("\n" + title, at)
            self.assertGreaterEqual(i, 0, "section %r missing or out of order" % title)
            at = i + 1
        self.assertTrue(t.endswith("=== end of numamalloc statistics ===\n"))
        # the effective configuration: (default) exactly where the environment did not set it
        for name in option_names():
            line = re.search(r"^  NUMAMALLOC_%s +(.*)$" % name, t, re.M)
            self.assertTrue(line, "no configuration line for %s" % name)
            if name in ("STATS", "DECAY_MS"):
                self.assertNotIn("(default)", line.group(1))
            else:
                self.assertTrue(line.group(1).endswith("  (default)"), line.group(0))
        self.assertRegex(t, r"(?m)^  NUMAMALLOC_DECAY_MS +500$")
        self.assertRegex(t, r"(?m)^  NUMAMALLOC_STATS_FILE +\(unset\)  \(default\)$")
        # n/a where a feature does not apply
        row = re.search(r"(?m)^  0 .*$", t[t.find("\nnodes ("):])
        self.assertTrue(row, "no row for node 0")
        if nodes == 1:
            self.assertIn("nodes (one node with memory: local/remote is n/a):", t)
            # remote alloc, remote free and local: the three columns after the live bytes
            self.assertRegex(row.group(0), r"^  0 +\d+ +[0-9.]+ \w?i?B +\d+ +[0-9.]+ \w?i?B +n/a +n/a +n/a +\d+ ")
        self.assertRegex(t, r"(?m)^  live bytes on huge pages +n/a$")        # no large block live
        if nodes == 1:
            self.assertIn("\nresidency (measured with move_pages): n/a (one node with memory)\n", t)
            self.assertRegex(t, r"(?m)^  misplaced \(measured\) +n/a \(one node with memory\)$")
        # the class row of the 1000 blocks
        crow = re.search(r"(?m)^ +10 +224 +(\d+) +(\d+) +(\d+) ", t)
        self.assertTrue(crow, "no row for class 10 (224 bytes)")
        self.assertGreaterEqual(int(crow.group(3)), 1000)

    def test_text_na_when_disabled(self):
        t = self.text_dump({"NUMAMALLOC_HUGEPAGES": "off", "NUMAMALLOC_CHECK": "1"},
                           [helper("prog_obs"), "alloc", "2", str(4 << 20)])
        self.assertRegex(t, r"(?m)^  live bytes on huge pages +n/a \(NUMAMALLOC_HUGEPAGES=off\)$")
        self.assertRegex(t, r"(?m)^  huge_off +\d+ ")
        # the magazine hit rate does not apply when NUMAMALLOC_CHECK=1 bypasses magazines
        rows = re.findall(r"(?m)^ +\d+ +\d+ +\d+ +\d+ +\d+ +\S+ \S+ +\d+ +(\S+) ", t)
        self.assertTrue(rows, "no size-class rows in:\n" + t)
        self.assertEqual(set(rows), {"n/a"})

    def test_json_is_utf8_with_odd_path(self):
        """The dump is JSON, so UTF-8, even when a path in it is not: a
        NUMAMALLOC_STATS_FILE (or a profiled object's path) with a byte such as 0xff is
        written with U+FFFD in its place (src/out.c nm_buf_json_str).
        """
        path = os.path.join(self.tmp, "odd-\udcff.json")      # the byte 0xff in the file name
        proc = run([helper("prog_obs"), "alloc", "1", "16"], {"NUMAMALLOC_STATS": "json", "NUMAMALLOC_STATS_FILE": path})
        self.assertEqual(proc.returncode, 0, proc.stderr)
        with open(os.fsencode(path), "rb") as f:
            raw = f.read()
        os.unlink(os.fsencode(path))
        try:
            text, err = raw.decode("utf-8"), None
        except UnicodeDecodeError as e:
            text, err = None, str(e)
        self.assertIsNone(err, "the JSON dump is not valid UTF-8")
        self.assertEqual(json.loads(text)["config"]["stats_file"][-5:], ".json")

    def test_man_page_documents_every_json_key(self):
        """Every key a real dump has (profiler on, so frames too) is in numamalloc(7)."""
        d, _ = json_dump(self, [helper("prog_prof"), "leak", str(8 << 20), "1000"],
                         {"NUMAMALLOC_PROF": "1", "NUMAMALLOC_PROF_SAMPLE": "64K"}, name="keys")
        keys = set()

        def walk(v):
            if isinstance(v, dict):
                for k, x in v.items():
                    keys.add(k)
                    if k != "config":        # its keys are the variables, documented as such
                        walk(x)
            elif isinstance(v, list):
                for x in v:
                    walk(x)
        walk(d)
        self.assertIn("symbol", keys, "the profile should have named frames")
        with open(MAN7) as f:
            man = re.sub(r"\\f[BIRP]", "", f.read()).replace("\\-", "-")
        missing = sorted(k for k in keys if not re.search(r"(?<![\w])%s(?![\w])" % re.escape(k), man))
        self.assertEqual(missing, [], "JSON keys not documented in man/numamalloc.7")


# ---- the profiler -------------------------------------------------------------------------------

def frame_symbols(site):
    return [f.get("symbol") for f in site["frames"]]


class Profiler(Tmp, unittest.TestCase):

    def test_hot_site_first(self):
        """hot_allocator allocates 10x the bytes of cold_allocator: first by allocated bytes."""
        d, proc = json_dump(self, [helper("prog_prof"), "hotcold"], {"NUMAMALLOC_PROF": "1"}, name="hot")
        p = d["profile"]
        self.assertTrue(p["enabled"])
        self.assertGreater(p["samples"], 0)
        top = p["top_alloc"]
        self.assertTrue(top, "no sites")
        self.assertEqual(frame_symbols(top[0])[0], "hot_allocator", json.dumps(top[0])[:500])
        hot_truth = int(re.search(r"hot (\d+)", proc.stdout).group(1))
        self.assertTrue(hot_truth / 2 <= top[0]["alloc_bytes"] <= hot_truth * 2,
                        "hot_allocator: estimated %d, truth %d" % (top[0]["alloc_bytes"], hot_truth))
        ranks = [i for i, s in enumerate(top) if frame_symbols(s)[0] == "cold_allocator"]
        self.assertTrue(ranks and ranks[0] > 0, "cold_allocator should be listed after hot_allocator")
        # the text form says the same
        proc = run([helper("prog_prof"), "hotcold"], {"NUMAMALLOC_PROF": "1", "NUMAMALLOC_STATS": "text"})
        self.assertEqual(proc.returncode, 0, proc.stderr)
        sec = proc.stderr[proc.stderr.index("  top sites by allocated bytes:\n"):]
        self.assertRegex(sec, r"^  top sites by allocated bytes:\n    #1 +[0-9.]+ [KMG]iB allocated in ~\d+ blocks \(\d+ samples\); live [^\n]*\n        at hot_allocator\+0x[0-9a-f]+ \(prog_prof\)\n")

    def test_leak_found(self):
        """leaky_function leaks 32 MiB in 1000-byte blocks: named, estimate within a factor of 2."""
        d, proc = json_dump(self, [helper("prog_prof"), "leak", str(32 << 20), "1000"], {"NUMAMALLOC_PROF": "1"}, name="leak")
        truth = int(re.search(r"leaked (\d+)", proc.stdout).group(1))
        p = d["profile"]
        site = p["top_live"][0]
        self.assertEqual(frame_symbols(site)[0], "leaky_function")
        self.assertTrue(truth / 2 <= site["live_bytes"] <= truth * 2, "estimate %d, truth %d" % (site["live_bytes"], truth))
        self.assertTrue(truth / 2 <= p["live_bytes"] <= truth * 2.5, "total live %d, truth %d" % (p["live_bytes"], truth))
        # text: the leak section
        proc = run([helper("prog_prof"), "leak", str(32 << 20), "1000"], {"NUMAMALLOC_PROF": "1", "NUMAMALLOC_STATS": "text"})
        t = proc.stderr
        live = t[t.index("  top sites by live bytes:\n"):t.index("  top sites by allocated bytes:\n")]
        self.assertRegex(live, r"#1 +[0-9.]+ MiB live in ~\d+ blocks \(\d+ samples\); allocated [^\n]*\n        at leaky_function\+0x")
        m = re.search(r"still live \(leaks, if this is the exit dump\): ~([0-9.]+) MiB in ~\d+ blocks from \d+ sites", t)
        self.assertTrue(m, t[-600:])
        self.assertTrue(truth / 2 <= float(m.group(1)) * (1 << 20) <= truth * 2.5)

    def test_numa_attribution(self):
        """Huge-page fallbacks go to the site of the large blocks (NUMAMALLOC_HUGEPAGES=hugetlb
        with no pool: every one falls back to 4 KiB pages); remote frees are n/a on one node."""
        with open("/proc/sys/vm/nr_hugepages") as f:
            if int(f.read()) != 0:
                self.skipTest("this machine has a hugetlb pool: the blocks would not fall back")
        env = {"NUMAMALLOC_PROF": "1", "NUMAMALLOC_HUGEPAGES": "hugetlb", "NUMAMALLOC_LARGE_CACHE": "0"}
        d, _ = json_dump(self, [helper("prog_prof"), "large", "8", str(4 << 20)], env, name="hfb")
        p = d["profile"]
        self.assertGreaterEqual(p["huge_fallbacks"], 8)
        top = p["top_huge_fallback"]
        self.assertTrue(top, "no site by huge-page fallbacks")
        self.assertEqual(frame_symbols(top[0])[0], "huge_site", json.dumps(top[0])[:500])
        self.assertGreaterEqual(top[0]["huge_fallbacks"], 8)
        self.assertTrue(all(frame_symbols(s)[0] != "hot_allocator" for s in top), "small blocks never fall back")
        if d["nodes_with_memory"] == 1:
            self.assertIsNone(p["remote_frees"])
            self.assertIsNone(p["remote_free_bytes"])
            self.assertEqual(p["top_remote_free"], [])
        proc = run([helper("prog_prof"), "large", "8", str(4 << 20)], dict(env, NUMAMALLOC_STATS="text"))
        t = proc.stderr
        self.assertRegex(t, r"  top sites by huge-page fallbacks \(large blocks whose mapping did not get the huge pages "
                            r"asked for\):\n    #1  ~\d+ blocks off huge pages; allocated [^\n]*\n        at huge_site\+0x")
        if d["nodes_with_memory"] == 1:
            self.assertIn("  top sites by remote frees (freed by a thread on another node than the block's):\n"
                          "    n/a (one node with memory)\n", t)

    def test_profile_alone_when_stats_off(self):
        proc = run([helper("prog_prof"), "leak", str(8 << 20), "1000"], {"NUMAMALLOC_PROF": "1"})
        self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertTrue(proc.stderr.startswith("heap profile (estimates from sampling"), proc.stderr[:300])
        self.assertNotIn("=== numamalloc", proc.stderr)

    def test_sample_every_allocation(self):
        """NUMAMALLOC_PROF_SAMPLE=1: no crash, and every one of the program's mallocs is a sample.

        (Allocations that found their magazine empty used to escape sampling: 99983 of
        100000 here, fixed in src/tcache.c.) What stays live is stdio's buffer for the
        line the program prints and the loader's records of libunwind, which the
        profiler dlopens: a few KiB, sampled too.
        """
        n = 100000
        d, _ = json_dump(self, [helper("prog_prof"), "many", str(n)],
                         {"NUMAMALLOC_PROF": "1", "NUMAMALLOC_PROF_SAMPLE": "1"}, name="all")
        p = d["profile"]
        self.assertTrue(p["enabled"])
        self.assertEqual(p["sample_bytes"], 1)
        self.assertLessEqual(p["live_bytes"], 64 << 10, "everything but stdio's and the loader's was freed")
        self.assertGreaterEqual(p["samples"], n, "allocations that miss the magazine must be sampled too")

    def test_four_threads(self):
        """Four threads allocating with frequent samples: no deadlock, no crash."""
        d, proc = json_dump(self, [helper("prog_prof"), "threads", "4", "200000"],
                            {"NUMAMALLOC_PROF": "1", "NUMAMALLOC_PROF_SAMPLE": "4K"}, name="thr", timeout=180)
        p = d["profile"]
        self.assertGreater(p["samples"], 1000)
        self.assertGreaterEqual(d["summary"]["threads_seen"], 5)
        names = [n for s in p["top_alloc"] for n in frame_symbols(s)]
        self.assertIn("thread_body", names, "the threads' own function should be named")


# ---- the report ------------------------------------------------------------------------------

class Report(Tmp, unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        t = cls.tmp

        def dump(name, argv, env):
            e = {"NUMAMALLOC_STATS": "json", "NUMAMALLOC_STATS_FILE": os.path.join(t, name)}
            e.update(env)
            proc = run(argv, e)
            assert proc.returncode == 0, proc.stderr
            return os.path.join(t, name)
        cls.prof = dump("prof.json", [helper("prog_prof"), "leak", str(16 << 20), "1000"], {"NUMAMALLOC_PROF": "1"})
        cls.large = dump("large.json", [helper("prog_obs"), "alloc", "3", str(4 << 20)], {})
        cls.series = dump("series.json", [helper("prog_obs"), "busy", "2", "2.3"], {"NUMAMALLOC_STATS_INTERVAL": "1"})

    def report(self, *args):
        return subprocess.run([sys.executable, REPORT] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=TIMEOUT)

    def check_html(self, path, min_charts):
        with open(path) as f:
            h = f.read()
        self.assertTrue(h.startswith("<!DOCTYPE html>"))
        self.assertNotIn("<script", h)
        self.assertNotIn("http://", h.replace("http://www.w3.org/2000/svg", ""))   # self-contained
        svgs = re.findall(r"<svg .*?</svg>", h, re.S)
        self.assertGreaterEqual(len(svgs), min_charts)
        for s in svgs:
            ET.fromstring(s)                      # each chart is well-formed XML
        # the headline comes first: before any other chart
        first = svgs[0]
        self.assertIn("NUMA locality", first)
        self.assertIn("Huge pages", first)
        return h

    def test_one_dump(self):
        out_html = os.path.join(self.tmp, "one.html")
        out_svg = os.path.join(self.tmp, "one.svg")
        r = self.report(self.prof, "-o", out_html, "--svg", out_svg)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stderr, "")
        s = r.stdout
        self.assertIn("AT A GLANCE", s)
        self.assertRegex(s, r"NUMA locality +(1 node|[0-9.]+%)")
        self.assertRegex(s, r"Huge pages +(n/a|[0-9.]+%)")
        self.assertIn("top sites by allocated bytes", s)
        self.assertIn("leaky_function", s)
        self.assertRegex(s, r"heap [0-9.]+ \w?i?B \(peak [0-9.]+ \w?i?B\), live .* RSS .* fragmentation")
        self.check_html(out_html, 5)
        root = ET.parse(out_svg).getroot()
        self.assertTrue(root.tag.endswith("svg"))
        with open(out_svg) as f:
            self.assertIn("leaky_function", f.read())

    def test_several_dumps(self):
        out_html = os.path.join(self.tmp, "all.html")
        r = self.report(self.prof, self.large, self.series, "-o", out_html)
        self.assertEqual(r.returncode, 0, r.stderr)
        s = r.stdout
        self.assertRegex(s, r"numamalloc report: \d+ dumps from 3 processes")
        self.assertIn("(all processes, last dump of each)", s)
        self.assertEqual(len(re.findall(r"(?m)^process pid ", s)), 3)
        self.assertRegex(s, r"series.json\): exit dump after [0-9.]+ s \([2-9] dumps\)")
        self.assertRegex(s, r"huge pages: [0-9.]+% of live large-block bytes")   # the 4 MiB blocks
        self.assertIn("top sites: n/a (profiler off", s)
        h = self.check_html(out_html, 4 + 3 * 5 + 1)
        self.assertIn("All processes together", h)
        self.assertRegex(h, r"Heap, live and RSS over the \d+ dumps of this process")

    def test_missing_sections_and_nulls(self):
        with open(self.prof) as f:
            d = json.loads(f.readline())
        d2 = copy.deepcopy(d)
        for k in ("profile", "large", "classes", "fallbacks", "arena", "syscalls", "metadata", "misuse", "config"):
            d2.pop(k, None)
        d2["summary"]["rss_bytes"] = None
        d2["summary"]["fragmentation"] = None
        d2["pid"] = 4242
        d3 = copy.deepcopy(d)          # two nodes, some remote allocations
        d3["pid"] = 4343
        n0 = d3["nodes"][0]
        n0.update(remote_allocs=n0["allocs"] // 4, remote_frees=0, local_ratio=0.75)
        n1 = dict(n0, node="1", allocs=100, remote_allocs=0, alloc_bytes=1 << 20, local_ratio=1.0)
        d3["nodes"] = [n0, n1]
        d3["nodes_with_memory"] = 2
        path = os.path.join(self.tmp, "odd.json")
        with open(path, "w") as f:
            f.write(json.dumps(d2) + "\n\n" + json.dumps(d3) + "\n")
        out = os.path.join(self.tmp, "odd.html")
        r = self.report(path, "-o", out, "--svg", os.path.join(self.tmp, "odd.svg"))
        self.assertEqual(r.returncode, 0, r.stderr)
        s = r.stdout
        self.assertIn("RSS n/a", s)
        self.assertIn("fragmentation n/a", s)
        self.assertIn("top sites: n/a (profiler off", s)
        self.assertRegex(s, r"process pid 4343 .*\n(.*\n)*  node 0 .*local 75\.0%")
        self.check_html(out, 5)
        # locality of the two-node dump alone: 75% -> the amber grade
        with open(path, "w") as f:
            f.write(json.dumps(d3) + "\n")
        r = self.report(path, "--no-html")
        self.assertRegex(r.stdout, r"NUMA locality +7\d\.\d% +\[(fair|poor)\]")

    def test_residency_headline(self):
        """Misplaced memory is a headline: n/a with the reason on one node, graded when measured."""
        with open(self.prof) as f:
            d = json.loads(f.readline())
        r = self.report(self.prof, "--no-html")
        if d["nodes_with_memory"] == 1:
            self.assertRegex(r.stdout, r"Misplaced +n/a +\[n/a\] +residency not measured: one node with memory")
            self.assertIn("  residency: n/a (one node with memory)", r.stdout)
        # a two-node dump: 1 GiB placed, 256 MiB of node 0's memory on node 1 (20 %)
        d2 = copy.deepcopy(d)
        d2["pid"], d2["nodes_with_memory"] = 4444, 2
        mib = 1 << 20
        row = lambda node, res, placed, mis, foreign: {"kind": "all", "node": node, "resident_bytes": res,
                                                       "placed_bytes": placed, "misplaced_bytes": mis,
                                                       "spilled_bytes": mis, "foreign_bytes": foreign,
                                                       "interleaved_bytes": 0, "sampled_bytes": 0}
        d2["residency"] = {"measured": True, "why": None, "sample_pages": 16384, "elapsed_us": 900, "partial": False,
                           "resident_bytes": 1280 * mib, "misplaced_bytes": 256 * mib, "spilled_bytes": 256 * mib,
                           "misplaced_ratio": 0.2, "kinds": [],
                           "nodes": [row("0", 768 * mib, 768 * mib, 256 * mib, 0),
                                     row("1", 512 * mib, 256 * mib, 0, 256 * mib)]}
        path = os.path.join(self.tmp, "res.json")
        with open(path, "w") as f:
            f.write(json.dumps(d2) + "\n")
        out = os.path.join(self.tmp, "res.html")
        r = self.report(path, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertRegex(r.stdout, r"Misplaced +20\.0% +\[poor\] +256\.0 MiB of node-bound memory resident on another node")
        self.assertIn("residency (measured): 256.0 MiB misplaced (20.0% of node-bound memory), of which 256.0 MiB spilled",
                      r.stdout)
        self.assertRegex(r.stdout, r"node 1 +resident 512\.0 MiB: placed 256\.0 MiB, foreign 256\.0 MiB")
        h = self.check_html(out, 6)
        self.assertIn("Misplaced", h)
        self.assertIn("Measured residency per node", h)

    def test_no_usable_dump(self):
        text = os.path.join(self.tmp, "text.txt")
        with open(text, "w") as f:
            f.write("=== numamalloc 0.1.0 statistics (exit) pid 1, 0.001 s after start, 1 node(s) with memory ===\n")
        r = self.report(text, "--no-html")
        self.assertEqual(r.returncode, 1)
        self.assertIn("NUMAMALLOC_STATS=json", r.stderr)
        r = self.report(os.path.join(self.tmp, "does-not-exist.json"), "--no-html")
        self.assertEqual(r.returncode, 1)
        self.assertIn("cannot read", r.stderr)
        r = self.report()
        self.assertEqual(r.returncode, 2)


if __name__ == "__main__":
    for path, what in ((LIB, "library"), (os.path.join(BIN, "prog_obs"), "helper"), (os.path.join(BIN, "prog_prof"), "helper")):
        if not os.path.exists(path):
            sys.exit("test_dumps.py: %s %s not built (run make obs-test)" % (what, path))
    unittest.main()
