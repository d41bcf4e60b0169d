"""Codecs 0 ``raw``, 1 ``zstd`` and 2 ``zstd-patch``, and the safe zstd helpers.

Every zstd frame deltavault writes carries its content size, no checksum (the
blob id is re-hashed after decoding, a stronger check) and no dictionary id.
Decoding is hostile-input safe: the frame's declared content size must equal
the expected ``raw_length`` *before* anything is allocated, and trailing bytes
after the frame are refused, because python-zstandard ignores
``max_output_size`` when a frame declares its own size.
"""

from __future__ import annotations

import threading

import zstandard as zstd

from deltavault.errors import FormatError

Buffer = bytes | bytearray | memoryview

#: The largest plaintext a codec produces: pack entries store ``raw_length``
#: as uint32, so anything larger is hostile by construction.
MAX_RAW_LENGTH = 0xFFFF_FFFF

#: Decoders refuse frames whose window exceeds this (2^27 = 128 MiB, zstd's
#: default limit); an encoder never needs more for chunks up to 16 MiB.
_MAX_WINDOW_LOG = 27


def check_raw_length(raw_length: int) -> None:
    """Refuse an impossible expected plaintext size before allocating anything."""
    if not 0 <= raw_length <= MAX_RAW_LENGTH:
        raise FormatError(f"raw length {raw_length} out of range")


def zstd_compress(data: Buffer, level: int, dict_data: zstd.ZstdCompressionDict | None = None,
                  *, window_log: int = 0, hash_log: int = 0) -> bytes:
    """One zstd frame of ``data`` with its content size in the header.

    Args:
        data: plaintext.
        level: zstd level (negative levels are zstd's "fast" modes).
        dict_data: a raw-content dictionary (the delta base), or None.
        window_log: if non-zero, the window to use (so matches may reach the
            whole dictionary plus data); 0 keeps the level's default.
        hash_log: if non-zero, the match-finder hash table size (log2).
    """
    if window_log:
        extra = {"hash_log": hash_log} if hash_log else {}
        params = zstd.ZstdCompressionParameters.from_level(
            level,
            source_size=len(data),
            window_log=window_log,
            **extra,
            enable_ldm=1 if window_log >= 24 else 0,
            write_content_size=1,
            write_checksum=0,
            write_dict_id=0,
        )
        cctx = zstd.ZstdCompressor(dict_data=dict_data, compression_params=params)
    elif dict_data is None:
        cctx = _plain_compressor(level)
    else:
        cctx = zstd.ZstdCompressor(
            level=level, dict_data=dict_data, write_checksum=False,
            write_content_size=True, write_dict_id=False,
        )
    return cctx.compress(data)


_local = threading.local()


def _plain_compressor(level: int) -> zstd.ZstdCompressor:
    """A compressor per thread and level, made once.

    Building a ``ZstdCompressor`` allocates its context every time, which
    costs more than compressing a 4 KiB file; a compressor is not safe to
    share between threads, hence one per thread.
    """
    cache: dict[int, zstd.ZstdCompressor] | None = getattr(_local, "cctx", None)
    if cache is None:
        cache = _local.cctx = {}
    cctx = cache.get(level)
    if cctx is None:
        cctx = cache[level] = zstd.ZstdCompressor(
            level=level, write_checksum=False, write_content_size=True, write_dict_id=False)
    return cctx


def zstd_decompress_exact(payload: Buffer, raw_length: int,
                          dict_data: zstd.ZstdCompressionDict | None = None) -> bytes:
    """Decode exactly one zstd frame that must hold exactly ``raw_length`` bytes.

    Raises:
        FormatError: the payload is not one complete frame of that size.
    """
    check_raw_length(raw_length)
    try:
        declared = zstd.frame_content_size(payload)
    except zstd.ZstdError as exc:
        raise FormatError(f"not a zstd frame: {exc}") from None
    if declared != raw_length:
        raise FormatError(f"zstd frame declares {declared} bytes, expected {raw_length}")
    try:
        dctx = zstd.ZstdDecompressor(dict_data=dict_data, max_window_size=1 << _MAX_WINDOW_LOG)
        out = dctx.decompress(payload, max_output_size=raw_length, allow_extra_data=False)
    except (zstd.ZstdError, MemoryError) as exc:
        raise FormatError(f"corrupt zstd frame: {exc}") from None
    if len(out) != raw_length:
        raise FormatError(f"zstd frame gave {len(out)} bytes, expected {raw_length}")
    return out


def _patch_dict(base: Buffer) -> zstd.ZstdCompressionDict:
    return zstd.ZstdCompressionDict(bytes(base), dict_type=zstd.DICT_TYPE_RAWCONTENT)


def _patch_window_log(base_len: int, data_len: int) -> int:
    """A window that covers base + data, as ``zstd --patch-from`` sizes it."""
    need = max(base_len + data_len, 1).bit_length()
    return min(max(need, zstd.WINDOWLOG_MIN, 20), _MAX_WINDOW_LOG)


def _patch_hash_log(base_len: int, level: int) -> int:
    """A hash table big enough to index a large base.

    zstd's fast/dfast levels (1-4) keep a 2^17-entry table, so a 2.5 MiB base
    is mostly forgotten: an appended log chunk stored 314 KB instead of 84 KB
    (bench). Sizing the table to a quarter of the base (capped at 2^20)
    restores the matches at ~100 MB/s; small bases (SQLite chunks) keep the
    level's default (0 = no override).
    """
    if level > 4:
        return 0
    want = min(base_len.bit_length() - 2, 20)
    return want if want > 17 else 0


# --- codec 0: raw -------------------------------------------------------------


def raw_encode(data: Buffer, base: Buffer | None = None, *, level: int = 0) -> bytes:
    """Store the plaintext as is (incompressible chunks: saves all the CPU)."""
    del base, level
    return bytes(data)


def raw_decode(payload: Buffer, base: Buffer | None, raw_length: int) -> bytes:
    """Return the payload, which must be exactly ``raw_length`` bytes."""
    del base
    check_raw_length(raw_length)
    if len(payload) != raw_length:
        raise FormatError(f"raw payload is {len(payload)} bytes, expected {raw_length}")
    return bytes(payload)


# --- codec 1: zstd ------------------------------------------------------------


def zstd_encode(data: Buffer, base: Buffer | None = None, *, level: int = 3) -> bytes:
    """One zstd frame of the plaintext; the base is ignored."""
    del base
    return zstd_compress(data, level)


def zstd_decode(payload: Buffer, base: Buffer | None, raw_length: int) -> bytes:
    """Inverse of :func:`zstd_encode`."""
    del base
    return zstd_decompress_exact(payload, raw_length)


# --- codec 2: zstd-patch ------------------------------------------------------


def patch_encode(data: Buffer, base: Buffer | None, *, level: int = 3) -> bytes:
    """zstd with the base chunk as raw-content dictionary (``--patch-from``).

    The window is widened to cover base + data so every byte of the base is
    reachable; long-distance matching is switched on for large windows.
    An empty or missing base degenerates to plain zstd (still decodable).
    """
    if not base:
        return zstd_compress(data, level)
    return zstd_compress(data, level, _patch_dict(base),
                         window_log=_patch_window_log(len(base), len(data)),
                         hash_log=_patch_hash_log(len(base), level))


def patch_decode(payload: Buffer, base: Buffer | None, raw_length: int) -> bytes:
    """Inverse of :func:`patch_encode`; needs the same base bytes."""
    if not base:
        return zstd_decompress_exact(payload, raw_length)
    return zstd_decompress_exact(payload, raw_length, _patch_dict(base))
