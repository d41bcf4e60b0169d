"""The public Python API of deltavault: the façade the CLI's repository commands use.

Every repository operation a user runs from the command line is a function
here with the same options, so a script or the web console can do what the
CLI does::

    from deltavault import api
    repo = api.init("/srv/vault", b"secret")
    snap = api.backup(repo, ["/var/lib/trading"], tags=["eod"]).snapshot
    api.restore(repo, "latest", "/tmp/restore")
    api.forget(repo, policy=api.RetentionPolicy(daily=30), prune=True)

The log has its own public package, :mod:`deltavault.ledger` (verify, prove,
journal); live databases are :mod:`deltavault.sources`; positions and
collateral are :mod:`deltavault.trading`. Engine modules are imported when a
function is first called, so ``import deltavault.api`` (and ``deltavault
--help``) stays cheap.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from deltavault.store.url import open_store

if TYPE_CHECKING:
    from deltavault.backup.options import BackupOptions, BackupResult, Progress
    from deltavault.codec.policy import Policy
    from deltavault.ledger.state import LiveSnapshot
    from deltavault.ops.audit import AuditReport
    from deltavault.ops.backup_metrics import BackupRun
    from deltavault.ops.check import CheckReport
    from deltavault.ops.diff import DiffResult
    from deltavault.ops.prune import PruneResult
    from deltavault.ops.reindex import ReindexReport
    from deltavault.ops.repair import RepairReport
    from deltavault.ops.retention import RetentionPolicy
    from deltavault.ops.status import RepositoryStatus
    from deltavault.ops.transfer import CopyReport
    from deltavault.repo.config import ChunkerParams
    from deltavault.repo.locks import LockInfo
    from deltavault.repo.repository import Repository
    from deltavault.repo.snapshot import Snapshot
    from deltavault.repo.tree import Node
    from deltavault.restore.restorer import RestoreResult
    from deltavault.restore.rollback import RollbackResult
    from deltavault.store.base import Store

__all__ = [
    "BackupOptions",
    "BackupResult",
    "BackupRun",
    "CheckReport",
    "ChunkerParams",
    "CopyReport",
    "DiffResult",
    "ForgetResult",
    "Progress",
    "PruneResult",
    "ReindexReport",
    "RepairReport",
    "Repository",
    "RestoreResult",
    "RetentionPolicy",
    "RollbackResult",
    "Snapshot",
    "audit",
    "backup",
    "backup_metrics",
    "check",
    "copy",
    "diff",
    "dump",
    "extend_retention",
    "find_snapshot",
    "forget",
    "init",
    "ledger_origin",
    "ledger_times",
    "ledger_verifier_key",
    "locks",
    "ls",
    "mirror_ledger",
    "open",
    "open_store",
    "prune",
    "repair",
    "repair_index",
    "restore",
    "rollback",
    "snapshots",
    "stats",
    "status",
    "tag",
    "unlock",
]  # fmt: skip

#: types re-exported lazily (importing them pulls in the engine)
_TYPES = {
    "BackupOptions": "deltavault.backup.options", "BackupResult": "deltavault.backup.options",
    "BackupRun": "deltavault.ops.backup_metrics",
    "ChunkerParams": "deltavault.repo.config",
    "Progress": "deltavault.backup.options", "CheckReport": "deltavault.ops.check",
    "CopyReport": "deltavault.ops.transfer", "DiffResult": "deltavault.ops.diff",
    "PruneResult": "deltavault.ops.prune", "RepairReport": "deltavault.ops.repair",
    "ReindexReport": "deltavault.ops.reindex",
    "RetentionPolicy": "deltavault.ops.retention", "Repository": "deltavault.repo.repository",
    "Snapshot": "deltavault.repo.snapshot", "RestoreResult": "deltavault.restore.restorer",
    "RollbackResult": "deltavault.restore.rollback",
}  # fmt: skip

def __getattr__(name: str) -> Any:
    module = _TYPES.get(name)
    if module is None:
        raise AttributeError(f"module 'deltavault.api' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


# --- repositories -----------------------------------------------------------------


def init(location: str | os.PathLike[str] | Store, password: bytes, *,
         chunker: ChunkerParams | None = None, compression_level: int = 3,
         pack_size: int = 8 * 1024 * 1024, kdf_memory_kib: int | None = None,
         kdf_time_cost: int | None = None, max_chain: int = 8) -> Repository:
    """Create a repository and return it opened."""
    from deltavault.repo.keys import KdfParams
    from deltavault.repo.repository import Repository

    store = open_store(location, create=True)
    kdf = KdfParams.fresh(memory_kib=kdf_memory_kib, time_cost=kdf_time_cost)
    return Repository.init(store, password, chunker=chunker, compression_level=compression_level,
                           pack_size=pack_size, kdf=kdf, max_chain=max_chain)


def open(location: str | os.PathLike[str] | Store, password: bytes) -> Repository:
    """Open an existing repository with a password.

    The key is derived before the repository, ledger and index modules are
    imported (:mod:`deltavault.repo.unlock`), so Argon2id's memory is back with
    the system before theirs is taken.
    """
    from deltavault.repo.unlock import unlock

    store = open_store(location)
    opened = unlock(store, password)
    from deltavault.repo.repository import Repository

    return Repository.unlocked(store, opened)


def locks(repo: Repository) -> list[LockInfo]:
    """Every lock currently held on the repository."""
    from deltavault.repo.locks import read_locks

    return read_locks(repo.store, repo.crypto)


def unlock(repo: Repository, *, remove_all: bool = False) -> tuple[list[LockInfo],
                                                                  list[LockInfo]]:
    """Remove stale locks (or all of them); returns (removed, still held)."""
    from deltavault.repo.locks import read_locks, remove_locks

    removed = remove_locks(repo.store, repo.crypto, all_locks=remove_all)
    return removed, read_locks(repo.store, repo.crypto)


def stats(repo: Repository) -> dict[str, int]:
    """Repository totals: snapshots, packs, blobs, stored and plain bytes."""
    from deltavault.ops.stats import repository_stats

    return repository_stats(repo)


# --- snapshots ----------------------------------------------------------------------


def snapshots(repo: Repository, *, tags: Sequence[str] = ()) -> list[Snapshot]:
    """Every snapshot (carrying all of ``tags``), oldest first."""
    return [s for s in repo.snapshots() if set(tags) <= set(s.tags)]


def ledger_times(repo: Repository) -> dict[str, LiveSnapshot]:
    """Each live snapshot's ledger index, ledger time and time flag (docs/ledger.md §9.3)."""
    return repo.live_snapshots()


