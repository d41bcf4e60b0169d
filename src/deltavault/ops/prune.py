"""prune: free the space of data no kept snapshot needs.

Prune never deletes a blob that a kept blob depends on as a delta base: the
set of needed blobs is closed under "base of". It writes the new index
(superseding every old one) before deleting anything, so a crash leaves a
valid repository: at worst some unneeded packs survive until the next prune.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from deltavault.errors import ObjectLocked, ObjectNotFound
from deltavault.ops.forget import require_deletes
from deltavault.repo.index import IndexFile
from deltavault.repo.packs import PackEntry
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot
from deltavault.repo.walk import walk


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
    sizes = repo.objects.pack_sizes()
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
            listed.update(repo.objects.read_packlist(snap.id))
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
    require_deletes(repo, "prune")
    old_indexes = repo.objects.index_ids()
    result.indexes_replaced = len(old_indexes)
    repo.save_index(IndexFile.from_packs(dict(keep_entries),
                                         supersedes=[bytes.fromhex(i) for i in old_indexes]))
    for iid in old_indexes:  # the new index (random nonce) never equals an old one
        with contextlib.suppress(ObjectNotFound, ObjectLocked):
            repo.objects.delete_index(iid)
    for pid in remove:
        try:
            repo.objects.delete_pack(pid)
        except ObjectNotFound:
            continue
        except ObjectLocked:  # under retention (S3 Object Lock): freed when it expires
            result.packs_retained += 1
    repo.load_index(force=True)
    repo.record("prune", packs_removed=result.packs_removed, bytes_removed=result.bytes_removed)
    return result
