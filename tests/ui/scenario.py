"""The repository the console tests look at, and a running ``deltavault ui`` over it.

Made through the API like a trading system's backups would be: a full
snapshot tagged known-good, a differential after a day of trading, an
incremental whose only change is one planted reconcile break, and a batch
of journal records. The console runs as the installed entry point would, in
a subprocess, on a port it picks and prints.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path

from deltavault import api, sampledata
from deltavault.ledger.journal import Journal
from tests.support.cli import API_PASSWORD, KDF, cli_env

#: the planted break: this position's quantity differs between snapshots 2 and 3
BREAK_QTY_DELTA = 7.0
TRADES = [{"kind": "trade", "symbol": sym, "qty": q, "px": px, "order_id": f"O-{i:04d}"}
          for i, (sym, q, px) in enumerate([("ESZ6", 2, 4801.25), ("NQZ6", -1, 16810.5),
                                            ("ESZ6", 3, 4802.0), ("CLF7", 5, 72.41),
                                            ("GCG7", -2, 2051.3)] * 4)]


@dataclass
class Scenario:
    """What the test made, and what the console must show."""

    root: Path
    repo: Path
    password_file: Path
    snapshots: list[str]  # ids, oldest first: full (known-good), diff, incr
    files: dict[str, bytes]  # path inside the full snapshot → its bytes at backup time
    break_key: tuple[str, str]  # (account, instrument) of the planted break
    journal: list[int]  # leaf indexes of the journal records
    vkey: str
    tampered: dict[Path, bytes] = field(default_factory=dict)


def build(root: Path) -> Scenario:
    """Create the repository under ``root`` (a few seconds)."""
    state = root / "state"
    sampledata.generate(state, scale=0.003, seed=11)
    repo = api.init(root / "repo", API_PASSWORD, **KDF)  # type: ignore[arg-type]
    keep = ["db/positions.sqlite", "logs/trades.jsonl",
            next(str(p.relative_to(state)) for p in sorted((state / "orderbooks").rglob("*.npy")))]
    files = {f"state/{rel}": (state / rel).read_bytes() for rel in keep}
    ids = [api.backup(repo, [state], snapshot_type="full", tags=["known-good"]).snapshot.id]
    sampledata.mutate(state, day=1, seed=11)
    ids.append(api.backup(repo, [state], snapshot_type="diff").snapshot.id)
    db = state / "db" / "positions.sqlite"
    con = sqlite3.connect(db)
    with con:
        account, instrument = con.execute(
            "SELECT account, instrument FROM positions ORDER BY 1, 2 LIMIT 1").fetchone()
        con.execute("UPDATE positions SET qty = qty + ? WHERE account = ? AND instrument = ?",
                    (BREAK_QTY_DELTA, account, instrument))
    con.close()
    ids.append(api.backup(repo, [state], snapshot_type="incr").snapshot.id)
    journal = Journal(repo.ledger, repo.crypto).append(TRADES)
    password_file = root / "password"
    password_file.write_text(API_PASSWORD.decode() + "\n")
    return Scenario(root, root / "repo", password_file, ids, files, (account, instrument),
                    journal, repo.config.ledger_verifier_key)


def deltavault(*args: str | os.PathLike[str], scenario: Scenario,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run the real entry point against the scenario's repository."""
    return subprocess.run([sys.executable, "-m", "deltavault", *map(os.fspath, args)],
                          capture_output=True, text=True, timeout=timeout,
                          env=cli_env(scenario.repo, scenario.password_file))


@dataclass
class Console:
    """A ``deltavault ui`` process, its address, and what it wrote on stderr."""

    proc: subprocess.Popen[str]
    url: str  # http://127.0.0.1:PORT/
    stderr: list[str] = field(default_factory=list)

    def drain(self) -> None:
        """Read stderr on a thread, so a chatty server never blocks on a full pipe."""
        assert self.proc.stderr is not None
        stream = self.proc.stderr
        threading.Thread(target=lambda: self.stderr.extend(stream), daemon=True).start()

    def stop(self) -> int:
        """SIGTERM, as a service manager would; the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


def start_console(scenario: Scenario, *args: str, env: dict[str, str] | None = None) -> Console:
    """Start ``deltavault ui --listen 127.0.0.1:0 ARGS`` and wait for its address line."""
    argv = [sys.executable, "-m", "deltavault", "ui", "--listen", "127.0.0.1:0", *args]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env or cli_env(scenario.repo, scenario.password_file))
    assert proc.stderr is not None
    line = proc.stderr.readline()  # printed once the log is indexed and the port bound
    found = re.search(r"serving (http://\S+/)", line)
    if found is None:
        proc.kill()
        rest = proc.stderr.read()
        raise AssertionError(f"deltavault ui did not start: {line}{rest}")
    console = Console(proc, found.group(1))
    console.drain()
    return console


def tamper_bundles(scenario: Scenario) -> list[Path]:
    """Change one hex digit of a journal commitment in every entry bundle holding one."""
    changed = []
    for path in sorted((scenario.repo / "ledger").rglob("*")):
        if not path.is_file() or "/entries/" not in path.as_posix():
            continue
        data = path.read_bytes()
        at = data.find(b'"commitment":"')
        if at < 0:
            continue
        pos = at + len(b'"commitment":"')
        flipped = b"0" if data[pos:pos + 1] != b"0" else b"1"
        scenario.tampered[path] = data
        path.chmod(0o644)
        path.write_bytes(data[:pos] + flipped + data[pos + 1:])
        changed.append(path)
    return changed


def restore_bundles(scenario: Scenario) -> None:
    """Put back what :func:`tamper_bundles` changed."""
    for path, data in scenario.tampered.items():
        path.write_bytes(data)
    scenario.tampered.clear()


def artifact_dir() -> Path:
    """``test-artifacts/ui`` at the top of the checkout (ignored by git; CI uploads it)."""
    out = Path(__file__).resolve().parents[2] / "test-artifacts" / "ui"
    out.mkdir(parents=True, exist_ok=True)
    return out


def sqlite_counts(data: bytes, tmp: Path) -> dict[str, int]:
    """Row count per table of a database given as bytes (the expected summary)."""
    db = tmp / "expected.sqlite"
    db.write_bytes(data)
    con = sqlite3.connect(db)
    try:
        names = [r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")]
        return {n: con.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        con.close()

