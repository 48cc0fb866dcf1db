#!/usr/bin/env bash
# tests/numa/hugepage-test.sh — huge-page backing of large blocks on this machine
# (one NUMA node): hugetlb with a pool, THP without one, no SIGBUS with a pool
# that is too small or fully reserved, NUMAMALLOC_HUGEPAGES=off and =thp, and
# blocks too small for a huge page. Each case runs tests/numa/hugepages.c under
# the preload with the pool sized for it (through /proc/sys/vm/nr_hugepages,
# restored on every exit path), then checks the fallback counters of the
# process's JSON stats dump with tests/numa/stats_check.py.
#   usage: hugepage-test.sh LIB PROGDIR        (make hugepage-test)
# Needs root (it sizes the global hugetlb pool); without it, one line says so
# and the suite is skipped. Prints the measurements, not the passing checks.
set -euo pipefail

LIB=$(realpath "$1")
PROG=$2/hugepages
HERE=$(cd "$(dirname "$0")" && pwd)
NR=/proc/sys/vm/nr_hugepages
HP=/sys/kernel/mm/hugepages/hugepages-2048kB

if [ ! -d $HP ]; then echo "hugepage-test: skipped: this kernel has no 2 MiB hugetlb pages"; exit 0; fi
if [ "$(id -u)" != 0 ] || [ ! -w $NR ]; then echo "hugepage-test: skipped: needs root to size $NR"; exit 0; fi

# one checkout at a time sizes the global pool (tests/fault takes the same lock)
exec 9> "${TMPDIR:-/tmp}/numamalloc-hugepages.lock"
flock -w 300 9 || { echo "FAIL hugepage-test: the hugetlb pool lock is held by another run"; exit 1; }
T0=$(date +%s.%N)
old=$(cat $NR)
T=$(mktemp -d "${TMPDIR:-/tmp}/nm-hugepage.XXXXXX")
restore() {
  echo "$old" > $NR 2>/dev/null || echo "hugepage-test: could not restore $NR to $old" >&2
  rm -rf "$T"
}
trap restore EXIT
trap 'exit 130' INT TERM HUP

thp_mode=$(sed -n 's/.*\[\(.*\)\].*/\1/p' /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || true)
thp_mode=${thp_mode:-never}
fails=0 passes=0

# Leave exactly `want` free 2 MiB pages; pages other processes hold stay theirs.
pool() {
  local want=$1 free nr
  for _ in 1 2; do
    nr=$(cat $NR); free=$(cat $HP/free_hugepages)
    echo $((nr - free + want)) > $NR || true
    free=$(cat $HP/free_hugepages)
    [ "$free" -lt "$want" ] || break
    # fragmented memory: compact once and ask again
    echo 1 > /proc/sys/vm/compact_memory 2>/dev/null || true
  done
  if [ "$free" != "$want" ]; then
    echo "FAIL hugepage-test: wanted $want free hugetlb pages, the kernel left $free"
    fails=$((fails + 1))
    return 1
  fi
}

# run SCENARIO [VAR=VALUE...]: the program under the preload, stats dump into $T/SCENARIO.json
run() {
  local scen=$1 rc=0 out
  shift
  rm -f "$T/$scen.json"
  out=$(env "$@" NUMAMALLOC_LARGE_CACHE=0 NUMAMALLOC_STATS=json NUMAMALLOC_STATS_FILE="$T/$scen.json" \
        LD_PRELOAD="$LIB" "$PROG" "$scen" 2>&1) || rc=$?
  passes=$((passes + $(grep -c '^PASS' <<< "$out" || true)))
  grep -Ev '^(PASS|INFO hugepages|hugepages: 0 failure)' <<< "$out" || true
  if [ $rc -gt 128 ]; then
    echo "FAIL hugepage-test $scen: killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null || echo ?))"
  fi
  if [ $rc != 0 ]; then fails=$((fails + 1)); return 1; fi
}

# stats SCENARIO EXPR...: counters of the run's dump
stats() {
  local scen=$1 out rc=0
  shift
  out=$(python3 "$HERE/stats_check.py" "$scen" "$T/$scen.json" "$@") || rc=$?
  passes=$((passes + $(grep -c '^PASS' <<< "$out" || true)))
  grep -v '^PASS' <<< "$out" || true
  if [ $rc != 0 ]; then fails=$((fails + 1)); fi
}

