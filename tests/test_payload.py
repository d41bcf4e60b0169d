"""Blob payload codecs raw/zstd (docs/format.md §4): round trips and hostile payloads."""

from __future__ import annotations

import os

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from deltavault import codec_ids
from deltavault.errors import FormatError
from deltavault.payload import decode_plain, encode_plain
from tests.hostile import HOSTILE, ROUNDTRIP, decode_or_reject, mutations

VALID_ZSTD = zstandard.ZstdCompressor(level=3).compress(b"trade " * 500)


@given(st.binary(max_size=5000) | st.binary(max_size=50).map(lambda b: b * 200),
       st.integers(1, 9))
@ROUNDTRIP
def test_round_trip(data: bytes, level: int) -> None:
    codec, payload = encode_plain(data, level)
    assert codec in (codec_ids.RAW, codec_ids.ZSTD)
    assert decode_plain(codec, payload, len(data)) == data


def test_incompressible_data_is_stored_raw() -> None:
    data = os.urandom(300 * 1024)
    assert encode_plain(data, 3) == (codec_ids.RAW, data)


def test_compressible_data_is_compressed() -> None:
    codec, payload = encode_plain(b"0" * 100_000, 3)
    assert codec == codec_ids.ZSTD and len(payload) < 1000


@given(st.sampled_from([codec_ids.RAW, codec_ids.ZSTD]), mutations(VALID_ZSTD),
       st.integers(0, 1 << 20))
@HOSTILE
def test_hostile_payload(codec: int, payload: bytes, raw_length: int) -> None:
    out = decode_or_reject(lambda p: decode_plain(codec, p, raw_length), payload)
    if out is not None:
        assert len(out) == raw_length


def test_declared_size_beyond_raw_length_is_refused() -> None:
    with pytest.raises(FormatError):
        decode_plain(codec_ids.ZSTD, VALID_ZSTD, 10)


def test_wrong_length_is_refused() -> None:
    with pytest.raises(FormatError):
        decode_plain(codec_ids.ZSTD, VALID_ZSTD, 3001)
    with pytest.raises(FormatError):
        decode_plain(codec_ids.RAW, b"abc", 4)


def test_zstd_bomb_without_declared_size_is_bounded() -> None:
    # a streamed frame has no content size; output must still stop at raw_length
    cobj = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    bomb = cobj.compress(b"\0" * (64 << 20)) + cobj.flush()
    with pytest.raises(FormatError):
        decode_plain(codec_ids.ZSTD, bomb, 1000)


@pytest.mark.parametrize("codec", sorted(codec_ids.CODECS_WITH_BASE | {6, 127, 255}))
def test_codecs_needing_a_base_are_refused(codec: int) -> None:
    with pytest.raises(FormatError):
        decode_plain(codec, b"x", 1)
