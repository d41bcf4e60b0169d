"""``audit`` and ``ledger verify`` refuse a deleted or rolled-back history (issue 11).

Found by the storage attacker: with ``ledger/checkpoint`` deleted, ``audit``
verified an empty log and exited 0; with the checkpoint replaced by an older
(validly signed) one, ``audit`` run with the password accepted the prefix
although this client had verified a longer log. Through the installed script.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import Cli

SCRIPT = Path(sys.executable).with_name("deltavault")  #: the installed console script


@pytest.fixture
def cli(tmp_path: Path, password_file: Path) -> Cli:
    """A fresh repository of its own (``cli_repo`` inits it), not the ops history."""
    return Cli(tmp_path / "fresh", password_file)


def script(cli: Cli, *args: str, keyless: bool = False) -> subprocess.CompletedProcess[bytes]:
    env = cli.env()
    if keyless:
        env = {k: v for k, v in env.items() if not k.startswith("DELTAVAULT_PASSWORD")}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, env=env, timeout=240,
                          check=False)


@pytest.fixture
def backed_up(cli_repo: Cli, tmp_path: Path) -> tuple[Cli, str, bytes]:
    """Two backups; returns the runner, the verifier key and the first checkpoint."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "a").write_bytes(os.urandom(5000))
    cli_repo("backup", str(src))
    first = (cli_repo.repo / "ledger" / "checkpoint").read_bytes()
    (src / "b").write_bytes(os.urandom(5000))
    cli_repo("backup", str(src))
    vkey = json.loads((cli_repo.repo / "config").read_bytes())["ledger"]["verifier_key"]
    return cli_repo, vkey, first


@pytest.mark.parametrize("keyless", [False, True])
def test_deleted_checkpoint_fails_audit_and_verify(backed_up: tuple[Cli, str, bytes],
                                                   keyless: bool) -> None:
    cli, vkey, _first = backed_up
    (cli.repo / "ledger" / "checkpoint").unlink()
    for args in (["audit", "--key", vkey], ["ledger", "verify", "--key", vkey]):
        proc = script(cli, *args, keyless=keyless)
        err = proc.stderr.decode()
        assert proc.returncode == 13, (args, proc.returncode, err, proc.stdout)
        assert "ledger/checkpoint" in err and "Traceback" not in err, err


def test_older_checkpoint_fails_audit_with_the_password(
        backed_up: tuple[Cli, str, bytes]) -> None:
    cli, vkey, first = backed_up
    cp = cli.repo / "ledger" / "checkpoint"
    cp.chmod(0o644)
    cp.write_bytes(first)  # validly signed, a prefix of the log: only memory tells
    proc = script(cli, "audit", "--key", vkey)
    err = proc.stderr.decode()
    assert proc.returncode == 13, (proc.returncode, err, proc.stdout)
    assert "ledger/checkpoint" in err and "rolled back" in err, err
