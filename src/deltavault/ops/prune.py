"""forget (drop snapshots by id or retention policy) and prune (free space).

Prune never deletes a blob that a kept blob depends on as a delta base: the
set of needed blobs is closed under "base of". It writes the new index
(superseding every old one) before deleting anything, so a crash leaves a
valid repository: at worst some unneeded packs survive until the next prune.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from deltavault.errors import ObjectLocked, ObjectNotFound, UserError
from deltavault.repo.index import IndexFile
from deltavault.repo.packs import PackEntry, pack_key
from deltavault.repo.repository import INDEX_PREFIX, PACKLIST_PREFIX, SNAPSHOT_PREFIX, Repository
from deltavault.repo.snapshot import Snapshot, decode_packlist
from deltavault.repo.walk import walk


@dataclass
class RetentionPolicy:
    """restic-style keep rules; a snapshot kept by any rule is kept."""

    last: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    tags: list[str] = field(default_factory=list)

    def empty(self) -> bool:
        return not (self.last or self.hourly or self.daily or self.weekly or self.monthly
                    or self.yearly or self.tags)


def _bucket(name: str, t: datetime) -> tuple[int, ...]:
    """The calendar bucket of a time for a keep rule."""
    if name == "weekly":
        return tuple(t.isocalendar()[:2])
    fields = {"hourly": 4, "daily": 3, "monthly": 2, "yearly": 1}[name]
    return (t.year, t.month, t.day, t.hour)[:fields]


def apply_policy(snaps: list[Snapshot], policy: RetentionPolicy) -> tuple[list[Snapshot],
                                                                          list[Snapshot]]:
    """Split snapshots (of one group) into kept and removed, newest first rules."""
    if policy.empty():
        raise UserError("no retention rule given (e.g. --keep-last 7 --keep-daily 30)")
    newest_first = sorted(snaps, key=lambda s: s.datetime, reverse=True)
    keep: set[str] = set()
    keep.update(s.id for s in newest_first[: policy.last])
    keep.update(s.id for s in newest_first if set(policy.tags) & set(s.tags))
    for name in ("hourly", "daily", "weekly", "monthly", "yearly"):
        n = getattr(policy, name)
        seen: set[Any] = set()
        for s in newest_first:
            if len(seen) >= n:
                break
            key = _bucket(name, s.datetime)
            if key not in seen:
                seen.add(key)
                keep.add(s.id)
    kept = [s for s in newest_first if s.id in keep]
    removed = [s for s in newest_first if s.id not in keep]
    return kept, removed


def group_key(s: Snapshot) -> tuple[str, tuple[str, ...]]:
    """Retention applies per host and set of paths, like restic's default."""
    return s.hostname, tuple(sorted(s.paths))


def forget_snapshots(repo: Repository, snaps: list[Snapshot], reason: str = "") -> list[str]:
    """Delete snapshot objects and their pack lists; data stays until prune."""
    _require_deletes(repo, "forget")
    removed = []
    for s in snaps:
        for key in (SNAPSHOT_PREFIX + s.id, PACKLIST_PREFIX + s.id):
            # Under Object Lock the object stays until its retention ends; the
            # ledger's forget event is what removes the snapshot for readers.
            with contextlib.suppress(ObjectNotFound, ObjectLocked):
                repo.store.delete(key)
        removed.append(s.id)
    if removed:
        repo.record("forget", snapshots=removed, reason=reason)
    return removed


def _require_deletes(repo: Repository, what: str) -> None:
    """Refuse before changing anything when the store (or token) is append-only."""
    if not repo.store.supports_deletes:
        raise ObjectLocked(f"{what} refused: {repo.store.location()} does not allow deletes "
                           "(append-only server or token); nothing was changed",
                           hint="use an admin token on a server without --append-only")


@dataclass
class PruneResult:
    """What prune found and removed."""

    packs_kept: int = 0
    packs_removed: int = 0
    bytes_removed: int = 0
    blobs_kept: int = 0
    indexes_replaced: int = 0
    packs_retained: int = 0
    dry_run: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def needed_blobs(repo: Repository, snaps: list[Snapshot]) -> set[bytes]:
    """Every blob a kept snapshot needs, closed under delta bases."""
    needed: set[bytes] = set()
    for snap in snaps:
        needed.add(bytes.fromhex(snap.tree))
        for _path, node in walk(repo, bytes.fromhex(snap.tree)):
            if node.subtree is not None:
                needed.add(node.subtree)
            needed.update(node.content)
    todo = list(needed)
    while todo:
        for loc in repo.index.locations(todo.pop()):  # every copy's base: all stay valid
            if loc.base is not None and loc.base not in needed:
                needed.add(loc.base)
                todo.append(loc.base)
    return needed


def run_prune(repo: Repository, *, dry_run: bool = False) -> PruneResult:
    """Remove packs no kept snapshot needs. The caller holds an exclusive lock."""
    repo.load_index(force=True)
    snaps = repo.snapshots()
    needed = needed_blobs(repo, snaps)
    sizes = {i.key.rsplit("/", 1)[-1]: i.size for i in repo.store.list("data/")}
    keep_entries: dict[str, list[PackEntry]] = defaultdict(list)
    for loc in repo.index.all_locations():
        if loc.id in needed and loc.pack_id in sizes:
            keep_entries[loc.pack_id].append(PackEntry(loc.type, loc.codec, loc.offset,
                                                       loc.length, loc.raw_length, loc.id,
                                                       loc.base))
    # Pack lists are what auditors check: a pack a live snapshot's list names
    # stays, even if a copy of its blobs exists elsewhere.
    listed: set[str] = set()
    for snap in snaps:
        with contextlib.suppress(ObjectNotFound):
            listed.update(decode_packlist(repo.store.get(PACKLIST_PREFIX + snap.id)))
    listed_only = (listed & set(sizes)) - set(keep_entries)
    for loc in repo.index.all_locations():
        if loc.pack_id in listed_only:
            keep_entries[loc.pack_id].append(PackEntry(loc.type, loc.codec, loc.offset,
                                                       loc.length, loc.raw_length, loc.id,
                                                       loc.base))
    remove = sorted(set(sizes) - set(keep_entries) - listed)
    result = PruneResult(packs_kept=len(keep_entries), packs_removed=len(remove),
                         bytes_removed=sum(sizes[p] for p in remove),
                         blobs_kept=sum(len(v) for v in keep_entries.values()), dry_run=dry_run)
    if dry_run:
        return result
    _require_deletes(repo, "prune")
    old_indexes = [i.key[len(INDEX_PREFIX):] for i in repo.store.list(INDEX_PREFIX)]
    result.indexes_replaced = len(old_indexes)
    repo.save_index(IndexFile.from_packs(dict(keep_entries),
                                         supersedes=[bytes.fromhex(i) for i in old_indexes]))
    for iid in old_indexes:  # the new index (random nonce) never equals an old one
        with contextlib.suppress(ObjectNotFound, ObjectLocked):
            repo.store.delete(INDEX_PREFIX + iid)
    for pid in remove:
        try:
            repo.store.delete(pack_key(pid))
        except ObjectNotFound:
            continue
        except ObjectLocked:  # under retention (S3 Object Lock): freed when it expires
            result.packs_retained += 1
    repo.load_index(force=True)
    repo.record("prune", packs_removed=result.packs_removed, bytes_removed=result.bytes_removed)
    return result

