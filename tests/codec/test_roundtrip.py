"""Round trips of every codec on hostile-shaped data (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from deltavault.codec import CODECS, CodecId, decimals, decode, encode, floats

FLOAT_DTYPES = ["<f2", "<f4", "<f8", ">f8"]
NUMERIC = [CodecId.FLOAT_XOR, CodecId.FLOAT_SUB, CodecId.DECIMAL, CodecId.DECIMAL_COL]


@st.composite
def float_bytes(draw: st.DrawFn) -> bytes:
    """Arrays of any float dtype incl. NaN/inf/-0.0/subnormals, plus odd tails."""
    dtype = draw(st.sampled_from(FLOAT_DTYPES))
    width = int(dtype[-1]) * 8
    arr = draw(hnp.arrays(dtype, st.integers(0, 300),
                          elements=st.floats(width=min(width, 64), allow_nan=True,
                                             allow_infinity=True, allow_subnormal=True)))
    tail = draw(st.binary(max_size=7))
    return bytes(arr.tobytes()) + tail


def _perturb(data: bytes, draw: st.DrawFn) -> bytes | None:
    """A base that is None, shorter, longer, equal, or a changed version of ``data``."""
    kind = draw(st.sampled_from(["none", "short", "long", "same", "flip", "random"]))
    if kind == "none":
        return None
    if kind == "short":
        return data[: draw(st.integers(0, len(data)))]
    if kind == "long":
        return data + draw(st.binary(min_size=1, max_size=64))
    if kind == "same":
        return data
    if kind == "flip" and data:
        b = bytearray(data)
        b[draw(st.integers(0, len(b) - 1))] ^= 1 << draw(st.integers(0, 7))
        return bytes(b)
    return draw(st.binary(max_size=len(data) + 16))


@st.composite
def data_and_base(draw: st.DrawFn) -> tuple[bytes, bytes | None]:
    data = draw(st.one_of(float_bytes(), st.binary(max_size=2000)))
    return data, _perturb(data, draw)


@settings(max_examples=300, deadline=None)
@given(db=data_and_base(), codec=st.sampled_from(list(CodecId)),
       hint=st.sampled_from(["f8", "f4", "f8:4", "f4:3", "f8:4096", None, "sqlite-page"]),
       level=st.sampled_from([1, 3]))
def test_every_codec_round_trips(db: tuple[bytes, bytes | None], codec: CodecId,
                                 hint: str | None, level: int) -> None:
    data, base = db
    payload = encode(codec, data, base, level=level, hint=hint)
    if payload is None:
        assert codec in (CodecId.DECIMAL, CodecId.DECIMAL_COL)
        return
    used_base = base if CODECS[codec].uses_base else None
    assert decode(codec, payload, used_base, len(data)) == data


@settings(max_examples=200, deadline=None)
@given(width=st.sampled_from([4, 8]),
       ticks=hnp.arrays("<i8", st.integers(1, 500), elements=st.integers(-10**9, 10**9)),
       k=st.integers(0, 4), moves=st.integers(-3, 3))
def test_decimal_applies_to_ticked_prices(width: int, ticks: np.ndarray, k: int,
                                          moves: int) -> None:
    dtype = "<f8" if width == 8 else "<f4"
    if width == 4:
        ticks = ticks % 10**6  # float32 holds ~7 digits
    old = (ticks / 10**k).astype(dtype)
    new = ((ticks + moves) / 10**k).astype(dtype)
    payload = decimals.try_encode(new.tobytes(), old.tobytes(), width=width)
    assert payload is not None
    assert decimals.decode(payload, old.tobytes(), new.nbytes) == new.tobytes()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, -0.0, 1e-310, 0.1 + 0.2, 2.0**60])
def test_decimal_falls_back_on_non_decimals(bad: float) -> None:
    arr = np.array([1.25, 2.5, bad, 3.75])
    assert decimals.try_encode(arr.tobytes(), None) is None


def test_decimal_ticks_times_float_tick_size() -> None:
    """``ticks * 0.01`` is not the nearest double to the decimal; mode 1 covers it."""
    ticks = np.arange(10_000, 20_000)
    prices = ticks * 0.01
    payload = decimals.try_encode(prices.tobytes(), None)
    assert payload is not None
    assert len(payload) < prices.nbytes // 20
    assert decimals.decode(payload, None, prices.nbytes) == prices.tobytes()


def test_identical_floats_cost_almost_nothing() -> None:
    arr = np.random.default_rng(0).normal(size=100_000)
    for enc in (floats.xor_encode, floats.sub_encode):
        payload = enc(arr.tobytes(), arr.tobytes())
        assert len(payload) < 200


def test_float_sub_beats_xor_across_binade() -> None:
    """Values just below a power of two nudged above it: XOR flips the exponent."""
    old = np.full(10_000, np.nextafter(2.0, 0.0))
    new = np.full(10_000, 2.0)
    xor = floats.xor_encode(new.tobytes(), old.tobytes())
    sub = floats.sub_encode(new.tobytes(), old.tobytes())
    assert len(sub) <= len(xor)
