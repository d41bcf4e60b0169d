"""Verify a repository's structure and, optionally, every stored byte.

``check`` proves what ``restore`` would need for the live set the ledger
defines (not every object under ``snapshots/``): every index readable, every
pack it names present, every committed snapshot's object present and its
trees decodable, every blob and delta base indexed, every pack list matching
its ledger root and (through the moves prunes recorded) naming the packs
that hold the snapshot's blobs. ``--read-data`` additionally
reads packs, checks their SHA-256 names, decrypts every blob, decodes it
(through delta chains) and re-hashes it against its id, and reads every
journal object the ledger names (:mod:`deltavault.ops.journalcheck`).
Problems name the damaged object and the snapshots and files it affects.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deltavault.errors import DeltavaultError
from deltavault.ops.checktrees import TreeSummaries, blob_users, resolve_multi
from deltavault.ops.journalcheck import check_journal
from deltavault.ops.view import inspect_live
from deltavault.repo.index import BlobLocation
from deltavault.repo.layout import PACKLIST_PREFIX, index_key, pack_key, packlist_key, snapshot_key
from deltavault.repo.packs import parse_pack
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot


@dataclass
class Problem:
    """One thing wrong, with the object it concerns."""

    kind: str
    object: str
    message: str
    affected: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "object": self.object, "message": self.message,
                "affected": self.affected}


@dataclass
class CheckReport:
    """What was checked and what was found."""

    indexes: int = 0
    packs: int = 0
    packs_read: int = 0
    snapshots: int = 0
    blobs_verified: int = 0
    #: journal objects read by ``--read-data``
    journal_objects: int = 0
    unreferenced_packs: list[str] = field(default_factory=list)
    #: snapshot objects no ledger event makes live (interrupted backups, forgotten ones)
    leftover_snapshots: list[str] = field(default_factory=list)
    #: prune runs that started and did not finish (the next prune finishes them)
    interrupted_prunes: list[str] = field(default_factory=list)
    #: in a replica of chosen snapshots: committed snapshots that were not copied
    not_copied: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    #: live snapshots whose claimed time the ledger does not believe (a warning)
    time_flags: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "indexes": self.indexes, "packs": self.packs,
                "packs_read": self.packs_read, "snapshots": self.snapshots,
                "blobs_verified": self.blobs_verified, "journal_objects": self.journal_objects,
                "unreferenced_packs": self.unreferenced_packs,
                "leftover_snapshots": self.leftover_snapshots,
                "interrupted_prunes": self.interrupted_prunes, "not_copied": self.not_copied,
                "problems": [p.to_dict() for p in self.problems],
                "time_flags": self.time_flags}


def _load_indexes(repo: Repository, report: CheckReport) -> None:
    files = []
    damaged: list[tuple[str, str]] = []
    for iid in repo.objects.index_ids():
        try:
            files.append((iid, repo.load_index_file(iid)))
        except DeltavaultError as exc:
            damaged.append((iid, str(exc)))
    # a damaged file that a readable one supersedes is ignored by every reader
    superseded = {s.hex() for _, f in files for s in f.supersedes}
    for iid, message in damaged:
        if iid not in superseded:
            report.problems.append(Problem("index", index_key(iid), message))
    report.indexes = len(files)
    repo.index.load(files)
    repo._index_loaded = True


def _check_snapshot(repo: Repository, snap: Snapshot, listed: set[str], report: CheckReport,
                    trees: TreeSummaries) -> None:
    missing: list[bytes] = []
    try:
        summary = trees.summarise(bytes.fromhex(snap.tree), missing)
    except DeltavaultError as exc:
        report.problems.append(Problem("tree", snapshot_key(snap.id), f"tree walk: {exc}",
                                       [snap.id]))
        return
    # The pack list (resolved through prune's moves) names where the blobs lie; a
    # blob stored more than once may use any copy, preferably one the list names.
    unlisted = set(summary.packs - listed) | resolve_multi(repo, summary.multi, listed,
                                                            missing)
    if missing:
        users = blob_users(repo, [snap], set(missing))
        for blob in dict.fromkeys(missing):
            report.problems.append(Problem(
                "blob", blob.hex(), "blob is not in any index (missing data or delta base)",
                users.get(blob, [snap.id[:12]])[:10]))
    if listed and unlisted:
        report.problems.append(Problem(
            "packlist", packlist_key(snap.id),
            f"pack list misses {len(unlisted)} pack(s) the snapshot needs", [snap.id]))


def _read_pack(repo: Repository, pack_id: str, indexed: list[BlobLocation],
               report: CheckReport) -> list[bytes]:
    """Verify one pack end to end; returns ids of blobs found damaged."""
    key = pack_key(pack_id)
    try:
        data = repo.objects.read_pack(pack_id)
    except DeltavaultError as exc:
        report.problems.append(Problem("pack", key, f"cannot read: {exc}"))
        return []
    if hashlib.sha256(data).hexdigest() != pack_id:
        report.problems.append(Problem("pack", key, "content does not match its name (SHA-256)"))
        bad = []
        for loc in indexed:
            try:
                repo.decode_blob(loc, data[loc.offset : loc.offset + loc.length])
            except DeltavaultError:
                bad.append(loc.id)
        return bad or [loc.id for loc in indexed]
    view = memoryview(data)
    try:
        entries = {e.id: e for e in parse_pack(data, repo.crypto, key)}
    except DeltavaultError as exc:
        report.problems.append(Problem("pack", key, f"header: {exc}"))
        return [loc.id for loc in indexed]
    bad = []
    for loc in indexed:
        e = entries.get(loc.id)
        if e is None or (e.offset, e.length, e.codec) != (loc.offset, loc.length, loc.codec):
            report.problems.append(Problem("index", key,
                                           f"index disagrees with pack header on blob "
                                           f"{loc.id.hex()[:16]}"))
            bad.append(loc.id)
            continue
        try:
            repo.decode_blob(loc, view[loc.offset : loc.offset + loc.length])
            report.blobs_verified += 1
        except DeltavaultError as exc:
            report.problems.append(Problem("blob", key, str(exc)))
            bad.append(loc.id)
    report.packs_read += 1
    return bad


def run_check(repo: Repository, *, read_data: bool = False, subset: float | None = None,
              on_progress: Callable[[int, int], None] | None = None,
              seed: int | None = None) -> CheckReport:
    """Check the repository; ``subset`` (0-1] reads only that share of packs."""
    report = CheckReport()
    stored = repo.objects.pack_sizes()
    _load_indexes(repo, report)
    indexed = repo.index.pack_ids()
    report.packs = len(indexed)
    for pid in sorted(indexed - stored.keys()):
        report.problems.append(Problem("pack", pack_key(pid), "pack is in the index but missing"))
    report.unreferenced_packs = sorted(stored.keys() - indexed)
    view = inspect_live(repo)
    replica = repo.objects.is_replica()
    for damage in view.damaged:
        if replica and damage.absent:  # copy of chosen snapshots: not copied, not damaged
            report.not_copied.append(damage.snapshot)
            continue
        kind = "packlist" if damage.key.startswith(PACKLIST_PREFIX) else "snapshot"
        report.problems.append(Problem(kind, damage.key, damage.message, [damage.snapshot]))
    report.snapshots = len(view.committed) - len(report.not_copied)
    report.leftover_snapshots = sorted(set(repo.snapshot_ids()) - set(view.committed))
    report.interrupted_prunes = view.history.unfinished
    report.time_flags = [f"snapshot {sid[:12]}: {live.flag}"
                         for sid, live in repo.live_snapshots().items() if live.flag]
    trees = TreeSummaries(repo)
    snaps = view.ordered()
    for snap in snaps:
        _check_snapshot(repo, snap, view.packs[snap.id], report, trees)
    if read_data:
        todo = sorted(indexed & stored.keys())
        if subset is not None and subset < 1:
            rng = random.Random(seed)
            todo = sorted(rng.sample(todo, max(1, round(len(todo) * subset)))) if todo else []
        by_pack: dict[str, list[BlobLocation]] = {}
        for loc in repo.index.all_locations():
            by_pack.setdefault(loc.pack_id, []).append(loc)
        bad: list[bytes] = []
        for n, pid in enumerate(todo):
            bad += _read_pack(repo, pid, by_pack.get(pid, []), report)
            if on_progress is not None:
                on_progress(n + 1, len(todo))
        _attribute(repo, report, bad, snaps)
        report.journal_objects = check_journal(
            repo, lambda key, message: report.problems.append(Problem("journal", key, message)))
    repo.record_best_effort("check", ok=report.ok, errors=len(report.problems),
                            read_data=read_data, packs_read=report.packs_read)
    return report


def _attribute(repo: Repository, report: CheckReport, bad: list[bytes],
               snaps: list[Snapshot]) -> None:
    """Name the snapshots and files that need each damaged blob."""
    if not bad:
        return
    users = blob_users(repo, snaps, set(bad))
    affected = sorted({u for b in bad for u in users.get(b, [])})
    report.problems.append(Problem(
        "affected", f"{len(bad)} blob(s)",
        f"{len(affected)} file(s) in snapshots cannot be restored from this repository",
        affected))
