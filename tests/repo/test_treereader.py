"""Trees read ahead for a walk: the same trees as a plain read, bounded, errors when asked."""

from __future__ import annotations

from pathlib import Path

import pytest

from deltavault import api
from deltavault.errors import DeltavaultError, IntegrityError
from deltavault.repo.index import BlobLocation
from deltavault.repo.layout import pack_key
from deltavault.repo.repository import Repository
from deltavault.repo.tree import Tree
from deltavault.repo.treereader import TreeReader
from deltavault.repo.walk import load_tree


@pytest.fixture
def repo_and_root(tmp_path: Path) -> tuple[Repository, bytes]:
    src = tmp_path / "src"
    for d in range(4):
        for e in range(3):
            sub = src / f"d{d}" / f"e{e}"
            sub.mkdir(parents=True)
            for f in range(3):
                (sub / f"f{f}.txt").write_text(f"{d}/{e}/{f}\n")
    repo = api.init(tmp_path / "repo", b"pw", kdf_memory_kib=8192, kdf_time_cost=1)
    snap = api.backup(repo, [src]).snapshot
    return repo, bytes.fromhex(snap.tree)


def _walk(reader: TreeReader, root: bytes) -> list[tuple[bytes, Tree]]:
    """Depth first, as check walks: each directory's subdirectories expected when opened."""
    out: list[tuple[bytes, Tree]] = []
    todo = [root]
    while todo:
        tid = todo.pop()
        tree = reader.tree(tid)
        out.append((tid, tree))
        subs = [n.subtree for n in tree.nodes if n.type == "dir" and n.subtree is not None]
        reader.expect(subs)
        todo.extend(reversed(subs))
    return out


def test_a_walk_reads_every_tree_once_and_gets_what_a_plain_read_gets(
        repo_and_root: tuple[Repository, bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    repo, root = repo_and_root
    reads: list[bytes] = []
    real = Repository.read_blob

    def counting(self: Repository, loc: BlobLocation, *, cache: bool = True) -> bytes:
        reads.append(loc.id)
        return real(self, loc, cache=cache)

    monkeypatch.setattr(Repository, "read_blob", counting)
    with TreeReader(repo) as reader:
        walked = _walk(reader, root)
    assert len(walked) == 1 + 1 + 4 + 12  # root, src, d*, e*
    assert sorted(reads) == sorted(tid for tid, _ in walked)  # the root too, read now
    for tid, tree in walked:
        assert tree == load_tree(repo, tid)


def test_read_ahead_stays_within_its_budget(repo_and_root: tuple[Repository, bytes]) -> None:
    repo, root = repo_and_root
    reader = TreeReader(repo, budget=1)  # one tree ahead at most
    seen: list[int] = []
    real_top_up = reader._top_up

    def watched() -> None:
        real_top_up()
        seen.append(len(reader._ahead))

    reader._top_up = watched  # type: ignore[method-assign]
    with reader:
        assert len(_walk(reader, root)) == 18
    assert seen and max(seen) == 1


def test_a_damaged_tree_fails_when_the_walk_asks_for_it(
        repo_and_root: tuple[Repository, bytes]) -> None:
    repo, root = repo_and_root
    with TreeReader(repo) as reader:
        src = reader.tree(root).nodes[0].subtree
        assert src is not None
        dirs = [n.subtree for n in reader.tree(src).nodes if n.subtree is not None]
    victim = repo.locate(dirs[2])
    path = Path(repo.store.root) / pack_key(victim.pack_id)  # type: ignore[attr-defined]
    data = bytearray(path.read_bytes())
    data[victim.offset + victim.length // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with TreeReader(repo) as reader:
        reader.expect(dirs)  # read ahead, the damaged one among them
        assert reader.tree(dirs[0]) == load_tree(repo, dirs[0])
        assert reader.tree(dirs[1]) == load_tree(repo, dirs[1])
        with pytest.raises(IntegrityError):
            reader.tree(dirs[2])
        reader.skip(dirs[3])
        assert not reader._ahead


def test_an_unknown_tree_is_refused(repo_and_root: tuple[Repository, bytes]) -> None:
    repo, _root = repo_and_root
    with TreeReader(repo) as reader:
        reader.expect([b"\x07" * 32])  # the index cannot place it: not read ahead
        assert not reader._ahead
        with pytest.raises(DeltavaultError, match="not in any index"):
            reader.tree(b"\x07" * 32)
