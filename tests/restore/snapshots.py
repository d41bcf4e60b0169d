"""Snapshots made through the API from hand-built trees (deep chains, odd names).

The backup walker cannot make a 10,000-level snapshot (its own recursion
limits it, see the backup issue), so restore and check are tested on trees
built blob by blob: one tree per level, each holding one file and the next
level.
"""

from __future__ import annotations

import os
from pathlib import Path

from deltavault.backup.blobwriter import BlobWriter
from deltavault.repo.packs import BLOB_DATA, BLOB_TREE
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot, now_rfc3339, packlist_root
from deltavault.repo.tree import Node, Tree
from deltavault.restore.rmtree import remove_tree

MTIME = 1_700_000_000_000_000_000


def file_node(name: bytes, blobs: list[bytes], size: int, mode: int = 0o644) -> Node:
    """A regular file node with content blobs."""
    return Node(name=name, type="file", mode=mode, mtime_ns=MTIME, size=size, content=blobs)


def dir_node(name: bytes, subtree: bytes, mode: int = 0o755) -> Node:
    """A directory node."""
    return Node(name=name, type="dir", mode=mode, mtime_ns=MTIME, subtree=subtree)


def commit_tree(repo: Repository, w: BlobWriter, root: bytes, top: str = "x") -> str:
    """Flush the writer and commit a snapshot of ``root``; returns the snapshot id."""
    index_file = w.flush()
    if index_file is not None:
        repo.save_index(index_file)
    repo.load_index(force=True)
    packs = sorted(w.stats.written_packs)
    snap = Snapshot(time=now_rfc3339(), hostname="test", username="test", paths=[f"/{top}"],
                    tree=root.hex(), packs_root=packlist_root(packs), packs_count=len(packs))
    return repo.commit_snapshot(snap, packs)


def deep_snapshot(repo: Repository, depth: int, payload: bytes = b"level\n") -> str:
    """A chain ``top/d/d/.../d`` of ``depth`` directories, each with a file ``f``."""
    repo.load_index()
    w = BlobWriter(repo, workers=1)
    blob = w.save_now(payload, BLOB_DATA)
    sub: bytes | None = None
    for _level in range(depth):
        nodes = [file_node(b"f", [blob], len(payload))]
        if sub is not None:
            nodes.append(dir_node(b"d", sub))
        sub = w.save_now(Tree(nodes).encode(), BLOB_TREE)
    assert sub is not None
    root = w.save_now(Tree([dir_node(b"top", sub)]).encode(), BLOB_TREE)
    return commit_tree(repo, w, root, "top")


def check_deep(root: Path, depth: int, payload: bytes = b"level\n") -> None:
    """Every level of a restored deep chain has its file (walked by descriptor)."""
    fd = os.open(root / "top", os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(depth):
            with open(os.open("f", os.O_RDONLY, dir_fd=fd), "rb") as f:
                assert f.read() == payload, f"level {level}"
            if level < depth - 1:
                child = os.open("d", os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
                os.close(fd)
                fd = child
    finally:
        os.close(fd)


def remove(path: Path) -> None:
    """Delete a test tree of any depth (pytest's own clean-up recurses)."""
    remove_tree(path)
