"""Back up files, directories and stdin into a snapshot.

Write order (docs/format.md §11): packs → index → pack list → snapshot →
ledger event. The walker runs on the calling thread and streams chunks to
the :class:`~deltavault.backup.blobwriter.BlobWriter`; trees are written bottom-up
as each directory completes.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import getpass
import os
import socket
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from deltavault import __version__
from deltavault.backup.blobwriter import BlobWriter
from deltavault.backup.planner import DeltaPlanner
from deltavault.chunk.files import FileChunker
from deltavault.codec.policy import Policy
from deltavault.errors import DeltavaultError, ObjectNotFound, UserError
from deltavault.ledger.events import snapshot_event
from deltavault.repo.packs import BLOB_DATA, BLOB_TREE
from deltavault.repo.repository import PACKLIST_PREFIX, SNAPSHOT_PREFIX, Repository
from deltavault.repo.snapshot import Snapshot, encode_packlist, now_rfc3339, packlist_root
from deltavault.repo.tree import Node, Tree

_TYPE_BY_MODE = {stat.S_IFIFO: "fifo", stat.S_IFCHR: "chardev", stat.S_IFBLK: "blockdev",
                 stat.S_IFSOCK: "socket"}


@dataclass
class BackupOptions:
    """What to back up and how."""

    paths: list[Path] = field(default_factory=list)
    snapshot_type: str = "incr"
    tags: list[str] = field(default_factory=list)
    hostname: str = ""
    excludes: list[str] = field(default_factory=list)
    stdin: IO[bytes] | None = None
    stdin_filename: str = "stdin"
    parent: str | None = None
    workers: int = 0
    codec: Policy = "auto"
    full_every: int = 0
    full_after_days: float = 0
    #: recorded as the snapshot's ``paths`` instead of the absolute paths, so a
    #: source staged in a fresh temporary directory keeps one lineage
    #: (``sqlite:/srv/db/positions.sqlite``, ``postgres:host:5432/db``)
    label: list[str] | None = None


@dataclass
class Progress:
    """Counters the CLI renders; updated from the walker thread."""

    files_done: int = 0
    bytes_done: int = 0
    files_total: int | None = None
    bytes_total: int | None = None
    current: str = ""


@dataclass
class BackupResult:
    """The committed snapshot and what happened on the way."""

    snapshot: Snapshot
    errors: list[str]


@dataclass
class _Pending:
    """A file node whose content ids are still being computed."""

    node: Node
    futures: list[Future[bytes]]


class _Walker:
    def __init__(self, repo: Repository, writer: BlobWriter, opts: BackupOptions,
                 progress: Progress, on_progress: Callable[[Progress], None] | None,
                 planner: DeltaPlanner) -> None:
        self.repo = repo
        self.writer = writer
        self.opts = opts
        self.progress = progress
        self.on_progress = on_progress
        self.chunker = FileChunker(repo)
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


@dataclass
class Lineage:
    """Earlier snapshots of the same host and paths, for parent and base."""

    parent: Snapshot | None
    last_full: Snapshot | None
    since_full: int = 0


def find_lineage(repo: Repository, hostname: str, paths: list[str]) -> Lineage:
    """The newest snapshot and newest full snapshot of the same host and paths."""
    same = [s for s in repo.snapshots()
            if s.hostname == hostname and sorted(s.paths) == sorted(paths)]
    fulls = [s for s in same if s.type == "full"]
    since = len(same) - 1 - same.index(fulls[-1]) if fulls else 0
    return Lineage(same[-1] if same else None, fulls[-1] if fulls else None, since)


def resolve_type(requested: str, lineage: Lineage, *, full_every: int = 0,
                 full_after_days: float = 0) -> tuple[str, Snapshot | None, int]:
    """Effective type, its delta base snapshot and its chain depth.

    A diff or incr becomes a full one when there is no full snapshot to refer
    to, when ``full_every`` backups were taken since the last full, or when
    the last full is older than ``full_after_days``.
    """
    last = lineage.last_full
    if requested == "full" or last is None or lineage.parent is None:
        return "full", None, 0
    if full_every and lineage.since_full + 1 >= full_every:
        return "full", None, 0
    if full_after_days and datetime.now(UTC) - last.datetime >= timedelta(days=full_after_days):
        return "full", None, 0
    if requested == "diff":
        return "diff", lineage.last_full, 1
    return "incr", lineage.parent, lineage.parent.chain_depth + 1


def run_backup(repo: Repository, opts: BackupOptions, *,
               on_progress: Callable[[Progress], None] | None = None,
               progress: Progress | None = None) -> BackupResult:
    """Take one snapshot. The caller holds a shared lock."""
    if opts.snapshot_type not in ("full", "diff", "incr"):
        raise UserError(f"unknown backup type {opts.snapshot_type!r} (full, diff or incr)")
    if not opts.paths and opts.stdin is None:
        raise UserError("nothing to back up: give paths or --stdin")
    started = time.monotonic()
    clean_uncommitted(repo)
    repo.load_index()
    hostname = opts.hostname or socket.gethostname()
    abs_paths = [Path(os.path.abspath(p)) for p in opts.paths]
    path_strs = [str(p) for p in abs_paths] if abs_paths else [f"<stdin>/{opts.stdin_filename}"]
    if opts.label:
        path_strs = list(opts.label)
    lineage = find_lineage(repo, hostname, path_strs)
    if opts.parent:
        lineage.parent = repo.find_snapshot(opts.parent)
    snap_type, delta_base, depth = resolve_type(opts.snapshot_type, lineage,
                                                full_every=opts.full_every,
                                                full_after_days=opts.full_after_days)
    opts.snapshot_type = snap_type
    parent = lineage.parent
    planner = DeltaPlanner(repo, snap_type, delta_base)
    writer = BlobWriter(repo, workers=opts.workers or max(2, os.cpu_count() or 2),
                        codec_policy=opts.codec, may_reuse=planner.may_reuse)
    walker = _Walker(repo, writer, opts, progress or Progress(), on_progress, planner)
    try:
        if opts.stdin is not None:
            root = walker.save_stdin(opts.stdin, opts.stdin_filename)
        else:
            root = walker.save_roots(abs_paths, bytes.fromhex(parent.tree) if parent else None)
        index_file = writer.flush()
    except BaseException:
        writer.abort()
        raise
    if index_file is not None:
        repo.save_index(index_file)
    packs = _packs_of(repo, walker.referenced)
    s = writer.stats
    summary: dict[str, Any] = dict(walker.summary)
    summary.update({
        "blobs_added": s.blobs_added, "blobs_deduplicated": s.blobs_deduplicated,
        "delta_blobs": s.delta_blobs, "bytes_added": s.bytes_packed,
        "bytes_plain_added": s.bytes_plain_added, "packs_added": s.packs_written,
        "duration_s": round(time.monotonic() - started, 3), "errors": len(walker.errors),
    })
    snap = Snapshot(time=now_rfc3339(), hostname=hostname, username=_username(),
                    paths=path_strs, tree=root.hex(), type=snap_type,
                    tags=list(opts.tags), parent=parent.id if parent else None,
                    base=(lineage.last_full.id if snap_type != "full" and lineage.last_full
                          else None), chain_depth=depth,
                    packs_root=packlist_root(sorted(packs)), packs_count=len(packs),
                    summary=summary, program=f"deltavault {__version__}")
    sid, sealed = repo.seal_snapshot(snap)
    repo.put_once(PACKLIST_PREFIX + sid, encode_packlist(packs))
    repo.put_sealed_snapshot(snap, sid, sealed)
    commit_snapshot(repo, snap)
    return BackupResult(snap, walker.errors)


def commit_snapshot(repo: Repository, snap: Snapshot) -> int:
    """Append the ``snapshot`` event: from now on the snapshot exists."""
    event = snapshot_event(
        snapshot_id=snap.id, snapshot_type=snap.type, parent=snap.parent, base=snap.base,
        snapshot_time=snap.time, hostname=snap.hostname, tags=snap.tags, tree=snap.tree,
        summary=snap.summary, packs_root=snap.packs_root, packs_count=snap.packs_count)
    return repo.ledger.append([event.to_bytes()])[0]


def clean_uncommitted(repo: Repository, older_than: timedelta = timedelta(minutes=10)) -> int:
    """Delete snapshot objects an interrupted backup wrote but never committed.

    Young ones are left alone: another host may be between writing its
    snapshot and appending its event.
    """
    if not repo.store.supports_deletes:
        return 0
    removed = 0
    now = datetime.now(UTC)
    for sid in repo.uncommitted_snapshot_ids():
        try:
            if now - repo.load_snapshot(sid).datetime < older_than:
                continue
        except DeltavaultError:
            pass  # unreadable and uncommitted: garbage either way
        for key in (SNAPSHOT_PREFIX + sid, PACKLIST_PREFIX + sid):
            with contextlib.suppress(ObjectNotFound):
                repo.store.delete(key)
        removed += 1
    return removed


def _packs_of(repo: Repository, blobs: set[bytes]) -> set[str]:
    """Every pack a snapshot needs: its blobs' packs and their bases' packs."""
    packs: set[str] = set()
    todo = list(blobs)
    seen = set(blobs)
    while todo:
        loc = repo.locate(todo.pop())  # the shortest-chain copy: restore reads that one
        packs.add(loc.pack_id)
        if loc.base is not None and loc.base not in seen:
            seen.add(loc.base)
            todo.append(loc.base)
    return packs


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


def _username() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
