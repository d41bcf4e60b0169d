"""Hypothesis strategies and checks for decoders fed hostile bytes.

Every decoder of stored data must either return a value or raise a
:class:`~deltavault.errors.DeltavaultError`; any other exception (IndexError,
struct.error, TypeError, …) escaping is a bug, and a hang is caught by the
hypothesis deadline and pytest-timeout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from deltavault.errors import DeltavaultError

T = TypeVar("T")

#: no per-example deadline (a loaded CI machine made it flaky); a hang is caught by
#: pytest-timeout, which fails the test
HOSTILE = settings(max_examples=200, deadline=None, database=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
ROUNDTRIP = settings(max_examples=100, deadline=None, database=None,
                     suppress_health_check=[HealthCheck.too_slow])


def decode_or_reject(decode: Callable[[bytes], T], data: bytes) -> T | None:
    """Run a decoder; a DeltavaultError is an accepted outcome, anything else fails."""
    try:
        return decode(data)
    except DeltavaultError:
        return None


def flip_bit(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


def mutations(valid: bytes) -> st.SearchStrategy[bytes]:
    """Truncations, single-bit flips, overwrites, insertions of ``valid``, and noise."""
    n = len(valid)
    assert n > 0
    return st.one_of(
        st.integers(0, n - 1).map(lambda k: valid[:k]),
        st.integers(0, n - 1).map(lambda k: valid[k:]),
        st.integers(0, 8 * n - 1).map(lambda b: flip_bit(valid, b)),
        st.tuples(st.integers(0, n - 1), st.binary(min_size=1, max_size=16)).map(
            lambda t: valid[: t[0]] + t[1] + valid[t[0] + len(t[1]):]),
        st.tuples(st.integers(0, n), st.binary(min_size=1, max_size=64)).map(
            lambda t: valid[: t[0]] + t[1] + valid[t[0]:]),
        st.binary(max_size=2 * n + 16),
    )


def single_flips(valid: bytes) -> st.SearchStrategy[bytes]:
    return st.integers(0, 8 * len(valid) - 1).map(lambda b: flip_bit(valid, b))


#: any value msgpack can carry (bin and str distinct), nested a little
msgpack_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.text(max_size=20) | st.binary(max_size=40),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)

#: any value JSON can carry
json_values: st.SearchStrategy[Any] = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats()
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


def maps_like(known: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """A map with some of ``known``'s keys kept and others given hostile values."""
    keys = sorted(known)
    return st.fixed_dictionaries({}, optional={
        k: st.one_of(st.just(known[k]), msgpack_values) for k in keys
    }).flatmap(lambda d: st.dictionaries(st.text(max_size=6), msgpack_values, max_size=2)
               .map(lambda extra: {**extra, **d}))

#: for hostile tests that touch the file system per example
HOSTILE_IO = settings(HOSTILE, max_examples=80)
