"""Zigzag residuals: the in-place inverse the decoders use equals the plain one."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from deltavault.codec.numeric import unzigzag, zigzag

WIDTHS = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}


@given(st.sampled_from(sorted(WIDTHS)), st.lists(st.integers(0, 2**64 - 1), max_size=64))
def test_inplace_unzigzag_equals_the_plain_one_and_inverts_zigzag(width: int,
                                                                  values: list[int]) -> None:
    dt = WIDTHS[width]
    d = np.array([v % (1 << (8 * width)) for v in values], dtype=dt)
    z = zigzag(d)
    plain = unzigzag(z)
    buf = z.copy()
    out = unzigzag(buf, inplace=True)
    assert out is buf
    assert out.dtype == plain.dtype == dt
    assert np.array_equal(out, plain) and np.array_equal(out, d)
