#!/usr/bin/env bash
# tests/fault/fault-test.sh — fault injection: the allocator when mmap,
# hugetlb mmap, madvise, mbind and mremap fail, when the address space runs out
# (ulimit -v) and when another process empties the hugetlb pool during a run.
#   usage: fault-test.sh LIB FAULT_LIB BINDIR          (make fault-test)
# LIB is the release library, FAULT_LIB the same sources built with -DNM_FAULT_INJECT
# (tests/fault/fault.mk); BINDIR holds fault_work and fault_secure. Every case runs
# tests/fault/fault_work.c (patterns in every block, checked before each free and
# realloc; NULL only with ENOMEM) and then checks the run's JSON stats dump with
# tests/fault/fault_check.py: every fault counted where it belongs (fallback reason
# and errno, failed system call), no pointer reported foreign, nothing leaked.
#   1. the release library has no hook: nm and strings find neither the code nor the
#      variable's name (they do find both in FAULT_LIB), and it warns that
#      NUMAMALLOC_FAULT is not one of its variables;
#   2. the variable's syntax: bad values warn once and inject nothing; AT_SECURE
#      processes ignore it (a set-uid copy of fault_secure; needs root);
#   3. the Nth call of each class fails, for every N up to the calls a run makes;
#   4. probabilities, 1 and 4 threads, each class alone and all together;
#   5. an mmap outage after start-up; RLIMIT_AS (prlimit, like ulimit -v);
#   6. hugetlb (root, 2 MiB pages): forced hugetlb mmap, populate and mbind failures
#      fall back to THP and then 4 KiB and give the pool its pages back; a pool of
#      exactly one page asked for twice, in turn and at once; the pool emptied by
#      another process during the run and grabbed/released in a loop. The static
#      pool cases (none, too small, reserved, off, thp, small blocks) are
#      tests/numa/hugepage-test.sh's and are not repeated here;
#   7. NUMAMALLOC_CHECK=1: the mmap of a new slab segment fails (wait=1, armed after
#      warm-up, nth=1) and the small allocation is served by the reclaim-and-retry:
#      it must be a whole checked block (usable size as asked, free not misuse).
# Prints one line per group and the totals (cases, faults injected per class);
# FAIL lines with the evidence when something does not hold; exit 1 then.
set -uo pipefail

