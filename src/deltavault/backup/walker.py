"""Walk the source tree and turn every entry into a tree node, streaming content to workers.

The walk is iterative (an explicit stack of directory frames, so a
10,000-level tree backs up) and streaming: one ``scandir`` per directory
gives names and types, each entry's ``lstat`` comes from its ``DirEntry``,
and a directory's frame lives only until its tree is written — memory is
bounded by the depth and the work in flight, not by the number of files.

Unchanged files (same size, mtime, ctime and inode as in the parent
snapshot) reuse the parent's blob ids; the others go to the
:class:`~deltavault.backup.files.ContentStore` (small files in batches to
the workers, large ones through the reader thread). Workers post finished
files back on a queue that only this thread reads, so directory state needs
no lock; a directory's tree is encoded, hashed and queued for storage as
soon as its last entry is done, and its id goes into the parent's node.
"""

from __future__ import annotations

import fnmatch
import functools
import os
import queue
import stat
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from deltavault.backup.blobwriter import BlobWriter
from deltavault.backup.files import ContentStore, PendingFile
from deltavault.backup.options import BackupOptions, Progress
from deltavault.backup.packset import PackSet
from deltavault.backup.planner import DeltaPlanner
from deltavault.chunk.fastcdc import CdcParams
from deltavault.chunk.files import FileChunker
from deltavault.errors import DeltavaultError, UserError
from deltavault.repo.packs import BLOB_TREE
from deltavault.repo.repository import Repository
from deltavault.repo.tree import Node, Tree

_TYPE_BY_MODE = {stat.S_IFIFO: "fifo", stat.S_IFCHR: "chardev", stat.S_IFBLK: "blockdev",
                 stat.S_IFSOCK: "socket"}
#: how long the walker waits for completions before re-checking for failures
_POLL_S = 0.5
#: paths longer than this are opened relative to an ancestor's descriptor
_ANCHOR_AT = 2048
_DIR_FLAGS = (os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0)
              | getattr(os, "O_CLOEXEC", 0))


@dataclass(slots=True, eq=False)
class _Frame:
    """A directory being backed up: its nodes in name order, and what it waits for.

    ``waiting`` counts entries whose content or subtree is not known yet,
    plus one while the walk is still inside the directory. The directory is
    reached as ``path`` relative to ``dir_fd`` (None: ``path`` is absolute
    or relative to the working directory). Past :data:`_ANCHOR_AT`
    characters a frame keeps its own directory open as the anchor of
    everything below it, so no path handed to the kernel nears PATH_MAX in a
    deep tree, and only one descriptor is open per ~2,000 characters of depth.
    """

    name: str
    parent: _Frame | None
    slot: int
    path: str
    dir_fd: int | None
    rel: str = ""
    anchor: int | None = None
    nodes: list[Node | None] = field(default_factory=list)
    subdirs: list[tuple[int, str, bytes | None]] = field(default_factory=list)
    next_sub: int = 0
    waiting: int = 1
    #: the parent snapshot's tree of this directory, and whether every entry
    #: so far equals its node there (then that tree is reused as it is)
    old_tree: bytes | None = None
    old: dict[bytes, Node] = field(default_factory=dict)
    same: bool = False

    def child(self, name: str) -> tuple[str, int | None]:
        """How to reach the entry ``name`` of this directory."""
        if self.anchor is not None:
            return name, self.anchor
        return (f"{self.path}/{name}" if self.path else name), self.dir_fd

    def display(self, name: str = "") -> str:
        """The entry's full path for messages (built only when one is needed)."""
        parts = [name] if name else []
        frame = self
        while frame.parent is not None and frame.parent.parent is not None:
            parts.append(frame.name)
            frame = frame.parent
        # ``frame`` is now a path the user named (its path is as given) or the root
        return "/".join(p for p in (frame.path, *reversed(parts)) if p)


