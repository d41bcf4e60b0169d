"""Full, differential and incremental snapshots: exact restores and the depth rules."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from deltavault import api, sampledata
from deltavault.repo.layout import INDEX_PREFIX
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot
from deltavault.repo.walk import walk
from tests.support.trees import differences

PW = b"delta-test"


def _init(path: Path, **kw: object) -> Repository:
    return api.init(path, PW, kdf_memory_kib=8192, kdf_time_cost=1, **kw)  # type: ignore[arg-type]


def _blob_depths(repo: Repository, snap: Snapshot) -> list[int]:
    """Delta depth of every content blob the snapshot references."""
    repo.load_index(force=True)
    depths = []
    for _path, node in walk(repo, bytes.fromhex(snap.tree)):
        for blob in node.content:
            depths.append(repo.depth_of(repo.locate(blob)))  # the copy restore reads
    return depths


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("state") / "trading"
    sampledata.generate(root, scale=0.01, seed=11)
    return root


def test_mixed_chain_restores_every_snapshot_exactly(state: Path, tmp_path: Path) -> None:
    work = tmp_path / "trading"
    shutil.copytree(state, work)
    repo = _init(tmp_path / "repo")
    kinds = ["full", "incr", "incr", "diff", "incr", "full", "diff", "incr", "incr", "incr"]
    copies: list[tuple[str, Path]] = []
    for day, kind in enumerate(kinds):
        if day:
            sampledata.mutate(work, day=day, seed=11)
        snap = api.backup(repo, [work], snapshot_type=kind).snapshot
        assert snap.type == kind
        copy = tmp_path / f"copy{day}"
        shutil.copytree(work, copy, symlinks=True)
        copies.append((snap.id, copy))
    deltas = 0
    for sid, copy in copies:
        out = tmp_path / f"out-{sid[:8]}"
        api.restore(repo, sid, out)
        assert differences(copy, out / "trading") == []
        snap = repo.find_snapshot(sid)
        deltas += int(snap.summary["delta_blobs"])
    assert deltas > 0, "no chunk was stored as a delta"
    assert api.check(repo, read_data=True).ok


def test_full_is_self_contained_and_diff_is_depth_one(state: Path, tmp_path: Path) -> None:
    work = tmp_path / "trading"
    shutil.copytree(state, work)
    repo = _init(tmp_path / "repo")
    api.backup(repo, [work], snapshot_type="full")
    for day in (1, 2, 3):
        sampledata.mutate(work, day=day, seed=11)
        api.backup(repo, [work], snapshot_type="incr")
    sampledata.mutate(work, day=4, seed=11)
    diff = api.backup(repo, [work], snapshot_type="diff").snapshot
    assert diff.summary["delta_blobs"] > 0
    assert max(_blob_depths(repo, diff)) == 1
    sampledata.mutate(work, day=5, seed=11)
    full = api.backup(repo, [work], snapshot_type="full").snapshot
    assert max(_blob_depths(repo, full)) == 0


def test_incremental_chain_is_capped(state: Path, tmp_path: Path) -> None:
    work = tmp_path / "trading"
    shutil.copytree(state, work)
    repo = _init(tmp_path / "repo", max_chain=2)
    api.backup(repo, [work], snapshot_type="full")
    seen = []
    for day in range(1, 6):
        sampledata.mutate(work, day=day, seed=11)
        snap = api.backup(repo, [work], snapshot_type="incr").snapshot
        seen.append(max(_blob_depths(repo, snap)))
    assert max(seen) == 2, seen  # deltas were made, and never deeper than the cap


def test_full_every_turns_incr_into_full(state: Path, tmp_path: Path) -> None:
    work = tmp_path / "trading"
    shutil.copytree(state, work)
    repo = _init(tmp_path / "repo")
    types = []
    for day in range(5):
        if day:
            sampledata.mutate(work, day=day, seed=11)
        types.append(api.backup(repo, [work], full_every=3).snapshot.type)
    assert types == ["full", "incr", "incr", "full", "incr"]


def test_check_reports_a_missing_delta_base(state: Path, tmp_path: Path) -> None:
    work = tmp_path / "trading"
    shutil.copytree(state, work)
    repo = _init(tmp_path / "repo")
    api.backup(repo, [work], snapshot_type="full")
    first_indexes = {i.key for i in repo.store.list(INDEX_PREFIX)}
    sampledata.mutate(work, day=1, seed=11)
    diff = api.backup(repo, [work], snapshot_type="diff").snapshot
    assert diff.summary["delta_blobs"] > 0
    for key in first_indexes:  # the full's index names every base of the diff
        repo.store.delete(key)
    report = api.check(api.open(tmp_path / "repo", PW))
    assert not report.ok
    assert any("not in any index" in p.message for p in report.problems)


def test_moved_content_finds_its_base_by_resemblance() -> None:
    import os

    from deltavault.backup.planner import BaseFile

    chunks = {bytes([i]) * 32: os.urandom(256 * 1024) for i in range(3)}
    ids = list(chunks)
    base = BaseFile([0, 256 * 1024, 512 * 1024], [256 * 1024] * 3, ids, load=chunks.__getitem__)
    moved = bytearray(chunks[ids[0]])
    moved[1000:1010] = b"0123456789"  # chunk 0's content, edited, now at chunk 2's place
    assert base.pick(600 * 1024, len(moved)) == ids[2]  # position alone guesses wrong
    assert base.pick_similar(bytes(moved), 600 * 1024, len(moved)) == ids[0]
    assert base.pick_similar(chunks[ids[1]], 256 * 1024, 256 * 1024) == ids[1]  # lined up
