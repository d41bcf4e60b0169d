"""Change a snapshot's tags.

Snapshots are write-once, so a re-tag writes a new snapshot object (same
tree and pack list, ``original`` pointing back), commits it with a ``tag``
event that names both ids, and deletes the old object where the store
allows. The ledger keeps both facts.
"""

from __future__ import annotations

from dataclasses import replace

from deltavault.repo.repository import PACKLIST_PREFIX, Repository
from deltavault.repo.snapshot import Snapshot, now_rfc3339


def retag(repo: Repository, old: Snapshot, *, add: list[str], remove: list[str],
          set_to: list[str] | None = None) -> Snapshot:
    """Write the re-tagged snapshot and commit it. The caller holds a lock."""
    tags = set(set_to) if set_to is not None else set(old.tags)
    tags |= set(add)
    tags -= set(remove)
    new = replace(old, tags=sorted(tags), original=old.id, id="",
                  summary=dict(old.summary, retagged=now_rfc3339()))
    sid, sealed = repo.seal_snapshot(new)
    repo.put_once(PACKLIST_PREFIX + sid, repo.store.get(PACKLIST_PREFIX + old.id))
    repo.put_sealed_snapshot(new, sid, sealed)
    repo.record("tag", snapshot=old.id, new_id=sid, add=sorted(tags - set(old.tags)),
                remove=sorted(set(old.tags) - tags))
    repo.forget_superseded(old.id)
    return new
