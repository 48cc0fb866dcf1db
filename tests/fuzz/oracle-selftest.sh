#!/usr/bin/env bash
# tests/fuzz/oracle-selftest.sh REPLAY BROKEN_SO CORPUS — the fuzz checks can fail.
# Runs corpus seeds through nmf_replay on glibc with tests/fuzz/broken.c preloaded, which
# breaks one promise per NMF_BREAK value; each run must abort (SIGABRT) with the message
# naming that promise, and the run with nothing broken must pass. ~1 s.
set -uo pipefail
replay=$1 shim=$2 corpus=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# two live malloc(33) blocks: the shim returns the same one twice
printf '\000\000\000\000\041\000\000\001\000\041\000' > "$tmp/two-mallocs-33"
fail=0 n=0
run() {   # mode input expected-message
  local mode=$1 input=$2 expect=$3 rc
  n=$((n + 1))
  { NMF_BREAK=$mode LD_PRELOAD=$shim "$replay" check --allow-system "$input" > "$tmp/out" 2>&1; } 2>/dev/null
  rc=$?
  if [ "$mode" = none ]; then
    [ $rc -eq 0 ] && return
    echo "oracle-selftest: nothing broken, yet $input failed (exit $rc):"; tail -n 3 "$tmp/out"; fail=$((fail + 1)); return
  fi
  if [ $rc -ne 134 ] || ! grep -q "nmf: FAIL.*$expect" "$tmp/out"; then
    echo "oracle-selftest: NMF_BREAK=$mode on ${input##*/}: exit $rc, expected SIGABRT and a FAIL line matching '$expect':"
    tail -n 3 "$tmp/out"; fail=$((fail + 1))
  fi
}
run none       "$corpus"                            ''
run realloc    "$corpus/realloc-through-regions"    'realloc kept: block .* corrupted at offset 0'
run calloc     "$corpus/medium-large-edges"         'calloc(.*byte 0 not zero'
run usable     "$corpus/small-class-edges"          'malloc_usable_size 0 <'
run align      "$corpus/aligned-powers"             'aligned_alloc(.* not [0-9]*-aligned'
run errno      "$corpus/overflow-errors"            'calloc(.*errno 22, expected 12'
run free-errno "$corpus/free-variants"              'free(.*) changed errno to 5'
run overlap    "$tmp/two-mallocs-33"                'overlaps live block'
echo "oracle-selftest: $((n - fail)) passed, $fail failed"
[ $fail -eq 0 ]
