"""Restore a snapshot into a directory.

Safety (issue 12): names were validated when their tree was decoded (one
component, no ``..``); every directory is reached by descriptor with
``O_NOFOLLOW`` (:mod:`~deltavault.restore.fsdir`), so no symlink in the
target, old or made concurrently, redirects a write; an existing file is
replaced only by a complete, verified copy renamed over it
(:mod:`~deltavault.restore.files`), so a damaged blob or a crash leaves it as
it was.

Speed and memory (issues 13, 14): the snapshot is walked as a stream and cut
into bounded batches (:mod:`~deltavault.restore.plan`); each batch's blobs are
looked up with one vectorised index search, read pack by pack in spans and
decoded on a thread pool (:mod:`~deltavault.restore.fetch`); each file is
opened once. While the pool works on one batch the walk prepares the next
(:mod:`~deltavault.restore.engine`). With ``live`` set (rollback), pieces
the live tree already holds are taken from it
(:mod:`~deltavault.restore.reuse`). A large snapshot in a local repository
is restored by several processes, each with its own interpreter lock
(:func:`processes_for`, :mod:`~deltavault.restore.procs`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from deltavault.errors import DeltavaultError, RepositoryError, UserError
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot
from deltavault.restore.engine import run_plan
from deltavault.restore.files import FileWriter, Tally
from deltavault.restore.fsdir import DirTable
from deltavault.restore.plan import Planner
from deltavault.restore.reuse import Reuse

#: a snapshot with at least this many files is restored by several processes
#: (below it the fork and the split cost more than the second core gives back)
SPLIT_FILES = 20_000
#: processes of a split restore at most (each holds its own decode pool and cache)
MAX_PROCESSES = 4
#: decode threads per process of a split restore
PART_WORKERS = 2


@dataclass
class RestoreOptions:
    """Where to restore and what.

    Attributes:
        target: directory to restore below (made if missing; never a symlink).
        include: glob patterns; a path is restored if it or a parent matches.
        workers: decode threads (0: one per core, at least 2, at most 8; more only
            add GIL contention and memory: each holds a span and a decoded blob).
        owners: restore owners (root only by default).
        live: a tree to take unchanged data from instead of the packs (rollback).
        live_entry: the snapshot's top-level entry ``live`` holds (empty: ``live``
            holds the whole snapshot).
        reuse: ``metadata`` (trust size/mtime/ctime/inode, else hash), ``link``
            (trust the same, hard-link such files), ``content`` (always hash), ``none``.
        processes: restore in this many processes (0: decided by
            :func:`processes_for`; 1: in this process only).
    """

    target: Path
    include: list[str] = field(default_factory=list)
    workers: int = 0
    owners: bool = field(default_factory=lambda: os.geteuid() == 0)
    live: Path | None = None
    live_entry: str = ""
    reuse: str = "metadata"
    processes: int = 0


@dataclass
class RestoreResult(Tally):
    """Counts and per-file errors (:class:`Tally`), timing, what rollback took from the
    live tree, and how many processes restored."""

    duration_s: float = 0.0
    reused_files: int = 0
    reused_bytes: int = 0
    processes: int = 1


def processes_for(repo: Repository, snap: Snapshot, opts: RestoreOptions) -> int:
    """How many processes restore ``snap`` (1: this one alone; see procs.py).

    Several only for a whole snapshot (no include patterns, not rollback's
    reuse) from a store a forked process may share, with enough files to pay
    for the fork: ``opts.processes`` if set, else one per core up to
    MAX_PROCESSES once the snapshot has SPLIT_FILES files.
    """
    if opts.processes == 1 or opts.include or opts.live is not None:
        return 1
    if not repo.store.fork_safe:
        return 1
    if opts.processes > 1:
        return opts.processes
    files = sum(int(snap.summary.get(k, 0) or 0)
                for k in ("files_new", "files_changed", "files_unmodified"))
    cores = len(os.sched_getaffinity(0))
    if cores < 2 or files < SPLIT_FILES:
        return 1
    return min(cores, MAX_PROCESSES)


def run_restore(repo: Repository, snap: Snapshot, opts: RestoreOptions, *,
                on_progress: Callable[[int, int], None] | None = None,
                record: bool = True) -> RestoreResult:
    """Restore ``snap`` below ``opts.target``; raises if any file was damaged."""
    started = time.monotonic()
    repo.load_index()
    target = Path(os.path.abspath(opts.target))
    if target.is_symlink():
        raise UserError(f"restore target {target} is a symlink")
    target.mkdir(parents=True, exist_ok=True)
    total = int(snap.summary.get("bytes_total", 0)) if not opts.include else 0
    done = [0]

    def on_bytes(n: int) -> None:
        done[0] += n
        if on_progress is not None:
            on_progress(done[0], total)

    processes = processes_for(repo, snap, opts)
    result = RestoreResult(processes=processes)
    if processes > 1:
        from deltavault.restore.procs import restore_split  # forks: only a large restore

        workers = opts.workers or PART_WORKERS
        table = DirTable()
        try:
            restore_split(repo, bytes.fromhex(snap.tree), table.root(target), result,
                          processes=processes, owners=opts.owners, workers=workers,
                          on_bytes=on_bytes)
        finally:
            table.close()
    else:
        _restore_here(repo, snap, target, opts, on_bytes, result)
    result.duration_s = round(time.monotonic() - started, 3)
    if record:
        repo.record_best_effort("restore", snapshot=snap.id, target=str(target),
                                files=result.files, bytes=result.bytes,
                                ok=not (result.damaged or result.failed))
    if result.damaged:
        raise RepositoryError(
            f"{result.damaged} file(s) could not be restored because stored data is "
            f"damaged (existing files were left as they were): "
            f"{'; '.join(result.errors[:5])}",
            hint="run 'deltavault check --read-data'; restore from a replica with 'repair'")
    if result.failed:
        raise UserError(f"{result.failed} file(s) could not be written below {target}: "
                        f"{'; '.join(result.errors[:5])}")
    return result


def _restore_here(repo: Repository, snap: Snapshot, target: Path, opts: RestoreOptions,
                  on_bytes: Callable[[int], None], result: RestoreResult) -> None:
    """Restore in this process (its threads), counting into ``result``."""
    writer = FileWriter(opts.owners, on_bytes)
    table = DirTable()
    live_table = DirTable() if opts.live is not None else None
    workers = opts.workers or max(2, min(8, os.cpu_count() or 2))
    try:
        root = table.root(target)
        live_root = None
        if live_table is not None and opts.live is not None and opts.reuse != "none":
            with contextlib.suppress(DeltavaultError):
                live_root = live_table.root(opts.live)
        reuse = (Reuse(repo.crypto, writer, opts.reuse) if live_root is not None else None)
        planner = Planner(repo, bytes.fromhex(snap.tree), root, include=opts.include,
                          live_root=live_root, in_place=opts.live is None,
                          live_top=os.fsencode(opts.live_entry) if opts.live_entry else None)
        links = run_plan(repo, planner, writer, workers, reuse)
        if reuse is not None:
            result.reused_files, result.reused_bytes = reuse.files, reuse.bytes
    finally:
        table.close()
        if live_table is not None:
            live_table.close()
    result.add(writer.files + links, planner.dirs, writer.bytes, writer.damaged,
               writer.failed, writer.messages)