def find_snapshot(repo: Repository, ref: str) -> Snapshot:
    """The snapshot an id, unique prefix, ``latest``, ``latest~N`` or tag names."""
    return repo.find_snapshot(ref)


def ls(repo: Repository, snapshot: str, path: str = "") -> Iterator[tuple[str, Node]]:
    """``(path, node)`` of every entry below ``path`` in a snapshot, parents first.

    Holds a shared lock until the iteration ends (or the iterator is closed).
    """
    from deltavault.errors import UserError
    from deltavault.repo.walk import find_node, walk

    with repo.lock():
        snap = repo.find_snapshot(snapshot)
        repo.load_index()
        root = bytes.fromhex(snap.tree)
        prefix = path.strip("/")
        if prefix:
            node = find_node(repo, root, prefix)
            if node.type != "dir" or node.subtree is None:
                raise UserError(f"{path} is not a directory")
            root = node.subtree
        for p, n in walk(repo, root):
            yield (f"{prefix}/{p}" if prefix else p), n


def dump(repo: Repository, snapshot: str, path: str, out: IO[bytes]) -> int:
    """Write one file of a snapshot to ``out``, verifying every blob; returns its size."""
    from deltavault.errors import UserError
    from deltavault.repo.walk import find_node

    with repo.lock():
        snap = repo.find_snapshot(snapshot)
        repo.load_index()
        node = find_node(repo, bytes.fromhex(snap.tree), path)
        if node.type != "file":
            raise UserError(f"{path} is a {node.type}, not a file")
        size = 0
        for blob in node.content:
            data = repo.load_blob(blob)
            out.write(data)
            size += len(data)
        return size


def diff(repo: Repository, a: str, b: str) -> tuple[Snapshot, Snapshot, DiffResult]:
    """Files added, removed and changed from snapshot ``a`` to ``b``."""
    from deltavault.ops.diff import diff_snapshots

    with repo.lock():
        snaps = repo.snapshots()
        sa, sb = repo.find_snapshot(a, snaps), repo.find_snapshot(b, snaps)
        return sa, sb, diff_snapshots(repo, sa, sb)


