#!/usr/bin/env bash
# tests/launcher/launcher-test.sh BIN LIB VERSION — the launcher, scripts/numamalloc,
# and its man page. BIN holds prog_launch and libmark.so (tests/launcher/launcher.mk).
#   1. a program runs on the library through the launcher (numamalloc_block_info
#      answers, the stats dump appears), the launcher execs (same PID), other
#      LD_PRELOAD entries are kept, and it works called by a relative path from
#      another directory and through a symbolic link
#   2. exit statuses and signal deaths pass through (exec and --report)
#   3. every option sets the right variable; -- and the program's own arguments
#   4. every bad option, value, or program: exit 2, one line, program not started
#   5. --report writes the HTML page (flame graph with --prof), TERM is passed on
#   6. --help and --version; the man pages render without warnings and document
#      every option --help lists
#   7. `make install` into a stage: the installed launcher finds the installed library
# Prints one line per check; exit 1 if any failed.
set -uo pipefail
bin=${1:?usage: launcher-test.sh BIN LIB VERSION}
lib=${2:?}
version=${3:?}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
L=$root/scripts/numamalloc
P=$bin/prog_launch
. "$root/tests/helpers/checks.sh"
# the environment every run starts from: no NUMAMALLOC_* or LD_PRELOAD of the caller
# (not a function: `clean ... &` must give the PID of env, which execs the launcher)
CLEAN=(env -i PATH=/usr/bin:/bin HOME=/tmp LC_ALL=C)
clean() { "${CLEAN[@]}" "$@"; }

# ---- 1. the program runs on the library ------------------------------------------------------
out=$(clean "$L" "$P" info 2>&1)
if [ "$out" = "block_info rc=0 kind=1 usable=112" ]; then ok "runs on the library: numamalloc_block_info says $out"
else bad "through the launcher, prog_launch info printed '$out'"; fi
out=$(clean "$P" info 2>&1)
[ "$out" = "block_info missing" ] && ok "control: without the launcher the program is on glibc" || bad "control run printed '$out'"

clean "$L" --stats-file="$tmp/dump.txt" "$P" exit 0 2>/dev/null
if grep -q "^=== numamalloc $version statistics (exit) pid " "$tmp/dump.txt" 2>/dev/null; then ok "--stats-file: the exit dump is in the file"
else bad "--stats-file: no dump in $tmp/dump.txt"; fi

"${CLEAN[@]}" "$L" "$P" env >"$tmp/env" 2>&1 &
launcher_pid=$!
wait "$launcher_pid"
if grep -qx "pid $launcher_pid" "$tmp/env"; then ok "exec: the program has the launcher's PID ($launcher_pid)"
else bad "exec: launcher PID $launcher_pid, program said $(head -1 "$tmp/env")"; fi
if grep -qx "LD_PRELOAD=$lib" "$tmp/env"; then ok "LD_PRELOAD is the absolute path of the library"
else bad "LD_PRELOAD is '$(grep LD_PRELOAD "$tmp/env")', expected $lib"; fi
if [ "$(grep -c '^NUMAMALLOC_' "$tmp/env")" = 0 ]; then ok "no option: no NUMAMALLOC_* variable set"
else bad "no option, yet: $(grep '^NUMAMALLOC_' "$tmp/env" | tr '\n' ' ')"; fi

out=$(clean LD_PRELOAD="$bin/libmark.so" "$L" "$P" env | grep '^LD_PRELOAD=')
if [ "$out" = "LD_PRELOAD=$lib:$bin/libmark.so" ]; then ok "an existing LD_PRELOAD entry is kept after the library"
else bad "existing LD_PRELOAD: got '$out'"; fi
out=$(clean LD_PRELOAD="$bin/libmark.so" "$L" "$P" marker)
[ "$out" = "marker loaded" ] && ok "the kept entry is loaded too" || bad "the kept preload is not loaded: $out"
out=$(clean LD_PRELOAD="$bin/libmark.so $lib" "$L" "$P" env | grep '^LD_PRELOAD=')
[ "$out" = "LD_PRELOAD=$bin/libmark.so $lib" ] && ok "LD_PRELOAD already holding the library is left alone" \
  || bad "LD_PRELOAD holding the library became '$out'"

