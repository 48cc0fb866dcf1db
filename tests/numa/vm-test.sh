#!/usr/bin/env bash
# tests/numa/vm-test.sh — NUMA placement and per-node hugetlb, checked page by page
# in QEMU VMs with real (SRAT) NUMA nodes, one VM at a time:
#   2 nodes, 2 CPUs         every scenario of tests/numa/vm-run.sh; 512 MiB of RAM,
#                           so the guest kernel boots with THP off (it does below
#                           512 MiB): large blocks take numamalloc's 4 KiB path
#   4 nodes, 2 CPUs         the same with THP on (always), nodes 2 and 3 memory-only
#   4 nodes, 4 CPUs         local, cross-node frees, interleave: a CPU on every node
# First the placement program runs on this host (one node) to shake out crashes
# quickly (tests/numa/hugepage-test.sh runs the other one here). The programs'
# RESULT lines (measured placement per size range and policy) are printed; each
# step's JSON stats dump comes back from the VM as an NMSTATS line and its
# fallback counters are checked with stats_check.py.
# Full logs: PROGDIR/vm-*.log.
#   usage: vm-test.sh LIB PROGDIR        (make vm-test; NUMAVM_DEPS_RC is the
#                                          status of scripts/deps.sh vm, run first)
# Skips, with exactly one line saying why, when QEMU or a guest kernel cannot be
# had. The kernel is cached in $NUMAVM_CACHE (default ~/.cache/numavm).
set -euo pipefail

LIB=$(realpath "$1")
PROGDIR=$(realpath "$2")
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
VM=$ROOT/scripts/numa-vm.sh
T0=$(date +%s.%N)

# ---- host shake-out: the programs must run clean where placement is trivial ----------
# Quiet when it passes, so that a skip below stays one line.
fails=0 passes=0
host_log=$PROGDIR/vm-host.log
: > "$host_log"
shake() {   # shake [VAR=VALUE...] -- PROGRAM ARGS...
  local envs=() prog
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  prog=$PROGDIR/$2
  shift 2
  if ! env "${envs[@]+"${envs[@]}"}" LD_PRELOAD="$LIB" "$prog" "$@" >> "$host_log" 2>&1; then
    echo "FAIL vm-test host shake-out: ${prog##*/} $* (log: $host_log)"
    fails=$((fails + 1))
  fi
}
shake -- placement local
shake -- placement xnode
shake -- placement migrate
shake -- placement api
shake NUMAMALLOC_POLICY=bind:0 -- placement policy bind 0
shake NUMAMALLOC_POLICY=interleave -- placement policy interleave
shake NUMAMALLOC_DECAY_MS=3600000 -- truth residency
shake -- truth migrate
shake -- truth strict
shake -- truth threadpol
shake NUMAMALLOC_POLICY=interleave -- truth threadpol
shake NUMAMALLOC_PROF=1 NUMAMALLOC_PROF_SAMPLE=16K NUMAMALLOC_HUGEPAGES=hugetlb+thp -- truth prof
passes=$((passes + $(grep -c '^PASS' "$host_log" || true)))
shake_line="vm-test: host shake-out (1 node): $passes checks passed, $(grep -c '^FAIL' "$host_log" || true) failed"
if [ $fails != 0 ]; then echo "$shake_line"; exit 1; fi

skip() { echo "vm-test: skipped: $*"; exit 0; }
if ! command -v qemu-system-x86_64 >/dev/null; then
  if [ "${NUMAVM_DEPS_RC:-0}" != 0 ]; then
    skip "qemu-system-x86_64 is missing and scripts/deps.sh vm could not install it (log: $PROGDIR/deps-vm.log)"
  fi
  skip "qemu-system-x86_64 is missing (scripts/deps.sh vm installs qemu-system-x86)"
fi
for t in busybox cpio xz readelf; do
  command -v $t >/dev/null || skip "$t is missing (scripts/deps.sh vm installs busybox-static cpio xz-utils binutils)"
done
if ! prep=$(bash "$VM" -P 2>&1); then
  skip "no guest kernel: ${prep##*$'\n'}"
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/nm-vmtest.XXXXXX")
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM HUP

