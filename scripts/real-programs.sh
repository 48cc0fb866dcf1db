#!/usr/bin/env bash
# scripts/real-programs.sh — real programs with and without the preload.
#
# Each program runs twice on the same input, once on glibc's malloc and once with
# LD_PRELOAD=<lib> (every process it starts inherits the preload: gcc's cc1 and as,
# git's helpers, sort's threads...), each run under `timeout 180`. The outputs that
# must not depend on the allocator are compared byte for byte, and so are the exit
# statuses. One line per program gives both wall times, for information only: no
# timing ever fails this script. Fails (exit 1) on any difference, crash, timeout
# or non-zero exit. Installs nothing (scripts/deps.sh does, from `make test`).
#
#   scripts/real-programs.sh [LIB] [PROGRAM...]
#     LIB       the library to preload (default build/libnumamalloc.so)
#     PROGRAM   any of: python3 cxx gcc git sort sqlite3 (default: all)
#
# Programs: python3 tests/real/pywork.py (dicts, strings, json, sorting); a 4-thread
# C++ program tests/real/cxx_containers.cc (map, unordered_map, vector, string,
# shared_ptr across threads); gcc -O2 on a generated 20,000-line C file (object
# files compared); git init/add/commit of 2,000 files, log, gc, fsck (dates and
# identity fixed so hashes match); sort of a million generated lines (checksums);
# sqlite3 with 300,000 inserts in one transaction and aggregate queries.
# Internal: `real-programs.sh --run NAME IN OUT` runs one program (used below so
# that timeout(1) and the preload apply to it and everything it starts).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SELF="$ROOT/scripts/real-programs.sh"
TIMEOUT=180
ALL=(python3 cxx gcc git sort sqlite3)

# ---- the programs: run_NAME IN OUT writes what must match into OUT/cmp ---------
# (prep_NAME IN makes the input once, without the preload)

python_bin() { if [ -x /usr/bin/python3 ]; then echo /usr/bin/python3; else command -v python3; fi; }

run_python3() {
    PYTHONHASHSEED=0 "$(python_bin)" "$ROOT/tests/real/pywork.py" > "$2/cmp/stdout"
}

prep_cxx() {
    g++ -std=gnu++17 -O2 -pthread -o "$1/cxx_containers" "$ROOT/tests/real/cxx_containers.cc"
}
run_cxx() {
    "$1/cxx_containers" > "$2/cmp/stdout"
}

prep_gcc() {
    # 20,000 lines: 1,000 functions with loops, switches, arithmetic and calls
    awk 'BEGIN {
        print "#include <stddef.h>"; print "typedef unsigned long u64;"
        x = 12345
        for (f = 0; f < 1000; f++) {
            printf "u64 fn%d(u64 a, u64 b, const u64 *v, size_t n) {\n", f
            print "    u64 acc = a ^ b;"
            printf "    for (size_t i = 0; i < n; i++) acc = acc * %d + v[i] %% %d;\n", 3 + f % 29, 7 + f % 13
            print  "    switch (acc % 8) {"
            for (k = 0; k < 8; k++) { x = (x * 1103515245 + 12345) % 2147483648; printf "    case %d: acc += %d; break;\n", k, x % 100000 }
            print  "    }"
            if (f > 0) printf "    acc += fn%d(acc, b + %d, v, n / 2);\n", f - 1, f
            else print "    acc += b;"
            printf "    if (acc > %du) acc -= a << %d;\n", x % 1000000, f % 17
            print "    return acc;"; print "}"
        }
    }' > "$1/big.c"
}
run_gcc() {
    gcc -O2 -frandom-seed=numamalloc -c -o "$2/cmp/big.o" "$1/big.c"
    objdump -d "$2/cmp/big.o" | tail -n +3 > "$2/cmp/objdump"
}

