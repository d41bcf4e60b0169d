"""Restore one snapshot in several processes at once.

Why: a restore of many small files is bound by Python's interpreter lock. Its
planner and its two decode threads share one lock, and the kernel's part of
each file (create, write, close) is short, so two cores stay ~1.3 busy. Two
processes restoring disjoint halves of a 200,000-file snapshot took 8.3-11.1 s
against 17.5-19.9 s for one (ext4, 2 cores).

How: the coordinator (the command's own process) has opened the repository,
loaded the index and, in :mod:`~deltavault.restore.split`, made the top
directories and cut the rest into units. It then forks the parts. Each part
inherits the open repository (index, keys, trees read so far) and the
descriptors of the directories made; it takes claims (ranges of unit
numbers) from one shared pipe, so a part that finishes early takes more,
restores them with the engine a one-process restore uses, and reports bytes
as it goes and a summary at the end over its own pipe. A hard-linked file
whose names fell to different parts is written by each; the coordinator then
replaces the later copies by links to the first, keeping the directory's
times (:mod:`~deltavault.restore.joinlinks`). The directories the
coordinator made are finished by it, deepest first, once every part is done.

Fail closed: a part that reports an error, dies or is killed stops the
others (they throw their half-written files away) and fails the restore with
a line saying which; a part's damaged or unwritable files are counted and
fail the restore at the end exactly as in one process. If the coordinator
dies, the kernel kills its parts (``PR_SET_PDEATHSIG``).

Only for stores a forked child may go on using (:attr:`Store.fork_safe`: the
local directory store), never with include patterns or for rollback.
"""

from __future__ import annotations

import contextlib
import gc
import os
import selectors
import signal
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

from deltavault import errors
from deltavault.errors import DeltavaultError
from deltavault.repo.frames import FrameError, read_frame, write_frame
from deltavault.repo.repository import Repository
from deltavault.repo.tree import Node
from deltavault.restore.engine import run_plan
from deltavault.restore.files import FileWriter, Tally
from deltavault.restore.fsdir import Dir, libc
from deltavault.restore.joinlinks import join_links
from deltavault.restore.nodes import finish_dir
from deltavault.restore.plan import Planner
from deltavault.restore.split import Unit, split_tree

#: claims per process: enough that parts finish within ~1/16 of a part's work
CLAIMS_PER_PROCESS = 16
#: how long stopped parts get to throw their half-written files away
STOP_GRACE_S = 30.0
#: a part reports its bytes at most this often
PROGRESS_EVERY_S = 0.1
#: the largest frame a part may send (its summary lists its hard-linked names)
MAX_FRAME = 1 << 30
_CLAIM = struct.Struct("<II")
_PR_SET_PDEATHSIG = 1


@dataclass
class _Part:
    pid: int
    fd: int
    result: dict[str, Any] | None = None
    error: str | None = None
    status: int | None = None


def restore_split(repo: Repository, tree_id: bytes, root: Dir, tally: Tally, *,
                  processes: int, owners: bool, workers: int,
                  on_bytes: Callable[[int], None]) -> None:
    """Restore the tree ``tree_id`` below ``root`` in ``processes`` forked parts,
    counting into ``tally``."""
    split = split_tree(repo, tree_id, root, want=processes * CLAIMS_PER_PROCESS)
    writer = FileWriter(owners)
    tally.dirs += len(split.made)
    if split.units:
        parts = _start(repo, split.units, root, min(processes, len(split.units)), owners,
                       workers)
        try:
            _collect(parts, on_bytes)
        except BaseException:
            _stop(parts)
            raise
        results = [p.result for p in parts if p.result is not None]
        assert len(results) == len(parts)  # _collect raised otherwise
        for r in results:
            tally.add(r["files"], r["dirs"], r["bytes"], r["damaged"], r["failed"],
                      r["messages"])
        tally.bytes -= join_links(root, [r["linked"] for r in results], writer)
    for done in reversed(split.made):
        finish_dir(done, writer)
    tally.add(0, 0, 0, writer.damaged, writer.failed, writer.messages)


# --- the coordinator --------------------------------------------------------------------


