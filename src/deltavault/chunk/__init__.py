"""Chunkers: FastCDC for streams, element-aligned for .npy, page-aligned for SQLite.

Public API used by the backup pipeline::

    chunker = select_chunker(path, config)      # by magic bytes
    for ref in chunker.split(path):             # bounded memory
        ...  # ref.offset, ref.length, ref.data, ref.hint → codec.choose(...)
"""

from deltavault.chunk.base import Chunker, ChunkRef
from deltavault.chunk.fastcdc import CdcParams, FastCdcChunker
from deltavault.chunk.npy import NpyChunker
from deltavault.chunk.select import ChunkerConfig, chunker_for_magic, select_chunker
from deltavault.chunk.sqlite import SqliteChunker, consistent_copy

__all__ = [
    "CdcParams",
    "ChunkRef",
    "Chunker",
    "ChunkerConfig",
    "FastCdcChunker",
    "NpyChunker",
    "SqliteChunker",
    "chunker_for_magic",
    "consistent_copy",
    "select_chunker",
]
