"""kill -9 during forget, prune (with repacking) and repair index: nothing committed is lost.

Each trial copies a small repository with a few days of history, starts the
real ``deltavault`` entry point on it and SIGKILLs it at a random moment
(seeded; spread from the end of interpreter start-up to the end of an
uninterrupted run of the same command). Then: ``check`` passes, the keyless
audit passes, every live snapshot restores byte-identically, the ledger says
how far the command got, and the next run of the command completes (and
``check --read-data`` passes after it). 20 trials per command, split into
cases so that xdist spreads them over the cores.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from deltavault import api
from deltavault.ledger.state import events
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


def _timed(cli: Cli, args: list[str]) -> float:
    started = time.monotonic()
    cli(*args)
    return time.monotonic() - started


@pytest.mark.slow
@pytest.mark.parametrize("case", range(CASES))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_kill_at_random_moments(templates: dict[str, History], command: str, case: int,
                                tmp_path: Path, password_file: Path) -> None:
    rng = random.Random(f"{command}-{case}")
    template = templates[command]
    args = COMMANDS[command]
    probe = template.copy_to(tmp_path / "probe")
    startup = _timed(Cli(probe.repo, password_file), ["version"])
    full = _timed(Cli(probe.repo, password_file), args)
    before = _types(template)
    outcomes: Counter[str] = Counter()
    for trial in range(TRIALS_PER_CASE):
        h = template.copy_to(tmp_path / f"t{trial}")
        cli = Cli(h.repo, password_file)
        proc = cli.popen(*args)
        delay = rng.uniform(0.8 * startup, 1.05 * full)
        try:
            proc.wait(timeout=delay)
            outcomes["finished before the kill"] += 1
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            outcomes[f"killed: {_phase(h, template, before)}"] += 1
        assert proc.returncode in (0, -signal.SIGKILL), proc.stderr.read() if proc.stderr else ""
        assert_sound(h, tmp_path / "out")
        cli(*args)  # the next run completes
        report = api.check(h.open(), read_data=True)
        assert report.ok and not report.interrupted_prunes, [p.to_dict() for p in report.problems]
        if command == "prune":
            assert not report.unreferenced_packs and not report.leftover_snapshots
    print(f"\nkill -9 {command} case {case}: {dict(outcomes)} "
          f"(start-up {startup:.2f}s, full run {full:.2f}s)")
    assert sum(outcomes.values()) == TRIALS_PER_CASE
