# tests/helpers/checks.sh — sourced by the shell test scripts: a scratch directory
# removed at exit, one line per check (ok / FAIL / SKIP) and the closing verdict.
#   ok TEXT, bad TEXT, skip TEXT    report one check (bad counts a failure)
#   checks_done NAME                "NAME: all passed" or "NAME: N failed"; its status
#                                   is the script's (0 only if nothing failed)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
ok()   { echo "  ok    $1"; }
bad()  { echo "  FAIL  $1"; fails=$((fails + 1)); }
skip() { echo "  SKIP  $1"; }
checks_done() {
    [ $fails -eq 0 ] && echo "$1: all passed" || echo "$1: $fails failed"
    [ $fails -eq 0 ]
}
