#!/usr/bin/env bash
# scripts/mkdeb.sh B VERSION — build B/numamalloc_VERSION_ARCH.deb with plain dpkg-deb
# (`make deb`). The tree comes from `make install PREFIX=/usr LIBDIR=/usr/lib/MULTIARCH`
# into B/deb/debian/numamalloc, then:
#   the library made 0644 and stripped (debugging data and symbol table: the build
#   tree's copy keeps them), man pages gzip -9n, /usr/share/doc/numamalloc/copyright
#   and changelog.gz (packaging/deb/), DEBIAN/control with Depends computed by
#   dpkg-shlibdeps from the library's NEEDED entries, shlibs (for packages linking
#   it), triggers (ldconfig) and md5sums;
#   every file's time set to the changelog's date, so that two builds of the same
#   tree give the same package.
# Needs dpkg-dev (dpkg-shlibdeps, dpkg-architecture) and binutils (strip).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
B=${1:?usage: mkdeb.sh BUILD-DIR VERSION}
version=${2:?usage: mkdeb.sh BUILD-DIR VERSION}
B=$(cd "$B" && pwd)
for tool in dpkg-deb dpkg-shlibdeps dpkg-architecture strip; do
  command -v "$tool" >/dev/null || { echo "mkdeb.sh: $tool not found (apt-get install dpkg-dev binutils)" >&2; exit 1; }
done
arch=$(dpkg-architecture -qDEB_HOST_ARCH)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
work=$B/deb
pkg=$work/debian/numamalloc
out=$B/numamalloc_${version}_${arch}.deb
maintainer="numamalloc maintainers <maintainers@users.noreply.b-seed-965c3228.example>"

rm -rf "$work"
mkdir -p "$work/debian"
make -s --no-print-directory -C "$root" install B="$B" PREFIX=/usr LIBDIR="/usr/lib/$multiarch" DESTDIR="$pkg"

real=$pkg/usr/lib/$multiarch/libnumamalloc.so.$version
chmod 0644 "$real"
strip --strip-unneeded --remove-section=.comment --remove-section=.note "$real"
find "$pkg/usr/share/man" -type f -name '*.[0-9]' -exec gzip -9n {} +
install -d "$pkg/usr/share/doc/numamalloc"
install -m 0644 "$root/packaging/deb/copyright" "$pkg/usr/share/doc/numamalloc/copyright"
# a native package (no Debian revision): changelog.gz, in the format dpkg-parsechangelog reads
gzip -9n <"$root/packaging/deb/changelog" >"$pkg/usr/share/doc/numamalloc/changelog.gz"
chmod 0644 "$pkg/usr/share/doc/numamalloc/changelog.gz"

# Depends: what the library's NEEDED entries come from, as the installed packages'
# shlibs files say (dpkg-shlibdeps wants a debian/control to run in)
cat >"$work/debian/control" <<EOF
Source: numamalloc
Maintainer: $maintainer

Package: numamalloc
Architecture: any
EOF
depends=$(cd "$work" && dpkg-shlibdeps -O -e"debian/numamalloc/usr/lib/$multiarch/libnumamalloc.so.$version" 2>"$work/shlibdeps.err" \
          | sed -n 's/^shlibs:Depends=//p') || { cat "$work/shlibdeps.err" >&2; exit 1; }
[ -n "$depends" ] || { echo "mkdeb.sh: dpkg-shlibdeps found no dependencies:" >&2; cat "$work/shlibdeps.err" >&2; exit 1; }
rm -f "$work/debian/control"

mkdir -p "$pkg/DEBIAN"
installed_kb=$(du -sk --exclude=DEBIAN "$pkg" | cut -f1)
cat >"$pkg/DEBIAN/control" <<EOF
Package: numamalloc
Version: $version
Architecture: $arch
Maintainer: $maintainer
Installed-Size: $installed_kb
Depends: $depends
Recommends: libunwind8, python3
Suggests: google-perftools
Section: libs
Priority: optional
Description: NUMA-aware malloc replacement with huge pages and statistics
 numamalloc replaces the malloc family and C++ operator new of unmodified
 programs (LD_PRELOAD, or linking with -lnumamalloc) so that each thread's
 memory comes from the NUMA node it runs on and large blocks sit on huge
 pages, without SIGBUS when a node runs out of them. It is configured with
 NUMAMALLOC_* environment variables and reports where memory went in a
 text or JSON statistics dump.
 .
 This package holds the library, its header and pkg-config file, the
 launcher numamalloc (runs a program on the library, options for every
 setting), numamalloc-report (HTML report with charts and heap flame
 graphs) and the manual pages. The sampling heap profiler needs libunwind8;
 its profiles can be read with google-pprof (google-perftools).
EOF
printf 'libnumamalloc %s numamalloc (>= %s)\n' "${version%%.*}" "$version" >"$pkg/DEBIAN/shlibs"
printf 'activate-noawait ldconfig\n' >"$pkg/DEBIAN/triggers"
(cd "$pkg" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z | xargs -0 md5sum) >"$pkg/DEBIAN/md5sums"
chmod 0644 "$pkg/DEBIAN/control" "$pkg/DEBIAN/shlibs" "$pkg/DEBIAN/triggers" "$pkg/DEBIAN/md5sums"

# the same bytes for the same tree: times from the changelog, owner root
epoch=$(date -d "$(sed -n 's/^ -- .*>  //p' "$root/packaging/deb/changelog" | head -1)" +%s)
find "$pkg" -exec touch --no-dereference --date="@$epoch" {} +
SOURCE_DATE_EPOCH=$epoch dpkg-deb --root-owner-group -Zxz --build "$pkg" "$out" >/dev/null
echo "mkdeb.sh: $out ($(du -k "$out" | cut -f1) KiB; Depends: $depends)"
