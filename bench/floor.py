"""The "floor" of a day's change: how few bytes could store it, per file and per part.

For each changed file we compress the new version against the previous one
with a handful of simple, lossless estimators and keep the smallest. The gap
between what a backup tool adds and this floor shows where a better codec
would pay off (order books and model layers: float deltas; the trade log:
bytes after the common prefix; SQLite: page XOR).

Estimators, all followed by zstd at ``level`` (19 by default):
- ``zstd``: the whole new file;
- ``suffix``: the bytes after the prefix shared with the old version;
- ``xor``: element-wise XOR with the old array (bytewise for non-arrays),
  byte-shuffled so that the zero high bytes line up;
- ``arith``: element-wise integer difference of the bit patterns (lossless
  "arithmetic" float delta), byte-shuffled;
- ``decimal``: for float arrays whose values are all decimals with at most 9
  places, the difference of the scaled integers, byte-shuffled.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zstandard

ESTIMATORS = ("zstd", "suffix", "xor", "arith", "decimal")


@dataclass
class FileFloor:
    """Estimated stored sizes of one changed file's new version."""

    path: str
    part: str
    new_bytes: int
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def best(self) -> tuple[str, int]:
        """The winning estimator and its size."""
        name = min(self.sizes, key=lambda k: self.sizes[k])
        return name, self.sizes[name]


def file_floor(old: bytes | None, new: bytes, *, path: str, part: str,
               level: int = 19) -> FileFloor:
    """Every applicable estimator for ``new`` given ``old`` (None: a new file)."""
    z = zstandard.ZstdCompressor(level=level, threads=-1)
    out = FileFloor(path, part, len(new))
    if old is None:
        out.sizes["zstd"] = len(z.compress(new))
        return out
    prefix = common_prefix(old, new)
    # Level 19 is slow, so skip passes that cannot differ much: with under 1%
    # shared the suffix is the whole file; with half or more shared the whole
    # file costs at least what its suffix does.
    if prefix >= len(new) // 100:
        out.sizes["suffix"] = len(z.compress(new[prefix:])) + 8
    if prefix < len(new) // 2:
        out.sizes["zstd"] = len(z.compress(new))
    a_old, a_new = _npy(old), _npy(new)
    if a_old is not None and a_new is not None and a_old.shape == a_new.shape \
            and a_old.dtype == a_new.dtype and a_new.dtype.kind in "fiu":
        header = len(new) - a_new.nbytes
        out.sizes["xor"] = header + len(z.compress(xor_delta(a_old, a_new)))
        out.sizes["arith"] = header + len(z.compress(arith_delta(a_old, a_new)))
        dec = decimal_delta(a_old, a_new)
        if dec is not None:
            out.sizes["decimal"] = header + len(z.compress(dec))
    elif prefix < len(new):
        out.sizes["xor"] = len(z.compress(_bytewise(old, new, np.bitwise_xor)))
        out.sizes["arith"] = len(z.compress(_bytewise(old, new, np.subtract)))
    return out


def common_prefix(a: bytes, b: bytes) -> int:
    """Length of the longest common prefix of two byte strings."""
    n = min(len(a), len(b))
    x = np.frombuffer(a, np.uint8, n)
    y = np.frombuffer(b, np.uint8, n)
    diff = np.flatnonzero(x != y)
    return int(diff[0]) if diff.size else n


def shuffle(raw: np.ndarray) -> bytes:
    """Byte-transpose an array: all first bytes, then all second bytes, ..."""
    width = raw.dtype.itemsize
    return np.ascontiguousarray(raw.view(np.uint8).reshape(-1, width).T).tobytes()


def xor_delta(old: np.ndarray, new: np.ndarray) -> bytes:
    """Bitwise XOR of the element bit patterns, shuffled."""
    u = np.dtype(f"u{new.dtype.itemsize}")
    return shuffle(np.bitwise_xor(old.view(u), new.view(u)).ravel())


def arith_delta(old: np.ndarray, new: np.ndarray) -> bytes:
    """Wrapping integer difference of the element bit patterns, shuffled."""
    u = np.dtype(f"u{new.dtype.itemsize}")
    return shuffle((new.view(u) - old.view(u)).ravel())


def decimal_delta(old: np.ndarray, new: np.ndarray) -> bytes | None:
    """Difference of values scaled to integers by the smallest exact power of ten."""
    if new.dtype.kind != "f":
        return None
    for places in range(10):
        scale = 10.0**places
        with np.errstate(all="ignore"):
            io_, in_ = np.rint(old * scale), np.rint(new * scale)
        if np.array_equal(io_ / scale, old) and np.array_equal(in_ / scale, new) \
                and np.abs(in_).max(initial=0) < 2**62 and np.abs(io_).max(initial=0) < 2**62:
            return shuffle((in_.astype(np.int64) - io_.astype(np.int64)).ravel())
    return None


def _bytewise(old: bytes, new: bytes, op: np.ufunc) -> bytes:
    n = min(len(old), len(new))
    a = np.frombuffer(old, np.uint8, n)
    b = np.frombuffer(new, np.uint8, n)
    return bytes(op(b, a).astype(np.uint8).tobytes()) + new[n:]


def _npy(data: bytes) -> np.ndarray | None:
    if not data.startswith(b"\x93NUMPY"):
        return None
    try:
        return np.asarray(np.load(io.BytesIO(data), allow_pickle=False))
    except ValueError:
        return None


def tree_floor(old_root: Path, new_root: Path, changed: list[str], part_of: dict[str, str],
               *, level: int = 19) -> list[FileFloor]:
    """:func:`file_floor` of every changed file between two state trees."""
    out = []
    for rel in changed:
        old_path = old_root / rel
        old = old_path.read_bytes() if old_path.exists() else None
        out.append(file_floor(old, (new_root / rel).read_bytes(), path=rel,
                              part=part_of[rel], level=level))
    return out


def by_part(floors: list[FileFloor]) -> dict[str, dict[str, int]]:
    """Per part: new bytes, floor bytes, and bytes per estimator where it applied."""
    parts: dict[str, dict[str, int]] = {}
    for f in floors:
        p = parts.setdefault(f.part, {"files": 0, "new_bytes": 0, "floor_bytes": 0})
        p["files"] += 1
        p["new_bytes"] += f.new_bytes
        p["floor_bytes"] += f.best[1]
        name = f"best_{f.best[0]}"
        p[name] = p.get(name, 0) + 1
    return parts
