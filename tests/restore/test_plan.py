"""The streaming plan: bounded batches, and a one-file restore that reads only its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from deltavault import api
from deltavault.repo import walk as walk_module
from deltavault.repo.walk import may_contain
from deltavault.restore.fsdir import DirTable
from deltavault.restore.plan import Planner
from deltavault.restore.restorer import RestoreOptions, run_restore


def _tree(root: Path, dirs: int, files: int) -> Path:
    for d in range(dirs):
        (root / f"d{d:02d}" / "sub").mkdir(parents=True)
        for f in range(files):
            (root / f"d{d:02d}" / "sub" / f"f{f:03d}").write_bytes(f"{d}/{f}\n".encode())
    return root


def test_a_one_file_restore_reads_only_the_trees_on_its_path(
        repo: api.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tree(tmp_path / "src", dirs=12, files=5)
    snap = api.backup(repo, [src]).snapshot
    loaded: list[bytes] = []
    real = walk_module.load_tree

    def counting(r: api.Repository, tree_id: bytes, **kw: bool):  # type: ignore[no-untyped-def]
        loaded.append(tree_id)
        return real(r, tree_id, **kw)

    monkeypatch.setattr("deltavault.restore.plan.load_tree", counting)
    target = tmp_path / "one"
    result = run_restore(repo, snap, RestoreOptions(target, include=["src/d07/sub/f003"]),
                         record=False)
    assert result.files == 1
    assert (target / "src" / "d07" / "sub" / "f003").read_bytes() == b"7/3\n"
    assert sorted(p.name for p in (target / "src").iterdir()) == ["d07"]
    # root, src, src/d07, src/d07/sub: not the other 11 directories' trees
    assert len(loaded) == 4


def test_batches_stay_within_their_bounds(repo: api.Repository, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", dirs=6, files=30)
    snap = api.backup(repo, [src]).snapshot
    table = DirTable(max_open=8)
    target = tmp_path / "t"
    target.mkdir()
    root = table.root(target)
    planner = Planner(repo, bytes.fromhex(snap.tree), root, include=[], max_blobs=16,
                      max_dirs=4)
    seen = 0
    try:
        for batch in planner.batches():
            assert batch.blobs <= 16 and len(batch.slices) <= 16
            assert len(batch.pinned) <= 4 + 1  # the cut comes after the entry that fills it
            seen += len(batch.slices)
            batch.unpin()
    finally:
        table.close()
    assert seen == 6 * 30


def test_a_restore_with_few_descriptors_reopens_directories_safely(
        repo: api.Repository, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = _tree(tmp_path / "src", dirs=20, files=3)
    snap = api.backup(repo, [src]).snapshot
    monkeypatch.setattr("deltavault.restore.restorer.DirTable", lambda: DirTable(max_open=4))
    target = tmp_path / "t"
    run_restore(repo, snap, RestoreOptions(target), record=False)
    for d in range(20):
        for f in range(3):
            got = (target / "src" / f"d{d:02d}" / "sub" / f"f{f:03d}").read_bytes()
            assert got == f"{d}/{f}\n".encode()


def test_a_restore_does_not_fill_the_blob_cache_with_its_trees(
        repo: api.Repository, tmp_path: Path) -> None:
    src = _tree(tmp_path / "src", dirs=8, files=2)
    snap = api.backup(repo, [src]).snapshot
    trees = [bytes.fromhex(snap.tree)]
    trees += [n.subtree for _, n in walk_module.walk(repo, trees[0]) if n.subtree is not None]
    assert len(trees) > 10
    repo.cache.clear()
    run_restore(repo, snap, RestoreOptions(tmp_path / "t"), record=False)
    assert [t.hex() for t in trees if repo.cache.get(t) is not None] == []


@pytest.mark.parametrize(("path", "patterns", "expected"), [
    ("src", ["src/a/f"], True),
    ("src/a", ["src/a/f"], True),
    ("src/b", ["src/a/f"], False),
    ("src/b", ["src/*/f"], True),
    ("other", ["src/a/f", "other/x"], True),
    ("x/y/z", ["*.txt"], True),
    ("x", ["y"], False),
    ("", ["anything"], True),
])
def test_may_contain(path: str, patterns: list[str], expected: bool) -> None:
    assert may_contain(path, patterns) is expected
