"""Change a snapshot's tags.

Snapshots are write-once, so a re-tag writes a new snapshot object (same
tree and pack list, ``original`` pointing back), commits it with a ``tag``
event that names both ids, and deletes the old object where the store
allows. The ledger keeps both facts.
"""

from __future__ import annotations

from dataclasses import replace

from deltavault.ledger.events import Event
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot, now_rfc3339


def retag(repo: Repository, old: Snapshot, *, add: list[str], remove: list[str],
          set_to: list[str] | None = None) -> Snapshot:
    """Write the re-tagged snapshot and commit it. The caller holds a lock."""
    tags = set(set_to) if set_to is not None else set(old.tags)
    tags |= set(add)
    tags -= set(remove)
    new = replace(old, tags=sorted(tags), original=old.id, id="",
                  summary=dict(old.summary, retagged=now_rfc3339()))
    added, removed = sorted(tags - set(old.tags)), sorted(set(old.tags) - tags)
    repo.commit_snapshot(new, repo.objects.read_packlist(old.id),
                         lambda sid: Event.new("tag", snapshot=old.id, new_id=sid, add=added,
                                               remove=removed))
    repo.forget_superseded(old.id)
    return new