# show the measurements and failures, count the checks
failed_checks=0
report() {   # report FILE
  passes=$((passes + $(grep -c '^PASS' "$1" || true)))
  failed_checks=$((failed_checks + $(grep -E '^FAIL' "$1" | grep -vc '^FAIL step' || true)))
  grep -E '^(RESULT|FAIL|STATS|INFO (vm:|xnode|migrate|threadpol|prof|strict))' "$1" || true
}

echo "$shake_line"

# ---- the VMs -------------------------------------------------------------------------------
D=$T/tests
mkdir -p "$D"
cp "$LIB" "$D/libnumamalloc.so"
cp "$PROGDIR/placement" "$PROGDIR/hugepages" "$PROGDIR/truth" "$D/"
cp "$HERE/vm-run.sh" "$D/"
# the profiler dlopens libunwind (its own libraries follow: numa-vm.sh copies the
# libraries of every ELF file in the directory)
for u in /usr/lib/x86_64-linux-gnu/libunwind.so.8 /lib/x86_64-linux-gnu/libunwind.so.8; do
  if [ -e "$u" ]; then cp -L "$u" "$D/"; break; fi
done

# check the stats dumps a VM printed
check_stats() {   # check_stats LOG TAG
  local log=$1 tag=$2 line step json out rc
  while IFS= read -r line; do
    step=${line#NMSTATS }; step=${step%% *}
    json=$T/$tag-${step//[:\/]/_}.json
    printf '%s\n' "${line#NMSTATS "$step" }" > "$json"
    # every binding worked: mbind never failed; no request had to go to the
    # fallback arena, whatever node the allocating thread runs on
    set -- 'fallback:mbind_failed==0' 'fallback:own_memory_refused==0'
    case $step in
      vm-pool) set -- "$@" 'backing:hugetlb_2m.mapped_total>=3' \
                 'fallback:no_hugetlb_pool|no_free_hugetlb_on_node|hugetlb_mmap_failed|hugetlb_populate_failed==0' ;;
      vm-empty) set -- "$@" 'backing:hugetlb_2m.mapped_total>=1' 'fallback:no_free_hugetlb_on_node>=1' ;;
      strict) set -- "$@" 'fallback:strict_node_full>=1' ;;
    esac
    rc=0
    out=$(python3 "$HERE/stats_check.py" "$tag $step" "$json" "$@") || rc=$?
    passes=$((passes + $(grep -c '^PASS' <<< "$out" || true)))
    grep -v '^PASS' <<< "$out" || true
    if [ $rc != 0 ]; then
      fails=$((fails + 1))
      failed_checks=$((failed_checks + $(grep -c '^FAIL' <<< "$out" || true)))
    fi
  done < <(grep '^NMSTATS ' "$log" || true)
}

timings=
run_vm() {   # run_vm NODES CPUS MODE
  local n=$1 c=$2 mode=$3 tag="${1}n${2}c" log rc=0 t0 secs
  log=$PROGDIR/vm-$tag.log
  echo "vm-test: VM with $n nodes, $c CPUs ($mode)"
  t0=$(date +%s.%N)
  bash "$VM" -a auto -n "$n" -c "$c" -m 256 -t 55 -d "$D" -- sh /tests/vm-run.sh "$mode" > "$log" 2>&1 || rc=$?
  secs=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}")
  timings="$timings ${n}n/${c}c=${secs}s"
  report "$log"
  check_stats "$log" "$tag"
  case $rc in
    0) ;;
    1) echo "FAIL vm-test: VM $n nodes/$c CPUs: checks failed inside the VM (log: $log)" ;;
    124) echo "FAIL vm-test: VM $n nodes/$c CPUs timed out (log: $log)" ;;
    *) echo "FAIL vm-test: VM $n nodes/$c CPUs: status $rc (125: the VM failed; log: $log)" ;;
  esac
  if [ $rc != 0 ]; then fails=$((fails + 1)); fi
}

run_vm 2 2 full
run_vm 4 2 full
run_vm 4 4 placement-only

secs=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $T0}")
echo "vm-test: VM wall times:$timings; total ${secs}s"
if [ $fails != 0 ]; then
  echo "vm-test: FAILED: $failed_checks check(s) failed in $fails VM run(s) or stats dump(s), $passes passed (logs: $PROGDIR/vm-*.log)"
  exit 1
fi
echo "vm-test: all $passes checks passed"
