"""Codec selection: the right codec for each kind of change, always decodable."""

from __future__ import annotations

import os

import numpy as np
import pytest

from deltavault.codec import CodecId, Policy, choose, decode

POLICIES: list[Policy] = ["fast", "balanced", "max", "auto"]
_rng = np.random.default_rng(3)


def _book(n: int = 131_072) -> tuple[bytes, bytes]:
    ticks = np.round(np.cumsum(_rng.normal(0, 3, n))) + 100_000
    old = ticks / 100
    new = (ticks + _rng.integers(-2, 3, n)) / 100
    return new.tobytes(), old.tobytes()


def _roundtrip(data: bytes, base: bytes | None, hint: str | None, policy: Policy) -> int:
    enc = choose(data, base, hint, policy)
    assert decode(enc.codec_id, enc.payload, base if enc.base_used else None, len(data)) == data
    return enc.codec_id


@pytest.mark.parametrize("policy", POLICIES)
def test_ticked_order_book_change_uses_a_delta_codec(policy: Policy) -> None:
    new, old = _book()
    enc = choose(new, old, "f8", policy)
    assert enc.codec_id in (CodecId.DECIMAL_COL, CodecId.FLOAT_SUB, CodecId.FLOAT_XOR)
    assert enc.base_used
    assert len(enc.payload) < len(new) // 8
    _roundtrip(new, old, "f8", policy)


@pytest.mark.parametrize("policy", POLICIES)
def test_random_bytes_are_stored_raw(policy: Policy) -> None:
    data = os.urandom(1 << 20)
    assert _roundtrip(data, None, None, policy) == CodecId.RAW
    assert _roundtrip(data, os.urandom(1 << 20), None, policy) == CodecId.RAW


@pytest.mark.parametrize("policy", ["auto", "fast"])
def test_weights_without_base_shuffled_with_base_float_delta(policy: Policy) -> None:
    w = _rng.normal(0, 0.05, 262_144).astype("<f4")
    w2 = (w + _rng.normal(0, 1e-4, w.size)).astype("<f4")
    # zstd saves ~7 % on float32 weights, their byte planes ~15 %: never raw
    assert _roundtrip(w2.tobytes(), None, "f4", policy) == CodecId.SHUFFLE
    assert len(choose(w2.tobytes(), None, "f4", policy).payload) < 0.9 * w2.nbytes
    enc = choose(w2.tobytes(), w.tobytes(), "f4", policy)
    assert enc.codec_id in (CodecId.FLOAT_SUB, CodecId.FLOAT_XOR)
    assert len(enc.payload) < 0.75 * w2.nbytes


@pytest.mark.parametrize("policy", POLICIES)
def test_page_change_uses_patch(policy: Policy) -> None:
    text = b"".join(b"row %08d qty %6d px %10.2f\n" % (i, i % 97, i * 0.37)
                    for i in range(20_000))[: 1 << 19]
    new = bytearray(text)
    for i in range(0, len(new), 5000):
        new[i:i + 4] = b"XXXX"
    enc = choose(bytes(new), text, "sqlite-page", policy)
    assert enc.codec_id == CodecId.ZSTD_PATCH and enc.base_used
    _roundtrip(bytes(new), text, "sqlite-page", policy)


def test_empty_and_tiny_chunks() -> None:
    for policy in POLICIES:
        assert choose(b"", None, None, policy).codec_id == CodecId.RAW
        _roundtrip(b"abc", b"abd", "f8", policy)
        _roundtrip(b"\x00" * 100, None, None, policy)
