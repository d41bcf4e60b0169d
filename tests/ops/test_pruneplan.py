"""Prune's planning helpers, against the plain numpy they replace."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from deltavault.ops.pruneplan import _members

# few distinct ids, so duplicates and hits are common; some end in NUL (numpy's S32 strips it)
_ID = st.sampled_from([bytes([a]) * 31 + bytes([b]) for a in range(4) for b in (0, 1, 255)])


@given(st.lists(_ID, max_size=40), st.lists(_ID, max_size=20))
def test_members_is_isin_on_sorted_ids(ids: list[bytes], wanted: list[bytes]) -> None:
    """The searchsorted marking agrees with np.isin, duplicates on either side included."""
    arr = np.array(sorted(ids), dtype="S32") if ids else np.zeros(0, dtype="S32")
    want = np.array(wanted, dtype="S32") if wanted else np.zeros(0, dtype="S32")
    expected = np.isin(arr, want) if len(arr) and len(want) else np.zeros(len(arr), bool)
    assert _members(arr, want).tolist() == expected.tolist()
