"""Element-aligned chunking of NumPy ``.npy`` files.

Chunk 0 is the header (magic, version, header dict, padding). The data is cut
into fixed-size chunks whose size is a multiple of the item size, so chunk
``i`` of the new version holds exactly the elements of chunk ``i`` of the old
version: a changed value changes one chunk, and the numeric delta codecs
compare each element with the same element of the base. The header is
untrusted input; anything unexpected falls back to FastCDC over the file.

Default data chunk: 1 MiB (rounded down to whole items), measured best in
docs/codecs.md for order books and weights.
"""

from __future__ import annotations

import ast
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from deltavault.chunk.aligned import AlignedChunker
from deltavault.chunk.base import (
    ChunkRef,
    PrefixedReader,
    fixed_chunks,
    read_exactly,
)
from deltavault.chunk.fastcdc import FastCdcChunker

if TYPE_CHECKING:  # numpy is imported where a header is parsed, not with the module
    import numpy as np

MAGIC = b"\x93NUMPY"
#: numpy itself refuses headers over 10 000 bytes by default; v2/v3 allow 4 GiB,
#: which a hostile file would use to make us allocate and parse forever.
MAX_HEADER = 64 * 1024
DEFAULT_CHUNK_BYTES = 1024 * 1024
#: widest row a codec predicts across (a stride is recorded in a u16)
MAX_STRIDE = 4096
_FLOAT_HINTS = {"<f8": "f8", "<f4": "f4"}
#: CPython 3.11 keeps the AST converter's recursion counter per interpreter, not
#: per thread: two backup workers inside ``ast.literal_eval`` at once can fail with
#: SystemError ("AST constructor recursion depth mismatch"). Headers are short, so
#: one parse at a time costs nothing measurable.
_LITERAL_EVAL = threading.Lock()


@dataclass(frozen=True, slots=True)
class NpyHeader:
    """What chunking needs from a ``.npy`` header."""

    data_offset: int
    dtype: np.dtype[np.generic]
    shape: tuple[int, ...]
    fortran_order: bool

    @property
    def hint(self) -> str | None:
        """``"f8"``/``"f4"`` for little-endian floats, else None.

        A C-ordered array of rows (2-D or more, last axis > 1) adds its row
        length: ``"f8:4"`` is a float64 table of 4 interleaved columns, so the
        numeric codecs predict each value from the same column of the row
        before (docs/codecs.md, "columns"). Fortran order stores columns
        contiguously already: no stride.
        """
        kind = _FLOAT_HINTS.get(self.dtype.str)
        if kind is None:
            return None
        stride = self.shape[-1] if len(self.shape) >= 2 and not self.fortran_order else 1
        return f"{kind}:{stride}" if 1 < stride <= MAX_STRIDE else kind


def parse_header(prefix: bytes) -> NpyHeader | None:
    """Parse a ``.npy`` header from the file's first bytes; None if malformed.

    Args:
        prefix: at least the header's bytes (the caller reads ``MAX_HEADER + 12``).
    """
    if len(prefix) < 10 or not prefix.startswith(MAGIC):
        return None
    major = prefix[6]
    if major == 1:
        (hlen,), start = struct.unpack_from("<H", prefix, 8), 10
    elif major in (2, 3):
        if len(prefix) < 12:
            return None
        (hlen,), start = struct.unpack_from("<I", prefix, 8), 12
    else:
        return None
    if hlen > MAX_HEADER or start + hlen > len(prefix):
        return None
    try:
        text = prefix[start:start + hlen].decode("latin1" if major < 3 else "utf8")
        with _LITERAL_EVAL:
            meta = ast.literal_eval(text)
    except (ValueError, SyntaxError, UnicodeDecodeError, MemoryError, RecursionError, TypeError):
        return None
    if not isinstance(meta, dict) or set(meta) != {"descr", "fortran_order", "shape"}:
        return None
    descr, fortran, shape = meta["descr"], meta["fortran_order"], meta["shape"]
    if not isinstance(fortran, bool) or not isinstance(shape, tuple):
        return None
    if not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        return None
    try:
        import numpy as np

        dtype = np.dtype(descr)
    except (TypeError, ValueError, SyntaxError, RecursionError, MemoryError):
        return None
    if dtype.hasobject or dtype.itemsize == 0:
        return None  # pickled objects have no fixed element grid
    return NpyHeader(start + hlen, dtype, shape, fortran)


class NpyChunker(AlignedChunker):
    """Header chunk + item-aligned fixed-size data chunks for ``.npy`` files."""

    name = "npy"

    def __init__(self, chunk_bytes: int = DEFAULT_CHUNK_BYTES,
                 fallback: FastCdcChunker | None = None) -> None:
        super().__init__(chunk_bytes, fallback)

    def _split(self, f: BinaryIO) -> Iterator[ChunkRef]:
        prefix = read_exactly(f, MAX_HEADER + 12)
        header = parse_header(prefix)
        if header is None:
            yield from self.fallback.split_stream(PrefixedReader(prefix, f))
            return
        item = header.dtype.itemsize
        size = max(1, self.chunk_bytes // item) * item
        first = prefix[: header.data_offset]
        rest = PrefixedReader(prefix[header.data_offset:], f)
        yield from fixed_chunks(rest, 0, first, size, header.hint)

    def split_buffer(self, data: bytes) -> list[ChunkRef] | None:
        """The chunks :meth:`split` would yield for a file held whole in memory.

        None if the header is malformed (the caller falls back to FastCDC).
        Chunk data are zero-copy views of ``data``.
        """
        header = parse_header(data[: MAX_HEADER + 12])
        if header is None:
            return None
        view = memoryview(data)
        item = header.dtype.itemsize
        size = max(1, self.chunk_bytes // item) * item
        start = header.data_offset
        out = [ChunkRef(0, start, view[:start], None)] if start else []
        for off in range(start, len(data), size):
            block = view[off:off + size]
            out.append(ChunkRef(off, len(block), block, header.hint))
        return out
