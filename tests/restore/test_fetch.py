"""Read tasks of a restore: which run one at a time and which on every core.

Tasks of small blobs share one lane (two workers trading the GIL for many
short system calls cost more than they gain); tasks of large blobs, whose
decoding is long native work, must still run side by side: large as decoded,
however small they are stored. A task in the lane leaves it while the kernel
creates a file, so the other runs meanwhile.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from deltavault.repo.index import BlobLocation
from deltavault.repo.tree import Node
from deltavault.restore import fetch, files, fsdir
from deltavault.restore.fetch import TINY_BLOB, SpanTask, run_task, span_tasks
from deltavault.restore.files import FileJob, FileWriter
from deltavault.restore.fsdir import DirTable
from deltavault.restore.lane import Lane


def _task(blob_size: int, count: int, raw_size: int | None = None) -> SpanTask:
    raw = blob_size if raw_size is None else raw_size
    locs = [BlobLocation(bytes([i]) * 32, "aa" * 32, i * blob_size, blob_size, raw, 0, 0,
                         None) for i in range(count)]
    [task] = span_tasks(locs)
    return task


def _most_at_once(monkeypatch: pytest.MonkeyPatch, task: SpanTask) -> int:
    running, most = [0], [0]
    guard = threading.Lock()

    def fake_run(*_args: Any) -> None:
        with guard:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with guard:
            running[0] -= 1

    monkeypatch.setattr(fetch, "_run", fake_run)
    lane = Lane()
    threads = [threading.Thread(target=run_task, args=(None, task, {}, set(), None, lane))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return most[0]


def test_tasks_of_small_blobs_take_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _most_at_once(monkeypatch, _task(4096, 200)) == 1


def test_tasks_of_large_blobs_run_side_by_side(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _most_at_once(monkeypatch, _task(TINY_BLOB * 2, 4)) > 1


def test_tasks_of_well_compressed_large_blobs_run_side_by_side(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """What a blob decodes to is the work, not what it occupies in the pack: order-book
    files of ~60-130 KiB stored in ~10 KiB each are milliseconds of codec work apiece."""
    assert _most_at_once(monkeypatch, _task(8192, 40, raw_size=TINY_BLOB * 2)) > 1


def test_a_lane_holder_steps_out_while_a_file_is_created(
        tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the kernel makes a one-blob file, another task may hold the lane: from
    creating it to its metadata."""
    lane = Lane()
    seen: list[bool] = []
    free_at_meta: list[bool] = []
    real, real_meta = fsdir.create_file, fsdir.apply_meta

    def create(dir_fd: int, name: bytes, mode: int = 0o600) -> tuple[int, bytes | None]:
        other = threading.Thread(target=lambda: seen.append(lane._lock.acquire(timeout=2)))
        other.start()
        other.join()
        lane._lock.release()  # the other task is done with it
        return real(dir_fd, name, mode)

    def meta(*args: Any, **kwargs: Any) -> None:
        free_at_meta.append(not lane._lock.locked())
        real_meta(*args, **kwargs)

    monkeypatch.setattr(files, "create_file", create)
    monkeypatch.setattr(files, "apply_meta", meta)
    table = DirTable()
    try:
        job = FileJob(table.root(tmp_path), b"f", Node(b"f", "file", mode=0o640, size=3,
                                                       content=[b"x" * 32]))
        writer = FileWriter(owners=False)
        with lane:
            writer.write(job, b"abc", 0, lane)
        assert lane._lock.acquire(blocking=False)  # taken back, then left at the end
    finally:
        table.close()
    assert seen == [True] and free_at_meta == [True]
    assert (tmp_path / "f").stat().st_mode & 0o777 == 0o640
    assert (tmp_path / "f").read_bytes() == b"abc" and writer.files == 1
