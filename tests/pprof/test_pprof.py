#!/usr/bin/env python3
"""tests/pprof/test_pprof.py — NUMAMALLOC_PROF_FILE: the heap profile in pprof's legacy
format and collapsed stacks, checked with google-pprof itself on a program whose
allocations are known, and the flame graph of the report. Standard library only; run
by `make pprof-test`:

    NM_PPROF_LIB=build/libnumamalloc.so NM_PPROF_BIN=build/tests/pprof python3 tests/pprof/test_pprof.py [-v]

  Accuracy   tests/pprof/prog_pprof plants 200 MiB in 4000-byte blocks (40 MiB live at
             exit) in planted_hot_site: google-pprof --text names it first, within 10%
             of the truth, for in-use and for allocated bytes; --lines names the line of
             the malloc call and the line of main that calls the function; the collapsed
             file adds up to the profile's in-use total
  Format     every line of the file matches google-pprof's own patterns; the maps follow
             MAPPED_LIBRARIES:
  Triggers   exit, NUMAMALLOC_STATS_SIGNAL (addresses only in the collapsed file, from a
             signal handler) and NUMAMALLOC_STATS_INTERVAL; a storm of signals while
             threads allocate and are sampled
  Safety     mode 0600, replaced not appended, a symlink and a FIFO refused with one
             line each, a name too long, NUMAMALLOC_PROF=0, set-uid (AT_SECURE)
  Report     scripts/numamalloc-report finds the collapsed file from the dump and draws
             the flame graph as inline SVG naming the planted function; --collapsed
The profiles are sampled every 4 KiB on average (NUMAMALLOC_PROF_SAMPLE=4K): a 4000-byte
block (size class 4096) is sampled with probability 1 - 1/e, about 6,600 samples stay
live in the planted site, the estimate's standard deviation is under 1%, and the
profile counts usable bytes (+2.4% over the requested ones): a 10% error is more than
seven standard deviations away. Timeouts only guard against hangs.
"""

import math
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LIB = os.path.abspath(os.environ.get("NM_PPROF_LIB", os.path.join(ROOT, "build", "libnumamalloc.so")))
BIN = os.path.abspath(os.environ.get("NM_PPROF_BIN", os.path.join(ROOT, "build", "tests", "pprof")))
PROG = os.path.join(BIN, "prog_pprof")
PROG_LINKED = os.path.join(BIN, "prog_pprof_linked")
SRC = os.path.join(ROOT, "tests", "pprof", "prog_pprof.c")
REPORT = os.path.join(ROOT, "scripts", "numamalloc-report")
PPROF = shutil.which("google-pprof") or shutil.which("pprof")
TIMEOUT = 180
SAMPLE = 4096
BASE_ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C", "HOME": "/tmp"}

# google-pprof's own patterns (ReadHeapProfile)
HEADER_RE = re.compile(r"^heap profile:\s*(\d+):\s+(\d+)\s+\[\s*(\d+):\s+(\d+)\]\s*@\s*heap_v2/(\d+)$")
ENTRY_RE = re.compile(r"^\s*(\d+):\s+(\d+)\s+\[\s*(\d+):\s+(\d+)\]\s+@\s+(.*)$")


def run(argv, env=None, preload=True, timeout=TIMEOUT, cwd=None):
    e = dict(BASE_ENV)
    if preload:
        e["LD_PRELOAD"] = LIB
    e.update(env or {})
    return subprocess.run(argv, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, universal_newlines=True, cwd=cwd)


def truth(stdout):
    """{site: (inuse, alloc)} from the program's 'truth' lines"""
    return {m.group(1): (int(m.group(2)), int(m.group(3)))
            for m in re.finditer(r"^truth (\w+) (\d+) (\d+)$", stdout, re.M)}


def pid_of(stdout):
    m = re.search(r"^pid (\d+) at_secure (\d+)$", stdout, re.M)
    assert m, "no pid line in: " + stdout
    return int(m.group(1)), int(m.group(2))


