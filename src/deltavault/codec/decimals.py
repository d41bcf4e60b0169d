"""Codec 5 ``decimal``: floats that are exact k-digit decimals, as scaled integers.

Prices quoted in ticks (0.01, 0.5) are decimals stored as binary floats. Their
bit patterns change in every mantissa bit when a price moves one tick, so XOR
and bit-pattern differences stay wide; but ``round(x * 10**k)`` is a small
integer whose change *is* the tick count. This is the idea of ALP (Afroozeh
et al., SIGMOD 2024) without its per-vector exceptions: the codec applies only
when every element round-trips bit for bit, otherwise :func:`try_encode`
returns None and the policy picks another codec.

Integers are delta-encoded against the base's scaled values at the same
position (the base need not be decimal itself: its predictions are just
``round(base * 10**k)``, computed identically by the decoder), or against the
previous element where the base has none; zigzag; byte shuffle; zstd.

Payload (little-endian), see docs/codecs.md::

    width u8 | k u8 | mode u8 | n u32 | m u32 | tail_len u8 | tail
    | zstd(shuffle(zigzag residuals as u64))
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from deltavault.codec.general import Buffer, check_raw_length
from deltavault.codec.numeric import (
    UINT,
    UIntArray,
    base_elements,
    check_header,
    joined,
    pack_residuals,
    split_elements,
    unpack_residuals,
    unzigzag,
    zigzag,
)
from deltavault.errors import FormatError

_HEADER = struct.Struct("<BBBIIB")
_FLOAT: dict[int, np.dtype[Any]] = {4: np.dtype("<f4"), 8: np.dtype("<f8")}
#: Largest k tried: beyond the float's decimal precision nothing round-trips
#: that a smaller k did not already catch. 10**22 is the largest exact power.
_MAX_K = {4: 10, 8: 16}
_K_LIMIT = 22
#: Scaled values must be integers the float type represents exactly (2^24 for
#: float32, 2^53 for float64): this keeps int→float conversion exact and
#: rejects "decimals" that are merely the 17-digit expansion of arbitrary
#: binary floats (model weights), whose scaled integers would not delta well.
_INT_LIMIT = {4: float(2**24), 8: float(2**53)}
#: Base predictions only need a defined int64 conversion.
_PRED_LIMIT = float(2**62)
_SAMPLE = 1024
_TINY = 64
_MODES = (0, 1)  # 0: int / 10**k, 1: int * 10**-k (covers ``ticks * 0.01`` data)

FloatArray = npt.NDArray[Any]


def _scaled(values: FloatArray, k: int) -> UIntArray:
    """``round(values * 10**k)`` as wrapped uint64, non-finite and huge → 0.

    Total and deterministic for any input (decoder recomputes base predictions).
    """
    with np.errstate(all="ignore"):
        s = values.astype(np.float64, copy=False) * (10.0**k)
        s[~(np.abs(s) < _PRED_LIMIT)] = 0.0
        return np.rint(s).astype(np.int64).view(np.uint64)


def _unscaled(ints: UIntArray, k: int, mode: int, width: int) -> FloatArray:
    """Decode scaled integers to floats of ``width`` exactly as the decoder does."""
    return unscale_floats(ints.view(np.int64).astype(np.float64), k, mode, width)


def unscale_floats(f: FloatArray, k: int, mode: int, width: int) -> FloatArray:
    """The last step of :func:`_unscaled`, in place on the integers already as float64
    (a decoder that converts them while copying saves a pass over the chunk)."""
    with np.errstate(all="ignore"):
        if mode == 0:
            np.divide(f, 10.0**k, out=f)
        else:
            np.multiply(f, 1.0 / 10.0**k, out=f)
        out: FloatArray = f.astype(_FLOAT[width], copy=False)
        return out


def _round_trips(x: FloatArray, k: int, mode: int, width: int) -> UIntArray | None:
    """Scaled integers of ``x`` if every element decodes back bit for bit."""
    with np.errstate(all="ignore"):
        s = x.astype(np.float64, copy=False) * (10.0**k)
    if not bool(np.all(np.abs(s) <= _INT_LIMIT[width])):  # also rejects NaN and inf
        return None
    ints = np.rint(s).astype(np.int64).view(np.uint64)
    back = _unscaled(ints, k, mode, width)
    if not np.array_equal(back.view(UINT[width]), x.view(UINT[width])):
        return None
    return ints


#: 10**k and 10**-k exactly as the scalar code computes them, one row per k
_POW = {w: np.array([10.0**k for k in range(_MAX_K[w] + 1)]) for w in _MAX_K}
_INV = {w: np.array([1.0 / 10.0**k for k in range(_MAX_K[w] + 1)]) for w in _MAX_K}


def _sample_candidates(sample: FloatArray, width: int, first: int) -> list[tuple[int, int]]:
    """Every (k ≥ ``first``, mode), in search order, under which ``sample`` round-trips.

    The same arithmetic as :func:`_round_trips` for all k at once (one row
    per k): the order-book workload spent 40 % of its workers' time in the
    per-candidate calls on 1,024-element samples, where numpy's per-call
    overhead, not the arithmetic, is the cost.
    """
    pow_, inv = _POW[width][first:], _INV[width][first:]
    udt = UINT[width]
    bits = sample.view(udt)
    with np.errstate(all="ignore"):
        s = sample.astype(np.float64)[None, :] * pow_[:, None]
        within = np.all(np.abs(s) <= _INT_LIMIT[width], axis=1)  # also rejects NaN, inf
        s[~within] = 0.0
        f = np.rint(s).astype(np.int64).astype(np.float64)
        ok = [np.all((f / pow_[:, None]).astype(_FLOAT[width]).view(udt) == bits, axis=1),
              np.all((f * inv[:, None]).astype(_FLOAT[width]).view(udt) == bits, axis=1)]
    return [(first + i, mode) for i in range(len(pow_)) for mode in _MODES
            if within[i] and ok[mode][i]]


def _find_scale(x: FloatArray, width: int) -> tuple[int, int, UIntArray] | None:
    """Smallest (k, mode) under which all of ``x`` round-trips, with the integers.

    A strided sample rejects non-decimal data (model weights) cheaply; only a
    candidate that passes the sample is checked on the whole chunk. Integers
    (k = 0, sizes and counts) are tried alone first, the other scales with
    one vectorised test of all of them (on the order books: 25 % less time
    than one call per candidate; on weights, which pass none, 6× less).
    """
    sample = x[::max(1, len(x) // _SAMPLE)]
    # k = 0: dividing and multiplying by 1.0 are the same, so mode 0 alone decides
    if _round_trips(sample, 0, 0, width) is not None:
        ints = _round_trips(x, 0, 0, width)
        if ints is not None:
            return 0, 0, ints
    # Every scale on a few elements first, then the survivors on the sample: the
    # all-scales test on the whole 1,024-element sample was 60 % of encoding an
    # order book (17 scales x 1,024 elements x ~14 array passes). A scale that
    # round-trips the sample round-trips these few, so the same (k, mode) is found.
    tiny = sample[::max(1, len(sample) // _TINY)]
    for k, mode in _sample_candidates(tiny, width, 1):
        if _round_trips(sample, k, mode, width) is None:
            continue
        ints = _round_trips(x, k, mode, width)
        if ints is not None:
            return k, mode, ints
    return None


def decimal_elements(data: Buffer, base: Buffer | None, width: int
                     ) -> tuple[int, int, UIntArray, FloatArray, bytes] | None:
    """What both decimal codecs start from: (k, mode, integers, base values, raw tail).

    None when some element is not a decimal under any scale (the codec then
    declines the chunk).
    """
    bits, tail = split_elements(data, width)
    found = _find_scale(bits.view(_FLOAT[width]), width)
    if found is None:
        return None
    k, mode, v = found
    return k, mode, v, base_elements(base, width, len(v)).view(_FLOAT[width]), tail


def try_encode(data: Buffer, base: Buffer | None = None, *, level: int = 3,
               width: int = 8) -> bytes | None:
    """Encode ``data`` as scaled decimals, or None if some element is not one.

    Args:
        data: the chunk of float32 (``width=4``) or float64 (``width=8``) values;
            a partial trailing element is kept raw.
        base: base chunk for position-wise prediction, or None.
        level: zstd level of the residual frame.
        width: element width in bytes.

    Returns:
        The payload, or None when NaN, inf, -0.0 or a non-decimal value (for
        every k up to the float's precision) is present.
    """
    if width not in _FLOAT:
        raise ValueError(f"decimal codec needs width 4 or 8, not {width}")
    found = decimal_elements(data, base, width)
    if found is None:
        return None
    k, mode, v, b, tail = found
    m, n = len(b), len(v)
    pred = np.empty_like(v)
    pred[:m] = _scaled(b, k)
    if n > m:
        pred[m] = v[m - 1] if m else 0
        pred[m + 1:] = v[m: n - 1]
    header = _HEADER.pack(width, k, mode, n, m, len(tail))
    return header + tail + pack_residuals(zigzag(v - pred), level)


def decode(payload: Buffer, base: Buffer | None, raw_length: int) -> bytes:
    """Inverse of :func:`try_encode`.

    Raises:
        FormatError: for any payload that does not decode to ``raw_length`` bytes.
    """
    check_raw_length(raw_length)
    view = memoryview(payload).cast("B")
    if len(view) < _HEADER.size:
        raise FormatError("decimal payload shorter than its header")
    width, k, mode, n, m, tail_len = _HEADER.unpack_from(view)
    if k > _K_LIMIT or mode not in _MODES:
        raise FormatError(f"bad decimal scale k={k} mode={mode}")
    base_len = len(base) if base else 0
    check_header(width, n, m, tail_len, raw_length, base_len // width if width else 0)
    start = _HEADER.size + tail_len
    if len(view) < start:
        raise FormatError("decimal payload truncated in its tail")
    tail = bytes(view[_HEADER.size:start])
    d = unzigzag(unpack_residuals(view[start:], n, np.dtype("<u8")))
    b = base_elements(base, width, m).view(_FLOAT[width])
    v = np.empty(n, dtype=np.uint64)
    v[:m] = _scaled(b, k) + d[:m]
    if n > m:
        seed = v[m - 1] if m else np.uint64(0)
        v[m:] = np.cumsum(d[m:], dtype=np.uint64) + seed
    return joined(_unscaled(v, k, mode, width), tail)
