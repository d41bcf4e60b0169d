"""The public Python API of deltavault.

A small, typed surface over the engine; the CLI is a thin layer on top of
it. Example::

    from deltavault import api
    repo = api.init("/srv/vault", b"secret")
    snap = api.backup(repo, ["/var/lib/trading"], tags=["eod"]).snapshot
    api.restore(repo, "latest", "/tmp/restore")
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from deltavault.backup.run import BackupOptions, BackupResult, Progress, run_backup
from deltavault.errors import UserError
from deltavault.ops.check import CheckReport, run_check
from deltavault.repo.config import ChunkerParams
from deltavault.repo.keys import KdfParams
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot
from deltavault.restore.restorer import RestoreOptions, RestoreResult, run_restore
from deltavault.store.base import Store
from deltavault.store.local import LocalStore

__all__ = ["Repository", "Snapshot", "backup", "check", "init", "open", "open_store",
           "restore", "snapshots"]


def open_store(location: str | os.PathLike[str] | Store, *, create: bool = False) -> Store:
    """A Store for a location: a Store instance, a local path or a backend URL."""
    if isinstance(location, Store):
        return location
    text = os.fspath(location)
    if "://" in text or text.startswith("rest:"):
        try:
            from deltavault.store.url import open_store as open_url
        except ImportError as exc:  # backends are optional extras
            raise UserError(f"no backend for {text!r} is installed") from exc
        return open_url(text, create=create, options=_env_options(text))
    if not create and not Path(text).is_dir():
        from deltavault.errors import RepositoryNotFound

        raise RepositoryNotFound(f"no repository at {text}")
    return LocalStore(text, create=create)


def _env_options(url: str) -> dict[str, object]:
    """Backend options from the environment (S3 Object Lock retention)."""
    days = os.environ.get("DELTAVAULT_OBJECT_LOCK_DAYS")
    if not days or not url.startswith("s3://"):
        return {}
    from deltavault.store.s3 import ObjectLockPolicy

    try:
        policy = ObjectLockPolicy(int(days), os.environ.get(  # type: ignore[arg-type]
            "DELTAVAULT_OBJECT_LOCK_MODE", "compliance"))
    except ValueError as exc:
        raise UserError(f"bad DELTAVAULT_OBJECT_LOCK_DAYS/MODE: {exc}") from exc
    return {"object_lock": policy}


def init(location: str | os.PathLike[str] | Store, password: bytes, *,
         chunker: ChunkerParams | None = None, compression_level: int = 3,
         pack_size: int = 8 * 1024 * 1024, kdf_memory_kib: int | None = None,
         kdf_time_cost: int | None = None, max_chain: int = 8) -> Repository:
    """Create a repository and return it opened."""
    store = open_store(location, create=True)
    kdf = KdfParams.fresh(memory_kib=kdf_memory_kib, time_cost=kdf_time_cost)
    return Repository.init(store, password, chunker=chunker, compression_level=compression_level,
                           pack_size=pack_size, kdf=kdf, max_chain=max_chain)


def open(location: str | os.PathLike[str] | Store, password: bytes) -> Repository:
    """Open an existing repository with a password."""
    return Repository.open(open_store(location), password)


def backup(repo: Repository, paths: Sequence[str | os.PathLike[str]] = (), *,
           snapshot_type: str = "incr", tags: Sequence[str] = (), hostname: str = "",
           excludes: Sequence[str] = (), stdin: IO[bytes] | None = None,
           stdin_filename: str = "stdin", codec: str = "auto", full_every: int = 0,
           on_progress: Callable[[Progress], None] | None = None) -> BackupResult:
    """Take a snapshot of ``paths`` (or of ``stdin``) under a shared lock."""
    opts = BackupOptions(paths=[Path(p) for p in paths], snapshot_type=snapshot_type,
                         tags=list(tags), hostname=hostname, excludes=list(excludes),
                         stdin=stdin, stdin_filename=stdin_filename,
                         codec=codec,  # type: ignore[arg-type]
                         full_every=full_every)
    with repo.lock():
        return run_backup(repo, opts, on_progress=on_progress)


def snapshots(repo: Repository) -> list[Snapshot]:
    """Every snapshot, oldest first."""
    return repo.snapshots()


def restore(repo: Repository, snapshot: str, target: str | os.PathLike[str], *,
            include: Sequence[str] = (),
            on_progress: Callable[[int, int], None] | None = None) -> RestoreResult:
    """Restore a snapshot (id, prefix or ``latest``) below ``target``."""
    snap = repo.find_snapshot(snapshot)
    return run_restore(repo, snap, RestoreOptions(Path(target), list(include)),
                       on_progress=on_progress)


def check(repo: Repository, *, read_data: bool = False, subset: float | None = None,
          on_progress: Callable[[int, int], None] | None = None) -> CheckReport:
    """Verify structure, and with ``read_data`` every stored byte."""
    with repo.lock():
        return run_check(repo, read_data=read_data, subset=subset, on_progress=on_progress)
