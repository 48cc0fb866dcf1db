#!/usr/bin/env bash
# scripts/deps.sh — install the Debian packages numamalloc needs, if missing.
# Idempotent: does nothing when everything is there; runs `apt-get update` only
# when an install fails (a fresh machine has no package lists yet).
#   scripts/deps.sh            build + test dependencies
#   scripts/deps.sh bench      + the allocators and programs the benchmarks compare
#   scripts/deps.sh vm         + QEMU and what the NUMA VM tests need
set -euo pipefail

pkgs=(gcc g++ make libc6-dev libnuma-dev libmimalloc-dev libmimalloc2.0 libunwind-dev
      libcriterion-dev python3 git sqlite3 coreutils valgrind numactl pkg-config groff-base
      clang libclang-rt-14-dev    # tests/fuzz: libFuzzer (only recommended by clang-14)
      google-perftools            # tests/pprof: google-pprof reads our heap profiles
      dpkg-dev)                   # make deb: dpkg-shlibdeps computes Depends
for what in "$@"; do
  case $what in
    bench) pkgs+=(libjemalloc2 libtcmalloc-minimal4 libmimalloc2.0 time) ;;
    vm)    pkgs+=(qemu-system-x86 busybox-static cpio xz-utils binutils) ;;
    *) echo "deps.sh: unknown group '$what' (accepts: bench, vm)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps.sh: installing ${missing[*]}" >&2
SUDO=
[ "$(id -u)" = 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >/tmp/numamalloc-deps.log 2>&1; then
  $SUDO apt-get update >>/tmp/numamalloc-deps.log 2>&1
  $SUDO apt-get install -y --no-install-recommends "${missing[@]}" >>/tmp/numamalloc-deps.log 2>&1 || {
    echo "deps.sh: apt-get install failed; see /tmp/numamalloc-deps.log" >&2; tail -n 20 /tmp/numamalloc-deps.log >&2; exit 1; }
fi
