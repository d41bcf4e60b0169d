"""The vectorised scale search agrees with testing each (k, mode) on its own."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from deltavault.codec import decimals


def _one_by_one(x: np.ndarray, width: int) -> tuple[int, int] | None:
    """The search as it was: every candidate in order, sample first, then the chunk."""
    sample = x[::max(1, len(x) // decimals._SAMPLE)]
    for k in range(decimals._MAX_K[width] + 1):
        for mode in decimals._MODES:
            if (decimals._round_trips(sample, k, mode, width) is not None
                    and decimals._round_trips(x, k, mode, width) is not None):
                return k, mode
    return None


def _found(x: np.ndarray, width: int) -> tuple[int, int] | None:
    got = decimals._find_scale(x, width)
    return None if got is None else (got[0], got[1])


@settings(max_examples=300, deadline=None)
@given(width=st.sampled_from([4, 8]), k=st.integers(0, 12), ticks=st.booleans(),
       n=st.integers(1, 3000), seed=st.integers(0, 2**32 - 1),
       spoil=st.sampled_from([None, "nan", "inf", "negzero", "noise", "huge"]))
def test_scale_search_matches_the_per_candidate_search(width: int, k: int, ticks: bool, n: int,
                                                       seed: int, spoil: str | None) -> None:
    rng = np.random.default_rng(seed)
    dtype = np.float32 if width == 4 else np.float64
    ints = rng.integers(-10**6, 10**6, n)
    x = (ints * 0.1**k if ticks else ints / 10.0**k).astype(dtype)
    if spoil is not None:
        x[rng.integers(0, n)] = {"nan": np.nan, "inf": np.inf, "negzero": -0.0,
                                 "noise": rng.standard_normal(), "huge": 1e30}[spoil]
    assert _found(x, width) == _one_by_one(x, width)


def test_model_weights_pass_no_scale() -> None:
    w = np.random.default_rng(3).standard_normal(20_000).astype(np.float32)
    assert _found(w, 4) is None and _one_by_one(w, 4) is None
