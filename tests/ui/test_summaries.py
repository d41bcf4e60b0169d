"""File summaries: right on real arrays, databases and logs; never an exception on hostile bytes."""

from __future__ import annotations

import io
import itertools
import sqlite3
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from deltavault.ui.kinds import DB_PAGES, LOGS, MODEL_WEIGHTS, ORDER_BOOKS, data_kind
from deltavault.ui.summaries import summarize
from deltavault.ui.svg import spread_positions
from tests.support.hostile import HOSTILE


def _chunks(data: bytes, cuts: list[int]) -> list[bytes]:
    """``data`` cut at arbitrary places (blob boundaries are not element boundaries)."""
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points)]


def _npy(arr: np.ndarray) -> bytes:  # type: ignore[type-arg]
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


@given(st.lists(st.floats(allow_nan=True, allow_infinity=False, width=64), min_size=1,
                max_size=300), st.lists(st.integers(0, 10_000), max_size=6))
@HOSTILE
def test_npy_min_max_whatever_the_chunking(values: list[float], cuts: list[int]) -> None:
    arr = np.array(values, dtype="<f8").reshape(len(values), 1)
    data = _npy(arr)
    s = summarize("books/ES.npy", len(data), _chunks(data, cuts))
    facts = dict(s.facts)
    assert not s.error and facts["shape"] == f"{len(values)} × 1" and facts["dtype"] == "float64"
    finite = arr[~np.isnan(arr)]
    if finite.size:
        assert float(facts["min"]) == float(f"{finite.min():.10g}")
        assert float(facts["max"]) == float(f"{finite.max():.10g}")
    assert facts["NaN values"] == f"{int(np.isnan(arr).sum()):,}"


def test_sqlite_counts_and_jsonl_lines(tmp_path: Path) -> None:
    db = tmp_path / "positions.sqlite"
    con = sqlite3.connect(db)
    con.execute('CREATE TABLE "odd ""name""" (x)')
    con.execute("CREATE TABLE positions (a, b)")
    con.executemany("INSERT INTO positions VALUES (?, ?)", [(i, i) for i in range(1234)])
    con.commit()
    con.close()
    data = db.read_bytes()
    s = summarize("x/positions.bin", len(data), _chunks(data, [100, 5000]))  # magic, not name
    assert s.kind == "sqlite" and dict(s.tables) == {'odd "name"': 0, "positions": 1234}
    log = b'{"a":1}\n{"a":2}\n{"a":3}'
    s = summarize("logs/trades.jsonl", len(log), [log[:5], log[5:]])
    assert dict(s.facts)["lines"] == "3" and dict(s.facts)["last line"] == '{"a":3}'
    assert summarize("notes.txt", 3, [b"abc"]).kind == "none"


@given(st.binary(max_size=3000), st.sampled_from([b"", b"\x93NUMPY", b"\x93NUMPY\x01\x00",
                                                   b"\x93NUMPY\x02\x00", b"SQLite format 3\x00"]),
       st.sampled_from(["a.npy", "b.sqlite", "c.jsonl", "d.bin"]),
       st.lists(st.integers(0, 4000), max_size=4))
@HOSTILE
def test_hostile_bytes_give_a_summary_or_an_error_never_an_exception(
        body: bytes, magic: bytes, name: str, cuts: list[int]) -> None:
    data = magic + body
    s = summarize(name, len(data), _chunks(data, cuts))
    assert s.kind in ("npy", "sqlite", "jsonl", "none")


def test_npy_header_that_lies_about_its_size() -> None:
    data = _npy(np.zeros(10, dtype="<f4"))[:-8]  # two elements short
    s = summarize("m.npy", len(data), [data])
    assert "promises 40" in s.error


def test_kinds_by_path() -> None:
    assert data_kind("state/orderbooks/CME/ESZ6.npy") == ORDER_BOOKS
    assert data_kind("state/models/alpha/layer3.npy") == MODEL_WEIGHTS
    assert data_kind("srv/db/positions.sqlite") == DB_PAGES
    assert data_kind("srv/logs/trades.jsonl") == LOGS


@given(st.lists(st.floats(0, 1e6), min_size=1, max_size=200))
@HOSTILE
def test_timeline_positions_keep_order_and_bounds(offsets: list[float]) -> None:
    from datetime import UTC, datetime, timedelta

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    times = sorted(t0 + timedelta(seconds=o) for o in offsets)
    xs = spread_positions(times, 10, 910, 6)
    assert all(10 - 1e-6 <= x <= 910 + 1e-6 for x in xs)
    assert all(b >= a for a, b in itertools.pairwise(xs))
