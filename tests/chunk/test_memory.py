"""Chunkers stream: memory stays at a few chunks whatever the file size."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from deltavault.chunk.fastcdc import FastCdcChunker
from deltavault.chunk.npy import NpyChunker
from deltavault.chunk.sqlite import SqliteChunker

SIZE = 300 * 1024 * 1024


def _sparse(path: Path, header: bytes) -> Path:
    """A 300 MiB file that costs no disk: a header then a hole."""
    with open(path, "wb") as f:
        f.write(header)
        f.truncate(SIZE)
    return path


def _npy_header() -> bytes:
    n = (SIZE - 128) // 8
    text = "{'descr': '<f8', 'fortran_order': False, 'shape': (" + str(n) + ",), }"
    text += " " * (128 - 10 - len(text) - 1) + "\n"
    return b"\x93NUMPY\x01\x00" + (128 - 10).to_bytes(2, "little") + text.encode()


def _sqlite_header() -> bytes:
    h = bytearray(b"SQLite format 3\x00" + bytes(84))
    h[16:18] = (4096).to_bytes(2, "big")
    return bytes(h)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["fastcdc", "npy", "sqlite"])
def test_peak_memory_is_a_few_chunks(tmp_path: Path, kind: str) -> None:
    if kind == "npy":
        path, chunker, max_chunk = (_sparse(tmp_path / "a.npy", _npy_header()),
                                    NpyChunker(), 1 << 20)
        assert np.load(path, mmap_mode="r").shape == ((SIZE - 128) // 8,)
    elif kind == "sqlite":
        path, chunker, max_chunk = (_sparse(tmp_path / "a.db", _sqlite_header()),
                                    SqliteChunker(), 1 << 16)
    else:
        path, chunker, max_chunk = (_sparse(tmp_path / "a.bin", b"x"), FastCdcChunker(),
                                    4 << 20)
    tracemalloc.start()
    try:
        total = 0
        for ref in chunker.split(path):
            total += ref.length
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == SIZE
    assert peak < 4 * max_chunk + (1 << 20), f"peak {peak} bytes"
