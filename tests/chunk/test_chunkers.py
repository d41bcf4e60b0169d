"""Chunkers tile files exactly, align to elements/pages, and localise changes."""

from __future__ import annotations

import hashlib
import io
import os
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltavault.chunk.base import ChunkRef
from deltavault.chunk.fastcdc import CdcParams, FastCdcChunker
from deltavault.chunk.npy import NpyChunker, parse_header
from deltavault.chunk.select import select_chunker
from deltavault.chunk.sqlite import SqliteChunker, consistent_copy

SMALL_CDC = CdcParams(min_size=1024, avg_size=4096, max_size=16384, seed=12345)


def _check_tiling(chunks: list[ChunkRef], data: bytes) -> None:
    offset = 0
    for c in chunks:
        assert c.offset == offset and c.length == len(c.data) > 0
        assert bytes(c.data) == data[offset:offset + c.length]
        offset += c.length
    assert offset == len(data)


def _digests(chunks: list[ChunkRef]) -> list[str]:
    return [hashlib.sha256(c.data).hexdigest() for c in chunks]


@settings(max_examples=50, deadline=None)
@given(data=st.binary(max_size=100_000))
def test_fastcdc_tiles_any_stream(data: bytes) -> None:
    _check_tiling(list(FastCdcChunker(SMALL_CDC).split(io.BytesIO(data))), data)


def test_fastcdc_seed_changes_boundaries() -> None:
    data = os.urandom(200_000)
    a = [c.offset for c in FastCdcChunker(SMALL_CDC).split(io.BytesIO(data))]
    b = [c.offset for c in FastCdcChunker(CdcParams(1024, 4096, 16384, seed=99)).split(
        io.BytesIO(data))]
    assert a != b


