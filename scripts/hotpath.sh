#!/usr/bin/env bash
# scripts/hotpath.sh — hot-path instruction counts under callgrind, next to the
# recorded ones in bench/hotpath.golden, so a regression shows up in review.
# Reports; never fails because a number changed (only if a measurement cannot run).
#
#   scripts/hotpath.sh            measure and print golden vs current
#   scripts/hotpath.sh --update [--note "built from ..."]   also rewrite bench/hotpath.golden
#   NM_LIB=path/libnumamalloc.so  library to measure (default $B/libnumamalloc.so, B=build)
#   BENCH_BIN=dir                 where the benchmark programs are built (default $B/bench)
#
# What is counted (bench/hotpath.py): instructions per malloc+free pair of 16, 256,
# 4000 and 262144 bytes for glibc, jemalloc, tcmalloc, mimalloc and numamalloc (with
# NUMAMALLOC_STATS=json too), from two runs with different iteration counts so
# start-up cancels; and the instructions of a process that makes 10 allocations.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
NM_LIB=$(realpath "${NM_LIB:-$B/libnumamalloc.so}")
BENCH_BIN=${BENCH_BIN:-$B/bench}
[ -f "$NM_LIB" ] || { echo "hotpath.sh: $NM_LIB not found (run make first, or set NM_LIB=)" >&2; exit 2; }
scripts/deps.sh bench
make -s -f bench/bench.mk O="$BENCH_BIN" >/dev/null
exec python3 bench/hotpath.py --bin "$BENCH_BIN" --lib "$NM_LIB" --golden bench/hotpath.golden "$@"
