"""Damage a reader meets is refused with the damaged object named (issue 11).

Found by the storage attacker (tests/e2e/test_storage_attacker.py); each case
runs the installed ``deltavault`` script, as a user's shell or cron job would:
a committed snapshot whose object was deleted is neither left out of
``snapshots`` nor skipped by ``restore latest``; a pack, a key file, a lock or
the checkpoint that fails authentication is named in the one error line.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import Cli
from tests.support.trees import write_random

SCRIPT = Path(sys.executable).with_name("deltavault")  #: the installed console script


def run(cli: Cli, *args: str, expect: int) -> str:
    """The installed script; returns its one error line (exit ``expect``)."""
    proc = subprocess.run([str(SCRIPT), *args], capture_output=True, env=cli.env(),
                          timeout=240, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == expect, (proc.returncode, err, proc.stdout[-2000:])
    assert "Traceback" not in err, err
    lines = [x for x in err.splitlines() if x.startswith("deltavault: error:")]
    assert len(lines) == (expect != 0), err
    return lines[0] if lines else ""


@pytest.fixture
def two(cli_repo: Cli, tmp_path: Path) -> tuple[Cli, list[str]]:
    """A repository with two snapshots of a changing tree (ids oldest first)."""
    src = tmp_path / "src"
    src.mkdir()
    ids = []
    for step in range(2):
        write_random(src / f"f{step}.bin", 100_000, step)
        ids.append(cli_repo.json("backup", str(src))["snapshot_id"])
    return cli_repo, ids


def flip(path: Path, pos: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    i = len(data) // 2 if pos is None else pos
    data[i] ^= 1
    path.chmod(0o644)
    path.write_bytes(bytes(data))


def test_missing_committed_snapshot_is_not_left_out(two: tuple[Cli, list[str]],
                                                    tmp_path: Path) -> None:
    cli, ids = two
    (cli.repo / "snapshots" / ids[1]).unlink()
    for args in (["snapshots", "--json"],
                 ["restore", "latest", "--target", str(tmp_path / "out")]):
        line = run(cli, *args, expect=13)
        assert f"snapshots/{ids[1]} is missing" in line, line
    assert not (tmp_path / "out").exists()  # the older snapshot was not restored instead
    run(cli, "forget", ids[1], expect=0)  # accepting the loss still works
    assert [s["id"] for s in cli.json("snapshots")] == [ids[0]]


def test_damaged_blob_names_its_pack(two: tuple[Cli, list[str]], tmp_path: Path) -> None:
    cli, _ids = two
    packs = sorted((cli.repo / "data").rglob("*"), key=lambda p: p.stat().st_size)
    pack = [p for p in packs if p.is_file()][-1]
    flip(pack, 64)  # inside the first blob's ciphertext, not the header
    line = run(cli, "restore", "latest", "--target", str(tmp_path / "out"), expect=13)
    assert f"data/{pack.parent.name}/{pack.name}" in line, line


def test_unreadable_lock_is_named(cli_repo: Cli) -> None:
    junk = cli_repo.repo / "locks" / ("ab" * 32)
    junk.parent.mkdir(exist_ok=True)
    junk.write_bytes(b"not a lock")
    line = run(cli_repo, "check", expect=11)
    assert f"locks/{'ab' * 32} cannot be read" in line, line


def test_damaged_key_file_is_named(cli_repo: Cli) -> None:
    key = next((cli_repo.repo / "keys").iterdir())
    flip(key)
    line = run(cli_repo, "snapshots", expect=12)
    assert f"damaged key file(s) skipped: keys/{key.name}" in line, line


def test_checkpoint_signature_names_the_checkpoint(two: tuple[Cli, list[str]]) -> None:
    cli, _ids = two
    cp = cli.repo / "ledger" / "checkpoint"
    data = bytearray(cp.read_bytes())
    # one character of the base64 signature changed to another base64 character (a bit
    # flip could make it '@' or '.', which the parser refuses before any signature check)
    i = len(data) - 10
    data[i] = ord("A") if data[i] != ord("A") else ord("B")
    cp.chmod(0o644)
    cp.write_bytes(bytes(data))
    line = run(cli, "snapshots", expect=13)
    assert "ledger/checkpoint: " in line, line
    # the keyless audit and ledger verify report the same object
    vkey = json.loads((cli.repo / "config").read_bytes())["ledger"]["verifier_key"]
    assert "ledger/checkpoint" in run(cli, "audit", "--key", vkey, expect=13)
