"""``check --read-data`` of the trade journal: every sealed batch the ledger names.

Each ``journal`` entry names its sealed batch object and slot and commits to
the record with a salted hash (docs/ledger.md §8). A journal object is not
needed to restore a snapshot, but it is what ``journal show``, ``ledger
prove`` and ``reconstruct`` disclose, so a deleted, swapped or altered one
must not pass ``check`` unnoticed. The entries are read through the verified
ledger one tile at a time; a batch is one ``journal append``, so its entries
are consecutive and each object is read once, with memory bounded by one
batch. A journal object that no entry names is a leftover (an interrupted
append), not a problem.
"""

from __future__ import annotations

from collections.abc import Callable

from deltavault.errors import FormatError, IntegrityError
from deltavault.ledger.events import Event
from deltavault.ledger.journal import Journal
from deltavault.ledger.names import JOURNAL_PREFIX
from deltavault.ledger.proof import commitment
from deltavault.ledger.state import is_journal_record
from deltavault.ledger.tiles import TILE_WIDTH
from deltavault.repo.repository import Repository

#: (ledger index, slot, commitment hex) of the entries naming one object
Slots = list[tuple[int, int, str]]


def check_journal(repo: Repository, problem: Callable[[str, str], None]) -> int:
    """Verify every journal object the ledger names; returns how many were read.

    Args:
        repo: the opened repository (its ledger is verified as it is read).
        problem: called with (object key, message) for each discrepancy.
    """
    journal = Journal(repo.ledger, repo.crypto)
    size = repo.ledger.size
    current, checked = "", 0
    slots: Slots = []
    for start in range(0, size, TILE_WIDTH):
        for offset, raw in enumerate(repo.ledger.entries(start, min(size, start + TILE_WIDTH))):
            if not is_journal_record(raw):
                continue
            try:
                fields = Event.from_bytes(raw).fields
                oid, slot, committed = fields["object"], int(fields["slot"]), fields["commitment"]
            except (FormatError, KeyError, TypeError, ValueError) as exc:
                problem(f"ledger entry {start + offset}", f"journal entry is malformed: {exc}")
                continue
            if oid != current:
                checked += _check_object(journal, current, slots, problem)
                current, slots = str(oid), []
            slots.append((start + offset, slot, str(committed)))
    return checked + _check_object(journal, current, slots, problem)


def _check_object(journal: Journal, oid: str, slots: Slots,
                  problem: Callable[[str, str], None]) -> int:
    if not slots:
        return 0
    key = JOURNAL_PREFIX + oid
    try:
        batch = journal.read_batch(oid, f" (named by ledger entry {slots[0][0]})")
    except IntegrityError as exc:
        problem(key, str(exc))
        return 1
    for index, slot, committed in slots:
        if not 0 <= slot < len(batch):
            problem(key, f"has no slot {slot} (ledger entry {index})")
            continue
        record, salt = batch[slot]
        if not isinstance(record, dict) or commitment(salt, record).hex() != committed:
            problem(key, f"record in slot {slot} does not match the commitment of ledger "
                         f"entry {index}")
    return 1
