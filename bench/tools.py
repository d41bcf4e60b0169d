"""The backup tools under comparison, behind one small interface.

Each tool runs as a child process; we time it with a monotonic clock and
read its peak resident set size and CPU time with GNU time (``%M %U %S``: the
child's own ``ru_maxrss`` and user/system seconds, children included).
restic and borg are one process each, with their threads; a deltavault
restore of a large snapshot forks one process per core, and ``ru_maxrss``
would then be the largest of them, not their sum. So while a command runs,
the proportional set size (PSS: each shared page divided among the
processes sharing it) of every process of its session is summed every
0.2 s, and the figure reported is the larger of that peak sum and
``ru_maxrss``. For one process PSS is at most its RSS, so nothing changes
there. Repository size is the apparent size of every file under the
repository directory, the same measure for every tool.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

DEFAULT_TIMEOUT = 4 * 3600.0


class ToolError(RuntimeError):
    """A tool command failed (or timed out); the message carries its stderr tail."""


def describe(exc: BaseException) -> str:
    """One line for an error of one tool: a ToolError's own text, else its type and text."""
    return str(exc) if isinstance(exc, ToolError) else f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class Measured:
    """One command run: wall seconds, peak RSS bytes, CPU seconds, stdout text."""

    seconds: float
    peak_rss: int
    stdout: str
    user_s: float = 0.0
    sys_s: float = 0.0

    @property
    def cpu_util(self) -> float:
        """Cores kept busy on average: (user + system CPU seconds) / wall seconds."""
        return (self.user_s + self.sys_s) / self.seconds if self.seconds > 0 else 0.0

    def figures(self, prefix: str) -> dict[str, float]:
        """``<prefix>_s``, ``_peak_rss_bytes``, ``_cpu_s`` and ``_cpu_util``."""
        return {f"{prefix}_s": self.seconds, f"{prefix}_peak_rss_bytes": float(self.peak_rss),
                f"{prefix}_cpu_s": self.user_s + self.sys_s, f"{prefix}_cpu_util": self.cpu_util}


def measure(cmd: list[str], *, env: dict[str, str] | None = None,
            cwd: Path | None = None, timeout: float | None = None) -> Measured:
    """Run ``cmd`` to completion, timing it and reading its peak RSS and CPU time.

    The child runs under GNU ``/usr/bin/time``: Linux carries ``ru_maxrss``
    across ``exec``, so a tool forked straight from this (large) Python
    process would report our RSS, not its own; forked from ``time`` it
    reports its own. A command running past ``timeout`` (default
    ``BENCH_TIMEOUT`` seconds from the environment, else 4 h) is killed with
    its process group and reported as a ToolError, so one hung command does
    not stall a whole benchmark.
    """
    if timeout is None:
        timeout = float(os.environ.get("BENCH_TIMEOUT", DEFAULT_TIMEOUT))
    scratch = Path(os.environ.get("TMPDIR", "/tmp"))
    out_path = scratch / f"bench-{os.getpid()}.out"
    rss_path = scratch / f"bench-{os.getpid()}.rss"
    err_path = scratch / f"bench-{os.getpid()}.err"
    wrapped = ["/usr/bin/time", "-f", "%M %U %S", "-o", str(rss_path), *cmd]
    with out_path.open("w+b") as out, err_path.open("w+b") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(wrapped, stdout=out, stderr=err, env=env, cwd=cwd,
                                start_new_session=True)
        sampler = _PssSampler(proc.pid)
        try:
            returncode = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise ToolError(f"{' '.join(cmd[:3])}... timed out after {timeout:.0f} s") from None
        finally:
            sampler.stop()
        seconds = time.perf_counter() - t0
        out.seek(0)
        text = out.read().decode(errors="replace")
        err.seek(0)
        err_text = err.read().decode(errors="replace")
    out_path.unlink(missing_ok=True)
    err_path.unlink(missing_ok=True)
    fields = rss_path.read_text().split() if rss_path.exists() else []
    rss_path.unlink(missing_ok=True)
    if returncode != 0:
        lines = [x for x in err_text.strip().splitlines() if x.strip()]
        raise ToolError(f"{' '.join(cmd[:3])}... exited {returncode} ({len(lines)} stderr "
                        f"lines): {' | '.join(_shorten(x) for x in lines[-2:])}")
    nums = fields[-3:] if len(fields) >= 3 else []
    try:
        peak, user, system = int(nums[0]) * 1024, float(nums[1]), float(nums[2])
    except (IndexError, ValueError):
        peak, user, system = 0, 0.0, 0.0
    return Measured(seconds, max(peak, sampler.peak), text, user, system)


