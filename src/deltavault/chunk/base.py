"""The chunker interface shared by every chunker, and streaming helpers.

A chunker turns one file into consecutive :class:`ChunkRef` s that tile it
exactly (offsets contiguous from 0, lengths summing to the size it read). It
reads the file as a stream with bounded memory — never the whole file — so a
4 GiB order-book archive costs a few chunks of RAM. ``data`` of each chunk is
an independent ``bytes`` object the caller may keep (queues in the pipeline
hold several at once).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO, Protocol

Source = str | os.PathLike[str] | BinaryIO


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """One chunk of a file.

    Attributes:
        offset: byte offset of the chunk in the file.
        length: its size in bytes (``len(data)``).
        data: the chunk's bytes.
        hint: element type for the codec policy (``"f8"``, ``"f4"``,
            ``"sqlite-page"``) or None for untyped bytes.
    """

    offset: int
    length: int
    data: bytes | memoryview
    hint: str | None = None


class ByteReader(Protocol):
    """Anything with ``read(n) -> bytes`` (files, pipes, :class:`PrefixedReader`)."""

    def read(self, n: int, /) -> bytes:
        """Up to ``n`` bytes; empty at end of file."""
        ...


class Chunker(Protocol):
    """Splits a file (path or binary file object) into chunks."""

    name: str

    def split(self, source: Source) -> Iterator[ChunkRef]:
        """Yield chunks tiling the file, reading it as a stream."""
        ...


@contextmanager
def open_source(source: Source) -> Iterator[BinaryIO]:
    """Open a path for reading, or pass an already open file through (unclosed)."""
    if isinstance(source, str | os.PathLike):
        with open(source, "rb", buffering=0) as f:
            yield f
    else:
        yield source


def read_exactly(f: ByteReader, n: int) -> bytes:
    """Read up to ``n`` bytes, fewer only at end of file (raw files may return short)."""
    parts: list[bytes] = []
    got = 0
    while got < n:
        block = f.read(n - got)
        if not block:
            break
        parts.append(block)
        got += len(block)
    return parts[0] if len(parts) == 1 else b"".join(parts)


class PrefixedReader:
    """A reader that first replays bytes already consumed, then the file.

    Lets a typed chunker sniff a header and still fall back to FastCDC over
    the whole file when the header is malformed, without seeking (the source
    may be a pipe).
    """

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        self._prefix = memoryview(prefix)
        self._rest = rest

    def readinto(self, buf: memoryview) -> int:
        """Fill ``buf`` from the prefix, then from the file."""
        if self._prefix:
            n = min(len(buf), len(self._prefix))
            buf[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        target = memoryview(buf).cast("B")
        if hasattr(self._rest, "readinto"):
            got = self._rest.readinto(target)
            return got or 0
        block = self._rest.read(len(target))
        target[: len(block)] = block
        return len(block)

    def read(self, n: int, /) -> bytes:
        """Up to ``n`` bytes: the rest of the prefix first, then the file."""
        if self._prefix:
            block = bytes(self._prefix[:n])
            self._prefix = self._prefix[n:]
            return block
        return self._rest.read(n)


def fixed_chunks(f: ByteReader, start: int, first: bytes | None, size: int,
                 hint: str | None) -> Iterator[ChunkRef]:
    """Yield ``first`` (if any) then fixed ``size`` chunks until end of file.

    Args:
        f: the file, positioned just after ``first``.
        start: file offset of ``first`` (or of the next chunk if ``first`` is None).
        first: an already read leading chunk (a header), or None.
        size: chunk size for the rest; the last chunk may be shorter.
        hint: hint for the fixed-size chunks.
    """
    offset = start
    if first:
        yield ChunkRef(offset, len(first), first, None)
        offset += len(first)
    while True:
        block = read_exactly(f, size)
        if not block:
            return
        yield ChunkRef(offset, len(block), block, hint)
        offset += len(block)

