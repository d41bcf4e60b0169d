"""Hard links, symlinks, special files and directory metadata, made relative to a descriptor.

Each entry that already exists under its name is replaced in one rename of
a fresh one made beside it, never removed first. A symlink from the snapshot
is made as a link and never followed: every later path step uses
``O_NOFOLLOW``, so it cannot redirect a write either.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable

from deltavault.repo.tree import Node
from deltavault.restore.files import FileJob, FileWriter
from deltavault.restore.fsdir import (
    Dir,
    apply_link_meta,
    apply_meta,
    rename_into,
    swap_in,
    temp_name,
)
from deltavault.restore.plan import DirDone


def place(dir_fd: int, name: bytes, make: Callable[[bytes], None]) -> None:
    """Make an entry under ``name``, or beside it and renamed over what is there."""
    try:
        make(name)
        return
    except FileExistsError:
        pass
    tmp = temp_name()
    make(tmp)
    rename_into(dir_fd, tmp, name)
    # renaming over a hard link to the same file does nothing and keeps tmp
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp, dir_fd=dir_fd)


def make_link(d: Dir, name: bytes, first: FileJob, writer: FileWriter) -> int:
    """Hard-link ``name`` to the restored file ``first``; returns 1 if made."""
    if first.error is not None:
        writer.report(d.child_path(name), "its hard-link target was not restored")
        return 0
    src = first.dir.pin()
    dst = d.pin()
    try:
        place(dst, name, lambda n: os.link(first.name, n, src_dir_fd=src, dst_dir_fd=dst,
                                            follow_symlinks=False))
        return 1
    except OSError as exc:
        writer.report(d.child_path(name), f"cannot link: {exc.strerror}")
        return 0
    finally:
        d.unpin()
        first.dir.unpin()


def make_other(d: Dir, name: bytes, node: Node, writer: FileWriter) -> None:
    """A symlink, fifo or device node (sockets are not recreated)."""
    fd = d.fd_pinned()
    mode = stat.S_IMODE(node.mode)
    make: Callable[[bytes], None]
    if node.type == "symlink":
        assert node.target is not None
        target = node.target
        make = lambda n: os.symlink(target, n, dir_fd=fd)  # noqa: E731
    elif node.type == "fifo":
        make = lambda n: os.mkfifo(n, mode, dir_fd=fd)  # noqa: E731
    elif node.type in ("chardev", "blockdev"):
        kind = stat.S_IFCHR if node.type == "chardev" else stat.S_IFBLK
        make = lambda n: os.mknod(n, mode | kind, node.rdev, dir_fd=fd)  # noqa: E731
    else:
        return
    try:
        place(fd, name, make)
    except OSError as exc:
        if node.type == "symlink":  # devices and fifos may be refused to non-root: not data
            writer.report(d.child_path(name), f"cannot create {node.type}: {exc.strerror}")
        return
    apply_link_meta(fd, name, node.uid, node.gid, node.mtime_ns, writer.owners)
    if node.type != "symlink":
        with contextlib.suppress(OSError, NotImplementedError):
            os.chmod(name, mode, dir_fd=fd, follow_symlinks=False)


def finish_dir(done: DirDone, writer: FileWriter) -> None:
    """Put a directory built beside a file in place; then its owner, mode and times."""
    d = done.dir
    if done.replaces is not None:
        try:
            swap_in(d, done.replaces)
        except OSError as exc:
            writer.report(d.path(), f"cannot replace file: {exc.strerror}")
    fd = d.pin()
    try:
        n = done.node
        apply_meta(fd, n.mode, n.uid, n.gid, n.mtime_ns, writer.owners)
    except OSError as exc:
        writer.report(d.path(), f"cannot set metadata: {exc.strerror}")
    finally:
        d.unpin()
