"""Read the blobs a batch needs, pack by pack, and write each where it goes.

The blobs of a batch are grouped by pack and sorted by offset; nearby blobs
are read with one ranged read (a span) and spans are cut into tasks of a few
MiB so both cores stay busy to the end of a batch. A task decrypts, decodes
and verifies each blob against its id (AES-GCM, zstd and BLAKE3 release the
GIL) and writes it into every file that uses it, in pack order. A blob that
fails verification marks only the files that need it as damaged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from deltavault.errors import DeltavaultError
from deltavault.repo.index import BlobLocation
from deltavault.repo.repository import Repository
from deltavault.restore.files import FileJob, FileWriter
from deltavault.restore.lane import Lane
from deltavault.store.base import ByteRange

#: blobs closer than this in one pack are read with one request
MAX_SPAN_GAP = 1024 * 1024
#: a task reads at most about this many bytes
TASK_BYTES = 2 * 1024 * 1024
#: tasks whose blobs average less than this, decoded, run one at a time (see :func:`run_task`)
TINY_BLOB = 64 * 1024

Uses = dict[bytes, list[tuple[FileJob, int]]]


class SpanTask:
    """Consecutive blobs of one pack, read with one ranged request."""

    __slots__ = ("end", "locs", "pack_id", "start")

    def __init__(self, pack_id: str, loc: BlobLocation) -> None:
        self.pack_id = pack_id
        self.start = loc.offset
        self.end = loc.offset + loc.length
        self.locs = [loc]


def span_tasks(locs: Iterable[BlobLocation]) -> list[SpanTask]:
    """Group locations into read tasks, in pack and offset order."""
    by_pack: dict[str, list[BlobLocation]] = defaultdict(list)
    for loc in locs:
        by_pack[loc.pack_id].append(loc)
    tasks: list[SpanTask] = []
    for pack_id in sorted(by_pack):
        current: SpanTask | None = None
        for loc in sorted(by_pack[pack_id], key=lambda x: x.offset):
            if (current is not None and loc.offset - current.end <= MAX_SPAN_GAP
                    and loc.offset + loc.length - current.start <= TASK_BYTES):
                current.locs.append(loc)
                current.end = max(current.end, loc.offset + loc.length)
            else:
                current = SpanTask(pack_id, loc)
                tasks.append(current)
    return tasks


def run_task(repo: Repository, task: SpanTask, uses: Uses, bases: set[bytes],
             writer: FileWriter, lane: Lane | None = None) -> None:
    """Read one span, verify each blob, write it to every file that uses it.

    A task of small blobs (small files) holds ``lane`` while it runs: each
    blob is a handful of short GIL-releasing calls (decrypt, hash, open,
    write, chown, chmod, utime, close), and two workers trading the GIL for
    them spent more in hand-offs than they gained (200,000 files of 1-4 KiB:
    2.7 million futex calls, sys time 12-13 s with two workers at once,
    6.7-6.9 s and no slower one at a time). Tasks of large blobs, whose
    decoding is long native work, still run on every core. Large as decoded:
    the books workload's order books (60-130 KiB stored in ~10 KiB each) ran
    in the lane when the test was the stored size, one core for milliseconds
    of codec work per blob (restore 3.5 s; 2.9-3.4 s on both cores). A task
    in the lane leaves it while the kernel makes a one-blob file (:mod:`~deltavault.
    restore.lane`).
    """
    tiny = sum(loc.raw_length for loc in task.locs) < TINY_BLOB * len(task.locs)
    if lane is not None and tiny:
        with lane:
            _run(repo, task, uses, bases, writer, lane)
    else:
        _run(repo, task, uses, bases, writer, None)


def _run(repo: Repository, task: SpanTask, uses: Uses, bases: set[bytes],
         writer: FileWriter, lane: Lane | None) -> None:
    try:
        data = repo.objects.read_pack(task.pack_id, ByteRange(task.start,
                                                              task.end - task.start))
        if len(data) != task.end - task.start:
            raise DeltavaultError(f"pack {task.pack_id[:12]} is truncated")
    except DeltavaultError as exc:
        for loc in task.locs:
            _damaged(writer, uses[loc.id], f"pack {task.pack_id[:12]}: {exc}")
        return
    view = memoryview(data)
    for loc in task.locs:
        rel = loc.offset - task.start
        try:
            plain = repo.decode_blob(loc, view[rel : rel + loc.length])
        except DeltavaultError as exc:
            _damaged(writer, uses[loc.id], str(exc))
            continue
        if loc.id in bases:
            repo.cache.put(loc.id, plain)  # a delta in another pack will need it
        targets = uses[loc.id]
        zero: bool | None = None
        for job, offset in targets:
            if job.node.sparse:
                if zero is None:
                    zero = plain[:1] == b"\0" and plain.count(0) == len(plain)
                if zero:
                    writer.skip(job)
                    continue
            writer.write(job, plain, offset, lane)


def _damaged(writer: FileWriter, targets: list[tuple[FileJob, int]], reason: str) -> None:
    for job, _offset in targets:
        writer.fail(job, reason, damaged=True)
        writer.skip(job)