def tag(repo: Repository, snapshot: str, *, add: Sequence[str] = (),
        remove: Sequence[str] = (), set_to: Sequence[str] | None = None) -> tuple[Snapshot,
                                                                                  Snapshot]:
    """Change a snapshot's tags; returns (old, re-tagged) snapshots."""
    from deltavault.errors import UserError
    from deltavault.ops.tags import retag

    if not (add or remove or set_to):
        raise UserError("give tags to add, remove or set")
    with repo.lock():
        old = repo.find_snapshot(snapshot)
        new = retag(repo, old, add=list(add), remove=list(remove),
                    set_to=list(set_to) if set_to else None)
    return old, new


# --- the data path --------------------------------------------------------------------


def backup(repo: Repository, paths: Sequence[str | os.PathLike[str]] = (), *,
           snapshot_type: str = "incr", tags: Sequence[str] = (), hostname: str = "",
           excludes: Sequence[str] = (), stdin: IO[bytes] | None = None,
           stdin_filename: str = "stdin", codec: Policy = "auto", full_every: int = 0,
           full_after_days: float = 0, parent: str | None = None,
           label: Sequence[str] | None = None, workers: int = 0,
           on_progress: Callable[[Progress], None] | None = None,
           progress: Progress | None = None, estimate_totals: bool = False) -> BackupResult:
    """Take a snapshot of ``paths`` (or of ``stdin``) under a shared lock.

    Args mirror ``deltavault backup``: ``snapshot_type`` full/diff/incr,
    ``codec`` the CPU budget of the codec policy, ``full_every`` /
    ``full_after_days`` when a diff/incr becomes a full, ``label`` the paths
    recorded instead of the absolute ones (live-source staging);
    ``estimate_totals`` counts the files and bytes to read on a background
    thread, so ``progress`` can give an ETA.
    """
    from deltavault.backup.options import BackupOptions
    from deltavault.backup.run import run_backup

    opts = BackupOptions(paths=[Path(p) for p in paths], snapshot_type=snapshot_type,
                         tags=list(tags), hostname=hostname, excludes=list(excludes),
                         stdin=stdin, stdin_filename=stdin_filename, codec=codec,
                         full_every=full_every, full_after_days=full_after_days, parent=parent,
                         label=list(label) if label is not None else None, workers=workers)
    if estimate_totals:
        from deltavault.backup.options import Progress
        from deltavault.backup.walker import start_scanner

        progress = progress or Progress()
        start_scanner(opts, progress)
    with repo.lock():
        return run_backup(repo, opts, on_progress=on_progress, progress=progress)


def restore(repo: Repository, snapshot: str, target: str | os.PathLike[str], *,
            include: Sequence[str] = (),
            on_progress: Callable[[int, int], None] | None = None,
            processes: int = 0) -> RestoreResult:
    """Restore a snapshot (id, prefix, tag or ``latest``) below ``target``, under a shared lock.

    ``processes``: 0 lets the restore decide (several for a large snapshot in
    a local repository), 1 keeps it in this process, more asks for that many.
    Several means ``os.fork``: a program whose other threads use ``repo`` (or
    hold locks the restore needs) while it runs should pass 1.
    """
    from deltavault.restore.restorer import RestoreOptions, run_restore

    with repo.lock():  # prune cannot remove the packs being read
        snap = repo.find_snapshot(snapshot)
        return run_restore(repo, snap, RestoreOptions(Path(target), list(include),
                                                      processes=processes),
                           on_progress=on_progress)


def rollback(repo: Repository, snapshot: str | None = None, *, tag: str | None = None,
             target: str | os.PathLike[str], discard_previous: bool = False,
             keep_previous_hours: float | None = None, reuse: str = "metadata",
             sync: bool = True) -> RollbackResult:
    """Put a live directory back to a snapshot atomically (build beside it, then swap).

    The side tree is built from what ``target`` already holds where it equals
    the snapshot (``reuse``: ``metadata`` trusts size/mtime/ctime/inode and
    hashes the rest, ``link`` trusts the same but hard-links the unchanged files
    instead of copying them, ``content`` hashes everything, ``none`` reads all
    from the repository). The replaced tree is kept as a hidden sibling for
    ``keep_previous_hours`` (default 24; a later rollback deletes it after
    that) unless ``discard_previous``. Refuses ``/``, the home directory, a
    symlink and the repository's own directory.
    """
    from deltavault.restore.rollback import DEFAULT_GRACE_HOURS, pick_snapshot, run_rollback

    with repo.lock():  # prune cannot remove the packs being read
        snap = pick_snapshot(repo, snapshot, tag)
        grace = DEFAULT_GRACE_HOURS if keep_previous_hours is None else keep_previous_hours
        return run_rollback(repo, snap, Path(target), discard_previous=discard_previous,
                            grace_hours=grace, reuse=reuse, sync=sync)


