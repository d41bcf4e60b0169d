"""Synthetic index records and "other hosts" (own client cache) for index tests."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator
from pathlib import Path

from deltavault.repo.index import BlobLocation
from deltavault.repo.packs import PackEntry
from deltavault.repo.repository import Repository

Entries = dict[str, list[PackEntry]]


def entries(n_packs: int, per_pack: int, seed: int, *, delta_share: float = 0.0) -> Entries:
    """Random packs of random blobs (ids as random as keyed hashes are)."""
    rng = random.Random(seed)
    out: Entries = {}
    for _ in range(n_packs):
        blobs = []
        offset = 0
        for _ in range(per_pack):
            length = rng.randrange(40, 5000)
            base = rng.randbytes(32) if rng.random() < delta_share else None
            blobs.append(PackEntry(0, 2 if base else 1, offset, length, length + 7,
                                   rng.randbytes(32), base))
            offset += length
        out[rng.randbytes(32).hex()] = blobs
    return out


def expected(packs: Entries) -> dict[bytes, BlobLocation]:
    """What the index must answer for each blob of ``packs``."""
    return {e.id: BlobLocation(e.id, pid, e.offset, e.length, e.raw_length, e.type, e.codec,
                               e.base)
            for pid, es in packs.items() for e in es}


def assert_finds(repo: Repository, packs: Entries) -> None:
    """Every blob of ``packs`` is found at exactly its location."""
    for bid, loc in expected(packs).items():
        got = repo.index.locations(bid)
        assert got == [loc], (bid.hex(), got, loc)
        assert repo.index.get(bid) == loc


def assert_absent(repo: Repository, packs: Entries) -> None:
    """No blob of ``packs`` is found."""
    for bid in expected(packs):
        assert repo.index.get(bid) is None, bid.hex()


@contextlib.contextmanager
def cache_dir(path: Path) -> Iterator[None]:
    """Resolve client caches under ``path`` while inside (another host's cache)."""
    old = os.environ.get("DELTAVAULT_CACHE_DIR")
    os.environ["DELTAVAULT_CACHE_DIR"] = str(path)
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("DELTAVAULT_CACHE_DIR", None)
        else:
            os.environ["DELTAVAULT_CACHE_DIR"] = old


def host(repo: Repository, cache: Path) -> Repository:
    """The same repository opened by a client whose cache lives in ``cache``."""
    other = Repository(repo.store, repo.config, repo.crypto, repo.key_id)
    with cache_dir(cache):
        other.index_cache()  # binds the directory now
    return other


def same_host(repo: Repository) -> Repository:
    """The same repository opened again by this client (same cache directory)."""
    return Repository(repo.store, repo.config, repo.crypto, repo.key_id)
