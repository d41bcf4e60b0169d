"""What a chunker's hint says about a chunk's elements: width, row length, float kind.

Without numpy, so that code which only routes chunks (the codec policy, the
registry, the backup's sealer process) does not pay for importing it.
"""

from __future__ import annotations


def width_of(hint: str | None) -> int:
    """Element width from a chunk hint (``"f4"``, ``"f4:8"`` → 4, anything else → 8)."""
    return 4 if hint is not None and (hint.startswith("f4") or hint in ("<f4", "float32")) else 8


def stride_of(hint: str | None) -> int:
    """Row length from a chunk hint (``"f8:80"`` → 80; no row → 1)."""
    if hint is None or ":" not in hint:
        return 1
    try:
        return max(1, int(hint.partition(":")[2]))
    except ValueError:
        return 1


def float_kind(hint: str | None) -> str | None:
    """``"f4"``/``"f8"`` for a float chunk hint (with or without a row length), else None."""
    if hint is None:
        return None
    kind = hint.partition(":")[0]
    return kind if kind in ("f4", "f8") else None
