# tests/numa/vm-run.sh — runs INSIDE the NUMA VM (busybox sh, as root, in /tests),
# started by tests/numa/vm-test.sh through scripts/numa-vm.sh. One boot runs many
# checks: placement scenarios under every policy, then hugetlb with per-node
# pools. Every program runs under LD_PRELOAD=/tests/libnumamalloc.so with a JSON
# stats dump, which is printed as "NMSTATS <step> <json>" for the host to check
# (python3 is not in the VM). Exit status 1 if any step failed.
#   usage: sh vm-run.sh full|placement-only
# busybox sh: no bash-isms (no arrays, no [[ ]]).
# shellcheck shell=sh

mode=${1:-full}
export LD_PRELOAD=/tests/libnumamalloc.so
rc=0

# nodes listed in a sysfs list file ("0-1,3" -> "0 1 3")
expand() {
  for part in $(tr ',' ' ' < "$1"); do
    case $part in
      *-*) seq "${part%-*}" "${part#*-}" ;;
      *) echo "$part" ;;
    esac
  done
}
MEM_NODES=$(expand /sys/devices/system/node/has_memory | tr '\n' ' ')
CPU_NODES=
for n in $MEM_NODES; do
  [ -n "$(cat "/sys/devices/system/node/node$n/cpulist")" ] && CPU_NODES="$CPU_NODES $n"
done
LAST_NODE=${MEM_NODES% }; LAST_NODE=${LAST_NODE##* }
echo "INFO vm: nodes with memory: $MEM_NODES; with CPUs:$CPU_NODES; THP $(cat /sys/kernel/mm/transparent_hugepage/enabled)"

# step NAME VAR=VALUE... -- PROGRAM ARGS...
step() {
  name=$1; shift
  envs=
  while [ "$1" != "--" ]; do envs="$envs $1"; shift; done
  shift
  rm -f /tmp/stats.json
  t0=$(cut -d' ' -f1 /proc/uptime)
  # shellcheck disable=SC2086  # envs is a list of VAR=VALUE words without spaces
  env $envs NUMAMALLOC_STATS=json NUMAMALLOC_STATS_FILE=/tmp/stats.json "$@"
  st=$?
  echo "INFO vm step $name: $(awk "BEGIN{printf \"%.2f\", $(cut -d' ' -f1 /proc/uptime) - $t0}") s (guest clock)"
  if [ $st != 0 ]; then echo "FAIL step $name: exit status $st"; rc=1; fi
  if [ -s /tmp/stats.json ]; then
    echo "NMSTATS $name $(tail -n 1 /tmp/stats.json)"
  else
    echo "FAIL step $name: no stats dump"; rc=1
  fi
}

hugepages_on() {   # hugepages_on NODE COUNT
  echo "$2" > "/sys/devices/system/node/node$1/hugepages/hugepages-2048kB/nr_hugepages"
}

step local -- placement local
step xnode -- placement xnode
# what the dump says about placement (tests/numa/truth.c); freed mappings must stay
# cached until the dump, whatever the decay time
step residency NUMAMALLOC_DECAY_MS=3600000 -- truth residency
step threadpol -- truth threadpol
step threadpol-il NUMAMALLOC_POLICY=interleave -- truth threadpol
step prof NUMAMALLOC_PROF=1 NUMAMALLOC_PROF_SAMPLE=16K NUMAMALLOC_HUGEPAGES=hugetlb+thp LD_LIBRARY_PATH=/tests -- truth prof
step interleave NUMAMALLOC_POLICY=interleave -- placement policy interleave
# with THP off the interleave unit is one 4 KiB page: every size range must spread
thp=/sys/kernel/mm/transparent_hugepage/enabled
thp_was=$(sed -n 's/.*\[\(.*\)\].*/\1/p' $thp)
echo never > $thp
step interleave-4k NUMAMALLOC_POLICY=interleave -- placement policy interleave strict
echo "$thp_was" > $thp
if [ "$mode" = full ]; then
  step migrate -- placement migrate
  step api -- placement api
  step migrate-residency -- truth migrate
  step strict -- truth strict
  for n in $MEM_NODES; do
    step "bind:$n" "NUMAMALLOC_POLICY=bind:$n" -- placement policy bind "$n"
  done
  for n in 0 $LAST_NODE; do
    step "preferred:$n" "NUMAMALLOC_POLICY=preferred:$n" -- placement policy preferred "$n"
  done

  # hugetlb: 8 pages (16 MiB) on every node; LARGE_CACHE=0 so every block is a new mapping
  for n in $MEM_NODES; do hugepages_on "$n" 8; done
  step vm-pool NUMAMALLOC_LARGE_CACHE=0 -- hugepages vm-pool
  # node 1 empty, node 0 still has its pages: node 1's thread must fall back, no SIGBUS
  hugepages_on 1 0
  step vm-empty NUMAMALLOC_LARGE_CACHE=0 -- hugepages vm-empty 1
  for n in $MEM_NODES; do hugepages_on "$n" 0; done
fi
exit $rc
