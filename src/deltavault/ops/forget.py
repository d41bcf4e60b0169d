"""forget: drop snapshots from the live set with a ``forget`` ledger event; data stays until prune.

The event comes first (docs/format.md §11): from the moment it is in the
log the snapshots do not exist for any reader, so a crash right after it
leaves only their objects behind, which ``prune`` removes as leftovers. The
old order (delete, then record) could leave deletions the ledger never
mentioned.
"""

from __future__ import annotations

from collections.abc import Sequence

from deltavault.errors import ObjectLocked, ObjectNotFound
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot


def forget_snapshots(repo: Repository, snaps: Sequence[Snapshot | str],
                     reason: str = "") -> list[str]:
    """Record the forget, then delete the snapshot objects and pack lists.

    The caller holds the exclusive lock and has verified the live view.
    Objects under retention (S3 Object Lock) stay until it ends; the event
    is what removes the snapshots for readers, and a later prune deletes
    the objects once it can.
    """
    require_deletes(repo, "forget")
    ids = list(dict.fromkeys(s if isinstance(s, str) else s.id for s in snaps))
    if not ids:
        return []
    repo.record("forget", snapshots=ids, reason=reason)
    for sid in ids:
        for delete in (repo.objects.delete_snapshot, repo.objects.delete_packlist):
            try:
                delete(sid)
            except (ObjectNotFound, ObjectLocked):
                continue
    return ids


def require_deletes(repo: Repository, what: str) -> None:
    """Refuse before changing anything when the store (or token) is append-only."""
    if not repo.store.supports_deletes:
        raise ObjectLocked(f"{what} refused: {repo.store.location()} does not allow deletes "
                           "(append-only server or token); nothing was changed",
                           hint="use an admin token on a server without --append-only")