def read_profile(path):
    """(header numbers, [(n1, s1, n2, s2, [addresses])], maps text)"""
    with open(path) as f:
        lines = f.read().split("\n")
    m = HEADER_RE.match(lines[0])
    assert m, "bad header: %r" % lines[0]
    header = tuple(int(x) for x in m.groups())
    sites, i = [], 1
    while i < len(lines) and lines[i].strip() != "":
        e = ENTRY_RE.match(lines[i])
        assert e, "line %d does not match pprof's pattern: %r" % (i + 1, lines[i])
        addrs = e.group(5).split()
        assert all(re.fullmatch(r"0x[0-9a-f]+", a) for a in addrs), lines[i]
        sites.append((int(e.group(1)), int(e.group(2)), int(e.group(3)), int(e.group(4)), addrs))
        i += 1
    rest = "\n".join(lines[i:]).lstrip("\n")
    assert rest.startswith("MAPPED_LIBRARIES:\n"), "no MAPPED_LIBRARIES: after the sites: %r" % rest[:80]
    return header, sites, rest[len("MAPPED_LIBRARIES:\n"):]


def unsampled(count, size, period):
    """what pprof makes of one site's pair (heap_v2)"""
    if count == 0:
        return 0.0
    return size / (1 - math.exp(-(size / count) / period))


def read_collapsed(path):
    out = []
    with open(path) as f:
        for line in f:
            m = re.fullmatch(r"(.+) (\d+)\n", line)
            assert m, "collapsed line not 'frames bytes': %r" % line
            out.append((m.group(1).split(";"), int(m.group(2))))
    return out


def pprof_text(args, prog, profile):
    """google-pprof --text: (total MiB, [(flat MiB, cum MiB, name rest)])"""
    p = subprocess.run([PPROF, "--text"] + args + [prog, profile], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)
    assert p.returncode == 0, "google-pprof failed: %s" % p.stderr
    m = re.search(r"^Total: ([0-9.]+) MB$", p.stdout, re.M)
    assert m, "no Total line:\n" + p.stdout
    rows = []
    for line in p.stdout[m.end():].splitlines():
        r = re.match(r"^\s*([0-9.]+)\s+[0-9.]+%\s+[0-9.]+%\s+([0-9.]+)\s+[0-9.]+%\s+(.*)$", line)
        if r:
            rows.append((float(r.group(1)), float(r.group(2)), r.group(3)))
    return float(m.group(1)), rows, p.stdout


def marked_line(marker):
    with open(SRC) as f:
        for n, line in enumerate(f, 1):
            if marker in line:
                return n
    raise AssertionError("no line marked %r in %s" % (marker, SRC))


class Tmp:
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="nm-pprof-")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)


def profiled(tmp, mode_args, extra=None, name="prof", stats=True):
    """Run prog_pprof with the profiler; return (proc, pid, profile path, collapsed path)."""
    env = {"NUMAMALLOC_PROF": "1", "NUMAMALLOC_PROF_SAMPLE": str(SAMPLE),
           "NUMAMALLOC_PROF_FILE": os.path.join(tmp, name + ".%p.heap")}
    if stats:
        env.update({"NUMAMALLOC_STATS": "json", "NUMAMALLOC_STATS_FILE": os.path.join(tmp, name + ".%p.json")})
    env.update(extra or {})
    proc = run([PROG] + mode_args, env)
    assert proc.returncode == 0, "prog_pprof %s failed (%d): %s" % (mode_args, proc.returncode, proc.stderr[-2000:])
    pid, _ = pid_of(proc.stdout)
    path = os.path.join(tmp, "%s.%d.heap" % (name, pid))
    return proc, pid, path, path + ".collapsed"