# --- maintenance ------------------------------------------------------------------------


def check(repo: Repository, *, read_data: bool = False, subset: float | None = None,
          on_progress: Callable[[int, int], None] | None = None) -> CheckReport:
    """Verify structure, and with ``read_data`` (or a ``subset`` share of packs) every byte."""
    from deltavault.ops.check import run_check

    with repo.lock():
        return run_check(repo, read_data=read_data or subset is not None, subset=subset,
                         on_progress=on_progress)


@dataclass
class ForgetResult:
    """The snapshots ``forget`` dropped (or would drop), and prune's result if it ran."""

    forgotten: list[str]
    dry_run: bool
    prune: PruneResult | None = None


def forget(repo: Repository, snapshots: Sequence[str] = (), *,
           policy: RetentionPolicy | None = None, dry_run: bool = False,
           prune: bool = False, max_unused: float | None = None,
           max_repack_size: int | None = None,
           on_progress: Callable[[int, int], None] | None = None) -> ForgetResult:
    """Forget snapshots by reference or by a retention policy (per host and paths).

    Runs only on a complete, verified view of the live snapshots (exit 13
    otherwise, nothing changed); a snapshot whose object is lost can still
    be forgotten by its full id, which is how its loss is accepted. Data is
    freed only by prune (``prune=True`` runs it afterwards, under the same
    exclusive lock, with ``max_unused`` and ``max_repack_size``; prune's
    verification of the complete view runs before anything is forgotten, so
    when prune would refuse, nothing is forgotten either).
    """
    from deltavault.errors import UserError
    from deltavault.ops.forget import forget_snapshots
    from deltavault.ops.prune import DEFAULT_MAX_UNUSED, run_prune
    from deltavault.ops.retention import select_forgotten
    from deltavault.ops.view import verified_live
    from deltavault.repo.refs import is_full_id

    if snapshots and policy is not None and not policy.empty():
        raise UserError("give snapshot ids or --keep-* rules, not both")
    with repo.lock(exclusive=True):
        named = {ref.lower() for ref in snapshots if is_full_id(ref)}
        view = verified_live(repo, "forget", tolerate=named)
        snaps = view.ordered()
        if snapshots:
            ids = [ref.lower() if ref.lower() in view.committed and ref.lower() not in
                   view.snapshots else repo.find_snapshot(ref, snaps).id for ref in snapshots]
            reason = "by request"
        else:
            from deltavault.ops.retention import RetentionPolicy

            rules = policy or RetentionPolicy()
            ids = [s.id for s in select_forgotten(snaps, rules, repo.live_snapshots())]
            reason = f"policy {rules.__dict__}"
        if prune and not dry_run:
            # prune's complete view first (indexes, every needed blob located and readable):
            # a forget --prune that would stop at prune forgets nothing either
            run_prune(repo, dry_run=True, max_repack_size=max_repack_size,
                      max_unused=DEFAULT_MAX_UNUSED if max_unused is None else max_unused)
        ids = list(dict.fromkeys(ids)) if dry_run else forget_snapshots(repo, ids, reason)
        pruned = run_prune(repo, dry_run=dry_run, on_progress=on_progress,
                           max_unused=DEFAULT_MAX_UNUSED if max_unused is None else max_unused,
                           max_repack_size=max_repack_size) if prune else None
    return ForgetResult(ids, dry_run, pruned)


def prune(repo: Repository, *, dry_run: bool = False, max_unused: float | None = None,
          max_repack_size: int | None = None,
          on_progress: Callable[[int, int], None] | None = None) -> PruneResult:
    """Delete data no live snapshot needs, repacking packs more than ``max_unused`` unused.

    Args:
        repo: the repository, opened.
        dry_run: report what would be deleted and reclaimed; change nothing.
        max_unused: share (0-1) of a pack that may be unused before it is
            repacked; default 0.05. ``1`` never repacks.
        max_repack_size: repack at most this many bytes of packs per run.
        on_progress: (bytes repacked, bytes to repack).

    Raises:
        RepositoryError: the repository cannot be seen completely (exit 13;
            nothing deleted).
    """
    from deltavault.ops.prune import DEFAULT_MAX_UNUSED, run_prune

    with repo.lock(exclusive=True):
        return run_prune(repo, dry_run=dry_run, on_progress=on_progress,
                         max_unused=DEFAULT_MAX_UNUSED if max_unused is None else max_unused,
                         max_repack_size=max_repack_size)


