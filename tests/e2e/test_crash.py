"""kill -9 during backup and restore: the repository stays consistent and usable.

Each trial starts a real ``deltavault backup`` subprocess and SIGKILLs it after a
random delay (seeded, spread over the duration of an uninterrupted backup of
the same tree), then requires: ``check`` exits 0 (unreferenced packs allowed),
every snapshot committed earlier restores byte-identically, the dead process's
lock does not block an exclusive lock, and the next backup succeeds.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from deltavault import api
from tests.support.cli import PASSWORD, Cli
from tests.support.trees import assert_same_tree, manifest, write_random

FILES = 6
FILE_SIZE = 10 << 20  # 60 MiB in all
TRIALS_PER_CASE = 5
CASES = 4  # 20 backup kills in all


def _source(root: Path, seed: int) -> None:
    (root / "sub").mkdir(parents=True)
    for i in range(FILES):
        write_random(root / ("sub" if i % 2 else ".") / f"f{i}.bin", FILE_SIZE, seed * 100 + i)
    (root / "small.txt").write_text("small\n")
    os.symlink("small.txt", root / "link")


def _kill_after(proc: subprocess.Popen[bytes], delay: float, started: float) -> float | None:
    """SIGKILL after ``delay``; None if killed, else how long the process took."""
    try:
        proc.wait(timeout=delay)
        return time.monotonic() - started
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    return None


def _restores_exactly(repo_path: Path, sid: str, expected: dict[bytes, object],
                      scratch: Path) -> None:
    repo = api.open(repo_path, PASSWORD.encode())
    shutil.rmtree(scratch, ignore_errors=True)
    api.restore(repo, sid, scratch)
    assert_same_tree(expected, manifest(scratch / "src"))  # type: ignore[arg-type]
    shutil.rmtree(scratch)


@pytest.mark.slow
@pytest.mark.parametrize("case", range(CASES))
def test_kill_during_backup(cli: Cli, tmp_path: Path, case: int) -> None:
    rng = random.Random(1000 + case)
    cli("init", "--kdf-memory", "8192", "--kdf-time", "1", "--pack-size", "1",
        "--chunk-avg", "262144")
    src = tmp_path / "src"
    _source(src, case)
    started = time.monotonic()
    committed = {cli.json("backup", src)["snapshot_id"]: manifest(src)}
    expected_duration = time.monotonic() - started
    kills = attempts = 0
    while kills < TRIALS_PER_CASE and attempts < 3 * TRIALS_PER_CASE:
        attempts += 1
        # change part of the tree so the killed backup has new data to write; a full
        # backup re-reads all 60 MiB, so most of its run is chunking and writing packs
        write_random(src / f"f{(attempts * 2) % FILES}.bin", FILE_SIZE, rng.randrange(2**32))
        write_random(src / "sub" / f"f{(attempts * 2 + 3) % FILES}.bin", FILE_SIZE,
                     rng.randrange(2**32))
        with open(src / "sub" / f"f{(attempts * 2 + 1) % FILES}.bin", "ab") as fh:
            fh.write(os.urandom(100_000))
        delay = rng.uniform(0, expected_duration)
        started = time.monotonic()
        proc = cli.popen("backup", src, "--type", "full")
        took = _kill_after(proc, delay, started)
        if took is None:
            kills += 1
        else:  # finished first: aim the next delays inside a real run
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else b""
            expected_duration = took
        leftovers = len(list((cli.repo / "data").rglob("*"))) + len(list(
            (cli.repo / "tmp").iterdir()))
        print(f"case {case} attempt {attempts}: delay {delay:.2f}s, "
              f"{'killed' if took is None else f'finished in {took:.2f}s'}, "
              f"{leftovers} data/tmp entries")
        repo = api.open(cli.repo, PASSWORD.encode())
        report = api.check(repo)  # what 'deltavault check' runs, without the start-up cost
        assert report.ok, report.problems
        for sid, expected in committed.items():
            _restores_exactly(cli.repo, sid, expected, tmp_path / "scratch")
        # a dead process's lock is stale: an exclusive lock can be taken right away
        with repo.lock(exclusive=True):
            pass
        snap = api.backup(api.open(cli.repo, PASSWORD.encode()), [src]).snapshot
        committed[snap.id] = manifest(src)
    assert kills == TRIALS_PER_CASE
    last = list(committed)[-1]
    _restores_exactly(cli.repo, last, committed[last], tmp_path / "scratch")
    rep = cli.json("check", "--read-data")
    assert rep["ok"], rep["problems"]
    assert len({s["id"] for s in cli.json("snapshots")} & committed.keys()) == len(committed)


@pytest.mark.slow
def test_kill_during_restore_then_rerun(cli: Cli, tmp_path: Path) -> None:
    rng = random.Random(77)
    cli("init", "--kdf-memory", "8192", "--kdf-time", "1")
    src = tmp_path / "src"
    _source(src, 9)
    expected = manifest(src)
    sid = cli.json("backup", src)["snapshot_id"]
    target = tmp_path / "target"
    started = time.monotonic()
    cli("restore", sid, "-t", tmp_path / "timing")
    duration = time.monotonic() - started
    shutil.rmtree(tmp_path / "timing")
    for trial in range(4):
        proc = cli.popen("restore", sid, "-t", target)
        delay = rng.uniform(0, duration)
        took = _kill_after(proc, delay, time.monotonic())
        print(f"restore trial {trial}: delay {delay:.2f}s, exit {proc.returncode}")
        if took is not None:
            duration = took
        cli("restore", sid, "-t", target)
        assert_same_tree(expected, manifest(target / "src"))
        # scribble over the result so the next kill interrupts a repair, not a no-op
        with open(target / "src" / "f0.bin", "r+b") as fh:
            fh.write(b"garbage")
        os.truncate(target / "src" / "sub" / "f1.bin", 10)
