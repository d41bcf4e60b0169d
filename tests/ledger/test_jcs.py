"""The fast RFC 8785 encoder writes exactly what the ``rfc8785`` package writes."""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from deltavault.ledger import jcs

_SCALARS = (st.none() | st.booleans()
            | st.integers(min_value=-(2**60), max_value=2**60)
            | st.floats(allow_nan=True, allow_infinity=True)
            | st.text())
_KEYS = st.text() | st.integers() | st.sampled_from(["\U0001f600", "\ufb01", "\ue000", "a"])
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.tuples(inner, inner)
    | st.dictionaries(_KEYS, inner, max_size=5),
    max_leaves=30)


def _outcome(fn: Any, value: Any) -> bytes | type[BaseException]:
    try:
        return bytes(fn(value))
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        return type(exc)


@settings(max_examples=600, deadline=None)
@given(_VALUES)
def test_same_bytes_or_same_refusal_as_the_reference(value: Any) -> None:
    assert _outcome(jcs.dumps, value) == _outcome(rfc8785.dumps, value)


@pytest.mark.parametrize("value", [
    1e16, 1e21, 1e-7, 1e-6, 0.0001, -0.0, 100.0, 5e-324, 1.7976931348623157e308,
    123456789012345.67, 2**53, -(2**53), 2**53 - 1, True, "\u2028\x7f\x1f\"\\",
    {"\U0001f600": 1, "\ufb01": 2}, {"b": [1, {"a": None}], "a": 0.5},
    "\ud800", {1: 2}, float("nan"), float("inf"),
])
def test_edges_match_the_reference(value: Any) -> None:
    assert _outcome(jcs.dumps, value) == _outcome(rfc8785.dumps, value)


def test_plain_values_take_the_c_encoder() -> None:
    """The fast path is taken for trade-like records (else it gains nothing)."""
    record = {"order": 12, "px": 101.25, "qty": 3, "side": "buy", "tags": ["a", "é"]}
    assert jcs._plain(record, 0)
    assert not jcs._plain({"px": 100.0}, 0) and not jcs._plain({"n": 2**53}, 0)
