#!/usr/bin/env python3
"""tests/real/pywork.py — an allocation-heavy Python workload with fixed output.

Run by scripts/real-programs.sh with and without the preload; the two outputs must
be identical. CPython allocates every object through malloc (pymalloc arenas of
256 KiB, and malloc directly for anything over 512 bytes), so dicts of strings and
lists, JSON round trips, sorting and joins churn every size range. Everything is
seeded; nothing printed depends on addresses, time or hash randomisation (set
PYTHONHASHSEED=0 too, and only insertion-ordered dicts and sorted data are printed).
Usage: pywork.py [SCALE]  (default 1: about 5 s on this machine).
"""
import hashlib
import json
import random
import sys


def digest(text):
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def build(rng, n):
    """a dict of n records: strings, lists of ints, nested dicts"""
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 12)))
             for _ in range(5000)]
    data = {}
    for i in range(n):
        key = "%s-%06d" % (rng.choice(words), i)
        data[key] = {
            "id": i,
            "name": " ".join(rng.choice(words) for _ in range(rng.randint(1, 6))),
            "tags": [rng.choice(words) for _ in range(rng.randint(0, 8))],
            "values": [rng.randint(-10**6, 10**6) for _ in range(rng.randint(1, 40))],
            "blob": rng.choice(words) * rng.randint(1, 200),
        }
    return data, words


def main():
    scale = int(sys.argv[1]) if len(sys.argv) > 1 else 1
    rng = random.Random(20240611)
    out = []
    for rnd in range(3 * scale):
        data, words = build(rng, 30000)
        text = json.dumps(data, sort_keys=True)
        out.append("round %d: %d records, json %d bytes, sha %s" % (rnd, len(data), len(text), digest(text)))
        back = json.loads(text)
        assert back == data, "json round trip changed the data"

        # sorting records by several keys, and sorting strings
        recs = sorted(back.values(), key=lambda r: (len(r["tags"]), sum(r["values"]), r["name"]))
        out.append("  first %s last %s" % (recs[0]["name"][:30], recs[-1]["name"][:30]))
        names = sorted(r["name"] for r in recs)
        out.append("  names sha %s" % digest("\n".join(names)))

        # word counts, string building and joins
        counts = {}
        for r in recs:
            for t in r["tags"]:
                counts[t] = counts.get(t, 0) + 1
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
        out.append("  top tags " + ", ".join("%s=%d" % kv for kv in top))
        parts = []
        for r in recs[:20000]:
            parts.append("|".join([r["name"], ",".join(r["tags"]), str(len(r["blob"]))]))
        joined = "\n".join(parts)
        out.append("  joined %d chars sha %s" % (len(joined), digest(joined)))

        # lists that grow and shrink, slicing, set algebra
        big = []
        for r in recs:
            big.extend(r["values"])
            if len(big) > 200000:
                del big[: len(big) // 2]
        a = set(words[: len(words) // 2])
        b = set(w[::-1] for w in words)
        out.append("  list %d sum %d; sets %d %d %d" % (len(big), sum(big), len(a & b), len(a | b), len(a - b)))
        del data, back, recs, names, counts, parts, joined, big
    print("\n".join(out))


if __name__ == "__main__":
    main()
