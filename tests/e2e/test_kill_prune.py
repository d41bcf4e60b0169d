"""kill -9 during forget, prune (with repacking) and repair index: nothing committed is lost.

Each trial copies a small repository with a few days of history, starts the
real ``deltavault`` entry point on it and SIGKILLs it at a random moment of
its work (seeded): half the trials uniformly from the moment its lock object
appears (the interpreter has started and the repository is open) to the end
of an uninterrupted run of the same command on a copy; the other half
uniformly from its first ledger event (forget's intent, prune-start,
repair-index: where deletions begin) to 20% past that run's last change of
the repository (its destructive phase). Then: ``check``
passes, the keyless audit passes, every live snapshot restores
byte-identically, a prune killed between its start and completion events
is listed by ``check``, and the next run of the operation completes (and
``check`` passes after it). 20 trials per command, split into cases so that
xdist spreads them over the cores.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from deltavault import api
from deltavault.ledger.state import events
from deltavault.ledger.tiles import CHECKPOINT_KEY
from deltavault.ops.forget import forget_snapshots
from tests.support.cli import Cli
from tests.support.history import History, assert_sound, build_history

COMMANDS = {
    "forget": ["forget", "--keep-last", "2"],
    "prune": ["prune", "--max-unused", "5%"],
    "repair": ["repair", "index"],
}
TRIALS_PER_CASE = 5
CASES = 4  # 20 kills per command


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, History]:
    root = tmp_path_factory.mktemp("kill-history")
    base = build_history(root / "base", days=4, scale=0.003)
    forgotten = base.copy_to(root / "forgotten")
    repo = forgotten.open()
    with repo.lock(exclusive=True):
        forget_snapshots(repo, api.snapshots(repo)[:3], "kill trial setup")
    return {"forget": base, "prune": forgotten, "repair": base}


def _types(h: History) -> list[str]:
    return [e.type for _i, e in events(h.open().ledger)]


def _phase(h: History, template: History, before: list[str]) -> str:
    """How far the killed command got, as the ledger and the stored objects tell."""
    new = _types(h)[len(before):]
    if "prune-start" in new:
        return "prune completed" if new[-1] == "prune" else "prune started, not completed"
    if "forget" in new:
        left = len(list((h.repo / "snapshots").iterdir()))
        return "forget recorded, objects deleted" if left == 2 else \
            "forget recorded, objects not all deleted"
    if "repair-index" in new:
        return "repair-index recorded"
    if {p.name for p in (h.repo / "index").iterdir()} != \
            {p.name for p in (template.repo / "index").iterdir()}:
        return "index files written, nothing recorded"
    return "nothing recorded"


def _started(proc: subprocess.Popen[bytes], repo: Path) -> None:
    """Wait until the command holds its lock (its work begins) or has ended."""
    locks = repo / "locks"
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        if locks.is_dir() and any(locks.iterdir()):
            return
        time.sleep(0.005)


def _recorded(proc: subprocess.Popen[bytes], repo: Path, checkpoint: bytes) -> None:
    """Wait until the command's first ledger event is in (its deletions begin) or it ended."""
    path = repo / CHECKPOINT_KEY
    deadline = time.monotonic() + 240
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if path.read_bytes() != checkpoint:
                return
        except FileNotFoundError:
            pass  # between the rename's unlink and link on some file systems
        time.sleep(0.002)


def _state(repo: Path) -> tuple[bytes, int]:
    """What a destructive command changes: the signed checkpoint and the object count."""
    try:
        checkpoint = (repo / CHECKPOINT_KEY).read_bytes()
    except FileNotFoundError:
        checkpoint = b""
    count = sum(len(files) for kind in ("data", "index", "snapshots", "packlists")
                for _dir, _sub, files in os.walk(repo / kind))
    return checkpoint, count


def _windows(cli: Cli, args: list[str], repo: Path) -> tuple[float, float]:
    """From an uninterrupted run: seconds from holding the lock to the end, and from the
    first ledger event to the last change of the repository (the destructive phase)."""
    checkpoint = (repo / CHECKPOINT_KEY).read_bytes()
    proc = cli.popen(*args)
    _started(proc, repo)
    locked = time.monotonic()
    _recorded(proc, repo, checkpoint)
    recorded = last = time.monotonic()
    seen = _state(repo)
    while proc.poll() is None:
        now = _state(repo)
        if now != seen:
            seen, last = now, time.monotonic()
        time.sleep(0.002)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
    return time.monotonic() - locked, max(last - recorded, 0.01)


def _rerun(h: History, command: str) -> None:
    """The next run of the same operation, to completion."""
    repo = h.open()
    if command == "forget":
        api.forget(repo, policy=api.RetentionPolicy(last=2))
    elif command == "prune":
        api.prune(repo)
    else:
        assert api.repair_index(repo).ok


@pytest.mark.slow
@pytest.mark.parametrize("case", range(CASES))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_kill_at_random_moments(templates: dict[str, History], command: str, case: int,
                                tmp_path: Path, password_file: Path) -> None:
    rng = random.Random(f"{command}-{case}")
    template = templates[command]
    args = COMMANDS[command]
    probe = template.copy_to(tmp_path / "probe")
    window, tail = _windows(Cli(probe.repo, password_file), args, probe.repo)
    checkpoint = (template.repo / CHECKPOINT_KEY).read_bytes()
    before = _types(template)
    outcomes: Counter[str] = Counter()
    for trial in range(TRIALS_PER_CASE):
        h = template.copy_to(tmp_path / f"t{trial}")
        cli = Cli(h.repo, password_file)
        proc = cli.popen(*args)
        _started(proc, h.repo)
        delay = rng.uniform(0, window)
        if trial % 2:  # every other kill lands in the destructive phase, after the first event
            _recorded(proc, h.repo, checkpoint)
            delay = rng.uniform(0, 1.2 * tail)
        try:
            proc.wait(timeout=delay)
            outcomes["finished before the kill"] += 1
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            phase = _phase(h, template, before)
            outcomes[f"killed: {phase}"] += 1
            if phase == "prune started, not completed":
                assert api.check(h.open()).interrupted_prunes, "the ledger must say so"
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read() if proc.stderr else ""
        assert_sound(h, tmp_path / "out")
        _rerun(h, command)
        report = api.check(h.open())
        assert report.ok and not report.interrupted_prunes, [p.to_dict() for p in report.problems]
        if command == "prune":
            assert not report.unreferenced_packs and not report.leftover_snapshots
    line = (f"kill -9 {command} case {case}: {dict(outcomes)} (work window {window:.2f}s, "
            f"destructive phase {tail:.2f}s)")
    print("\n" + line)
    report_to = os.environ.get("DELTAVAULT_TEST_KILL_REPORT")  # tallies for a closing note
    if report_to:
        with open(report_to, "a") as fh:
            fh.write(json.dumps({"command": command, "case": case, "window_s": window,
                                 "tail_s": tail, "outcomes": dict(outcomes)}) + "\n")
    assert sum(outcomes.values()) == TRIALS_PER_CASE
