"""Every documented exit code, produced by the real entry points (README "Exit codes").

Each case runs the installed ``deltavault`` console script in a subprocess —
as a cron job or a CI gate would — with ``--json``, and checks the exit
code, the one ``deltavault: error:`` line on stderr and the JSON error
document on stdout. A representative case per code also runs without
``--json`` through both entry points (the script and ``python -m
deltavault``). Issue 11: a failed ``audit`` exited 0 through the script
because ``run()`` dropped the code ``typer.Exit`` carried; an in-process
runner could not see it, so nothing here runs in-process.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from deltavault import api, sampledata
from deltavault.ledger.journal import Journal
from tests.support.cli import ENTRY_POINTS, KDF, PASSWORD, Cli, cli_env, entry_argv
from tests.support.servers import free_ports
from tests.support.trees import write_random


@dataclass(frozen=True)
class Case:
    """One command line and the exit code it must end with."""

    code: int
    args: tuple[str, ...]
    #: (repository placeholder, exclusive?) whose lock the test holds meanwhile
    lock: tuple[str, bool] | None = None
    wrong_password: bool = False
    #: a fragment the error line must contain
    says: str = ""

    @property
    def id(self) -> str:
        words = [a for a in self.args if not a.startswith(("{", "-")) and "/" not in a]
        return f"{self.code}-{'-'.join(words[:2])}"


def case(code: int, *args: str, **kw: object) -> Case:
    return Case(code, args, **kw)  # type: ignore[arg-type]


CASES = [
    # 0: success
    case(0, "audit", "--repo", "{H}"),
    case(0, "ledger", "verify", "--repo", "{H}"),
    case(0, "ledger", "verify-proof", "{proof}", "--key", "{vkey}"),
    case(0, "ledger", "consistency", "{oldcp}", "--repo", "{H}"),
    case(0, "reconcile", "--repo", "{H}", "--left", "snapshot:latest", "--right", "sqlite:{db}"),
    case(0, "check", "--repo", "{H}"),
    case(0, "restore", "latest", "--repo", "{H}", "--target", "{tmp}/out"),
    case(0, "backup", "--repo", "{S}", "{state}/config"),
    case(0, "copy", "--from-repo", "{H}", "--to-repo", "{tmp}/replica"),
    case(0, "repair", "--repo", "{D2}", "--from-repo", "{R}"),
    # 1: the caller asked for something impossible; reconcile found breaks
    case(1, "restore", "nosuchsnapshot", "--repo", "{H}", "--target", "{tmp}/out",
         says="no snapshot matches"),
    case(1, "backup", "--repo", "{S}", "{tmp}/no-such-dir", says="no such file"),
    case(1, "copy", "--from-repo", "{H}", says="no destination"),
    case(1, "repair", "--repo", "{H}", says="no replica"),
    case(1, "reconcile", "--repo", "{H}", "--left", "snapshot:latest", "--right",
         "sqlite:{broken}", says="break"),
    case(1, "reconstruct", "--repo", "{H}", "--at", "yesterday", "--target", "{tmp}/r",
         says="not RFC 3339"),
    case(1, "check", "--repo", "{H}", "--read-data-subset", "lots", says="percentage"),
    case(1, "ledger", "verify-proof", "{tmp}/missing.proof", "--key", "{vkey}",
         says="missing.proof"),
    case(1, "ledger", "consistency", "{tmp}/missing.checkpoint", "--repo", "{H}"),
    case(1, "ledger", "witness-key", "new", "--out", "{proof}", says="already exists"),
    # 2: usage
    case(2, "backup", "--no-such-option"),
    case(2, "restore", "latest", "--repo", "{H}", says="give one of --target"),
    case(2, "ledger", "verify-proof", "{proof}", says="--key"),
    case(2, "ledger", "consistency"),
    case(2, "audit", "unexpected-argument"),
    case(2, "check", "--bogus"),
    case(2, "copy", "--no-such-option"),
    case(2, "repair", "--frobnicate"),
    case(2, "reconcile", "--left", "snapshot:latest"),
    case(2, "dump", "latest", "state/config/risk.json", "--repo", "{H}", says="--output"),
    case(2, "--object-lock-mode", "sometimes", "snapshots", says="compliance or governance"),
    case(2, "frobnicate", says="No such command"),
    # 4: status --max-age: the newest snapshot is older than the limit
    case(4, "status", "--repo", "{H}", "--max-age", "1s", says="older than 1s"),
    case(4, "status", "--repo", "{E}", "--max-age", "26h", says="no snapshot"),
    # 10: no repository there
    case(10, "audit", "--repo", "{none}"),
    case(10, "ledger", "verify", "--repo", "{none}"),
    case(10, "ledger", "consistency", "{oldcp}", "--repo", "{none}"),
    case(10, "check", "--repo", "{none}"),
    case(10, "restore", "latest", "--repo", "{none}", "--target", "{tmp}/out"),
    case(10, "backup", "--repo", "{none}", "{state}/config"),
    case(10, "copy", "--from-repo", "{none}", "--to-repo", "{tmp}/replica"),
    case(10, "repair", "--repo", "{none}", "--from-repo", "{R}"),
    case(10, "reconcile", "--repo", "{none}", "--left", "snapshot:latest", "--right",
         "sqlite:{db}"),
    case(10, "snapshots", "--repo", "{none}", says="no repository"),
    case(10, "ledger", "key", "--repo", "{empty}", says="no repository"),
    # 11: locked by another process (this test)
    case(11, "backup", "--repo", "{S}", "{state}/config", lock=("{S}", True), says="locked"),
    case(11, "check", "--repo", "{H}", lock=("{H}", True)),
    case(11, "copy", "--from-repo", "{H}", "--to-repo", "{tmp}/replica", lock=("{H}", True)),
    case(11, "repair", "--repo", "{H}", "--from-repo", "{R}", lock=("{H}", False)),
    case(11, "prune", "--repo", "{H}", lock=("{H}", False)),
    case(11, "forget", "--repo", "{H}", "--keep-last", "1", lock=("{H}", False)),
    # 12: wrong password
    case(12, "snapshots", "--repo", "{H}", wrong_password=True, says="wrong password"),
    case(12, "backup", "--repo", "{S}", "{state}/config", wrong_password=True),
    case(12, "restore", "latest", "--repo", "{H}", "--target", "{tmp}/out",
         wrong_password=True),
    case(12, "check", "--repo", "{H}", wrong_password=True),
    case(12, "copy", "--from-repo", "{H}", "--to-repo", "{tmp}/replica", wrong_password=True),
    case(12, "repair", "--repo", "{H}", "--from-repo", "{R}", wrong_password=True),
    case(12, "reconcile", "--repo", "{H}", "--left", "snapshot:latest", "--right",
         "sqlite:{db}", wrong_password=True),
    # 13: damaged or inconsistent repository, ledger or proof
    case(13, "audit", "--repo", "{D}", says="does not match"),
    case(13, "ledger", "verify", "--repo", "{H}", "--require-witness", "{wkey}",
         says="cosignature"),
    case(13, "ledger", "verify", "--repo", "{C}"),
    case(13, "ledger", "verify-proof", "{badproof}", "--key", "{vkey}"),
    case(13, "ledger", "consistency", "{othercp}", "--repo", "{H}"),
    case(13, "reconcile", "--repo", "{D}", "--left", "snapshot:latest", "--right",
         "sqlite:{db}"),
    case(13, "check", "--repo", "{D}", "--read-data", says="problem"),
    case(13, "restore", "latest", "--repo", "{D}", "--target", "{tmp}/out"),
    case(13, "backup", "--repo", "{C}", "{state}/config"),
    case(13, "copy", "--from-repo", "{D}", "--to-repo", "{tmp}/replica", says="verification"),
    case(13, "repair", "--repo", "{D}", "--from-repo", "{RD}", says="problem"),
    # 14: the storage backend failed (nothing listens on the REST port)
    case(14, "audit", "--repo", "{rest}", says="cannot reach"),
    case(14, "ledger", "verify", "--repo", "{rest}"),
    case(14, "check", "--repo", "{rest}"),
    case(14, "restore", "latest", "--repo", "{rest}", "--target", "{tmp}/out"),
    case(14, "backup", "--repo", "{rest}", "{state}/config"),
    case(14, "copy", "--from-repo", "{H}", "--to-repo", "{rest}"),
    case(14, "repair", "--repo", "{H}", "--from-repo", "{rest}"),
    case(14, "reconcile", "--repo", "{rest}", "--left", "snapshot:latest", "--right",
         "sqlite:{db}"),
    case(14, "snapshots", "--repo", "{rest}"),
]

#: one case per code, also run without --json through both entry points
REPRESENTATIVE = [
    case(0, "check", "--repo", "{H}"),
    case(1, "restore", "nosuchsnapshot", "--repo", "{H}", "--target", "{tmp}/out"),
    case(2, "frobnicate"),
    case(4, "status", "--repo", "{H}", "--max-age", "1s"),
    case(10, "snapshots", "--repo", "{none}"),
    case(11, "check", "--repo", "{H}", lock=("{H}", True)),
    case(12, "snapshots", "--repo", "{H}", wrong_password=True),
    case(13, "audit", "--repo", "{D}"),
    case(13, "ledger", "verify", "--repo", "{H}", "--require-witness", "{wkey}"),
    case(14, "snapshots", "--repo", "{rest}"),
]


@dataclass
class World:
    """Repositories in every state the cases need, made once per module."""

    root: Path
    places: dict[str, str] = field(default_factory=dict)
    password_file: Path = Path()
    bad_password_file: Path = Path()


def _flip_packs(repo: Path) -> list[Path]:
    """Change one byte in every 256 of every pack: no blob stays intact."""
    packs = sorted(p for p in (repo / "data").rglob("*") if p.is_file())
    for p in packs:
        data = bytearray(p.read_bytes())
        for i in range(0, len(data), 256):
            data[i] ^= 0x40
        p.chmod(0o644)
        p.write_bytes(bytes(data))
    return packs


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("exit-codes")
    w = World(root)
    w.password_file = root / "password"
    w.password_file.write_text(PASSWORD + "\n")
    w.bad_password_file = root / "bad-password"
    w.bad_password_file.write_text("not the password\n")
    state = root / "state"
    sampledata.generate(state, scale=0.002, seed=3)
    db = state / "db" / "positions.sqlite"
    broken = root / "broken.sqlite"
    shutil.copy(db, broken)
    con = sqlite3.connect(broken)
    with con:
        con.execute("UPDATE positions SET qty = qty + 1 WHERE rowid = "
                    "(SELECT min(rowid) FROM positions)")
    con.close()

    healthy = root / "H"
    repo = api.init(healthy, PASSWORD.encode(), **KDF)  # type: ignore[arg-type]
    api.backup(repo, [state], snapshot_type="full")
    journal = Journal(repo.ledger, repo.crypto)
    (index,) = journal.append([{"trade_id": 7, "qty": "2"}])
    (root / "trade.proof").write_text(journal.prove(index))
    (root / "bad.proof").write_text(journal.prove(index).replace(f"index {index}",
                                                                 f"index {index - 1}"))
    (root / "old.checkpoint").write_bytes((healthy / "ledger" / "checkpoint").read_bytes())
    api.copy(repo, root / "R")
    other = api.init(root / "other", PASSWORD.encode(), **KDF)  # type: ignore[arg-type]
    api.backup(other, [state / "config"])
    (root / "other.checkpoint").write_bytes((root / "other/ledger/checkpoint").read_bytes())

    for name in ("D", "D2"):  # every pack damaged
        shutil.copytree(healthy, root / name)
        _flip_packs(root / name)
    shutil.copytree(root / "R", root / "RD")  # a replica with the same damage
    _flip_packs(root / "RD")
    shutil.copytree(healthy, root / "C")  # a checkpoint whose signature does not verify
    cp = root / "C" / "ledger" / "checkpoint"
    cp.chmod(0o644)
    text = cp.read_bytes()
    cp.write_bytes(text[:-10] + bytes([text[-10] ^ 1]) + text[-9:])
    api.init(root / "S", PASSWORD.encode(), **KDF)  # type: ignore[arg-type]
    api.init(root / "E", PASSWORD.encode(), **KDF)  # type: ignore[arg-type]  # stays empty
    (root / "empty").mkdir()
    write_random(state / "config" / "extra.bin", 1000, seed=1)

    witness_vkey = subprocess.run(
        [*entry_argv(), "ledger", "witness-key", "new", "--name", "w.example", "--out",
         str(root / "w.key")], capture_output=True, text=True, check=True).stdout.strip()
    (port,) = free_ports(1)
    time.sleep(1.1)  # H's newest snapshot is now older than `status --max-age 1s`
    w.places = {
        "H": str(healthy), "D": str(root / "D"), "D2": str(root / "D2"), "R": str(root / "R"),
        "RD": str(root / "RD"), "C": str(root / "C"), "S": str(root / "S"),
        "E": str(root / "E"),
        "none": str(root / "no-repository-here"), "empty": str(root / "empty"),
        "rest": f"rest:http://127.0.0.1:{port}/", "state": str(state), "db": str(db),
        "broken": str(broken), "proof": str(root / "trade.proof"),
        "badproof": str(root / "bad.proof"), "oldcp": str(root / "old.checkpoint"),
        "othercp": str(root / "other.checkpoint"),
        "vkey": repo.config.ledger_verifier_key, "wkey": witness_vkey,
    }
    return w


def run_case(world: World, c: Case, tmp: Path, *, as_json: bool,
             entry: str = "script") -> subprocess.CompletedProcess[str]:
    places = dict(world.places, tmp=str(tmp))
    args = [a.format(**places) for a in c.args] + (["--json"] if as_json else [])
    env = cli_env(Path(places["H"]), world.bad_password_file if c.wrong_password
                  else world.password_file)
    del env["DELTAVAULT_REPO"]  # every case names its repository
    # a client cache of its own: what an earlier case verified must not decide this one
    env["DELTAVAULT_CACHE_DIR"] = str(tmp / "client-cache")
    with ExitStack() as stack:
        if c.lock is not None:
            held = api.open(c.lock[0].format(**places), PASSWORD.encode())
            stack.enter_context(held.lock(exclusive=c.lock[1]))
        return subprocess.run([*entry_argv(entry), *args], capture_output=True, text=True,
                              env=env, timeout=240, check=False)


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one error line: last on stderr; anything before it is a warning or a report."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines, "no error line on stderr"
    errors = [ln for ln in lines if ln.startswith("deltavault: error: ")]
    assert errors == [lines[-1]], proc.stderr
    return lines[-1].removeprefix("deltavault: error: ")


@pytest.mark.parametrize("c", CASES, ids=[c.id for c in CASES])
def test_exit_code_with_json(world: World, c: Case, tmp_path: Path) -> None:
    proc = run_case(world, c, tmp_path, as_json=True)
    assert proc.returncode == c.code, (c.args, proc.stdout[-2000:], proc.stderr[-2000:])
    doc = json.loads(proc.stdout)  # exactly one JSON document, success or not
    if c.code == 0:
        assert "deltavault: error" not in proc.stderr
        assert not (isinstance(doc, dict) and doc.get("ok") is False), doc
        return
    line = error_line(proc)
    assert c.says in line, line
    assert isinstance(doc, dict), doc
    assert doc["ok"] is False and doc["exit_code"] == c.code and doc["kind"], doc
    assert doc["error"] == line


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("c", REPRESENTATIVE, ids=[c.id for c in REPRESENTATIVE])
def test_exit_code_plain(world: World, c: Case, entry: str, tmp_path: Path) -> None:
    proc = run_case(world, c, tmp_path, as_json=False, entry=entry)
    assert proc.returncode == c.code, (entry, c.args, proc.stderr[-2000:])
    if c.code:
        error_line(proc)
        assert not proc.stdout.lstrip().startswith("{")  # no JSON unless asked


def _without_dac_override() -> None:
    """Child setup: drop CAP_DAC_OVERRIDE/CAP_DAC_READ_SEARCH, so root obeys mode bits."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_exit_3_unreadable_source_file(cli_repo: Cli, tmp_path: Path, entry: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "ok.txt").write_text("fine\n")
    (src / "locked.txt").write_text("secret\n")
    os.chmod(src / "locked.txt", 0o000)
    for path in (cli_repo.repo, cli_repo.password_file):  # the repository stays usable
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    proc = subprocess.run([*entry_argv(entry), "backup", str(src), "--json"],
                          env=cli_repo.env(), capture_output=True, text=True, timeout=240,
                          preexec_fn=_without_dac_override, check=False)
    assert proc.returncode == 3, proc.stderr
    assert "could not be read" in error_line(proc)
    doc = json.loads(proc.stdout)  # the snapshot's summary, marked as failed
    assert doc["ok"] is False and doc["exit_code"] == 3 and doc["kind"] == "SourceError"
    assert len(doc["errors"]) == 1 and doc["snapshot_id"]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_exit_130_on_sigint_during_backup(cli_repo: Cli, entry: str) -> None:
    """SIGINT to a running backup: exit 130, one line, and its lock is gone.

    The backup reads a stream that never ends (like ``pg_dump | deltavault
    backup --stdin``), so only the signal can stop it.
    """
    argv = [*entry_argv(entry), "backup", "--stdin"]
    proc = subprocess.Popen(argv, env=cli_repo.env(), stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    stop = threading.Event()
    written = [0]

    def feed() -> None:
        assert proc.stdin is not None
        block = os.urandom(256 << 10)
        with contextlib.suppress(OSError):  # the pipe breaks once deltavault is gone
            while not stop.is_set():
                proc.stdin.write(block)
                proc.stdin.flush()
                written[0] += len(block)

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        locks = cli_repo.repo / "locks"
        deadline = time.monotonic() + 120
        # running: it holds its lock and reads (a pipe buffers far less than 4 MiB)
        while not (written[0] >= 4 << 20 and locks.is_dir() and any(locks.iterdir())):
            assert proc.poll() is None and time.monotonic() < deadline, "backup did not start"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.stdout is not None and proc.stderr is not None
    out, err = proc.stdout.read(), proc.stderr.read().decode()
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "deltavault: interrupted", err
    assert "Traceback" not in err
    assert not any(locks.iterdir())
    assert out == b""
