"""Read, hash, compress and encrypt small files in a helper process.

A backup of many small files is bound by Python's global interpreter lock:
each 1-4 KiB file is a few microsecond-long native calls (open, read, close,
BLAKE3, zstd, AES-GCM) glued by Python, and two worker threads trading the
lock for them spend more on hand-offs than they gain, so the tiny-file lane
(files.py) stores such batches one at a time and a 2-core machine runs at
about one core (200,000 JSON-lines files: 1.08 cores, restic 1.60). A second
*process* has its own interpreter lock: the backup hands it batches of
paths, it returns each chunk's id, codec, length and sealed envelope, and
the backup's own process is left with the walk, deduplication and packing.

The helper is the same code as the in-process path (:func:`read_whole`,
:meth:`FileChunker.split_buffer`, :func:`choose`, :meth:`Crypto.seal_blob`),
so a file is stored alike whichever path takes it. It is started only once
a backup has seen enough tiny files to pay for its start-up (its imports
take a few hundred milliseconds, on the other core), and it only takes
files that need no delta base. If it cannot start or dies, the backup
carries on in process: a batch it had not answered is stored by the
backup's own workers, and deduplication (which blob is new) is decided in
the backup's process either way.

Protocol, over the helper's stdin and stdout (both ends are this program):
frames of a 4-byte little-endian length and a msgpack body. First the
repository's master secret, FastCDC parameters, codec policy and zstd level;
the helper answers ``[1]`` when ready. Then each request is a list of
``[path, size]`` and each answer a list, one item per file:
``[0, [[id, codec, raw_length, envelope], ...], bytes_read]``, ``[1, why]``
(unreadable) or ``[2]`` (an SQLite database: the backup's own stream path
knows live databases). The master secret crosses a pipe between two
processes of the same user and is never written anywhere.
"""

from __future__ import annotations

import collections
import contextlib
import fcntl
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from deltavault.backup.smallfile import read_whole
from deltavault.chunk.base import ByteReader
from deltavault.chunk.fastcdc import CdcParams
from deltavault.chunk.files import FileChunker
from deltavault.codec.policy import Policy, choose
from deltavault.errors import DeltavaultError
from deltavault.repo.crypto import Crypto, MasterKey
from deltavault.repo.frames import FrameError, read_frame, write_frame

#: pipe capacity asked for (Linux's default limit for an unprivileged process)
PIPE_BYTES = 1 << 20
#: a frame larger than this is not ours (a request is at most a batch of paths,
#: an answer at most a batch of small files, files.BATCH_BYTES plus growth)
MAX_FRAME = 256 * 1024 * 1024
#: an answer for one file: ``[0, chunks, bytes_read]``, ``[1, why]`` or ``[2]``
Answer = list[Any]
#: what a request's answers (or the helper's failure) are handed to
Callback = Callable[[list[Answer] | DeltavaultError], None]


@dataclass
class SealerUse:
    """What the helper did for one backup (the backup's summary reports it)."""

    #: files it read and sealed
    files: int = 0
    #: its CPU time (from the kernel, when it exited) and its own peak resident
    #: memory (``VmHWM``, read just before it was stopped)
    cpu_s: float = 0.0
    peak_rss_mib: float = 0.0
    #: why it stopped being used before the end, if it did
    failed: str | None = None


class SealerGone(DeltavaultError):
    """The helper process is not (or no longer) available: do the work in process."""


def _read_frame(f: ByteReader) -> Any:
    """The next frame's body, or None at the end of the stream (a frame cut short too)."""
    try:
        return read_frame(f, MAX_FRAME)
    except FrameError as exc:
        raise SealerGone(f"sealer: {exc}") from exc


