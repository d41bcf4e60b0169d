"""Walk the source tree and turn every entry into a tree node, streaming chunks to the writer.

Unchanged files (same size, mtime, ctime and inode as in the parent
snapshot) reuse the parent's blob ids; changed ones are chunked and each
chunk is handed to the :class:`~deltavault.backup.blobwriter.BlobWriter`
with its delta base. Trees are written bottom-up as each directory completes.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from deltavault.backup.blobwriter import BlobWriter
from deltavault.backup.options import BackupOptions, Progress
from deltavault.backup.planner import DeltaPlanner
from deltavault.chunk import CdcParams
from deltavault.chunk.files import FileChunker
from deltavault.errors import DeltavaultError, UserError
from deltavault.repo.packs import BLOB_DATA, BLOB_TREE
from deltavault.repo.repository import Repository
from deltavault.repo.tree import Node, Tree

_TYPE_BY_MODE = {stat.S_IFIFO: "fifo", stat.S_IFCHR: "chardev", stat.S_IFBLK: "blockdev",
                 stat.S_IFSOCK: "socket"}


@dataclass
class _Pending:
    """A file node whose content ids are still being computed."""

    node: Node
    futures: list[Future[bytes]]


class Walker:
    """One backup's walk: nodes for entries, blobs for content, trees for directories."""

    def __init__(self, repo: Repository, writer: BlobWriter, opts: BackupOptions,
                 progress: Progress, on_progress: Callable[[Progress], None] | None,
                 planner: DeltaPlanner) -> None:
        self.repo = repo
        self.writer = writer
        self.opts = opts
        self.progress = progress
        self.on_progress = on_progress
        p = repo.config.chunker
        self.chunker = FileChunker(CdcParams(p.min_size, p.avg_size, p.max_size,
                                             p.normalization, repo.crypto.chunker_seed))
        self.errors: list[str] = []
        self.referenced: set[bytes] = set()
        self.summary = {"files_new": 0, "files_changed": 0, "files_unmodified": 0,
                        "dirs": 0, "bytes_read": 0, "bytes_total": 0}
        self.planner = planner
        self.use_cache = opts.snapshot_type != "full"

    def _tick(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress)

    def _excluded(self, path: str, name: str) -> bool:
        return any(fnmatch.fnmatch(name, pat) or fnmatch.fnmatch(path, pat)
                   for pat in self.opts.excludes)

    def node_for(self, path: str, rel: str, name: bytes, st: os.stat_result,
                 old: Node | None) -> Node | _Pending | None:
        """Back up one directory entry; None if it was unreadable."""
        common = dict(name=name, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid,
                      user=_user(st.st_uid), group=_group(st.st_gid), mtime_ns=st.st_mtime_ns,
                      ctime_ns=st.st_ctime_ns)
        if stat.S_ISDIR(st.st_mode):
            sub = self.save_dir(path, rel, old.subtree if old and old.type == "dir" else None)
            if sub is None:
                return None
            return Node(type="dir", subtree=sub, **common)  # type: ignore[arg-type]
        if stat.S_ISLNK(st.st_mode):
            return Node(type="symlink", target=os.fsencode(os.readlink(path)),
                        **common)  # type: ignore[arg-type]
        if stat.S_ISREG(st.st_mode):
            return self.save_file(path, rel, st, old, common)
        return Node(type=_TYPE_BY_MODE.get(stat.S_IFMT(st.st_mode), "fifo"), rdev=st.st_rdev,
                    **common)  # type: ignore[arg-type]

    def save_file(self, path: str, rel: str, st: os.stat_result, old: Node | None,
                  common: dict[str, Any]) -> Node | _Pending | None:
        node = Node(type="file", size=st.st_size, inode=st.st_ino, dev=st.st_dev,
                    links=st.st_nlink, sparse=st.st_blocks * 512 < st.st_size, **common)
        self.summary["bytes_total"] += st.st_size
        if (self.use_cache and old is not None and old.type == "file"
                and (old.size, old.mtime_ns, old.ctime_ns, old.inode)
                == (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                and self._reusable(old.content)):
            node.content = list(old.content)
            self.summary["files_unmodified"] += 1
            self.progress.files_done += 1
            self.progress.bytes_done += st.st_size
            self._tick()
            return node
        self.summary["files_changed" if old is not None else "files_new"] += 1
        self.progress.current = path
        try:
            fh = open(path, "rb", buffering=0)  # noqa: SIM115 - closed below
        except OSError as exc:
            self.errors.append(f"{path}: {exc.strerror}")
            return None
        futures = []
        node.size = 0
        try:
            with fh:
                base_file = self.planner.file(rel)
                for ref in self.chunker.chunks(fh, path):
                    base = None
                    if base_file is not None:
                        base = (base_file.pick(ref.offset, ref.length) if ref.hint else
                                base_file.pick_similar(ref.data, ref.offset, ref.length))
                    if base is not None and not self.planner.may_base_on(base):
                        base = None
                    futures.append(self.writer.submit(ref.data, BLOB_DATA, base, ref.hint))
                    node.size += ref.length
                    self.summary["bytes_read"] += ref.length
                    self.progress.bytes_done += ref.length
                    self._tick()
        except OSError as exc:
            self.errors.append(f"{path}: read failed: {exc.strerror}")
            for f in futures:
                f.cancel()
            return None
        self.progress.files_done += 1
        return _Pending(node, futures)

    def _reusable(self, blobs: list[bytes]) -> bool:
        """Unchanged content may be shared only within this snapshot type's depth rule."""
        for blob in blobs:
            loc = self.repo.index.get(blob)
            if loc is None or not self.planner.may_reuse(loc):
                return False
        return True

    def save_dir(self, path: str, rel: str, old_tree: bytes | None) -> bytes | None:
        """Back up a directory; returns its tree id."""
        old_nodes = self._old_nodes(old_tree)
        try:
            names = sorted(os.listdir(os.fsencode(path)))
        except OSError as exc:
            self.errors.append(f"{path}: cannot list: {exc.strerror}")
            return None
        items: list[Node | _Pending] = []
        for name in names:
            child = os.path.join(path, os.fsdecode(name))
            if self._excluded(child, os.fsdecode(name)):
                continue
            try:
                st = os.lstat(child)
            except OSError as exc:
                self.errors.append(f"{child}: {exc.strerror}")
                continue
            child_rel = f"{rel}/{os.fsdecode(name)}"
            item = self.node_for(child, child_rel, name, st, old_nodes.get(name))
            if item is not None:
                items.append(item)
        self.summary["dirs"] += 1
        return self.save_tree(items)

    def save_tree(self, items: list[Node | _Pending]) -> bytes:
        nodes = []
        for it in items:
            if isinstance(it, _Pending):
                it.node.content = [f.result() for f in it.futures]
                it = it.node
            if it.type == "file":
                self.referenced.update(it.content)
            nodes.append(it)
        tree_id = self.writer.save_now(Tree(nodes).encode(), BLOB_TREE)
        self.referenced.add(tree_id)
        return tree_id

    def _old_nodes(self, tree_id: bytes | None) -> dict[bytes, Node]:
        if tree_id is None:
            return {}
        try:
            return {n.name: n for n in Tree.decode(self.repo.load_blob(tree_id)).nodes}
        except DeltavaultError:
            return {}  # a damaged parent only costs the cache

    def save_stdin(self, fh: IO[bytes], name: str) -> bytes:
        node = Node(name=os.fsencode(name), type="file", mode=0o644, mtime_ns=time.time_ns())
        futures = []
        for ref in self.chunker.stream(fh):
            futures.append(self.writer.submit(ref.data, BLOB_DATA))
            node.size += ref.length
            self.summary["bytes_read"] += ref.length
            self.progress.bytes_done += ref.length
            self._tick()
        self.summary["files_new"] += 1
        return self.save_tree([_Pending(node, futures)])

    def save_roots(self, paths: list[Path], old_root: bytes | None) -> bytes:
        """The root tree: one entry per backed-up path, named by its basename."""
        old_nodes = self._old_nodes(old_root)
        items: list[Node | _Pending] = []
        seen: set[bytes] = set()
        for p in paths:
            name = os.fsencode(p.name or "root")
            if name in seen:
                raise UserError(f"two paths end in the same name {p.name!r}; back them up apart")
            seen.add(name)
            try:
                st = os.lstat(p)
            except OSError as exc:
                raise UserError(f"cannot back up {p}: {exc.strerror}") from exc
            item = self.node_for(str(p), os.fsdecode(name), name, st, old_nodes.get(name))
            if item is None:
                raise UserError(f"cannot read {p}")
            items.append(item)
        return self.save_tree(items)


def start_scanner(opts: BackupOptions, state: Progress) -> None:
    """Count what is to be read on a daemon thread, so a progress bar can show an ETA."""
    if not opts.paths:
        return

    def scan() -> None:
        for files, size in scan_totals(opts.paths, opts.excludes):
            state.files_total, state.bytes_total = files, size

    threading.Thread(target=scan, daemon=True, name="dv-scan").start()


def scan_totals(paths: list[Path], excludes: list[str]) -> Iterator[tuple[int, int]]:
    """Yield running (files, bytes) totals; used by a thread to give an ETA."""
    files = size = 0
    for root in paths:
        for dirpath, _dirs, filenames in os.walk(root):
            for name in filenames:
                if any(fnmatch.fnmatch(name, pat) for pat in excludes):
                    continue
                try:
                    size += os.lstat(os.path.join(dirpath, name)).st_size
                    files += 1
                except OSError:
                    continue
        yield files, size


@functools.lru_cache(maxsize=1024)
def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return ""


@functools.lru_cache(maxsize=1024)
def _group(gid: int) -> str:
    try:
        import grp

        return grp.getgrgid(gid).gr_name
    except (KeyError, ImportError):
        return ""
