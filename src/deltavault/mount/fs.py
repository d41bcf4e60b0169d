"""The FUSE operations: a read-only, path-based file system over the layout.

The binding (``mfusepy``, see :mod:`deltavault.mount.run`) calls these
methods from several libfuse threads with paths such as
``/snapshots/2026-11-20T14:03:00Z/trading/db/positions.sqlite``; they answer
from :class:`~deltavault.mount.layout.Layout` (the virtual directories) and
:class:`~deltavault.mount.source.RepositorySource` (inside a snapshot), and
raise :class:`OSError` with an errno, which the binding returns to the
kernel. Stored data that fails verification is ``EIO`` for the file that
needs it, never a wrong byte; everything else keeps working.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from deltavault.errors import DeltavaultError
from deltavault.mount.cache import ReadCache
from deltavault.mount.files import OpenFile
from deltavault.mount.layout import InSnapshot, Layout, VirtualDir, VirtualLink
from deltavault.mount.source import RepositorySource
from deltavault.repo.tree import Node

_TYPE_BITS = {"file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK,
              "fifo": stat.S_IFIFO, "chardev": stat.S_IFCHR, "blockdev": stat.S_IFBLK,
              "socket": stat.S_IFSOCK}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p]


class SnapshotFS:
    """The operations object handed to the FUSE binding."""

    #: times in nanoseconds (the binding's modern convention)
    use_ns = True

    def __init__(self, source: RepositorySource, *, cache_bytes: int = 256 << 20,
                 prefetch_workers: int = 2) -> None:
        self.source = source
        self.cache = ReadCache(cache_bytes)
        self._uid, self._gid = os.getuid(), os.getgid()
        self._started_ns = time.time_ns()
        self._layout = Layout(source.snapshots(), self._started_ns)
        self._files: dict[int, OpenFile] = {}
        self._handles = itertools.count(1)
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=prefetch_workers,
                                        thread_name_prefix="dv-mount-prefetch")
        self._reported: set[str] = set()
        #: set once the kernel accepted the mount (libfuse called init)
        self.mounted = False

    # --- resolution ------------------------------------------------------------

    def _layout_now(self, parts: list[str]) -> Layout:
        """The layout, re-read from the ledger when the top of the tree is looked at."""
        if len(parts) <= 1 and self.source.refresh():
            self._layout = Layout(self.source.snapshots(), self._started_ns)
        return self._layout

    def _resolve(self, path: str) -> VirtualDir | VirtualLink | tuple[InSnapshot, Node | None]:
        """What a path is: a virtual entry, or a node in a snapshot (None: its root)."""
        parts = _split(path)
        found = self._layout_now(parts).resolve(parts)
        if found is None:
            raise OSError(errno.ENOENT, "no such entry", path)
        if not isinstance(found, InSnapshot):
            return found
        if not found.parts:
            return found, None
        tree = self.source.root(found.snapshot)
        node: Node | None = None
        for i, name in enumerate(found.parts):
            node = self.source.directory(tree).nodes.get(name)
            if node is None:
                raise OSError(errno.ENOENT, "no such file in the snapshot", path)
            if i < len(found.parts) - 1:
                if node.type != "dir" or node.subtree is None:
                    raise OSError(errno.ENOTDIR, "not a directory", path)
                tree = node.subtree
        return found, node

    def _fail(self, path: str, exc: DeltavaultError) -> OSError:
        """EIO for this path, reported once on stderr (a failing file is read many times)."""
        if path not in self._reported and len(self._reported) < 10_000:
            self._reported.add(path)
            sys.stderr.write(f"deltavault: error: {path}: {exc.one_line()}\n")
        return OSError(errno.EIO, str(exc), path)

    # --- attributes ------------------------------------------------------------

    def _virtual_attrs(self, mode: int, mtime_ns: int, size: int = 0) -> dict[str, Any]:
        return {"st_mode": mode, "st_nlink": 2 if stat.S_ISDIR(mode) else 1,
                "st_uid": self._uid, "st_gid": self._gid, "st_size": size,
                "st_mtime": mtime_ns, "st_ctime": mtime_ns, "st_atime": mtime_ns}

    @staticmethod
    def _node_attrs(node: Node) -> dict[str, Any]:
        size = node.size if node.type == "file" else 0
        if node.type == "symlink" and node.target is not None:
            size = len(node.target)
        return {"st_mode": _TYPE_BITS[node.type] | stat.S_IMODE(node.mode),
                "st_nlink": max(1, node.links) if node.type == "file" else 1,
                "st_uid": node.uid, "st_gid": node.gid, "st_size": size,
                "st_blocks": (size + 511) // 512, "st_rdev": node.rdev,
                "st_mtime": node.mtime_ns, "st_ctime": node.ctime_ns, "st_atime": node.mtime_ns}

    def getattr(self, path: str, fh: int | None = None) -> dict[str, Any]:
        try:
            found = self._resolve(path)
        except DeltavaultError as exc:
            raise self._fail(path, exc) from exc
        if isinstance(found, VirtualDir):
            return self._virtual_attrs(stat.S_IFDIR | 0o555, found.mtime_ns)
        if isinstance(found, VirtualLink):
            return self._virtual_attrs(stat.S_IFLNK | 0o777, found.mtime_ns, len(found.target))
        where, node = found
        if node is None:
            return self._virtual_attrs(stat.S_IFDIR | 0o555, where.snapshot.mtime_ns)
        return self._node_attrs(node)

    def readlink(self, path: str) -> str:
        try:
            found = self._resolve(path)
        except DeltavaultError as exc:
            raise self._fail(path, exc) from exc
        if isinstance(found, VirtualLink):
            return found.target
        if isinstance(found, tuple) and found[1] is not None and found[1].target is not None:
            return found[1].target.decode("utf-8", "surrogateescape")
        raise OSError(errno.EINVAL, "not a symlink", path)

    # --- directories -----------------------------------------------------------

    def readdir(self, path: str, fh: int) -> list[str | tuple[str, dict[str, int], int]]:
        """Entries with their type bits, so ``ls -R`` and ``find`` need no stat each."""
        try:
            found = self._resolve(path)
            if isinstance(found, VirtualDir):
                return [".", "..", *((n, {"st_mode": stat.S_IFLNK if n in found.links
                                          else stat.S_IFDIR}, 0) for n in found.names)]
            if isinstance(found, VirtualLink):
                raise OSError(errno.ENOTDIR, "not a directory", path)
            where, node = found
            if node is None:
                tree = self.source.root(where.snapshot)
            elif (below := node.tree_below()) is not None:
                tree = below
            else:
                raise OSError(errno.ENOTDIR, "not a directory", path)
            listing = self.source.directory(tree)
        except DeltavaultError as exc:
            raise self._fail(path, exc) from exc
        return [".", "..", *((name, {"st_mode": _TYPE_BITS[listing.nodes[name].type]}, 0)
                             for name in listing.names)]

    # --- files -----------------------------------------------------------------

    def open(self, path: str, flags: int) -> int:
        if flags & _WRITE_FLAGS:
            raise OSError(errno.EROFS, "read-only file system", path)
        try:
            found = self._resolve(path)
            if not isinstance(found, tuple) or found[1] is None or found[1].type != "file":
                raise OSError(errno.EISDIR if not isinstance(found, VirtualLink)
                              else errno.EINVAL, "not a regular file", path)
            handle = OpenFile(found[1], self.source, self.cache, self._pool)
        except DeltavaultError as exc:
            raise self._fail(path, exc) from exc
        with self._lock:
            fh = next(self._handles)
            self._files[fh] = handle
        return fh

    def read(self, path: str, size: int, offset: int, fh: int) -> bytes:
        handle = self._files.get(fh)
        if handle is None:
            raise OSError(errno.EBADF, "file not open", path)
        try:
            return handle.read(offset, size)
        except DeltavaultError as exc:
            raise self._fail(path, exc) from exc

    def release(self, path: str, fh: int) -> int:
        with self._lock:
            self._files.pop(fh, None)
        return 0

    def statfs(self, path: str) -> dict[str, int]:
        return {"f_bsize": 4096, "f_frsize": 4096, "f_namemax": 4096}

    def init(self, path: str) -> None:
        """libfuse mounted the file system and is about to serve requests."""
        self.mounted = True

    def destroy(self, path: str) -> None:
        """Unmounting: stop prefetching (running loads finish, nothing new starts)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
