#!/usr/bin/env bash
# tests/fuzz/fuzz-report.sh LOG — summarise one libFuzzer log of build/fuzz/fuzz_alloc:
# executions, exec/s, coverage (cov = allocator + target edges, ft = features), corpus,
# and the target's own line (blocks numamalloc_block_info verified, by kind).
# Fails when that line is missing or shows no slab or large block: the run did not
# exercise numamalloc (small and medium blocks are slab blocks; the fallback arena only
# serves what the allocator's own memory cannot, so it may well be 0).
set -uo pipefail
log=$1
final=$(grep -E '^#[0-9]+.*(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1)
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
nmf=$(grep -E '^nmf: [0-9]+ inputs' "$log" | tail -n 1)
echo "fuzz: $log: ${execs:-?} executions, ${eps:-?} exec/s; last: ${final:-none}"
echo "fuzz: ${nmf:-no target summary}"
[[ $nmf =~ blocks\ verified.*slab\ ([0-9]+),\ large\ ([0-9]+),\ huge\ ([0-9]+),\ arena\ ([0-9]+) ]] || {
  echo "fuzz: $log: the target printed no summary (did it run on numamalloc?)" >&2; exit 1; }
if (( BASH_REMATCH[1] == 0 || BASH_REMATCH[2] == 0 )); then
  echo "fuzz: $log: numamalloc served no slab or large block" >&2; exit 1
fi
