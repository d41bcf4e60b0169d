"""Sorted distinct values of a 1-D array, without ``np.unique``.

numpy 2's ``np.unique`` asks ``np.ma.is_masked`` about its input, and the
first such call imports ``numpy.ma`` (9-12 ms measured on the bench machine).
Every restore, rollback and backup made that call at its first index lookup,
to learn which packs a batch of blobs lives in, so each paid the import at
start-up; the index modules use this instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def distinct(values: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """The distinct elements of the 1-D array ``values``, sorted (what ``np.unique`` gives)."""
    ordered = np.sort(values)
    if ordered.size < 2:
        return ordered
    keep = np.empty(ordered.shape, dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]
