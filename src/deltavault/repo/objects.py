"""A repository's stored objects by kind, keyless: the one caller of the Store for them.

Everything that reads or writes packs, index files, snapshot objects and pack
lists goes through :class:`RepositoryObjects`, which names them with
:mod:`deltavault.repo.layout`. It never decrypts: :class:`Repository` adds the
keys on top, and keyless operations (audit, copy, repair) use it directly.
The ledger (``ledger/…``), locks and key files have owners of their own
(:mod:`deltavault.ledger.storage`, :mod:`deltavault.repo.locks`,
:class:`~deltavault.repo.repository.Repository`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import BinaryIO

from deltavault.errors import ObjectExists
from deltavault.repo import layout
from deltavault.repo.snapshot import decode_packlist, encode_packlist
from deltavault.store.base import ByteRange, Store


def _unguarded() -> None:
    return None


class RepositoryObjects:
    """Packs, index files, snapshots and pack lists of one repository in a store.

    ``guard`` runs before every write and delete of them: :class:`Repository`
    sets it to check the repository lock it holds (docs/format.md §10), so an
    operation whose lock was lost stops before its next commit point.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.guard: Callable[[], None] = _unguarded

    def location(self) -> str:
        """Where the repository is, for messages."""
        return self.store.location()

    # --- any object, byte for byte (copy, repair) --------------------------------

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """The stored bytes of one object."""
        return self.store.get(key, byte_range)

    def exists(self, key: str) -> bool:
        """Whether an object exists."""
        return self.store.exists(key)

    def put_once(self, key: str, data: bytes | bytearray) -> None:
        """Write-once put that accepts an identical existing object (a retried write).

        Raises:
            ObjectExists: the key holds different bytes.
        """
        self.guard()
        try:
            self.store.put(key, data)
        except ObjectExists:
            if self.store.get(key) != data:
                raise

    def put_named(self, key: str, data: bytes | bytearray) -> None:
        """Write a content-addressed object; an existing one has the same bytes by name."""
        self.guard()
        with contextlib.suppress(ObjectExists):
            self.store.put(key, data)

    def delete(self, key: str) -> None:
        """Delete one object (ObjectNotFound, ObjectLocked propagate)."""
        self.guard()
        self.store.delete(key)

    def listing(self, prefix: str) -> list[tuple[str, int]]:
        """(key, size) of every object under ``prefix``, sorted by key."""
        return sorted((i.key, i.size) for i in self.store.list(prefix))

    # --- packs --------------------------------------------------------------------

    def pack_sizes(self) -> dict[str, int]:
        """Every stored pack id with its size."""
        return {layout.name_of(i.key): i.size for i in self.store.list(layout.DATA_PREFIX)}

    def read_pack(self, pack_id: str, byte_range: ByteRange | None = None) -> bytes:
        """A pack's bytes, or a range of them."""
        return self.store.get(layout.pack_key(pack_id), byte_range)

    def write_pack(self, pack_id: str, data: bytes | bytearray) -> None:
        """Store a pack (named by the SHA-256 of ``data``)."""
        self.put_named(layout.pack_key(pack_id), data)

    def write_pack_file(self, pack_id: str, fh: BinaryIO, size: int) -> None:
        """Store a pack from the first ``size`` bytes of a file (named by their SHA-256)."""
        self.guard()
        with contextlib.suppress(ObjectExists):
            self.store.put_file(layout.pack_key(pack_id), fh, size)

    def delete_pack(self, pack_id: str) -> None:
        """Delete a pack."""
        self.delete(layout.pack_key(pack_id))

    # --- index files ----------------------------------------------------------------

    def index_ids(self) -> list[str]:
        """Every stored index file id."""
        return [layout.name_of(i.key) for i in self.store.list(layout.INDEX_PREFIX)]

    def read_index(self, index_id: str) -> bytes:
        """An index file's stored (encrypted) bytes."""
        return self.store.get(layout.index_key(index_id))

    def write_index(self, index_id: str, data: bytes) -> None:
        """Store an index file (named by the SHA-256 of ``data``)."""
        self.put_named(layout.index_key(index_id), data)

    def delete_index(self, index_id: str) -> None:
        """Delete an index file."""
        self.delete(layout.index_key(index_id))

    # --- snapshots and pack lists -----------------------------------------------------

    def snapshot_ids(self) -> list[str]:
        """Every stored snapshot object id (committed or not)."""
        return [layout.name_of(i.key) for i in self.store.list(layout.SNAPSHOT_PREFIX)]

    def read_snapshot(self, snapshot_id: str) -> bytes:
        """A snapshot object's stored (encrypted) bytes."""
        return self.store.get(layout.snapshot_key(snapshot_id))

    def write_snapshot(self, snapshot_id: str, data: bytes) -> None:
        """Store a snapshot object (named by the SHA-256 of ``data``)."""
        self.put_named(layout.snapshot_key(snapshot_id), data)

    def delete_snapshot(self, snapshot_id: str) -> None:
        """Delete a snapshot object."""
        self.delete(layout.snapshot_key(snapshot_id))

    def packlist_ids(self) -> list[str]:
        """Every snapshot id that has a stored pack list."""
        return [layout.name_of(i.key) for i in self.store.list(layout.PACKLIST_PREFIX)]

    def read_packlist(self, snapshot_id: str) -> list[str]:
        """The pack ids a snapshot's pack list names (parsed as hostile input)."""
        return decode_packlist(self.store.get(layout.packlist_key(snapshot_id)))

    def write_packlist(self, snapshot_id: str, pack_ids: set[str] | list[str]) -> None:
        """Store a snapshot's pack list (write-once; a retry with the same list is fine)."""
        self.put_once(layout.packlist_key(snapshot_id), encode_packlist(pack_ids))

    def delete_packlist(self, snapshot_id: str) -> None:
        """Delete a snapshot's pack list."""
        self.delete(layout.packlist_key(snapshot_id))

    # --- fixed objects ------------------------------------------------------------------

    def read_config(self) -> bytes:
        """The plaintext ``config`` object."""
        return self.store.get(layout.CONFIG_KEY)

    def is_replica(self) -> bool:
        """Whether ``copy`` made this repository (it then records no ledger events)."""
        return self.store.exists(layout.REPLICA_KEY)
