#!/usr/bin/env bash
# scripts/gen-man-env.sh — keep man/numamalloc.7 in step with the code.
#
# Two sections of the man page are generated, each between marker comments:
#   ENV        every row of NM_OPTIONS (include/numamalloc/options.h): the variable,
#              its description, default and accepted values, exactly as the library
#              prints them in its warnings and in the NUMAMALLOC_VERBOSE listing;
#   FALLBACKS  every row of NM_FALLBACK_REASONS (include/numamalloc/stats.h): the
#              reason key used in the dumps and its meaning.
# The tables are read by compiling them (the C preprocessor expands the X-macros,
# so the text is exactly what the library is built with), never by parsing C here.
#
#   scripts/gen-man-env.sh --write    rewrite both sections in place (make man)
#   scripts/gen-man-env.sh --check    exit 1, naming every difference, if stale
#   scripts/gen-man-env.sh --print    print the generated sections
# Options (tests use them on copies): --man FILE (default man/numamalloc.7),
# --include DIR (default include). CC defaults to cc.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
man="$root/man/numamalloc.7"
inc="$root/include"
mode=

usage() { echo "usage: $0 --write|--check|--print [--man FILE] [--include DIR]" >&2; exit 2; }
while [ $# -gt 0 ]; do
  case $1 in
    --write|--check|--print) mode=${1#--} ;;
    --man) [ $# -ge 2 ] || usage; man=$2; shift ;;
    --include) [ $# -ge 2 ] || usage; inc=$2; shift ;;
    *) usage ;;
  esac
  shift
done
[ -n "$mode" ] || usage

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- generate ------------------------------------------------------------------------
# The C program prints both sections in man(7) macros. Every option entry has the
# same four text lines (name, description, "Default:", "Accepts:") so that --check
# can compare entries field by field.
cat >"$tmp/gen.c" <<'EOF'
#include <stdio.h>
#include <string.h>
#include "numamalloc/options.h"
#include "numamalloc/stats.h"

/* text for a roff text line: backslashes escaped; a leading '.' or '\'' made literal */
static void roff(const char *s)
{
    if (*s == '.' || *s == '\'') fputs("\\&", stdout);
    for (; *s; s++) {
        if (*s == '\\') fputs("\\e", stdout);
        else putchar(*s);
    }
}

/* the description as a sentence: as written in the table, with a final period */
static void sentence(const char *s)
{
    roff(s);
    size_t n = strlen(s);
    if (n && s[n - 1] != '.') putchar('.');
    putchar('\n');
}

#define OPT(id, type, def, acc, desc) \
    printf(".TP\n.B NUMAMALLOC_%s\n", #id); sentence(desc); \
    printf(".br\nDefault: "); if ((def)[0]) { printf("\\fB"); roff(def); printf("\\fP\n"); } else printf("empty\n"); \
    printf(".br\nAccepts: "); roff(acc); printf("\n");
#define FB(id, key, desc) printf(".TP\n.B %s\n", key); sentence(desc);

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "env")) { NM_OPTIONS(OPT) }
    else { NM_FALLBACK_REASONS(FB) }
    return 0;
}
EOF
"${CC:-cc}" -std=gnu11 -Wall -Wextra -Werror -I"$inc" -o "$tmp/gen" "$tmp/gen.c" 2>"$tmp/cc.err" || {
  echo "gen-man-env: cannot compile the option tables from $inc:" >&2; cat "$tmp/cc.err" >&2; exit 1; }
"$tmp/gen" env >"$tmp/env.gen"
"$tmp/gen" fallbacks >"$tmp/fb.gen"

begin_env='.\" BEGIN GENERATED ENV: scripts/gen-man-env.sh from include/numamalloc/options.h; do not edit'
end_env='.\" END GENERATED ENV'
begin_fb='.\" BEGIN GENERATED FALLBACKS: scripts/gen-man-env.sh from include/numamalloc/stats.h; do not edit'
end_fb='.\" END GENERATED FALLBACKS'

if [ "$mode" = print ]; then
  cat "$tmp/env.gen" "$tmp/fb.gen"
  exit 0
fi
[ -f "$man" ] || { echo "gen-man-env: $man: no such file" >&2; exit 1; }

