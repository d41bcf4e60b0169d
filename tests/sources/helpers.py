"""Shared helpers for the source, reconstruct and reconcile tests."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from typer.testing import CliRunner

from deltavault import api
from deltavault.repo.repository import Repository

PASSWORD = b"sources-test-password"


def make_repo(path: Path) -> Repository:
    """A fresh repository with cheap key derivation."""
    return api.init(path, PASSWORD, kdf_memory_kib=8192, kdf_time_cost=1)


@dataclass
class CliResult:
    """Exit code and output of one CLI run, as ``deltavault.cli.main.run`` reports them."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli(repo: Path, *args: str, input: str | None = None) -> CliResult:
    """Run the CLI in-process as a user would, errors mapped to exit codes like ``run()``."""
    from deltavault.cli.main import app
    from deltavault.errors import DeltavaultError

    runner = CliRunner()
    env = {"DELTAVAULT_REPO": str(repo), "DELTAVAULT_PASSWORD": PASSWORD.decode()}
    res = runner.invoke(app, list(args), env=env, input=input)
    exc = res.exception
    if isinstance(exc, DeltavaultError):
        return CliResult(exc.exit_code, res.stdout,
                         res.stderr + f"deltavault: error: {exc.one_line()}\n")
    if exc is not None and not isinstance(exc, SystemExit):
        raise exc
    return CliResult(res.exit_code, res.stdout, res.stderr)


def table_rows(db: Path, table: str) -> list[tuple[object, ...]]:
    """Every row of a table in primary-key order."""
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
    finally:
        con.close()
