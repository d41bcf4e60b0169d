"""Restored files get exactly the snapshot's mode and owner, also where restore skips calls.

A file whose permission bits and owner are what the kernel gives it at
creation is restored without ``fchown``/``fchmod`` (:func:`~deltavault.
restore.fsdir.creation_owner`); these tests pin down every case where that
shortcut must not be taken: a umask that removes bits, set-ID and sticky
bits, a set-group-ID directory, an owner other than ours, a default ACL.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest

from deltavault import api
from deltavault.backup.blobwriter import BlobWriter
from deltavault.repo.packs import BLOB_DATA, BLOB_TREE
from deltavault.repo.tree import Node, Tree
from deltavault.restore.fsdir import creation_owner, process_umask
from deltavault.restore.restorer import RestoreOptions, run_restore
from tests.restore.snapshots import MTIME, commit_tree, dir_node

MODES = (0o644, 0o600, 0o755, 0o444, 0o000, 0o666, 0o4755, 0o2750, 0o1777, 0o6711)
ROOT = os.geteuid() == 0
needs_root = pytest.mark.skipif(not ROOT, reason="owners are restored by root only")


@pytest.fixture
def umask() -> Iterator[None]:
    """Restore the test process's umask after a test changes it."""
    saved = os.umask(0o022)
    os.umask(saved)
    yield
    os.umask(saved)


def _snapshot(repo: api.Repository, files: list[tuple[bytes, int, int, int]]) -> api.Snapshot:
    """A snapshot ``top/<name>`` of one-blob and two-blob files (name, mode, uid, gid)."""
    repo.load_index()
    w = BlobWriter(repo, workers=1)
    nodes = []
    for i, (name, mode, uid, gid) in enumerate(files):
        parts = [f"{name!r} {i} part {k}\n".encode() for k in range(1 + i % 2)]
        blobs = [w.save_now(p, BLOB_DATA) for p in parts]
        nodes.append(Node(name=name, type="file", mode=mode, uid=uid, gid=gid,
                          mtime_ns=MTIME, size=sum(map(len, parts)), content=blobs))
    sub = w.save_now(Tree(nodes).encode(), BLOB_TREE)
    root = w.save_now(Tree([dir_node(b"top", sub)]).encode(), BLOB_TREE)
    return repo.find_snapshot(commit_tree(repo, w, root, "top"))


def _restore(repo: api.Repository, snap: api.Snapshot, target: Path) -> None:
    run_restore(repo, snap, RestoreOptions(target, workers=2), record=False)


@pytest.mark.parametrize("mask", [0o022, 0o077, 0o000, 0o277])
def test_every_mode_is_restored_exactly_whatever_the_umask(repo: api.Repository, tmp_path: Path,
                                                           umask: None, mask: int) -> None:
    uid, gid = os.geteuid(), os.getegid()
    snap = _snapshot(repo, [(f"m{m:o}".encode(), m, uid, gid) for m in MODES])
    os.umask(mask)
    assert process_umask() == mask
    _restore(repo, snap, tmp_path / "t")
    for m in MODES:
        st = (tmp_path / "t" / "top" / f"m{m:o}").stat()
        assert stat.S_IMODE(st.st_mode) == m, f"mode {m:o} under umask {mask:o}"
        assert st.st_mtime_ns == MTIME


@needs_root
def test_owners_other_than_ours_and_a_set_group_id_directory(repo: api.Repository,
                                                             tmp_path: Path) -> None:
    snap = _snapshot(repo, [(b"ours", 0o644, 0, 0), (b"theirs", 0o644, 1234, 5678),
                            (b"group", 0o640, 0, 4321), (b"setuid", 0o4755, 1234, 0)])
    target = tmp_path / "t"
    (target / "top").mkdir(parents=True)
    os.chown(target / "top", 0, 777)
    os.chmod(target / "top", 0o2775)  # files made here get group 777, not ours
    _restore(repo, snap, target)
    want = {"ours": (0, 0, 0o644), "theirs": (1234, 5678, 0o644), "group": (0, 4321, 0o640),
            "setuid": (1234, 0, 0o4755)}
    for name, (uid, gid, mode) in want.items():
        st = (target / "top" / name).stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (uid, gid, mode), name


def _default_acl(user: int, group: int, other: int) -> bytes:
    """A POSIX default ACL in the kernel's xattr form (version 2; user::, group::, other::)."""
    undefined = 0xFFFFFFFF
    return struct.pack("<I", 2) + b"".join(struct.pack("<HHI", tag, perm, undefined)
                                           for tag, perm in ((0x01, user), (0x04, group),
                                                             (0x20, other)))


def test_a_default_acl_is_never_trusted_to_give_the_mode(repo: api.Repository, tmp_path: Path,
                                                        umask: None) -> None:
    target = tmp_path / "t"
    target.mkdir()
    # owner only: a file created with 0644 here would get 0600 (the suite's file system,
    # ext4 or tmpfs, keeps POSIX ACLs; without them this test fails rather than skips)
    os.setxattr(target, "system.posix_acl_default", _default_acl(7, 0, 0))
    fd = os.open(target, os.O_RDONLY)
    try:
        assert creation_owner(fd, os.fstat(fd)) is None
    finally:
        os.close(fd)
    os.umask(0o022)
    snap = _snapshot(repo, [(b"a", 0o644, os.geteuid(), os.getegid()),
                            (b"b", 0o755, os.geteuid(), os.getegid())])
    _restore(repo, snap, target)  # top/ inherits the default ACL from the target
    assert stat.S_IMODE((target / "top" / "a").stat().st_mode) == 0o644
    assert stat.S_IMODE((target / "top" / "b").stat().st_mode) == 0o755


def test_creation_owner_follows_the_set_group_id_bit(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    fd = os.open(d, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        assert creation_owner(fd, st) == (os.geteuid(), os.getegid())
        sgid = os.stat_result((st.st_mode | stat.S_ISGID, *st[1:5], 4242, *st[6:10]))
        assert creation_owner(fd, sgid) == (os.geteuid(), 4242)
    finally:
        os.close(fd)
