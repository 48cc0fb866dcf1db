#!/usr/bin/env bash
# scripts/numa-vm.sh - boot a throw-away QEMU VM with N NUMA nodes, run one
# command inside it, print the command's output and exit with its status.
# numamalloc's NUMA placement tests (tests/numa/vm-test.sh) run through it: the
# build machine has one node, the VM has real SRAT nodes the kernel places pages on.
#
# Usage:
#   numa-vm.sh [options] [--] command [args...]
#   numa-vm.sh -P              only fetch and unpack the guest kernel (exit 0 if usable)
# Options:
#   -d DIR      directory to copy into the VM as /tests (binaries, .so, scripts);
#               the shared libraries of every ELF file in it are copied too
#   -n NODES    number of NUMA nodes (default 2)
#   -c CPUS     number of vCPUs (default 2); CPUs are dealt round-robin to the
#               first min(CPUS,NODES) nodes, the other nodes are memory-only
#   -m MIB      memory per node in MiB (default 256)
#   -H N        reserve N 2 MiB huge pages on every node before the command runs
#   -e VAR=VAL  environment variable for the command (repeatable)
#   -a ACCEL    tcg | kvm | auto (default tcg; auto = kvm only with vmx/svm)
#   -t SECS     wall-clock limit for the whole VM run (default 120)
#   -k FILE     kernel image (default: Debian's linux-image-*-amd64, fetched
#               once with apt-get download into the cache directory)
#   -C DIR      cache directory (default $NUMAVM_CACHE, else ~/.cache/numavm)
#   -P          prepare only: make sure the kernel is in the cache, print its path
#   -v          also print the guest kernel console log and timings on stderr
#   -K          keep the temporary work directory (its path is printed)
#   -S          self-test: compile a small placement check (needs gcc) into
#               /tests and, with no command given, run it: mmap+mbind on every
#               node with memory and first touch from a CPU of every node with
#               CPUs, each page checked with move_pages and get_mempolicy
# The command runs as root inside the VM, in /tests, under busybox sh, with
# /tests first in PATH. Its stdout+stderr come back on the host's stdout
# (through a second serial port; the guest console goes to a third file).
# Exit status: the command's, or 124 on timeout, 125 if the VM failed before
# the command reported a status (or on a usage/setup error, or a kernel that
# cannot be had).
#
# Accelerator: TCG by default. KVM works only where /dev/kvm is hardware VT
# (vmx/svm in /proc/cpuinfo): on hosts whose /dev/kvm is PVM (kvm_pvm module),
# a stock Debian kernel never boots (hang, or "KVM internal error" after ~1 min).
#
# Environment: NUMAVM_CACHE (cache directory), NUMAVM_APPEND (extra kernel
# command line, appended last so it can override, e.g. "numa_balancing=enable").
#
# Host packages (Debian 12): qemu-system-x86 busybox-static cpio xz-utils
# binutils (scripts/deps.sh vm). The first run downloads the kernel package with
# apt-get download (it runs apt-get update once if the package lists are missing
# and it is root). Build test programs for plain x86-64 (no -march=native: TCG
# has no AVX-512).
set -euo pipefail

NODES=2 CPUS=2 MEM=256 HUGE=0 ACCEL=tcg TIMEOUT=120 KERNEL='' DIR='' VERBOSE=0 KEEP=0 SELFTEST=0 PREPARE=0
CACHE=${NUMAVM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/numavm}
ENVS=()
T_START=$(date +%s.%N)
while getopts "d:n:c:m:H:e:a:t:k:C:PvKSh" o; do
  case $o in
    d) DIR=$OPTARG ;; n) NODES=$OPTARG ;; c) CPUS=$OPTARG ;; m) MEM=$OPTARG ;;
    H) HUGE=$OPTARG ;; e) ENVS+=("$OPTARG") ;; a) ACCEL=$OPTARG ;; t) TIMEOUT=$OPTARG ;;
    k) KERNEL=$OPTARG ;; C) CACHE=$OPTARG ;; P) PREPARE=1 ;; v) VERBOSE=1 ;; K) KEEP=1 ;; S) SELFTEST=1 ;;
    h) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) exit 125 ;;
  esac
