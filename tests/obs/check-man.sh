#!/usr/bin/env bash
# tests/obs/check-man.sh LIB — the man pages are accurate and render cleanly.
#   1. scripts/gen-man-env.sh --check passes on man/numamalloc.7, and fails, naming the
#      problem, on copies where an option is missing, a default or accepted value
#      differs, or options.h has a row the page lacks;
#   2. man/numamalloc.3 and man/numamalloc.7 render without a warning
#      (groff -man -ww -z; also mandoc -Tlint when installed);
#   3. the EXAMPLES program of numamalloc.3 compiles and works under the preload.
# Prints one line per check; exit 1 if any failed.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
lib=${1:-$root/build/libnumamalloc.so}
gen="$root/scripts/gen-man-env.sh"
. "$root/tests/helpers/checks.sh"

# ---- 1. the generated sections --------------------------------------------------------
if "$gen" --check >"$tmp/out" 2>&1; then ok "gen-man-env.sh --check: man/numamalloc.7 is up to date"
else bad "gen-man-env.sh --check: $(cat "$tmp/out")"; fi

# expect_stale NAME PATTERN ARGS...: --check must fail and say PATTERN
expect_stale() {
  local name=$1 pattern=$2; shift 2
  if "$gen" --check "$@" >"$tmp/out" 2>&1; then bad "$name: --check passed on a stale page"
  elif grep -qF -- "$pattern" "$tmp/out"; then ok "$name: --check fails and says so"
  else bad "$name: --check failed without naming the problem ('$pattern'):"; sed 's/^/        /' "$tmp/out"; fi
}

man7="$root/man/numamalloc.7"
# the generated entry only (the first; the notes further down name the variable too)
awk 'f == 0 && /^\.B NUMAMALLOC_PREFAULT$/ { f = 1 } f == 1 { if (/^Accepts: /) f = 2; next } { print }' \
    "$man7" > "$tmp/missing.7"
{ grep -q '^\.B NUMAMALLOC_PROF$' "$tmp/missing.7" && grep -q 'END GENERATED FALLBACKS' "$tmp/missing.7" &&
  [ "$(wc -l < "$tmp/missing.7")" -eq "$(( $(wc -l < "$man7") - 6 ))" ]; } || { bad "test set-up: deleting one entry removed more"; }
expect_stale "option missing from the page" "NUMAMALLOC_PREFAULT is in NM_OPTIONS but missing" --man "$tmp/missing.7"

cp "$man7" "$tmp/default.7"
sed -i 's/^Default: \\fB512K\\fP$/Default: \\fB256K\\fP/' "$tmp/default.7"
expect_stale "default differs" "NUMAMALLOC_PROF_SAMPLE: default differs: code '512K', man page '256K'" --man "$tmp/default.7"

cp "$man7" "$tmp/accepts.7"
sed -i 's/^Accepts: off, text or json$/Accepts: off or text/' "$tmp/accepts.7"
expect_stale "accepted values differ" "NUMAMALLOC_STATS: accepted values differ" --man "$tmp/accepts.7"

cp -r "$root/include" "$tmp/inc"
sed -i 's|^  X(VERBOSE, |  X(NEW_KNOB,        NM_T_BOOL,    "0",      "0 or 1", "a new option") \\\n  X(VERBOSE, |' \
  "$tmp/inc/numamalloc/options.h"
grep -q NEW_KNOB "$tmp/inc/numamalloc/options.h" || bad "test set-up: could not add a row to a copy of options.h"
expect_stale "new option in options.h" "NUMAMALLOC_NEW_KNOB is in NM_OPTIONS but missing" --include "$tmp/inc"

cp "$man7" "$tmp/fb.7"
sed -i '/^\.B own_memory_refused$/,+1d' "$tmp/fb.7"
expect_stale "fallback reason missing" "fallback reason own_memory_refused is in NM_FALLBACK_REASONS but missing" --man "$tmp/fb.7"

# ---- 2. rendering ---------------------------------------------------------------------------
for page in numamalloc.3 numamalloc.7; do
  if command -v groff >/dev/null; then
    if groff -man -ww -z "$root/man/$page" >"$tmp/out" 2>&1 && [ ! -s "$tmp/out" ]; then ok "groff -man -ww: $page renders without warnings"
    else bad "groff -man -ww: $page:"; sed 's/^/        /' "$tmp/out"; fi
  else
    skip "groff not installed: $page not rendered (apt-get install groff-base)"
  fi
  if command -v mandoc >/dev/null; then
    # STYLE-level notes are mandoc's taste, not errors; warnings and errors fail
    if mandoc -Tlint -Wwarning "$root/man/$page" >"$tmp/out" 2>&1; then ok "mandoc -Tlint: $page"
    else bad "mandoc -Tlint: $page:"; sed 's/^/        /' "$tmp/out"; fi
  fi
  if grep -nP '[^\x00-\x7f]' "$root/man/$page" >"$tmp/out"; then bad "$page has non-ASCII bytes:"; cat "$tmp/out"; fi
done

# ---- 3. the example in numamalloc.3 -----------------------------------------------------------
awk '/^\.SH EXAMPLES/ { ex = 1 } ex && /^\.EX/ { if (!done) { code = 1; next } } code && /^\.EE/ { code = 0; done = 1 } code' \
  "$root/man/numamalloc.3" | sed -e 's/\\e/\\/g' -e 's/\\-/-/g' -e 's/\\(dq/"/g' >"$tmp/example.c"
if ! grep -q 'int main' "$tmp/example.c"; then bad "numamalloc.3: no example program found under EXAMPLES"
elif ! ${CC:-cc} -std=gnu11 -Wall -Wextra -Werror -I"$root/include" -o "$tmp/example" "$tmp/example.c" 2>"$tmp/out"; then
  bad "numamalloc.3: the example does not compile:"; sed 's/^/        /' "$tmp/out"
elif ! LD_PRELOAD=$lib "$tmp/example" >"$tmp/out" 2>&1 || ! [[ $(sed -n 1p "$tmp/out") =~ ^===\ numamalloc\ .*\ statistics\ \(api\)\ pid ]]; then
  bad "numamalloc.3: the example does not print the dump under the preload:"; head -5 "$tmp/out" | sed 's/^/        /'
elif [ "$("$tmp/example")" != "not running on numamalloc" ]; then
  bad "numamalloc.3: the example misbehaves without the preload"
else ok "numamalloc.3: the example compiles and prints the dump under the preload"; fi

checks_done check-man