class Accuracy(Tmp, unittest.TestCase):
    """One run at exit, read by google-pprof."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.proc, cls.pid, cls.heap, cls.coll = profiled(cls.tmp, ["run"])
        cls.truth = truth(cls.proc.stdout)

    def setUp(self):
        if PPROF is None:
            self.skipTest("google-pprof not installed (apt-get install google-perftools)")

    def check_first(self, args, index, what):
        total, rows, out = pprof_text(args, PROG, self.heap)
        self.assertTrue(rows, out)
        flat, _, name = rows[0]
        self.assertEqual(name.split()[0], "planted_hot_site", "first entry of google-pprof --text %s:\n%s" % (args, out))
        real = self.truth["planted_hot_site"][index] / 1048576.0
        err = flat / real - 1
        sys.stderr.write("  planted_hot_site %s: google-pprof %.1f MiB, truth %.1f MiB requested (%+.1f%%)\n"
                         % (what, flat, real, 100 * err))
        self.assertLess(abs(err), 0.10, "%s: pprof says %.1f MiB, the truth is %.1f MiB" % (what, flat, real))
        return total, rows

    def test_inuse_space(self):
        total, rows = self.check_first([], 0, "in use")
        names = [r[2].split()[0] for r in rows]
        for site in ("keep_small", "keep_large", "edge_alloc"):
            self.assertIn(site, names)
        self.assertNotIn("churn_medium", [r[2].split()[0] for r in rows if r[0] > 0], "churn_medium freed everything")

    def test_alloc_space(self):
        total, rows = self.check_first(["--alloc_space"], 1, "allocated")
        second = [r for r in rows if r[2].split()[0] == "churn_medium"]
        self.assertTrue(second, "churn_medium missing from --alloc_space")
        real = self.truth["churn_medium"][1] / 1048576.0
        self.assertLess(abs(second[0][0] / real - 1), 0.10, "churn_medium: %.1f MiB vs %.1f" % (second[0][0], real))

    def test_lines(self):
        """the first address names the malloc call, the callers' the calls to them

        edge_alloc's call to malloc is followed by its epilogue only, on the line of its
        closing brace: the return address itself would name that line."""
        _, rows, out = pprof_text(["--lines"], PROG, self.heap)
        want = "planted_hot_site %s:%d" % (SRC, marked_line("/* planted malloc */"))
        self.assertEqual(rows[0][2], want, out)
        edge = [r[2] for r in rows if r[2].startswith("edge_alloc ")]
        self.assertEqual(edge, ["edge_alloc %s:%d" % (SRC, marked_line("/* edge malloc */"))], out)
        _, rows, out = pprof_text(["--lines", "--cum"], PROG, self.heap)
        call = "main %s:%d" % (SRC, marked_line("/* planted call */"))
        self.assertIn(call, [r[2] for r in rows], out)

    def test_collapsed_adds_up(self):
        """.collapsed holds the in-use bytes, .alloc.collapsed the allocated, as pprof counts them"""
        header, sites, _ = read_profile(self.heap)
        for path, k, args in ((self.coll, 0, []), (self.heap + ".alloc.collapsed", 2, ["--alloc_space"])):
            coll = read_collapsed(path)
            want = [unsampled(s[k], s[k + 1], SAMPLE) for s in sites if s[k]]
            got = sum(n for _, n in coll)
            self.assertEqual(len(coll), len(want), "%s: one line per site with bytes" % path)
            self.assertLessEqual(abs(got - sum(want)), len(want), "%s: total %d, the profile's %.0f" % (path, got, sum(want)))
            total, _, _ = pprof_text(args, PROG, self.heap)
            self.assertLessEqual(abs(got / 1048576.0 - total), 0.05 + 1e-9,
                                 "%s: google-pprof %s Total %.1f MB vs collapsed %d" % (path, args, total, got))
            self.assertEqual(max(coll, key=lambda x: x[1])[0][-1], "planted_hot_site", path)
        # the header is the sites' sum
        self.assertEqual(header[:4], tuple(sum(s[k] for s in sites) for k in range(4)))
        self.assertEqual(header[4], SAMPLE)


class Format(Tmp, unittest.TestCase):

    def test_file_layout(self):
        proc, pid, heap, coll = profiled(self.tmp, ["run"])
        header, sites, maps = read_profile(heap)
        self.assertGreaterEqual(len(sites), 4)
        self.assertIn(PROG, maps, "the program's mapping is listed")
        self.assertRegex(maps, r"(?m)^[0-9a-f]+-[0-9a-f]+ r-xp [0-9a-f]+ \S+ \d+\s+\S*libc\.so\.6$")
        for f in (heap, coll, heap + ".alloc.collapsed"):
            self.assertEqual(stat.S_IMODE(os.lstat(f).st_mode), 0o600, f)
        self.assertEqual([f for f in os.listdir(self.tmp) if f.endswith(".tmp")], [],
                         "the temporary files are renamed over the profile files")
        lines = read_collapsed(coll)
        top = max(lines, key=lambda x: x[1])
        self.assertEqual(top[0][-1], "planted_hot_site", "innermost frame last")
        self.assertIn("main", top[0][:-1], "callers first")
        self.assertNotIn("malloc", [f for fr, _ in lines for f in fr], "the allocator's own frames are left out")
        # stats off: no text profile on stderr, the files instead
        proc = run([PROG, "run"], {"NUMAMALLOC_PROF": "1", "NUMAMALLOC_PROF_FILE": os.path.join(self.tmp, "quiet.heap")})
        self.assertEqual(proc.returncode, 0)
        self.assertNotIn("heap profile", proc.stderr)
        self.assertTrue(os.path.exists(os.path.join(self.tmp, "quiet.heap.collapsed")))


class Triggers(Tmp, unittest.TestCase):

    def test_signal(self):
        """from the signal handler (the program _exits after it: no exit profile)"""
        proc, pid, heap, coll = profiled(self.tmp, ["signal"], {"NUMAMALLOC_STATS_SIGNAL": "USR1"}, name="sig")
        header, sites, maps = read_profile(heap)
        self.assertGreater(sum(unsampled(s[0], s[1], SAMPLE) for s in sites), 40 << 20)
        lines = read_collapsed(coll)
        self.assertTrue(lines)
        for frames, _ in lines:
            for f in frames:
                self.assertRegex(f, r"^(0x[0-9a-f]+|\[no stack\])$", "no names from a signal handler")
        if PPROF:
            _, rows, out = pprof_text([], PROG, heap)
            self.assertEqual(rows[0][2].split()[0], "planted_hot_site", out)

    def test_interval(self):
        """the interval thread writes named profiles; the program _exits after two dumps"""
        dumps = os.path.join(self.tmp, "int.json")
        proc, pid, heap, coll = profiled(self.tmp, ["wait", dumps],
                                         {"NUMAMALLOC_STATS_INTERVAL": "1", "NUMAMALLOC_STATS_FILE": dumps}, name="int")
        with open(dumps) as f:
            self.assertTrue(all('"reason":"interval"' in l for l in f.read().splitlines()))
        header, sites, _ = read_profile(heap)
        lines = read_collapsed(coll)
        self.assertEqual(max(lines, key=lambda x: x[1])[0][-1], "planted_hot_site")

    def test_storm(self):
        """signals while threads allocate, interval writes, then exit: no hang, a valid file"""
        proc, pid, heap, coll = profiled(self.tmp, ["storm", "300"],
                                         {"NUMAMALLOC_STATS_SIGNAL": "USR1", "NUMAMALLOC_STATS_INTERVAL": "1",
                                          "NUMAMALLOC_PROF_SAMPLE": "4K"}, name="storm")
        self.assertIn("storm done", proc.stdout)
        read_profile(heap)
        read_collapsed(coll)
        for line in proc.stderr.splitlines():
            self.assertRegex(line, r"^numamalloc: (NUMAMALLOC_PROF_FILE: (the profiler was busy|another profile write is in progress) .*|statistics dump skipped: another dump is in progress)$")


class Safety(Tmp, unittest.TestCase):

    def prof_env(self, path, **kw):
        e = {"NUMAMALLOC_PROF": "1", "NUMAMALLOC_PROF_FILE": path}
        e.update(kw)
        return e

    def test_replaced_not_appended(self):
        """a second run replaces the file (and the old one's mode 0644 with 0600)"""
        path = os.path.join(self.tmp, "same.heap")
        with open(path, "w") as f:
            f.write("old contents\n" * 100000)
        os.chmod(path, 0o644)
        for _ in range(2):
            proc = run([PROG, "run"], self.prof_env(path))
            self.assertEqual(proc.returncode, 0, proc.stderr)
        self.assertEqual(stat.S_IMODE(os.lstat(path).st_mode), 0o600)
        with open(path) as f:
            text = f.read()
        self.assertEqual(text.count("heap profile:"), 1)
        self.assertNotIn("old contents", text)
        read_profile(path)

    def test_symlink_refused(self):
        target = os.path.join(self.tmp, "target")
        with open(target, "w") as f:
            f.write("keep me\n")
        link = os.path.join(self.tmp, "link.heap")
        os.symlink(target, link)
        proc = run([PROG, "run"], self.prof_env(link))
        self.assertEqual(proc.returncode, 0)
        self.assertEqual(proc.stderr, "numamalloc: NUMAMALLOC_PROF_FILE: cannot open '%s' (errno 40): profile not written\n" % link,
                         "one line, and no collapsed files beside a refused profile")
        with open(target) as f:
            self.assertEqual(f.read(), "keep me\n")
        self.assertFalse(os.path.lexists(link + ".collapsed"))

    def test_fifo_refused(self):
        fifo = os.path.join(self.tmp, "fifo.heap")
        os.mkfifo(fifo)
        proc = run([PROG, "run"], self.prof_env(fifo))
        self.assertEqual(proc.returncode, 0)
        self.assertIn("numamalloc: NUMAMALLOC_PROF_FILE: '%s' is not a regular file (a FIFO nobody reads): profile not written\n"
                      % fifo, proc.stderr)

    def test_directory_refused(self):
        d = os.path.join(self.tmp, "adir")
        os.mkdir(d)
        proc = run([PROG, "run"], self.prof_env(d))
        self.assertIn("numamalloc: NUMAMALLOC_PROF_FILE: '%s' is not a regular file (a directory): profile not written\n" % d,
                      proc.stderr)

    def test_disk_full(self):
        """a write cut short (here by RLIMIT_FSIZE) leaves the old file, says so, removes its temporary"""
        import resource
        import signal

        path = os.path.join(self.tmp, "full.heap")
        with open(path, "w") as f:
            f.write("the old profile\n")

        def limit():
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)     # EFBIG instead of death
            resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))
        e = dict(BASE_ENV, LD_PRELOAD=LIB, **self.prof_env(path))
        proc = subprocess.run([PROG, "run"], env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=TIMEOUT, preexec_fn=limit)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        pid, _ = pid_of(proc.stdout)
        self.assertEqual(proc.stderr, "numamalloc: NUMAMALLOC_PROF_FILE: '%s.%d.tmp' was not written in full (disk full?): "
                                      "profile not written\n" % (path, pid))
        with open(path) as f:
            self.assertEqual(f.read(), "the old profile\n")
        self.assertEqual([f for f in os.listdir(self.tmp) if f.startswith("full.heap.")], [])

    def test_name_too_long(self):
        pattern = os.path.join(self.tmp, "%t" * 200)        # 400 bytes: expands to over 2000
        proc = run([PROG, "run"], self.prof_env(pattern))
        self.assertEqual(proc.returncode, 0)
        self.assertRegex(proc.stderr, r"^numamalloc: NUMAMALLOC_PROF_FILE: '%s/[%%t]+\.\.\.' expands to more than \d+ bytes: "
                                      r"profile not written\n$" % re.escape(self.tmp))

    def test_prof_off(self):
        path = os.path.join(self.tmp, "off.heap")
        proc = run([PROG, "run"], {"NUMAMALLOC_PROF_FILE": path})
        self.assertEqual(proc.returncode, 0)
        self.assertEqual(proc.stderr, "numamalloc: NUMAMALLOC_PROF_FILE is set but NUMAMALLOC_PROF is 0: no profile is written "
                                      "(set NUMAMALLOC_PROF=1)\n")
        self.assertFalse(os.path.exists(path))

    def test_at_secure(self):
        """a set-uid root copy run by nobody ignores the variable; the same binary not set-uid writes"""
        if os.geteuid() != 0:
            self.skipTest("needs root (a set-uid root copy of the helper)")
        if not os.access("/usr/bin/setpriv", os.X_OK):
            self.skipTest("setpriv (util-linux) not installed")
        bindir = tempfile.mkdtemp(prefix="nm-pprof-suid-")
        outdir = tempfile.mkdtemp(prefix="nm-pprof-out-")
        try:
            os.chmod(bindir, 0o755)
            os.chmod(outdir, 0o777)             # nobody could write the profile here
            exe = os.path.join(bindir, "prog")
            shutil.copyfile(PROG_LINKED, exe)
            os.chown(exe, 0, 0)
            os.chmod(exe, 0o4755)
            path = os.path.join(outdir, "p.heap")
            env = {"NUMAMALLOC_PROF": "1", "NUMAMALLOC_PROF_FILE": path}
            proc = run(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe, "run"], env, preload=False)
            os.chmod(exe, 0o755)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            if pid_of(proc.stdout)[1] != 1:
                self.skipTest("the set-uid bit was not honoured here (nosuid mount?)")
            self.assertIn("numamalloc: NUMAMALLOC_PROF_FILE ignored in a set-uid/set-gid (AT_SECURE) process\n", proc.stderr)
            self.assertFalse(os.path.lexists(path), "a set-uid process wrote the profile")
            proc = run([exe, "run"], env, preload=False)
            self.assertEqual(proc.returncode, 0, proc.stderr)
            self.assertTrue(os.path.exists(path), "control run (not set-uid) wrote no profile: " + proc.stderr)
        finally:
            shutil.rmtree(bindir, ignore_errors=True)
            shutil.rmtree(outdir, ignore_errors=True)


