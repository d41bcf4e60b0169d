"""The backup pipeline on mixed trees: small files in batches, large ones through the reader.

Every test restores what it backed up and compares it with the source, so a
file whose content ids went to the wrong node, a batch posted twice, or a
directory written before its last file would show as a difference.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from deltavault import api
from deltavault.backup.files import BATCH_FILES, SMALL_FILE
from deltavault.repo.repository import Repository
from tests.support.trees import differences

PW = b"pipeline-test"


def _init(path: Path, **kw: int) -> Repository:
    return api.init(path, PW, kdf_memory_kib=8192, kdf_time_cost=1, **kw)  # type: ignore[arg-type]


def _tree(root: Path) -> None:
    """Many small files over nested directories, a few large ones, arrays, links."""
    rng = np.random.default_rng(5)
    for d in range(6):
        sub = root / f"d{d}" / ("deep" if d % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        for i in range(3 * BATCH_FILES // 4):  # batches span directories
            (sub / f"f{i:03d}.jsonl").write_bytes(
                b'{"px": %d}\n' % i * int(rng.integers(1, 200)))
    (root / "empty").write_bytes(b"")
    (root / "emptydir").mkdir()
    (root / "big.bin").write_bytes(rng.bytes(3 * SMALL_FILE + 12345))
    np.save(root / "book.npy", np.round(rng.normal(100, 1, (3000, 40)), 2))
    np.save(root / "small.npy", np.arange(50, dtype="<f4"))
    os.symlink("big.bin", root / "link")
    (root / "exec.sh").write_bytes(b"#!/bin/sh\n")
    (root / "exec.sh").chmod(0o755)


def _restore(repo: Repository, snap: str, out: Path) -> Path:
    api.restore(repo, snap, out)
    return out / "src"


def test_mixed_tree_restores_exactly_and_no_change_adds_nothing(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    repo = _init(tmp_path / "repo")
    first = api.backup(repo, [src], snapshot_type="full")
    assert first.errors == []
    assert differences(src, _restore(repo, first.snapshot.id, tmp_path / "r1")) == []
    again = api.backup(repo, [src], snapshot_type="incr").snapshot
    assert again.summary["bytes_added"] == 0 and again.summary["files_changed"] == 0
    assert again.tree == first.snapshot.tree  # the same trees, reused as they were


def test_metadata_and_content_changes_are_seen(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    repo = _init(tmp_path / "repo")
    api.backup(repo, [src], snapshot_type="full")
    (src / "d0" / "f000.jsonl").chmod(0o600)            # metadata only
    (src / "d1" / "deep" / "f001.jsonl").write_bytes(b"changed\n")  # content
    (src / "d2" / "f002.jsonl").unlink()                  # removed
    (src / "d3" / "deep" / "new.txt").write_bytes(b"new\n")           # added
    shutil.rmtree(src / "emptydir")
    snap = api.backup(repo, [src], snapshot_type="incr").snapshot
    s = snap.summary
    assert s["files_new"] == 1 and s["files_changed"] >= 1
    assert differences(src, _restore(repo, snap.id, tmp_path / "r2")) == []


def test_special_files_are_recorded_not_read(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    os.mkfifo(src / "d4" / "pipe")  # opening it would block the backup forever
    repo = _init(tmp_path / "repo")
    result = api.backup(repo, [src], snapshot_type="full")
    assert result.errors == []
    restored = _restore(repo, result.snapshot.id, tmp_path / "r3")
    assert (restored / "d4" / "pipe").is_fifo()
    assert differences(src, restored) == []


def test_batched_index_lookup_agrees_with_get(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    repo = _init(tmp_path / "repo")
    api.backup(repo, [src], snapshot_type="full")
    repo.load_index(force=True)
    ids = [loc.id for loc in repo.index.all_locations()]
    ids += [b"\0" * 32, b"\xff" * 32, ids[0][:31] + b"\0"]
    got = repo.index.self_contained_packs(ids)
    for blob, pack in zip(ids, got, strict=True):
        loc = repo.index.get(blob)
        assert pack == (loc.pack_id if loc is not None and loc.base is None else None)


def test_pack_lists_name_every_pack_a_chain_needs(tmp_path: Path) -> None:
    """A delta's base may sit in a pack nothing else of the snapshot uses.

    The book grows each day: its header and last chunk change, its first
    chunk gets a tick, so the previous snapshot's pack is needed only as the
    home of the bases, and the pack list must still name it.
    """
    src = tmp_path / "src"
    src.mkdir()
    rng = np.random.default_rng(9)
    book = np.round(rng.normal(100, 1, (4000, 40)), 2)  # 1.2 MiB: two data chunks
    np.save(src / "book.npy", book)
    repo = _init(tmp_path / "repo", pack_size=1 << 16)
    api.backup(repo, [src], snapshot_type="full")
    for day in range(3):  # deltas on deltas: every base's pack must be listed
        book[day * 7] += 0.01
        book = np.vstack([book, np.round(rng.normal(100, 1, (10, 40)), 2)])
        np.save(src / "book.npy", book)
        snap = api.backup(repo, [src], snapshot_type="incr").snapshot
        assert snap.summary["delta_blobs"] > 0
    report = api.check(repo)
    assert report.problems == []
    assert differences(src, _restore(repo, snap.id, tmp_path / "r4")) == []


def test_backup_and_restore_run_with_small_caches_and_give_the_bound_back(
        tmp_path: Path) -> None:
    """The cache is shrunk for a backup's or a restore's run and restored after,
    also when the backup fails, so a later reader in the process keeps 8 MiB."""
    from deltavault.repo.blobcache import BACKUP_BYTES, DEFAULT_BYTES, RESTORE_BYTES

    src = tmp_path / "src"
    _tree(src)
    repo = _init(tmp_path / "repo")
    seen: list[int] = []

    def probe(_: object) -> None:
        bound = repo.cache.resize(BACKUP_BYTES)
        seen.append(bound)

    api.backup(repo, [src], snapshot_type="full", on_progress=probe)
    assert seen and set(seen) == {BACKUP_BYTES}
    assert repo.cache.resize(DEFAULT_BYTES) == DEFAULT_BYTES
    restored: list[int] = []

    def probe_restore(done: int, total: int) -> None:
        restored.append(repo.cache.resize(RESTORE_BYTES))

    api.restore(repo, "latest", tmp_path / "out", on_progress=probe_restore)
    assert restored and set(restored) == {RESTORE_BYTES}
    assert repo.cache.resize(DEFAULT_BYTES) == DEFAULT_BYTES

    def fail(_: object) -> None:
        raise KeyboardInterrupt

    (src / "more.bin").write_bytes(os.urandom(SMALL_FILE * 2))
    with pytest.raises(KeyboardInterrupt):
        api.backup(repo, [src], snapshot_type="incr", on_progress=fail)
    assert repo.cache.resize(DEFAULT_BYTES) == DEFAULT_BYTES


def test_a_chunk_with_a_delta_base_is_charged_twice_its_size(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While encoded it holds its base decoded and a dictionary copy of it: the
    in-flight budget counts that, so delta-heavy days stay within memory."""
    from deltavault.backup.blobwriter import BlobWriter
    from deltavault.backup.files import DELTA_WEIGHT
    from deltavault.chunk.base import ChunkRef

    src = tmp_path / "src"
    src.mkdir()
    rows = b"".join(b'{"id": %d, "px": %d.25, "qty": %d}\n' % (i, i % 977, i % 31)
                    for i in range(200_000))
    (src / "log.jsonl").write_bytes(rows)
    repo = _init(tmp_path / "repo")
    api.backup(repo, [src], snapshot_type="full")
    (src / "log.jsonl").write_bytes(rows[:1000] + b"inserted line\n" + rows[1000:])
    charged: list[tuple[int, int, bool]] = []
    submit = BlobWriter.submit

    def spy(self: BlobWriter, fn: object, arg: object, nbytes: int) -> None:
        if isinstance(arg, tuple) and len(arg) == 4 and isinstance(arg[2], ChunkRef):
            charged.append((nbytes, arg[2].length, arg[3] is not None))
        submit(self, fn, arg, nbytes)  # type: ignore[arg-type]

    monkeypatch.setattr(BlobWriter, "submit", spy)
    api.backup(repo, [src], snapshot_type="diff")
    assert any(delta for _, _, delta in charged), "no chunk was given a base"
    for nbytes, length, delta in charged:
        assert nbytes == length * (DELTA_WEIGHT if delta else 1)
