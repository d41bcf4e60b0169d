"""Pick the chunker for a file by its magic bytes (then by extension).

Magic wins over the name: a ``.db`` that is not SQLite, or an ``.npy`` that is
truncated, still chunks (FastCDC); a SQLite file named ``positions.bin`` still
gets page-aligned chunks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from deltavault.chunk import npy, sqlite
from deltavault.chunk.base import Chunker
from deltavault.chunk.fastcdc import CdcParams, FastCdcChunker


@dataclass(frozen=True, slots=True)
class ChunkerConfig:
    """Chunking parameters of a repository.

    Attributes:
        cdc: FastCDC parameters for streams (from the repository config).
        npy_chunk_bytes: data chunk size of ``.npy`` files (rounded to items).
        sqlite_chunk_bytes: chunk size of SQLite files (rounded to pages).
    """

    cdc: CdcParams = field(default_factory=CdcParams)
    npy_chunk_bytes: int = npy.DEFAULT_CHUNK_BYTES
    sqlite_chunk_bytes: int = sqlite.DEFAULT_CHUNK_BYTES


def chunker_for_magic(head: bytes, name: str, config: ChunkerConfig | None = None) -> Chunker:
    """The chunker for a file whose first bytes are ``head`` (>= 16 bytes if the file has them).

    Args:
        head: the file's first bytes.
        name: the file name (only its extension is used, as a tie-breaker).
        config: chunking parameters.
    """
    cfg = config or ChunkerConfig()
    stream = FastCdcChunker(cfg.cdc)
    if head.startswith(sqlite.MAGIC):
        return sqlite.SqliteChunker(cfg.sqlite_chunk_bytes, stream)
    if head.startswith(npy.MAGIC) or (not head and name.endswith(".npy")):
        return npy.NpyChunker(cfg.npy_chunk_bytes, stream)
    return stream


def select_chunker(path: str | os.PathLike[str], config: ChunkerConfig | None = None) -> Chunker:
    """The chunker for the file at ``path`` (reads its first 16 bytes)."""
    with open(path, "rb") as f:
        head = f.read(16)
    return chunker_for_magic(head, os.fspath(path), config)
