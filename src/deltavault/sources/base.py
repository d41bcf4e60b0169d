"""How a live source becomes a snapshot, and how it comes back.

A source (a SQLite database, a PostgreSQL database, a Redis keyspace, a set
of in-memory objects) is first *staged*: written as ordinary files into a
fresh temporary directory, in a layout that keeps day-to-day changes small
(one file per table in primary-key order, arrays as ``.npy``). That
directory is then backed up by the ordinary file pipeline under a stable
*label* (``BackupOptions.label``), which becomes the snapshot's ``paths``:
lineage (parent, last full, delta bases) follows the label, not the
temporary path, so diff and incr snapshots of a source work as for files.

Restoring reads the snapshot back (into memory for small sources, through
the verified restore pipeline for large ones) and loads it into the target.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deltavault.backup.options import BackupOptions, BackupResult
from deltavault.backup.run import run_backup
from deltavault.codec.policy import Policy
from deltavault.errors import UserError
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot
from deltavault.repo.walk import find_node, walk
from deltavault.restore.restorer import RestoreOptions, run_restore

#: Environment variable naming the directory staged copies are written to.
STAGING_ENV = "DELTAVAULT_STAGING_DIR"


@dataclass
class SourceOptions:
    """How to snapshot a source (the subset of BackupOptions that applies)."""

    snapshot_type: str = "incr"
    tags: list[str] = field(default_factory=list)
    hostname: str = ""
    codec: Policy = "auto"


@contextlib.contextmanager
def staging_dir(kind: str) -> Iterator[Path]:
    """A private temporary directory, removed afterwards ($DELTAVAULT_STAGING_DIR or TMPDIR)."""
    parent = os.environ.get(STAGING_ENV) or None
    path = Path(tempfile.mkdtemp(prefix=f"deltavault-{kind}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def backup_staged(repo: Repository, label: str, stage: Callable[[Path], Path],
                  opts: SourceOptions, kind: str) -> BackupResult:
    """Stage a source with ``stage(dir) -> path to back up`` and snapshot it as ``label``.

    The caller holds the repository lock.
    """
    with staging_dir(kind) as tmp:
        root = stage(tmp)
        bopts = BackupOptions(paths=[root], snapshot_type=opts.snapshot_type,
                              tags=list(opts.tags), hostname=opts.hostname, codec=opts.codec,
                              label=[label])
        return run_backup(repo, bopts)


def source_kind(snap: Snapshot) -> str | None:
    """``sqlite``, ``postgres``, ``redis`` or ``objects`` for a source snapshot, else None."""
    if len(snap.paths) != 1:
        return None
    head, sep, _rest = snap.paths[0].partition(":")
    return head if sep and head in ("sqlite", "postgres", "redis", "objects") else None


def require_kind(snap: Snapshot, kind: str) -> None:
    """Refuse a snapshot that is not of a ``kind`` source."""
    if source_kind(snap) != kind:
        raise UserError(f"snapshot {snap.id[:12]} ({', '.join(snap.paths)}) is not a {kind} "
                        "source snapshot")


def read_file(repo: Repository, snap: Snapshot, path: str) -> bytes:
    """One file of a snapshot, in memory, every blob verified against its id."""
    repo.load_index()
    node = find_node(repo, bytes.fromhex(snap.tree), path)
    if node.type != "file":
        raise UserError(f"{path} is a {node.type} in snapshot {snap.id[:12]}, not a file")
    return b"".join(repo.load_blob(b) for b in node.content)


def list_files(repo: Repository, snap: Snapshot) -> list[str]:
    """Relative paths of every regular file in a snapshot."""
    repo.load_index()
    return [p for p, n in walk(repo, bytes.fromhex(snap.tree)) if n.type == "file"]


def restore_into(repo: Repository, snap: Snapshot, target: Path,
                 include: Sequence[str] = ()) -> None:
    """Restore (part of) a snapshot below ``target`` through the verified pipeline."""
    with repo.lock():  # shared: prune cannot remove the packs being read
        run_restore(repo, snap, RestoreOptions(target, list(include)))
