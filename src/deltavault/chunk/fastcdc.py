"""FastCDC (Xia et al., 2016/2020) content-defined chunking for generic streams.

Boundaries depend on content only, so an insertion early in a log or a config
shifts one chunk, not all of them. The gear table is XORed with the
repository's secret seed (docs/format.md §2.1) so that chunk sizes do not let a
storage operator confirm a guessed file. pyfastcdc's Cython kernel runs at
about 3 GB/s.

Streams are cut through our own window of ``max_size + READ_BLOCK`` bytes
(5 MiB) rather than pyfastcdc's ``cut_stream``, whose buffer is
``2 × max_size`` (8 MiB) and was the largest single allocation at the peak
of a day-1 backup of the bench's mixed state (tracemalloc). A cut depends on
at most ``max_size`` bytes from the chunk's start, so a chunk is cut only
once that much is in the window (or the stream has ended): the boundaries
are exactly ``cut_stream``'s (tests/chunk compare the two).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from pyfastcdc.cy import FastCDC

from deltavault.chunk.base import ChunkRef, PrefixedReader, Source, open_source

#: bytes read per refill beyond the ``max_size`` a cut may look ahead
READ_BLOCK = 1024 * 1024


@dataclass(frozen=True, slots=True)
class CdcParams:
    """FastCDC parameters as stored in the repository config's ``chunker`` map.

    Defaults are the repository defaults (docs/format.md §3): 256 KiB / 1 MiB /
    4 MiB, normalization level 1.
    """

    min_size: int = 256 * 1024
    avg_size: int = 1024 * 1024
    max_size: int = 4 * 1024 * 1024
    normalization: int = 1
    seed: int = 0


class FastCdcChunker:
    """Content-defined chunks of any byte stream (``hint`` is always None)."""

    name = "fastcdc"

    def __init__(self, params: CdcParams | None = None) -> None:
        self.params = params or CdcParams()
        p = self.params
        if p.normalization not in (0, 1, 2, 3):
            raise ValueError(f"normalization {p.normalization} not in 0..3")
        seed = p.seed & (2**63 - 1)
        self._cdc = FastCDC(p.avg_size, min_size=p.min_size, max_size=p.max_size,
                            normalized_chunking=p.normalization, seed=seed)

    def split(self, source: Source) -> Iterator[ChunkRef]:
        """Yield content-defined chunks of the whole file."""
        with open_source(source) as f:
            yield from self.split_stream(f)

    def cut_buffer(self, data: bytes | memoryview) -> Iterator[ChunkRef]:
        """Content-defined chunks of bytes in memory (views of ``data``, no copies)."""
        for c in self._cdc.cut_buf(data):
            yield ChunkRef(c.offset, c.length, c.data, None)

    def split_stream(self, stream: BinaryIO | PrefixedReader, start: int = 0, *,
                     read_block: int = READ_BLOCK) -> Iterator[ChunkRef]:
        """Chunk an open stream from its current position, numbering from ``start``.

        Each chunk's data is copied out of the reused window, so the caller
        may keep it after asking for the next chunk.
        """
        max_size = self.params.max_size
        window = bytearray(max_size + max(read_block, 1))
        view = memoryview(window)
        # files, pipes, BytesIO, PrefixedReader: all have readinto (BinaryIO does not say so)
        readinto: Callable[[memoryview], int | None] = stream.readinto  # type: ignore[union-attr]
        have, offset, eof = 0, start, False
        while True:
            while not eof and have < len(window):
                got = readinto(view[have:])
                if not got:
                    eof = True
                else:
                    have += got
            used = 0
            for c in self._cdc.cut_buf(view[:have]):
                if not eof and have - used < max_size:
                    break  # this cut could move with more bytes: refill first
                yield ChunkRef(offset, c.length, bytes(c.data), None)
                offset += c.length
                used += c.length
            if eof and used == have:
                return
            view[: have - used] = view[used:have]  # memoryview copies overlap safely
            have -= used
