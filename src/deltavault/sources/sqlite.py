"""SQLite databases: a consistent copy under a stable name, restored atomically.

The copy is made with SQLite's online backup API in one step, so it is one
committed state even while other connections write (in rollback-journal
mode they wait for our read lock; in WAL mode they go on). The copy keeps
the page size and page order of the live file, so the page-aligned chunker
and the page delta codecs see only the pages that changed since the base
snapshot.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from deltavault.backup.options import BackupResult
from deltavault.errors import IntegrityError, UserError
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot
from deltavault.repo.walk import find_node
from deltavault.sources.base import SourceOptions, backup_staged, list_files, require_kind

KIND = "sqlite"
_BUSY_TIMEOUT_S = 60.0


def label_for(db: Path) -> str:
    """The snapshot's ``paths`` entry for a database file."""
    return f"{KIND}:{os.path.abspath(db)}"


def copy_consistent(db: str | os.PathLike[str], dest: str | os.PathLike[str]) -> None:
    """Copy a live database to ``dest`` as of one committed transaction.

    Raises:
        UserError: ``db`` is missing or not a SQLite database.
    """
    path = os.path.abspath(db)
    if not os.path.isfile(path):
        raise UserError(f"{db}: no such database file")
    try:
        src = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_S)
        try:
            dst = sqlite3.connect(os.fspath(dest))
            try:
                # One step (pages=-1): a stepped copy restarts on every foreign
                # write and may never finish under a busy writer.
                src.backup(dst, pages=-1)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.DatabaseError as exc:
        raise UserError(f"{db}: cannot read as a SQLite database: {exc}") from exc


def backup_sqlite(repo: Repository, db: str | os.PathLike[str],
                  opts: SourceOptions | None = None) -> BackupResult:
    """Snapshot a (possibly live) SQLite database. The caller holds the lock."""
    db_path = Path(db)

    def stage(tmp: Path) -> Path:
        dest = tmp / db_path.name
        copy_consistent(db_path, dest)
        return dest

    return backup_staged(repo, label_for(db_path), stage, opts or SourceOptions(), KIND)


def database_path(repo: Repository, snap: Snapshot, path: str | None = None) -> str:
    """The path of the database file inside a snapshot.

    Without ``path``: the file of a ``sqlite:`` snapshot, else a file named
    ``positions.sqlite``, else the only ``*.sqlite``/``*.sqlite3``/``*.db`` file.
    """
    if path:
        return path.strip("/")
    files = list_files(repo, snap)
    if len(files) == 1:
        return files[0]
    named = [f for f in files if f.rsplit("/", 1)[-1] == "positions.sqlite"]
    if len(named) == 1:
        return named[0]
    dbs = [f for f in files if f.endswith((".sqlite", ".sqlite3", ".db"))]
    if len(dbs) == 1:
        return dbs[0]
    raise UserError(f"snapshot {snap.id[:12]} holds {len(dbs)} candidate databases; "
                    "name one (snapshot:<id>:path/to/db.sqlite or --db)")


def extract_database(repo: Repository, snap: Snapshot, dest: Path, path: str | None = None) -> None:
    """Write the database file of a snapshot to ``dest`` (verified blob by blob)."""
    repo.load_index()
    inner = database_path(repo, snap, path)
    node = find_node(repo, bytes.fromhex(snap.tree), inner)
    if node.type != "file":
        raise UserError(f"{inner} is a {node.type} in snapshot {snap.id[:12]}, not a file")
    with open(dest, "wb") as f:
        for blob in node.content:
            f.write(repo.load_blob(blob))


def integrity_check(db: Path) -> None:
    """Raise IntegrityError unless ``PRAGMA integrity_check`` says ok."""
    con = sqlite3.connect(f"file:{os.path.abspath(db)}?mode=ro", uri=True)
    try:
        rows = con.execute("PRAGMA integrity_check").fetchall()
    except sqlite3.DatabaseError as exc:
        raise IntegrityError(f"restored database {db} is not readable: {exc}") from exc
    finally:
        con.close()
    if rows != [("ok",)]:
        raise IntegrityError(f"restored database {db} fails integrity_check: {rows[:3]}")


def restore_sqlite(repo: Repository, snap: Snapshot, target: str | os.PathLike[str], *,
                   force: bool = False, path: str | None = None) -> Path:
    """Put the database of ``snap`` at ``target`` atomically, after an integrity check.

    Raises:
        UserError: ``target`` exists and ``force`` is not set.
        IntegrityError: the restored file is not a sound database.
    """
    if path is None:
        require_kind(snap, KIND)
    dest = Path(os.path.abspath(target))
    if dest.exists() and not force:
        raise UserError(f"{dest} exists", hint="use --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.deltavault-restore")
    try:
        extract_database(repo, snap, tmp, path)
        integrity_check(tmp)
        for suffix in ("-wal", "-shm", "-journal"):  # stale companions would corrupt it
            with contextlib.suppress(FileNotFoundError):
                os.unlink(f"{dest}{suffix}")
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    repo.record_best_effort("restore", snapshot=snap.id, target=str(dest), source=KIND)
    return dest
