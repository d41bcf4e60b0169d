"""Blob payload encoding for the codecs without a base (raw, zstd).

The delta codecs live in :mod:`deltavault.codec`; this module is the
dispatch the repository uses to turn a stored payload back into plaintext,
and the default encoder for self-contained blobs.
"""

from __future__ import annotations

import threading

import zstandard

from deltavault import codec_ids
from deltavault.errors import FormatError

_local = threading.local()
#: a sample that compresses worse than this is stored raw (model weights: x1.08)
INCOMPRESSIBLE_RATIO = 0.97


def _compressor(level: int) -> zstandard.ZstdCompressor:
    cache: dict[int, zstandard.ZstdCompressor] = _local.__dict__.setdefault("c", {})
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level)
    return cache[level]


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "d", None)
    if d is None:
        d = _local.d = zstandard.ZstdDecompressor()
    return d


def encode_plain(data: bytes | memoryview, level: int) -> tuple[int, bytes]:
    """zstd, or raw when zstd does not pay (checked on a sample first)."""
    n = len(data)
    if n >= 256 * 1024:
        sample = bytes(data[: 64 * 1024])
        if len(_compressor(1).compress(sample)) > INCOMPRESSIBLE_RATIO * len(sample):
            return codec_ids.RAW, bytes(data)
    out = _compressor(level).compress(data)
    if len(out) >= n:
        return codec_ids.RAW, bytes(data)
    return codec_ids.ZSTD, out


def decode_plain(codec: int, payload: bytes, raw_length: int) -> bytes:
    """Decode a raw or zstd payload, refusing output beyond ``raw_length``."""
    if codec == codec_ids.RAW:
        out = payload
    elif codec == codec_ids.ZSTD:
        try:
            declared = zstandard.frame_content_size(payload)
            if declared > raw_length:
                raise FormatError(f"zstd frame declares {declared} bytes, expected {raw_length}")
            out = _decompressor().decompress(payload, max_output_size=max(raw_length, 1))
        except zstandard.ZstdError as exc:
            raise FormatError(f"zstd payload does not decode ({exc})") from exc
    else:
        raise FormatError(f"codec {codec} needs a base")
    if len(out) != raw_length:
        raise FormatError(f"payload decodes to {len(out)} bytes, expected {raw_length}")
    return out


def decode_delta(codec: int, payload: bytes, base: bytes, raw_length: int) -> bytes:
    """Decode a payload stored against a base blob's plaintext."""
    try:
        from deltavault.codec import decode  # type: ignore[attr-defined,unused-ignore]
    except ImportError as exc:
        raise FormatError(f"codec {codec} is not available in this build") from exc
    out: bytes = decode(codec, payload, base, raw_length)
    return out
