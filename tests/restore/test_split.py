"""Cutting a snapshot's top into units: every entry exactly once, the walk bounded."""

from __future__ import annotations

from pathlib import Path

import pytest

from deltavault import api
from deltavault.repo.walk import load_tree
from deltavault.restore.fsdir import Dir, DirTable
from deltavault.restore.split import split_tree


def _source(root: Path) -> Path:
    """Files at every level, a wide level, a deep chain, an empty directory."""
    for top in range(3):
        for sub in range(4):
            d = root / f"t{top}" / f"s{sub}"
            d.mkdir(parents=True)
            for f in range(3):
                (d / f"f{f}").write_bytes(f"{top}/{sub}/{f}\n".encode())
        for f in range(5):
            (root / f"t{top}" / f"loose{f}").write_bytes(b"loose\n")
    (root / "deep" / "a" / "b" / "c").mkdir(parents=True)
    (root / "deep" / "a" / "b" / "c" / "leaf").write_bytes(b"leaf\n")
    (root / "empty").mkdir()
    (root / "top.txt").write_bytes(b"top\n")
    return root


def _path(d: Dir, name: bytes | None = None) -> bytes:
    return b"/".join([*d.parts(), name] if name is not None else d.parts())


@pytest.mark.parametrize("want", [1, 2, 8, 40, 1000])
def test_units_and_made_directories_cover_each_entry_once(repo: api.Repository,
                                                          tmp_path: Path, want: int) -> None:
    snap = api.backup(repo, [_source(tmp_path / "src")]).snapshot
    target = tmp_path / "t"
    target.mkdir()
    table = DirTable()
    try:
        split = split_tree(repo, bytes.fromhex(snap.tree), table.root(target), want=want,
                           files_per_unit=2)
        made = [_path(m.dir) for m in split.made]
        covered = [_path(u.dir, n.name) for u in split.units for n in u.nodes]
        assert len(covered) == len(set(covered))
        assert not set(covered) & set(made)
        # every directory made was entered: its entries are units or made in turn
        for m in split.made:
            assert m.node.subtree is not None
            names = {n.name for n in load_tree(repo, m.node.subtree).nodes}
            assert names == {p.rsplit(b"/", 1)[-1] for p in covered + made
                             if _parent(p) == _path(m.dir)}
            assert (target / m.dir.path()).is_dir()
        # the units reach everything: each path of the snapshot is in a unit or below one
        everything = {p.encode() for p in _listing(tmp_path / "src", "src")}
        below = {p for p in everything
                 if any(p == c or p.startswith(c + b"/") for c in covered)}
        assert everything == below | set(made)
        assert all(len(u.nodes) <= 2 for u in split.units)
        dirs_in_units = sum(n.type == "dir" for u in split.units for n in u.nodes)
        if want <= 12:  # reachable: root(1) -> src(4) -> t*(12 + deep chain)
            assert dirs_in_units >= want
    finally:
        table.close()


def _parent(path: bytes) -> bytes:
    return path.rsplit(b"/", 1)[0] if b"/" in path else b""


def _listing(root: Path, top: str) -> list[str]:
    return [top] + [f"{top}/{p.relative_to(root)}" for p in root.rglob("*")]


def test_the_walk_reads_at_most_max_trees(repo: api.Repository, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "src"
    for i in range(30):
        (src / f"d{i:02d}" / "x").mkdir(parents=True)
        (src / f"d{i:02d}" / "x" / "f").write_bytes(b"f\n")
    snap = api.backup(repo, [src]).snapshot
    loads: list[bytes] = []
    from deltavault.restore import split as split_module
    real = split_module.load_tree

    def counting(r: api.Repository, tree_id: bytes, **kw: bool):  # type: ignore[no-untyped-def]
        loads.append(tree_id)
        return real(r, tree_id, **kw)

    monkeypatch.setattr(split_module, "load_tree", counting)
    target = tmp_path / "t"
    target.mkdir()
    table = DirTable()
    try:
        split = split_tree(repo, bytes.fromhex(snap.tree), table.root(target), want=1000,
                           max_trees=10)
    finally:
        table.close()
    # root and src are read; src's 30 directories would pass the bound: not entered
    assert len(loads) == 2
    assert len(split.units) == 30 and len(split.made) == 1