class Walker:
    """One backup's walk: nodes for entries, blobs for content, trees for directories."""

    def __init__(self, repo: Repository, writer: BlobWriter, opts: BackupOptions,
                 progress: Progress, on_progress: Callable[[Progress], None] | None,
                 planner: DeltaPlanner, packs: PackSet) -> None:
        self.repo = repo
        self.writer = writer
        self.opts = opts
        self.progress = progress
        self.on_progress = on_progress
        p = repo.config.chunker
        self.chunker = FileChunker(CdcParams(p.min_size, p.avg_size, p.max_size,
                                             p.normalization, repo.crypto.chunker_seed))
        self.errors: list[str] = []
        self.packs = packs
        self.summary = {"files_new": 0, "files_changed": 0, "files_unmodified": 0,
                        "dirs": 0, "bytes_read": 0, "bytes_total": 0}
        self.planner = planner
        self.use_cache = opts.snapshot_type != "full"
        self._done: queue.SimpleQueue[list[PendingFile]] = queue.SimpleQueue()
        self.content = ContentStore(writer, self.chunker, planner, self._done)
        self._root: bytes | None = None
        #: paths the user named, by their slot in the root tree
        self._top: dict[int, str] = {}

    # --- public entry points ------------------------------------------------------

    def save_roots(self, paths: list[Path], old_root: bytes | None) -> bytes:
        """The root tree: one entry per backed-up path, named by its basename."""
        old_nodes = self._old_nodes(old_root)
        root = _Frame("", None, 0, "", None)
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
            self._entry(root, name, os.fsdecode(name), st, old_nodes.get(name), (str(p), None))
        return self._run(root)

    def save_stdin(self, fh: IO[bytes], name: str) -> bytes:
        """A root tree of one file read from a pipe."""
        root = _Frame("", None, 0, "", None)
        node = Node(name=os.fsencode(name), type="file", mode=0o644, mtime_ns=time.time_ns())
        root.nodes.append(node)
        root.waiting += 1
        pf = PendingFile(node, "<stdin>", None, name, root, 0)
        for ref in self.chunker.stream(fh):
            pf.content.append(None)
            pf.remaining += 1
            pf.bytes_read += ref.length
            self.writer.submit(self.content._chunk_task, (pf, len(pf.content) - 1, ref, None),
                               ref.length)
        self.summary["files_new"] += 1
        self.content._finish_one(pf)
        return self._run(root)

    # --- the walk -------------------------------------------------------------------

    def _run(self, root: _Frame) -> bytes:
        """Walk below ``root``, then wait until every tree is written; the root tree id."""
        stack = [root]
        try:
            try:
                self._walk(stack)
            finally:
                self.content.close()
            while self._root is None:
                self.writer.raise_error()
                try:
                    batch = self._done.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                self._completed(batch)
                self._drain()
            self.writer.raise_error()
            return self._root
        finally:
            self.content.stop_sealer()

    def _walk(self, stack: list[_Frame]) -> None:
        try:
            while stack:
                self._drain()
                frame = stack[-1]
                if frame.next_sub < len(frame.subdirs):
                    slot, name, old_sub = frame.subdirs[frame.next_sub]
                    frame.next_sub += 1
                    child = self._scan(frame, slot, name, old_sub)
                    if child is not None:
                        stack.append(child)
                    continue
                stack.pop()
                frame.subdirs = []
                frame.waiting -= 1  # the walk has left it
                if frame.waiting == 0:
                    self._finish(frame)
        except BaseException:
            for frame in stack:  # frames that finish close their own anchors
                _close(frame)
            raise

    def _scan(self, parent: _Frame, slot: int, name: str,
              old_sub: bytes | None) -> _Frame | None:
        """List one directory into a new frame; None (and the entry dropped) if unreadable."""
        if parent.parent is None:
            path, dir_fd = self._top.pop(slot), None
        else:
            path, dir_fd = parent.child(name)
        rel = f"{parent.rel}/{name}" if parent.rel else name
        frame = _Frame(name, parent, slot, path, dir_fd,
                       rel if self.planner.enabled else "")
        try:
            entries = self._list(frame)
        except OSError as exc:
            _close(frame)
            if parent.parent is None:  # a path the user named: an error, not a warning
                raise UserError(f"cannot read {frame.display()}: {exc.strerror}") from exc
            self.errors.append(f"{frame.display()}: cannot list: {exc.strerror}")
            parent.nodes[slot] = None
            parent.same = False
            parent.waiting -= 1
            return None
        old_nodes = self._old_nodes(old_sub)
        frame.old_tree, frame.old = old_sub, old_nodes
        frame.same = bool(old_nodes) and len(old_nodes) == len(entries)
        known = self._known_content(entries, old_nodes) if self.use_cache else set()
        for name_b, sname, st in entries:
            if isinstance(st, OSError):
                self.errors.append(f"{frame.display(sname)}: {st.strerror}")
                frame.same = False
                continue
            self._entry(frame, name_b, sname, st, old_nodes.get(name_b), frame.child(sname),
                        name_b in known)
        if self.on_progress is not None:
            self.on_progress(self.progress)
        return frame

    def _list(self, frame: _Frame) -> list[tuple[bytes, str, os.stat_result | OSError]]:
        """Names and ``lstat`` of the directory's entries, sorted by name.

        Opens the frame's anchor when the path is long. The stat of an entry
        listed through a descriptor is taken relative to that descriptor, so
        it is taken here, before a descriptor that is no anchor is closed.
        """
        if frame.dir_fd is None and len(frame.path) < _ANCHOR_AT:
            with os.scandir(os.fsencode(frame.path)) as it:
                return self._stat_all(frame, it)
        fd = os.open(frame.path, _DIR_FLAGS, dir_fd=frame.dir_fd)
        try:
            with os.scandir(fd) as it:
                out = self._stat_all(frame, it)
        except BaseException:
            os.close(fd)
            raise
        if len(frame.path) >= _ANCHOR_AT // 2:
            frame.anchor = fd  # children are reached relative to it
        else:
            os.close(fd)
        return out

    def _stat_all(self, frame: _Frame, it: Iterator[os.DirEntry[Any]]
                  ) -> list[tuple[bytes, str, os.stat_result | OSError]]:
        out: list[tuple[bytes, str, os.stat_result | OSError]] = []
        excludes = self.opts.excludes
        for e in sorted(it, key=_name):
            raw = e.name
            name_b = raw if isinstance(raw, bytes) else os.fsencode(raw)
            sname = raw if isinstance(raw, str) else os.fsdecode(raw)
            if excludes and self._excluded(frame, sname):
                continue
            try:
                out.append((name_b, sname, e.stat(follow_symlinks=False)))
            except OSError as exc:
                out.append((name_b, sname, exc))
        return out

    def _known_content(self, entries: list[tuple[bytes, str, os.stat_result | OSError]],
                       old_nodes: dict[bytes, Node]) -> set[bytes]:
        """Names of files whose stat matches the parent and whose blobs are all stored
        self-contained — found with one index search for the whole directory."""
        names: list[bytes] = []
        blobs: list[bytes] = []
        spans: list[int] = []
        for name_b, _, st in entries:
            old = old_nodes.get(name_b)
            if (old is not None and not isinstance(st, OSError) and stat.S_ISREG(st.st_mode)
                    and self._same_stat(old, st)):
                names.append(name_b)
                blobs.extend(old.content)
                spans.append(len(old.content))
        if not names:
            return set()
        packs = self.repo.index.self_contained_packs(blobs)
        known: set[bytes] = set()
        found: set[str] = set()
        pos = 0
        for name_b, n in zip(names, spans, strict=True):
            mine = packs[pos:pos + n]
            pos += n
            if all(p is not None for p in mine):
                known.add(name_b)
                found.update(mine)  # type: ignore[arg-type]
        for pack in found:
            self.packs.add_pack(pack)
        return known

    def _entry(self, frame: _Frame, name: bytes, sname: str, st: os.stat_result,
               old: Node | None, where: tuple[str, int | None], known: bool = False) -> None:
        """Add one directory entry to ``frame`` (files and subdirectories may finish later).

        ``known``: the parent's node matches the stat and its blobs are stored
        self-contained (checked for the whole directory at once).
        """
        mode = st.st_mode
        if (old is not None and self.use_cache and stat.S_ISREG(mode)
                and (known or (self._same_stat(old, st) and self._reuse(old.content)))):
            frame.nodes.append(old)  # the parent's node, as it is: nothing to encode
            size = st.st_size
            self.summary["bytes_total"] += size
            self.summary["files_unmodified"] += 1
            self.progress.files_done += 1
            self.progress.bytes_done += size
            return
        node = Node(name=name, type="file", mode=stat.S_IMODE(mode), uid=st.st_uid,
                    gid=st.st_gid, user=_user(st.st_uid), group=_group(st.st_gid),
                    mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns)
        slot = len(frame.nodes)
        if stat.S_ISREG(mode):
            frame.same = False
            self._file(frame, slot, node, sname, st, old, where)
            return
        frame.nodes.append(node)
        if not stat.S_ISDIR(mode):
            frame.same = False  # (symlinks and devices: rare; their tree is re-encoded)
        if stat.S_ISDIR(mode):
            node.type = "dir"
            frame.waiting += 1
            frame.subdirs.append((slot, sname,
                                  old.subtree if old is not None and old.type == "dir" else None))
            if frame.parent is None:  # a path the user named: reached as given
                self._top[slot] = where[0]
        elif stat.S_ISLNK(mode):
            node.type = "symlink"
            try:
                node.target = os.fsencode(os.readlink(where[0], dir_fd=where[1]))
            except OSError as exc:
                self.errors.append(f"{frame.display(sname)}: {exc.strerror}")
                frame.nodes[slot] = None
        else:
            node.type = _TYPE_BY_MODE.get(stat.S_IFMT(mode), "fifo")
            node.rdev = st.st_rdev

    @staticmethod
    def _same_stat(old: Node, st: os.stat_result) -> bool:
        """Whether a regular file's parent node describes it exactly.

        Compares the stat with the stored node field by field before any new
        node is built: in a no-change backup almost every file ends here.
        """
        size = st.st_size
        return (old.type == "file" and old.size == size and old.mtime_ns == st.st_mtime_ns
                and old.ctime_ns == st.st_ctime_ns and old.inode == st.st_ino
                and old.mode == stat.S_IMODE(st.st_mode) and old.uid == st.st_uid
                and old.gid == st.st_gid and old.dev == st.st_dev
                and old.links == st.st_nlink and old.sparse == (st.st_blocks * 512 < size)
                and not old.extra and old.user == _user(st.st_uid)
                and old.group == _group(st.st_gid))

    def _file(self, frame: _Frame, slot: int, node: Node, sname: str, st: os.stat_result,
              old: Node | None, where: tuple[str, int | None]) -> None:
        size = st.st_size
        node.size, node.inode, node.dev, node.links = size, st.st_ino, st.st_dev, st.st_nlink
        node.sparse = st.st_blocks * 512 < size
        frame.nodes.append(node)
        self.summary["bytes_total"] += size
        if (self.use_cache and old is not None and old.type == "file"
                and old.size == size and old.mtime_ns == st.st_mtime_ns
                and old.ctime_ns == st.st_ctime_ns and old.inode == st.st_ino
                and self._reuse(old.content)):
            node.content = old.content
            self.summary["files_unmodified"] += 1
            self.progress.files_done += 1
            self.progress.bytes_done += size
            return
        self.summary["files_changed" if old is not None else "files_new"] += 1
        frame.waiting += 1
        rel = (f"{frame.rel}/{sname}" if frame.rel else sname) if self.planner.enabled else ""
        self.content.add(PendingFile(node, where[0], where[1], rel, frame, slot), size)

    def _reuse(self, blobs: list[bytes]) -> bool:
        """Whether unchanged content may be shared (depth rule), noting its packs if so."""
        locs = []
        index = self.repo.index
        for blob in blobs:
            loc = index.get(blob)  # a self-contained copy when there is one
            if loc is None:
                return False
            if loc.base is not None:  # only delta copies: the depth rule decides
                if not self.planner.may_reuse(loc):
                    return False
                loc = self.repo.locate(blob)
            locs.append(loc)
        for loc in locs:
            self.packs.note_location(loc)
        return True

    # --- completions ------------------------------------------------------------------

    def _drain(self) -> None:
        """Apply every completion posted so far, without waiting."""
        done = self._done
        while True:
            try:
                batch = done.get_nowait()
            except queue.Empty:
                return
            self._completed(batch)

    def _completed(self, batch: list[PendingFile]) -> None:
        for pf in batch:
            frame = pf.frame
            assert isinstance(frame, _Frame)
            if pf.error is not None:
                self.errors.append(f"{frame.display(os.fsdecode(pf.node.name))}: {pf.error}")
                frame.nodes[pf.slot] = None
                frame.same = False
            else:
                node = pf.node
                node.content = pf.content  # type: ignore[assignment]  # all ids by now
                node.size = pf.bytes_read
                self.summary["bytes_read"] += pf.bytes_read
                self.progress.files_done += 1
                self.progress.bytes_done += pf.bytes_read
            frame.waiting -= 1
            if frame.waiting == 0:
                self._finish(frame)
        if self.on_progress is not None:
            self.on_progress(self.progress)

    def _finish(self, frame: _Frame | None) -> None:
        """Write the trees of ``frame`` and of every ancestor it was the last wait of."""
        while frame is not None:
            _close(frame)
            if frame.same and frame.old_tree is not None and self._tree_reusable(frame.old_tree):
                tree_id = frame.old_tree  # every entry as in the parent: its tree as it is
            else:
                data = Tree([n for n in frame.nodes if n is not None]).encode()
                tree_id = self.repo.crypto.blob_id(data)
                self.writer.submit(self._store_tree, (data, tree_id), len(data))
            frame.old = {}
            parent = frame.parent
            if parent is None:
                self._root = tree_id
                return
            self.summary["dirs"] += 1
            sub = parent.nodes[frame.slot]
            assert sub is not None
            sub.subtree = tree_id
            if parent.same and sub != parent.old.get(sub.name):
                parent.same = False
            parent.waiting -= 1
            if parent.waiting:
                return
            frame = parent

    def _tree_reusable(self, tree_id: bytes) -> bool:
        loc = self.repo.index.get(tree_id)
        if loc is None or loc.base is not None:
            return False
        self.packs.note_location(loc)
        return True

    def _store_tree(self, arg: tuple[bytes, bytes]) -> None:
        data, tree_id = arg
        self.writer.store(data, BLOB_TREE, blob_id=tree_id)

    # --- helpers ---------------------------------------------------------------------

    def _excluded(self, frame: _Frame, name: str) -> bool:
        pats = self.opts.excludes
        if any(fnmatch.fnmatch(name, pat) for pat in pats):
            return True
        path = frame.display(name)
        return any(fnmatch.fnmatch(path, pat) for pat in pats)

    def _old_nodes(self, tree_id: bytes | None) -> dict[bytes, Node]:
        if tree_id is None or not self.use_cache:
            return {}
        try:
            return {n.name: n for n in Tree.decode(self.repo.load_blob(tree_id)).nodes}
        except DeltavaultError:
            return {}  # a damaged parent only costs the cache


def _name(entry: os.DirEntry[Any]) -> bytes:
    name = entry.name
    return name if isinstance(name, bytes) else os.fsencode(name)


def _close(frame: _Frame) -> None:
    if frame.anchor is not None:
        os.close(frame.anchor)
        frame.anchor = None


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