class Sealer:
    """The backup's side of one helper process.

    The walk queues requests (:meth:`submit`) without waiting for them, so
    the helper always has the next batch in its pipe; a reader thread takes
    the answers, in the order the requests were sent, and hands each to the
    callback given with its request. Every callback is called exactly once:
    with the answers, or with :class:`SealerGone` if the helper failed first.
    """

    def __init__(self, crypto: Crypto, cdc: CdcParams, policy: Policy, level: int) -> None:
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "deltavault.backup.sealer"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                bufsize=0, close_fds=True)
        except OSError as exc:
            raise SealerGone(f"sealer: cannot start: {exc}") from exc
        assert self._proc.stdin is not None and self._proc.stdout is not None
        self._out = self._proc.stdin.fileno()
        self._in = self._proc.stdout  # unbuffered (bufsize=0): no answer is read ahead
        for fd in (self._out, self._in.fileno()):
            # a whole batch fits in the pipe: with the default 64 KiB the helper
            # waited on every answer until this process's reader thread got the
            # interpreter lock from the walk, several times an answer (40 % of
            # its time on 100,000 small files)
            with contextlib.suppress(OSError, AttributeError):
                fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        self._ready = False
        self._broken: str | None = None
        self._send_lock = threading.Lock()  # requests go out in the order they queue
        self._lock = threading.Lock()  # the queue of callbacks and the broken state
        self._waiting: collections.deque[tuple[int, Callback]] = collections.deque()
        self._reaped = False
        self.use = SealerUse()
        try:
            write_frame(self._out, [crypto.master.secret, cdc.min_size, cdc.avg_size,
                                     cdc.max_size, cdc.normalization, cdc.seed, policy, level])
        except OSError as exc:
            self._fail(f"sealer: cannot start: {exc}")
        self._reader = threading.Thread(target=self._read_loop, name="dv-sealer", daemon=True)
        self._reader.start()

    def ready(self) -> bool:
        """Whether the helper has started and not failed (never blocks)."""
        return self._ready and self._broken is None

    def submit(self, files: list[tuple[bytes, int]], done: Callback) -> None:
        """Queue these files for the helper; ``done`` gets their answers, one per file.

        Raises:
            SealerGone: the helper has failed; nothing was queued (``done``
                will not be called).
        """
        with self._send_lock:
            with self._lock:
                if self._broken is not None:
                    raise SealerGone(self._broken)
                self._waiting.append((len(files), done))
            try:
                write_frame(self._out, [[p, s] for p, s in files])
            except OSError as exc:  # the reader calls ``done`` with the failure
                self._fail(f"sealer: {exc}")

    def _read_loop(self) -> None:
        why = "sealer ended"
        try:
            if _read_frame(self._in) != [1]:
                raise SealerGone("sealer: did not start")
            self._ready = True
            while True:
                answers = _read_frame(self._in)
                with self._lock:
                    if not self._waiting or not isinstance(answers, list):
                        break
                    count, done = self._waiting.popleft()
                if len(answers) != count:
                    why = f"sealer: {len(answers)} answers for {count} files"
                    self._fail(why)
                    done(SealerGone(why))
                    break
                self.use.files += count
                done(answers)
        except (OSError, SealerGone) as exc:
            why = str(exc)
        self._fail(why)
        with self._lock:
            left, self._waiting = list(self._waiting), collections.deque()
        for _, done in left:
            done(SealerGone(self._broken or why))

    def _fail(self, why: str) -> None:
        with self._lock:
            if self._broken is None:
                self._broken = why
                self.use.failed = why
            if not self._reaped:  # (a reaped pid may be another process's by now)
                with contextlib.suppress(OSError):
                    os.kill(self._proc.pid, signal.SIGKILL)

    def close(self) -> SealerUse:
        """Stop the helper (end of its input; killed if it does not exit within
        seconds) and reap it; what it did, with its CPU time and peak memory.

        Called once every request was answered; any still waiting get
        :class:`SealerGone`.
        """
        with self._lock:
            if self._broken is None:
                self._broken = "sealer closed"
        proc = self._proc
        assert proc.stdin is not None and proc.stdout is not None
        peak = _peak_rss_mib(proc.pid)  # idle now: its peak is final
        with contextlib.suppress(OSError):
            proc.stdin.close()
        # the reader ends at the helper's exit (end of its output); a helper that
        # does not exit within seconds is killed. Only then is it reaped, so no
        # kill can reach a reused pid.
        self._reader.join(5)
        if self._reader.is_alive():
            self._fail("sealer did not stop")
            self._reader.join()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            self.use.cpu_s = usage.ru_utime + usage.ru_stime
            # (the kernel's maxrss of a child counts its parent's memory up to
            # the exec: an upper bound only, where /proc cannot say)
            self.use.peak_rss_mib = peak if peak is not None else usage.ru_maxrss / 1024
        except ChildProcessError:  # reaped already: no usage to report
            pass
        with self._lock:
            self._reaped = True
        proc.stdout.close()
        return self.use


def _peak_rss_mib(pid: int) -> float | None:
    """A live process's own peak resident memory (``VmHWM``), or None without /proc."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


# --- the helper process -------------------------------------------------------------


def _seal_file(path: bytes, size: int, chunker: FileChunker, crypto: Crypto, policy: Policy,
               level: int) -> Answer:
    try:
        data = read_whole(os.fsdecode(path), None, size)
    except OSError as exc:
        return [1, str(exc.strerror)]
    refs = chunker.split_buffer(data)
    if refs is None:
        return [2]
    chunks = []
    for ref in refs:
        blob_id = crypto.blob_id(ref.data)
        enc = choose(ref.data, None, ref.hint, policy, level=level)
        chunks.append([blob_id, int(enc.codec_id), len(ref.data),
                       crypto.seal_blob(blob_id, enc.payload)])
    return [0, chunks, len(data)]


def main() -> None:
    """Serve requests from stdin until it ends (the backup closed it, or died)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the backup decides when to stop
    # unbuffered: a request is read exactly, nothing of the next one ahead
    inp = open(sys.stdin.fileno(), "rb", buffering=0, closefd=False)  # noqa: SIM115
    out = sys.stdout.fileno()
    init = _read_frame(inp)
    if init is None:
        return
    secret, mn, avg, mx, norm, seed, policy, level = init
    crypto = Crypto(MasterKey(secret))
    chunker = FileChunker(CdcParams(mn, avg, mx, norm, seed))
    write_frame(out, [1])
    while True:
        req = _read_frame(inp)
        if req is None:
            return
        write_frame(out, [_seal_file(p, s, chunker, crypto, policy, level) for p, s in req])


if __name__ == "__main__":
    main()