prep_git() {
    mkdir -p "$1"/files/d{00..39}
    awk -v dir="$1/files" 'BEGIN {
        x = 42
        for (i = 0; i < 2000; i++) {
            f = sprintf("%s/d%02d/f%04d.txt", dir, i % 40, i)
            n = 5 + i % 50
            for (l = 0; l < n; l++) { x = (x * 1103515245 + 12345) % 2147483648; printf "line %d of file %d: %d\n", l, i, x > f }
            close(f)
        }
    }'
}
run_git() {
    export HOME="$2" GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME="Numa Malloc" GIT_AUTHOR_EMAIL="nm@example.invalid"
    export GIT_COMMITTER_NAME="Numa Malloc" GIT_COMMITTER_EMAIL="nm@example.invalid"
    local g=(git -c init.defaultBranch=main -c gc.auto=0 -c pack.threads=1 -C "$2/repo")
    mkdir -p "$2/repo"
    "${g[@]}" init -q
    cp -r "$1/files/." "$2/repo/"
    GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z" \
        bash -c '"$@" add -A && "$@" commit -q -m "2000 files"' _ "${g[@]}"
    for c in 1 2 3 4 5; do
        for i in $(seq $((c * 7)) 97 1999); do
            f=$(printf "%s/repo/d%02d/f%04d.txt" "$2" $((i % 40)) "$i")
            echo "change $c" >> "$f"
        done
        GIT_AUTHOR_DATE="2024-01-0$((c + 1))T00:00:00Z" GIT_COMMITTER_DATE="2024-01-0$((c + 1))T00:00:00Z" \
            bash -c '"$@" commit -q -a -m "change $0"' "$c" "${g[@]}"
    done
    "${g[@]}" log --stat --format='%H %an %ad %s' --date=iso > "$2/cmp/log"
    "${g[@]}" gc -q --aggressive
    "${g[@]}" fsck --full --strict > "$2/cmp/fsck" 2>&1
    "${g[@]}" count-objects -v | grep -E '^(count|in-pack|packs|garbage):' > "$2/cmp/count"
    "${g[@]}" ls-tree -r HEAD > "$2/cmp/tree"
    "${g[@]}" diff --stat HEAD~5 HEAD > "$2/cmp/diffstat"
    "${g[@]}" grep -c "change 3" HEAD -- . > "$2/cmp/grep" || true
}

prep_sort() {
    awk 'BEGIN { x = 7; for (i = 0; i < 1000000; i++) {
        x = (x * 1103515245 + 12345) % 2147483648; y = (x * 69069 + 1) % 2147483648
        printf "%08x %d key%d %s\n", x, y % 100000, x % 1000, substr("abcdefghijklmnopqrstuvwxyz", x % 26 + 1, 1 + y % 20) } }' > "$1/lines"
}
run_sort() {
    LC_ALL=C sort --parallel=2 -S 32M "$1/lines" | sha256sum > "$2/cmp/sort"
    LC_ALL=C sort -t ' ' -k2,2n -k1,1 "$1/lines" | sha256sum > "$2/cmp/sort_numeric"
    LC_ALL=C sort -u -k3,3 "$1/lines" | wc -l > "$2/cmp/sort_unique"
}

prep_sqlite3() {
    {
        echo "PRAGMA journal_mode=MEMORY;"
        echo "CREATE TABLE t(id INTEGER PRIMARY KEY, cat TEXT, val INTEGER, name TEXT);"
        echo "CREATE TABLE cats(cat TEXT PRIMARY KEY, label TEXT);"
        echo "BEGIN;"
        awk 'BEGIN { x = 99; for (i = 1; i <= 300000; i++) {
            x = (x * 1103515245 + 12345) % 2147483648
            printf "INSERT INTO t VALUES(%d,'"'"'c%d'"'"',%d,'"'"'n%d_%s'"'"');\n", i, x % 97, x % 100000, i, substr("qwertyuiopasdfghjkl", x % 19 + 1, 1 + x % 12) } }'
        for c in $(seq 0 96); do echo "INSERT INTO cats VALUES('c$c','label $c');"; done
        echo "COMMIT;"
        echo "SELECT count(*), sum(val), min(val), max(val), round(avg(val), 3) FROM t;"
        echo "SELECT cat, count(*), sum(val), max(name) FROM t GROUP BY cat ORDER BY cat;"
        echo "CREATE INDEX t_val ON t(val);"
        echo "SELECT id, val, name FROM t WHERE val BETWEEN 500 AND 520 ORDER BY val, id;"
        echo "SELECT c.label, count(*) FROM t JOIN cats c USING(cat) WHERE t.val % 7 = 0 GROUP BY c.label ORDER BY 2 DESC, 1 LIMIT 10;"
        echo "SELECT count(DISTINCT name), length(group_concat(name, ',')) FROM t WHERE cat = 'c5';"
        echo "SELECT substr(name, instr(name, '_') + 1) AS s, count(*) FROM t GROUP BY s ORDER BY 2 DESC, 1 LIMIT 5;"
        echo "DELETE FROM t WHERE val % 3 = 0; SELECT changes(), count(*) FROM t;"
        echo "PRAGMA integrity_check;"
    } > "$1/script.sql"
}
run_sqlite3() {
    sqlite3 "$2/db.sqlite" < "$1/script.sql" > "$2/cmp/stdout"
}