HUGETLB_FAILS='fallback:no_hugetlb_pool|no_free_hugetlb_on_node|hugetlb_mmap_failed|hugetlb_populate_failed'
if [ "$thp_mode" = never ]; then THP_MADE='backing:4k.mapped_total>=1'; else THP_MADE='backing:thp.mapped_total>=1'; fi
# by default a block that cannot have hugetlb pages gets 4 KiB pages, never THP
SMALL_MADE='backing:4k.mapped_total>=1'
NO_THP='backing:thp.mapped_total==0'

echo "hugepage-test: THP mode $thp_mode, nr_hugepages was $old (restored at exit)"
# no pool: 4 KiB pages by default, THP when asked (2 blocks); each counted as a step
# down from hugetlb
if pool 0 && run nopool; then
  stats nopool 'fallback:no_hugetlb_pool|no_free_hugetlb_on_node>=2' "$SMALL_MADE" "$NO_THP" 'backing:hugetlb_2m.mapped_total==0'
fi
if pool 0 && run nopool NUMAMALLOC_HUGEPAGES=hugetlb+thp; then
  stats nopool 'fallback:no_hugetlb_pool|no_free_hugetlb_on_node>=2' "$THP_MADE" 'backing:hugetlb_2m.mapped_total==0'
fi
# a pool covering 2 + 4 + 8 MiB
if pool 7 && run pool; then
  stats pool 'backing:hugetlb_2m.mapped_total>=3' "$HUGETLB_FAILS==0"
fi
# one page short: the second block falls back, no SIGBUS
if pool 3 && run scarce; then
  stats scarce 'backing:hugetlb_2m.mapped_total>=1' 'fallback:no_free_hugetlb_on_node>=1' "$SMALL_MADE" "$NO_THP"
fi
if pool 3 && run scarce NUMAMALLOC_HUGEPAGES=hugetlb+thp; then
  stats scarce 'backing:hugetlb_2m.mapped_total>=1' 'fallback:no_free_hugetlb_on_node>=1' "$THP_MADE"
fi
# free pages all reserved by another mapping: free_hugepages lies, mmap fails
if pool 2 && run reserved NUMAMALLOC_HUGEPAGES=hugetlb+thp; then
  stats reserved 'fallback:hugetlb_mmap_failed|hugetlb_populate_failed>=1' 'backing:hugetlb_2m.mapped_total==0' "$THP_MADE"
fi
# NUMAMALLOC_HUGEPAGES=off with a pool: 4 KiB pages, counted as huge_off
if pool 4 && run off NUMAMALLOC_HUGEPAGES=off; then
  stats off 'fallback:huge_off>=1' 'backing:hugetlb_2m.mapped_total==0' 'backing:thp.mapped_total==0'
fi
# NUMAMALLOC_HUGEPAGES=thp with a pool: hugetlb skipped, not counted as a failure
if pool 4 && run thp NUMAMALLOC_HUGEPAGES=thp; then
  stats thp "$THP_MADE" 'backing:hugetlb_2m.mapped_total==0' "$HUGETLB_FAILS==0"
fi
# 1 and 1.5 MiB with a pool: size_too_small, 4 KiB pages
if pool 4 && run small; then
  stats small 'fallback:size_too_small>=2' 'backing:hugetlb_2m.mapped_total==0'
fi

# NUMAMALLOC_HUGEPAGES=1g with one free 1 GiB page (restored at exit); a kernel
# that cannot find 1 GiB of contiguous memory says so and the case is skipped
G=/sys/kernel/mm/hugepages/hugepages-1048576kB
if [ -d $G ]; then
  gold=$(cat $G/nr_hugepages)
  restore_giant() { echo "$gold" > $G/nr_hugepages 2>/dev/null || echo "hugepage-test: could not restore $G/nr_hugepages to $gold" >&2; }
  trap 'restore_giant; restore' EXIT
  echo $((gold - $(cat $G/free_hugepages) + 1)) > $G/nr_hugepages 2>/dev/null || true
  if [ "$(cat $G/free_hugepages)" = 1 ]; then
    if pool 0 && run giant NUMAMALLOC_HUGEPAGES=1g; then
      stats giant 'backing:hugetlb_1g.mapped_total==1' 'fallback:no_1g_pool>=1'
    fi
  else
    echo "hugepage-test: giant skipped: the kernel could not reserve one free 1 GiB page"
  fi
  restore_giant
else
  echo "hugepage-test: giant skipped: this kernel has no 1 GiB hugetlb pages"
fi

secs=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $T0}")
if [ $fails != 0 ]; then
  echo "hugepage-test: FAILED: $fails case(s) failed, $passes checks passed (${secs}s)"
  exit 1
fi
echo "hugepage-test: all $passes checks passed (${secs}s)"
