"""Shared shape of the fixed-grid chunkers (``.npy`` elements, SQLite pages)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from deltavault.chunk.base import ChunkRef, Source, open_source
from deltavault.chunk.fastcdc import FastCdcChunker


class AlignedChunker:
    """Fixed-size chunks on a format's element or page grid; FastCDC if malformed.

    Subclasses implement ``_split(f)``; this class holds the chunk size, the
    fallback chunker and the opening of the source.
    """

    name = "aligned"

    def __init__(self, chunk_bytes: int, fallback: FastCdcChunker | None = None) -> None:
        if chunk_bytes <= 0:
            raise ValueError("chunk_bytes must be positive")
        self.chunk_bytes = chunk_bytes
        self.fallback = fallback or FastCdcChunker()

    def split(self, source: Source) -> Iterator[ChunkRef]:
        """Yield the file's chunks, reading it as a stream."""
        with open_source(source) as f:
            yield from self._split(f)

    def _split(self, f: BinaryIO) -> Iterator[ChunkRef]:
        raise NotImplementedError