mkdir -p "$tmp/elsewhere/deeper"
rel=$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1], sys.argv[2]))' "$L" "$tmp/elsewhere/deeper")
out=$(cd "$tmp/elsewhere/deeper" && clean "$rel" "$P" info 2>&1)
[ "$out" = "block_info rc=0 kind=1 usable=112" ] && ok "called as $rel from another directory" \
  || bad "called as $rel from $tmp/elsewhere/deeper: '$out'"
ln -s "$L" "$tmp/elsewhere/nm-link"
out=$(cd "$tmp/elsewhere/deeper" && clean ../nm-link "$P" info 2>&1)
[ "$out" = "block_info rc=0 kind=1 usable=112" ] && ok "called through a symbolic link (../nm-link)" \
  || bad "through a symbolic link: '$out'"
out=$(cd "$root/scripts" && clean ./numamalloc "$P" info 2>&1)
[ "$out" = "block_info rc=0 kind=1 usable=112" ] && ok "called as ./numamalloc from scripts/" || bad "./numamalloc from scripts/: '$out'"

# ---- 2. exit status and signals -------------------------------------------------------------------
for n in 0 3 77 255; do
  clean "$L" "$P" exit "$n" 2>/dev/null; st=$?
  [ "$st" = "$n" ] && ok "exit status $n passes through" || bad "exit $n came back as $st"
done
for sig in 11 15 6; do
  clean "$L" "$P" signal "$sig" 2>/dev/null; st=$?
  [ "$st" = $((128 + sig)) ] && ok "death by signal $sig: status $st" || bad "signal $sig: status $st, expected $((128 + sig))"
done
clean "$L" --report="$tmp/sig.html" "$P" signal 11 2>"$tmp/err"; st=$?
[ "$st" = 139 ] && ok "--report: death by signal 11 gives 139" || bad "--report: signal 11 gave $st"
grep -q "^numamalloc: .*prog_launch was killed by signal 11 (SIGSEGV): exit status 139$" "$tmp/err" \
  && ok "--report: the signal death is named on stderr" || bad "--report: no line about the signal: $(cat "$tmp/err")"
clean "$L" --report="$tmp/seven.html" "$P" exit 7 2>/dev/null; st=$?
[ "$st" = 7 ] && ok "--report: exit status 7 passes through" || bad "--report: exit 7 gave $st"

# ---- 3. options -> variables ---------------------------------------------------------------------
# check "OPTIONS..." "NAME=VALUE..." : exactly these NUMAMALLOC_* variables
check_opts() {
  local opts=$1 want got
  want=$(printf '%s\n' $2 | sort)
  # shellcheck disable=SC2086
  got=$(cd "$tmp" && clean "$L" $opts "$P" env 2>"$tmp/err" | grep '^NUMAMALLOC_' | sort)
  # (the dump, profile or listing the options ask for is on stderr; no warning may be)
  if [ "$got" = "$want" ] && ! grep -qE "^numamalloc: .*(ignored|not a numamalloc variable)" "$tmp/err"; then ok "$opts -> $(echo $want)"
  else bad "$opts: expected '$(echo $want)', got '$(echo $got)' $(grep '^numamalloc: ' "$tmp/err")"; fi
}
check_opts "--policy=interleave" "NUMAMALLOC_POLICY=interleave"
check_opts "--policy local" "NUMAMALLOC_POLICY=local"
check_opts "--policy=bind:0" "NUMAMALLOC_POLICY=bind:0"
check_opts "--hugepages=off" "NUMAMALLOC_HUGEPAGES=off"
check_opts "--hugepages thp" "NUMAMALLOC_HUGEPAGES=thp"
check_opts "--stats" "NUMAMALLOC_STATS=text"
check_opts "--stats=text" "NUMAMALLOC_STATS=text"
check_opts "--stats=json" "NUMAMALLOC_STATS=json"
check_opts "--stats-file=d.%p.txt" "NUMAMALLOC_STATS=text NUMAMALLOC_STATS_FILE=d.%p.txt"
check_opts "--stats=json --stats-file d.json" "NUMAMALLOC_STATS=json NUMAMALLOC_STATS_FILE=d.json"
check_opts "--prof" "NUMAMALLOC_PROF=1"
check_opts "--prof-file=p.%p.heap" "NUMAMALLOC_PROF=1 NUMAMALLOC_PROF_FILE=p.%p.heap"
check_opts "--check" "NUMAMALLOC_CHECK=1"
check_opts "--background" "NUMAMALLOC_BACKGROUND=1"
check_opts "--verbose" "NUMAMALLOC_VERBOSE=1"
check_opts "--decay-ms=250" "NUMAMALLOC_DECAY_MS=250"
check_opts "--decay-ms 0" "NUMAMALLOC_DECAY_MS=0"
check_opts "--large-threshold=4M" "NUMAMALLOC_LARGE_THRESHOLD=4M"
check_opts "--large-threshold 64K" "NUMAMALLOC_LARGE_THRESHOLD=64K"
check_opts "--policy=local --policy=interleave" "NUMAMALLOC_POLICY=interleave"
got=$(clean NUMAMALLOC_DECAY_MS=5 NUMAMALLOC_POLICY=local "$L" --policy=interleave "$P" env | grep '^NUMAMALLOC_' | sort | tr '\n' ' ')
[ "$got" = "NUMAMALLOC_DECAY_MS=5 NUMAMALLOC_POLICY=interleave " ] && ok "the caller's variables kept, an option overrides its own" \
  || bad "caller's variables with --policy: '$got'"