@pytest.mark.parametrize("dtype", ["<f8", "<f4", ">f8", "<i2", "V7", "<c16"])
@pytest.mark.parametrize("shape", [(0,), (5,), (1000, 37), (3, 70_001)])
def test_npy_tiles_and_aligns(tmp_path: Path, dtype: str, shape: tuple[int, ...]) -> None:
    arr = np.zeros(shape, dtype=dtype)
    path = tmp_path / "a.npy"
    np.save(path, arr)
    data = path.read_bytes()
    chunker = NpyChunker(chunk_bytes=10_000)
    chunks = list(chunker.split(path))
    _check_tiling(chunks, data)
    header = parse_header(data[:4096])
    assert header is not None and chunks[0].length == header.data_offset
    for c in chunks[1:-1]:
        assert c.length % arr.dtype.itemsize == 0
        assert c.length == (10_000 // arr.dtype.itemsize) * arr.dtype.itemsize
    expected = {"<f8": "f8", "<f4": "f4"}.get(dtype)
    if expected and len(shape) > 1 and 1 < shape[-1] <= 4096:
        expected += f":{shape[-1]}"  # a table: the row length, for column prediction
    assert all(c.hint == expected for c in chunks[1:])
    # a file held whole in memory is cut exactly the same way
    in_memory = chunker.split_buffer(data) or []
    assert [(c.offset, c.length, bytes(c.data), c.hint) for c in in_memory] == \
        [(c.offset, c.length, bytes(c.data), c.hint) for c in chunks]


def test_npy_one_element_change_changes_one_chunk(tmp_path: Path) -> None:
    arr = np.random.default_rng(0).normal(size=(2000, 100))
    np.save(tmp_path / "a.npy", arr)
    arr[1234, 56] += 0.01
    np.save(tmp_path / "b.npy", arr)
    chunker = NpyChunker(chunk_bytes=64 * 1024)
    a = _digests(list(chunker.split(tmp_path / "a.npy")))
    b = _digests(list(chunker.split(tmp_path / "b.npy")))
    assert len(a) == len(b) and sum(x != y for x, y in zip(a, b, strict=True)) == 1


@pytest.mark.parametrize("header", [
    b"\x93NUMPY\x01\x00\x10\x00{'descr': '<f8'}    \n",
    b"\x93NUMPY\x09\x00\x10\x00{'descr': '<f8'}    \n",
    b"\x93NUMPY\x01\x00\xff\xff{'descr': '<f8', 'fortran_order': False, 'shape': (3,), }",
    b"\x93NUMPY\x02\x00\xff\xff\xff\x7f",
    b"\x93NUMPY\x01\x00\x40\x00{'descr': 'O', 'fortran_order': False, 'shape': (3,), }       \n",
    b"\x93NUMPY\x01\x00\x40\x00{'descr': 'zz', 'fortran_order': False, 'shape': (3,), }      \n",
    b"\x93NUMPY\x01\x00\x40\x00{'descr': '<f8', 'fortran_order': 1, 'shape': (-3,), }       \n",
    b"\x93NUMPY\x01\x00\x40\x00" + b"(" * 60 + b"\n\n\n\n",
    b"\x93NUM",
])
def test_malformed_npy_falls_back_to_fastcdc(header: bytes) -> None:
    data = header + os.urandom(50_000)
    chunks = list(NpyChunker(fallback=FastCdcChunker(SMALL_CDC)).split(io.BytesIO(data)))
    _check_tiling(chunks, data)
    assert all(c.hint is None for c in chunks)


def _positions_db(path: Path, rows: int = 20_000) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE positions (id INTEGER PRIMARY KEY, account TEXT, "
                "symbol TEXT, qty REAL, avg_px REAL, updated INTEGER)")
    rng = np.random.default_rng(1)
    con.executemany("INSERT INTO positions VALUES (?,?,?,?,?,?)",
                    [(i, f"ACC{i % 300:04d}", f"SYM{i % 2000:05d}",
                      float(rng.integers(-1000, 1000)), round(float(rng.uniform(1, 500)), 2),
                      1_700_000_000) for i in range(rows)])
    con.commit()
    con.close()


def test_sqlite_tiles_and_one_row_changes_one_chunk(tmp_path: Path) -> None:
    db = tmp_path / "p.db"
    _positions_db(db)
    data0 = db.read_bytes()
    chunker = SqliteChunker(chunk_bytes=64 * 1024)
    before = list(chunker.split(db))
    _check_tiling(before, data0)
    assert all(c.length % 4096 == 0 and c.hint == "sqlite-page" for c in before)
    con = sqlite3.connect(db)
    con.execute("UPDATE positions SET qty = qty + 1 WHERE id = 15000")
    con.commit()
    con.close()
    after = _digests(list(chunker.split(db)))
    changed = [i for i, (x, y) in enumerate(zip(_digests(before), after, strict=True)) if x != y]
    # Page 1 (change counter) lives in chunk 0; the row's page in exactly one other chunk.
    assert 0 in changed and len([i for i in changed if i != 0]) == 1


@pytest.mark.parametrize("page_field", [b"\x00\x00", b"\x03\x00", b"\xff\xff", b"\x01\x00"])
def test_malformed_sqlite_header_falls_back(page_field: bytes) -> None:
    header = bytearray(b"SQLite format 3\x00" + bytes(84))
    header[16:18] = page_field
    data = bytes(header) + os.urandom(30_000)
    chunks = list(SqliteChunker(fallback=FastCdcChunker(SMALL_CDC)).split(io.BytesIO(data)))
    _check_tiling(chunks, data)
    assert all(c.hint is None for c in chunks)


def test_sqlite_page_size_one_means_65536() -> None:
    from deltavault.chunk.sqlite import page_size
    header = bytearray(b"SQLite format 3\x00" + bytes(84))
    header[16:18] = b"\x00\x01"
    assert page_size(bytes(header)) == 65536


def test_consistent_copy_of_live_wal_db(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    con = sqlite3.connect(db)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE t (x INTEGER)")
    con.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(1000)])
    con.commit()  # still in the WAL, not in the main file
    consistent_copy(db, tmp_path / "copy.db")
    con.close()
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("SELECT count(*) FROM t").fetchone() == (1000,)
    copy.close()


def test_select_by_magic_not_name(tmp_path: Path) -> None:
    _positions_db(tmp_path / "positions.bin", rows=10)
    np.save(tmp_path / "book.dat.npy", np.zeros(3))
    (tmp_path / "fake.npy").write_bytes(b"not an array")
    (tmp_path / "log.jsonl").write_bytes(b'{"a": 1}\n')
    assert select_chunker(tmp_path / "positions.bin").name == "sqlite"
    assert select_chunker(tmp_path / "book.dat.npy").name == "npy"
    assert select_chunker(tmp_path / "fake.npy").name == "fastcdc"
    assert select_chunker(tmp_path / "log.jsonl").name == "fastcdc"


@pytest.mark.parametrize("size", [0, 1, 4096, 256 * 1024, 600_000, 3_000_000])
def test_file_held_in_memory_is_cut_like_the_stream(tmp_path: Path, size: int) -> None:
    from deltavault.chunk.files import FileChunker

    data = os.urandom(size)
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    fc = FileChunker(CdcParams(seed=5))
    with path.open("rb", buffering=0) as fh:
        streamed = [(c.offset, c.length, bytes(c.data), c.hint) for c in fc.chunks(fh, str(path))]
    held = fc.split_buffer(data)
    assert held is not None
    assert [(c.offset, c.length, bytes(c.data), c.hint) for c in held] == streamed
