"""Which snapshots exist, as the log says: the fold of snapshot, tag and forget events.

The log is the authority on what exists (docs/ledger.md §6): a snapshot
exists from its ``snapshot`` event until a ``forget`` event names it; a
``tag`` event moves it to the re-tagged object's id. Readers of the
repository and the keyless audit compute the same state with this fold.
"""

from __future__ import annotations

from collections.abc import Iterable

from deltavault.ledger.events import Event
from deltavault.ledger.log import Ledger


def apply_event(live: dict[str, Event], event: Event) -> None:
    """Track which snapshots exist: committed, re-tagged (new id), forgotten.

    ``live`` maps a snapshot id to the ``snapshot`` event that committed its
    content (a re-tagged snapshot keeps its original event: same tree and
    pack list under a new id).
    """
    if event.type == "snapshot":
        live[event.fields["id"]] = event
    elif event.type == "tag":
        old, new = event.fields.get("snapshot"), event.fields.get("new_id")
        if isinstance(old, str) and isinstance(new, str) and old in live:
            live[new] = live.pop(old)
    elif event.type == "forget":
        for sid in event.fields.get("snapshots", []):
            live.pop(sid, None)


def events(ledger: Ledger) -> Iterable[tuple[int, Event]]:
    """Every event in the log, with its index."""
    size = ledger.size
    step = 4096
    for start in range(0, size, step):
        for offset, raw in enumerate(ledger.entries(start, min(size, start + step))):
            yield start + offset, Event.from_bytes(raw)


def committed_snapshots(ledger: Ledger) -> dict[str, Event]:
    """Snapshot id → the ``snapshot`` event of every snapshot that exists now."""
    live: dict[str, Event] = {}
    for _i, event in events(ledger):
        apply_event(live, event)
    return live
