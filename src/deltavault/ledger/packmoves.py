"""Where a snapshot's packs went: the fold of ``prune-start`` events' ``moved`` field.

A snapshot's pack list (``packlists/<id>``) is write-once and its Merkle
root is in the ledger, so when ``prune`` repacks or drops a pack that a live
pack list names, it records in the ledger where that pack's needed blobs
now lie (docs/ledger.md §6, docs/format.md §11): ``moved`` is a list of
``[old pack, [packs now holding its needed blobs]]``. The old pack itself is
among the targets when it stays (it lost only duplicate copies). Readers —
``check``, ``copy`` of some snapshots, the keyless ``audit`` — resolve a pack
list through these moves to the packs that hold its data today.

The fold is monotone: a later move of the same pack adds targets, and a
pack that is deleted leaves the set of its own targets, so an interrupted
prune that the next one finishes never makes a list point at nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from deltavault.ledger.events import Event

#: ``moved`` holds at most this many entries per event (the rest in further parts)
MAX_MOVES_PER_EVENT = 20_000


def parse_moves(value: object) -> list[tuple[str, list[str]]]:
    """The well-formed ``[old, [targets]]`` entries of a ``moved`` field; others are ignored.

    The event was validated and signed; a malformed entry is a newer writer's
    format this reader does not know, and ignoring it only makes a reader
    check the original pack (which then reports it missing): fail closed.
    """
    out: list[tuple[str, list[str]]] = []
    if not isinstance(value, list):
        return out
    for item in value:
        if (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)
                and isinstance(item[1], list) and all(isinstance(t, str) for t in item[1])):
            out.append((item[0], list(item[1])))
    return out


def apply_moves(moves: dict[str, set[str]], event: Event) -> None:
    """Fold one event into ``moves`` (old pack → packs holding what it held)."""
    if event.type != "prune-start":
        return
    for old, targets in parse_moves(event.fields.get("moved")):
        new = set(targets)
        previous = moves.get(old, {old})
        if old in new:  # the pack stays; some of its content now lies elsewhere too
            moves[old] = previous | new
        else:  # deleted: it no longer holds anything
            moves[old] = (previous - {old}) | new


def moves_of(events: Iterable[Event]) -> dict[str, set[str]]:
    """The moves recorded by a sequence of events, oldest first."""
    moves: dict[str, set[str]] = {}
    for event in events:
        apply_moves(moves, event)
    return moves


def resolve(moves: Mapping[str, set[str]], packs: Iterable[str]) -> set[str]:
    """The packs that hold today what ``packs`` held when a pack list was written."""
    out: set[str] = set()
    seen: set[str] = set()
    todo = list(packs)
    while todo:
        pack = todo.pop()
        if pack in seen:
            continue
        seen.add(pack)
        targets = moves.get(pack)
        if targets is None:
            out.add(pack)
            continue
        for target in targets:
            if target == pack:
                out.add(pack)
            else:
                todo.append(target)
    return out
