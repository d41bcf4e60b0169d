"""kill -9 at random moments: restore over an existing tree, and rollback.

Each trial runs the real ``deltavault`` entry point, kills it with SIGKILL
somewhere in its run, checks what is on disk, and runs the command again to
completion. Restore in place: every file is whole — its old content or the
snapshot's, never truncated or a mix of both. Rollback: the directory is
entirely the old tree or entirely the snapshot; where the swap had happened
the old tree is kept as the previous one.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from deltavault import api, sampledata
from deltavault.restore.fsdir import TMP_PREFIX
from deltavault.restore.rollback import PREVIOUS, STAGING
from tests.support.cli import Cli, kill_trials, processes_left
from tests.support.trees import differences, write_random

TRIALS = kill_trials()


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def _kill_at_random(cli: Cli, args: list[str | os.PathLike[str]], after: float) -> None:
    proc = cli.popen(*args)
    time.sleep(after)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _snapshot_and_old(tmp_path: Path) -> tuple[Path, Path]:
    """A source tree (small and multi-chunk files) and an 'old' tree of the same paths."""
    new, old = tmp_path / "new" / "data", tmp_path / "old" / "data"
    for i, root in enumerate((new, old)):
        for d in range(8):
            (root / f"d{d}").mkdir(parents=True)
            for f in range(40):
                (root / f"d{d}" / f"f{f}").write_bytes(os.urandom(2048 + 97 * f + i))
        for b in range(3):
            write_random(root / f"big{b}.bin", (3 << 20) + 4096 * i, seed=10 * b + i)
    return new, old


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("processes", ["1", "2"])
def test_restore_in_place_killed_at_random_moments(cli_repo: Cli, tmp_path: Path,
                                                   processes: str) -> None:
    new, old = _snapshot_and_old(tmp_path)
    cli_repo("backup", new)
    want_new, want_old = _files(new), _files(old)
    target = tmp_path / "target"
    cmd: list[str | os.PathLike[str]] = ["restore", "latest", "--target", target, "--quiet",
                                         "--processes", processes]
    shutil.copytree(old, target / "data")
    started = time.monotonic()
    cli_repo(*cmd)
    duration = time.monotonic() - started
    rng = random.Random(1212)
    outcomes = {"all old": 0, "all new": 0, "some of each": 0}
    for _trial in range(TRIALS):
        shutil.rmtree(target)
        shutil.copytree(old, target / "data")
        _kill_at_random(cli_repo, cmd, rng.uniform(0.3, 1.1) * duration)
        # a split restore's parts die with it
        assert not processes_left(target, 10), "a restore process outlived the killed command"
        got = _files(target / "data")
        leftovers = {k for k in got if Path(k).name.startswith(os.fsdecode(TMP_PREFIX))}
        kinds = set()
        for rel in want_new:
            assert got[rel] in (want_old[rel], want_new[rel]), f"{rel}: truncated or mixed"
            kinds.add("new" if got[rel] == want_new[rel] else "old")
        assert set(got) - leftovers == set(want_new)
        outcomes["all old" if kinds == {"old"} else "all new" if kinds == {"new"}
                 else "some of each"] += 1
        cli_repo(*cmd)  # the next run completes and clears what the killed one left
        assert _files(target / "data") == want_new
    print(f"restore in place ({processes} process(es)), {TRIALS} kill -9 trials: {outcomes}")
    assert sum(outcomes.values()) == TRIALS


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_rollback_killed_at_random_moments(cli: Cli, tmp_path: Path) -> None:
    state = tmp_path / "live" / "trading"
    sampledata.generate(state, scale=0.01, seed=5)
    good = tmp_path / "good"
    shutil.copytree(state, good, symlinks=True)
    repo = api.init(cli.repo, cli.password_file.read_text().strip().encode(),
                    kdf_memory_kib=8192, kdf_time_cost=1)
    api.backup(repo, [state], snapshot_type="full", tags=["known-good"])
    sampledata.mutate(state, day=1, seed=5)
    bad = tmp_path / "bad"
    shutil.copytree(state, bad, symlinks=True)
    cmd: list[str | os.PathLike[str]] = ["rollback", "--tag", "known-good", "--target", state,
                                         "--quiet"]
    started = time.monotonic()
    cli(*cmd, "--discard-previous")
    duration = time.monotonic() - started
    rng = random.Random(4321)
    outcomes = {"old": 0, "new": 0}
    for _trial in range(TRIALS):
        for p in state.parent.iterdir():
            shutil.rmtree(p)
        shutil.copytree(bad, state, symlinks=True)
        _kill_at_random(cli, cmd, rng.uniform(0.3, 1.1) * duration)
        swapped = not differences(good, state)
        if swapped:
            outcomes["new"] += 1
        else:
            assert differences(bad, state) == [], "a mix of the old and the new tree"
            outcomes["old"] += 1
        cli(*cmd)  # the next rollback finishes or discards what the killed one left
        assert differences(good, state) == []
        assert not [p for p in state.parent.iterdir() if p.name.startswith(STAGING)]
        kept = [p for p in state.parent.iterdir() if p.name.startswith(PREVIOUS)]
        # the tree replaced by this run, plus the killed run's if its swap had happened:
        # the bad tree is kept either way, the good one only when the killed run swapped
        assert len(kept) == (2 if swapped else 1), kept
        assert sum(differences(bad, p) == [] for p in kept) == 1
        assert sum(differences(good, p) == [] for p in kept) == (1 if swapped else 0)
    print(f"rollback, {TRIALS} kill -9 trials: {outcomes}")
    assert sum(outcomes.values()) == TRIALS


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_rollback_with_links_killed_at_random_moments(cli: Cli, tmp_path: Path) -> None:
    """``--reuse link`` shares inodes with the live tree: a kill must still leave it whole.

    Each trial backs up a fresh copy of the good tree (so the snapshot names the
    live inodes and the links are really made), applies the day, then kills the
    rollback; the live tree must be the bad one, untouched, or the good one.
    """
    good = tmp_path / "good"
    sampledata.generate(good, scale=0.01, seed=6)
    state = tmp_path / "live" / "trading"
    repo = api.init(cli.repo, cli.password_file.read_text().strip().encode(),
                    kdf_memory_kib=8192, kdf_time_cost=1)
    cmd: list[str | os.PathLike[str]] = ["rollback", "--target", state, "--quiet", "--reuse",
                                         "link", "--discard-previous"]
    rng = random.Random(8765)
    outcomes = {"old": 0, "new": 0}
    duration = 0.0
    for trial in range(max(3, TRIALS // 2)):
        for p in state.parent.iterdir() if state.parent.exists() else []:
            shutil.rmtree(p)
        shutil.copytree(good, state, symlinks=True)
        api.backup(repo, [state], tags=[f"good-{trial}"])
        sampledata.mutate(state, day=1, seed=6)
        bad = _files(state)
        args = [*cmd, "--tag", f"good-{trial}"]
        if not duration:  # time one whole run first, then kill the others within it
            started = time.monotonic()
            cli(*args)
            duration = time.monotonic() - started
            assert differences(good, state) == []
            continue
        _kill_at_random(cli, args, rng.uniform(0.3, 1.1) * duration)
        if differences(good, state) == []:
            outcomes["new"] += 1
        else:
            assert _files(state) == bad, "the live tree was changed before the swap"
            outcomes["old"] += 1
        cli(*args)
        assert differences(good, state) == []
        assert not [p for p in state.parent.iterdir() if p.name.startswith(STAGING)]
    print(f"rollback --reuse link, kill -9 trials: {outcomes}")
    assert sum(outcomes.values()) == max(3, TRIALS // 2) - 1
