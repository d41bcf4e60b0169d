"""The Store contract every backend implements.

A store is a flat namespace of immutable objects named by ``/``-separated
keys (``config``, ``data/ab/ab12…``, ``ledger/tile/0/000``). It knows nothing
of chunks, packs or encryption. Retry, rate limiting and metrics are wrapper
stores around a backend, not flags inside one.

Contract (checked by :mod:`deltavault.store.testing` for every backend):

* ``put`` is write-once: it creates the object atomically (readers see all of
  it or nothing) and raises :class:`~deltavault.errors.ObjectExists` if the
  key already exists. Content-addressed callers treat that as success.
* ``replace`` is the one way to change an object: a compare-and-swap against
  the version token from ``stat``/``get_versioned``. Used only for
  ``ledger/checkpoint``. A store that cannot make it atomic (an S3 server
  without conditional writes) says so with ``atomic_replace = False`` and
  refuses ``replace`` (:class:`~deltavault.errors.NoCompareAndSwap`) rather
  than race; its ``put`` is then create-if-absent only against sequential
  writers, which is enough for content-addressed and uniquely named objects.
* ``get`` raises :class:`~deltavault.errors.ObjectNotFound` for a missing key
  and supports a byte range.
* ``list`` yields every key under a prefix, in no particular order.
* ``stat`` and ``list`` report the object's modification time as the store
  keeps it (the server's clock, not the writer's): lock staleness is judged
  by it (docs/format.md §10).
* ``delete`` is idempotent except that a missing key raises ObjectNotFound;
  stores that forbid deletes raise :class:`~deltavault.errors.ObjectLocked`.
"""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import BinaryIO

from deltavault.errors import ObjectNotFound, UserError

_KEY_RE = re.compile(r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")


def check_key(key: str) -> str:
    """Reject keys that could escape a directory or mean different things.

    Args:
        key: an object key such as ``data/ab/ab12…``.

    Returns:
        The key unchanged.

    Raises:
        UserError: empty, absolute, ``..`` or unusual characters.
    """
    if not _KEY_RE.match(key) or any(part in (".", "..") for part in key.split("/")):
        raise UserError(f"invalid object key {key!r}")
    return key


@dataclass(frozen=True)
class ByteRange:
    """``length`` bytes starting at ``start`` (``length=None``: to the end)."""

    start: int
    length: int | None = None

    def __post_init__(self) -> None:
        if self.start < 0 or (self.length is not None and self.length < 0):
            raise UserError(f"invalid byte range {self.start}+{self.length}")


@dataclass(frozen=True)
class ObjectInfo:
    """What a store knows of an object without reading it.

    ``version`` is an opaque token for :meth:`Store.replace`: it changes
    whenever the content changes. ``mtime`` is when the store last wrote the
    object, by the store's own clock (timezone-aware UTC; None only for a
    third-party backend that cannot tell): another host's clock never enters
    a lock's age.
    """

    key: str
    size: int
    version: str
    mtime: datetime | None = None


class Store(ABC):
    """A backend holding the repository's objects."""

    #: ``replace`` is a true compare-and-swap and ``put`` a true create-if-absent
    #: (False: ``replace`` refuses, and the ledger cannot be appended here).
    atomic_replace: bool = True
    #: ``delete`` may succeed (False for append-only / WORM stores).
    supports_deletes: bool = True
    #: a forked child may go on using this store object (no connection, session or
    #: per-process budget is shared with the parent): a restore may then split
    #: its work over processes (restore/procs.py). True only where known.
    fork_safe: bool = False

    @abstractmethod
    def location(self) -> str:
        """A human-readable location (``/srv/repo``, ``s3://b/p``) for messages."""

    @abstractmethod
    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        """Return the object's bytes (or the given range of them)."""

    @abstractmethod
    def get_versioned(self, key: str) -> tuple[bytes, str]:
        """Return the object's bytes and its version token."""

    @abstractmethod
    def put(self, key: str, data: bytes | bytearray) -> None:
        """Create the object atomically; raise ObjectExists if it exists."""

    def put_file(self, key: str, fh: BinaryIO, size: int) -> None:
        """Like :meth:`put`, for the first ``size`` bytes of an open file.

        A backup's packs wait in temporary files (``repo.packs.PackBuilder``);
        a backend that can copy from a file without holding the object in
        memory overrides this. The default reads it whole and calls
        :meth:`put`, so a wrapper that acts on ``put`` sees every write.
        """
        fh.flush()
        data = bytearray()
        for block in file_blocks(fh.fileno(), 0, size):
            data += block
        self.put(key, data)

    @abstractmethod
    def replace(self, key: str, data: bytes, expected_version: str | None) -> str:
        """Compare-and-swap: write only if the current version is as expected.

        Args:
            key: object key.
            data: the new content.
            expected_version: the token read before, or None meaning the
                object must not exist yet.

        Returns:
            The new version token.

        Raises:
            VersionConflict: the object changed (or exists/does not exist).
        """

    @abstractmethod
    def stat(self, key: str) -> ObjectInfo:
        """Size, version and modification time of an object; ObjectNotFound if missing."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix``."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; ObjectNotFound if missing."""

    def exists(self, key: str) -> bool:
        """Whether an object exists under ``key``."""
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release connections; the store is unusable afterwards."""

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def file_blocks(fd: int, start: int, end: int, step: int = 1 << 20) -> Iterator[bytes]:
    """Bytes ``start`` to ``end`` of an open file, ``step`` at a time, by offset.

    A file shorter than ``end`` is an error, never a short object. Reading by
    offset leaves the file's position alone, so a retried write reads it again.
    """
    done = start
    while done < end:
        block = os.pread(fd, min(step, end - done), done)
        if not block:
            raise OSError(f"file ended at {done} of {end} bytes")
        yield block
        done += len(block)
