#!/usr/bin/env bash
# tests/obs/check-install.sh STAGE LIB VERSION — what `make install PREFIX=/usr
# DESTDIR=STAGE` put there: the library (libnumamalloc.so.VERSION, with the
# SONAME link libnumamalloc.so.0 and the link libnumamalloc.so for -lnumamalloc), the
# header, both man pages, and a
# numamalloc.pc with which `pkg-config --cflags --libs numamalloc` (pointed into the
# stage with PKG_CONFIG_SYSROOT_DIR / PKG_CONFIG_LIBDIR) builds a program that links
# the staged library and runs on it. The caller (tests/obs.mk) runs the install.
# Prints one line per check; exit 1 if any failed.
set -euo pipefail
stage=${1:?usage: check-install.sh STAGE LIB VERSION}
lib=${2:?}
version=${3:?}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$root/tests/helpers/checks.sh"

# file MODE PATH [SAME-AS]
check_file() {
  local mode=$1 path=$stage$2 same=${3:-}
  if [ ! -f "$path" ]; then bad "$2 not installed"; return; fi
  local m; m=$(stat -c %a "$path")
  [ "$m" = "$mode" ] || { bad "$2 has mode $m, not $mode"; return; }
  if [ -n "$same" ] && ! cmp -s "$path" "$same"; then bad "$2 differs from $same"; return; fi
  ok "$2 (mode $mode)"
}
# link PATH TARGET: a symbolic link with exactly that target
check_link() {
  local path=$stage$1 want=$2
  if [ ! -L "$path" ]; then bad "$1 is not a symbolic link"; return; fi
  local got; got=$(readlink "$path")
  if [ "$got" = "$want" ]; then ok "$1 -> $want"; else bad "$1 -> $got, expected -> $want"; fi
}
check_file 755 "/usr/lib/libnumamalloc.so.$version" "$lib"
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
if [ "$soname" = "libnumamalloc.so.${version%%.*}" ]; then ok "SONAME $soname"
else bad "SONAME is '$soname', expected libnumamalloc.so.${version%%.*}"; fi
check_link "/usr/lib/libnumamalloc.so.${version%%.*}" "libnumamalloc.so.$version"
check_link /usr/lib/libnumamalloc.so "libnumamalloc.so.${version%%.*}"
check_file 644 /usr/include/numamalloc.h "$root/include/numamalloc.h"
check_file 644 /usr/share/man/man3/numamalloc.3 "$root/man/numamalloc.3"
check_file 644 /usr/share/man/man7/numamalloc.7 "$root/man/numamalloc.7"
check_file 644 /usr/lib/pkgconfig/numamalloc.pc

pc=$stage/usr/lib/pkgconfig/numamalloc.pc
if [ -f "$pc" ]; then
  if grep -q '@[A-Z]*@' "$pc"; then bad "numamalloc.pc still has placeholders: $(grep -o '@[A-Z]*@' "$pc" | sort -u | tr '\n' ' ')"
  else ok "numamalloc.pc: every @PLACEHOLDER@ replaced"; fi
  if grep -qx "Version: $version" "$pc"; then ok "numamalloc.pc: Version: $version"
  else bad "numamalloc.pc: no 'Version: $version' line"; fi
  if grep -qx "prefix=/usr" "$pc"; then ok "numamalloc.pc: prefix=/usr"
  else bad "numamalloc.pc: prefix is not /usr"; fi
fi

if ! command -v pkg-config >/dev/null; then
  skip "pkg-config not installed: numamalloc.pc not exercised (apt-get install pkg-config)"
elif [ -f "$pc" ]; then
  # the sysroot is prefixed to -I and -L; keep them even though /usr/include and /usr/lib
  # are system directories (pkgconf would drop those)
  pkc() { PKG_CONFIG_SYSROOT_DIR=$stage PKG_CONFIG_LIBDIR=$stage/usr/lib/pkgconfig PKG_CONFIG_PATH='' \
          PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1 pkg-config "$@"; }
  if ! pkc --exists numamalloc 2>"$tmp/err"; then bad "pkg-config does not find numamalloc: $(cat "$tmp/err")"
  else
    modversion=$(pkc --modversion numamalloc)
    if [ "$modversion" = "$version" ]; then ok "pkg-config --modversion: $version"
    else bad "pkg-config --modversion: '$modversion', expected '$version'"; fi
    flags=$(pkc --cflags --libs numamalloc | sed 's/ *$//')
    want="-I$stage/usr/include -L$stage/usr/lib -lnumamalloc"
    if [ "$flags" = "$want" ]; then ok "pkg-config --cflags --libs: $flags"
    else bad "pkg-config --cflags --libs: '$flags', expected '$want'"; fi
    cat >"$tmp/app.c" <<'EOF'
/* linked with -lnumamalloc: the staged library is this program's malloc */
#include <stdio.h>
#include <stdlib.h>
#include <numamalloc.h>
int main(void)
{
    void *p = calloc(1, 100);
    struct numamalloc_block_info bi;
    int rc = numamalloc_block_info(p, &bi);
    printf("%s %d %d %zu\n", numamalloc_version(), rc, bi.kind, bi.usable_size);
    free(p);
    return rc != 0;
}
EOF
    # shellcheck disable=SC2086
    if ! ${CC:-cc} -std=gnu11 -Wall -Werror -o "$tmp/app" "$tmp/app.c" $flags 2>"$tmp/err"; then
      bad "a program built with the pkg-config flags does not compile/link:"; sed 's/^/        /' "$tmp/err"
    else
      out=$(LD_LIBRARY_PATH=$stage/usr/lib "$tmp/app" 2>&1) || true
      if [ "$out" = "$version 0 1 112" ]; then ok "a program built with those flags runs on the staged library ($out)"
      else bad "the program built with the pkg-config flags printed '$out', expected '$version 0 1 112'"; fi
      # not `ldd | grep -q`: with pipefail, grep quitting early can fail the pipe
      deps=$(LD_LIBRARY_PATH=$stage/usr/lib ldd "$tmp/app")
      if grep -qF "$stage/usr/lib/libnumamalloc.so" <<<"$deps"; then
        ok "the program loads $stage/usr/lib/libnumamalloc.so"
      else bad "the program does not load the staged library"; fi
    fi
  fi
fi

if command -v man >/dev/null; then
  where=$(MANPATH=$stage/usr/share/man man -w 7 numamalloc 2>/dev/null || true)
  if [ "$where" = "$stage/usr/share/man/man7/numamalloc.7" ]; then
    ok "man finds the installed numamalloc(7) in the staged MANPATH"
  else bad "man -w 7 numamalloc does not find the staged page"; fi
fi

checks_done check-install
