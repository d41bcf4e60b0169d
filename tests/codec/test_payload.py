"""Self-contained blob payloads (raw/zstd, docs/format.md §4) as the engine writes them:
round trips through the codec policy and hostile payloads through the registry."""

from __future__ import annotations

import os

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from deltavault.codec import CodecId, choose
from deltavault.codec.registry import decode
from deltavault.errors import FormatError
from tests.support.hostile import HOSTILE, ROUNDTRIP, decode_or_reject, mutations

VALID_ZSTD = zstandard.ZstdCompressor(level=3).compress(b"trade " * 500)


def encode_plain(data: bytes, level: int) -> tuple[int, bytes]:
    """What the backup writes for a chunk without a delta base."""
    enc = choose(data, None, None, "auto", level=level)
    return int(enc.codec_id), enc.payload


def decode_plain(codec: int, payload: bytes, raw_length: int) -> bytes:
    return decode(codec, payload, None, raw_length)


@given(st.binary(max_size=5000) | st.binary(max_size=50).map(lambda b: b * 200),
       st.integers(1, 9))
@ROUNDTRIP
def test_round_trip(data: bytes, level: int) -> None:
    codec, payload = encode_plain(data, level)
    assert codec in (CodecId.RAW, CodecId.ZSTD)
    assert decode_plain(codec, payload, len(data)) == data


def test_incompressible_data_is_stored_raw() -> None:
    data = os.urandom(300 * 1024)
    assert encode_plain(data, 3) == (CodecId.RAW, data)


def test_compressible_data_is_compressed() -> None:
    codec, payload = encode_plain(b"0" * 100_000, 3)
    assert codec == CodecId.ZSTD and len(payload) < 1000


@given(st.sampled_from([CodecId.RAW, CodecId.ZSTD]), mutations(VALID_ZSTD),
       st.integers(0, 1 << 20))
@HOSTILE
def test_hostile_payload(codec: int, payload: bytes, raw_length: int) -> None:
    out = decode_or_reject(lambda p: decode_plain(codec, p, raw_length), payload)
    if out is not None:
        assert len(out) == raw_length


def test_declared_size_beyond_raw_length_is_refused() -> None:
    with pytest.raises(FormatError):
        decode_plain(CodecId.ZSTD, VALID_ZSTD, 10)


def test_wrong_length_is_refused() -> None:
    with pytest.raises(FormatError):
        decode_plain(CodecId.ZSTD, VALID_ZSTD, 3001)
    with pytest.raises(FormatError):
        decode_plain(CodecId.RAW, b"abc", 4)


def test_zstd_bomb_without_declared_size_is_bounded() -> None:
    # a streamed frame has no content size; output must still stop at raw_length
    cobj = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    bomb = cobj.compress(b"\0" * (64 << 20)) + cobj.flush()
    with pytest.raises(FormatError):
        decode_plain(CodecId.ZSTD, bomb, 1000)


@pytest.mark.parametrize("codec", [CodecId.ZSTD_PATCH, 6, 127, 255])
def test_codecs_needing_a_base_or_unknown_are_refused(codec: int) -> None:
    with pytest.raises(FormatError):
        decode_plain(codec, b"x", 1)
