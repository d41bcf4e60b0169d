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
opened once. While the pool works on one batch the walk prepares the next.
With ``live`` set (rollback), pieces the live tree already holds are taken
from it (:mod:`~deltavault.restore.reuse`).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from deltavault.errors import DeltavaultError, RepositoryError, UserError
from deltavault.repo.blobcache import RESTORE_BYTES
from deltavault.repo.index import BlobLocation
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot
from deltavault.restore.fetch import Uses, run_task, span_tasks
from deltavault.restore.files import FileJob, FileWriter
from deltavault.restore.fsdir import Dir, DirTable
from deltavault.restore.lane import Lane
from deltavault.restore.nodes import finish_dir, make_link, make_other
from deltavault.restore.plan import Batch, Planner
from deltavault.restore.reuse import Piece, Reuse


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
    """

    target: Path
    include: list[str] = field(default_factory=list)
    workers: int = 0
    owners: bool = field(default_factory=lambda: os.geteuid() == 0)
    live: Path | None = None
    live_entry: str = ""
    reuse: str = "metadata"


@dataclass
class RestoreResult:
    """Counts, timing and per-file errors."""

    files: int = 0
    dirs: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    reused_files: int = 0
    reused_bytes: int = 0


class _Engine:
    """Runs batches through the pool, one batch ahead of the walk."""

    def __init__(self, repo: Repository, writer: FileWriter, pool: ThreadPoolExecutor,
                 reuse: Reuse | None, owners: bool) -> None:
        self.repo = repo
        self.writer = writer
        self.pool = pool
        self.reuse = reuse
        self.owners = owners
        self.pending: tuple[Batch, list[Future[None]]] | None = None
        self.deferred: list[tuple[Dir, bytes, FileJob]] = []
        self.links = 0
        self.lane = Lane()  # tasks of small blobs, one at a time (run_task)

    def submit(self, batch: Batch) -> None:
        """Resolve a batch's blobs, take what the live tree has, queue the reads."""
        work = self._resolve(batch)
        if self.reuse is not None:
            reuse = self.reuse
            futs = [(job, self.pool.submit(reuse.take, job, live, first, pieces))
                    for job, live, first, pieces in work if live is not None and pieces]
            taken = {id(job): f.result() for job, f in futs}
            work = [(job, live, first, taken.get(id(job), pieces) if live is not None
                     else pieces) for job, live, first, pieces in work]
        uses: Uses = {}
        locs: dict[bytes, BlobLocation] = {}
        for job, _live, _first, pieces in work:
            for blob, offset, loc in pieces:
                uses.setdefault(blob, []).append((job, offset))
                locs[blob] = loc
        bases = {loc.base for loc in locs.values() if loc.base is not None}
        futures = [self.pool.submit(run_task, self.repo, task, uses, bases, self.writer,
                                    self.lane)
                   for task in span_tasks(locs.values())]
        self._finish_pending()
        self.pending = (batch, futures)

    def drain(self) -> None:
        """Finish the batch in flight and links whose file finished late."""
        self._finish_pending()
        for d, name, first in self.deferred:
            self.links += make_link(d, name, first, self.writer)
            d.unpin()
        self.deferred.clear()

    def abort(self) -> None:
        """Stop: wait for tasks in flight, throw away half-written files."""
        if self.pending is None:
            return
        batch, futures = self.pending
        for f in futures:
            f.cancel()
        for f in futures:
            with contextlib.suppress(BaseException):
                f.result()
        for job, _a, _b, _live in batch.slices:
            self.writer.abandon(job)
        batch.unpin()
        self.pending = None

    def _resolve(self, batch: Batch) -> list[tuple[FileJob, Dir | None, int, list[Piece]]]:
        ids = list({b for job, a, z, _ in batch.slices for b in job.node.content[a:z]})
        found = dict(zip(ids, self.repo.index.locate_many(ids), strict=True))
        work: list[tuple[FileJob, Dir | None, int, list[Piece]]] = []
        for job, first, end, live in batch.slices:
            if first == end == 0:
                self.writer.skip(job, 0)  # an empty file: made and finished now
                continue
            pieces: list[Piece] = []
            for blob in job.node.content[first:end]:
                loc = found[blob] if job.error is None else None
                if loc is None and job.error is None:
                    try:
                        loc = self.repo.locate(blob)
                    except DeltavaultError as exc:
                        self.writer.fail(job, str(exc), damaged=True)
                if loc is None:
                    self.writer.skip(job)
                    continue
                pieces.append((blob, job.offset, loc))
                job.offset += loc.raw_length
            work.append((job, live, first, pieces))
        return work

    def _finish_pending(self) -> None:
        if self.pending is None:
            return
        batch, futures = self.pending
        self.pending = None
        try:
            for f in futures:
                f.result()
        except BaseException:
            self.pending = (batch, futures)
            raise
        for d, name, first in batch.links:
            if first.finished:
                self.links += make_link(d, name, first, self.writer)
            else:  # its file spans into a later batch
                d.pin()
                self.deferred.append((d, name, first))
        for d, name, node in batch.others:
            make_other(d, name, node, self.writer)
        for done in batch.dirs_done:
            finish_dir(done, self.writer)
        batch.unpin()


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

    writer = FileWriter(opts.owners, on_bytes)
    table = DirTable()
    live_table = DirTable() if opts.live is not None else None
    result = RestoreResult()
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
        with (repo.cache.bounded(RESTORE_BYTES),
              ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dv-restore") as pool):
            engine = _Engine(repo, writer, pool, reuse, opts.owners)
            try:
                for batch in planner.batches():
                    engine.submit(batch)
                engine.drain()
            except BaseException:
                engine.abort()
                raise
        result.dirs = planner.dirs
        if reuse is not None:
            result.reused_files, result.reused_bytes = reuse.files, reuse.bytes
        result.files = writer.files + engine.links
    finally:
        table.close()
        if live_table is not None:
            live_table.close()
    result.bytes = writer.bytes
    result.errors = list(writer.messages)
    result.duration_s = round(time.monotonic() - started, 3)
    if record:
        repo.record_best_effort("restore", snapshot=snap.id, target=str(target),
                                files=result.files, bytes=result.bytes,
                                ok=not (writer.damaged or writer.failed))
    if writer.damaged:
        raise RepositoryError(
            f"{writer.damaged} file(s) could not be restored because stored data is "
            f"damaged (existing files were left as they were): "
            f"{'; '.join(result.errors[:5])}",
            hint="run 'deltavault check --read-data'; restore from a replica with 'repair'")
    if writer.failed:
        raise UserError(f"{writer.failed} file(s) could not be written below {target}: "
                        f"{'; '.join(result.errors[:5])}")
    return result
