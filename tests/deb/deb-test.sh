#!/usr/bin/env bash
# tests/deb/deb-test.sh DEB LIB VERSION PROG — the package `make deb` built:
#   1. dpkg-deb -c lists exactly the files README.md names (modes, owner, link targets)
#   2. dpkg-deb -I: the fields; Depends names the package of every library the packaged
#      library needs (as ldd resolves them on this machine), Recommends libunwind8 and
#      python3; shlibs and the ldconfig trigger; md5sums match the files
#   3. unpacked with dpkg -x into a scratch root: its launcher finds its own library
#      there and runs PROG (tests/launcher/prog_launch) on it, --report uses its own
#      numamalloc-report; a program built with its pkg-config file runs on it
#   4. the packaged library: SONAME, stripped, the exported symbols; man pages render;
#      the changelog parses; building again gives the same bytes
#   5. lintian, when installed: its findings are printed, not judged
# Prints one line per check; exit 1 if any failed.
set -uo pipefail
deb=${1:?usage: deb-test.sh DEB LIB VERSION PROG}
lib=${2:?}
version=${3:?}
prog=${4:?}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$root/tests/helpers/checks.sh"
clean() { env -i PATH=/usr/bin:/bin HOME=/tmp LC_ALL=C "$@"; }

[ -f "$deb" ] || { bad "$deb was not built"; echo "deb-test: 1 failed"; exit 1; }
arch=$(dpkg --print-architecture)
ma=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
major=${version%%.*}
[ "$(basename "$deb")" = "numamalloc_${version}_${arch}.deb" ] && ok "file name $(basename "$deb")" || bad "file name $(basename "$deb")"

