"""``check --read-data`` reads every journal object the ledger names (issue 11).

Found by the storage attacker: two journal objects swapped (or one deleted)
passed ``check`` with exit 0 although ``journal show`` then fails. Run
through the installed ``deltavault`` script.
"""

from __future__ import annotations

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


def journal(cli: Cli, first: int, n: int) -> None:
    records = "".join(f'{{"trade": {first + i}, "qty": {i}}}\n' for i in range(n))
    cli("journal", "append", input=records.encode())


def check(cli: Cli) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(SCRIPT), "check", "--read-data", "--json"], capture_output=True,
                          env=cli.env(), timeout=240, check=False)


@pytest.fixture
def journaled(cli_repo: Cli) -> tuple[Cli, list[Path]]:
    """Two journal batches (two objects)."""
    before: set[Path] = set()
    objects = []
    for first in (0, 100):
        journal(cli_repo, first, 5)
        now = set((cli_repo.repo / "journal").rglob("*"))
        objects += [p for p in now - before if p.is_file()]
        before = now
    assert len(objects) == 2
    return cli_repo, objects


def test_intact_journal_is_read(journaled: tuple[Cli, list[Path]]) -> None:
    cli, _objects = journaled
    proc = check(cli)
    assert proc.returncode == 0, proc.stderr
    assert b'"journal_objects": 2' in proc.stdout


@pytest.mark.parametrize("attack", ["swap", "delete", "flip"])
def test_damaged_journal_object_fails_check(journaled: tuple[Cli, list[Path]],
                                            attack: str) -> None:
    cli, (a, b) = journaled
    data_a, data_b = a.read_bytes(), b.read_bytes()
    for p in (a, b):
        p.chmod(0o644)
    if attack == "swap":
        a.write_bytes(data_b)
        b.write_bytes(data_a)
    elif attack == "delete":
        a.unlink()
    else:
        a.write_bytes(data_a[:40] + bytes([data_a[40] ^ 1]) + data_a[41:])
    proc = check(cli)
    err = proc.stderr.decode()
    assert proc.returncode == 13, (proc.returncode, err)
    assert "Traceback" not in err
    assert f"journal/{a.name}" in proc.stdout.decode(), proc.stdout
