"""Readers hold shared locks, through the real script: a prune's exclusive lock stops them.

Each reader command exits 11 (RepositoryLocked) while another process holds
the exclusive lock, and runs once it is released. The keyless ``audit``
cannot write a lock (lock objects are encrypted) and runs regardless.
"""

from __future__ import annotations

from pathlib import Path

from deltavault import api
from tests.support.cli import PASSWORD, Cli


def test_readers_wait_for_an_exclusive_lock(cli_repo: Cli, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("data\n")
    cli_repo("backup", src)
    cli_repo("backup", src)
    commands: list[tuple[str | Path, ...]] = [
        ("restore", "latest", "--target", tmp_path / "out"),
        ("dump", "latest", "src/f.txt"), ("ls", "latest"), ("diff", "latest~1", "latest"),
        ("check",), ("rollback", "latest", "--target", tmp_path / "live"),
        ("audit",),  # with the password in the environment: it locks too
    ]
    prune = api.open(cli_repo.repo, PASSWORD.encode())
    with prune.lock(exclusive=True):
        for args in commands:
            proc = cli_repo(*args, expect=11)
            assert b"repository is locked: exclusive lock" in proc.stderr, args
        keyless = cli_repo.env()
        del keyless["DELTAVAULT_PASSWORD_FILE"]
        cli_repo("audit", env=keyless)  # no password, no lock: runs
    cli_repo("restore", "latest", "--target", tmp_path / "out")  # and once released, they run
