#!/usr/bin/env python3
"""tests/fuzz/mkseeds.py [DIR] - write the hand-made seeds of tests/fuzz/corpus.
   tests/fuzz/mkseeds.py --pack DIR FILE... - pack fuzz-found inputs into a few files.

Each seed is a small program in the input language of tests/fuzz/fuzz_alloc.c (see its
top comment) aimed at one region: size-class edges, medium and large growth, every
alignment, the failure cases, free variants, threads handing blocks over. The committed
files are the output of this script; libFuzzer starts from them (and from
tests/fuzz/regressions). Rerun after changing the input language.
"""
import os
import sys

MALLOC, CALLOC, REALLOC, REALLOCARRAY, POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN, VALLOC, \
    FREE, FREE_SIZED, FREE_REALLOC0, USABLE, HANDOFF, TAKE, RESIZE, BATCH = range(16)

EDGE = [0, 1, 8, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 2048, 3072, 4096, 8192, 12288, 16384,
        24576, 32768, 65536, 131072, 262144, 524288, 1 << 20, 2 << 20, 4 << 20, (1 << 20) + 4096,
        3 << 20, 4000, 40000]
K, M = 1024, 1 << 20


def opb(kind, th=0, var=0):
    return bytes([kind | (th & 3) << 4 | (var & 3) << 6])


def slot(s, hi=0):
    return bytes([(s & 15) | (hi & 15) << 4])