LIB=$(realpath "$1")
FLIB=$(realpath "$2")
BIN=$(realpath "$3")
WORK=$BIN/fault_work
HERE=$(cd "$(dirname "$0")" && pwd)
CHECK="python3 $HERE/fault_check.py"
NR=/proc/sys/vm/nr_hugepages
HP=/sys/kernel/mm/hugepages/hugepages-2048kB
T0=$(date +%s.%N)
T=$(mktemp -d "${TMPDIR:-/tmp}/nm-fault.XXXXXX")
old_nr=
cases=0 fails=0 retried=0
cleanup() {
  if [ -n "$old_nr" ]; then echo "$old_nr" > $NR 2>/dev/null || echo "fault-test: could not restore $NR to $old_nr" >&2; fi
  if [ "$fails" = 0 ]; then rm -rf "$T"; else echo "fault-test: logs kept in $T" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

declare -A injected=([mmap]=0 [hugetlb]=0 [madvise]=0 [mbind]=0 [mremap]=0)
nulls=0

bad() { echo "FAIL fault-test $*"; fails=$((fails + 1)); }

# Common checks of every dump: no pointer of ours reported foreign or invalid, and
# nothing left allocated but stdio's buffers and the threads' leftovers (LIVE_MAX,
# default 16 blocks: the profiler's dlopen of libunwind leaves 17 whatever the faults).
COMMON=('misuse:invalid_pointers==0' 'misuse:foreign_frees==0')

# start NAME SPEC [VAR=VALUE...] -- WORKLOAD-ARGS...  : fault_work under FAULT_LIB with
# NUMAMALLOC_FAULT=SPEC (none if SPEC is -); output in $T/NAME.out, dump in
# $T/NAME.json, exit status in $T/NAME.rc. LIBRARY=... picks another library.
# finish NAME: account for it (faults injected, NULLs); 1 (and says why) unless it
# exited 0. run = start + finish; par starts in the background, two at a time.
start() {
  local name=$1 spec=$2 lib=$FLIB rc=0
  shift 2
  local envs=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    case $1 in LIBRARY=*) lib=${1#LIBRARY=} ;; *) envs+=("$1") ;; esac
    shift
  done
  shift
  [ "$spec" != - ] && envs+=("NUMAMALLOC_FAULT=$spec")
  rm -f "$T/$name.json"
  echo "NUMAMALLOC_FAULT='$spec' $*" > "$T/$name.cmd"
  # (in braces: the shell's own "Aborted" report goes to /dev/null too)
  { timeout 120 env "${envs[@]}" NUMAMALLOC_STATS=json NUMAMALLOC_STATS_FILE="$T/$name.json" \
      LD_PRELOAD="$lib" "$WORK" "$@" > "$T/$name.out" 2>&1; } 2>/dev/null || rc=$?
  echo $rc > "$T/$name.rc"
}

finish() {
  local name=$1 rc f n
  rc=$(cat "$T/$name.rc")
  cases=$((cases + 1))
  f=$(sed -n 's/^FAULTS //p' "$T/$name.out" | tail -1)
  for kv in $f; do
    local k=${kv%%=*} v=${kv#*=}
    [ -n "${injected[$k]+x}" ] && injected[$k]=$(( ${injected[$k]} + ${v%%/*} ))
  done
  n=$(sed -n 's/^NULLS //p' "$T/$name.out" | tail -1)
  nulls=$((nulls + ${n:-0}))
  [ "$rc" = 0 ] && return 0
  local why="exit status $rc"
  [ "$rc" -gt 128 ] && why="killed by signal $((rc - 128)) ($(kill -l $((rc - 128)) 2>/dev/null || echo ?))"
  [ "$rc" = 124 ] && why="timed out"
  [ "${2:-}" = quiet ] && return 1
  bad "$name ($(cat "$T/$name.cmd")): $why"
  grep -E 'FAIL|numamalloc' "$T/$name.out" | head -8 | sed 's/^/    /'
  return 1
}

run() { start "$@"; finish "$1"; }

JOBS=2
par() {
  while [ "$(jobs -rp | wc -l)" -ge $JOBS ]; do wait -n; done
  start "$@" &
}

# stats NAME EXPR...: the run's dump; the common checks are added
stats() {
  local name=$1 out rc=0
  shift
  out=$($CHECK "$name" "$T/$name.json" "${COMMON[@]}" "summary:live<=${LIVE_MAX:-16}" "$@") || rc=$?
  if [ $rc != 0 ]; then bad "$name: stats"; grep -v '^STATS' <<< "$out" | sed 's/^/    /'; grep '^STATS' <<< "$out" | sed 's/^/    /'; fi
  return $rc
}

# injected NAME CLASS: faults of CLASS the hook reports for run NAME
injected_in() { sed -n "s/^FAULTS.* $2=\([0-9]*\)\/.*/\1/p" "$T/$1.out" | tail -1; }
calls_in() { sed -n "s/^FAULTS.* $2=[0-9]*\/\([0-9]*\).*/\1/p" "$T/$1.out" | tail -1; }

TG=$(date +%s.%N)
# one line per group, with its time
say() {
  local now; now=$(date +%s.%N)
  printf 'fault-test: %-8s %5.1fs  %s\n' "$1" "$(awk "BEGIN{print $now - $TG}")" "$2"
  TG=$now
}

# ---- 1. the release library has no hook ------------------------------------------------
g=0
# (whole outputs first: with pipefail, grep -q closing the pipe early fails the pipeline)
nm "$LIB" > "$T/nm.rel"; strings -a "$LIB" > "$T/str.rel"; nm "$FLIB" > "$T/nm.flt"; strings -a "$FLIB" > "$T/str.flt"
if grep -q 'fault_\(hit\|configure\|report\)\|numamalloc_fault' "$T/nm.rel"; then bad "release: $LIB contains the fault hook's symbols"; g=1; fi
if grep -q 'NUMAMALLOC_FAULT\|NM_FAULT' "$T/str.rel"; then bad "release: $LIB contains the fault hook's variable name"; g=1; fi
# ... while the fault build has both: the two checks above can fail
grep -q 'nm_fault_hit' "$T/nm.flt" || { bad "release: nm finds no nm_fault_hit in $FLIB either: the check above proves nothing"; g=1; }
grep -q 'NUMAMALLOC_FAULT' "$T/str.flt" || { bad "release: strings finds no NUMAMALLOC_FAULT in $FLIB either"; g=1; }
if run release mmap:p=1 LIBRARY="$LIB" -- mix 1 400 1 nonull; then
  grep -q "NUMAMALLOC_FAULT is not a numamalloc variable" "$T/release.out" || { bad "release: no warning that NUMAMALLOC_FAULT is unknown"; g=1; }
  stats release 'syscall:mmap.failures==0' 'syscall:madvise.failures==0' 'syscall:mremap.failures==0'
else g=1; fi
say release "$([ $g = 0 ] && echo "no hook in $(basename "$LIB") (nm, strings); NUMAMALLOC_FAULT warned about and ignored")"

# ---- 2. the variable ------------------------------------------------------------------------
nbad=0
for spec in 'mmap:p=1.5' 'mmap:p=0.1234567' 'mmap:nth=0' 'mmap:nth=x' 'brk:nth=1' 'mmap' 'mmap:nth=3:EWHAT' \
            'seed=x' 'bind=2' 'mmap:p=1,' ',mmap:p=1' 'mmap:every=2,madvise:sometimes'; do
  nbad=$((nbad + 1))
  name=spec$nbad
  run $name "$spec" -- mix 1 40 1 nonull || continue
  w=$(grep -c "^numamalloc: NUMAMALLOC_FAULT=.*ignored: accepts .*; using '' (no faults)" "$T/$name.out")
  [ "$w" = 1 ] || { bad "spec '$spec': $w warning lines, want 1"; sed 's/^/    /' "$T/$name.out" | head -5; }
  grep -q 'fault injection' "$T/$name.out" && bad "spec '$spec': rejected but the hook is on"
  stats $name 'syscall:mmap.failures==0'
done
run spec-good 'mmap:every=1000000,madvise:p=0:EAGAIN,mbind:nth=99999:EPERM,mremap:p=0.000001,seed=5,bind=0,boot=0,wait=0' \
    -- mix 1 40 1 nonull && grep -q 'NUMAMALLOC_FAULT=' "$T/spec-good.out" && bad "spec-good: a valid value was warned about"
secure="AT_SECURE not tried (needs root)"
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1; then
  cp "$BIN/fault_secure" "$T/secure" && chmod 0755 "$T" && chown nobody "$T/secure" && chmod u+s "$T/secure"
  out=$(NUMAMALLOC_FAULT=mmap:p=1 "$T/secure" 2>&1)
  plain=$(NUMAMALLOC_FAULT=mmap:p=1 "$BIN/fault_secure" 2>&1)
  cases=$((cases + 2))
  if ! grep -q 'secure=1' <<< "$out"; then
    secure="AT_SECURE not tried (the set-uid copy did not run set-uid: $(head -1 <<< "$out"))"
  else
    grep -q 'secure=1 malloc=ok' <<< "$out" || bad "secure: NUMAMALLOC_FAULT acted in a set-uid process: $out"
    grep -q 'NUMAMALLOC_FAULT ignored in a set-uid/set-gid (AT_SECURE) process' <<< "$out" || bad "secure: no warning: $out"
    grep -q 'secure=0 malloc=null' <<< "$plain" || bad "secure: without AT_SECURE mmap:p=1 did not fail the 8 MiB block: $plain"
    secure="ignored under AT_SECURE (set-uid copy), acts without it"
  fi
fi
say syntax "$nbad bad values rejected with one warning each, nothing injected; $secure"

# ---- 3. the Nth call of each class fails ------------------------------------------------------
# Calls a run makes, per class (a rule that never fires counts them all).
run count 'mmap:nth=1000000000,bind=1' -- mix 1 500 3 nonull
stats count 'syscall:mmap.failures==0' 'syscall:mremap.failures==0' 'syscall:madvise.failures==0' 'syscall:mbind.failures==0'
sweep_runs=0 sweep_desc=
declare -A sweep_max
for cls in mmap madvise mbind mremap; do
  c=$(calls_in count $cls); c=${c:-0}
  sweep_max[$cls]=$(( c < 24 ? c : 24 ))
  extra=; nonull=nonull
  [ $cls = mbind ] && extra=',bind=1'
  [ $cls = mmap ] && nonull=            # a failed mmap may mean NULL (ENOMEM)
  for ((n = 1; n <= ${sweep_max[$cls]}; n++)); do par nth-$cls-$n "$cls:nth=$n$extra" -- mix 1 500 3 $nonull; done
done
# boot=1: the calls made while the allocator starts fail too. It cannot run without
# its topology and domain tables: those two fail with one clear line and abort();
# anything else must be survived.
for ((n = 1; n <= 8; n++)); do par boot-$n "mmap:nth=$n,boot=1" -- mix 1 200 3; done
for spec in mmap:every=3 madvise:every=2 'mbind:every=2,bind=1' mremap:every=2; do
  nonull=nonull; [[ $spec == mmap* ]] && nonull=
  par "every-${spec%%:*}" "$spec" -- mix 1 1000 5 $nonull
done
wait
for cls in mmap madvise mbind mremap; do
  c=$(calls_in count $cls); c=${c:-0}
  hit=0
  for ((n = 1; n <= ${sweep_max[$cls]}; n++)); do
    sweep_runs=$((sweep_runs + 1))
    finish nth-$cls-$n || continue
    i=$(injected_in nth-$cls-$n $cls)
    # the runs differ a little (decay timers), so a late N may find fewer calls
    if [ "${i:-0}" = 1 ]; then hit=$((hit + 1)); elif [ $n -le $((c / 2)) ]; then bad "nth-$cls-$n: $i faults injected, want 1"; fi
    if [ "${i:-0}" = 1 ]; then
      case $cls in
        mmap) stats nth-$cls-$n 'syscall:mmap.failures==1' 'syscall:mmap.last_errno==ENOMEM' ;;
        madvise) stats nth-$cls-$n 'syscall:madvise.failures==1' 'syscall:madvise.last_errno==EINVAL' ;;
        mbind) stats nth-$cls-$n 'syscall:mbind.failures==1' 'fallback:mbind_failed|hugetlb_mbind_failed.count==1' 'fallback:mbind_failed.last_errno==EIO' ;;
        mremap) stats nth-$cls-$n 'syscall:mremap.failures<=1' ;;
      esac
    fi
  done
  sweep_desc+=" $cls 1..${sweep_max[$cls]} ($hit hit)"
done
boot_abort=0
for ((n = 1; n <= 8; n++)); do
  finish boot-$n quiet && continue
  if [ "$(cat "$T/boot-$n.rc")" = 134 ] && grep -q '^numamalloc: cannot \(read the NUMA topology\|set up NUMA domains\) (out of memory)$' "$T/boot-$n.out"; then
    boot_abort=$((boot_abort + 1)); injected[mmap]=$((${injected[mmap]} + 1))
  else
    finish boot-$n
  fi
done
for spec in mmap:every=3 madvise:every=2 'mbind:every=2,bind=1' mremap:every=2; do finish "every-${spec%%:*}"; done
say nth "$sweep_runs runs:$sweep_desc; every=2/3 for each class; boot=1 nth 1..8: $boot_abort clean abort(s), the rest ran"

# ---- 4. probabilities, threads -----------------------------------------------------------------
run base4 - -- mix 4 1500 21 nonull &&
  stats base4 'syscall:mmap.failures==0' 'syscall:madvise.failures==0' 'syscall:mremap.failures==0' 'syscall:munmap.failures==0'
run mmap-p 'mmap:p=0.3,seed=42' -- mix 4 1500 7 &&
  stats mmap-p 'syscall:mmap.failures>=1' 'syscall:mmap.last_errno==ENOMEM'
run madvise-p1 'madvise:p=1' NUMAMALLOC_HUGEPAGES=hugetlb+thp -- mix 4 1500 8 nonull &&
  stats madvise-p1 'fallback:thp_madvise_failed.count>=1' 'fallback:thp_madvise_failed.last_errno==EINVAL' \
        'backing:thp.mapped_total==0' 'backing:4k.mapped_total>=1' 'syscall:madvise.last_errno==EINVAL'
run mbind-p1 'mbind:p=1,bind=1' -- mix 4 1500 9 nonull &&
  stats mbind-p1 'fallback:mbind_failed.count>=10' 'fallback:mbind_failed.last_errno==EIO' \
        'syscall:mbind.failures>=10' 'syscall:mbind.last_errno==EIO'
run mbind-einval 'mbind:p=0.5:EINVAL,bind=1,seed=3' -- mix 2 1500 10 nonull &&
  stats mbind-einval 'fallback:mbind_failed.count>=1' 'fallback:mbind_failed.last_errno==EINVAL' 'syscall:mbind.last_errno==EINVAL'
run mremap-p1 'mremap:p=1' -- mix 4 1500 12 nonull &&
  stats mremap-p1 'syscall:mremap.failures>=1' 'syscall:mremap.last_errno==ENOMEM' 'large:mremaps==0'
run all-1 'mmap:p=0.1,madvise:p=0.3,mbind:p=0.3,mremap:p=0.3,bind=1,seed=9' -- mix 4 1500 11 &&
  stats all-1 'syscall:mmap.failures>=1' 'syscall:madvise.failures>=1' 'syscall:mbind.failures>=1' 'syscall:mremap.failures>=1'
run all-2 'mmap:p=0.05,madvise:p=0.5,mbind:p=0.5,mremap:p=0.5,bind=1,seed=77' NUMAMALLOC_LARGE_CACHE=0 NUMAMALLOC_DECAY_MS=0 \
    -- mix 1 2000 13
# the same under NUMAMALLOC_CHECK=1 (every small block straight from its slab) and the
# sampling profiler (samples served by the fallback arena)
run check-mode 'mmap:p=0.2,mremap:p=0.3,madvise:p=0.3,seed=5' NUMAMALLOC_CHECK=1 -- mix 2 1000 14 &&
  stats check-mode 'syscall:mmap.failures>=1'
run profiler 'mmap:p=0.2,mremap:p=0.3,madvise:p=0.3,seed=6' NUMAMALLOC_PROF=1 NUMAMALLOC_PROF_SAMPLE=64K -- mix 2 1000 15 &&
  LIVE_MAX=24 stats profiler 'syscall:mmap.failures>=1'
say threads "baseline without faults (no failed call), mmap p=0.3, madvise/mbind/mremap p=1, mbind EINVAL, all at once, check mode, profiler; 1, 2 and 4 threads"

# ---- 5. an mmap outage; RLIMIT_AS -----------------------------------------------------------------
if run outage 'mmap:p=1,wait=1' -- outage; then
  stats outage 'syscall:mmap.failures>=6' 'syscall:mmap.last_errno==ENOMEM'
  say outage "$(sed -n 's/^RESULT outage: //p' "$T/outage.out")"
fi
ul=
for variant in auto 64M; do
  lim=$((512 << 20))
  cases=$((cases + 1))
  rc=0
  prlimit --as=$lim env NUMAMALLOC_ARENA_RESERVE=$variant NUMAMALLOC_STATS=json NUMAMALLOC_STATS_FILE="$T/ulimit-$variant.json" \
      LD_PRELOAD="$LIB" "$WORK" ulimit > "$T/ulimit-$variant.out" 2>&1 || rc=$?
  if [ $rc != 0 ]; then
    bad "ulimit ($variant arena reserve, RLIMIT_AS $((lim >> 20)) MiB): exit status $rc"
    grep -E 'FAIL|numamalloc' "$T/ulimit-$variant.out" | head -8 | sed 's/^/    /'
    continue
  fi
  stats ulimit-$variant 'syscall:mmap.failures>=1' 'syscall:mmap.last_errno==ENOMEM'
  nulls=$((nulls + $(sed -n 's/^NULLS //p' "$T/ulimit-$variant.out")))
  ul+=" [arena $variant: $(sed -n 's/^RESULT ulimit: large blocks took //p' "$T/ulimit-$variant.out")]"
done
say ulimit "RLIMIT_AS 512 MiB, NULL+ENOMEM for large, medium and small, all freed, again:$ul"

# ---- 6. hugetlb ------------------------------------------------------------------------------------
hugetlb_cases() {
  # Leave exactly `want` free 2 MiB pages (pages other processes hold stay theirs).
  pool() {
    local want=$1 free nr
    for _ in 1 2 3; do
      nr=$(cat $NR); free=$(cat $HP/free_hugepages)
      echo $((nr - free + want)) > $NR || true
      free=$(cat $HP/free_hugepages)
      [ "$free" = "$want" ] && break
      [ "$free" -lt "$want" ] && { echo 1 > /proc/sys/vm/compact_memory 2>/dev/null || true; }
    done
    [ "$free" = "$want" ] || { bad "hugetlb: wanted $want free pages, the kernel left $free"; return 1; }
  }
  # hrun NAME SPEC [VAR=VALUE...] -- ARGS... [:: EXPR...]: run (with pool_want free
  # pages) and check the dump. The pool is the whole machine's: another process that
  # resizes or uses it during a case (on a shared machine another checkout's
  # hugepage-test, which does not take our lock, or any program under the preload)
  # spoils the case; a failed case runs again, up to three times in all, with the pool
  # set anew. A fault of ours fails every time.
  hrun() {
    local args=() exprs=() in_exprs=0 a try f0=$fails nr_before free_before
    for a in "$@"; do
      if [ "$a" = :: ]; then in_exprs=1; elif [ $in_exprs = 1 ]; then exprs+=("$a"); else args+=("$a"); fi
    done
    for try in 1 2 3; do
      if pool "$pool_want"; then
        nr_before=$(cat $NR); free_before=$(cat $HP/free_hugepages)
        if run "${args[@]}" && stats "$1" "${exprs[@]}"; then
          [ $try -gt 1 ] && retried=$((retried + 1))
          fails=$f0
          return 0
        fi
        echo "fault-test: $1 (attempt $try) failed with the pool at nr_hugepages $nr_before -> $(cat $NR), free $free_before -> $(cat $HP/free_hugepages) (want $pool_want free)"
      fi
      sleep 0.2
    done
    return 1
  }
  local pool_want=6                          # free pages each case starts with (hrun sets them)
  # every free unmaps (the pool gets its pages back at once); no decay pass madvises;
  # the whole chain hugetlb -> THP -> 4 KiB (THP is not in the default one)
  local H=(NUMAMALLOC_LARGE_CACHE=0 NUMAMALLOC_DECAY_MS=60000 NUMAMALLOC_HUGEPAGES=hugetlb+thp)
  hrun huge-none - "${H[@]}" -- huge hugetlb
  hrun huge-mmap 'hugetlb:p=1' "${H[@]}" -- huge thp :: \
    'fallback:hugetlb_mmap_failed.count>=3' 'fallback:hugetlb_mmap_failed.last_errno==ENOMEM' \
    'backing:hugetlb_2m.mapped_total==0' 'backing:thp.mapped_total>=3'
  hrun huge-chain 'hugetlb:p=1,madvise:p=1' "${H[@]}" -- huge 4k :: \
    'fallback:hugetlb_mmap_failed.count>=3' 'fallback:thp_madvise_failed.count>=3' \
    'backing:4k.mapped_total>=3' 'backing:thp.mapped_total==0' 'backing:hugetlb_2m.mapped_total==0'
  hrun huge-populate 'madvise:nth=1' "${H[@]}" -- huge thp,hugetlb,hugetlb :: \
    'fallback:hugetlb_populate_failed.count==1' 'fallback:hugetlb_populate_failed.last_errno==EINVAL'
  hrun huge-mbind 'mbind:p=1,bind=1' "${H[@]}" -- huge thp :: \
    'fallback:hugetlb_mbind_failed.count>=3' 'fallback:hugetlb_mbind_failed.last_errno==EIO' 'fallback:mbind_failed.count>=3'
  hrun huge-nth 'hugetlb:nth=2' "${H[@]}" -- huge hugetlb,thp,hugetlb :: \
    'fallback:hugetlb_mmap_failed.count==1' 'backing:hugetlb_2m.mapped_total==2'
  hrun huge-mix 'hugetlb:p=0.5,madvise:p=0.2,mbind:p=0.2,mremap:p=0.3,mmap:p=0.05,bind=1,seed=4' "${H[@]}" -- mix 2 1500 17
  say hugetlb "pool of 6: forced hugetlb mmap -> THP; and madvise -> 4 KiB; populate (nth=1) -> THP for that block only; mbind -> THP; nth=2; 2 threads, all classes at once; pages back in the pool each time"
  pool_want=1
  hrun pool1 - "${H[@]}" -- pool1 :: \
    'backing:hugetlb_2m.mapped_total==7' 'fallback:no_free_hugetlb_on_node|hugetlb_mmap_failed|hugetlb_populate_failed.count==6'
  say pool1 "$(sed -n 's/^RESULT pool1: //p' "$T/pool1.out" 2>/dev/null)"
  pool_want=4
  hrun grab - "${H[@]}" -- grab :: 'fallback:no_free_hugetlb_on_node|hugetlb_mmap_failed|hugetlb_populate_failed.count>=2'
  say grab "$(sed -n 's/^RESULT grab: //p' "$T/grab.out" 2>/dev/null)"
}
if [ ! -d $HP ]; then say hugetlb "skipped: this kernel has no 2 MiB hugetlb pages"
elif [ "$(id -u)" != 0 ] || [ ! -w $NR ]; then say hugetlb "skipped: needs root to size $NR"
else
  # one resizer of the host's pool at a time among the suites that take this lock
  exec 9> "${TMPDIR:-/tmp}/numamalloc-hugepages.lock"
  flock -w 120 9 || bad "hugetlb: the pool lock is held by another run"
  old_nr=$(cat $NR)
  hugetlb_cases
  echo "$old_nr" > $NR; old_nr=
  flock -u 9
fi

# ---- 7. check mode: a small block served by the reclaim-and-retry ---------------------------
if run check-retry 'mmap:nth=1,wait=1' NUMAMALLOC_CHECK=1 -- check-retry; then
  stats check-retry 'syscall:mmap.failures==1' 'syscall:mmap.last_errno==ENOMEM'
fi
say retry "NUMAMALLOC_CHECK=1, a new segment's mmap fails: $(sed -n 's/^RESULT check-retry: //p' "$T/check-retry.out")"

secs=$(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $T0}")
total=0; per=
for k in mmap hugetlb madvise mbind mremap; do total=$((total + ${injected[$k]})); per+=" $k ${injected[$k]},"; done
if [ $fails != 0 ]; then
  echo "fault-test: FAILED: $fails check(s) failed in $cases runs (${secs}s)"
  exit 1
fi
again=; [ $retried != 0 ] && again=" ($retried hugetlb case(s) passed on a second or third attempt: the pool changed under them)"
echo "fault-test: $cases runs passed$again; faults injected:${per%,}; $total in all; NULL returns (all ENOMEM): $nulls (${secs}s)"