# ---- internal: one run ------------------------------------------------------------
if [ "${1:-}" = "--run" ]; then
    name=$2 in=$3 out=$4
    mkdir -p "$out/cmp"
    "run_$name" "$in" "$out"
    exit 0
fi

# ---- driver -----------------------------------------------------------------------
LIB=${1:-build/libnumamalloc.so}
[ $# -gt 0 ] && shift
[ -f "$LIB" ] || { echo "real-programs: no library at $LIB (run make first)" >&2; exit 2; }
LIB=$(realpath "$LIB")
PROGS=("$@")
[ ${#PROGS[@]} -gt 0 ] || PROGS=("${ALL[@]}")
for p in "${PROGS[@]}"; do
    case " ${ALL[*]} " in *" $p "*) ;; *) echo "real-programs: unknown program '$p' (accepts: ${ALL[*]})" >&2; exit 2 ;; esac
done
for tool in gcc g++ objdump git sqlite3 sort awk sha256sum timeout; do
    command -v "$tool" >/dev/null || { echo "real-programs: $tool is missing (scripts/deps.sh installs it)" >&2; exit 2; }
done
[ -n "$(python_bin)" ] || { echo "real-programs: python3 is missing" >&2; exit 2; }

WORK=$(mktemp -d /tmp/nm-real.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
unset LD_PRELOAD

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

# run NAME MODE -> sets rc and t; MODE glibc or numamalloc
one_run() {
    local name=$1 mode=$2 in=$WORK/$1/in out=$WORK/$1/$2 t0 t1
    mkdir -p "$out"
    t0=$(now)
    set +e
    if [ "$mode" = numamalloc ]; then
        timeout -k 5 "$TIMEOUT" env LD_PRELOAD="$LIB" bash "$SELF" --run "$name" "$in" "$out" > "$out/log" 2>&1
    else
        timeout -k 5 "$TIMEOUT" bash "$SELF" --run "$name" "$in" "$out" > "$out/log" 2>&1
    fi
    rc=$?
    set -e
    t1=$(now)
    t=$(secs "$t0" "$t1")
}

describe() {
    case $1 in
        0) echo "ok" ;;
        124|137) echo "timed out after ${TIMEOUT} s" ;;
        *) if [ "$1" -gt 128 ]; then echo "killed by signal $(( $1 - 128 ))"; else echo "exit $1"; fi ;;
    esac
}

printf '%-9s %-8s %12s %12s  %s\n' program result glibc numamalloc notes
failed=0
for name in "${PROGS[@]}"; do
    mkdir -p "$WORK/$name/in"
    if declare -F "prep_$name" >/dev/null; then "prep_$name" "$WORK/$name/in"; fi
    one_run "$name" glibc;      rc_g=$rc t_g=$t
    one_run "$name" numamalloc; rc_n=$rc t_n=$t
    note="" result=ok
    if [ "$rc_g" != 0 ] || [ "$rc_n" != 0 ]; then
        result=FAIL
        note="glibc: $(describe "$rc_g"), numamalloc: $(describe "$rc_n")"
    elif ! diff -r "$WORK/$name/glibc/cmp" "$WORK/$name/numamalloc/cmp" > "$WORK/$name/diff" 2>&1; then
        result=DIFF
        note="outputs differ: $(ls "$WORK/$name/glibc/cmp" | tr '\n' ' ')"
    else
        note="compared: $(ls "$WORK/$name/glibc/cmp" | tr '\n' ' ')"
    fi
    printf '%-9s %-8s %10s s %10s s  %s\n' "$name" "$result" "$t_g" "$t_n" "$note"
    if [ "$result" != ok ]; then
        failed=$((failed + 1))
        for mode in glibc numamalloc; do
            if [ -s "$WORK/$name/$mode/log" ]; then
                echo "  --- $name, $mode: last lines of its output"
                tail -n 15 "$WORK/$name/$mode/log" | sed 's/^/  | /'
            fi
        done
        [ -s "$WORK/$name/diff" ] && { echo "  --- diff (glibc vs numamalloc)"; head -n 30 "$WORK/$name/diff" | sed 's/^/  | /'; }
    fi
    rm -rf "$WORK/$name"
done
total=${#PROGS[@]}
echo "real-programs: $((total - failed)) passed, $failed failed"
[ "$failed" = 0 ]
