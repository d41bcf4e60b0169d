"""Pick the codec for one chunk under a CPU budget: ``fast|balanced|max|auto``.

The backup pipeline has already deduplicated exact matches, so every chunk
seen here is new. What pays depends on the data, and is measured, not
assumed (docs/codecs.md, "Measurements"): ticked order books →
``decimal-col`` (0.08 of raw vs zstd's 0.16 on the books workload); float32
weights → ``shuffle`` (0.85 vs zstd's 0.925); changed floats with a base →
``float-xor``; SQLite pages and text with a base → ``zstd-patch``; text →
zstd level 1 (smaller *and* half the CPU of level 3 on JSON lines); random
or already compressed bytes → ``raw``, which saves the whole zstd cost.

* ``fast``    — one codec per kind at zstd level 1, raw below 10 % saving.
* ``balanced`` — the kind's plausible codecs on the full chunk, smallest kept.
* ``max``     — every applicable codec at level 19.
* ``auto``    — the default: the codec measured best for the kind (ranked on
  a 32 KiB sample where the kind does not decide), then the **size guard**:
  a transformed encoding (numeric codecs, ``zstd-patch``) is kept only if it
  is smaller than plain zstd's frame of the same chunk at the kind's level,
  so ``auto`` never stores more than zstd alone would. Raw when the sample
  shows less than 2 % saving (a 10 % threshold stored float32 weights raw
  and gave away 7.6 %).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from deltavault.codec.general import Buffer
from deltavault.codec.hints import float_kind
from deltavault.codec.registry import CODECS, CodecId, encode

Policy = Literal["fast", "balanced", "max", "auto"]

#: float element kinds (a hint may add a row length: ``"f8:80"``)
FLOAT_HINTS = frozenset({"f4", "f8"})
_SAMPLE = 32 * 1024
_MAX_LEVEL = 19
#: Store raw when compression saves less than this share of the chunk.
_MIN_SAVING: dict[str, float] = {"fast": 0.10, "auto": 0.02, "balanced": 0.02, "max": 0.0}
#: codecs whose payload records ``m`` (base elements used) at this offset
_M_OFFSET = {CodecId.FLOAT_XOR: 5, CodecId.FLOAT_SUB: 5, CodecId.DECIMAL: 7,
             CodecId.DECIMAL_COL: 7}


@dataclass(frozen=True, slots=True)
class Encoded:
    """A chunk's stored form.

    Attributes:
        codec_id: the codec (docs/format.md §4) to record in the pack header.
        payload: the bytes to encrypt and store.
        base_used: whether decoding needs the base chunk; if False the pack
            entry's base field is all zero and the blob is self-contained.
    """

    codec_id: int
    payload: bytes
    base_used: bool


def level_for(hint: str | None, level: int) -> int:
    """zstd level for a kind of chunk, given the repository's configured level.

    Measured (docs/codecs.md): on JSON lines and other text level 1 is
    *smaller* than level 3 (0.182 vs 0.198 of raw: the 1 MiB chunks are
    below the window where level 3's extra search pays) at half the CPU; on
    SQLite pages level 3 is 7 % smaller than level 1, so pages keep the
    configured level. A configured level other than the default 3 is taken
    as the user's choice for every kind.
    """
    if level != 3 or hint == "sqlite-page":
        return level
    return 1


def _base_used(codec_id: int, payload: bytes, base: Buffer | None) -> bool:
    """Whether a payload references its base (numeric codecs record ``m > 0``)."""
    if not base or not CODECS[codec_id].uses_base:
        return False
    if codec_id == CodecId.ZSTD_PATCH:
        return True
    offset = _M_OFFSET[CodecId(codec_id)]
    return int.from_bytes(payload[offset:offset + 4], "little") > 0


def _candidates(hint: str | None, has_base: bool) -> list[CodecId]:
    """Plausible codecs in order of how often they win, for this kind of chunk."""
    if float_kind(hint):
        order = [CodecId.DECIMAL_COL, CodecId.FLOAT_XOR, CodecId.FLOAT_SUB]
        order += [CodecId.ZSTD_PATCH] if has_base else [CodecId.SHUFFLE]
        return [*order, CodecId.ZSTD]
    return [CodecId.ZSTD_PATCH, CodecId.ZSTD] if has_base else [CodecId.ZSTD]


def _finish(data: Buffer, base: Buffer | None, codec_id: int, payload: bytes | None,
            min_saving: float) -> Encoded:
    n = len(data)
    if payload is None or len(payload) > n * (1.0 - min_saving) or len(payload) >= n:
        return Encoded(CodecId.RAW, bytes(data), False)
    return Encoded(codec_id, payload, _base_used(codec_id, payload, base))


def _smallest(data: Buffer, base: Buffer | None, hint: str | None, ids: list[CodecId],
              level: int) -> tuple[int, bytes | None]:
    best: tuple[int, bytes | None] = (CodecId.RAW, None)
    for cid in ids:
        payload = encode(cid, data, base, level=level, hint=hint)
        if payload is not None and (best[1] is None or len(payload) < len(best[1])):
            best = (cid, payload)
    return best


def _sample_window(data: Buffer, base: Buffer | None) -> tuple[memoryview, memoryview | None,
                                                               memoryview | None]:
    """A 32 KiB slice from the middle of the chunk, 4 KiB aligned (elements and
    pages line up), with the base slice at the same place (for numeric codecs)
    and a wider base window around it (for zstd-patch on shifted streams)."""
    view = memoryview(data).cast("B")
    off = (len(view) // 2 - _SAMPLE // 2) // 4096 * 4096
    sample = view[off:off + _SAMPLE]
    if not base:
        return sample, None, None
    bview = memoryview(base).cast("B")
    return (sample, bview[off:off + _SAMPLE],
            bview[max(0, off - _SAMPLE):off + 2 * _SAMPLE])


def _rank_on_sample(data: Buffer, base: Buffer | None, hint: str | None,
                    ids: list[CodecId]) -> tuple[CodecId, float]:
    """The codec that makes the sample smallest, and its ratio (stored/raw)."""
    sample, aligned, window = _sample_window(data, base)
    best, best_len = CodecId.RAW, len(sample)
    for cid in ids:
        b = window if cid == CodecId.ZSTD_PATCH else aligned
        # zstd-patch finds few dictionary matches at level 1; probe it at 3.
        payload = encode(cid, sample, b, level=3 if cid == CodecId.ZSTD_PATCH else 1, hint=hint)
        if payload is not None and len(payload) < best_len:
            best, best_len = cid, len(payload)
    return best, best_len / max(1, len(sample))


def _guarded(data: Buffer, base: Buffer | None, cid: int, payload: bytes | None, zlevel: int,
             min_saving: float) -> Encoded:
    """Keep a transformed payload only if it beats plain zstd on the same chunk."""
    plain = encode(CodecId.ZSTD, data, None, level=zlevel)
    if payload is None or (plain is not None and len(plain) <= len(payload)):
        return _finish(data, None, CodecId.ZSTD, plain, min_saving)
    return _finish(data, base, cid, payload, min_saving)


def choose(data: Buffer, base: Buffer | None, hint: str | None, policy: Policy = "auto",
           *, level: int = 3) -> Encoded:
    """Encode one chunk with the codec the policy picks.

    Args:
        data: the chunk plaintext.
        base: plaintext of the candidate base chunk (same position in the base
            snapshot's version of the file, or the most similar one by
            sketch), or None for a self-contained chunk (full backups, depth
            cap reached).
        hint: element type from the chunker: ``"f8"``, ``"f4"`` (with a row
            length: ``"f8:80"``), ``"sqlite-page"`` or None.
        policy: CPU budget, see the module docstring.
        level: the repository's zstd level (config ``compression.level``);
            :func:`level_for` maps it per kind.

    Returns:
        The codec id, payload, and whether the base is needed to decode.
    """
    if not data:
        return Encoded(CodecId.RAW, b"", False)
    base = base if base else None
    min_saving = _MIN_SAVING[policy]
    ids = _candidates(hint, base is not None)
    numeric = float_kind(hint) is not None
    if policy == "max":
        return _finish(data, base, *_smallest(data, base, hint, ids, _MAX_LEVEL), min_saving)
    if policy == "balanced":
        return _finish(data, base, *_smallest(data, base, hint, ids, level_for(hint, level)),
                       min_saving)
    if policy == "fast":
        return _fast(data, base, hint, ids, min_saving)
    return _auto(data, base, hint, numeric, level_for(hint, level), min_saving)


def _fast(data: Buffer, base: Buffer | None, hint: str | None, ids: list[CodecId],
          min_saving: float) -> Encoded:
    if float_kind(hint):
        payload = encode(CodecId.DECIMAL_COL, data, base, level=1, hint=hint)
        if payload is not None:
            return _finish(data, base, CodecId.DECIMAL_COL, payload, min_saving)
        # floats without a base: byte planes (weights); with one: a bit delta
        ids = [CodecId.SHUFFLE] if base is None else [CodecId.FLOAT_SUB]
    cid = ids[0]
    # zstd-patch at level 1 finds few matches in the dictionary; 3 is the floor.
    plvl = 3 if cid == CodecId.ZSTD_PATCH else 1
    if len(data) > 2 * _SAMPLE and not base and cid != CodecId.SHUFFLE:
        # (byte planes compress worse on a small sample than on the chunk)
        _, ratio = _rank_on_sample(data, None, hint, [cid])
        if ratio > 1.0 - min_saving:
            return Encoded(CodecId.RAW, bytes(data), False)
    return _finish(data, base, cid, encode(cid, data, base, level=plvl, hint=hint), min_saving)


def _auto(data: Buffer, base: Buffer | None, hint: str | None, numeric: bool, zlevel: int,
          min_saving: float) -> Encoded:
    if numeric:
        # decimals (prices, sizes): column-aware prediction, with the base if any
        payload = encode(CodecId.DECIMAL_COL, data, base, level=1, hint=hint)
        if payload is not None:
            return _guarded(data, base, CodecId.DECIMAL_COL, payload, zlevel, min_saving)
        if base is not None:
            # float-xor: fastest numeric codec and within 3 % of float-sub on
            # tuned weights, far ahead on non-decimal prices (codec bench)
            payload = encode(CodecId.FLOAT_XOR, data, base, level=1, hint=hint)
            return _guarded(data, base, CodecId.FLOAT_XOR, payload, zlevel, min_saving)
        if len(data) <= 2 * _SAMPLE:
            return _finish(data, None, *_smallest(data, None, hint,
                                                  [CodecId.SHUFFLE, CodecId.ZSTD], zlevel),
                           min_saving)
        # byte planes compress better on the whole chunk than on a sample (a
        # 32 KiB sample of float32 weights: 0.92, the 1 MiB chunk: 0.84), so
        # the sample only picks the transform; the guard compares the chunk
        cid, _ = _rank_on_sample(data, None, hint, [CodecId.SHUFFLE, CodecId.FLOAT_XOR])
        if cid == CodecId.RAW:
            return _auto_plain(data, zlevel, min_saving)
        payload = encode(cid, data, None, level=1, hint=hint)
        return _guarded(data, None, cid, payload, zlevel, min_saving)
    if base is not None:
        # zstd-patch needs level 3 to find its dictionary matches
        payload = encode(CodecId.ZSTD_PATCH, data, base, level=max(3, zlevel), hint=hint)
        return _guarded(data, base, CodecId.ZSTD_PATCH, payload, zlevel, min_saving)
    return _auto_plain(data, zlevel, min_saving)


def _auto_plain(data: Buffer, zlevel: int, min_saving: float) -> Encoded:
    """zstd at the kind's level, or raw without a zstd pass if a sample saves too little."""
    if len(data) > 2 * _SAMPLE:
        _, ratio = _rank_on_sample(data, None, None, [CodecId.ZSTD])
        if ratio > 1.0 - min_saving:
            return Encoded(CodecId.RAW, bytes(data), False)
    return _finish(data, None, CodecId.ZSTD, encode(CodecId.ZSTD, data, None, level=zlevel),
                   min_saving)
