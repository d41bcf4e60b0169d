"""kill -9 during journal appends: the log always verifies, at the old or a new size."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deltavault import api
from deltavault.ledger.verify import verify_log

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.mark.slow
def test_journal_append_killed_at_random_moments(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    api.init(repo_dir, b"pw", kdf_memory_kib=8192, kdf_time_cost=1)
    pw = tmp_path / "pw"
    pw.write_text("pw")
    env = dict(os.environ, PYTHONPATH=SRC, DELTAVAULT_REPO=str(repo_dir),
               DELTAVAULT_PASSWORD_FILE=str(pw))
    records = "".join(json.dumps({"trade_id": i, "qty": i % 7, "px": f"{100 + i / 100:.2f}"})
                      + "\n" for i in range(5000)).encode()
    cmd = [sys.executable, "-m", "deltavault", "journal", "append"]
    rng = random.Random(7)
    sizes = []
    for _trial in range(8):
        proc = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        assert proc.stdin is not None
        proc.stdin.write(records)
        proc.stdin.close()
        time.sleep(rng.uniform(0.3, 2.5))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        repo = api.open(repo_dir, b"pw")
        result = verify_log(repo.ledger)
        assert result.ok, result.problems
        sizes.append(repo.ledger.size)
        assert repo.ledger.size % 1000 == 0  # whole batches only: old size or a new one
    assert sizes == sorted(sizes) and sizes[-1] > 0, sizes  # some kills came after commits
    # After all the kills, an append still completes on top of what was committed.
    few = b"".join(records.splitlines(keepends=True)[:5])
    done = subprocess.run([*cmd, "--json"], env=env, input=few, capture_output=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    repo = api.open(repo_dir, b"pw")
    assert verify_log(repo.ledger).ok
    assert repo.ledger.size == sizes[-1] + 5
