"""numamalloc benchmarks — a Python program's allocation pattern: build records
(dicts, lists, strings of many sizes), serialise them to JSON and parse them
back, index them in dicts and sort them. CPython serves objects up to 512 bytes
from its own pools, so malloc sees its arenas, larger strings and lists, dict
tables and the JSON buffers: the mix a real interpreter gives an allocator.

    python3 real_json.py [SCALE]
"""
import json
import random
import sys


def main():
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    rounds = max(1, int(4 * scale))
    rng = random.Random(42)
    words = ["".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(3, 40)))
             for _ in range(5000)]
    total = 0
    for r in range(rounds):
        records = []
        for i in range(20000):
            records.append({
                "id": i,
                "name": rng.choice(words),
                "tags": rng.sample(words, rng.randint(0, 8)),
                "text": " ".join(rng.choices(words, k=rng.randint(1, 60))),
                "score": rng.random(),
                "nested": {"a": list(range(rng.randint(0, 30))), "b": rng.choice(words) * rng.randint(1, 20)},
            })
        blob = json.dumps(records)
        back = json.loads(blob)
        index = {}
        for rec in back:
            index.setdefault(rec["name"], []).append(rec)
        back.sort(key=lambda x: (x["name"], x["score"]))
        total += len(blob) + len(index) + sum(len(v) for v in index.values())
        del records, back, index, blob
    print(total)


if __name__ == "__main__":
    main()
