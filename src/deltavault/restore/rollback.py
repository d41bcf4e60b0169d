"""Roll a directory back to a snapshot, atomically.

The snapshot is restored into a hidden sibling directory (same filesystem),
verified, and then swapped with the live directory in one
``renameat2(RENAME_EXCHANGE)`` call: a crash at any moment leaves either the
old state or the new one in place, never a mix. The old state is kept aside
until the swap succeeded, then removed (or kept with ``keep_previous``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from deltavault.errors import DeltavaultError, UserError
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot
from deltavault.restore.restorer import RestoreOptions, run_restore

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100
_STAGING = ".deltavault-rollback-"
_PREVIOUS = ".deltavault-previous-"


@dataclass
class RollbackResult:
    """What was swapped in and where the old state went."""

    snapshot: Snapshot
    target: Path
    previous: Path | None
    files: int
    bytes: int
    duration_s: float


def exchange(a: Path, b: Path) -> None:
    """Atomically swap two paths (Linux renameat2 RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        raise DeltavaultError("atomic exchange (renameat2) is not available on this system")
    rc = fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if rc != 0:
        err = ctypes.get_errno()
        raise DeltavaultError(f"cannot swap {a} and {b}: {os.strerror(err)}")


def pick_snapshot(repo: Repository, ref: str | None, tag: str | None) -> Snapshot:
    """A snapshot by reference, or the newest one carrying ``tag``."""
    snaps = repo.snapshots()
    if ref:
        return repo.find_snapshot(ref, snaps)
    if not tag:
        raise UserError("give a snapshot or --tag (e.g. --tag known-good)")
    return repo.find_snapshot(f"tag:{tag}", snaps)


def entry_for(snap: Snapshot, target: Path) -> str:
    """Which top-level entry of the snapshot corresponds to ``target``."""
    names = [Path(p).name for p in snap.paths]
    if target.name in names:
        return target.name
    if len(names) == 1:
        return names[0]
    raise UserError(f"snapshot {snap.id[:12]} holds {', '.join(names)}; "
                    f"none matches {target.name!r}")


def cleanup_leftovers(parent: Path, name: str) -> None:
    """Remove staging/previous directories an interrupted rollback left behind."""
    for prefix in (_STAGING, _PREVIOUS):
        for leftover in parent.glob(f"{prefix}{name}-*"):
            shutil.rmtree(leftover, ignore_errors=True)


def run_rollback(repo: Repository, snap: Snapshot, target: Path, *,
                 keep_previous: bool = False) -> RollbackResult:
    """Restore ``snap`` into ``target``'s place atomically."""
    started = time.monotonic()
    target = Path(os.path.abspath(target))
    parent, name = target.parent, target.name
    if not parent.is_dir():
        raise UserError(f"{parent} does not exist")
    entry = entry_for(snap, target)
    cleanup_leftovers(parent, name)
    staging = parent / f"{_STAGING}{name}-{os.getpid()}"
    staging.mkdir()
    try:
        result = run_restore(repo, snap, RestoreOptions(staging, include=[entry]))
        new = staging / entry
        if not new.exists() and not new.is_symlink():
            raise UserError(f"snapshot {snap.id[:12]} has no entry {entry!r}")
        if target.exists() or target.is_symlink():
            exchange(new, target)  # new state in place; old state now at `new`
            previous = parent / f"{_PREVIOUS}{name}-{os.getpid()}"
            os.rename(new, previous)
        else:
            os.rename(new, target)
            previous = None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    repo.record_best_effort("rollback", snapshot=snap.id, target=str(target))
    if previous is not None and not keep_previous:
        shutil.rmtree(previous, ignore_errors=True)
        previous = None
    return RollbackResult(snap, target, previous, result.files, result.bytes,
                          round(time.monotonic() - started, 3))