def copy(source: Repository | Store, destination: Repository | str | os.PathLike[str] | Store,
         snapshots: Sequence[str] | None = None, *,
         on_progress: Callable[[int, int], None] | None = None) -> CopyReport:
    """Copy a repository (or some snapshots) into a byte-identical replica."""
    from deltavault.ops.replicate import copy_snapshots

    return copy_snapshots(source, destination, snapshots, on_progress=on_progress)


def repair(repo: Repository, replica: Repository | str | os.PathLike[str] | Store, *,
           on_progress: Callable[[int, int], None] | None = None) -> RepairReport:
    """Replace damaged or missing objects from a replica made by :func:`copy`."""
    from deltavault.ops.repair import repair_from

    return repair_from(repo, replica, on_progress=on_progress)


def backup_metrics(path: str | os.PathLike[str] | None,
                   labels: dict[str, str]) -> AbstractContextManager[BackupRun]:
    """Record the backup run inside the block in a node_exporter textfile (``--metrics-file``).

    The file is written on the way out, success or failure (with the exit
    code the CLI will use); ``None`` records nothing.
    """
    from deltavault.ops.backup_metrics import recording

    return recording(Path(path) if path is not None else None, labels)


def status(repo: Repository, *, max_age_s: float | None = None) -> RepositoryStatus:
    """Newest snapshot per host and paths, its age, the ledger size, the last passing check.

    ``max_age_s`` marks groups older than that as stale (``result.ok`` is
    False then, or when there is no snapshot at all); nothing is raised.
    """
    from deltavault.ops.status import repository_status

    return repository_status(repo, max_age_s=max_age_s)


def repair_index(repo: Repository, *,
                 on_progress: Callable[[int, int], None] | None = None) -> ReindexReport:
    """Rebuild the index from the pack headers (no replica needed), under the exclusive lock."""
    from deltavault.ops.reindex import rebuild_index

    with repo.lock(exclusive=True):
        return rebuild_index(repo, on_progress=on_progress)


def extend_retention(repo: Repository, days: int) -> int:
    """Extend S3 Object Lock retention of everything a kept snapshot needs."""
    from deltavault.ops.object_lock import extend_retention as extend

    with repo.lock():
        return extend(repo, days)


# --- keyless: the ledger seen from outside ------------------------------------------------


def ledger_verifier_key(location: str | os.PathLike[str] | Store) -> str:
    """The ledger's verifier key as the plaintext ``config`` names it (no password)."""
    from deltavault.repo.config import parse_config
    from deltavault.repo.objects import RepositoryObjects

    config, _mac = parse_config(RepositoryObjects(open_store(location)).read_config())
    return config.ledger_verifier_key


def ledger_origin(store: Store) -> str | None:
    """The log's origin line: from the plaintext ``config``, else the checkpoint's own."""
    from deltavault.ops.audit import checkpoint_origin, config_origin

    return config_origin(store) or checkpoint_origin(store)


def audit(location: str | os.PathLike[str] | Store, verifier: str, *,
          password: bytes | None = None) -> AuditReport:
    """Keyless audit: the ledger, every committed snapshot and every pack it needs.

    With the repository ``password`` the audit runs under a shared lock, so a
    prune cannot delete packs it is about to hash, and the log must extend
    the checkpoint this client verified last (its cached state, docs/ledger.md
    §9.2): a log rolled back to an older, validly signed checkpoint is
    refused (LedgerError) although it is a consistent prefix. Without it no
    lock can be written (lock objects are encrypted) and there is no state: a
    keyless auditor may see a pack vanish under a concurrent prune and should
    audit again, and it audits whichever signed checkpoint it finds (§9.3).
    A ledger mirror holds no key files and is audited without a lock either way.
    """
    from deltavault.ops.audit import audit as run_audit
    from deltavault.repo.layout import KEY_PREFIX
    from deltavault.repo.repository import Repository

    store = open_store(location)
    if password is None or not any(True for _ in store.list(KEY_PREFIX)):
        return run_audit(store, verifier)
    repo = Repository.open(store, password)
    with repo.lock():
        repo.ledger.refresh()  # against this client's verified state: no rollback, no fork
        return run_audit(store, verifier)


def mirror_ledger(location: str | os.PathLike[str] | Store,
                  target: str | os.PathLike[str] | Store) -> int:
    """Mirror config, ledger and pack lists to ``target``; returns objects written."""
    from deltavault.ops.mirror import mirror_ledger as mirror

    return mirror(open_store(location), open_store(target, create=True))
