"""Snapshots and pack lists (docs/format.md §8, §9)."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltavault.errors import FormatError
from deltavault.ledger.merkle import root_of_entries as merkle_root
from deltavault.repo.snapshot import (
    PACKLIST_MAGIC,
    Snapshot,
    decode_packlist,
    encode_packlist,
    packlist_root,
)
from tests.support.hostile import HOSTILE, ROUNDTRIP, decode_or_reject, maps_like, mutations

hexids = st.binary(min_size=32, max_size=32).map(bytes.hex)
times = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(9999, 1, 1),
                     timezones=st.just(UTC)).map(
    lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    return Snapshot(
        time=draw(times), hostname=draw(st.text(max_size=10)),
        username=draw(st.text(max_size=10)), paths=draw(st.lists(st.text(max_size=12),
                                                                 max_size=3)),
        tree=draw(hexids), type=draw(st.sampled_from(["full", "diff", "incr"])),
        tags=sorted(draw(st.sets(st.text(max_size=6), max_size=3))),
        parent=draw(st.none() | hexids), base=draw(st.none() | hexids),
        chain_depth=draw(st.integers(0, 100)), packs_root=draw(hexids),
        packs_count=draw(st.integers(0, 10**6)),
        summary=draw(st.dictionaries(st.text(max_size=8), st.integers(0, 2**40), max_size=4)),
        original=draw(st.none() | hexids), program=draw(st.text(max_size=10)),
        extra=draw(st.dictionaries(st.text(min_size=1, max_size=6).map(lambda s: "x-" + s),
                                   st.integers(-(2**63), 2**63 - 1) | st.text(max_size=4),
                                   max_size=2)),
    )


@given(snapshots())
@ROUNDTRIP
def test_round_trip_keeps_unknown_fields(s: Snapshot) -> None:
    back = Snapshot.decode(s.encode(), "ab" * 32)
    assert back == Snapshot(**{**s.__dict__, "id": "ab" * 32})
    assert back.encode() == s.encode()


VALID = Snapshot(time="2026-11-23T09:00:00.000000Z", hostname="h", username="u", paths=["/p"],
                 tree="cd" * 32, tags=["eod"], packs_root="ef" * 32, packs_count=1,
                 summary={"files_new": 1}).encode()


@given(mutations(VALID))
@HOSTILE
def test_hostile_bytes(data: bytes) -> None:
    decode_or_reject(Snapshot.decode, data)


@given(maps_like(msgpack.unpackb(VALID)))
@HOSTILE
def test_hostile_structures(doc: dict[str, object]) -> None:
    s = decode_or_reject(Snapshot.decode, msgpack.packb(doc, use_bin_type=True))
    if s is not None:
        assert s.type in ("full", "diff", "incr")
        assert len(s.tree) == 64
        s.datetime  # noqa: B018 - sorting snapshots needs it; it must not raise


@pytest.mark.parametrize("change", [{"v": 2}, {"type": "weekly"}, {"tree": "xyz"},
                                    {"parent": "ab"}, {"time": "yesterday"}, {"tags": [1]},
                                    {"chain_depth": True}, {"paths": "/p"}])
def test_invalid_fields_are_refused(change: dict[str, object]) -> None:
    doc = {**msgpack.unpackb(VALID), **change}
    with pytest.raises(FormatError):
        Snapshot.decode(msgpack.packb(doc, use_bin_type=True))


# --- pack lists ----------------------------------------------------------------


@given(st.sets(hexids, max_size=20))
@ROUNDTRIP
def test_packlist_round_trip(ids: set[str]) -> None:
    data = encode_packlist(ids)
    assert data.startswith(PACKLIST_MAGIC)
    assert decode_packlist(data) == sorted(ids)


@given(mutations(encode_packlist({"ab" * 32, "cd" * 32, "01" * 32})))
@HOSTILE
def test_packlist_hostile_bytes(data: bytes) -> None:
    ids = decode_or_reject(decode_packlist, data)
    if ids is not None:
        assert ids == sorted(set(ids))
        assert all(len(i) == 64 and int(i, 16) >= 0 for i in ids)


@pytest.mark.parametrize("body", [b"AB" * 32 + b"\n", b"ab" * 32, b"cd" * 32 + b"\n" + b"ab" * 32
                                  + b"\n", b"ab" * 32 + b"\n" + b"ab" * 32 + b"\n",
                                  b"ab" * 31 + b"\n"])
def test_packlist_must_be_sorted_lowercase_unique_terminated(body: bytes) -> None:
    with pytest.raises(FormatError):
        decode_packlist(PACKLIST_MAGIC + body)


def _rfc6962(leaves: list[bytes]) -> bytes:
    """The RFC 6962 definition, recursively (split at the largest power of two < n)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\0" + leaves[0]).digest()
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\1" + _rfc6962(leaves[:k]) + _rfc6962(leaves[k:])).digest()


@given(st.lists(st.binary(min_size=32, max_size=32), max_size=40))
@ROUNDTRIP
def test_merkle_root_is_rfc6962(leaves: list[bytes]) -> None:
    assert merkle_root(leaves) == _rfc6962(leaves)


def test_packlist_root_ignores_order_and_duplicates() -> None:
    a, b = "01" * 32, "ff" * 32
    assert packlist_root([b, a, a]) == packlist_root([a, b]) == _rfc6962(
        [bytes.fromhex(a), bytes.fromhex(b)]).hex()
