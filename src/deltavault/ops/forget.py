"""forget: drop snapshots from the live set (a ``forget`` ledger event); data stays until prune."""

from __future__ import annotations

import contextlib

from deltavault.errors import ObjectLocked
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot


def forget_snapshots(repo: Repository, snaps: list[Snapshot], reason: str = "") -> list[str]:
    """Delete snapshot objects and their pack lists; data stays until prune."""
    require_deletes(repo, "forget")
    removed = []
    for s in snaps:
        # Under Object Lock the object stays until its retention ends; the
        # ledger's forget event is what removes the snapshot for readers.
        with contextlib.suppress(ObjectLocked):
            repo.delete_snapshot_objects(s.id)
        removed.append(s.id)
    if removed:
        repo.record("forget", snapshots=removed, reason=reason)
    return removed


def require_deletes(repo: Repository, what: str) -> None:
    """Refuse before changing anything when the store (or token) is append-only."""
    if not repo.store.supports_deletes:
        raise ObjectLocked(f"{what} refused: {repo.store.location()} does not allow deletes "
                           "(append-only server or token); nothing was changed",
                           hint="use an admin token on a server without --append-only")
