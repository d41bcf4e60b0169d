"""The console's read (and, with ``--allow-actions``, write) access to one repository.

With :mod:`deltavault.ui.ledger_view` this is the only part of the console
that calls the engine; pages get plain values from here. Snapshot objects
are immutable and named by their hash, so they are loaded once and kept;
which of them exist is read from the ledger index (commit, re-tag and forget
events), which grows with the log instead of being rescanned per request.
Every file byte handed out comes through :meth:`Repository.load_blob`,
which checks each blob against its keyed id before returning it — the same
check restore makes before writing.
"""

from __future__ import annotations

import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from deltavault import api
from deltavault.errors import DeltavaultError, SnapshotNotFound, UserError
from deltavault.ledger.note import NoteVerifier
from deltavault.ops.check import CheckReport
from deltavault.ops.diff import DiffResult, diff_snapshots
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot
from deltavault.repo.tree import Node, Tree
from deltavault.repo.walk import find_node, load_tree
from deltavault.sources.sqlite import extract_database
from deltavault.trading.books import read_sqlite_book
from deltavault.trading.reconcile import ReconcileReport, Tolerances, compare
from deltavault.ui.ledger_view import LedgerIndex


@dataclass(frozen=True)
class SnapshotEntry:
    """A live snapshot and the ledger index of the event that made it exist."""

    snapshot: Snapshot
    committed_at: int


@dataclass(frozen=True)
class DirEntry:
    """One entry of a directory listing."""

    name: str
    path: str
    node: Node