class Report(Tmp, unittest.TestCase):

    def flame_svgs(self, html_path):
        with open(html_path) as f:
            page = f.read()
        self.assertNotIn("<script", page.lower())
        self.assertNotRegex(page, r"(?i)(src|href)=\"?(https?:)?//")
        svgs = [m.group(0) for m in re.finditer(r"<svg\b.*?</svg>", page, re.S)]
        return [s for s in svgs if "<title>heap flame graph" in s]

    def test_flame_graph_found_from_the_dump(self):
        # a relative profile name: found next to the dump, as the process wrote it there
        proc = run([PROG, "run"], {"NUMAMALLOC_PROF": "1", "NUMAMALLOC_PROF_SAMPLE": str(SAMPLE), "NUMAMALLOC_PROF_FILE": "p.%p.heap",
                                   "NUMAMALLOC_STATS": "json", "NUMAMALLOC_STATS_FILE": "d.%p.json"}, cwd=self.tmp)
        self.assertEqual(proc.returncode, 0, proc.stderr)
        pid, _ = pid_of(proc.stdout)
        out = os.path.join(self.tmp, "r.html")
        r = subprocess.run([sys.executable, REPORT, os.path.join(self.tmp, "d.%d.json" % pid), "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT, cwd="/")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("heap flame graph: %s/p.%d.heap.collapsed" % (self.tmp, pid), r.stdout)
        self.assertIn("heap flame graph: %s/p.%d.heap.alloc.collapsed" % (self.tmp, pid), r.stdout)
        flames = self.flame_svgs(out)
        self.assertEqual(len(flames), 2, "live and allocated bytes of the one profiled process")
        ns = "{http://www.w3.org/2000/svg}"
        for flame, what in zip(flames, ("live bytes", "allocated bytes")):
            svg = ET.fromstring(flame)                     # well-formed XML
            tips = [t.text for t in svg.iter(ns + "title")]
            self.assertTrue(tips[0].startswith("heap flame graph (%s): p.%d.heap." % (what, pid)), tips[0])
            planted = [t for t in tips if t.startswith("planted_hot_site: ")]
            self.assertEqual(len(planted), 1, tips)
            self.assertIn("main", [t.split(":")[0] for t in tips])
            texts = [t.text for t in svg.iter(ns + "text")]
            self.assertIn("planted_hot_site", texts, "the widest tower is labelled")

    def test_all_freed(self):
        """a profile whose live bytes are all freed says so instead of drawing nothing"""
        coll = os.path.join(self.tmp, "empty.collapsed")
        open(coll, "w").close()
        out = os.path.join(self.tmp, "empty.html")
        proc = run([PROG, "run"], {"NUMAMALLOC_STATS": "json", "NUMAMALLOC_STATS_FILE": os.path.join(self.tmp, "e.%p.json")})
        pid, _ = pid_of(proc.stdout)
        r = subprocess.run([sys.executable, REPORT, os.path.join(self.tmp, "e.%d.json" % pid), "--collapsed", coll, "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        flames = self.flame_svgs(out)
        self.assertEqual(len(flames), 1)
        self.assertIn("no live bytes sampled in this profile (all freed)", flames[0])

    def test_collapsed_option(self):
        coll = os.path.join(self.tmp, "given.collapsed")
        with open(coll, "w") as f:
            f.write("main;outer_fn;inner_fn 3000000\nmain;other_fn 1000000\nnot a stack line\n")
        proc = run([PROG, "run"], {"NUMAMALLOC_STATS": "json", "NUMAMALLOC_STATS_FILE": os.path.join(self.tmp, "plain.%p.json")})
        pid, _ = pid_of(proc.stdout)
        out = os.path.join(self.tmp, "given.html")
        r = subprocess.run([sys.executable, REPORT, os.path.join(self.tmp, "plain.%d.json" % pid), "--collapsed", coll, "-o", out],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("%s: 1 line not of the form 'frame;frame;... bytes', skipped" % coll, r.stderr)
        flames = self.flame_svgs(out)
        self.assertEqual(len(flames), 1)
        svg = ET.fromstring(flames[0])
        tips = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")]
        self.assertIn("inner_fn: 2.9 MiB (75.0%)", tips)
        self.assertIn("main: 3.8 MiB (100.0%)", tips)
        r = subprocess.run([sys.executable, REPORT, os.path.join(self.tmp, "plain.%d.json" % pid), "--collapsed",
                            os.path.join(self.tmp, "missing.collapsed"), "--no-html"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 1)
        self.assertRegex(r.stderr, r"missing\.collapsed: cannot read: No such file or directory")


if __name__ == "__main__":
    unittest.main(verbosity=2 if "-v" in sys.argv else 1, argv=[sys.argv[0]])
