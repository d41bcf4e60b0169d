"""Choose how a file is cut into chunks, by its magic bytes.

``.npy`` arrays are cut on element boundaries after the header, SQLite
databases on page boundaries (after a consistent copy through SQLite's
online-backup API, so a live database is read as of one moment), everything
else by FastCDC with the repository's secret gear seed.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from typing import IO, BinaryIO, cast

from deltavault.chunk import npy as npy_chunk
from deltavault.chunk import sqlite as sqlite_chunk
from deltavault.chunk.base import ChunkRef
from deltavault.chunk.fastcdc import CdcParams, FastCdcChunker
from deltavault.chunk.select import ChunkerConfig, chunker_for_magic


class FileChunker:
    """Yields :class:`ChunkRef` s for a file, streaming, with type hints."""

    def __init__(self, cdc: CdcParams) -> None:
        """Args: cdc: the repository's FastCDC parameters and secret gear seed."""
        self.config = ChunkerConfig(cdc=cdc)
        self._stream = FastCdcChunker(cdc)
        self._npy = npy_chunk.NpyChunker(self.config.npy_chunk_bytes, self._stream)

    def chunks(self, fh: IO[bytes], path: str) -> Iterator[ChunkRef]:
        """Chunks of an open regular file (``path`` names it for the type choice)."""
        head = os.pread(fh.fileno(), 16, 0)
        if head.startswith(sqlite_chunk.MAGIC) and _is_live(path):
            yield from self._sqlite(path, fh)
            return
        yield from chunker_for_magic(head, path, self.config).split(cast(BinaryIO, fh))

    def split_buffer(self, data: bytes) -> list[ChunkRef] | None:
        """Chunks of a small file read whole, exactly as :meth:`chunks` would cut it.

        The per-file fast path of the backup (many small files per task): no
        file object, no chunker built per file, no copy of the chunk bytes
        (each chunk is a view of ``data``). None for SQLite databases, which
        need the live-database checks of :meth:`chunks`.
        """
        if data.startswith(sqlite_chunk.MAGIC):
            return None
        if data.startswith(npy_chunk.MAGIC):
            refs = self._npy.split_buffer(data)
            if refs is not None:
                return refs
        if len(data) <= self.config.cdc.min_size:
            return [ChunkRef(0, len(data), data, None)] if data else []
        return [ChunkRef(c.offset, c.length, c.data, None)
                for c in self._stream.cut_buffer(data)]

    def _sqlite(self, path: str, fh: IO[bytes]) -> Iterator[ChunkRef]:
        chunker = chunker_for_magic(sqlite_chunk.MAGIC, path, self.config)
        fd, tmp = tempfile.mkstemp(prefix="deltavault-sqlite-", suffix=".db")
        os.close(fd)
        try:
            try:
                sqlite_chunk.consistent_copy(path, tmp)
            except Exception:
                yield from chunker.split(cast(BinaryIO, fh))
                return
            yield from chunker.split(tmp)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)

    def stream(self, fh: IO[bytes]) -> Iterator[ChunkRef]:
        """Chunks of a pipe (stdin): content-defined only."""
        yield from self._stream.split(cast(BinaryIO, fh))


def _is_live(path: str) -> bool:
    """A database with a WAL or rollback journal may be mid-transaction on disk.

    Only then is a consistent copy needed; a quiescent database file is
    backed up as its exact bytes (so a restore is byte-identical).
    """
    for suffix in ("-wal", "-journal"):
        with contextlib.suppress(OSError):
            if os.path.getsize(path + suffix) > 0:
                return True
    return False
