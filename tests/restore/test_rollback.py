"""Rollback swaps a directory atomically, even when killed mid-way."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deltavault import api, sampledata
from deltavault.restore.rollback import exchange
from tests.support.trees import differences

SRC = str(Path(__file__).resolve().parents[1] / "src")


def _env(repo: Path, pwfile: Path) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=SRC, DELTAVAULT_REPO=str(repo),
                DELTAVAULT_PASSWORD_FILE=str(pwfile))


def test_exchange_swaps_two_directories(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    exchange(a, b)
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


def _known_good_then_day1(tmp_path: Path, scale: float, seed: int) -> tuple[Path, Path, Path]:
    """State backed up as known-good, then a trading day; returns (state, good copy, pw)."""
    state = tmp_path / "trading"
    sampledata.generate(state, scale=scale, seed=seed)
    good = tmp_path / "good"
    shutil.copytree(state, good)
    repo = api.init(tmp_path / "repo", b"pw", kdf_memory_kib=8192, kdf_time_cost=1)
    api.backup(repo, [state], snapshot_type="full", tags=["known-good"])
    sampledata.mutate(state, day=1, seed=seed)
    api.backup(repo, [state])
    pw = tmp_path / "pw"
    pw.write_text("pw")
    return state, good, pw


def test_rollback_restores_tagged_state(tmp_path: Path) -> None:
    state, good, pw = _known_good_then_day1(tmp_path, 0.005, 3)
    (state / "db" / "positions.sqlite").write_bytes(b"corrupted by an erroneous trade")
    proc = subprocess.run([sys.executable, "-m", "deltavault", "rollback", "--tag", "known-good",
                           "--target", str(state), "--json"], env=_env(tmp_path / "repo", pw),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert differences(good, state) == []
    assert not list(tmp_path.glob(".deltavault-*")), "staging or previous state left behind"


@pytest.mark.slow
def test_rollback_killed_at_random_moments_leaves_old_or_new(tmp_path: Path) -> None:
    state, good, pw = _known_good_then_day1(tmp_path, 0.01, 5)
    bad = tmp_path / "bad"
    shutil.copytree(state, bad)
    env = _env(tmp_path / "repo", pw)
    cmd = [sys.executable, "-m", "deltavault", "rollback", "--tag", "known-good", "--target",
           str(state), "--quiet"]
    started = time.monotonic()
    subprocess.run(cmd, env=env, check=True, timeout=120)
    duration = time.monotonic() - started
    rng = random.Random(1234)
    outcomes = {"old": 0, "new": 0}
    for _trial in range(10):
        # Reset to the "bad" state, then kill a rollback somewhere in its run.
        shutil.rmtree(state)
        shutil.copytree(bad, state)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.2, duration))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if not differences(good, state):
            outcomes["new"] += 1
        else:
            assert differences(bad, state) == [], "a mix of old and new state"
            outcomes["old"] += 1
        # The next rollback cleans up and completes.
        subprocess.run(cmd, env=env, check=True, timeout=120)
        assert differences(good, state) == []
    assert sum(outcomes.values()) == 10