class _PssSampler:
    """The peak, over the run, of the summed PSS of a session's processes (but its leader,
    GNU time), sampled every ``every`` seconds on a thread of its own."""

    def __init__(self, session: int, every: float = 0.2) -> None:
        self.session = session
        self.every = every
        self.peak = 0
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._done.wait(self.every):
            self.peak = max(self.peak, self._sum())

    def _sum(self) -> int:
        total = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == self.session:
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    fields = fh.read().rsplit(b")", 1)[1].split()
                if int(fields[3]) != self.session:  # the session id, field 6 of stat
                    continue
                with open(f"/proc/{entry}/smaps_rollup", "rb") as fh:
                    for line in fh:
                        if line.startswith(b"Pss:"):
                            total += int(line.split()[1]) * 1024
                            break
            except (OSError, ValueError, IndexError):
                continue
        return total


_LONG_PATH = re.compile(r"(?:/[^/\s\"':]+){12,}")


def _shorten(line: str, keep: int = 300) -> str:
    """A stderr line with long paths (a 20,000-character chain) folded, then its start
    and end if still long: the error text must survive, the path need not."""
    line = _LONG_PATH.sub(lambda m: f"{m.group(0)[:40].rstrip('/')}/...({m.group(0).count('/')} "
                          "components)", line)
    return line if len(line) <= keep else f"{line[:keep // 3]} ... {line[-2 * keep // 3:]}"


def median_seconds(cmd: list[str], *, env: dict[str, str] | None = None, runs: int = 5) -> float:
    """Median wall time of a short command run ``runs`` times (start-up cost)."""
    times = sorted(measure(cmd, env=env).seconds for _ in range(runs))
    return times[len(times) // 2]


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
        self._source = work

    def version(self) -> str:
        """The tool's version line."""
        raise NotImplementedError

    def init(self) -> None:
        """Create an empty, encrypted repository."""
        raise NotImplementedError

    def backup(self, source: Path, label: str, kind: str) -> tuple[str, Measured]:
        """Back up ``source``; returns the snapshot id and the measurement."""
        raise NotImplementedError

    def restore(self, snapshot: str, target: Path,
                include: str | None = None) -> tuple[Path, Measured]:
        """Restore a snapshot (or only the file ``include``, relative to the backed-up
        directory) under ``target``; returns where the backed-up directory landed."""
        raise NotImplementedError

    def list_snapshots(self) -> Measured:
        """List the repository's snapshots (what a ``snapshots`` command costs)."""
        raise NotImplementedError

    def check(self) -> Measured:
        """Check the repository's structure (no full data read)."""
        raise NotImplementedError

    def forget_and_prune(self, snapshots: list[str]) -> tuple[Measured, Measured]:
        """Forget snapshots, then free their data; the two measurements."""
        raise NotImplementedError

    def help_command(self) -> list[str]:
        """The command printing the tool's help (start-up cost)."""
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        """Environment for the tool's commands."""
        return dict(os.environ)

    def prepare(self) -> None:
        """Fresh work directory with a password file."""
        remove_tree(self.work)
        self.work.mkdir(parents=True)
        self.password_file.write_text("benchmark-password\n")


def remove_tree(path: Path) -> None:
    """``rm -rf``: iterative and fast, unlike shutil.rmtree on 10,000-level or 1M-file trees."""
    if path.exists() or path.is_symlink():
        subprocess.run(["rm", "-rf", "--", str(path)], check=True)


class Restic(Tool):
    """restic with a compression mode (``auto`` is its default, ``max`` is zstd's best)."""

    def __init__(self, work: Path, compression: str) -> None:
        super().__init__(work)
        self.compression = compression
        self.name = "restic" if compression == "auto" else f"restic-{compression}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "RESTIC_REPOSITORY": str(self.repo),
                "RESTIC_PASSWORD_FILE": str(self.password_file),
                "RESTIC_CACHE_DIR": str(self.work / "cache")}

    def version(self) -> str:
        return subprocess.run(["restic", "version"], capture_output=True, text=True,
                              check=True).stdout.strip()

    def init(self) -> None:
        measure(["restic", "init", "--repository-version", "2"], env=self.env())

    def backup(self, source: Path, label: str, kind: str) -> tuple[str, Measured]:
        self._source = source.resolve()  # restic restores absolute paths under the target
        m = measure(["restic", "backup", "--json", "--compression", self.compression,
                     "--tag", label, str(source)], env=self.env())
        summary = [json.loads(x) for x in m.stdout.splitlines() if '"summary"' in x][-1]
        return str(summary["snapshot_id"]), m

    def restore(self, snapshot: str, target: Path,
                include: str | None = None) -> tuple[Path, Measured]:
        extra = ["--include", str(self._source / include)] if include else []
        m = measure(["restic", "restore", snapshot, "--target", str(target), *extra],
                    env=self.env())
        return target / self._source.relative_to("/"), m

    def list_snapshots(self) -> Measured:
        return measure(["restic", "snapshots"], env=self.env())

    def check(self) -> Measured:
        return measure(["restic", "check"], env=self.env())

    def forget_and_prune(self, snapshots: list[str]) -> tuple[Measured, Measured]:
        forget = measure(["restic", "forget", *snapshots], env=self.env())
        return forget, measure(["restic", "prune"], env=self.env())

    def help_command(self) -> list[str]:
        return ["restic", "--help"]