out=$(clean "$L" -- "$P" args --stats -x "two words" "" 2>&1 | od -c | tr -s ' ')
want=$(printf '%s\n' --stats -x "two words" "" | od -c | tr -s ' ')
[ "$out" = "$want" ] && ok "after --: the program's arguments unchanged (--stats, -x, 'two words', '')" || bad "arguments after --: $out"
out=$(clean "$L" --check "$P" args --policy=x 2>&1)
[ "$out" = "--policy=x" ] && ok "options end at the program: its --policy=x is its own" || bad "program argument --policy=x: '$out'"
out=$(clean "$L" --policy=bind:0 --hugepages=off --decay-ms=10 --large-threshold=2M --check "$P" info 2>&1)
[[ $out =~ ^block_info\ rc=0\ kind=1\ usable=1[0-9][0-9]$ ]] && ok "the library accepts every value the launcher let through" || bad "with options: '$out'"

# ---- 4. bad invocations: exit 2, one line, not started ---------------------------------------------
mkdir -p "$tmp/bad"
: >"$tmp/bad/not-exec"
bad_run() {                     # bad_run PATTERN ARGS... (ARGS before the program's "mark FILE")
  local pattern=$1; shift
  rm -f "$tmp/bad/started"
  clean "$L" "$@" >"$tmp/bad/out" 2>"$tmp/bad/err"; local st=$?
  local lines; lines=$(wc -l <"$tmp/bad/err")
  if [ "$st" != 2 ]; then bad "$*: exit status $st, expected 2"
  elif [ -e "$tmp/bad/started" ]; then bad "$*: the program was started"
  elif [ "$lines" != 1 ] || [ -s "$tmp/bad/out" ]; then bad "$*: expected one line on stderr, got $lines: $(cat "$tmp/bad/err" "$tmp/bad/out")"
  elif ! grep -qE "^numamalloc: $pattern" "$tmp/bad/err"; then bad "$*: '$(cat "$tmp/bad/err")' does not match '$pattern'"
  else ok "$* -> 2: $(cat "$tmp/bad/err")"; fi
}
M=("$P" mark "$tmp/bad/started")
bad_run "unknown option '--bogus' \(see numamalloc --help\)$" --bogus "${M[@]}"
bad_run "unknown option '-x'" -x "${M[@]}"
bad_run "--policy=sideways: accepts local, interleave\[:N,M\.\.\.\], bind:N\[,M\.\.\.\], preferred:N; default local$" --policy=sideways "${M[@]}"
bad_run "--policy=bind:999: node 999 does not exist or has no memory \(nodes with memory: [0-9,-]+\); default local$" --policy=bind:999 "${M[@]}"
bad_run "--policy= needs a value|--policy needs a value" --policy= "${M[@]}"
bad_run "--policy needs a value: local, interleave\[:N,M\.\.\.\], bind:N\[,M\.\.\.\] or preferred:N; default local$" --policy
bad_run "--hugepages=maybe: accepts auto, hugetlb, 1g, thp, off, hugetlb[+]thp or 1g[+]thp; default auto$" --hugepages=maybe "${M[@]}"
bad_run "--decay-ms=abc: accepts milliseconds from 0 to 3600000; default 1000$" --decay-ms=abc "${M[@]}"
bad_run "--decay-ms=3600001: accepts milliseconds from 0 to 3600000; default 1000$" --decay-ms=3600001 "${M[@]}"
bad_run "--large-threshold=1K: accepts a size from 64K to 1G \(suffix K, M or G\); default 1M$" --large-threshold=1K "${M[@]}"
bad_run "--stats=xml: accepts --stats, --stats=text or --stats=json; default text \(json with --report\)$" --stats=xml "${M[@]}"
bad_run "--prof takes no value \(got '--prof=1'\)$" --prof=1 "${M[@]}"
bad_run "--check takes no value" --check=yes "${M[@]}"
bad_run "--stats-file=.*: accepts a file path; %p becomes the pid, %t a timestamp; default none$" \
  --stats-file="$tmp/$(printf 'x%.0s' $(seq 600))" "${M[@]}"
