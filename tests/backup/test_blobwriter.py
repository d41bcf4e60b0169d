"""``BlobWriter.store_many``: a batch of chunks deduplicated with one index search.

It must decide exactly as :meth:`BlobWriter.store` one chunk at a time does:
a chunk already stored is reused (and reported to ``on_reuse``), one seen
twice in the batch or claimed by another batch is stored once, and the rest
are stored — a wrong "unknown" would store a blob twice, a wrong "known"
would leave a snapshot pointing at nothing.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from deltavault import api
from deltavault.backup.blobwriter import PACKS_IN_FLIGHT, BlobWriter, Chunk
from deltavault.errors import DeltavaultError
from deltavault.repo.packs import BLOB_DATA
from deltavault.repo.repository import Repository
from tests.support.cli import PASSWORD


@pytest.fixture
def repo(tmp_path: Path) -> Repository:
    r = api.init(tmp_path / "repo", PASSWORD.encode(), kdf_memory_kib=8192, kdf_time_cost=1)
    r.load_index()
    return r


def _chunks(blobs: list[bytes]) -> list[Chunk]:
    return [(b, None, None) for b in blobs]


def _commit(repo: Repository, w: BlobWriter) -> None:
    index_file = w.flush()
    if index_file is not None:
        repo.save_index(index_file)


def test_batch_stores_each_new_blob_once_and_reuses_stored_ones(repo: Repository) -> None:
    old = [os.urandom(3000) for _ in range(20)]
    first = BlobWriter(repo, workers=1)
    first.store_many(_chunks(old), BLOB_DATA)
    _commit(repo, first)
    assert first.stats.blobs_added == 20

    reused: list[bytes] = []
    w = BlobWriter(repo, workers=1, on_reuse=reused.append)
    new = [os.urandom(3000) for _ in range(30)]
    batch = [*new, *old[:10], new[0], new[1]]  # stored, new, and repeated in the batch
    ids = w.store_many(_chunks(batch), BLOB_DATA)
    again = w.store_many(_chunks(new[5:8]), BLOB_DATA)  # claimed by the batch before
    _commit(repo, w)

    assert ids == [repo.crypto.blob_id(b) for b in batch]
    assert again == ids[5:8]
    assert w.stats.blobs_added == 30
    assert w.stats.blobs_deduplicated == 10 + 2 + 3
    assert sorted(reused) == sorted(ids[30:40])  # the stored ones, each reported
    for data, bid in zip(batch, ids, strict=True):
        assert len(repo.index.locations(bid)) == 1  # stored exactly once
        assert repo.load_blob(bid) == data


def test_batch_decides_like_store_one_at_a_time(repo: Repository) -> None:
    seed = [os.urandom(2000) for _ in range(8)]
    w0 = BlobWriter(repo, workers=1)
    for b in seed:
        w0.store(b, BLOB_DATA)
    _commit(repo, w0)
    batch = [*seed[:4], *[os.urandom(2000) for _ in range(6)], seed[0]]

    one, many = BlobWriter(repo, workers=1), BlobWriter(repo, workers=1)
    ids_one = [one.store(b, BLOB_DATA) for b in batch]
    ids_many = many.store_many(_chunks(batch), BLOB_DATA)
    one.abort()
    many.abort()
    assert ids_one == ids_many
    assert (one.stats.blobs_added, one.stats.blobs_deduplicated) == \
        (many.stats.blobs_added, many.stats.blobs_deduplicated) == (6, 5)


@pytest.fixture
def small_packs(tmp_path: Path) -> Repository:
    r = api.init(tmp_path / "small", PASSWORD.encode(), pack_size=1 << 16, kdf_memory_kib=8192,
                 kdf_time_cost=1)
    r.load_index()
    return r


def test_a_slow_upload_holds_back_the_producers_after_one_finished_pack(
        small_packs: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each finished pack is a pack-sized buffer: one may wait, beside the one being filled."""
    repo = small_packs
    gate, written = threading.Event(), []
    real = repo.objects.write_pack_file

    def slow(pack_id: str, fh: BinaryIO, size: int) -> None:
        assert gate.wait(30)
        written.append(pack_id)
        real(pack_id, fh, size)

    monkeypatch.setattr(repo.objects, "write_pack_file", slow)
    w = BlobWriter(repo, workers=1)
    blobs = [os.urandom(20_000) for _ in range(40)]  # incompressible: ~3 a 64 KiB pack
    producer = threading.Thread(target=lambda: [w.store(b, BLOB_DATA) for b in blobs])
    producer.start()
    time.sleep(1.0)
    # the uploader holds pack 1; pack 2 waits for its slot; nothing more was built
    assert producer.is_alive() and not written
    per_pack = -(-(1 << 16) // 20_000)
    assert w.stats.blobs_added <= (1 + PACKS_IN_FLIGHT) * per_pack
    # and what waits is in a spool file, not in memory (only the one written is read back)
    assert w._builder._file is not None and not w._builder._buf
    gate.set()
    producer.join(30)
    _commit(repo, w)
    assert len(written) == w.stats.packs_written >= 40 // per_pack
    for data in blobs:
        assert repo.load_blob(repo.crypto.blob_id(data)) == data


def test_a_failed_upload_stops_a_producer_waiting_for_its_slot(
        small_packs: Repository, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = small_packs

    def broken(pack_id: str, fh: BinaryIO, size: int) -> None:
        time.sleep(0.3)
        raise OSError("disk full")

    monkeypatch.setattr(repo.objects, "write_pack_file", broken)
    w = BlobWriter(repo, workers=1)
    with pytest.raises(DeltavaultError, match="disk full"):
        for _ in range(200):
            w.store(os.urandom(20_000), BLOB_DATA)
    with pytest.raises(DeltavaultError):
        w.flush()
