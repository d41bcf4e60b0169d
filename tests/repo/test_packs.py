"""Pack files (docs/format.md §5): round trips and hostile bytes."""

from __future__ import annotations

import hashlib
import struct
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltavault.codec.registry import CODECS_REQUIRING_BASE as CODECS_WITH_BASE
from deltavault.codec.registry import KNOWN_CODECS
from deltavault.errors import DeltavaultError, FormatError, IntegrityError
from deltavault.repo.crypto import OVERHEAD, Crypto, MasterKey
from deltavault.repo.layout import pack_key
from deltavault.repo.packs import (
    ENTRY_SIZE,
    PACK_MAGIC,
    TRAILER_SIZE,
    PackBuilder,
    PackEntry,
    decode_header,
    encode_header,
    parse_pack,
    split_trailer,
)
from deltavault.store.base import file_blocks
from tests.support.hostile import HOSTILE, ROUNDTRIP, decode_or_reject, mutations, single_flips

CRYPTO = Crypto(MasterKey(bytes(range(32))))


@st.composite
def entries(draw: st.DrawFn) -> list[PackEntry]:
    out = []
    offset = 0
    for _ in range(draw(st.integers(0, 8))):
        codec = draw(st.sampled_from(sorted(KNOWN_CODECS)))
        base = draw(st.binary(min_size=32, max_size=32).filter(any)) \
            if codec in CODECS_WITH_BASE else None
        length = draw(st.integers(OVERHEAD, 2**32 - 1))
        out.append(PackEntry(draw(st.sampled_from([0, 1])), codec, offset, length,
                             draw(st.integers(0, 2**32 - 1)),
                             draw(st.binary(min_size=32, max_size=32)), base))
        offset += length
    return out


def _pack(blobs: list[bytes], *, spool: bool = False) -> tuple[str, bytes, list[PackEntry]]:
    b = PackBuilder(spool=spool)
    for i, plain in enumerate(blobs):
        bid = CRYPTO.blob_id(plain)
        b.add(type=i % 2, codec=0, blob_id=bid, raw_length=len(plain),
              envelope=CRYPTO.seal_blob(bid, plain))
    return _spooled(b) if spool else b.finish(CRYPTO)


def _spooled(b: PackBuilder) -> tuple[str, bytes, list[PackEntry]]:
    """A spooled builder finished, and the pack read from its spool file."""
    pack_id, fh, size, es = b.finish_spooled(CRYPTO)
    with fh:
        return pack_id, b"".join(file_blocks(fh.fileno(), 0, size)), es


VALID_ID, VALID_PACK, VALID_ENTRIES = _pack([b"alpha" * 10, b"", b"gamma" * 100])


@given(entries())
@ROUNDTRIP
def test_header_round_trip(es: list[PackEntry]) -> None:
    total = sum(e.length for e in es)
    header = encode_header(es)
    assert len(header) == 8 + ENTRY_SIZE * len(es)
    assert decode_header(header, total) == es


@given(st.lists(st.binary(max_size=300), max_size=6), st.booleans())
@ROUNDTRIP
def test_pack_round_trip(blobs: list[bytes], spool: bool) -> None:
    """In memory or spooled to a temporary file, a pack is the same format."""
    pack_id, data, es = _pack(blobs, spool=spool)
    assert pack_id == hashlib.sha256(data).hexdigest()
    assert data.endswith(PACK_MAGIC)
    assert parse_pack(data, CRYPTO) == es
    for e, plain in zip(es, blobs, strict=True):
        envelope = data[e.offset : e.offset + e.length]
        assert CRYPTO.open_blob(e.id, envelope) == plain
        assert e.raw_length == len(plain)


def test_pack_key_is_sharded_by_prefix() -> None:
    assert pack_key("ab" + "0" * 62) == "data/ab/ab" + "0" * 62


@given(mutations(encode_header(VALID_ENTRIES)), st.integers(0, 2**32))
@HOSTILE
def test_decode_header_rejects_hostile_bytes(data: bytes, length: int) -> None:
    decode_or_reject(lambda d: decode_header(d, length), data)


@given(st.binary(min_size=0, max_size=16), st.integers(-5, 2**40))
@HOSTILE
def test_split_trailer_rejects_hostile_bytes(tail: bytes, size: int) -> None:
    hlen = decode_or_reject(lambda t: split_trailer(size, t), tail)
    if hlen is not None:
        assert OVERHEAD <= hlen <= size - TRAILER_SIZE


@given(mutations(VALID_PACK))
@HOSTILE
def test_parse_pack_rejects_hostile_bytes(data: bytes) -> None:
    decode_or_reject(lambda d: parse_pack(d, CRYPTO), data)


