"""The AEAD envelope (docs/format.md §2.2)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltavault.errors import IntegrityError
from deltavault.repo.crypto import (
    AAD_INDEX,
    AAD_SNAPSHOT,
    OVERHEAD,
    Crypto,
    MasterKey,
    derive,
)
from tests.support.hostile import HOSTILE, ROUNDTRIP, decode_or_reject, mutations, single_flips

CRYPTO = Crypto(MasterKey(bytes(range(32))))
VALID = CRYPTO.seal(AAD_SNAPSHOT, b"snapshot body " * 4)


@given(st.binary(max_size=2000), st.binary(max_size=40))
@ROUNDTRIP
def test_round_trip(plain: bytes, aad: bytes) -> None:
    env = CRYPTO.seal(aad, plain)
    assert len(env) == len(plain) + OVERHEAD
    assert CRYPTO.open(aad, env) == plain


def test_nonces_are_fresh() -> None:
    assert CRYPTO.seal(AAD_INDEX, b"x") != CRYPTO.seal(AAD_INDEX, b"x")


@given(single_flips(VALID))
@HOSTILE
def test_every_bit_flip_is_detected(env: bytes) -> None:
    with pytest.raises(IntegrityError):
        CRYPTO.open(AAD_SNAPSHOT, env)


@given(mutations(VALID))
@HOSTILE
def test_hostile_envelopes(env: bytes) -> None:
    out = decode_or_reject(lambda e: CRYPTO.open(AAD_SNAPSHOT, e), env)
    assert out is None or env == VALID


def test_role_and_key_are_bound() -> None:
    with pytest.raises(IntegrityError):
        CRYPTO.open(AAD_INDEX, VALID)
    other = Crypto(MasterKey(bytes(32)))
    with pytest.raises(IntegrityError):
        other.open(AAD_SNAPSHOT, VALID)
    bid = CRYPTO.blob_id(b"a")
    env = CRYPTO.seal_blob(bid, b"payload")
    with pytest.raises(IntegrityError):
        CRYPTO.open_blob(CRYPTO.blob_id(b"b"), env)
    assert CRYPTO.open_blob(bid, memoryview(env)) == b"payload"


def test_subkeys_are_independent_and_ids_keyed() -> None:
    m = bytes(range(32))
    keys = {derive(m, c) for c in ("deltavault 2026-11 v1 encryption",
                                   "deltavault 2026-11 v1 blob id",
                                   "deltavault 2026-11 v1 config mac")}
    assert len(keys) == 3
    assert CRYPTO.blob_id(b"x") != Crypto(MasterKey(bytes(32))).blob_id(b"x")
    assert 0 < CRYPTO.chunker_seed < 2**63


def test_master_key_size_is_enforced() -> None:
    with pytest.raises(ValueError):
        MasterKey(b"short")
