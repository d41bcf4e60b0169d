"""``distinct`` gives what ``np.unique`` gives, without importing ``numpy.ma``."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from deltavault.repo.distinct import distinct


@given(st.lists(st.integers(0, 2**32 - 1), max_size=200))
def test_integers_as_np_unique(values: list[int]) -> None:
    a = np.array(values, dtype="<u4")
    got = distinct(a)
    assert got.dtype == a.dtype and got.tolist() == np.unique(a).tolist()


@given(st.lists(st.binary(min_size=0, max_size=32), max_size=100))
def test_pack_ids_as_np_unique(values: list[bytes]) -> None:
    a = np.array(values, dtype="S32")
    assert distinct(a).tolist() == np.unique(a).tolist()


def test_a_field_of_records_and_empty_arrays() -> None:
    rec = np.zeros(5, dtype=[("pack", "<u4"), ("n", "<u8")])
    rec["pack"] = [3, 1, 3, 2, 1]
    assert distinct(rec["pack"]).tolist() == [1, 2, 3]
    assert distinct(np.zeros(0, dtype="<u4")).size == 0


def test_numpy_ma_is_not_imported() -> None:
    probe = ("import sys, numpy as np; from deltavault.repo.distinct import distinct; "
             "distinct(np.array([2, 1, 2])); assert 'numpy.ma' not in sys.modules; "
             "np.unique(np.array([2, 1, 2])); print('numpy.ma' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True)
    assert out.stdout.strip() == "True"  # np.unique does import it: the check can fail