def _start(repo: Repository, units: list[Unit], root: Dir, processes: int, owners: bool,
           workers: int) -> list[_Part]:
    """Write every claim into one pipe, then fork the parts that take them."""
    claims_r, claims_w = os.pipe()
    step = max(1, -(-len(units) // (processes * CLAIMS_PER_PROCESS)))
    try:
        for a in range(0, len(units), step):
            os.write(claims_w, _CLAIM.pack(a, min(len(units), a + step)))
    finally:
        os.close(claims_w)
    parts: list[_Part] = []
    coordinator = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()  # what exists now is shared: the collector must not copy its pages
    try:
        for _ in range(processes):
            r, w = os.pipe()
            pid = os.fork()
            if pid == 0:
                os.close(r)
                for p in parts:
                    os.close(p.fd)
                _part_main(coordinator, repo, units, root, claims_r, w, owners, workers)
            os.close(w)
            parts.append(_Part(pid, r))
    except BaseException:
        _stop(parts)
        raise
    finally:
        gc.unfreeze()
        os.close(claims_r)
    return parts


def _collect(parts: list[_Part], on_bytes: Callable[[int], None]) -> None:
    """Read every part's frames until all have ended; raise if one failed."""
    sel = selectors.DefaultSelector()
    readers = {}
    for p in parts:
        readers[p.fd] = os.fdopen(p.fd, "rb", buffering=0, closefd=False)
        sel.register(p.fd, selectors.EVENT_READ, p)
    try:
        live = len(parts)
        while live:
            for key, _ in sel.select():
                p = key.data
                try:
                    frame = read_frame(readers[p.fd], MAX_FRAME)
                except FrameError as exc:
                    frame, p.error = None, f"sent an unreadable report ({exc})"
                if isinstance(frame, dict) and isinstance(frame.get("b"), int):
                    on_bytes(frame["b"])
                    continue
                if isinstance(frame, dict) and "error" in frame:
                    _raise_part_error(p, parts, frame)
                if isinstance(frame, dict) and _is_summary(frame):
                    p.result = frame
                    continue
                sel.unregister(p.fd)
                live -= 1
                if p.result is None:
                    _wait(p, block=True)
                    why = p.error or f"ended ({_describe(p.status)}) before finishing its part"
                    _stop(parts)
                    raise DeltavaultError(f"restore process {p.pid} {why}; the restore is "
                                          "incomplete", hint="run the restore again")
    finally:
        sel.close()
        for p in parts:
            with contextlib.suppress(OSError):
                os.close(p.fd)
    for p in parts:
        _wait(p, block=True)
        if p.status != 0:
            raise DeltavaultError(f"restore process {p.pid} ended ({_describe(p.status)}) "
                                  "after its report; the restore may be incomplete",
                                  hint="run the restore again")


def _is_summary(frame: dict[str, Any]) -> bool:
    ints = ("files", "dirs", "bytes", "damaged", "failed")
    return (all(isinstance(frame.get(k), int) for k in ints)
            and isinstance(frame.get("messages"), list)
            and all(isinstance(m, str) for m in frame["messages"])
            and isinstance(frame.get("linked"), list))


def _raise_part_error(p: _Part, parts: list[_Part], frame: dict[str, Any]) -> NoReturn:
    """Stop every part and raise what ``p`` reported, as the class it raised."""
    _stop(parts)
    kind = getattr(errors, str(frame.get("kind", "")), None)
    cls = kind if isinstance(kind, type) and issubclass(kind, DeltavaultError) else (
        DeltavaultError)
    hint = frame.get("hint")
    raise cls(str(frame.get("error")), hint=hint if isinstance(hint, str) and hint else None)


def _stop(parts: list[_Part]) -> None:
    """Ask the parts still running to stop; kill those that have not after a grace."""
    for p in parts:
        _wait(p, block=False)
        if p.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for p in parts:
        while p.status is None and time.monotonic() < deadline:
            _wait(p, block=False)
            if p.status is None:
                time.sleep(0.05)
        if p.status is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGKILL)
            _wait(p, block=True)


def _wait(p: _Part, *, block: bool) -> None:
    if p.status is not None:
        return
    try:
        pid, status = os.waitpid(p.pid, 0 if block else os.WNOHANG)
    except ChildProcessError:
        p.status = -1
        return
    if pid:
        p.status = os.waitstatus_to_exitcode(status)


def _describe(status: int | None) -> str:
    if status is not None and status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit code {status}"


# --- a part (the forked child) ----------------------------------------------------------


class _Reporter:
    """Sends a part's restored bytes to the coordinator, at most every PROGRESS_EVERY_S."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.lock = threading.Lock()
        self.pending = 0
        self.sent_at = 0.0

    def bytes(self, n: int) -> None:
        with self.lock:
            self.pending += n
            now = time.monotonic()
            if now - self.sent_at >= PROGRESS_EVERY_S:
                self.flush_locked(now)

    def flush_locked(self, now: float) -> None:
        if self.pending:
            write_frame(self.fd, {"b": self.pending})
            self.pending = 0
        self.sent_at = now

    def send(self, frame: dict[str, Any]) -> None:
        with self.lock:
            self.flush_locked(time.monotonic())
            write_frame(self.fd, frame)


def _claimed(units: list[Unit], fd: int) -> Iterator[tuple[Dir, list[Node]]]:
    """The units of each claim this part takes from the shared pipe, until none is left."""
    while True:
        rec = os.read(fd, _CLAIM.size)  # claims are written whole: a read gets one or none
        if len(rec) < _CLAIM.size:
            return
        a, z = _CLAIM.unpack(rec)
        for unit in units[a:z]:
            yield unit.dir, unit.nodes


def _interrupted(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _part_main(coordinator: int, repo: Repository, units: list[Unit], root: Dir,
               claims: int, out: int, owners: bool, workers: int) -> NoReturn:
    """Restore claimed units, report, and leave without running the parent's cleanup."""
    code = 1
    try:
        libc().prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != coordinator:  # the coordinator died before prctl took effect
            os._exit(1)
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the coordinator decides (SIGTERM)
        signal.signal(signal.SIGTERM, _interrupted)
        reporter = _Reporter(out)
        writer = FileWriter(owners, reporter.bytes)
        planner = Planner(repo, b"", root, include=[], roots=_claimed(units, claims))
        links = run_plan(repo, planner, writer, workers)
        reporter.send({
            "files": writer.files + links, "dirs": planner.dirs, "bytes": writer.bytes,
            "damaged": writer.damaged, "failed": writer.failed, "messages": writer.messages,
            "linked": [[dev, ino, d.parts(), name]
                       for (dev, ino), d, name in planner.linked or []]})
        code = 0
    except BaseException as exc:  # everything goes to the coordinator, nothing to stderr
        with contextlib.suppress(BaseException):
            interrupted = isinstance(exc, KeyboardInterrupt)
            write_frame(out, {
                "error": "stopped" if interrupted else (str(exc) or type(exc).__name__),
                "kind": type(exc).__name__,
                "hint": exc.hint if isinstance(exc, DeltavaultError) else ""})
    finally:
        os._exit(code)