class _Lru(OrderedDict[object, object]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def remember(self, key: object, value: object) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class RepositoryView:
    """An opened repository as the console reads it, cached per ledger state."""

    def __init__(self, repo: Repository, *, witnesses: Sequence[NoteVerifier] = ()) -> None:
        self.repo = repo
        self.ledger = LedgerIndex(repo.store, repo.config.ledger_origin,
                                  repo.config.ledger_verifier_key, repo.crypto,
                                  witnesses=witnesses)
        self._lock = threading.RLock()
        self._loaded: dict[str, Snapshot] = {}
        self._snaps: list[SnapshotEntry] = []
        self._snaps_key: frozenset[str] = frozenset()
        self.unreadable: dict[str, str] = {}
        self._diffs = _Lru(8)
        self._action_lock = threading.Lock()

    @property
    def location(self) -> str:
        """Where the repository is (for page headers)."""
        return self.repo.store.location()

    # --- snapshots ------------------------------------------------------------------

    def refresh(self) -> list[SnapshotEntry]:
        """Catch up with the log; the live snapshots, oldest first."""
        with self._lock:
            self.ledger.refresh()
            live = self.ledger.live_snapshots()
            key = frozenset(live)
            if key == self._snaps_key:
                return self._snaps
            missing = [sid for sid in live if sid not in self._loaded
                       and sid not in self.unreadable]

            def load(sid: str) -> tuple[str, Snapshot | str]:
                try:
                    return sid, self.repo.load_snapshot(sid)
                except DeltavaultError as exc:
                    return sid, exc.one_line()

            with ThreadPoolExecutor(max_workers=8) as pool:
                for sid, got in pool.map(load, missing):
                    if isinstance(got, Snapshot):
                        self._loaded[sid] = got
                    else:
                        self.unreadable[sid] = got
            entries = [SnapshotEntry(self._loaded[sid], idx) for sid, idx in live.items()
                       if sid in self._loaded]
            entries.sort(key=lambda e: (e.snapshot.datetime, e.snapshot.id))
            if missing or not self._snaps_key:
                self.repo.load_index(force=True)  # new snapshots may name new packs
            self._snaps, self._snaps_key = entries, key
            return entries

    def snapshot(self, ref: str) -> SnapshotEntry:
        """A live snapshot by id, unique id prefix or ``latest``."""
        entries = self.refresh()
        ref = ref.strip().lower()
        if ref == "latest" and entries:
            return entries[-1]
        if len(ref) < 4 or any(c not in "0123456789abcdef" for c in ref):
            raise SnapshotNotFound(f"no snapshot {ref[:64]!r}: give an id or a prefix of one")
        found = [e for e in entries if e.snapshot.id.startswith(ref)]
        if len(found) != 1:
            what = "is ambiguous" if found else "matches no snapshot"
            raise SnapshotNotFound(f"snapshot {ref[:64]!r} {what}")
        return found[0]

    # --- trees and files --------------------------------------------------------------

    def list_dir(self, snap: Snapshot, path: str) -> list[DirEntry]:
        """The entries of directory ``path`` ('' for the root) of a snapshot."""
        tree_id = bytes.fromhex(snap.tree)
        prefix = path.strip("/")
        if prefix:
            node = self.node(snap, prefix)
            if node.type != "dir" or node.subtree is None:
                raise UserError(f"{prefix} is not a directory")
            tree_id = node.subtree
        out = []
        for node in self.tree(tree_id).nodes:
            name = node.name.decode("utf-8", "surrogateescape")
            out.append(DirEntry(name, f"{prefix}/{name}" if prefix else name, node))
        return out

    def tree(self, tree_id: bytes) -> Tree:
        """A tree blob, verified and decoded."""
        return load_tree(self.repo, tree_id)

    def node(self, snap: Snapshot, path: str) -> Node:
        """The node at ``path`` in a snapshot."""
        if len(path) > 4096 or "\0" in path:
            raise UserError("path too long or not a path")
        return find_node(self.repo, bytes.fromhex(snap.tree), path)

    def content(self, node: Node) -> Iterator[bytes]:
        """A file's bytes blob by blob, each verified against its id before it is yielded."""
        for blob in node.content:
            yield self.repo.load_blob(blob)

    def blob_slot(self, blob_id: bytes) -> tuple[int, int]:
        """(index position, stored length) of a blob, for per-blob marks in arrays."""
        return self.repo.index.slot(blob_id)

    def index_size(self) -> int:
        """Number of records in the loaded index."""
        return len(self.repo.index)

    # --- diff and reconcile -------------------------------------------------------------

    def diff(self, a: Snapshot, b: Snapshot) -> DiffResult:
        """``deltavault diff A B``, remembered for the last few pairs."""
        key = (a.id, b.id)
        hit = self._diffs.get(key)
        if isinstance(hit, DiffResult):
            return hit
        result = diff_snapshots(self.repo, a, b)
        with self._lock:
            self._diffs.remember(key, result)
        return result

    def reconcile_file(self, a: Snapshot, b: Snapshot, path: str) -> ReconcileReport | None:
        """The reconcile breaks between two versions of a database; None if it holds no book.

        Same comparison as ``deltavault reconcile --left snapshot:A:path --right
        snapshot:B:path``, without recording a ``reconcile`` event (the console
        only reads unless started with ``--allow-actions``).
        """
        key = ("reconcile", a.id, b.id, path)
        hit = self._diffs.get(key)
        if isinstance(hit, ReconcileReport):
            return hit
        with tempfile.TemporaryDirectory(prefix="deltavault-ui-") as tmp:
            left, right = Path(tmp) / "a.sqlite", Path(tmp) / "b.sqlite"
            extract_database(self.repo, a, left, path)
            extract_database(self.repo, b, right, path)
            try:
                report = compare(read_sqlite_book(left), read_sqlite_book(right), Tolerances(),
                                 left_name=f"snapshot:{a.id[:12]}:{path}",
                                 right_name=f"snapshot:{b.id[:12]}:{path}")
            except UserError:
                return None  # a database, but not a positions/collateral book
        with self._lock:
            self._diffs.remember(key, report)
        return report

    # --- actions (only with --allow-actions) ---------------------------------------------

    def check(self, on_progress: Callable[[int, int], None] | None = None) -> CheckReport:
        """``deltavault check`` (structure) through the façade; records its event."""
        with self._action_lock:
            return api.check(self.repo, on_progress=on_progress)

    def tag(self, snap: Snapshot, add: list[str], remove: list[str]) -> Snapshot:
        """``deltavault tag`` through the façade: a re-tagged snapshot and its ``tag`` event."""
        if not add and not remove:
            raise UserError("give a tag to add or to remove")
        for t in add:
            if not t or len(t) > 100 or any(c.isspace() or c == "," for c in t):
                raise UserError(f"bad tag {t[:100]!r}: no spaces or commas, at most 100 chars")
        with self._action_lock:
            return api.tag(self.repo, snap.id, add=add, remove=remove)[1]
