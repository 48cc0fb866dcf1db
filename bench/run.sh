#!/usr/bin/env bash
# bench/run.sh — the benchmark suite: every workload under glibc, jemalloc,
# tcmalloc, mimalloc and numamalloc in the same run, side by side (bench/run.py
# does the measuring and writes bench/results/latest.{md,json,svg} and memreturn.svg).
#
#   bench/run.sh                 full run (under 30 minutes on 2 cores)
#   bench/run.sh --quick         a tenth of the work, 3 repeats, 2 s memreturn windows (under 4 minutes)
#   bench/run.sh --only 'pairs|larson' --allocators glibc,numamalloc --repeats 3
#   bench/run.sh --only 'memreturn' --no-extras       memory return over time only (memreturn-SCENARIO)
#   NM_LIB=/tmp/nm-x/libnumamalloc.so bench/run.sh --quick
#   bench/run.sh --only 'batch|cxx' --allocators tcmalloc,mimalloc,numamalloc --no-extras \
#       --also exp=/tmp/nm-x/libnumamalloc.so      another build in the same run, with its ratios
#                                                   to numamalloc's (report in /tmp/nm-bench-ab)
#
# NM_LIB defaults to $B/libnumamalloc.so (B=build; `make B=... bench` passes B);
# the benchmark programs are built into $BENCH_BIN (default $B/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
NM_LIB=$(realpath "${NM_LIB:-$B/libnumamalloc.so}")
BENCH_BIN=$(realpath -m "${BENCH_BIN:-$B/bench}")
[ -f "$NM_LIB" ] || { echo "bench/run.sh: $NM_LIB not found (run make first, or set NM_LIB=)" >&2; exit 2; }
scripts/deps.sh bench
make -s -f bench/bench.mk O="$BENCH_BIN" >/dev/null
exec python3 bench/run.py --bin "$BENCH_BIN" --lib "$NM_LIB" "$@"
