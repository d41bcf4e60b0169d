"""Codec ids (docs/format.md §4) mapped to their encode/decode functions.

The pack reader calls :func:`decode` with the codec id from the pack header;
the writer gets its payload from :func:`deltavault.codec.policy.choose` or,
for a fixed codec, :func:`encode`. Every codec here is a pair of pure
functions; none does I/O or keeps state between calls, so they are safe to
call from many threads (zstd and numpy release the GIL).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

from deltavault.codec import general
from deltavault.codec.general import Buffer
from deltavault.codec.hints import stride_of, width_of
from deltavault.errors import FormatError


class CodecId(IntEnum):
    """Codec ids as stored in pack headers and index records."""

    RAW = 0
    ZSTD = 1
    ZSTD_PATCH = 2
    FLOAT_XOR = 3
    FLOAT_SUB = 4
    DECIMAL = 5
    SHUFFLE = 6
    DECIMAL_COL = 7


EncodeFn = Callable[[Buffer, Buffer | None, int, str | None], bytes | None]
DecodeFn = Callable[[Buffer, Buffer | None, int], bytes]


@dataclass(frozen=True, slots=True)
class Codec:
    """One codec: its id, name, whether it can use a base, and its functions.

    ``encode(data, base, level, hint)`` returns None when the codec does not
    apply to the data (only ``decimal`` and ``decimal-col`` do that).
    """

    id: CodecId
    name: str
    uses_base: bool
    encode: EncodeFn
    decode: DecodeFn


def _raw(data: Buffer, base: Buffer | None, level: int, hint: str | None) -> bytes:
    return general.raw_encode(data)


def _zstd(data: Buffer, base: Buffer | None, level: int, hint: str | None) -> bytes:
    return general.zstd_encode(data, level=level)


def _patch(data: Buffer, base: Buffer | None, level: int, hint: str | None) -> bytes:
    return general.patch_encode(data, base, level=level)


# The numeric codecs (numpy) are imported when first used: a process that
# only stores text and random bytes (the backup's sealer) never loads numpy.


def _xor(data: Buffer, base: Buffer | None, level: int, hint: str | None) -> bytes:
    from deltavault.codec import floats

    return floats.xor_encode(data, base, level=level, width=width_of(hint))


def _sub(data: Buffer, base: Buffer | None, level: int, hint: str | None) -> bytes:
    from deltavault.codec import floats

    return floats.sub_encode(data, base, level=level, width=width_of(hint))


def _decimal(data: Buffer, base: Buffer | None, level: int, hint: str | None) -> bytes | None:
    from deltavault.codec import decimals

    return decimals.try_encode(data, base, level=level, width=width_of(hint))


def _shuffle(data: Buffer, base: Buffer | None, level: int, hint: str | None) -> bytes:
    from deltavault.codec import floats

    return floats.shuffle_encode(data, level=level, width=width_of(hint))


def _decimal_col(data: Buffer, base: Buffer | None, level: int,
                 hint: str | None) -> bytes | None:
    from deltavault.codec import columns

    stride = min(stride_of(hint), columns.MAX_STRIDE)
    return columns.try_encode(data, base, level=level, width=width_of(hint), stride=stride)


def _xor_decode(payload: Buffer, base: Buffer | None, raw_length: int) -> bytes:
    from deltavault.codec import floats

    return floats.xor_decode(payload, base, raw_length)


def _sub_decode(payload: Buffer, base: Buffer | None, raw_length: int) -> bytes:
    from deltavault.codec import floats

    return floats.sub_decode(payload, base, raw_length)


def _decimal_decode(payload: Buffer, base: Buffer | None, raw_length: int) -> bytes:
    from deltavault.codec import decimals

    return decimals.decode(payload, base, raw_length)


def _shuffle_decode(payload: Buffer, base: Buffer | None, raw_length: int) -> bytes:
    from deltavault.codec import floats

    return floats.shuffle_decode(payload, base, raw_length)


def _decimal_col_decode(payload: Buffer, base: Buffer | None, raw_length: int) -> bytes:
    from deltavault.codec import columns

    return columns.decode(payload, base, raw_length)


CODECS: dict[int, Codec] = {
    c.id: c
    for c in (
        Codec(CodecId.RAW, "raw", False, _raw, general.raw_decode),
        Codec(CodecId.ZSTD, "zstd", False, _zstd, general.zstd_decode),
        Codec(CodecId.ZSTD_PATCH, "zstd-patch", True, _patch, general.patch_decode),
        Codec(CodecId.FLOAT_XOR, "float-xor", True, _xor, _xor_decode),
        Codec(CodecId.FLOAT_SUB, "float-sub", True, _sub, _sub_decode),
        Codec(CodecId.DECIMAL, "decimal", True, _decimal, _decimal_decode),
        Codec(CodecId.SHUFFLE, "shuffle", False, _shuffle, _shuffle_decode),
        Codec(CodecId.DECIMAL_COL, "decimal-col", True, _decimal_col, _decimal_col_decode),
    )
}


def encode(codec_id: int, data: Buffer, base: Buffer | None = None, *, level: int = 3,
           hint: str | None = None) -> bytes | None:
    """Encode ``data`` with one codec; None if that codec does not apply.

    Args:
        codec_id: a :class:`CodecId`.
        data: the chunk plaintext.
        base: the base chunk's plaintext (ignored by codecs without a base).
        level: zstd level.
        hint: element type of the chunk (``"f8"``, ``"f4"``, ``"sqlite-page"``, None).
    """
    codec = CODECS[codec_id]
    return codec.encode(data, base if codec.uses_base else None, level, hint)


def decode(codec_id: int, payload: Buffer, base: Buffer | None, raw_length: int) -> bytes:
    """Decode a stored payload back to exactly ``raw_length`` plaintext bytes.

    Args:
        codec_id: the codec id from the pack header.
        payload: the decrypted payload.
        base: the base blob's plaintext if the header names a base, else None.
        raw_length: the plaintext size from the pack header; the decoder never
            produces more.

    Raises:
        FormatError: unknown codec or a payload that does not decode (the only
            exception hostile input can cause).
    """
    codec = CODECS.get(codec_id)
    if codec is None:
        raise FormatError(f"unknown codec id {codec_id}")
    if base is not None and not codec.uses_base:
        raise FormatError(f"codec {codec.name} takes no base")
    try:
        return codec.decode(payload, base, raw_length)
    except FormatError:
        raise
    except (ValueError, TypeError, IndexError, OverflowError, MemoryError) as exc:
        # Defence in depth: the decoders validate before they compute, but a
        # hostile payload must never surface as anything but FormatError.
        raise FormatError(f"{codec.name} payload does not decode: {exc}") from None


#: every codec id a reader accepts
KNOWN_CODECS = frozenset(CODECS)
#: codecs whose header entry may name a base blob
CODECS_ALLOWING_BASE = frozenset(c.id for c in CODECS.values() if c.uses_base)
#: codecs that cannot decode without a base
CODECS_REQUIRING_BASE = frozenset({CodecId.ZSTD_PATCH})
