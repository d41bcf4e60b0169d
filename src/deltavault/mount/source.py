"""Everything the mount reads from the engine, in one place.

The rest of :mod:`deltavault.mount` sees snapshots as :class:`SnapshotRef`,
directories as :class:`Directory` and file content as verified blobs; only
this module calls the repository, so it is the one place to re-point when
the engine's API changes.

Which snapshots exist is decided as everywhere else: committed to the signed
ledger and not forgotten (:meth:`Repository.committed`). The list is re-read
at most every ``refresh_s`` seconds, when someone looks at the top of the
tree. Blob reads go through a *generation* of the repository whose index is
complete: when new snapshots appear, a fresh instance loads the index and
replaces the old one in one assignment, so a read never meets a half-loaded
index.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass

from deltavault.errors import DeltavaultError, IntegrityError
from deltavault.mount.layout import SnapshotRef
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot
from deltavault.repo.tree import Node, Tree
from deltavault.store.base import ByteRange

#: decoded directory entries kept (≈ 0.5 KiB each): a 100k-file snapshot fits twice
DEFAULT_TREE_ENTRIES = 200_000


@dataclass(frozen=True)
class Directory:
    """One decoded tree: entry names (sorted as stored) and their nodes."""

    names: tuple[str, ...]
    nodes: dict[str, Node]


def _name(raw: bytes) -> str:
    # surrogateescape: a name that is not UTF-8 round-trips through the binding
    return raw.decode("utf-8", "surrogateescape")


def _ref(snap: Snapshot) -> SnapshotRef:
    return SnapshotRef(id=snap.id, time=snap.datetime, hostname=snap.hostname,
                       tags=tuple(snap.tags), tree=snap.tree)


class RepositorySource:
    """Snapshots, trees and verified blobs of one opened repository."""

    def __init__(self, repo: Repository, *, refresh_s: float = 10.0,
                 tree_entries: int = DEFAULT_TREE_ENTRIES) -> None:
        # Mounting is reading: no restore/check events are appended for it.
        repo.record_events = False
        self._meta = repo  # keeps the ledger (and the checkpoint it verified last)
        self._data = repo  # the generation blob reads use
        self._refresh_s = refresh_s
        self._refresh_lock = threading.Lock()
        self._checked = -float("inf")
        self._snapshots: dict[str, SnapshotRef] = {}
        self._unreadable: set[str] = set()  # warned about once, not retried
        self._trees: OrderedDict[bytes, Directory] = OrderedDict()
        self._tree_entries = 0
        self._tree_budget = tree_entries
        self._tree_lock = threading.Lock()
        # The ledger first, then the index: a snapshot is committed only after
        # its index is written, so every snapshot listed has its blobs indexed.
        self._snapshots = self._scan({})
        repo.load_index()
        self._checked = time.monotonic()

    # --- snapshots -----------------------------------------------------------

    def snapshots(self) -> list[SnapshotRef]:
        """The committed snapshots as of the last refresh."""
        return list(self._snapshots.values())

    def refresh(self) -> bool:
        """Re-read the committed snapshot list if it is due; True if it changed."""
        if time.monotonic() - self._checked < self._refresh_s:
            return False
        with self._refresh_lock:
            if time.monotonic() - self._checked < self._refresh_s:
                return False
            self._checked = time.monotonic()
            found = self._scan(self._snapshots)
            if found.keys() == self._snapshots.keys():
                return False
            if found.keys() - self._snapshots.keys():
                self._data = self._new_generation()  # index after ledger, as above
            self._snapshots = found
            return True

    def _scan(self, known: dict[str, SnapshotRef]) -> dict[str, SnapshotRef]:
        """Committed snapshots; only the ones not seen before are read and decrypted."""
        repo = self._meta
        live = set(repo.committed()) & set(repo.snapshot_ids())
        found = {sid: ref for sid, ref in known.items() if sid in live}
        for sid in sorted(live - found.keys() - self._unreadable):
            try:
                found[sid] = _ref(repo.load_snapshot(sid))
            except DeltavaultError as exc:
                # one damaged snapshot object must not hide the others
                self._unreadable.add(sid)
                warnings.warn(f"snapshot {sid[:12]} is not shown: {exc}", stacklevel=2)
        return found

    def _new_generation(self) -> Repository:
        """A repository instance with a freshly loaded, complete index."""
        old = self._meta
        fresh = Repository(old.store, old.config, old.crypto, old.key_id)
        fresh.record_events = False
        fresh.load_index()
        return fresh

    # --- trees ---------------------------------------------------------------

    def directory(self, tree_id: bytes) -> Directory:
        """A tree's entries (verified against its id when first read)."""
        with self._tree_lock:
            hit = self._trees.get(tree_id)
            if hit is not None:
                self._trees.move_to_end(tree_id)
                return hit
        tree = Tree.decode(self._data.load_blob(tree_id))
        nodes = {_name(n.name): n for n in tree.nodes}
        found = Directory(tuple(nodes), nodes)
        with self._tree_lock:
            if tree_id not in self._trees:
                self._trees[tree_id] = found
                self._tree_entries += len(nodes) + 1
                while self._tree_entries > self._tree_budget and len(self._trees) > 1:
                    _, old = self._trees.popitem(last=False)
                    self._tree_entries -= len(old.names) + 1
        return found

    def root(self, snapshot: SnapshotRef) -> bytes:
        """The root tree id of a snapshot."""
        return bytes.fromhex(snapshot.tree)

    # --- file content --------------------------------------------------------

    def blob_lengths(self, blob_ids: list[bytes]) -> list[int]:
        """Plaintext length of each blob, from the index (no data read)."""
        repo = self._data
        return [repo.locate(b).raw_length for b in blob_ids]

    def read_blob(self, blob_id: bytes) -> bytes:
        """One blob's plaintext, decrypted, decoded and re-hashed against its id.

        Data blobs bypass the repository's own small cache (which keeps trees
        and delta bases); the mount's :class:`~deltavault.mount.cache.ReadCache`
        holds them.

        Raises:
            RepositoryError: the blob is unindexed, its pack truncated or changed.
            BackendError: the store could not be read.
        """
        repo = self._data
        loc = repo.locate(blob_id)
        envelope = repo.objects.read_pack(loc.pack_id, ByteRange(loc.offset, loc.length))
        if len(envelope) != loc.length:
            raise IntegrityError(f"pack {loc.pack_id[:12]} is truncated")
        return repo.decode_blob(loc, envelope)
