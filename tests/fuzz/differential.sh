#!/usr/bin/env bash
# tests/fuzz/differential.sh REPLAY LIB OUTDIR SEQS PATH... — numamalloc against glibc.
# Runs `REPLAY diff` (tests/fuzz/replay.c) twice on the same operation sequences (the
# inputs under PATH, then SEQS from a fixed PRNG), single-threaded: once on glibc, once
# with LIB preloaded. Each operation writes one transcript line of what any correct
# malloc must reproduce (NULL or not, errno, checksums of the contents it defines); the
# transcript hashes must match. On a mismatch it prints the first differing operation on
# both sides. Then a negative control: two runs whose generated sequences differ must be
# reported as different, first line and all (the comparison itself can fail).
set -uo pipefail
replay=$1 lib=$2 out=$3 seqs=$4
shift 4
mkdir -p "$out"

# compare A B LABEL_A LABEL_B: 0 when the transcripts are equal, else print the first difference
compare() {
  local a=$1 b=$2 la=$3 lb=$4 ha hb line
  ha=$(sed -n 's/.*transcript hash \([0-9a-f]*\).*/\1/p' "$a.sum")
  hb=$(sed -n 's/.*transcript hash \([0-9a-f]*\).*/\1/p' "$b.sum")
  [ -n "$ha" ] && [ "$ha" = "$hb" ] && return 0
  line=$(cmp "$a.txt" "$b.txt" 2>/dev/null | sed -n 's/.* line \([0-9]*\).*/\1/p')
  echo "fuzz-diff-test: transcripts differ ($la $ha, $lb $hb); first differing operation (input.operation):"
  if [ -n "$line" ]; then
    [ "$line" -gt 1 ] && echo "  before: $(sed -n "$((line - 1))p" "$a.txt")"
    echo "  $la: $(sed -n "${line}p" "$a.txt")"
    echo "  $lb: $(sed -n "${line}p" "$b.txt")"
  else
    echo "  one transcript is a prefix of the other: $(wc -l < "$a.txt") and $(wc -l < "$b.txt") lines"
  fi
  return 1
}

# run NAME [env...] -- args: transcript to $out/NAME.txt, summary line to $out/NAME.sum
run() {
  local name=$1; shift
  if ! { "$@" > "$out/$name.sum" 2> "$out/$name.err"; } 2>/dev/null; then
    echo "fuzz-diff-test: the $name run failed:"; tail -n 5 "$out/$name.err"; return 1
  fi
}

run glibc      "$replay" diff -o "$out/glibc.txt" -n "$seqs" "$@" || exit 1
run numamalloc env LD_PRELOAD="$lib" "$replay" diff -o "$out/numamalloc.txt" -n "$seqs" "$@" || exit 1
grep -q '(system malloc)' "$out/glibc.sum" || { echo "fuzz-diff-test: the glibc run was not on glibc"; exit 1; }
grep -q '(numamalloc)' "$out/numamalloc.sum" || { echo "fuzz-diff-test: the preloaded run was not on numamalloc"; exit 1; }
ops=$(sed -n 's/.*generated, \([0-9]*\) operations.*/\1/p' "$out/numamalloc.sum")
if [ "${ops:-0}" -lt 1000 ]; then echo "fuzz-diff-test: only ${ops:-0} operations compared"; exit 1; fi
compare "$out/glibc" "$out/numamalloc" glibc numamalloc || exit 1
echo "fuzz-diff-test: $(cat "$out/numamalloc.sum")"
echo "fuzz-diff-test: glibc and numamalloc transcripts identical ($ops operations)"

# negative control: generated sequences from another seed must compare as different
run control "$replay" diff -o "$out/control.txt" -n 3 -s 2 "$@" || exit 1
run control-ref "$replay" diff -o "$out/control-ref.txt" -n 3 -s 1 "$@" || exit 1
if compare "$out/control-ref" "$out/control" seed-1 seed-2 > "$out/control.report"; then
  echo "fuzz-diff-test: negative control: different sequences compared equal"; exit 1
fi
grep -q '^  seed-2: ' "$out/control.report" || { echo "fuzz-diff-test: negative control: no differing line shown"; cat "$out/control.report"; exit 1; }
echo "fuzz-diff-test: negative control reported: $(sed -n 's/^  seed-2: //p' "$out/control.report")"
