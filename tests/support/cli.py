"""Run deltavault as a user's shell or cron job would: a subprocess of the real entry point.

The real entry point is the installed ``deltavault`` console script (beside
the test interpreter, ``.venv/bin/deltavault``); ``python -m deltavault`` is
the other one users have. Exit codes are only ever asserted on these
subprocesses, never on an in-process runner: an in-process runner cannot see
what the console script does with an exit code, which is how a failed audit
exited 0 unnoticed (issue 11).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deltavault import sampledata

SRC = Path(__file__).resolve().parents[2] / "src"
#: the console script pip installed for this interpreter (``pip install -e .``)
SCRIPT = Path(sys.executable).with_name("deltavault")
#: the two ways a user runs deltavault
ENTRY_POINTS = ("script", "module")
PASSWORD = "correct horse battery staple"
#: cheap Argon2id so every test can create repositories
KDF_ARGS = ["--kdf-memory", "8192", "--kdf-time", "1"]


def cli_env(repo: Path, password_file: Path, **extra: str) -> dict[str, str]:
    """The environment a user would have: repository and password file set."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("DELTAVAULT_") or k == "DELTAVAULT_CACHE_DIR"}
    env.update(PYTHONPATH=str(SRC), DELTAVAULT_REPO=str(repo),
               DELTAVAULT_PASSWORD_FILE=str(password_file), COLUMNS="200")
    env.update(extra)
    return env


def entry_argv(entry: str = "script") -> list[str]:
    """The argv prefix of an entry point: the installed script or ``python -m deltavault``."""
    if entry == "module":
        return [sys.executable, "-m", "deltavault"]
    if not SCRIPT.exists():
        raise AssertionError(f"{SCRIPT} is missing: install the package (pip install -e .)")
    return [str(SCRIPT)]


@dataclass
class Cli:
    """Runs ``deltavault`` commands against one repository."""

    repo: Path
    password_file: Path

    def env(self, **extra: str) -> dict[str, str]:
        return cli_env(self.repo, self.password_file, **extra)

    def __call__(self, *args: str | os.PathLike[str], input: bytes | None = None,
                 expect: int | None = 0, env: dict[str, str] | None = None,
                 cwd: Path | None = None, timeout: float = 240,
                 entry: str = "script") -> subprocess.CompletedProcess[bytes]:
        """Run one command; check its exit code unless ``expect`` is None."""
        argv = [*entry_argv(entry), *map(os.fspath, args)]
        proc = subprocess.run(argv, input=input, capture_output=True, env=env or self.env(),
                              cwd=cwd, timeout=timeout, check=False)
        if expect is not None and proc.returncode != expect:
            raise AssertionError(
                f"deltavault {' '.join(map(os.fspath, args))} exited {proc.returncode}, "
                f"expected {expect}\nstdout: {proc.stdout.decode(errors='replace')[-3000:]}\n"
                f"stderr: {proc.stderr.decode(errors='replace')[-3000:]}")
        return proc

    def json(self, *args: str | os.PathLike[str], **kw: Any) -> Any:
        return json.loads(self(*args, "--json", **kw).stdout)

    def popen(self, *args: str | os.PathLike[str], stdin: int | None = None,
              stdout: int | None = subprocess.DEVNULL) -> subprocess.Popen[bytes]:
        argv = [*entry_argv(), *map(os.fspath, args)]
        return subprocess.Popen(argv, env=self.env(), stdin=stdin, stdout=stdout,
                                stderr=subprocess.PIPE)



#: the same repository password and cheap KDF for API-created repositories
API_PASSWORD = b"e2e password"
KDF = {"kdf_memory_kib": 8192, "kdf_time_cost": 1}


def run_cli(*args: str, env: dict[str, str],
            entry: str = "script") -> subprocess.CompletedProcess[str]:
    """``deltavault ARGS`` (the installed script) with the API password; text output."""
    src = str(SRC)
    full_env = {**os.environ, "PYTHONPATH": src, "DELTAVAULT_PASSWORD": API_PASSWORD.decode(),
                **env}
    return subprocess.run([*entry_argv(entry), *args], capture_output=True,
                          text=True, env=full_env, timeout=120)



def trading_state(root: Path, scale: float = 0.006) -> Path:
    """A few MiB of sample trading state (order books, positions db, models, logs)."""
    sampledata.generate(root, scale=scale)
    return root


def kill_trials(default: int = 10) -> int:
    """kill -9 trials per operation: ``DELTAVAULT_KILL_TRIALS`` or ``default``.

    CI runs the default to keep the suite within its time budget; a release
    check runs more (``DELTAVAULT_KILL_TRIALS=50 ./scripts/test -k kill``).
    """
    return max(2, int(os.environ.get("DELTAVAULT_KILL_TRIALS", default)))


def processes_naming(path: Path) -> list[int]:
    """Processes whose command line names ``path`` (a restore's parts share its argv)."""
    found = []
    needle = os.fsencode(path)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as fh:
                    if needle in fh.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def processes_left(path: Path, within: float) -> list[int]:
    """The processes still naming ``path`` after waiting up to ``within`` seconds for none."""
    deadline = time.monotonic() + within
    while (found := processes_naming(path)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return found