HEADER_START = len(VALID_PACK) - TRAILER_SIZE - struct.unpack("<I", VALID_PACK[-8:-4])[0]
WINDOW = HEADER_START - 40  # the end of the last blob, then the header and trailer


@given(single_flips(VALID_PACK[WINDOW:]))
@HOSTILE
def test_any_flip_in_header_or_trailer_is_detected(tail: bytes) -> None:
    # The header is authenticated, so a flip there (or in its length) never parses;
    # a flip inside a blob is not the header's business (blobs have their own tags).
    data = VALID_PACK[:WINDOW] + tail
    changed = next(i for i in range(len(data)) if data[i] != VALID_PACK[i])
    if changed >= HEADER_START:
        with pytest.raises((FormatError, IntegrityError)):
            parse_pack(data, CRYPTO)
    else:
        assert parse_pack(data, CRYPTO) == VALID_ENTRIES


def test_header_must_tile_the_data_exactly() -> None:
    header = encode_header(VALID_ENTRIES)
    total = sum(e.length for e in VALID_ENTRIES)
    for wrong in (total - 1, total + 1, 0):
        with pytest.raises(FormatError):
            decode_header(header, wrong)


@pytest.mark.parametrize("field,value", [("type", 2), ("codec", 99), ("length", OVERHEAD - 1)])
def test_header_field_out_of_range_is_rejected(field: str, value: int) -> None:
    e = VALID_ENTRIES[0]
    bad = PackEntry(**{**e.__dict__, field: value})
    with pytest.raises(FormatError):
        decode_header(encode_header([bad]), bad.length)


def test_base_must_fit_codec() -> None:
    e = VALID_ENTRIES[0]
    with pytest.raises(FormatError):  # raw codec with a base
        decode_header(encode_header([PackEntry(**{**e.__dict__, "base": b"\1" * 32})]),
                      e.length)
    with pytest.raises(FormatError):  # delta codec without one
        decode_header(encode_header([PackEntry(**{**e.__dict__, "codec": 2})]), e.length)


def test_huge_count_is_refused_without_allocating() -> None:
    with pytest.raises(FormatError):
        decode_header(b"DVH1" + struct.pack("<I", 2**32 - 1), 0)


def test_header_of_another_role_does_not_open() -> None:
    # an index envelope moved to the place of a pack header fails authentication
    fake_header = CRYPTO.seal(b"dv1:index", encode_header(VALID_ENTRIES))
    data = VALID_PACK[: VALID_ENTRIES[-1].offset + VALID_ENTRIES[-1].length]
    data += fake_header + struct.pack("<I4s", len(fake_header), PACK_MAGIC)
    with pytest.raises(DeltavaultError):
        parse_pack(data, CRYPTO)


def test_a_spooled_pack_keeps_its_blobs_out_of_memory_and_leaves_no_file(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The blobs wait in an unlinked file that becomes the pack; discard closes it."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    blobs = [bytes([i]) * 70_000 for i in range(5)]
    b = PackBuilder(spool=True)
    for plain in blobs:
        bid = CRYPTO.blob_id(plain)
        b.add(type=0, codec=0, blob_id=bid, raw_length=len(plain),
              envelope=CRYPTO.seal_blob(bid, plain))
    assert not b._buf and b.size > 5 * 70_000
    assert not list(tmp_path.iterdir()), "the spool file has a name someone could leave behind"
    spool = b._file
    assert spool is not None and spool.tell() == b.size
    with pytest.raises(ValueError, match="finish_spooled"):
        b.finish(CRYPTO)
    pack_id, data, es = _spooled(b)
    assert spool.closed and pack_id == hashlib.sha256(data).hexdigest()
    assert [CRYPTO.open_blob(e.id, bytes(data[e.offset:e.offset + e.length])) for e in es] \
        == blobs
    dropped = PackBuilder(spool=True)
    dropped.add(type=0, codec=0, blob_id=bytes(32), raw_length=1, envelope=bytes(OVERHEAD))
    held = dropped._file
    dropped.discard()
    assert held is not None and held.closed


def test_a_spool_file_that_lost_bytes_is_an_error_not_a_short_pack() -> None:
    b = PackBuilder(spool=True)
    b.add(type=0, codec=0, blob_id=bytes(32), raw_length=1, envelope=bytes(OVERHEAD + 100))
    assert b._file is not None
    b._file.truncate(50)
    spool = b._file
    with pytest.raises(OSError, match="ended at 50 of"):
        b.finish_spooled(CRYPTO)
    assert spool.closed
