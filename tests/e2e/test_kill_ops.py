"""kill -9 of copy, tag, key add/remove and contended journal appends, at random moments.

Each trial runs the real ``deltavault`` script and SIGKILLs it at a random
moment of its work: a seeded delay, drawn from the time an uninterrupted
run takes between taking its repository lock (the first thing every one of
these writers does once the interpreter is up) and exiting, so the kills
fall across the operation rather than into interpreter start-up. After every
trial: ``check --read-data`` passes, the ledger verifies, every committed
snapshot restores byte-identically, and the operation run again completes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deltavault import api
from deltavault.ledger.journal import Journal
from deltavault.ledger.verify import verify_log
from deltavault.repo.keys import KdfParams
from deltavault.repo.repository import Repository
from tests.support.cli import PASSWORD, cli_env, kill_trials
from tests.support.trees import assert_same_files, write_random

TRIALS = kill_trials()
PW = PASSWORD.encode()


def cheap() -> KdfParams:
    return KdfParams.fresh(memory_kib=8192, time_cost=1)


@dataclass
class Trials:
    """Outcomes of one operation's trials, for the report."""

    op: str
    killed: int = 0
    completed: int = 0
    delays: list[float] = field(default_factory=list)

    def line(self) -> str:
        return (f"{self.op}: {self.killed + self.completed} trials, {self.killed} killed "
                f"mid-run, {self.completed} finished first; all verified")


@dataclass
class Setup:
    repo: Path
    password_file: Path
    sources: dict[str, Path]
    scratch: Path

    def env(self) -> dict[str, str]:
        return cli_env(self.repo, self.password_file)

    def open(self) -> Repository:
        return api.open(self.repo, PW)


@pytest.fixture
def setup(tmp_path: Path, password_file: Path) -> Setup:
    repo = tmp_path / "repo"
    r = api.init(repo, PW, pack_size=1 << 16, kdf_memory_kib=8192, kdf_time_cost=1)
    sources = {}
    for name, seed in (("alpha", 1), ("beta", 2)):
        src = tmp_path / name
        src.mkdir()
        for i in range(4):
            write_random(src / f"f{i}.bin", 256 * 1024, seed * 10 + i)
        (src / "note.txt").write_text(f"{name}\n")
        api.backup(r, [src])
        sources[str(src)] = src
    return Setup(repo, password_file, sources, tmp_path / "scratch")


def _argv(args: list[str | os.PathLike[str]]) -> list[str]:
    return [sys.executable, "-m", "deltavault", *map(os.fspath, args)]


def _names(directory: Path) -> set[str]:
    """Names in a directory of the repository (locks/, journal/)."""
    return set(os.listdir(directory)) if directory.is_dir() else set()


def _run(setup: Setup, args: list[str | os.PathLike[str]], delay: float | None,
         stdin: bytes | None = None) -> tuple[bool, float]:
    """Run a command; ``delay`` s after it takes its lock, SIGKILL it.

    Returns (killed, seconds from taking the lock to the end). With ``delay``
    None the run is not interrupted and must succeed.
    """
    log = setup.scratch.parent / "stderr.log"
    locks = setup.repo / "locks"
    old = _names(locks)  # killed runs leave theirs behind (stale: the pid is gone)
    with open(log, "wb") as err:
        proc = subprocess.Popen(_argv(args), env=setup.env(), stdout=subprocess.DEVNULL,
                                stderr=err, stdin=subprocess.PIPE)
        assert proc.stdin is not None
        proc.stdin.write(stdin or b"")
        proc.stdin.close()
        deadline = time.monotonic() + 120
        while not _names(locks) - old and proc.poll() is None:
            assert time.monotonic() < deadline, "the command never took its lock"
            time.sleep(0.002)
        began = time.monotonic()
        try:
            proc.wait(timeout=delay if delay is not None else 120)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(30)
            return True, time.monotonic() - began
    assert proc.returncode == 0, (args, proc.returncode, log.read_text()[-2000:])
    return False, time.monotonic() - began


def _verify(setup: Setup, *, whole_log: bool = True) -> Repository:
    """check --read-data, the ledger, and every committed snapshot restored exactly.

    ``whole_log=False`` leaves the ledger to the caller (which checks each new
    checkpoint against the last, and the whole log at the end).
    """
    repo = setup.open()
    report = api.check(repo, read_data=True)
    assert report.ok, [p.to_dict() for p in report.problems]
    if whole_log:
        assert verify_log(repo.ledger).ok
    snaps = api.snapshots(repo)
    assert sorted(s.paths[0] for s in snaps) == sorted(setup.sources)
    for snap in snaps:
        shutil.rmtree(setup.scratch, ignore_errors=True)
        api.restore(repo, snap.id, setup.scratch)
        src = setup.sources[snap.paths[0]]
        assert_same_files(src, setup.scratch / src.name)
    shutil.rmtree(setup.scratch, ignore_errors=True)
    return repo


