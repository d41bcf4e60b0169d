"""A 10,000-level directory chain backs up through the real CLI (issue 13).

The chain's path is ~20,000 characters, far past PATH_MAX: the walker must
be iterative (no RecursionError) and reach deep entries relative to an
ancestor's descriptor.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from deltavault import api
from deltavault.repo.tree import Tree
from tests.support.cli import KDF_ARGS, PASSWORD, Cli

DEPTH = 10_000
_DIR = os.O_RDONLY | os.O_DIRECTORY


def _chain(root: Path, depth: int) -> None:
    """``d/d/d/...`` built relative to the parent's descriptor, a file every 1,000 levels."""
    root.mkdir(parents=True)
    fd = os.open(root, _DIR)
    try:
        for level in range(depth):
            if level % 1000 == 0:
                _write(fd, "f", f"level {level}\n".encode())
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", _DIR, dir_fd=fd)
            os.close(fd)
            fd = nfd
        _write(fd, "leaf", b"bottom\n")
    finally:
        os.close(fd)


def _write(dir_fd: int, name: str, data: bytes) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dir_fd)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def test_ten_thousand_levels_back_up(cli: Cli) -> None:
    # outside pytest's tmp_path: its clean-up of old runs recurses per level and
    # would fail on a chain left behind by an interrupted run
    top = Path(tempfile.mkdtemp(prefix="deltavault-deep-"))
    src = top / "deep"
    try:
        _chain(src, DEPTH)
        _backs_up(cli, src)
    finally:
        if src.exists():
            remove_chain(src)
        top.rmdir()


def _backs_up(cli: Cli, src: Path) -> None:
    cli("init", *KDF_ARGS)
    first = cli.json("backup", src)
    assert first["errors"] == [] and first["summary"]["dirs"] == DEPTH + 1
    assert first["summary"]["files_new"] == DEPTH // 1000 + 1
    again = cli.json("backup", src)  # the parent's metadata cache at every level
    assert again["summary"]["files_unmodified"] == DEPTH // 1000 + 1
    assert again["bytes_added"] == 0

    # follow the chain in the stored trees, iteratively, down to the leaf
    repo = api.open(cli.repo, PASSWORD.encode())
    repo.load_index()
    snap = repo.find_snapshot(first["snapshot_id"])
    tree = Tree.decode(repo.load_blob(bytes.fromhex(snap.tree)))
    node = tree.find(b"deep")
    assert node is not None and node.subtree is not None
    for level in range(DEPTH + 1):
        tree = Tree.decode(repo.load_blob(node.subtree))
        names = sorted(n.name for n in tree.nodes)
        if level == DEPTH:
            assert names == [b"leaf"]
            leaf = tree.find(b"leaf")
            assert leaf is not None
            assert b"".join(repo.load_blob(b) for b in leaf.content) == b"bottom\n"
            break
        assert names == ([b"d", b"f"] if level % 1000 == 0 else [b"d"])
        node = tree.find(b"d")
        assert node is not None and node.subtree is not None



def remove_chain(root: Path) -> None:
    """Delete a ``d/d/d/...`` chain bottom-up through descriptors.

    ``shutil.rmtree`` recurses once per level and fails on such a tree (it
    would break pytest's clean-up of old temporary directories).
    """
    fds = [os.open(root, _DIR)]
    try:
        while "d" in os.listdir(fds[-1]):
            fds.append(os.open("d", _DIR, dir_fd=fds[-1]))
        while fds:
            fd = fds.pop()
            for name in os.listdir(fd):
                if name != "d":
                    os.unlink(name, dir_fd=fd)
            os.close(fd)
            if fds:
                os.rmdir("d", dir_fd=fds[-1])
    finally:
        for fd in fds:
            os.close(fd)
    root.rmdir()
