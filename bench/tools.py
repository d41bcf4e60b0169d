"""The backup tools under comparison, behind one small interface.

Each tool runs as a child process; we time it with a monotonic clock and
read its peak resident set size with GNU time (``%M``, the child's own
``ru_maxrss``; restic, borg and the deltavault CLI are one process each).
Repository size is the apparent size of every file under the repository
directory, the same measure for every tool.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


class ToolError(RuntimeError):
    """A tool command failed; the message carries its stderr tail."""


@dataclass(frozen=True)
class Measured:
    """One command run: wall seconds, peak RSS bytes, stdout text."""

    seconds: float
    peak_rss: int
    stdout: str


def measure(cmd: list[str], *, env: dict[str, str] | None = None,
            cwd: Path | None = None) -> Measured:
    """Run ``cmd`` to completion, timing it and reading its peak RSS.

    The child runs under GNU ``/usr/bin/time``: Linux carries ``ru_maxrss``
    across ``exec``, so a tool forked straight from this (large) Python
    process would report our RSS, not its own; forked from ``time`` it
    reports its own.
    """
    scratch = Path(os.environ.get("TMPDIR", "/tmp"))
    out_path = scratch / f"bench-{os.getpid()}.out"
    rss_path = scratch / f"bench-{os.getpid()}.rss"
    wrapped = ["/usr/bin/time", "-f", "%M", "-o", str(rss_path), *cmd]
    with out_path.open("w+b") as out:
        t0 = time.perf_counter()
        proc = subprocess.run(wrapped, stdout=out, stderr=subprocess.PIPE, env=env, cwd=cwd)
        seconds = time.perf_counter() - t0
        out.seek(0)
        text = out.read().decode(errors="replace")
    out_path.unlink(missing_ok=True)
    rss_lines = rss_path.read_text().split() if rss_path.exists() else []
    rss_path.unlink(missing_ok=True)
    if proc.returncode != 0:
        tail = proc.stderr.decode(errors="replace").strip().splitlines()[-2:]
        raise ToolError(f"{' '.join(cmd[:3])}... exited {proc.returncode}: {' | '.join(tail)}")
    peak = int(rss_lines[-1]) * 1024 if rss_lines and rss_lines[-1].isdigit() else 0
    return Measured(seconds, peak, text)


def dir_bytes(path: Path) -> int:
    """Apparent size of every file under ``path`` (``du -sb``)."""
    total = 0
    for dirpath, _, files in os.walk(path):
        for f in files:
            total += os.lstat(os.path.join(dirpath, f)).st_size
    return total


class Tool:
    """A backup tool variant working on one repository directory."""

    name = "tool"

    def __init__(self, work: Path) -> None:
        self.work = work
        self.repo = work / "repo"
        self.password_file = work / "password"

    def version(self) -> str:
        """The tool's version line."""
        raise NotImplementedError

    def init(self) -> None:
        """Create an empty, encrypted repository."""
        raise NotImplementedError

    def backup(self, source: Path, label: str, kind: str) -> tuple[str, Measured]:
        """Back up ``source``; returns the snapshot id and the measurement."""
        raise NotImplementedError

    def restore(self, snapshot: str, target: Path) -> tuple[Path, Measured]:
        """Restore a snapshot under ``target``; returns where the tree landed."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Fresh work directory with a password file."""
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.password_file.write_text("benchmark-password\n")


class Restic(Tool):
    """restic with a compression mode (``auto`` is its default, ``max`` is zstd's best)."""

    def __init__(self, work: Path, compression: str) -> None:
        super().__init__(work)
        self.compression = compression
        self.name = "restic" if compression == "auto" else f"restic-{compression}"

    def _env(self) -> dict[str, str]:
        return {**os.environ, "RESTIC_REPOSITORY": str(self.repo),
                "RESTIC_PASSWORD_FILE": str(self.password_file),
                "RESTIC_CACHE_DIR": str(self.work / "cache")}

    def version(self) -> str:
        return subprocess.run(["restic", "version"], capture_output=True, text=True,
                              check=True).stdout.strip()

    def init(self) -> None:
        measure(["restic", "init", "--repository-version", "2"], env=self._env())

    def backup(self, source: Path, label: str, kind: str) -> tuple[str, Measured]:
        self._source = source.resolve()  # restic restores absolute paths under the target
        m = measure(["restic", "backup", "--json", "--compression", self.compression,
                     "--tag", label, str(source)], env=self._env())
        summary = [json.loads(x) for x in m.stdout.splitlines() if '"summary"' in x][-1]
        return str(summary["snapshot_id"]), m

    def restore(self, snapshot: str, target: Path) -> tuple[Path, Measured]:
        m = measure(["restic", "restore", snapshot, "--target", str(target)], env=self._env())
        return target / self._source.relative_to("/"), m


