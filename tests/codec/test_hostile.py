"""Hostile payloads: every decoder raises FormatError and nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltavault.codec import CODECS, CodecId, decode, encode
from deltavault.errors import FormatError

_rng = np.random.default_rng(7)
_TICKS = np.round(_rng.normal(10_000, 100, 4096))
_BASE = (_TICKS / 100).tobytes()
_DATA = ((_TICKS + 1) / 100).tobytes()


def _valid(codec: CodecId) -> bytes:
    payload = encode(codec, _DATA, _BASE, level=3, hint="f8")
    assert payload is not None
    return payload


def _attempt(codec: int, payload: bytes, base: bytes | None, raw_length: int) -> None:
    try:
        out = decode(codec, payload, base, raw_length)
    except FormatError:
        return
    # A decoder may succeed on damaged input (the blob id check catches it),
    # but never with the wrong size.
    assert len(out) == raw_length


@settings(max_examples=300, deadline=None)
@given(codec=st.integers(0, 9), payload=st.binary(max_size=300),
       base=st.one_of(st.none(), st.binary(max_size=300)), raw_length=st.integers(-5, 1 << 20))
def test_random_payloads(codec: int, payload: bytes, base: bytes | None, raw_length: int) -> None:
    if codec in CODECS and not CODECS[codec].uses_base:
        base = None
    _attempt(codec, payload, base, raw_length)


@settings(max_examples=300, deadline=None)
@given(codec=st.sampled_from(list(CodecId)), data=st.data())
def test_truncations_and_bit_flips(codec: CodecId, data: st.DataObject) -> None:
    payload = bytearray(_valid(codec))
    base = _BASE if CODECS[codec].uses_base else None
    action = data.draw(st.sampled_from(["truncate", "flip", "append"]))
    if action == "truncate":
        payload = payload[: data.draw(st.integers(0, max(0, len(payload) - 1)))]
    elif action == "flip" and payload:
        i = data.draw(st.integers(0, len(payload) - 1))
        payload[i] ^= 1 << data.draw(st.integers(0, 7))
    else:
        payload += data.draw(st.binary(min_size=1, max_size=16))
    _attempt(codec, bytes(payload), base, len(_DATA))


@pytest.mark.parametrize("codec", list(CodecId))
@pytest.mark.parametrize("delta", [-9, -1, 1, 8, 1 << 30])
def test_wrong_raw_length(codec: CodecId, delta: int) -> None:
    base = _BASE if CODECS[codec].uses_base else None
    with pytest.raises(FormatError):
        decode(codec, _valid(codec), base, len(_DATA) + delta)


@pytest.mark.parametrize("codec", [CodecId.FLOAT_XOR, CodecId.FLOAT_SUB, CodecId.DECIMAL,
                                   CodecId.DECIMAL_COL])
def test_numeric_needs_its_base(codec: CodecId) -> None:
    with pytest.raises(FormatError):
        decode(codec, _valid(codec), None, len(_DATA))
    with pytest.raises(FormatError):
        decode(codec, _valid(codec), _BASE[:100], len(_DATA))


def test_zip_bomb_is_refused_before_allocation() -> None:
    """A frame declaring 1 GiB for an expected 1 KiB never gets decompressed."""
    bomb = encode(CodecId.ZSTD, bytes(1 << 24))
    assert bomb is not None
    with pytest.raises(FormatError):
        decode(CodecId.ZSTD, bomb, None, 1024)


def test_unknown_codec_and_base_on_baseless_codec() -> None:
    with pytest.raises(FormatError):
        decode(99, b"", None, 0)
    with pytest.raises(FormatError):
        decode(CodecId.ZSTD, encode(CodecId.ZSTD, b"x") or b"", b"base", 1)
