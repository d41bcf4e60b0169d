"""Column-aware decimals, byte-shuffled floats and the size guard of the ``auto`` policy.

Issue 14: on an order book whose rows interleave price and size columns the
``decimal`` codec (previous-value prediction) stored more than plain zstd;
``decimal-col`` predicts from the same column one row up, and ``auto`` never
keeps an encoding larger than zstd's frame of the same chunk.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltavault.chunk.npy import NpyChunker
from deltavault.codec import CodecId, choose, columns, decimals, decode, encode
from deltavault.codec.general import zstd_compress
from deltavault.codec.policy import level_for

_rng = np.random.default_rng(14)


def _book(rows: int = 3000, levels: int = 20) -> np.ndarray:
    """L2 rows ``[bid_px, bid_sz, ask_px, ask_sz] × levels``: ticked prices, random sizes."""
    mid = np.round(np.cumsum(_rng.integers(-2, 3, rows))) + 212_950
    out = np.empty((rows, 4 * levels))
    for lv in range(levels):
        out[:, 4 * lv] = (mid - 1 - lv) / 100
        out[:, 4 * lv + 2] = (mid + 1 + lv) / 100
        out[:, 4 * lv + 1] = _rng.integers(1, 120, rows) / 100
        out[:, 4 * lv + 3] = _rng.integers(1, 120, rows) / 100
    return out


def test_order_book_columns_beat_zstd_and_previous_value_prediction() -> None:
    book = _book()
    data = book.tobytes()
    hint = f"f8:{book.shape[1]}"
    col = encode(CodecId.DECIMAL_COL, data, None, level=1, hint=hint)
    prev = decimals.try_encode(data, None, level=3, width=8)
    plain = zstd_compress(data, 3)
    assert col is not None and prev is not None
    assert len(col) < 0.75 * len(plain) and len(col) < 0.75 * len(prev)
    assert decode(CodecId.DECIMAL_COL, col, None, len(data)) == data
    enc = choose(data, None, hint, "auto")
    assert enc.codec_id == CodecId.DECIMAL_COL and not enc.base_used


def test_changed_book_uses_its_base_column_wise() -> None:
    old = _book(1000)
    new = old.copy()
    new[::7, ::4] += 0.01  # a tick on some prices
    hint = f"f8:{old.shape[1]}"
    enc = choose(new.tobytes(), old.tobytes(), hint, "auto")
    assert enc.base_used and len(enc.payload) < new.nbytes // 20
    assert decode(enc.codec_id, enc.payload, old.tobytes(), new.nbytes) == new.tobytes()


def test_npy_hint_carries_the_row_length() -> None:
    buf = io.BytesIO()
    np.save(buf, _book(100, 3))
    refs = list(NpyChunker().split(io.BytesIO(buf.getvalue())))
    assert refs[0].hint is None and refs[1].hint == "f8:12"
    assert NpyChunker().split_buffer(buf.getvalue()) is not None
    assert [r.hint for r in NpyChunker().split_buffer(buf.getvalue()) or []] == \
        [r.hint for r in refs]
    f_order = io.BytesIO()
    np.save(f_order, np.asfortranarray(_book(100, 3)))
    assert list(NpyChunker().split(io.BytesIO(f_order.getvalue())))[1].hint == "f8"


def test_guard_keeps_zstd_when_prediction_loses() -> None:
    # a few far-apart values in random order: zstd codes each in ~2 bits, while
    # a difference from any neighbour is as large as the values themselves
    data = _rng.choice(np.array([123456.78, -98765.43, 5555.55, 1.01]), 32768).tobytes()
    assert len(encode(CodecId.DECIMAL_COL, data, None, level=1, hint="f8") or b"") > \
        len(zstd_compress(data, 1))
    enc = choose(data, None, "f8", "auto")
    assert enc.codec_id == CodecId.ZSTD
    assert len(enc.payload) <= len(zstd_compress(data, level_for("f8", 3)))


@st.composite
def _numeric_chunk(draw: st.DrawFn) -> tuple[bytes, bytes | None, str]:
    kind = draw(st.sampled_from(["ticks", "repeat", "weights", "ints", "const"]))
    n = draw(st.integers(1, 20_000))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if kind == "ticks":
        arr = np.round(np.cumsum(rng.integers(-3, 4, n))) / 100 + 100
    elif kind == "repeat":
        arr = np.tile(rng.integers(-999, 999, 64) / 10, n // 64 + 1)[:n]
    elif kind == "weights":
        arr = rng.normal(0, 0.05, n)
    elif kind == "ints":
        arr = rng.integers(0, 1000, n).astype(float)
    else:
        arr = np.full(n, 3.25)
    dtype = draw(st.sampled_from(["<f8", "<f4"]))
    stride = draw(st.sampled_from([1, 2, 4, 80]))
    data = arr.astype(dtype).tobytes()
    base = None
    if draw(st.booleans()):
        base = (arr + rng.integers(-1, 2, n) / 100).astype(dtype).tobytes()
    return data, base, f"{dtype[1:]}:{stride}" if stride > 1 else dtype[1:]


@settings(max_examples=120, deadline=None)
@given(chunk=_numeric_chunk())
def test_auto_never_stores_more_than_zstd(chunk: tuple[bytes, bytes | None, str]) -> None:
    data, base, hint = chunk
    enc = choose(data, base, hint, "auto")
    plain = zstd_compress(data, level_for(hint, 3))
    if enc.codec_id == CodecId.RAW:
        # raw only where zstd saves under 2 % (it then costs no compression at all)
        assert len(plain) > 0.98 * len(data) - 64
    else:
        assert len(enc.payload) <= len(plain)
    assert decode(enc.codec_id, enc.payload, base if enc.base_used else None, len(data)) == data


@pytest.mark.parametrize("width", [4, 8])
def test_shuffle_round_trips_with_a_tail(width: int) -> None:
    data = _rng.normal(0, 1, 1001).astype(f"<f{width}").tobytes() + b"xyz"
    hint = f"f{width}"
    payload = encode(CodecId.SHUFFLE, data, None, level=1, hint=hint)
    assert payload is not None
    assert decode(CodecId.SHUFFLE, payload, None, len(data)) == data


@st.composite
def _decimal_rows(draw: st.DrawFn) -> tuple[bytes, bytes | None, int, int]:
    """Decimal values in rows of any width, with a base that is absent, shorter, longer
    or equal, with some values changed: every path of the decoder (base part, first
    row, columns seeded from a partial last row of the base)."""
    width = draw(st.sampled_from([4, 8]))
    stride = draw(st.integers(1, 40))
    n = draw(st.integers(0, 400))
    k = draw(st.integers(0, 4))
    top = draw(st.sampled_from([100, 30_000, 10**6]))  # residuals of 1, 2 and 4 bytes
    ints = draw(st.lists(st.integers(-top, top), min_size=n, max_size=n))
    floats = np.float32 if width == 4 else np.float64
    values = np.array(ints, dtype=np.int64)
    data = (values / 10.0**k).astype(floats).tobytes() + draw(st.binary(max_size=width - 1))
    kind = draw(st.sampled_from(["none", "short", "long", "same"]))
    base = None
    if kind != "none":
        b = values.copy()
        if kind == "short":
            b = b[:draw(st.integers(0, n))]
        elif kind == "long":
            b = np.concatenate([b, np.arange(draw(st.integers(1, 50)))])
        for i in draw(st.lists(st.integers(0, max(0, len(b) - 1)), max_size=8)) if len(b) else []:
            b[i] += draw(st.integers(1, top))  # base values the new data no longer has
        base = (b / 10.0**k).astype(floats).tobytes()
    return data, base, width, stride


@settings(max_examples=400, deadline=None)
@given(case=_decimal_rows())
def test_decimal_columns_round_trip(case: tuple[bytes, bytes | None, int, int]) -> None:
    data, base, width, stride = case
    payload = columns.try_encode(data, base, width=width, stride=stride)
    assert payload is not None  # every value is a decimal
    assert columns.decode(payload, base, len(data)) == data


def test_payload_names_the_hint_it_was_encoded_under() -> None:
    """Prune re-encodes a column-coded delta alone: the payload must give its row length back."""
    book = _book(500)
    payload = encode(CodecId.DECIMAL_COL, book.tobytes(), None, level=1,
                     hint=f"f8:{book.shape[1]}")
    assert payload is not None
    assert columns.payload_hint(payload) == f"f8:{book.shape[1]}"
    assert columns.payload_hint(payload[:5]) is None


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_payload_hint_of_hostile_bytes_is_a_hint_or_none(data: bytes) -> None:
    hint = columns.payload_hint(data)
    assert hint is None or hint.split(":")[0] in ("f4", "f8")
