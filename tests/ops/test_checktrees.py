"""check walks each directory tree once per check, and still names every damaged snapshot."""

from __future__ import annotations

from pathlib import Path

import pytest

from deltavault import api
from deltavault.ops.check import run_check
from deltavault.repo.repository import Repository
from deltavault.repo.tree import Tree
from deltavault.repo.treereader import TreeReader


def _tree(root: Path) -> None:
    for d in range(6):
        sub = root / f"d{d}" / "inner"
        sub.mkdir(parents=True)
        for f in range(5):
            (sub / f"f{f}.txt").write_text(f"{d}/{f}\n" * (f + 1))
            (root / f"d{d}" / f"g{f}.bin").write_bytes(bytes([d, f]) * 500)


@pytest.fixture
def repo_two_identical(tmp_path: Path) -> tuple[Repository, list[str]]:
    src = tmp_path / "src"
    _tree(src)
    repo = api.init(tmp_path / "repo", b"pw", kdf_memory_kib=8192, kdf_time_cost=1)
    ids = [api.backup(repo, [src]).snapshot.id for _ in range(2)]  # no change: same trees
    return repo, ids


def _count_tree_loads(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    loaded: list[bytes] = []
    real = TreeReader.tree

    def counting(reader: TreeReader, tree_id: bytes) -> Tree:
        loaded.append(tree_id)
        return real(reader, tree_id)

    monkeypatch.setattr(TreeReader, "tree", counting)
    return loaded


def test_identical_snapshots_cost_one_walk(repo_two_identical: tuple[Repository, list[str]],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    repo, _ids = repo_two_identical
    loaded = _count_tree_loads(monkeypatch)
    report = run_check(repo)
    assert report.ok and report.snapshots == 2
    # the root, src, 6 d*, 6 inner: every tree read exactly once for both snapshots
    assert len(loaded) == len(set(loaded)) == 14


def test_a_missing_blob_is_reported_for_every_snapshot_that_needs_it(
        repo_two_identical: tuple[Repository, list[str]], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    repo, ids = repo_two_identical
    victim = next(loc for loc in repo.index.all_locations()
                  if loc.base is None and loc.raw_length == 1000)  # a g*.bin file
    real_locations = repo.index.locations
    for fast_path in ("locate_many", "single_packs"):  # send every blob to `locations`
        monkeypatch.setattr(repo.index, fast_path, lambda blobs: [None] * len(blobs))
    monkeypatch.setattr(repo.index, "locations",
                        lambda blob: [] if blob == victim.id else real_locations(blob))
    loaded = _count_tree_loads(monkeypatch)
    report = run_check(repo)
    missing = [p for p in report.problems if p.kind == "blob"]
    assert {p.object for p in missing} == {victim.id.hex()}
    named = {a.split(":")[0] for p in missing for a in p.affected}
    assert named == {ids[0][:12], ids[1][:12]}
    assert all(a.split(":")[1].endswith(".bin") for p in missing for a in p.affected)
    # the damaged directory and its ancestors are walked again; the others are not
    assert len(loaded) < 2 * 14
