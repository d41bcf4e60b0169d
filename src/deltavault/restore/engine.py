"""Run a restore plan's batches through a pool of decode threads.

Why its own module: the same engine restores a whole snapshot in one
process (:mod:`~deltavault.restore.restorer`) and one part of a snapshot in
each process of a split restore (:mod:`~deltavault.restore.procs`).
"""

from __future__ import annotations

import contextlib
from concurrent.futures import Future, ThreadPoolExecutor

from deltavault.errors import DeltavaultError
from deltavault.repo.blobcache import RESTORE_BYTES
from deltavault.repo.index import BlobLocation
from deltavault.repo.repository import Repository
from deltavault.restore.fetch import Uses, run_task, span_tasks
from deltavault.restore.files import FileJob, FileWriter
from deltavault.restore.fsdir import Dir
from deltavault.restore.lane import Lane
from deltavault.restore.nodes import finish_dir, make_link, make_other
from deltavault.restore.plan import Batch, Planner
from deltavault.restore.reuse import Piece, Reuse


class Engine:
    """Runs batches through the pool, one batch ahead of the walk."""

    def __init__(self, repo: Repository, writer: FileWriter, pool: ThreadPoolExecutor,
                 reuse: Reuse | None) -> None:
        self.repo = repo
        self.writer = writer
        self.pool = pool
        self.reuse = reuse
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


def run_plan(repo: Repository, planner: Planner, writer: FileWriter, workers: int,
             reuse: Reuse | None = None) -> int:
    """Restore everything ``planner`` yields; returns the hard links made.

    On any exception the tasks in flight are waited for and half-written
    files are thrown away before it propagates.
    """
    with (repo.cache.bounded(RESTORE_BYTES),
          ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dv-restore") as pool):
        engine = Engine(repo, writer, pool, reuse)
        try:
            for batch in planner.batches():
                engine.submit(batch)
            engine.drain()
        except BaseException:
            engine.abort()
            raise
    return engine.links
