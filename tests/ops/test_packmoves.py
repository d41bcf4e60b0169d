"""The fold of prune's pack moves: what a pack list resolves to after repacks."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from deltavault.ledger.events import Event
from deltavault.ledger.packmoves import apply_moves, moves_of, parse_moves, resolve
from tests.support.hostile import HOSTILE

RUN = "ab" * 32


def start(moved: Any) -> Event:
    return Event.new("prune-start", run=RUN, packs=[], indexes=[], snapshots=[], moved=moved)


def test_deleted_pack_resolves_to_its_targets() -> None:
    moves = moves_of([start([["p", ["q1", "q2"]]])])
    assert resolve(moves, ["p", "x"]) == {"q1", "q2", "x"}


def test_chain_of_repacks_is_followed() -> None:
    moves = moves_of([start([["p", ["q"]]]), start([["q", ["r"]]])])
    assert resolve(moves, ["p"]) == {"r"}


def test_pack_that_stays_keeps_itself_and_gains_targets() -> None:
    moves = moves_of([start([["p", ["p", "q"]]])])
    assert resolve(moves, ["p"]) == {"p", "q"}
    # later deleted: it leaves its own set, what it pointed to stays
    apply_moves(moves, start([["p", ["r"]]]))
    assert resolve(moves, ["p"]) == {"q", "r"}


def test_a_target_deleted_with_nothing_needed_resolves_to_nothing() -> None:
    moves = moves_of([start([["p", ["q"]]]), start([["q", []]])])
    assert resolve(moves, ["p"]) == set()


def test_other_events_and_malformed_entries_are_ignored() -> None:
    moves = moves_of([Event.new("forget", snapshots=["x"], reason=""),
                      start([["p"], "q", ["r", "s"], ["t", [1]], ["u", ["v"]]])])
    assert moves == {"u": {"v"}}


@HOSTILE
@given(st.lists(st.tuples(st.sampled_from("abcdef"),
                          st.lists(st.sampled_from("abcdef"), max_size=3)), max_size=12))
def test_any_history_resolves_and_terminates(steps: list[tuple[str, list[str]]]) -> None:
    """Cycles and self-references from any sequence of prunes never hang or crash."""
    moves: dict[str, set[str]] = {}
    for old, targets in steps:
        apply_moves(moves, start([[old, targets]]))
    out = resolve(moves, "abcdef")
    assert out <= set("abcdef")
    for old, targets in steps[-1:]:
        if old not in targets:  # the pack just deleted is not in any resolution of itself
            assert old not in resolve(moves, [old])


@HOSTILE
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=4),
                    lambda inner: st.lists(inner, max_size=4), max_leaves=20))
def test_parse_moves_takes_any_json(value: Any) -> None:
    for old, targets in parse_moves(value):
        assert isinstance(old, str) and all(isinstance(t, str) for t in targets)
