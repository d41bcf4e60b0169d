"""Shared helpers for the source, reconstruct and reconcile tests."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

from deltavault import api
from deltavault.repo.repository import Repository
from tests.support.cli import cli_env, entry_argv

PASSWORD = b"sources-test-password"


def make_repo(path: Path) -> Repository:
    """A fresh repository with cheap key derivation."""
    return api.init(path, PASSWORD, kdf_memory_kib=8192, kdf_time_cost=1)


@dataclass
class CliResult:
    """Exit code and output of one run of the installed ``deltavault`` script."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cli(repo: Path, *args: str, input: str | None = None) -> CliResult:
    """Run the installed ``deltavault`` script as a user would (a subprocess, never in-process)."""
    env = cli_env(repo, Path(os.devnull), DELTAVAULT_PASSWORD=PASSWORD.decode())
    del env["DELTAVAULT_PASSWORD_FILE"]
    proc = subprocess.run([*entry_argv(), *args], input=input, capture_output=True, text=True,
                          env=env, timeout=240, check=False)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def table_rows(db: Path, table: str) -> list[tuple[object, ...]]:
    """Every row of a table in primary-key order."""
    con = sqlite3.connect(db)
    try:
        return con.execute(f"SELECT * FROM {table} ORDER BY 1, 2").fetchall()
    finally:
        con.close()
