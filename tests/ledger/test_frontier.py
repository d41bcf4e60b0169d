"""The verified edge of the log: tail tiles reproduce the root; extension checks each new object."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltavault.errors import FormatError, LedgerError
from deltavault.ledger.frontier import Frontier, TreeBuilder, extend, leaf_hashes, read_tails
from deltavault.ledger.log import Ledger
from deltavault.ledger.merkle import root_of_entries
from deltavault.ledger.storage import TileStore
from deltavault.ledger.tiles import bundle_key, encode_bundle, tile_key
from deltavault.store.local import LocalStore
from tests.support.hostile import ROUNDTRIP
from tests.support.ledger import ORIGIN, seeded_key

KEY = seeded_key("deltavault ledger test key")


def entries(n: int, start: int = 0) -> list[bytes]:
    return [f"entry-{i}".encode() for i in range(start, start + n)]


def frontier_of(items: list[bytes]) -> Frontier:
    builder = TreeBuilder(Frontier.empty())
    builder.push(leaf_hashes(items))
    return builder.frontier()


@ROUNDTRIP
@given(st.integers(0, 20_000), st.integers(0, 20_000))
def test_tails_alone_reproduce_every_root(n: int, cut: int) -> None:
    # hashes stand in for entries: only their count and order matter here
    items = [i.to_bytes(4, "big") for i in range(n)]
    whole = frontier_of(items)
    assert whole.root == root_of_entries(items)
    assert Frontier.of(whole.size, whole.root, whole.tails) == whole
    cut = min(cut, n)
    half = frontier_of(items[:cut])
    builder = TreeBuilder(Frontier.of(half.size, half.root, half.tails))
    builder.push(leaf_hashes(items[cut:]))
    assert builder.frontier() == whole


def test_tails_that_do_not_match_the_root_are_refused() -> None:
    f = frontier_of(entries(300))
    bad = dict(f.tails)
    bad[0] = (b"\x00" * 32, *bad[0][1:])
    with pytest.raises(LedgerError, match="do not reproduce"):
        Frontier.of(f.size, f.root, bad)
    with pytest.raises(LedgerError, match="tail tile"):
        Frontier.of(f.size, f.root, {0: f.tails[0][:-1]})


def test_extend_verifies_new_entries_and_folds_them(store: LocalStore) -> None:
    ledger = Ledger.open(store, ORIGIN, signer=KEY)
    ledger.append(entries(300))
    ledger.append(entries(400, 300))
    first = extend(TileStore(store), Frontier.empty(), 300, ledger.root_at(300))
    folded: list[bytes] = []

    class Collect:
        done_at: Frontier | None = None

        def add(self, start: int, got: list[bytes]) -> None:
            assert start == 300 + len(folded)
            folded.extend(got)

        def done(self, frontier: Frontier) -> None:
            Collect.done_at = frontier

    result = extend(TileStore(store), first, 700, ledger.root, Collect())
    assert folded == entries(400, 300)
    assert result.root == ledger.root and Collect.done_at == result
    assert read_tails(TileStore(store), 700) == result.tails


def rewrite(store: LocalStore, key: str, data: bytes) -> None:
    path = Path(store.location()) / key
    path.chmod(0o644)
    path.write_bytes(data)


@pytest.mark.parametrize("what", ["bundle", "tile0", "tile1", "root"])
def test_extend_refuses_any_altered_object_and_commits_nothing(store: LocalStore,
                                                               what: str) -> None:
    ledger = Ledger.open(store, ORIGIN, signer=KEY)
    ledger.append(entries(600))
    if what == "bundle":
        forged = entries(256)
        forged[7] = b"forged"
        rewrite(store, bundle_key(0), encode_bundle(forged))
    elif what == "tile0":
        data = bytearray(store.get(tile_key(0, 1)))
        data[40] ^= 1
        rewrite(store, tile_key(0, 1), bytes(data))
    elif what == "tile1":
        data = bytearray(store.get(tile_key(1, 0, 2)))
        data[3] ^= 1
        rewrite(store, tile_key(1, 0, 2), bytes(data))
    done: list[Frontier] = []

    class Fold:
        def add(self, start: int, got: list[bytes]) -> None:
            pass

        def done(self, frontier: Frontier) -> None:
            done.append(frontier)

    root = ledger.root if what != "root" else b"\x01" * 32
    with pytest.raises(LedgerError) as err:
        extend(TileStore(store), Frontier.empty(), 600, root, Fold())
    assert not done
    expected = {"bundle": "entry bundle ledger/tile/entries/000", "tile0": "ledger/tile/0/001",
                "tile1": "hash tile ledger/tile/1/000.p/2", "root": "signed root of size 600"}
    assert expected[what] in str(err.value)


def test_frontier_of_rejects_hostile_tails() -> None:
    for tails in ({0: (b"x",)}, {5: (b"\x00" * 32,)}, {0: ()}):
        with pytest.raises((LedgerError, FormatError)):
            Frontier.of(3, b"\x00" * 32, tails)