# the lines strictly between the begin and end markers; fails if a marker is missing
# (markers are passed through the environment: awk -v would eat their backslashes)
extract() {  # file begin end
  B=$2 E=$3 awk '
    BEGIN { b = ENVIRON["B"]; e = ENVIRON["E"] }
    $0 == b { inside = 1; nb++; next }
    $0 == e { inside = 0; ne++; next }
    inside { print }
    END { if (nb != 1 || ne != 1) exit 3 }' "$1"
}

# replace the lines between the markers of file with the contents of newfile
splice() {  # file begin end newfile
  B=$2 E=$3 F=$4 awk '
    BEGIN { b = ENVIRON["B"]; e = ENVIRON["E"]; f = ENVIRON["F"] }
    $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
    $0 == e { skip = 0 }
    !skip { print }' "$1"
}

for name in env fb; do
  if [ $name = env ]; then b=$begin_env e=$end_env; else b=$begin_fb e=$end_fb; fi
  if ! extract "$man" "$b" "$e" >"$tmp/$name.man"; then
    echo "gen-man-env: $man: the markers of the generated $name section are missing or repeated:" >&2
    echo "  $b" >&2; echo "  $e" >&2
    exit 1
  fi
done

if [ "$mode" = write ]; then
  splice "$man" "$begin_env" "$end_env" "$tmp/env.gen" >"$tmp/man.1"
  splice "$tmp/man.1" "$begin_fb" "$end_fb" "$tmp/fb.gen" >"$tmp/man.2"
  if cmp -s "$tmp/man.2" "$man"; then echo "gen-man-env: $man is up to date"; exit 0; fi
  cat "$tmp/man.2" >"$man"
  echo "gen-man-env: rewrote the generated sections of $man"
  exit 0
fi

# ---- check: name every difference ----------------------------------------------------------
# one record per entry: NAME <TAB> description <TAB> default <TAB> accepts
records() {
  awk '
    function flush() { if (name != "") print name "\t" desc "\t" def "\t" acc; name = desc = def = acc = "" }
    /^\.TP/ { flush(); next }
    /^\.B / && name == "" { name = substr($0, 4); next }
    /^\.br/ { next }
    /^Default: / { def = substr($0, 10); gsub(/\\f[BIRP]/, "", def); next }
    /^Accepts: / { acc = substr($0, 10); next }
    name != "" { desc = desc $0 }
    END { flush() }' "$1" | sort
}

rc=0
for name in env fb; do
  cmp -s "$tmp/$name.gen" "$tmp/$name.man" && continue
  rc=1
  records "$tmp/$name.gen" >"$tmp/$name.gen.rec"
  records "$tmp/$name.man" >"$tmp/$name.man.rec"
  what=$([ $name = env ] && echo "option" || echo "fallback reason")
  src=$([ $name = env ] && echo "NM_OPTIONS" || echo "NM_FALLBACK_REASONS")
  # join on the name: entries only in one side, and field differences
  join -t $'\t' -a1 -a2 -e '<none>' -o 0,1.2,1.3,1.4,2.2,2.3,2.4 \
      "$tmp/$name.gen.rec" "$tmp/$name.man.rec" >"$tmp/$name.join" || true
  while IFS=$'\t' read -r key gdesc gdef gacc mdesc mdef macc; do
    if [ "$mdesc$mdef$macc" = "<none><none><none>" ]; then
      echo "gen-man-env: $what $key is in $src but missing from $man"
    elif [ "$gdesc$gdef$gacc" = "<none><none><none>" ]; then
      echo "gen-man-env: $what $key is in $man but not in $src"
    else
      [ "$gdef" = "$mdef" ] || echo "gen-man-env: $key: default differs: code '$gdef', man page '$mdef'"
      [ "$gacc" = "$macc" ] || echo "gen-man-env: $key: accepted values differ: code '$gacc', man page '$macc'"
      [ "$gdesc" = "$mdesc" ] || echo "gen-man-env: $key: description differs: code '$gdesc', man page '$mdesc'"
    fi
  done <"$tmp/$name.join"
  echo "gen-man-env: the generated $name section of $man is stale; run 'make man' (scripts/gen-man-env.sh --write)"
done >&2
[ $rc = 0 ] && echo "gen-man-env: $man matches NM_OPTIONS and NM_FALLBACK_REASONS"
exit $rc
