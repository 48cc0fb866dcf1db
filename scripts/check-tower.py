#!/usr/bin/env python3
"""scripts/check-tower.py — the library's call graph must be a tower.

No file may use a function or variable of a file that (directly or through others)
uses it back. From each object in the directory given (build/obj), `nm` lists the
symbols it defines and the ones it needs; an edge A -> B means A needs a symbol B
defines. Any cycle (a strongly connected group of two or more files) is printed with
the symbols that tie it, and the check fails. On success it prints the floors, from
the ground up: each file sits one floor above the highest file it uses.

    scripts/check-tower.py build/obj          (make check runs it)
"""
import os
import subprocess
import sys


def symbols(obj):
    out = subprocess.run(["nm", obj], check=True, capture_output=True, text=True).stdout
    defined, needed = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            needed.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBRVWtdbr" and parts[1].isupper():
            defined.add(parts[2])
    return defined, needed


def sccs(graph):
    """Tarjan's strongly connected components."""
    index, low, on, stack, out, counter = {}, {}, set(), [], [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main():
    if len(sys.argv) != 2:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    d = sys.argv[1]
    objs = sorted(f for f in os.listdir(d) if f.endswith(".o"))
    if not objs:
        print(f"check-tower: no objects in {d} (build first)", file=sys.stderr)
        return 2
    info = {o[:-2]: symbols(os.path.join(d, o)) for o in objs}
    owner = {}
    for name, (defined, _) in info.items():
        for sym in defined:
            owner[sym] = name
    graph = {name: set() for name in info}
    why = {}
    for name, (_, needed) in info.items():
        for sym in needed:
            other = owner.get(sym)
            if other and other != name:
                graph[name].add(other)
                why.setdefault((name, other), []).append(sym)
    bad = [c for c in sccs(graph) if len(c) > 1]
    if bad:
        for comp in bad:
            print("check-tower: these files use each other (a circle): " + ", ".join(sorted(comp)))
            for a in sorted(comp):
                for b in sorted(graph[a] & set(comp)):
                    print(f"    {a}.c -> {b}.c: {', '.join(sorted(why[(a, b)])[:6])}")
        return 1
    floor = {}

    def height(v):
        if v not in floor:
            floor[v] = 1 + max((height(w) for w in graph[v]), default=-1)
        return floor[v]

    for v in graph:
        height(v)
    top = max(floor.values())
    print(f"check-tower: {len(graph)} files, no circles; floors from the ground up:")
    for h in range(top + 1):
        print(f"    {h:2d}  " + " ".join(sorted(v for v in floor if floor[v] == h)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
