"""Keep WORM retention covering everything a live snapshot needs.

With S3 Object Lock, an object's retention is fixed when it is written. A new
snapshot deduplicates against old packs and builds deltas on old bases, so
those packs must stay locked as long as the new snapshot is kept — the
lesson of kopia#1067. ``maintenance`` extends the retention of every object
a live snapshot needs (its snapshot object, pack list and packs) plus the
indexes, keys, config and the ledger, to ``days`` from now.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from deltavault.errors import UserError
from deltavault.ledger.packmoves import resolve
from deltavault.ops.view import read_history
from deltavault.repo import layout
from deltavault.repo.repository import Repository


def referenced_keys(repo: Repository) -> list[str]:
    """Every object key a live snapshot or the ledger needs."""
    keys: set[str] = {layout.CONFIG_KEY}
    for prefix in (layout.INDEX_PREFIX, layout.KEY_PREFIX, layout.LEDGER_PREFIX,
                   layout.JOURNAL_PREFIX):
        keys.update(key for key, _size in repo.objects.listing(prefix))
    moves = read_history(repo).moves  # packs prune repacked live on in their successors
    for snap in repo.snapshots():
        keys.add(layout.snapshot_key(snap.id))
        keys.add(layout.packlist_key(snap.id))
        keys.update(layout.pack_key(p)
                    for p in resolve(moves, repo.objects.read_packlist(snap.id)))
    keys.discard(layout.CHECKPOINT_KEY)  # replaced by CAS; never locked
    return sorted(keys)


def extend_retention(repo: Repository, days: int) -> int:
    """Extend retention of every referenced object to ``days`` from now."""
    store = repo.store
    inner = getattr(store, "inner", store)
    extend = getattr(inner, "extend_retention", None)
    if extend is None:
        raise UserError(f"{store.location()} has no object retention to extend "
                        "(only S3 with Object Lock does)")
    until = datetime.now(UTC) + timedelta(days=days)
    count: int = extend(referenced_keys(repo), until)
    repo.record("maintenance", retention_until=until.isoformat(), objects=count)
    return count
