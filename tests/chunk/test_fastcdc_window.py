"""Our windowed stream cuts exactly where pyfastcdc's ``cut_stream`` cuts.

Boundaries are what deduplicates one day against the last: a window that cut
one byte differently would store a whole new version of every large file. So
the window is compared with the library's own stream chunker on content with
natural cuts (random bytes), forced ``max_size`` cuts (long zero runs) and
both, through readers that return short reads, with windows barely larger
than ``max_size``.
"""

from __future__ import annotations

import io
import os

from hypothesis import given, settings
from hypothesis import strategies as st

from deltavault.chunk.base import PrefixedReader
from deltavault.chunk.fastcdc import CdcParams, FastCdcChunker

SMALL = CdcParams(min_size=256, avg_size=1024, max_size=4096, seed=7)


class _Trickle(io.RawIOBase):
    """A reader whose every read returns at most ``step`` bytes (a pipe, a socket)."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data, self._pos, self._step = data, 0, step

    def readable(self) -> bool:
        return True

    def readinto(self, buf: memoryview) -> int:  # type: ignore[override]
        n = min(len(buf), self._step, len(self._data) - self._pos)
        buf[:n] = self._data[self._pos:self._pos + n]
        self._pos += n
        return n


def _library_cuts(chunker: FastCdcChunker, data: bytes) -> list[tuple[int, int]]:
    return [(c.offset, c.length) for c in chunker._cdc.cut_stream(io.BytesIO(data))]


_segments = st.lists(
    st.one_of(st.binary(min_size=1, max_size=3000),
              st.integers(1, 20_000).map(bytes),  # zeros: only max_size cuts
              st.integers(1, 9000).map(os.urandom)),
    max_size=12)


@settings(max_examples=150, deadline=None)
@given(parts=_segments, read_block=st.integers(1, 6000), step=st.integers(1, 9000),
       prefix_len=st.integers(0, 5000))
def test_window_cuts_where_the_library_cuts(parts: list[bytes], read_block: int, step: int,
                                            prefix_len: int) -> None:
    data = b"".join(parts)
    chunker = FastCdcChunker(SMALL)
    prefix, rest = data[:prefix_len], data[prefix_len:]
    stream = PrefixedReader(prefix, _Trickle(rest, step))  # type: ignore[arg-type]
    got = list(chunker.split_stream(stream, start=100, read_block=read_block))
    assert [(c.offset - 100, c.length) for c in got] == _library_cuts(chunker, data)
    assert b"".join(bytes(c.data) for c in got) == data


def test_default_window_matches_at_repository_sizes() -> None:
    """4 MiB max chunks, the 1 MiB read block, 21 MiB of mixed content."""
    chunker = FastCdcChunker(CdcParams(seed=99))
    data = b"".join([os.urandom(5 << 20), bytes(9 << 20), os.urandom(3 << 20),
                     b"ab" * (2 << 20), os.urandom(12345)])
    got = [(c.offset, c.length) for c in chunker.split_stream(io.BytesIO(data))]
    assert got == _library_cuts(chunker, data)
    assert sum(n for _, n in got) == len(data)