class Borg(Tool):
    """borg with a compression spec (``lz4`` is its default)."""

    def __init__(self, work: Path, compression: str) -> None:
        super().__init__(work)
        self.compression = compression
        self.name = "borg" if compression == "lz4" else f"borg-{compression.replace(',', '')}"

    def env(self) -> dict[str, str]:
        return {**os.environ, "BORG_REPO": str(self.repo),
                "BORG_PASSCOMMAND": f"cat {self.password_file}",
                "BORG_BASE_DIR": str(self.work / "home"),
                "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"}

    def version(self) -> str:
        return subprocess.run(["borg", "--version"], capture_output=True, text=True,
                              check=True).stdout.strip()

    def init(self) -> None:
        measure(["borg", "init", "--encryption", "repokey-blake2"], env=self.env())

    def backup(self, source: Path, label: str, kind: str) -> tuple[str, Measured]:
        # Relative paths (cwd = source) so that extract lands the tree in the target.
        self._source = source
        m = measure(["borg", "create", "--json", "--compression", self.compression,
                     f"::{label}", "."], env=self.env(), cwd=source)
        return label, m

    def restore(self, snapshot: str, target: Path,
                include: str | None = None) -> tuple[Path, Measured]:
        target.mkdir(parents=True, exist_ok=True)
        extra = [include] if include else []
        m = measure(["borg", "extract", f"::{snapshot}", *extra], env=self.env(), cwd=target)
        return target, m

    def list_snapshots(self) -> Measured:
        return measure(["borg", "list"], env=self.env())

    def check(self) -> Measured:
        return measure(["borg", "check", "--repository-only"], env=self.env())

    def forget_and_prune(self, snapshots: list[str]) -> tuple[Measured, Measured]:
        parts = [measure(["borg", "delete", f"::{s}"], env=self.env()) for s in snapshots]
        forget = Measured(sum(m.seconds for m in parts), max(m.peak_rss for m in parts), "",
                          sum(m.user_s for m in parts), sum(m.sys_s for m in parts))
        return forget, measure(["borg", "compact"], env=self.env())

    def help_command(self) -> list[str]:
        return ["borg", "--help"]


