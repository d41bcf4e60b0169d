"""Codec 7 ``decimal-col``: scaled decimals predicted from the same column of the row before.

An order-book row interleaves columns (bid price, bid size, ask price, ask
size, … per level). Codec 5 predicts each value from the *previous* value,
so every residual is a price minus a size: wider than the values
themselves, and the chunk ends up larger than plain zstd (0.376 of raw vs
0.239). Predicting from the same column one row up (``stride`` = the
array's last axis, from the ``.npy`` header) leaves a price's tick moves
and a size's change: 0.084 of raw on the books workload, half of zstd's
0.157 (docs/codecs.md, "columns").

Values are the decimals of codec 5 (``round(x * 10**k)``, exact bit for bit
or the codec does not apply). Residuals are zigzagged, narrowed to the
fewest bytes (1, 2, 4 or 8) that hold the largest, written column by column
(so each column's residuals, which share a scale, are adjacent), byte
shuffled, and zstd-compressed.

Payload (little-endian), see docs/codecs.md::

    width u8 | k u8 | mode u8 | n u32 | m u32 | tail_len u8 | stride u16 | rwidth u8
    | tail | zstd(shuffle(column-major residuals, rwidth bytes each))
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import numpy.typing as npt

from deltavault.codec.decimals import (
    _FLOAT,
    _K_LIMIT,
    _MODES,
    _scaled,
    _unscaled,
    decimal_elements,
    unscale_floats,
)
from deltavault.codec.general import (
    Buffer,
    check_raw_length,
    zstd_compress,
    zstd_decompress_exact,
)
from deltavault.codec.numeric import (
    base_elements,
    check_header,
    joined,
    shuffle,
    unshuffle,
    unzigzag,
    zigzag,
)
from deltavault.errors import FormatError

_HEADER = struct.Struct("<BBBIIBHB")
HEADER_SIZE = _HEADER.size  # 15
#: widest row predicted across (the chunker never hints more)
MAX_STRIDE = 4096
_RWIDTH: dict[int, np.dtype[Any]] = {1: np.dtype("<u1"), 2: np.dtype("<u2"),
                                     4: np.dtype("<u4"), 8: np.dtype("<u8")}
_SIGNED: dict[int, np.dtype[Any]] = {w: np.dtype(f"<i{w}") for w in _RWIDTH}

UIntArray = npt.NDArray[Any]


def _predict(v: UIntArray, bs: UIntArray, stride: int) -> UIntArray:
    """Prediction of every element: base, else same column one row up, else left neighbour."""
    n, m = len(v), len(bs)
    pred = np.zeros_like(v)
    pred[:m] = bs
    if n > m:
        # first row beyond the base: the element to the left (the price ladder)
        lo, hi = m, min(n, stride)
        if hi > lo:
            pred[lo + 1:hi] = v[lo:hi - 1]
            pred[lo] = v[lo - 1] if lo else 0
        start = max(m, stride)
        if n > start:
            pred[start:] = v[start - stride:n - stride]
    return pred


def _narrow(r: UIntArray) -> int:
    top = int(r.max()) if len(r) else 0
    for w in (1, 2, 4):
        if top < 1 << (8 * w):
            return w
    return 8


def _column_major(r: UIntArray, stride: int) -> UIntArray:
    rows = -(-len(r) // stride)
    padded = np.zeros(rows * stride, dtype=r.dtype)
    padded[:len(r)] = r
    return np.ascontiguousarray(padded.reshape(rows, stride).T).reshape(-1)


def try_encode(data: Buffer, base: Buffer | None = None, *, level: int = 1, width: int = 8,
               stride: int = 1) -> bytes | None:
    """Encode ``data`` as column-predicted decimals, or None if some value is not one.

    Args:
        data: float32 (``width=4``) or float64 (``width=8``) values; a partial
            trailing element is kept raw.
        base: the base chunk (position-wise prediction), or None.
        level: zstd level of the residual frame (planes: 1 is as small as 3).
        width: element width in bytes.
        stride: elements per row (the last axis of the array); 1 for a column.
    """
    if width not in _FLOAT:
        raise ValueError(f"decimal-col needs width 4 or 8, not {width}")
    if not 1 <= stride <= MAX_STRIDE:
        raise ValueError(f"stride {stride} out of range")
    found = decimal_elements(data, base, width)
    if found is None:
        return None
    k, mode, v, b, tail = found
    pred = _predict(v, _scaled(b, k), stride)
    r = zigzag(v - pred)
    rwidth = _narrow(r)
    cols = _column_major(r, stride).astype(_RWIDTH[rwidth], copy=False)
    header = _HEADER.pack(width, k, mode, len(v), len(b), len(tail), stride, rwidth)
    return header + tail + zstd_compress(shuffle(cols), max(1, level))


def payload_hint(payload: Buffer) -> str | None:
    """The chunk hint a payload of this codec was encoded under (``"f8:4"``).

    A blob re-encoded on its own (prune, docs/format.md §11) has no chunker to
    hint its row length; without it the column prediction is lost. None for a
    payload too short or whose width or stride is out of range.
    """
    view = memoryview(payload).cast("B")
    if len(view) < HEADER_SIZE:
        return None
    width, *_, stride, _rwidth = _HEADER.unpack_from(view)
    if width not in (4, 8) or not 1 <= stride <= MAX_STRIDE:
        return None
    return f"f{width}:{stride}" if stride > 1 else f"f{width}"


def decode(payload: Buffer, base: Buffer | None, raw_length: int) -> bytes:
    """Inverse of :func:`try_encode`.

    Raises:
        FormatError: for any payload that does not decode to ``raw_length`` bytes.
    """
    check_raw_length(raw_length)
    view = memoryview(payload).cast("B")
    if len(view) < HEADER_SIZE:
        raise FormatError("decimal-col payload shorter than its header")
    width, k, mode, n, m, tail_len, stride, rwidth = _HEADER.unpack_from(view)
    if k > _K_LIMIT or mode not in _MODES:
        raise FormatError(f"bad decimal scale k={k} mode={mode}")
    if not 1 <= stride <= MAX_STRIDE or rwidth not in _RWIDTH:
        raise FormatError(f"bad stride {stride} or residual width {rwidth}")
    base_len = len(base) if base else 0
    check_header(width, n, m, tail_len, raw_length, base_len // width if width else 0)
    start = HEADER_SIZE + tail_len
    if len(view) < start:
        raise FormatError("decimal-col payload truncated in its tail")
    tail = bytes(view[HEADER_SIZE:start])
    rows = -(-n // stride)
    dt = _RWIDTH[rwidth]
    planes = zstd_decompress_exact(view[start:], rows * stride * rwidth)
    z = unshuffle(planes, rows * stride, dt)
    unzigzag(z, inplace=True)  # at the narrow width; sign-extending then widens exactly
    # grid[c, r]: the residual of row r, column c (the encoder's column-major order)
    grid = z.view(_SIGNED[rwidth]).astype(np.int64, copy=False).view(np.uint64)
    grid = grid.reshape(stride, rows)
    b = base_elements(base, width, m).view(_FLOAT[width])
    head = max(m, stride)  # predicted from the base or from the left, not from above
    v_head = _head(grid, min(head, n), stride)
    v_head[:m] += _scaled(b, k)
    if n > m:
        lo, hi = m, min(n, stride)
        if hi > lo:  # first row beyond the base: a running sum from the left
            seed = v_head[lo - 1] if lo else np.uint64(0)
            v_head[lo:hi] = np.cumsum(v_head[lo:hi], dtype=np.uint64) + seed
    if n <= head:
        return joined(_unscaled(v_head, k, mode, width), tail)
    # v[i] = v[i - stride] + d[i] from ``head`` on: a running sum along each column
    # (contiguous in ``grid``), seeded with the column's last value of the head.
    # head = q * stride + p: columns c < p have their first predicted row at q + 1,
    # the others at q (q >= 1 as head >= stride).
    q, p = divmod(head, stride)
    grid[:p, :q] = 0
    grid[p:, :q - 1] = 0
    grid[:p, q] = v_head[q * stride:q * stride + p]
    grid[p:, q - 1] = v_head[(q - 1) * stride + p:q * stride]
    np.cumsum(grid, axis=1, dtype=np.uint64, out=grid)
    # back to row order and to float64 in one pass (the same conversion as astype)
    f = np.empty((rows, stride), dtype=np.float64)
    f[...] = grid.view(np.int64).T
    flat = f.reshape(-1)[:n]
    flat[:head] = v_head.view(np.int64)
    return joined(unscale_floats(flat, k, mode, width), tail)


def _head(grid: UIntArray, count: int, stride: int) -> UIntArray:
    """The residuals of the first ``count`` elements in row order (a copy)."""
    full, part = divmod(count, stride)
    out = np.empty(count, dtype=np.uint64)
    out[:full * stride].reshape(full, stride)[...] = grid[:, :full].T
    if part:
        out[full * stride:] = grid[:part, full]
    return out
