#!/usr/bin/env bash
# scripts/demo.sh — the main job: on a fresh Debian machine, install what is missing,
# build build/libnumamalloc.so, and run a real program (python3 doing dict/str/json
# work, 4 threads) on it through the launcher, scripts/numamalloc, with its
# statistics dump at exit.
#   scripts/demo.sh              text dump on stderr
#   scripts/demo.sh json         JSON dump into build/demo.<pid>.json, the heap profile
#                                (build/demo.<pid>.heap for google-pprof, .collapsed for
#                                flame graphs), and the HTML report with its flame graph
# PYTHONMALLOC=malloc makes CPython use malloc for small objects too (pymalloc would
# otherwise serve everything under 512 bytes from its own arenas).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
make -s all
mode=${1:-text}
work='
import json, random, threading
random.seed(7)
def job(k):
    d = {("k%d_%d" % (k, i)): [random.random() for _ in range(8)] for i in range(60000)}
    s = json.dumps(d)
    back = json.loads(s)
    return len(s), sum(len(v) for v in back.values())
res = [None] * 4
ts = [threading.Thread(target=lambda k=k: res.__setitem__(k, job(k))) for k in range(4)]
for t in ts: t.start()
for t in ts: t.join()
print("json bytes per thread:", [r[0] for r in res], "values:", sum(r[1] for r in res))
'
# the interpreter itself, not a wrapper script (pyenv shims would be dumped too)
py=/usr/bin/python3; [ -x "$py" ] || py=$(command -v python3)
if [ "$mode" = json ]; then
  rm -f build/demo.*.json build/demo.*.heap build/demo.*.heap.collapsed
  PYTHONMALLOC=malloc scripts/numamalloc --stats=json --stats-file="$PWD/build/demo.%p.json" \
    --prof-file="$PWD/build/demo.%p.heap" --report=build/demo-report.html "$py" -c "$work"
  echo "dump: $(ls build/demo.*.json); heap profile: $(ls build/demo.*.heap)"
  echo "report: build/demo-report.html"
else
  PYTHONMALLOC=malloc scripts/numamalloc --stats "$py" -c "$work"
fi