class Borg(Tool):
    """borg with a compression spec (``lz4`` is its default)."""

    def __init__(self, work: Path, compression: str) -> None:
        super().__init__(work)
        self.compression = compression
        self.name = "borg" if compression == "lz4" else f"borg-{compression.replace(',', '')}"

    def _env(self) -> dict[str, str]:
        return {**os.environ, "BORG_REPO": str(self.repo),
                "BORG_PASSCOMMAND": f"cat {self.password_file}",
                "BORG_BASE_DIR": str(self.work / "home"),
                "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}

    def version(self) -> str:
        return subprocess.run(["borg", "--version"], capture_output=True, text=True,
                              check=True).stdout.strip()

    def init(self) -> None:
        measure(["borg", "init", "--encryption", "repokey-blake2"], env=self._env())

    def backup(self, source: Path, label: str, kind: str) -> tuple[str, Measured]:
        # Relative paths (cwd = source) so that extract lands the tree in the target.
        m = measure(["borg", "create", "--json", "--compression", self.compression,
                     f"::{label}", "."], env=self._env(), cwd=source)
        return label, m

    def restore(self, snapshot: str, target: Path) -> tuple[Path, Measured]:
        target.mkdir(parents=True, exist_ok=True)
        m = measure(["borg", "extract", f"::{snapshot}"], env=self._env(), cwd=target)
        return target, m


class Deltavault(Tool):
    """The deltavault CLI, with every change backed up as ``diff`` or ``incr``."""

    def __init__(self, work: Path, kind: str) -> None:
        super().__init__(work)
        self.kind = kind
        self.name = f"deltavault-{kind}"
        exe = Path(sys.executable).with_name("deltavault")
        self.cmd = [str(exe)] if exe.exists() else [
            sys.executable, "-c", "from deltavault.cli.main import run; run()"]

    def _env(self) -> dict[str, str]:
        # PYTHONPATH lets a source checkout's CLI run even when not pip-installed.
        src = str(Path(__file__).resolve().parents[1] / "src")
        path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
        return {**os.environ, "PYTHONPATH": path, "DELTAVAULT_REPO": str(self.repo),
                "DELTAVAULT_PASSWORD_FILE": str(self.password_file)}

    def _flags(self) -> list[str]:
        return ["--repo", str(self.repo), "--password-file", str(self.password_file)]

    def version(self) -> str:
        for args in (["version"], ["--version"]):
            r = subprocess.run([*self.cmd, *args], capture_output=True, text=True,
                               env=self._env())
            if r.returncode == 0 and r.stdout.strip():
                return r.stdout.strip().splitlines()[-1]
        return "?"

    def available(self) -> str | None:
        """None if the CLI can init a repository here, else why not."""
        self.prepare()
        try:
            self.init()
        except (ToolError, OSError) as e:
            return str(e)
        return None

    def init(self) -> None:
        measure([*self.cmd, "init", *self._flags(), "--json"], env=self._env())

    def backup(self, source: Path, label: str, kind: str) -> tuple[str, Measured]:
        kind = "full" if kind == "full" else self.kind
        self._source = source
        m = measure([*self.cmd, "backup", str(source), *self._flags(), "--type", kind,
                     "--tag", label, "--json"], env=self._env())
        return str(json.loads(m.stdout)["snapshot_id"]), m

    def restore(self, snapshot: str, target: Path) -> tuple[Path, Measured]:
        m = measure([*self.cmd, "restore", snapshot, "--target", str(target), *self._flags(),
                     "--json"], env=self._env())
        # The snapshot's root holds the backed-up directory by its base name.
        named = target / self._source.name
        return (named if named.is_dir() else target), m

    def tag(self, snapshot: str, tag: str) -> None:
        """Add a tag to a snapshot."""
        measure([*self.cmd, "tag", snapshot, "--add", tag], env=self._env())

    def rollback(self, tag: str, target: Path) -> Measured:
        """Restore the snapshot with ``tag`` into ``target`` in place."""
        return measure([*self.cmd, "rollback", "--tag", tag, "--target", str(target)],
                       env=self._env())


def make_tools(names: list[str], work: Path) -> list[Tool]:
    """Tool variants for the ``--tools`` list (restic, borg, deltavault)."""
    out: list[Tool] = []
    for n in names:
        if n == "restic":
            out += [Restic(work / "restic", "auto"), Restic(work / "restic-max", "max")]
        elif n == "borg":
            out += [Borg(work / "borg", "lz4"), Borg(work / "borg-zstd3", "zstd,3")]
        elif n == "deltavault":
            out += [Deltavault(work / "dv-diff", "diff"), Deltavault(work / "dv-incr", "incr")]
        else:
            raise SystemExit(f"unknown tool {n!r}: use restic, borg, deltavault")
    return out
