"""A real FUSE mount of a repository made by the CLI (needs root and /dev/fuse).

``mounted`` starts ``deltavault mount`` as a user would (a subprocess of the
real entry point), waits for the kernel to show the mount, and on the way out
sends SIGTERM and checks that the process exited 0 and the mount is gone;
if a test left it mounted, it is detached so later tests do not trip on it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.support.cli import KDF_ARGS, Cli
from tests.support.trees import write_random


def wait_mounted(proc: subprocess.Popen[bytes], mountpoint: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not os.path.ismount(mountpoint):
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise AssertionError(f"deltavault mount exited {proc.returncode}: {err}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{mountpoint} not mounted after {timeout}s")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], mountpoint: Path,
         sig: int = signal.SIGTERM) -> tuple[int, str]:
    """Signal the mount process; its exit code and stderr.

    A mount the process left behind fails the test (after being detached, so
    that it does not outlive the test).
    """
    if proc.poll() is None:
        proc.send_signal(sig)
    left_mounted = False
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if os.path.ismount(mountpoint):
            left_mounted = True
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)
    assert not left_mounted, f"{mountpoint} still mounted after the process exited"
    return proc.returncode, err.decode(errors="replace")


@contextmanager
def mounted(cli: Cli, mountpoint: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """``deltavault mount MOUNTPOINT ARGS`` for the duration of the block."""
    mountpoint.mkdir(exist_ok=True)
    proc = cli.popen("mount", mountpoint, *args)
    try:
        wait_mounted(proc, mountpoint)
        yield proc
    finally:
        code, err = stop(proc, mountpoint)
    assert code == 0, f"mount exited {code}: {err}"


def build_tree(root: Path, day: int) -> None:
    """Nested dirs, links, a fifo, a sparse file, odd names, and several blobs of data."""
    (root / "db" / "nested").mkdir(parents=True, exist_ok=True)
    write_random(root / "db" / "positions.bin", 3 << 20, seed=day)  # rewritten each day
    write_random(root / "models.bin", 2 << 20, seed=100)              # unchanged: dedup
    (root / "db" / "nested" / "config.json").write_text(f'{{"day": {day}}}\n')
    (root / "é-日本.txt").write_text("unicode name\n")
    with open(os.path.join(os.fsencode(root), b"raw-\xff"), "wb") as fh:
        fh.write(b"not utf-8 name\n")
    (root / "empty").write_bytes(b"")
    with open(root / "sparse.img", "wb") as fh:
        fh.truncate(4 << 20)
        fh.seek(1 << 20)
        fh.write(b"island" * 100)
    if not (root / "link").is_symlink():
        os.symlink("db/nested/config.json", root / "link")
    if not (root / "fifo").exists():
        os.mkfifo(root / "fifo")
    (root / "mode600").write_text("private\n")
    os.chmod(root / "mode600", 0o600)


@pytest.fixture
def history(tmp_path: Path, cli: Cli) -> tuple[Cli, Path]:
    """A repository with full (known-good, host alpha), diff and incr (host beta) snapshots."""
    cli("init", *KDF_ARGS, "--chunk-avg", "262144")
    src = tmp_path / "state"
    build_tree(src, 1)
    cli("backup", src, "--type", "full", "--tag", "known-good", "--host", "alpha", "-q")
    build_tree(src, 2)
    cli("backup", src, "--type", "diff", "--host", "alpha", "-q")
    (src / "db" / "nested" / "config.json").write_text('{"day": 3}\n')
    cli("backup", src, "--type", "incr", "--host", "beta", "--tag", "eod", "-q")
    return cli, src