# ---- 1. contents ---------------------------------------------------------------------------------
# "mode owner path[ -> target]" for every file and link (directories left out)
expected=$(LC_ALL=C sort <<EOF
-rwxr-xr-x root/root ./usr/bin/numamalloc
-rwxr-xr-x root/root ./usr/bin/numamalloc-report
-rw-r--r-- root/root ./usr/include/numamalloc.h
-rw-r--r-- root/root ./usr/lib/$ma/libnumamalloc.so.$version
lrwxrwxrwx root/root ./usr/lib/$ma/libnumamalloc.so.$major -> libnumamalloc.so.$version
lrwxrwxrwx root/root ./usr/lib/$ma/libnumamalloc.so -> libnumamalloc.so.$major
-rw-r--r-- root/root ./usr/lib/$ma/pkgconfig/numamalloc.pc
-rw-r--r-- root/root ./usr/share/doc/numamalloc/changelog.gz
-rw-r--r-- root/root ./usr/share/doc/numamalloc/copyright
-rw-r--r-- root/root ./usr/share/man/man1/numamalloc.1.gz
-rw-r--r-- root/root ./usr/share/man/man1/numamalloc-report.1.gz
-rw-r--r-- root/root ./usr/share/man/man3/numamalloc.3.gz
-rw-r--r-- root/root ./usr/share/man/man7/numamalloc.7.gz
EOF
)
listed=$(dpkg-deb -c "$deb" | awk '$1 !~ /^d/ { line = $1 " " $2 " " $6; for (i = 7; i <= NF; i++) line = line " " $i; print line }' | LC_ALL=C sort)
if [ "$listed" = "$expected" ]; then ok "dpkg-deb -c: the $(wc -l <<<"$expected") files and links README.md lists, modes and owner root"
else bad "dpkg-deb -c differs from the expected list:"; diff <(echo "$expected") <(echo "$listed") | sed 's/^/        /'; fi
# README.md says the same
for f in $(awk '{ print $3 }' <<<"$expected"); do
  path=${f#.}
  path=${path//$ma/<multiarch>}
  grep -qF "$path" "$root/README.md" || bad "README.md does not list $path"
done
dpkg-deb -c "$deb" | awk '$1 ~ /^d/ && $1 != "drwxr-xr-x" { bad = 1 } END { exit bad }' && ok "every directory is 0755" || bad "a directory is not 0755"

# ---- 2. control ----------------------------------------------------------------------------------
field() { dpkg-deb -f "$deb" "$1"; }
[ "$(field Package)" = numamalloc ] && ok "Package: numamalloc" || bad "Package: $(field Package)"
[ "$(field Version)" = "$version" ] && ok "Version: $version" || bad "Version: $(field Version)"
[ "$(field Architecture)" = "$arch" ] && ok "Architecture: $arch" || bad "Architecture: $(field Architecture)"
[[ $(field Maintainer) =~ ^[^\<]+\ \<[^@\>]+@[^\>]+\>$ ]] && ok "Maintainer: $(field Maintainer)" || bad "Maintainer: '$(field Maintainer)'"
[ -n "$(field Description)" ] && [ "$(field Section)" = libs ] && ok "Description and Section: libs" || bad "Description or Section missing"
depends=$(field Depends)
# every library the packaged library needs, resolved here, belongs to a package named in Depends
mkdir -p "$tmp/root"
dpkg -x "$deb" "$tmp/root"
plib=$tmp/root/usr/lib/$ma/libnumamalloc.so.$version
need_pkgs=$(ldd "$plib" | awk '$2 == "=>" && $3 ~ /^\// { print $3 }' | while read -r so; do
  dpkg -S "$(readlink -f "$so")" 2>/dev/null || dpkg -S "$so"; done | cut -d: -f1 | sort -u)
missing=
for p in $need_pkgs; do grep -qE "(^|, )$p( \(>= [^)]+\))?(,|$)" <<<"$depends" || missing+=" $p"; done
if [ -n "$need_pkgs" ] && [ -z "$missing" ]; then ok "Depends: $depends (covers$(printf ' %s' $need_pkgs))"
else bad "Depends: '$depends' misses:$missing (needed: $need_pkgs)"; fi
grep -qE '(^|, )libc6 \(>= [0-9.]+\)' <<<"$depends" && grep -qE '(^|, )libmimalloc2\.0 \(>= [^)]+\)' <<<"$depends" \
  && ok "Depends has versioned libc6 and libmimalloc2.0" || bad "Depends lacks versioned libc6 or libmimalloc2.0: $depends"
[ "$(field Recommends)" = "libunwind8, python3" ] && ok "Recommends: libunwind8, python3" || bad "Recommends: '$(field Recommends)'"
dpkg-deb -e "$deb" "$tmp/ctrl"
[ "$(cat "$tmp/ctrl/shlibs" 2>/dev/null)" = "libnumamalloc $major numamalloc (>= $version)" ] && ok "shlibs: $(cat "$tmp/ctrl/shlibs")" \
  || bad "shlibs: '$(cat "$tmp/ctrl/shlibs" 2>/dev/null)'"
grep -qx 'activate-noawait ldconfig' "$tmp/ctrl/triggers" 2>/dev/null && ok "triggers: ldconfig" || bad "no ldconfig trigger"
if (cd "$tmp/root" && md5sum --quiet -c "$tmp/ctrl/md5sums") >"$tmp/out" 2>&1 && \
   [ "$(wc -l <"$tmp/ctrl/md5sums")" = "$(cd "$tmp/root" && find . -type f | wc -l)" ]; then ok "md5sums: every file, every sum right"
else bad "md5sums: $(cat "$tmp/out")"; fi
size=$(du -sk "$tmp/root" | cut -f1)
[ "$(field Installed-Size)" = "$size" ] && ok "Installed-Size: $size" || bad "Installed-Size: $(field Installed-Size), the files take $size KiB"

# ---- 3. unpacked, run from there ---------------------------------------------------------------------
L=$tmp/root/usr/bin/numamalloc
out=$(cd / && clean "$L" --version)
[ "$out" = "numamalloc $version ($tmp/root/usr/lib/$ma/libnumamalloc.so.$major)" ] && ok "the unpacked launcher finds its library: $out" \
  || bad "the unpacked launcher says '$out'"
out=$(cd "$tmp" && clean root/usr/bin/numamalloc "$prog" info 2>&1)
[ "$out" = "block_info rc=0 kind=1 usable=112" ] && ok "a program runs on the packaged library through it (relative call)" \
  || bad "through the packaged launcher: '$out'"
out=$(cd "$tmp" && clean "$L" "$prog" env | grep '^LD_PRELOAD=')
[ "$out" = "LD_PRELOAD=$tmp/root/usr/lib/$ma/libnumamalloc.so.$major" ] && ok "and preloads the packaged library, by absolute path" \
  || bad "packaged launcher set '$out'"
out=$(cd "$tmp" && clean "$L" --prof --report="$tmp/pkg.html" "$prog" info 2>"$tmp/err")
if [ "$out" = "block_info rc=0 kind=1 usable=112" ] && grep -q '<title>heap flame graph' "$tmp/pkg.html" 2>/dev/null; then
  ok "--report with the packaged numamalloc-report (flame graph included)"
else bad "--report through the package: '$out' $(tail -3 "$tmp/err")"; fi
pc=$tmp/root/usr/lib/$ma/pkgconfig/numamalloc.pc
grep -qx "libdir=/usr/lib/$ma" "$pc" && grep -qx "Version: $version" "$pc" && ok "numamalloc.pc: libdir=/usr/lib/$ma, Version: $version" \
  || bad "numamalloc.pc: $(tr '\n' ' ' <"$pc")"
if command -v pkg-config >/dev/null; then
  flags=$(PKG_CONFIG_SYSROOT_DIR=$tmp/root PKG_CONFIG_LIBDIR=$tmp/root/usr/lib/$ma/pkgconfig PKG_CONFIG_PATH='' \
          PKG_CONFIG_ALLOW_SYSTEM_CFLAGS=1 PKG_CONFIG_ALLOW_SYSTEM_LIBS=1 pkg-config --cflags --libs numamalloc)
  printf '#include <stdio.h>\n#include <stdlib.h>\n#include <numamalloc.h>\nint main(void) { void *p = calloc(1, 100); struct numamalloc_block_info bi; int rc = numamalloc_block_info(p, &bi); printf("%%s %%d %%d\\n", numamalloc_version(), rc, bi.kind); free(p); return rc != 0; }\n' >"$tmp/app.c"
  # shellcheck disable=SC2086
  if ${CC:-cc} -std=gnu11 -Wall -Werror -o "$tmp/app" "$tmp/app.c" $flags 2>"$tmp/err"; then
    out=$(LD_LIBRARY_PATH=$tmp/root/usr/lib/$ma "$tmp/app")
    needed=$(objdump -p "$tmp/app" | awk '$1 == "NEEDED" && $2 ~ /numamalloc/ { print $2 }')
    [ "$out" = "$version 0 1" ] && [ "$needed" = "libnumamalloc.so.$major" ] && ok "linked with its pkg-config flags: NEEDED $needed, runs ($out)" \
      || bad "program linked with the package: '$out', NEEDED '$needed'"
  else bad "cannot build against the package with '$flags': $(cat "$tmp/err")"; fi
else skip "pkg-config not installed"; fi

# ---- 4. library, man pages, changelog, reproducibility -------------------------------------------------
soname=$(objdump -p "$plib" | awk '$1 == "SONAME" { print $2 }')
[ "$soname" = "libnumamalloc.so.$major" ] && ok "SONAME $soname" || bad "SONAME '$soname'"
if readelf -S "$plib" | grep -qE '\.symtab|\.debug_'; then bad "the packaged library is not stripped"
else ok "the packaged library is stripped ($(stat -c %s "$plib") bytes, the build tree's $(stat -c %s "$lib"))"; fi
"$root/scripts/check-exports.sh" "$plib" >"$tmp/out" 2>&1 && ok "exports: $(tail -1 "$tmp/out")" || bad "exports: $(cat "$tmp/out")"
for page in man1/numamalloc.1 man1/numamalloc-report.1 man3/numamalloc.3 man7/numamalloc.7; do
  gz=$tmp/root/usr/share/man/$page.gz
  if ! cmp -s <(gzip -dc "$gz") "$root/man/$(basename "$page")"; then bad "$page.gz is not man/$(basename "$page")"; continue; fi
  if command -v man >/dev/null && MANWIDTH=80 man -l "$gz" >/dev/null 2>"$tmp/err" && [ ! -s "$tmp/err" ]; then :
  elif command -v man >/dev/null; then bad "man -l $page.gz: $(cat "$tmp/err")"; continue; fi
  ok "$page.gz: the page of the tree, renders"
done
[ "$(MANPATH=$tmp/root/usr/share/man man -w 1 numamalloc 2>/dev/null)" = "$tmp/root/usr/share/man/man1/numamalloc.1.gz" ] \
  && ok "man finds numamalloc(1) in the unpacked tree" || bad "man -w 1 numamalloc does not find the packaged page"
if command -v dpkg-parsechangelog >/dev/null; then
  gzip -dc "$tmp/root/usr/share/doc/numamalloc/changelog.gz" >"$tmp/changelog"
  cv=$(dpkg-parsechangelog -l "$tmp/changelog" -S Version 2>&1)
  [ "$cv" = "$version" ] && ok "changelog.gz parses, version $cv" || bad "changelog.gz: '$cv'"
fi
sum1=$(md5sum <"$deb")
if "$root/scripts/mkdeb.sh" "$(dirname "$lib")" "$version" >"$tmp/out" 2>&1 && [ "$(md5sum <"$deb")" = "$sum1" ]; then
  ok "built again: the same bytes"
else bad "built again: different bytes or failure: $(cat "$tmp/out")"; fi

# ---- 5. lintian (informational) ------------------------------------------------------------------------
if command -v lintian >/dev/null; then
  lintian --pedantic "$deb" >"$tmp/lintian" 2>/dev/null
  echo "  INFO  lintian --pedantic: $(grep -c '^[EW]:' "$tmp/lintian") errors/warnings (not judged here):"
  sed 's/^/        /' "$tmp/lintian"
else
  skip "lintian not installed (apt-get install lintian): package not linted"
fi

checks_done deb-test