class Deltavault(Tool):
    """The deltavault CLI, with every change backed up as ``diff`` or ``incr``."""

    def __init__(self, work: Path, kind: str) -> None:
        super().__init__(work)
        self.kind = kind
        self.name = f"deltavault-{kind}"
        exe = Path(sys.executable).with_name("deltavault")
        self.cmd = [str(exe)] if exe.exists() else [
            sys.executable, "-c", "from deltavault.cli.main import run; run()"]

    def env(self) -> dict[str, str]:
        # PYTHONPATH lets a source checkout's CLI run even when not pip-installed; the
        # cache variables keep any local cache inside this variant's work directory, so
        # every run starts cold and no run sees another's cache.
        src = str(Path(__file__).resolve().parents[1] / "src")
        path = os.pathsep.join(p for p in (src, os.environ.get("PYTHONPATH")) if p)
        return {**os.environ, "PYTHONPATH": path, "DELTAVAULT_REPO": str(self.repo),
                "DELTAVAULT_PASSWORD_FILE": str(self.password_file),
                "DELTAVAULT_CACHE_DIR": str(self.work / "cache"),
                "XDG_CACHE_HOME": str(self.work / "xdg-cache")}

    def _flags(self) -> list[str]:
        return ["--repo", str(self.repo), "--password-file", str(self.password_file)]

    def version(self) -> str:
        for args in (["version"], ["--version"]):
            r = subprocess.run([*self.cmd, *args], capture_output=True, text=True,
                               env=self.env())
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
        measure([*self.cmd, "init", *self._flags(), "--json"], env=self.env())

    def backup(self, source: Path, label: str, kind: str) -> tuple[str, Measured]:
        kind = "full" if kind == "full" else self.kind
        self._source = source
        m = measure([*self.cmd, "backup", str(source), *self._flags(), "--type", kind,
                     "--tag", label, "--json"], env=self.env())
        out = json.loads(m.stdout)
        sealer = out.get("summary", {}).get("sealer")
        if sealer:
            # the kernel reports the larger of the two processes' peaks; both were
            # resident at once, so count their sum (an upper bound: the two peaks
            # need not coincide). Their CPU time is in the figures already.
            m = dataclasses.replace(
                m, peak_rss=m.peak_rss + int(sealer["peak_rss_mib"] * 1024 * 1024))
        return str(out["snapshot_id"]), m

    def restore(self, snapshot: str, target: Path,
                include: str | None = None) -> tuple[Path, Measured]:
        extra = ["--include", f"{self._source.name}/{include}"] if include else []
        m = measure([*self.cmd, "restore", snapshot, "--target", str(target), *self._flags(),
                     "--json", *extra], env=self.env())
        # The snapshot's root holds the backed-up directory by its base name.
        named = target / self._source.name
        return (named if named.is_dir() else target), m

    def list_snapshots(self) -> Measured:
        return measure([*self.cmd, "snapshots", *self._flags()], env=self.env())

    def check(self) -> Measured:
        return measure([*self.cmd, "check", *self._flags()], env=self.env())

    def forget_and_prune(self, snapshots: list[str]) -> tuple[Measured, Measured]:
        forget = measure([*self.cmd, "forget", *snapshots, *self._flags()], env=self.env())
        return forget, measure([*self.cmd, "prune", *self._flags()], env=self.env())

    def help_command(self) -> list[str]:
        return [*self.cmd, "--help"]

    def tag(self, snapshot: str, tag: str) -> None:
        """Add a tag to a snapshot."""
        measure([*self.cmd, "tag", snapshot, "--add", tag], env=self.env())

    def rollback(self, tag: str, target: Path) -> Measured:
        """Roll ``target`` back to the snapshot with ``tag``, hard-linking unchanged files.

        ``--reuse link`` is what docs/restore.md advises where a rollback must
        take seconds on a file system without reflinks (the bench's ext4); the
        default (``metadata``) copies those files in the kernel instead.
        """
        return measure([*self.cmd, "rollback", "--tag", tag, "--target", str(target),
                        "--reuse", "link"], env=self.env())


def make_tools(names: list[str], work: Path) -> list[Tool]:
    """Tool variants for the ``--tools`` list.

    ``restic``, ``borg`` and ``deltavault`` each expand to two variants
    (restic auto/max, borg lz4/zstd,3, deltavault diff/incr); a single variant
    is named directly: ``restic-auto``, ``restic-max``, ``borg-lz4``,
    ``borg-zstd3``, ``deltavault-diff``, ``deltavault-incr``.
    """
    single: dict[str, Callable[[], Tool]] = {
        "restic-auto": lambda: Restic(work / "restic", "auto"),
        "restic-max": lambda: Restic(work / "restic-max", "max"),
        "borg-lz4": lambda: Borg(work / "borg", "lz4"),
        "borg-zstd3": lambda: Borg(work / "borg-zstd3", "zstd,3"),
        "deltavault-diff": lambda: Deltavault(work / "dv-diff", "diff"),
        "deltavault-incr": lambda: Deltavault(work / "dv-incr", "incr"),
    }
    groups = {"restic": ["restic-auto", "restic-max"], "borg": ["borg-lz4", "borg-zstd3"],
              "deltavault": ["deltavault-diff", "deltavault-incr"]}
    out: list[Tool] = []
    for n in names:
        for key in groups.get(n, [n]):
            if key not in single:
                raise SystemExit(f"unknown tool {n!r}: use {', '.join([*groups, *single])}")
            out.append(single[key]())
    return out