done
shift $((OPTIND - 1))
die() { echo "numa-vm: $*" >&2; exit 125; }
log() { if [ "$VERBOSE" = 1 ]; then echo "numa-vm: $*" >&2; fi; }
if [ $# = 0 ] && [ "$SELFTEST" = 1 ]; then set -- numa_selftest; fi
[ $# -gt 0 ] || [ "$PREPARE" = 1 ] || die "no command given (try -h)"
for v in NODES CPUS MEM HUGE TIMEOUT; do
  [[ ${!v} =~ ^[0-9]+$ ]] || die "$v must be a number"
done
if [ "$NODES" -lt 1 ] || [ "$CPUS" -lt 1 ] || [ "$MEM" -lt 64 ]; then die "need NODES>=1, CPUS>=1, MEM>=64"; fi
for e in "${ENVS[@]+"${ENVS[@]}"}"; do [[ $e =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "bad -e $e"; done

tools=(xz readelf)
[ "$PREPARE" = 1 ] || tools+=(qemu-system-x86_64 cpio ldd)
for t in "${tools[@]}"; do
  command -v "$t" >/dev/null || die "missing $t (scripts/deps.sh vm installs qemu-system-x86 busybox-static cpio xz-utils binutils)"
done
is_elf() { [[ -f $1 && $(head -c 4 "$1" | tr -d '\0') == $'\x7fELF' ]]; }
has_needed() { [[ $(readelf -d "$1" 2>/dev/null) == *"(NEEDED)"* ]]; }   # dynamically linked

# ---- kernel -------------------------------------------------------------
# Resolve the generic kernel package (not -cloud-amd64: no NUMA_EMU, LZ4-packed).
resolve_kernel_pkg() {
  apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}' || true
}
fetch_kernel() {   # into $CACHE/kernel; caller holds the cache lock
  local pkg
  pkg=$(resolve_kernel_pkg)
  if [ -z "$pkg" ] && [ "$(id -u)" = 0 ]; then
    # a fresh machine (CI container) may have no package lists at all
    log "no package lists: running apt-get update"
    apt-get update >/dev/null 2>&1 || true
    pkg=$(resolve_kernel_pkg)
  fi
  [ -n "$pkg" ] || die "cannot resolve linux-image-amd64 (run apt-get update, or pass -k)"
  log "downloading $pkg into $CACHE"
  ( cd "$CACHE" && rm -f ./*.deb && apt-get download "$pkg" >/dev/null 2>&1 ) || die "apt-get download $pkg failed"
  rm -rf "$CACHE/kernel" && dpkg -x "$CACHE"/"$pkg"_*.deb "$CACHE/kernel" && rm -f "$CACHE"/*.deb
  rm -rf "$CACHE/kernel/lib" "$CACHE/kernel/usr"   # only the image is needed
}
find_cached_kernel() { find "$CACHE/kernel/boot" -name 'vmlinuz-*' 2>/dev/null | sort | head -n1 || true; }

if [ -z "$KERNEL" ] || ! is_elf "$KERNEL"; then
  mkdir -p "$CACHE" || die "cannot create cache directory $CACHE"
  # one download/unpack at a time: several test runs may share the cache
  exec 9>"$CACHE/.lock"
  flock -w 300 9 || die "cache $CACHE is locked by another run"
fi
if [ -z "$KERNEL" ]; then
  KERNEL=$(find_cached_kernel)
  if [ -z "$KERNEL" ]; then fetch_kernel; KERNEL=$(find_cached_kernel); fi
  [ -n "$KERNEL" ] || die "the kernel package in $CACHE has no boot/vmlinuz-*"
fi
[ -r "$KERNEL" ] || die "kernel $KERNEL not readable"
# A bzImage spends ~6 s of TCG time in BIOS + XZ decompression. Unpack it once
# into an ELF vmlinux: QEMU boots that directly through its PVH entry point.
if ! is_elf "$KERNEL"; then
  V=$CACHE/vmlinux-$(cksum < "$KERNEL" | cut -d' ' -f1)
  if [ ! -s "$V" ]; then
    # LC_ALL=C: in a UTF-8 locale grep -P silently matches no raw bytes
    off=$(LC_ALL=C grep -obUaP '\xfd\x37\x7a\x58\x5a\x00' "$KERNEL" | head -n1 | cut -d: -f1 || true)
    if [ -n "$off" ] && xz -dc --single-stream < <(tail -c +$((off + 1)) "$KERNEL") > "$V.tmp" 2>/dev/null \
       && [[ $(readelf -n "$V.tmp" 2>/dev/null) == *"(0x00000012)"* ]]; then   # XEN_ELFNOTE_PHYS32_ENTRY
      mv "$V.tmp" "$V"
    else
      rm -f "$V.tmp"; V=
    fi
  fi
  if [ -n "$V" ]; then KERNEL=$V; else log "could not unpack $KERNEL to a PVH vmlinux; booting the bzImage (slower)"; fi
fi
exec 9>&-
if [ "$PREPARE" = 1 ]; then echo "$KERNEL"; exit 0; fi

BUSYBOX=/bin/busybox
if ! is_elf $BUSYBOX || has_needed $BUSYBOX; then die "need a static /bin/busybox (apt-get install busybox-static)"; fi

# ---- accelerator ----------------------------------------------------------
# KVM needs a guest kernel the host's KVM can run: on machines whose /dev/kvm is
# backed by kvm_pvm (PVM, no vmx/svm in /proc/cpuinfo) a stock kernel hangs
# right after "Booting from ROM", so "auto" only picks KVM with hardware VT.
if [ "$ACCEL" = auto ]; then
  if [ -w /dev/kvm ] && grep -qE '\b(vmx|svm)\b' /proc/cpuinfo; then ACCEL=kvm; else ACCEL=tcg; fi
fi
case $ACCEL in
  kvm) ACCEL_ARGS=(-accel kvm -cpu host) ;;
  tcg) ACCEL_ARGS=(-accel "tcg,thread=multi" -cpu max) ;;
  *) die "bad -a $ACCEL" ;;
esac

# ---- self-test program (-S) ----------------------------------------------------
# Raw system calls, no libnuma: the check needs nothing but gcc and libc.
build_selftest() {   # $1 = output directory
  local d=$1
  command -v gcc >/dev/null || die "-S needs gcc"
  cat > "$d/numa_selftest.c" <<'CEOF'
/* numa_selftest: pages bound with mbind, and pages first touched from a CPU of a
 * node, must be on that node by both move_pages and get_mempolicy. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

static int fails;

static int where(void *p, int *gm)
{
    void *pg[1] = { p };
    int st = -1;
    if (syscall(SYS_move_pages, 0, 1UL, pg, NULL, &st, 0) != 0) st = -1000 - errno;
    *gm = -1;
    if (syscall(SYS_get_mempolicy, gm, NULL, 0UL, p, 3UL /* MPOL_F_NODE|MPOL_F_ADDR */) != 0) *gm = -1000 - errno;
    return st;
}

static void check(const char *what, int node, void *p)
{
    int gm, mp = where(p, &gm);
    int ok = mp == node && gm == node;
    fails += !ok;
    printf("%-24s node %d: move_pages=%d get_mempolicy=%d %s\n", what, node, mp, gm, ok ? "OK" : "FAIL");
}

static int read_list(const char *path, unsigned long *mask)
{
    char buf[512];
    FILE *f = fopen(path, "r");
    *mask = 0;
    if (!f) return -1;
    if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
    fclose(f);
    for (char *s = buf; *s && *s != '\n';) {
        char *e;
        long a = strtol(s, &e, 10), b = a;
        if (e == s) break;
        if (*e == '-') b = strtol(e + 1, &e, 10);
        for (long i = a; i <= b && i < 64; i++) *mask |= 1UL << i;
        s = *e == ',' ? e + 1 : e;
    }
    return 0;
}

int main(void)
{
    unsigned long mem, cpus;
    long pg = sysconf(_SC_PAGESIZE);
    if (read_list("/sys/devices/system/node/has_memory", &mem) != 0) { puts("no NUMA sysfs"); return 1; }
    for (int n = 0; n < 64; n++) {
        if (!(mem >> n & 1)) continue;
        char *p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        unsigned long m = 1UL << n;
        if (syscall(SYS_mbind, p, pg, 2 /* MPOL_BIND */, &m, 65UL, 0) != 0) { perror("mbind"); fails++; }
        p[0] = 1;
        check("mmap+mbind", n, p);
        munmap(p, pg);
    }
    for (int n = 0; n < 64; n++) {
        char path[96];
        snprintf(path, sizeof path, "/sys/devices/system/node/node%d/cpulist", n);
        if (read_list(path, &cpus) != 0 || cpus == 0) continue;
        cpu_set_t set;
        CPU_ZERO(&set);
        for (int c = 0; c < 64; c++) if (cpus >> c & 1) CPU_SET(c, &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0) { perror("sched_setaffinity"); fails++; continue; }
        char *p = mmap(NULL, pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        p[0] = 1;
        check("first touch", n, p);
        munmap(p, pg);
    }
    printf("numa_selftest: %d failure(s)\n", fails);
    return fails ? 1 : 0;
}
CEOF
  gcc -O2 -static -o "$d/numa_selftest" "$d/numa_selftest.c" 2>/dev/null \
    || gcc -O2 -o "$d/numa_selftest" "$d/numa_selftest.c" || die "cannot build numa_selftest"
  rm -f "$d/numa_selftest.c"
}

# ---- initramfs -------------------------------------------------------------
W=$(mktemp -d "${TMPDIR:-/tmp}/numavm.XXXXXX")
# shellcheck disable=SC2317  # called through trap
cleanup() { if [ "$KEEP" = 1 ]; then echo "numa-vm: kept $W" >&2; else rm -rf "$W"; fi; }
trap cleanup EXIT
R=$W/root
mkdir -p "$R"/{bin,dev,proc,sys,tmp,tests,numavm,lib64,lib/x86_64-linux-gnu}
cp "$BUSYBOX" "$R/bin/busybox"

copy_libs() {   # copy the dynamic loader and the libraries an ELF file needs
  local f=$1 l
  has_needed "$f" || return 0
  for l in $(ldd "$f" 2>/dev/null | grep -oE '/[^ ]+' || true); do
    [ -e "$l" ] || continue
    mkdir -p "$R$(dirname "$l")"
    [ -e "$R$l" ] || cp -L "$l" "$R$l"
  done
}
if [ -n "$DIR" ]; then
  [ -d "$DIR" ] || die "-d $DIR: not a directory"
  cp -rL "$DIR"/. "$R/tests/"
fi
if [ "$SELFTEST" = 1 ]; then build_selftest "$R/tests"; fi
while IFS= read -r -d '' f; do
  if is_elf "$f"; then copy_libs "$f"; fi
done < <(find "$R/tests" -type f -print0)

q() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }   # sh single-quote
{
  for e in "${ENVS[@]+"${ENVS[@]}"}"; do printf 'export %s=%s\n' "${e%%=*}" "$(q "${e#*=}")"; done
  printf 'exec'; for a in "$@"; do printf ' %s' "$(q "$a")"; done; printf '\n'
} > "$R/numavm/cmd"
echo "$HUGE" > "$R/numavm/hugepages"

cat > "$R/init" <<'EOF'
#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/tests:/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mkdir -p /dev/hugepages && mount -t hugetlbfs hugetlbfs /dev/hugepages
ln -sf /proc/self/fd /dev/fd
# ttyS1 = command output, ttyS2 = exit status; no \n -> \r\n translation
stty -F /dev/ttyS1 -opost -echo 2>/dev/null
stty -F /dev/ttyS2 -opost -echo 2>/dev/null
hp=$(cat /numavm/hugepages)
if [ "$hp" -gt 0 ]; then
  for n in /sys/devices/system/node/node*; do
    echo "$hp" > $n/hugepages/hugepages-2048kB/nr_hugepages
  done
fi
cd /tests
sh /numavm/cmd > /dev/ttyS1 2>&1 < /dev/null
rc=$?
echo "NUMAVM_RC=$rc" > /dev/ttyS2
sync
poweroff -f
EOF
chmod +x "$R/init"
( cd "$R" && find . -print0 | cpio --null -o -H newc --quiet ) > "$W/initrd.cpio"

# ---- qemu command line -------------------------------------------------------
NUMA=()
for ((n = 0; n < NODES; n++)); do
  NUMA+=(-object "memory-backend-ram,id=m$n,size=${MEM}M")
  cpus=
  for ((c = n; c < CPUS; c += NODES)); do cpus+=",cpus=$c"; done
  NUMA+=(-numa "node,nodeid=$n,memdev=m$n$cpus")
done
# distances: 10 local, 20 within a pair of nodes (0-1, 2-3, ...), 30 otherwise
for ((a = 0; a < NODES; a++)); do for ((b = 0; b < NODES; b++)); do
  [ $a = $b ] || NUMA+=(-numa "dist,src=$a,dst=$b,val=$(( a/2 == b/2 ? 20 : 30 ))")
done; done

touch "$W/out.log" "$W/rc.log" "$W/console.log"
# -smp N,sockets=N: CPUs of one socket in different nodes trip topology_sane
QEMU=(qemu-system-x86_64 -nodefaults -no-user-config -nographic -no-reboot
  "${ACCEL_ARGS[@]}" -machine pc -smp "$CPUS,sockets=$CPUS" -m "$((MEM * NODES))M" "${NUMA[@]}"
  -kernel "$KERNEL" -initrd "$W/initrd.cpio"
  -append "console=ttyS0 quiet loglevel=3 panic=-1 mitigations=off cryptomgr.notests=1 numa_balancing=disable ${NUMAVM_APPEND:-}"
  -chardev "file,id=s0,path=$W/console.log" -serial chardev:s0
  -chardev "file,id=s1,path=$W/out.log" -serial chardev:s1
  -chardev "file,id=s2,path=$W/rc.log" -serial chardev:s2
  -monitor none)
log "${QEMU[*]}"
t0=$(date +%s.%N)
set +e
timeout -k 5 "$TIMEOUT" "${QEMU[@]}" < /dev/null > "$W/qemu.log" 2>&1
qrc=$?
set -e
t1=$(date +%s.%N)
cat "$W/out.log"
if [ "$VERBOSE" = 1 ]; then
  echo "---- guest console ----" >&2; cat "$W/console.log" >&2
  echo "---- qemu ----" >&2; cat "$W/qemu.log" >&2
fi
log "accel=$ACCEL nodes=$NODES cpus=$CPUS mem/node=${MEM}M qemu_rc=$qrc prepare=$(awk "BEGIN{printf \"%.2f\", $t0 - $T_START}")s qemu=$(awk "BEGIN{printf \"%.2f\", $t1 - $t0}")s"
rc=$(sed -n 's/.*NUMAVM_RC=\([0-9]*\).*/\1/p' "$W/rc.log" | tail -n1)
if [ -z "$rc" ]; then
  [ "$VERBOSE" = 1 ] || { echo "---- guest console (tail) ----" >&2; tail -n 30 "$W/console.log" >&2; cat "$W/qemu.log" >&2; }
  if [ $qrc = 124 ] || [ $qrc = 137 ]; then echo "numa-vm: timed out after ${TIMEOUT}s" >&2; exit 124; fi
  echo "numa-vm: VM exited (qemu rc $qrc) without a command status" >&2
  exit 125
fi
exit "$rc"
