"""Repair damaged or missing objects of a repository from a replica.

``repair_from`` runs ``check --read-data`` to find what is wrong, fetches
each damaged or missing object (packs, index files, snapshots, pack lists)
under the same name from a replica made by ``copy``, verifies the copy —
SHA-256 equals the name, or for a pack list, its Merkle root equals the one
the ledger committed — and replaces the damaged object (delete, then a
write-once put). It then checks again. Nothing is written to the replica.

An object whose stored bytes are intact is never replaced: its problem lies
elsewhere (for example a delta whose base lay in a damaged pack, or a
missing index entry); the report lists it as ``intact`` and the re-check
says whether anything is still wrong.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from deltavault.errors import (
    BackendError,
    FormatError,
    ObjectLocked,
    ObjectNotFound,
    RepositoryNotFound,
    UserError,
)
from deltavault.ops.check import CheckReport, run_check
from deltavault.ops.transfer import name_matches
from deltavault.repo.layout import (
    DATA_PREFIX,
    INDEX_PREFIX,
    PACKLIST_PREFIX,
    SNAPSHOT_PREFIX,
    name_of,
    packlist_key,
    snapshot_key,
)
from deltavault.repo.objects import RepositoryObjects
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import decode_packlist, packlist_root
from deltavault.store.base import Store
from deltavault.store.url import open_store

_FETCHABLE = (DATA_PREFIX, INDEX_PREFIX, SNAPSHOT_PREFIX, PACKLIST_PREFIX)


@dataclass
class RepairReport:
    """What was found, what was replaced from the replica, and what was not."""

    replica: str
    problems_before: int = 0
    repaired: list[dict[str, str]] = field(default_factory=list)
    not_repaired: list[dict[str, str]] = field(default_factory=list)
    #: objects a problem named whose stored bytes are intact (e.g. a pack holding a
    #: delta whose base lay in a damaged pack): nothing to replace, not a failure
    intact: list[str] = field(default_factory=list)
    check_after: CheckReport | None = None

    @property
    def ok(self) -> bool:
        """The repository checks clean now (or, without a re-check, nothing failed)."""
        if self.check_after is not None:
            return self.check_after.ok
        return not self.not_repaired

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "replica": self.replica, "problems_before": self.problems_before,
                "repaired": self.repaired, "not_repaired": self.not_repaired,
                "intact": self.intact,
                "check_after": self.check_after.to_dict() if self.check_after else None}


def _candidates(repo: Repository, before: CheckReport) -> set[str]:
    """Keys of objects the check found damaged or missing."""
    keys: set[str] = set()
    for problem in before.problems:
        if problem.kind in ("pack", "blob", "index", "snapshot", "packlist") and \
                problem.object.startswith(_FETCHABLE):
            keys.add(problem.object)
    present = set(repo.snapshot_ids())
    listed = set(repo.objects.packlist_ids())
    for sid in repo.committed():  # committed, but the object is gone
        if sid not in present:
            keys.add(snapshot_key(sid))
        if sid not in listed:
            keys.add(packlist_key(sid))
    return keys


def _intact(key: str, data: bytes, roots: dict[str, str]) -> bool:
    if key.startswith(PACKLIST_PREFIX):
        expected = roots.get(name_of(key))
        try:
            return expected is not None and packlist_root(decode_packlist(data)) == expected
        except FormatError:
            return False
    return name_matches(key, data)


def _repair_one(repo: Repository, replica: Store, key: str, roots: dict[str, str],
                report: RepairReport) -> None:
    try:
        current: bytes | None = repo.objects.get(key)
    except ObjectNotFound:
        current = None
    except BackendError:
        current = b""  # unreadable: treat as damaged
    if current is not None and current != b"" and _intact(key, current, roots):
        report.intact.append(key)  # the problem lies elsewhere: the re-check tells
        return
    try:
        data = replica.get(key)
    except ObjectNotFound:
        report.not_repaired.append({"key": key, "reason": "missing in the replica too"})
        return
    if not _intact(key, data, roots):
        report.not_repaired.append({"key": key, "reason": "the replica's copy is damaged too"})
        return
    if current is not None:
        try:
            repo.objects.delete(key)
        except ObjectNotFound:
            pass
        except ObjectLocked as exc:
            report.not_repaired.append({"key": key, "reason": f"cannot delete: {exc}"})
            return
    repo.objects.put_once(key, data)
    report.repaired.append({"key": key, "was": "missing" if current is None else "damaged",
                            "bytes": str(len(data))})


def repair_from(repo: Repository, replica_repo: Repository | Store | str | os.PathLike[str],
                *, recheck: bool = True,
                on_progress: Callable[[int, int], None] | None = None) -> RepairReport:
    """Replace the damaged and missing objects of ``repo`` with the replica's.

    Args:
        repo: the damaged repository, opened.
        replica_repo: a replica of it made by ``copy`` (Repository, Store,
            path or URL); only read.
        recheck: run ``check --read-data`` again afterwards (``check_after``).
        on_progress: (packs read, packs to read) of each check.

    Raises:
        UserError: the replica is a different repository.
    """
    replica = (replica_repo.store if isinstance(replica_repo, Repository)
               else open_store(replica_repo))
    try:
        same = RepositoryObjects(replica).read_config() == repo.objects.read_config()
    except ObjectNotFound as exc:
        raise RepositoryNotFound(f"no repository at {replica.location()}") from exc
    if not same:
        raise UserError(f"{replica.location()} is not a replica of {repo.store.location()}",
                        hint="repair needs a replica made by 'deltavault copy'")
    report = RepairReport(replica.location())
    with repo.lock(exclusive=True):
        before = run_check(repo, read_data=True, on_progress=on_progress)
        report.problems_before = len(before.problems)
        if not before.ok:
            roots = {sid: str(ev.fields.get("packs_root", ""))
                     for sid, ev in repo.committed().items()}
            for key in sorted(_candidates(repo, before)):
                _repair_one(repo, replica, key, roots, report)
            repo.cache.clear()  # blobs read from damaged packs are gone
        if recheck:
            report.check_after = before if before.ok else run_check(
                repo, read_data=True, on_progress=on_progress)
    repo.record_best_effort("repair", repaired=len(report.repaired),
                            not_repaired=len(report.not_repaired), replica=report.replica)
    return report
