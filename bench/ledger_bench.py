"""Ledger micro-benchmark: append rate, and proofs in a 10-million-entry tree.

Run: PYTHONPATH=src python bench/ledger_bench.py [--leaves 10000000] [--batches 100]

Numbers are printed, never asserted. The big tree's tiles are built once in
memory with the same code the ledger uses (build_tiles), then proofs are
generated through TileStore with a counting store, so the tile reads a proof
costs are measured, not assumed.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from collections.abc import Iterator

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deltavault.errors import ObjectExists, ObjectNotFound, VersionConflict
from deltavault.ledger.log import Ledger
from deltavault.ledger.merkle import inclusion_proof, leaf_hash, verify_inclusion
from deltavault.ledger.note import Checkpoint, NoteSigner, sign_checkpoint
from deltavault.ledger.proof import ProofFile
from deltavault.ledger.storage import TileStore
from deltavault.ledger.tiles import build_tiles, encode_tile, tail_tiles, tile_key
from deltavault.store.base import ByteRange, ObjectInfo, Store
from deltavault.store.local import LocalStore


class DictStore(Store):
    """In-memory store counting reads (bench only)."""

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}
        self.reads = 0

    def location(self) -> str:
        return "memory"

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        self.reads += 1
        try:
            return self.objects[key]
        except KeyError:
            raise ObjectNotFound(key) from None

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        return self.get(key), str(hash(self.objects[key]))

    def put(self, key: str, data: bytes) -> None:
        if key in self.objects:
            raise ObjectExists(key)
        self.objects[key] = data

    def replace(self, key: str, data: bytes, expected_version: str | None) -> str:
        current = str(hash(self.objects[key])) if key in self.objects else None
        if current != expected_version:
            raise VersionConflict(key)
        self.objects[key] = data
        return str(hash(data))

    def stat(self, key: str) -> ObjectInfo:
        if key not in self.objects:
            raise ObjectNotFound(key)
        return ObjectInfo(key, len(self.objects[key]), str(hash(self.objects[key])))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return iter([self.stat(k) for k in self.objects if k.startswith(prefix)])

    def delete(self, key: str) -> None:
        self.objects.pop(key)


def bench_append(store: Store, label: str, batches: int) -> None:
    key = Ed25519PrivateKey.from_private_bytes(bytes(32))
    ledger = Ledger.open(store, "bench.example/log", signer=key)
    ledger.append([b"warm-up"])
    t0 = time.perf_counter()
    for b in range(batches):
        ledger.append([b'{"type":"journal","n":%d}' % (b * 1000 + i) for i in range(1000)])
    dt = time.perf_counter() - t0
    print(f"append {label}: {batches * 1000 / dt:,.0f} entries/s "
          f"({dt / batches * 1000:.1f} ms per batch of 1000)")  # fmt: skip


def build_big_tree(n: int) -> tuple[DictStore, bytes]:
    store = DictStore()
    size, step = 0, 1 << 16
    t0 = time.perf_counter()
    while size < n:
        count = min(step, n - size)
        hashes = [leaf_hash(i.to_bytes(8, "big")) for i in range(size, size + count)]
        tails = {}
        for level, index, width in tail_tiles(size):
            data = store.objects[tile_key(level, index, width)]
            tails[level] = [data[i : i + 32] for i in range(0, len(data), 32)]
        for t in build_tiles(size, tails, hashes):
            store.objects[t.key] = encode_tile(t.hashes)
        size += count
    root = TileStore(store).root(n)
    print(f"built tiles of a {n:,}-leaf tree in {time.perf_counter() - t0:.1f} s "
          f"({len(store.objects):,} tile objects)")  # fmt: skip
    return store, root


def bench_proofs(n: int) -> None:
    store, root = build_big_tree(n)
    signer = NoteSigner("bench.example/log", Ed25519PrivateKey.from_private_bytes(bytes(32)))
    checkpoint = sign_checkpoint(Checkpoint(signer.name, n, root), signer).to_bytes()
    for index in (0, n // 3, n - 1):
        tiles = TileStore(store)  # cold cache
        store.reads = 0
        t0 = time.perf_counter()
        proof = inclusion_proof(tiles.node_reader(n), index, n)
        gen = time.perf_counter() - t0
        reads = store.reads
        t0 = time.perf_counter()
        for _ in range(100):
            verify_inclusion(index, n, leaf_hash(index.to_bytes(8, "big")), proof, root)
        ver = (time.perf_counter() - t0) / 100
        text = ProofFile(index, tuple(proof), checkpoint).to_text()
        print(f"inclusion proof leaf {index:,} of {n:,}: generate {gen * 1000:.2f} ms "
              f"({reads} tile reads, cold), verify {ver * 1e6:.0f} µs, "
              f"{len(proof)} hashes = {len(proof) * 32} bytes, tlog-proof file "
              f"{len(text)} bytes")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leaves", type=int, default=10_000_000)
    parser.add_argument("--batches", type=int, default=100)
    args = parser.parse_args()
    hashlib.sha256()  # load OpenSSL before timing
    with tempfile.TemporaryDirectory(dir="/var/tmp") as d:
        bench_append(LocalStore(d, create=True), "LocalStore on disk (fsync)", args.batches)
    with tempfile.TemporaryDirectory(dir="/dev/shm") as d:
        bench_append(LocalStore(d, create=True), "LocalStore on tmpfs", args.batches)
    bench_append(DictStore(), "in-memory store", args.batches)
    bench_proofs(args.leaves)


if __name__ == "__main__":
    main()