bad_run "no program to run \(usage: numamalloc \[options\] \[--\] PROGRAM \[ARGS\.\.\.\]; see numamalloc --help\)$"
bad_run "no program to run" --check --
bad_run "program 'no-such-program-here' not found in PATH$" no-such-program-here
bad_run "program '$tmp/bad/none' does not exist$" "$tmp/bad/none"
bad_run "program '$tmp/bad' is not an executable file$" "$tmp/bad"
bad_run "program '$tmp/bad/not-exec' is not an executable file$" "$tmp/bad/not-exec"
bad_run "--report reads JSON dumps: it cannot be used with --stats=text" --report="$tmp/r.html" --stats=text "${M[@]}"
bad_run "--report=$tmp/nodir/r.html: the directory $tmp/nodir does not exist$" --report="$tmp/nodir/r.html" "${M[@]}"
bad_run "--report needs a value" --report= "${M[@]}"

# ---- 5. --report ----------------------------------------------------------------------------------------
mkdir -p "$tmp/tmpdir"
(cd "$tmp" && clean TMPDIR="$tmp/tmpdir" "$L" --prof --report=rep.html "$P" info >"$tmp/rep.out" 2>"$tmp/rep.err"); st=$?
if [ "$st" != 0 ]; then bad "--report: status $st: $(cat "$tmp/rep.err")"
elif [ ! -s "$tmp/rep.html" ]; then bad "--report: no $tmp/rep.html"
elif ! grep -q '^<!DOCTYPE html>' "$tmp/rep.html" || ! grep -q '<h2>Process pid [0-9]* (dump\.[0-9]*\.json)</h2>' "$tmp/rep.html"; then
  bad "--report: $tmp/rep.html is not the report of the program's dump"
elif ! grep -q '<title>heap flame graph' "$tmp/rep.html"; then bad "--report --prof: no flame graph in the page"
elif grep -qi '<script' "$tmp/rep.html"; then bad "--report: the page has a script"
else ok "--report (relative name, with --prof): rep.html written, the program's process and a flame graph on it"; fi
grep -q "^HTML report: $tmp/rep.html$" "$tmp/rep.err" && ok "--report: the summary goes to stderr" || bad "--report: no summary on stderr"
[ "$(cat "$tmp/rep.out")" = "block_info rc=0 kind=1 usable=112" ] && ok "--report: stdout is the program's alone" \
  || bad "--report: stdout has '$(cat "$tmp/rep.out")'"
[ -z "$(ls -A "$tmp/tmpdir")" ] && ok "--report removes its temporary directory (made in TMPDIR)" \
  || bad "--report left $(ls -A "$tmp/tmpdir") in TMPDIR"
clean "$L" --report="$tmp/own.html" --stats-file="$tmp/own.%p.json" "$P" exit 0 2>/dev/null
[ -s "$tmp/own.html" ] && ls "$tmp"/own.*.json >/dev/null 2>&1 && ok "--report with --stats-file: the dump kept, the page written" \
  || bad "--report with --stats-file: page or dump missing"
