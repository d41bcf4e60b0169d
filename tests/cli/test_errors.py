"""Error UX: one line on stderr, the documented exit code, never a traceback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from deltavault import api
from tests.support.cli import PASSWORD, Cli


def one_error_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    err = proc.stderr.decode()
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("deltavault: error: "), err
    return lines[0]


def test_wrong_password_exit_12(cli_repo: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("guess\n")
    proc = cli_repo("snapshots", env=cli_repo.env(DELTAVAULT_PASSWORD_FILE=str(bad)), expect=12)
    assert "wrong password" in one_error_line(proc)


def test_missing_repository_exit_10(cli: Cli) -> None:
    proc = cli("snapshots", expect=10)
    assert "no repository" in one_error_line(proc)
    cli.repo.mkdir()
    proc = cli("backup", "--stdin", input=b"x", expect=10)
    one_error_line(proc)


def test_locked_repository_exit_11(cli_repo: Cli, tmp_path: Path) -> None:
    repo = api.open(cli_repo.repo, PASSWORD.encode())
    with repo.lock(exclusive=True):
        proc = cli_repo("backup", "--stdin", input=b"x", expect=11)
        assert "locked" in one_error_line(proc)
        proc = cli_repo("check", expect=11)
        one_error_line(proc)
    cli_repo("backup", "--stdin", input=b"x")


def test_damaged_repository_exit_13(cli_repo: Cli) -> None:
    cli_repo("backup", "--stdin", input=b"x")
    (snap,) = (cli_repo.repo / "snapshots").iterdir()
    data = bytearray(snap.read_bytes())
    data[40] ^= 1
    snap.write_bytes(bytes(data))
    proc = cli_repo("snapshots", expect=13)
    assert "does not match its name" in one_error_line(proc)


@pytest.mark.parametrize("args,fragment", [
    (["backup", "--type", "weekly", "--stdin"], "unknown backup type"),
    (["backup", "/nonexistent/path/for/sure"], "no such file"),
    (["restore", "nosuchsnapshot", "-t", "/tmp/x"], "no snapshot matches"),
    (["check", "--read-data-subset", "lots"], "percentage"),
    (["tag", "latest"], "give --add"),
])
def test_bad_arguments_one_line(cli_repo: Cli, args: list[str], fragment: str) -> None:
    cli_repo("backup", "--stdin", input=b"x")
    proc = cli_repo(*args, expect=1)
    assert fragment in one_error_line(proc)


@pytest.mark.parametrize("args", [["backup", "--no-such-option"], ["frobnicate"],
                                  ["restore", "latest"], ["init", "--kdf-memory", "lots"]])
def test_usage_errors_exit_2_without_traceback(cli: Cli, args: list[str]) -> None:
    proc = cli(*args, expect=2)
    err = proc.stderr.decode()
    assert "Traceback" not in err and "error" in err.lower()


def test_no_password_without_a_terminal(cli_repo: Cli) -> None:
    env = cli_repo.env()
    del env["DELTAVAULT_PASSWORD_FILE"]
    proc = cli_repo("snapshots", env=env, expect=1)
    assert "no password given" in one_error_line(proc)
    proc = cli_repo("snapshots", env=dict(env, DELTAVAULT_PASSWORD=PASSWORD))
    assert proc.returncode == 0