def size(n):
    """the 3 size bytes decoding to n, or to the nearest size at or below n the language has"""
    def enc(c, u):
        return bytes([c, u & 255, u >> 8])
    if n <= 64:
        return enc(0, n)
    if n <= 1024:
        return enc(1, n)
    if n <= 32768:
        return enc(2, n)
    for i, e in enumerate(EDGE):
        d = n - e
        if -16 <= d <= 15:
            return enc(3 | (d + 16) << 3, i)
    if 32768 <= n <= 32768 + 15 * 65535 and (n - 32768) % 15 == 0:
        return enc(4, (n - 32768) // 15)
    if M <= n <= M + 48 * 65535 and (n - M) % 48 == 0:
        return enc(5, (n - M) // 48)
    if n % 4096 == 0 and n <= 1024 * 4096:
        return enc(7, n // 4096)
    base = n - 4 * M
    if base >= 0 and base % 4096 < 32 and base // 4096 < 7169:
        return enc(6 | (base % 4096) << 3, base // 4096)
    if n < M:
        return enc(4, min((n - 32768) // 15, 65535))
    if n < 4 * M:
        return enc(5, (n - M) // 48)
    return enc(6, min((n - 4 * M) // 4096, 7168))


def align(a, eq=False):
    """the align byte for power of two a (or an index into the odd ones: ('odd', i))"""
    if isinstance(a, tuple):
        b = 24 + a[1]
    else:
        b = a.bit_length() - 1
        assert 1 << b == a and b < 24
    return bytes([b | (32 if eq else 0)])


def alloc(kind, s, n, th=0, var=0, hi=0):
    return opb(kind, th, var) + slot(s, hi) + size(n)


def aligned(kind, s, a, n, th=0, var=0, eq=False):
    return opb(kind, th, var) + slot(s) + align(a, eq) + size(n)


def one(kind, s, th=0, var=0, hi=0):
    return opb(kind, th, var) + slot(s, hi)


def resize(s, mode, d, th=0):
    return opb(RESIZE, th, mode) + slot(s) + bytes([d])


def batch(n, count, var=0, th=0):
    return opb(BATCH, th, var) + size(n) + bytes([count - 1])


def seeds():
    out = {}
    # every small size class edge, each block checked through usable and freed
    p = b"\0"
    for i, n in enumerate([0, 1, 15, 16, 17, 31, 32, 33, 48, 64, 65, 127, 128, 129, 1000, 1024, 1025,
                           2048, 3072, 4095, 4096, 4097, 8192, 12288, 16383, 16384, 24576, 32767, 32768]):
        p += alloc(MALLOC, i & 15, n) + one(USABLE, i & 15)
    out["small-class-edges"] = p
    # the 32K / medium / 1M boundaries, calloc'd and realloc'd across them
    p = b"\0"
    for i, n in enumerate([32768, 32769, 40000, 65536, 131072, 262144, 524288, M - 1, M, M + 1]):
        p += alloc(CALLOC, i, n) + alloc(REALLOC, i, n * 2 if n * 2 <= 4 * M else n) + one(FREE, i)
    out["medium-large-edges"] = p
    # a small block grown through every region and back down (realloc keeps the contents)
    p = b"\0" + alloc(MALLOC, 0, 24)
    for n in [100, 4000, 32768, 40000, 262144, M + 48, 2 * M, 12 * M + 4096, 3 * M, 40000, 64, 1]:
        p += alloc(REALLOC, 0, n)
    out["realloc-through-regions"] = p + alloc(REALLOC, 0, 0)
    # large blocks resized in place or moved (mremap), relative steps
    p = b"\0" + alloc(MALLOC, 1, 2 * M)
    for mode, d in [(0, 1), (0, 255), (1, 3), (2, 200), (3, 0), (1, 255), (3, 7), (0, 16)]:
        p += resize(1, mode, d)
    p += alloc(MALLOC, 2, 24 * M) + alloc(REALLOC, 2, 8 * M) + alloc(REALLOC, 2, 32 * M)
    out["large-resize"] = p + one(FREE, 1) + one(FREE, 2)
    # every power of two alignment with each aligned function, some with size == alignment
    p = b"\0"
    for e in range(0, 24):
        a = 1 << e
        kind = [POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN][e % 3]
        p += aligned(kind, e & 15, a, 100 + e * 1000, eq=e in (8, 9, 10, 12, 16, 20))
    out["aligned-powers"] = p
    # the shape mimalloc 2.0.9 misaligns: 256/512/1024 with size == alignment, each function, medium too
    p = b"\0"
    for i, a in enumerate([256, 512, 1024, 4096, 65536]):
        for j, kind in enumerate([POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN]):
            p += aligned(kind, (i * 3 + j) & 15, a, 0, eq=True)
        p += aligned(MEMALIGN, 15, a, 40000 + i * 15 * 1000)
    out["aligned-size-equals-alignment"] = p
    # odd alignments: EINVAL, rounding up, the DR 460 aligned_alloc case, 2^62+1, 2^41
    p = b"\0"
    for i in range(8):
        for kind in (POSIX_MEMALIGN, ALIGNED_ALLOC, MEMALIGN):
            p += aligned(kind, i, ("odd", i), 4096 + i)
    out["aligned-odd"] = p
    # sizes > PTRDIFF_MAX and overflowing products: NULL with ENOMEM, blocks left intact
    p = b"\0" + alloc(MALLOC, 3, 100) + alloc(MALLOC, 4, 2 * M)
    for u in range(6):
        p += opb(MALLOC, 0, 3) + slot(5) + bytes([0, u, 0])
        p += opb(REALLOC, 0, 3) + slot(3 + (u & 1)) + bytes([0, u, 0])
        p += opb(VALLOC, 0, 3) + slot(6) + bytes([0, u, 0])
        p += opb(ALIGNED_ALLOC, 0, 3) + slot(7) + align(64) + bytes([0, u, 0])
        p += opb(POSIX_MEMALIGN, 0, 3) + slot(7) + align(4096) + bytes([0, u, 0])
    for hi in (0, 1, 15):
        p += alloc(CALLOC, 8, 100, var=2, hi=hi) + alloc(CALLOC, 8, 100, var=3, hi=hi)
        p += alloc(REALLOCARRAY, 3, 100, var=2, hi=hi) + alloc(REALLOCARRAY, 4, 100, var=3, hi=hi)
    out["overflow-errors"] = p + one(USABLE, 3) + one(USABLE, 4)
    # valloc and pvalloc, small to large
    p = b"\0"
    for i, n in enumerate([0, 1, 4095, 4096, 4097, 40000, M + 48, 3 * M]):
        p += alloc(VALLOC, i, n, var=i & 1)
    out["valloc-pvalloc"] = p
    # every way to free: free, free(NULL), free_sized, free_aligned_sized, realloc(p, 0), reallocarray(p, 0, n)
    p = b"\0"
    for i, n in enumerate([16, 40000, 2 * M]):
        p += alloc(MALLOC, 0, n) + one(FREE_SIZED, 0)
        p += aligned(ALIGNED_ALLOC, 1, 4096, n) + one(FREE_SIZED, 1)
        p += alloc(MALLOC, 2, n) + one(FREE_REALLOC0, 2, var=0)
        p += alloc(CALLOC, 3, n) + one(FREE_REALLOC0, 3, var=2, hi=i)
        p += alloc(MALLOC, 4, n) + one(FREE, 4) + one(FREE, 4, var=1) + one(USABLE, 4, var=1)
    out["free-variants"] = p
    # four threads allocating and handing blocks to each other; takers free, realloc, reuse
    p = b"\3"
    for r in range(4):
        for th in range(4):
            n = [48, 40000, 2 * M, 1000][(th + r) % 4]
            p += alloc(MALLOC, r, n, th=th) + one(HANDOFF, r, th=th, hi=(th + 1) % 4)
            p += one(TAKE, 8 + r, th=th, var=r & 1) + alloc(REALLOC, 8 + r, n + 4096, th=th)
    for th in range(4):
        p += one(TAKE, 12, th=th) + one(FREE, 8, th=th)
    out["threads-handoff"] = p
    # batches: slab refill and flush, medium cache, calloc, sized free, in 2 threads
    p = b"\1"
    for th, (n, c, v) in enumerate([(16, 64, 0), (1024, 64, 1), (40000, 20, 2), (256 * 1024, 8, 3),
                                    (32768, 64, 0), (M + 48, 4, 1), (100, 64, 3), (0, 64, 2)]):
        p += batch(n, c, var=v, th=th & 1)
    out["batches-two-threads"] = p
    # a medium block freed, then the 1 MiB class asked again (the medium cache path)
    p = b"\0"
    for n in [1000000, 960 * K, 100000, 300000]:
        p += alloc(MALLOC, 0, n - (n - 32768) % 15) + one(FREE, 0) + alloc(MALLOC, 1, n + 15 - (n - 32768) % 15)
    out["medium-cache-reuse"] = p
    # malloc_trim while blocks of every region are live in two threads, then all checked
    p = b"\1"
    for th in range(2):
        for i, n in enumerate([24, 3000, 40000, 300000, M + 48 * 100, 6 * M]):
            p += alloc(MALLOC, i, n, th=th)
        p += batch(40000, 8, var=th, th=th) + one(USABLE, 0, th=th, var=2)
        for i in range(6):
            p += one(USABLE, i, th=th)
    out["trim-with-live-blocks"] = p
    # the same sequence on 1..4 threads (header byte), slots reused with replacement
    body = b""
    for i in range(24):
        body += alloc([MALLOC, CALLOC, REALLOC][i % 3], i % 5, [24, 5000, 70000, M + 480][i % 4], th=i)
    for h in range(4):
        out["replace-slots-%dthreads" % (h + 1)] = bytes([h]) + body
    return out


ARGS = {MALLOC: 4, CALLOC: 4, REALLOC: 4, REALLOCARRAY: 4, VALLOC: 4, POSIX_MEMALIGN: 5,
        ALIGNED_ALLOC: 5, MEMALIGN: 5, RESIZE: 2, BATCH: 4}


def ops_of(data):
    """the operation bytes of an input, its last operation completed with zero bytes"""
    body, i = bytearray(), 1
    while i < len(data):
        n = 1 + ARGS.get(data[i] & 15, 1)
        body += data[i:i + n].ljust(n, b"\0")
        i += n
    return bytes(body)


def pack(paths, outdir, limit=2048):
    """Concatenate fuzz-found inputs (e.g. a libFuzzer -merge of build/fuzz/corpus) into
    few files of at most `limit` bytes: inputs with the same thread count (header byte)
    go together, each input's operations whole. The packs cover about what the inputs
    cover (later operations start from the state earlier ones left)."""
    groups = {}
    for path in sorted(paths):
        with open(path, "rb") as f:
            data = f.read()
        if data:
            groups.setdefault(data[0] & 3, []).append(ops_of(data))
    count = 0
    for h, bodies in sorted(groups.items()):
        packs, cur = [], b""
        for b in bodies:
            if cur and 1 + len(cur) + len(b) > limit:
                packs.append(cur)
                cur = b""
            cur += b[:limit - 1]
        packs.append(cur)
        for k, body in enumerate(packs):
            with open(os.path.join(outdir, "fuzz-pack-%dthreads-%d" % (h + 1, k)), "wb") as f:
                f.write(bytes([h]) + body)
            count += 1
    print("mkseeds: %d inputs packed into %d files in %s" % (sum(map(len, groups.values())), count, outdir))


def main():
    if len(sys.argv) > 2 and sys.argv[1] == "--pack":
        pack(sys.argv[3:], sys.argv[2])
        return
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "corpus")
    os.makedirs(d, exist_ok=True)
    for name, data in sorted(seeds().items()):
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
    print("mkseeds: %d seeds in %s" % (len(seeds()), d))


if __name__ == "__main__":
    main()
