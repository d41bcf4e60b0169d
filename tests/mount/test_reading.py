"""Reading files without the kernel: offsets, zeros, the cache and its bound."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from deltavault import api
from deltavault.errors import IntegrityError
from deltavault.mount.cache import ReadCache
from deltavault.mount.files import OpenFile
from deltavault.mount.source import RepositorySource
from deltavault.repo.repository import Repository
from deltavault.repo.walk import find_node
from tests.support.trees import write_random


def _source(repo: Repository, tmp_path: Path) -> tuple[RepositorySource, Path]:
    src = tmp_path / "src"
    src.mkdir()
    # more than twice the largest chunk (4 MiB), so that every repository, whatever its
    # secret gear seed, cuts it into three blobs or more (5 MiB was two, now and then)
    write_random(src / "big.bin", 9 << 20, seed=7)
    (src / "small.txt").write_bytes(b"tiny\n")
    api.backup(repo, [src], snapshot_type="full")
    return RepositorySource(repo), src


def test_random_ranges_equal_the_file(repo: Repository, tmp_path: Path) -> None:
    source, src = _source(repo, tmp_path)
    snap = source.snapshots()[0]
    node = find_node(repo, source.root(snap), "src/big.bin")
    assert len(node.content) > 2
    data = (src / "big.bin").read_bytes()
    cache = ReadCache(64 << 20)
    fh = OpenFile(node, source, cache)
    rng = random.Random(1)
    for _ in range(200):
        offset = rng.randrange(0, len(data) + 100)
        size = rng.choice([1, 4096, 131072, 3 << 20])
        assert fh.read(offset, size) == data[offset : offset + size]
    assert fh.read(len(data), 10) == b""
    assert cache.loads == len(node.content)  # each blob verified once, then served


def test_short_blobs_read_as_zeros_like_restore(repo: Repository, tmp_path: Path) -> None:
    source, _src = _source(repo, tmp_path)
    node = find_node(repo, source.root(source.snapshots()[0]), "src/small.txt")
    node.size = 9  # a tree claiming more bytes than its blobs hold: restore leaves zeros
    assert OpenFile(node, source, ReadCache(1 << 20)).read(0, 100) == b"tiny\n\0\0\0\0"


def test_cache_is_bounded_and_single_flight() -> None:
    cache = ReadCache(1000)
    for i in range(50):
        cache.get(bytes([i]), lambda i=i: bytes(200))  # type: ignore[misc]
    assert cache.size <= 1000
    calls = []
    gate = threading.Event()

    def slow() -> bytes:
        calls.append(1)
        gate.wait(5)
        return b"x" * 10

    results: list[bytes] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get(b"k", slow)))
               for _ in range(8)]
    for t in threads:
        t.start()
    gate.set()
    for t in threads:
        t.join()
    assert results == [b"x" * 10] * 8 and len(calls) == 1


def test_failed_load_is_not_remembered() -> None:
    cache = ReadCache(1000)
    attempts = []

    def broken() -> bytes:
        attempts.append(1)
        raise IntegrityError("blob does not match its id")

    for _ in range(3):
        with pytest.raises(IntegrityError):
            cache.get(b"k", broken)
    assert len(attempts) == 3
    assert cache.get(b"k", lambda: b"ok") == b"ok"
