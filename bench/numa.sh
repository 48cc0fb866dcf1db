#!/usr/bin/env bash
# bench/numa.sh — what locality is worth (bench/bench_locality.c), on this machine and
# in 2- and 4-node QEMU VMs (scripts/numa-vm.sh), under glibc, jemalloc, tcmalloc,
# mimalloc and numamalloc; writes bench/results/numa.md (bench/numa_report.py).
#
#   bench/numa.sh                   everything (about 6 minutes on 2 cores with TCG)
#   bench/numa.sh --host-only       this machine only
#   NM_LIB=/path/libnumamalloc.so bench/numa.sh
#
# (a) latency and bandwidth of each node's memory from each node's CPUs: on a real
# multi-socket machine the ratios are the answer; in the VMs every node is the same
# host memory, so they are about 1 and only say the benchmark runs there.
# (b) the share of bytes a multi-threaded program reads from another node than the
# reading thread's, per allocator: that is measured with move_pages in the VMs as on
# real hardware (placement is the kernel's, emulated or not).
# The VMs get the other allocators' .so files copied in, with their libraries (the
# VM's init is busybox; dynamically linked programs run with the libraries
# numa-vm.sh copies next to them).
set -euo pipefail
cd "$(dirname "$0")/.."
B=${B:-build}
O=$B/bench-numa
HOST_ONLY=0
[ "${1:-}" = --host-only ] && HOST_ONLY=1
NM_LIB=$(realpath "${NM_LIB:-$B/libnumamalloc.so}")
[ -f "$NM_LIB" ] || { echo "bench/numa.sh: $NM_LIB not found (run make first)" >&2; exit 2; }
scripts/deps.sh bench >/dev/null 2>&1 || echo "bench/numa.sh: scripts/deps.sh bench failed: allocators missing are left out" >&2
mkdir -p "$O"
gcc -std=gnu11 -O2 -g -Wall -Wextra -Werror -pthread -fno-builtin-malloc -fno-builtin-free -fno-builtin-calloc \
    -o "$O/bench_locality" bench/bench_locality.c -ldl

LIBDIR=/usr/lib/x86_64-linux-gnu
declare -A SO=([jemalloc]=$LIBDIR/libjemalloc.so.2 [tcmalloc]=$LIBDIR/libtcmalloc_minimal.so.4
               [mimalloc]=$LIBDIR/libmimalloc.so.2 [numamalloc]=$NM_LIB)
ALLOCS=(glibc)
for a in jemalloc tcmalloc mimalloc numamalloc; do
  if [ -e "${SO[$a]}" ]; then ALLOCS+=("$a"); else echo "bench/numa.sh: ${SO[$a]} missing: $a left out" >&2; fi
done

# ---- this machine --------------------------------------------------------------------------
echo "bench/numa.sh: this machine (latency, then ${ALLOCS[*]})"
{
  echo "HOST $(uname -srm); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); $(nproc) CPU(s)"
  "$O/bench_locality" latency 256 20000000
  for a in "${ALLOCS[@]}"; do
    pre=; [ "$a" = glibc ] || pre=${SO[$a]}
    for r in 1 2 3; do LD_PRELOAD=$pre "$O/bench_locality" share "$a" 20000 10; done
  done
} > "$O/host.log" 2>&1
logs=("$O/host.log")

# ---- the VMs -------------------------------------------------------------------------------
if [ $HOST_ONLY = 0 ]; then
  if ! command -v qemu-system-x86_64 >/dev/null || ! scripts/numa-vm.sh -P >/dev/null 2>&1; then
    scripts/deps.sh vm >/dev/null 2>&1 || true
  fi
  if command -v qemu-system-x86_64 >/dev/null && scripts/numa-vm.sh -P >/dev/null 2>&1; then
    D=$(mktemp -d "${TMPDIR:-/tmp}/nm-benchnuma.XXXXXX")
    trap 'rm -rf "$D"' EXIT
    cp "$O/bench_locality" "$D/"
    run="$D/run.sh"
    {
      echo 'echo "HOST QEMU VM (TCG: every node is the same host memory)"'
      echo 'bench_locality latency 64 2000000'
      for a in "${ALLOCS[@]}"; do
        if [ "$a" = glibc ]; then pre=; else cp -L "${SO[$a]}" "$D/"; pre=/tests/$(basename "${SO[$a]}"); fi
        echo "for r in 1 2 3; do LD_PRELOAD=$pre bench_locality share $a 4000 4; done"
      done
    } > "$run"
    for spec in "2 2" "4 4"; do
      set -- $spec
      echo "bench/numa.sh: QEMU VM with $1 nodes, $2 CPUs"
      if ! bash scripts/numa-vm.sh -a auto -n "$1" -c "$2" -m 512 -t 900 -d "$D" -- sh /tests/run.sh > "$O/vm-$1.log" 2>&1; then
        echo "bench/numa.sh: the $1-node VM failed (log: $O/vm-$1.log)" >&2
      fi
      logs+=("$O/vm-$1.log")
    done
  else
    echo "bench/numa.sh: no QEMU or guest kernel: VMs skipped" >&2
  fi
fi

python3 bench/numa_report.py "${logs[@]}" > bench/results/numa.md
echo "bench/numa.sh: wrote bench/results/numa.md (raw logs: $O/*.log)"