# TERM to the launcher reaches the program, which exits 42 from its handler; the report is written
fifo=$tmp/term.fifo; mkfifo "$fifo"
"${CLEAN[@]}" "$L" --report="$tmp/term.html" "$P" term >"$fifo" 2>/dev/null &
lpid=$!
read -r line <"$fifo"                     # "ready": the program runs, its handler is set
kill -TERM "$lpid"
wait "$lpid"; st=$?
[ "$st" = 42 ] && [ -s "$tmp/term.html" ] && ok "--report: TERM sent to the launcher reaches the program (status 42), page written" \
  || bad "--report: after TERM, status $st ($line), page $( [ -s "$tmp/term.html" ] && echo written || echo missing)"

# ---- 6. help, version, man pages ------------------------------------------------------------------------
help=$(clean "$L" --help); st=$?
[ "$st" = 0 ] && grep -q '^usage: numamalloc \[options\] \[--\] PROGRAM \[ARGS...\]$' <<<"$help" && ok "--help: usage, status 0" \
  || bad "--help: status $st"
out=$(clean "$L" --version); st=$?
[ "$st" = 0 ] && [ "$out" = "numamalloc $version ($lib)" ] && ok "--version: $out" || bad "--version: '$out' (status $st)"
for page in numamalloc.1 numamalloc-report.1; do
  if command -v groff >/dev/null; then
    if groff -man -ww -z "$root/man/$page" >"$tmp/out" 2>&1 && [ ! -s "$tmp/out" ]; then ok "groff -man -ww: $page renders without warnings"
    else bad "groff -man -ww: $page:"; sed 's/^/        /' "$tmp/out"; fi
  else skip "groff not installed: $page not rendered"; fi
  if command -v man >/dev/null; then
    if MANWIDTH=80 man -l "$root/man/$page" >"$tmp/out" 2>"$tmp/err" && [ ! -s "$tmp/err" ] && [ -s "$tmp/out" ]; then ok "man -l man/$page renders, nothing on stderr"
    else bad "man -l man/$page: $(cat "$tmp/err")"; fi
  fi
  if command -v mandoc >/dev/null; then
    mandoc -Tlint -Wwarning "$root/man/$page" >"$tmp/out" 2>&1 && ok "mandoc -Tlint: $page" || { bad "mandoc -Tlint: $page:"; cat "$tmp/out"; }
  fi
  grep -nP '[^\x00-\x7f]' "$root/man/$page" >"$tmp/out" && { bad "$page has non-ASCII bytes:"; cat "$tmp/out"; }
done
# every option of --help is documented in numamalloc.1 (as a .TP heading)
nopts=0 missing=
for opt in $(grep -oE '^  (-h, )?--[a-z-]+' <<<"$help" | grep -oE -- '--[a-z-]+'); do
  nopts=$((nopts + 1))
  esc=${opt//-/\\\\-}
  grep -qE "^\.(B|BI|BR) (.* )?\"?$esc([^a-z\\\\]|\\\\-[^a-z]|$)" "$root/man/numamalloc.1" || missing+=" $opt"
done
[ -z "$missing" ] && ok "numamalloc.1 documents every option --help lists ($nopts options)" \
  || bad "numamalloc.1 does not document:$missing"

# ---- 7. installed ------------------------------------------------------------------------------------------
stage=$tmp/stage
if make -s -C "$root" install PREFIX=/usr DESTDIR="$stage" B="$(dirname "$lib")" >"$tmp/install.log" 2>&1; then
  out=$(cd / && clean "$stage/usr/bin/numamalloc" --version)
  [ "$out" = "numamalloc $version ($stage/usr/lib/libnumamalloc.so.0)" ] && ok "installed launcher finds the installed library: $out" \
    || bad "installed launcher: '$out'"
  out=$(cd / && clean "$stage/usr/bin/numamalloc" --prof --report="$tmp/inst.html" "$P" info 2>/dev/null)
  [ "$out" = "block_info rc=0 kind=1 usable=112" ] && [ -s "$tmp/inst.html" ] \
    && ok "installed launcher runs the program and the installed numamalloc-report" || bad "installed launcher: '$out'"
  for f in usr/bin/numamalloc usr/bin/numamalloc-report usr/share/man/man1/numamalloc.1 usr/share/man/man1/numamalloc-report.1; do
    [ -f "$stage/$f" ] || bad "make install did not install /$f"
  done
else
  bad "make install failed: $(tail -5 "$tmp/install.log")"
fi

checks_done launcher-test
