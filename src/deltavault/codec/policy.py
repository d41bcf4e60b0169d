"""Pick the codec for one chunk under a CPU budget: ``fast|balanced|max|auto``.

The backup pipeline has already deduplicated exact matches, so every chunk
seen here is new. What pays depends on the data (measured in
docs/codecs.md): ticked prices → ``decimal`` (×4–×20 over zstd); fine-tuned
weights → ``float-sub`` (weights are incompressible to zstd, ×1.08, but their
change is not); SQLite pages and text → ``zstd-patch``; random or already
compressed bytes → ``raw``, which saves the whole zstd cost.

* ``fast``    — one codec per hint, zstd level 1, raw below 10 % saving.
* ``balanced`` — the hint's two or three plausible codecs on the full chunk,
  keep the smallest (≈2–3× the CPU of zstd).
* ``max``     — every applicable codec at level 19.
* ``auto``    — the default: ``decimal`` whenever it applies; else with a
  base ``float-xor`` (floats) or ``zstd-patch`` (other data), without a
  base the plausible codecs ranked on a 32 KiB sample; the winner encodes
  the whole chunk once, unless the sample shows <10 % saving (then raw).
  Measured at 0.33–1.12× the wall time of plain zstd -3 (docs/codecs.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from deltavault.codec.general import Buffer
from deltavault.codec.registry import CODECS, CodecId, encode

Policy = Literal["fast", "balanced", "max", "auto"]

FLOAT_HINTS = frozenset({"f4", "f8"})
_SAMPLE = 32 * 1024
_MAX_LEVEL = 19
#: Store raw when compression saves less than this share of the chunk.
_MIN_SAVING: dict[str, float] = {"fast": 0.10, "auto": 0.10, "balanced": 0.03, "max": 0.0}


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


def _base_used(codec_id: int, payload: bytes, base: Buffer | None) -> bool:
    """Whether a payload references its base (numeric codecs record ``m > 0``)."""
    if not base or not CODECS[codec_id].uses_base:
        return False
    if codec_id == CodecId.ZSTD_PATCH:
        return True
    offset = 5 if codec_id in (CodecId.FLOAT_XOR, CodecId.FLOAT_SUB) else 7  # `m` field
    return int.from_bytes(payload[offset:offset + 4], "little") > 0


def _candidates(hint: str | None, has_base: bool) -> list[CodecId]:
    """Plausible codecs in order of how often they win, for this kind of chunk."""
    if hint in FLOAT_HINTS:
        order = [CodecId.FLOAT_SUB, CodecId.FLOAT_XOR]
        if has_base:
            order.append(CodecId.ZSTD_PATCH)
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
    """The codec that makes the sample smallest, and its ratio (stored/raw).

    """
    sample, aligned, window = _sample_window(data, base)
    best, best_len = CodecId.RAW, len(sample)
    for cid in ids:
        b = window if cid == CodecId.ZSTD_PATCH else aligned
        # zstd-patch finds few dictionary matches at level 1; probe it at 3.
        payload = encode(cid, sample, b, level=3 if cid == CodecId.ZSTD_PATCH else 1, hint=hint)
        if payload is not None and len(payload) < best_len:
            best, best_len = cid, len(payload)
    return best, best_len / max(1, len(sample))


def choose(data: Buffer, base: Buffer | None, hint: str | None, policy: Policy = "auto",
           *, level: int = 3) -> Encoded:
    """Encode one chunk with the codec the policy picks.

    Args:
        data: the chunk plaintext.
        base: plaintext of the candidate base chunk (same position in the base
            snapshot's version of the file, or the most similar one by
            sketch), or None for a self-contained chunk (full backups, depth
            cap reached).
        hint: element type from the chunker: ``"f8"``, ``"f4"``,
            ``"sqlite-page"`` or None.
        policy: CPU budget, see the module docstring.
        level: zstd level for ``balanced`` and ``auto`` (config
            ``compression.level``).

    Returns:
        The codec id, payload, and whether the base is needed to decode.
    """
    if not data:
        return Encoded(CodecId.RAW, b"", False)
    base = base if base else None
    min_saving = _MIN_SAVING[policy]
    ids = _candidates(hint, base is not None)
    if policy == "max":
        if hint in FLOAT_HINTS:
            ids = [CodecId.DECIMAL, *ids]
        return _finish(data, base, *_smallest(data, base, hint, ids, _MAX_LEVEL), min_saving)

    lvl = 1 if policy == "fast" else level
    if policy == "balanced" and hint in FLOAT_HINTS:
        ids = [CodecId.DECIMAL, *ids]
    elif hint in FLOAT_HINTS:
        payload = encode(CodecId.DECIMAL, data, base, level=lvl, hint=hint)
        if payload is not None:
            return _finish(data, base, CodecId.DECIMAL, payload, min_saving)

    if policy == "fast":
        cid = ids[0]
        # zstd-patch at level 1 finds few matches in the dictionary; 3 is the floor.
        plvl = max(lvl, 3) if cid == CodecId.ZSTD_PATCH else lvl
        if len(data) > 2 * _SAMPLE and not base:
            _, ratio = _rank_on_sample(data, None, hint, [cid])
            if ratio > 1.0 - min_saving:
                return Encoded(CodecId.RAW, bytes(data), False)
        return _finish(data, base, cid, encode(cid, data, base, level=plvl, hint=hint),
                       min_saving)

    if policy == "balanced":
        return _finish(data, base, *_smallest(data, base, hint, ids[:4], lvl), min_saving)

    # auto: with a base, float chunks choose between the two bit-pattern
    # codecs (zstd-patch and plain zstd never won on changed floats in the
    # bench) and other chunks take zstd-patch; the probe also detects
    # incompressible chunks, which are stored raw without a full zstd pass.
    if base is not None and hint in FLOAT_HINTS:
        # float-xor: fastest numeric codec and within 3 % of float-sub on
        # weights, far ahead on non-decimal prices (bench); no probe needed.
        return _finish(data, base, CodecId.FLOAT_XOR,
                       encode(CodecId.FLOAT_XOR, data, base, level=lvl, hint=hint), min_saving)
    if base is not None:
        ids = ids[:1]
    if len(data) <= 2 * _SAMPLE:  # small chunk: ranking costs as much as encoding
        return _finish(data, base, *_smallest(data, base, hint, ids[:2], lvl), min_saving)
    cid, ratio = _rank_on_sample(data, base, hint, ids)
    if cid == CodecId.RAW or ratio > 1.0 - min_saving:
        return Encoded(CodecId.RAW, bytes(data), False)
    return _finish(data, base, cid, encode(cid, data, base, level=lvl, hint=hint), min_saving)
