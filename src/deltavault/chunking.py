"""Choose how a file is cut into chunks.

Content-defined chunking (FastCDC, secret gear seed) for everything by
default; the type-aware chunkers of :mod:`deltavault.chunk` (arrays, SQLite
pages) plug in here.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import IO

from pyfastcdc.cy import FastCDC

from deltavault.repo.repository import Repository


class FileChunker:
    """Yields ``(chunk bytes, hint)`` for a file object, streaming."""

    def __init__(self, repo: Repository) -> None:
        p = repo.config.chunker
        self._cdc = FastCDC(p.avg_size, min_size=p.min_size, max_size=p.max_size,
                            normalized_chunking=p.normalization, seed=repo.crypto.chunker_seed)

    def chunks(self, fh: IO[bytes], path: str) -> Iterator[tuple[bytes, str | None]]:
        """Chunks of ``fh`` in order; ``hint`` names the element type if known."""
        for chunk in self._cdc.cut_stream(fh):
            yield bytes(chunk.data), None
