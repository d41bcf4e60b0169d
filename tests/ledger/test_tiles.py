"""Tile paths and codecs."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltavault.errors import FormatError
from deltavault.ledger.merkle import leaf_hash, tree_hash
from deltavault.ledger.tiles import (
    StagedBatch,
    build_tiles,
    bundle_key,
    encode_bundle,
    encode_index,
    encode_staging,
    make_reference,
    parse_bundle,
    parse_reference,
    parse_staging,
    parse_tile,
    tile_key,
)


def test_paths() -> None:
    # Examples from c2sp.org/tlog-tiles.
    assert encode_index(1234067) == "x001/x234/067"
    assert encode_index(0) == "000"
    assert encode_index(1000) == "x001/000"
    assert tile_key(0, 1234067, 8) == "ledger/tile/0/x001/x234/067.p/8"
    assert tile_key(1, 5) == "ledger/tile/1/005"
    assert bundle_key(3, 255) == "ledger/tile/entries/003.p/255"
    with pytest.raises(ValueError):
        tile_key(0, 0, 0)


def test_build_tiles_matches_tree() -> None:
    hashes = [leaf_hash(i.to_bytes(4, "big")) for i in range(256 * 3 + 10)]
    tiles = build_tiles(0, {}, hashes)
    keys = [t.key for t in tiles]
    assert "ledger/tile/0/002" in keys and "ledger/tile/0/003.p/10" in keys
    level1 = next(t for t in tiles if t.level == 1)
    assert level1.hashes[1] == tree_hash(hashes[256:512])
    # Incremental build gives the same tiles as the last ones of a full build.
    first = build_tiles(0, {}, hashes[:300])
    tails = {0: list(first[-2].hashes), 1: list(first[-1].hashes)}
    more = build_tiles(300, tails, hashes[300:])
    assert {t.key: t.hashes for t in more}["ledger/tile/0/003.p/10"] == tuple(hashes[768:])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=40))
def test_bundle_roundtrip(entries: list[bytes]) -> None:
    assert parse_bundle(encode_bundle(entries)) == entries


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_parsers_fuzz(data: bytes) -> None:
    for parse in (parse_bundle, parse_staging, parse_reference, lambda d: parse_tile(d, 2)):
        with contextlib.suppress(FormatError):
            parse(data)


def test_staging_roundtrip_and_reference() -> None:
    b = StagedBatch(3, 5, bytes(32), (b"a", b"b"))
    assert parse_staging(encode_staging(b)) == b
    with pytest.raises(FormatError):
        parse_staging(encode_staging(b)[:-1])
    ref = make_reference(b"x" * 70000)
    assert parse_reference(ref)[1] == 70000