def _trials(setup: Setup, op: str, args: Callable[[int], list[str | os.PathLike[str]]],
            again: Callable[[Repository, int], None], seed: int,
            before: Callable[[Repository, int], None] | None = None) -> Trials:
    """A reference run to time the operation, then TRIALS kills, each verified and redone."""
    rng = random.Random(seed)
    if before is not None:
        before(setup.open(), -1)
    _, span = _run(setup, args(-1), None)
    out = Trials(op)
    for i in range(TRIALS):
        if before is not None:
            before(setup.open(), i)
        delay = rng.uniform(0, 1.2 * max(span, 0.05))
        killed, _ = _run(setup, args(i), delay)
        out.delays.append(round(delay, 3))
        if killed:
            out.killed += 1
        else:
            out.completed += 1
        repo = _verify(setup)
        again(repo, i)  # the next run completes
    assert out.killed >= TRIALS // 4, out  # kills landed inside the operation
    print("\n" + out.line())
    return out


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_kill_copy(setup: Setup, tmp_path: Path) -> None:
    def dst(i: int) -> Path:
        return tmp_path / f"replica{i}"

    def again(repo: Repository, i: int) -> None:
        api.copy(repo, dst(i))  # finishes the half-made replica
        replica = api.open(dst(i), PW)
        assert api.check(replica, read_data=True).ok
        assert [s.id for s in api.snapshots(replica)] == [s.id for s in api.snapshots(repo)]
        api.restore(replica, "latest", tmp_path / f"r{i}")
        latest = api.snapshots(repo)[-1]
        src = setup.sources[latest.paths[0]]
        assert_same_files(src, tmp_path / f"r{i}" / src.name)
        shutil.rmtree(tmp_path / f"r{i}")

    _trials(setup, "copy",
            lambda i: ["copy", "--to-repo", dst(i), "--quiet"], again, seed=11)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_kill_tag(setup: Setup) -> None:
    def again(repo: Repository, i: int) -> None:
        old, new = api.tag(repo, "latest", add=[f"again{i}"])
        assert f"again{i}" in new.tags and old.id != new.id

    _trials(setup, "tag", lambda i: ["tag", "latest", "--add", f"t{i}"], again, seed=12)


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_kill_key_add_and_remove(setup: Setup, tmp_path: Path) -> None:
    new_pw = tmp_path / "new-password"
    new_pw.write_text("another password\n")

    def added(repo: Repository, i: int) -> None:
        repo.add_key(b"another password", cheap())
        assert api.open(setup.repo, b"another password").key_id
        for key in repo.list_keys():  # keep opening cheap: one key again
            if key.id != repo.key_id:
                repo.remove_key(key.id)

    _trials(setup, "key add",
            lambda i: ["key", "add", "--new-password-file", new_pw], added, seed=13)

    spare: list[str] = []

    def make_spare(repo: Repository, i: int) -> None:
        spare.append(repo.add_key(f"spare {i}".encode(), cheap()))

    def removed(repo: Repository, i: int) -> None:
        if any(k.id == spare[-1] for k in repo.list_keys()):
            repo.remove_key(spare[-1])
        assert all(k.id != spare[-1] for k in repo.list_keys())

    _trials(setup, "key remove", lambda i: ["key", "remove", spare[-1]], removed, seed=14,
            before=make_spare)


def _records(tag: str, n: int) -> bytes:
    return "".join(json.dumps({"writer": tag, "seq": i, "qty": i % 9}) + "\n"
                   for i in range(n)).encode()


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_kill_contended_journal_append(setup: Setup) -> None:
    """Two writers append at once; one is killed; the log stays one linear log."""
    n = 2000  # two batches of 1000, each one checkpoint
    rng = random.Random(15)
    env = setup.env()
    outcome = Trials("journal append (2 writers)")
    span = 0.0
    seen = setup.open().ledger
    for i in range(-1, TRIALS):
        seen.refresh()
        size_before = seen.size
        batches = _names(setup.repo / "journal")
        procs = [subprocess.Popen(_argv(["journal", "append"]), env=env,
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.PIPE) for _ in range(2)]
        for tag, proc in zip("ab", procs, strict=True):
            assert proc.stdin is not None
            proc.stdin.write(_records(f"{tag}{i}", n))
            proc.stdin.close()
        victim, survivor = procs
        # the appends have begun once a sealed batch object appears (before its entries)
        while not _names(setup.repo / "journal") - batches and victim.poll() is None:
            time.sleep(0.002)
        began = time.monotonic()
        if i < 0:
            assert victim.wait(120) == 0
            span = time.monotonic() - began  # the reference run
            assert survivor.wait(120) == 0
        else:
            try:
                victim.wait(timeout=rng.uniform(0, 1.2 * max(span, 0.05)))
                outcome.completed += 1
                # a run that beat the reference shows its real length: draw the next
                # delays over that (a slow reference run made most trials complete)
                span = min(span, time.monotonic() - began)
            except subprocess.TimeoutExpired:
                victim.send_signal(signal.SIGKILL)
                victim.wait(30)
                outcome.killed += 1
            assert survivor.stderr is not None
            code, err = survivor.wait(120), survivor.stderr.read()
            assert code == 0, err[-2000:]  # the contender completes
        # one linear log: the checkpoint we saw is a prefix (consistency proof on
        # refresh), and it grew by whole batches only
        seen.refresh()
        grown = seen.size - size_before
        assert grown % 1000 == 0 and n <= grown <= 2 * n, grown
        # every batch whole, the contender's all there, the victim's a prefix of its own
        reader = setup.open()
        journal = Journal(reader.ledger, reader.crypto)
        ends = [journal.read(j)[0] for j in range(size_before + 999, seen.size, 1000)]
        by_writer = {w: sorted(r["seq"] for r in ends if r["writer"] == f"{w}{i}")
                     for w in "ab"}
        assert by_writer["b"] == [999, 1999], ends
        assert by_writer["a"] == [999, 1999][:len(by_writer["a"])], ends
        repo = _verify(setup, whole_log=False)
        Journal(repo.ledger, repo.crypto).append([{"writer": "next", "seq": i}])  # completes
        seen.refresh()
    assert verify_log(setup.open().ledger).ok
    assert outcome.killed >= TRIALS // 4, outcome  # the kills landed inside the appends
    print("\n" + outcome.line())
