"""A restore split over processes: the same tree as one process, and it fails closed.

Every test forks real parts (restore/procs.py); nothing stands in for them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deltavault import api
from deltavault.errors import DeltavaultError, UnsafePath
from deltavault.repo.snapshot import Snapshot
from deltavault.restore import procs
from deltavault.restore.restorer import (
    SPLIT_FILES,
    RestoreOptions,
    processes_for,
    run_restore,
)
from deltavault.store.wrappers import RetryingStore
from tests.support.cli import Cli, processes_left, processes_naming
from tests.support.trees import assert_same_tree, manifest

MTIME = 1_600_000_000_123_456_789


def _source(root: Path) -> Path:
    """Many directories at three levels, hard links within and across top directories,
    symlinks, an empty and a read-only directory, odd modes and fixed times."""
    for top in range(4):
        for sub in range(6):
            d = root / f"t{top}" / f"s{sub}"
            d.mkdir(parents=True)
            for f in range(5):
                p = d / f"f{f}"
                p.write_bytes(f"{top}/{sub}/{f}\n".encode() * (f * 300 + 1))
                p.chmod((0o640, 0o755, 0o600, 0o444, 0o4755)[f])
        (root / f"t{top}" / "loose").write_bytes(b"loose\n" * top)
    os.link(root / "t0" / "s0" / "f0", root / "t3" / "s5" / "link-to-t0")  # across tops
    os.link(root / "t0" / "s0" / "f0", root / "t1" / "link-to-t0")
    os.link(root / "t2" / "s1" / "f1", root / "t2" / "s1" / "same-dir-link")
    os.symlink("s0/f0", root / "t1" / "sym")
    os.symlink("/nowhere", root / "t2" / "s3" / "dangling")
    (root / "empty").mkdir()
    ro = root / "t1" / "readonly"
    ro.mkdir()
    (ro / "inside").write_bytes(b"inside\n")
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in dirnames + filenames:
            os.utime(os.path.join(dirpath, name), ns=(MTIME, MTIME), follow_symlinks=False)
    ro.chmod(0o555)
    os.utime(ro, ns=(MTIME, MTIME))
    os.utime(root, ns=(MTIME, MTIME))
    return root


@pytest.mark.parametrize("processes", [2, 3])
def test_a_split_restore_gives_the_tree_one_process_gives(repo: api.Repository,
                                                          tmp_path: Path, processes: int) -> None:
    src = _source(tmp_path / "src")
    snap = api.backup(repo, [src]).snapshot
    one, split = tmp_path / "one", tmp_path / "split"
    r1 = run_restore(repo, snap, RestoreOptions(one, processes=1), record=False)
    r2 = run_restore(repo, snap, RestoreOptions(split, processes=processes), record=False)
    assert (r1.processes, r2.processes) == (1, processes)
    assert (r2.files, r2.dirs, r2.bytes) == (r1.files, r1.dirs, r1.bytes)
    want = manifest(src)
    assert_same_tree(want, manifest(one / "src"))
    assert_same_tree(want, manifest(split / "src"))  # modes, times, link groups included
    assert os.stat(split / "src").st_mtime_ns == MTIME
    assert not [p for p in split.rglob("*") if p.name.startswith(".deltavault-tmp")]


def test_a_part_killed_fails_the_restore(repo: api.Repository, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    snap = api.backup(repo, [_source(tmp_path / "src")]).snapshot

    def die(*_a: object, **_k: object) -> int:
        os.kill(os.getpid(), signal.SIGKILL)
        return 0

    monkeypatch.setattr(procs, "run_plan", die)  # only the forked parts call it
    with pytest.raises(DeltavaultError, match=r"restore process \d+ ended \(killed by SIGKILL\)"):
        run_restore(repo, snap, RestoreOptions(tmp_path / "t", processes=2), record=False)


def test_a_part_error_is_raised_as_what_it_was(repo: api.Repository, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    snap = api.backup(repo, [_source(tmp_path / "src")]).snapshot

    def refuse(*_a: object, **_k: object) -> int:
        raise UnsafePath("t1/s0: directory was replaced during the restore")

    monkeypatch.setattr(procs, "run_plan", refuse)
    with pytest.raises(UnsafePath, match="directory was replaced during the restore"):
        run_restore(repo, snap, RestoreOptions(tmp_path / "t", processes=2), record=False)


def test_who_restores_in_several_processes(repo: api.Repository, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1})
    big = Snapshot(time="t", hostname="h", username="u", paths=["/x"], tree="00",
                   summary={"files_new": SPLIT_FILES - 10, "files_unmodified": 10})
    small = Snapshot(time="t", hostname="h", username="u", paths=["/x"], tree="00",
                     summary={"files_new": SPLIT_FILES - 1})
    t = tmp_path / "t"
    assert processes_for(repo, big, RestoreOptions(t)) == 2
    assert processes_for(repo, small, RestoreOptions(t)) == 1
    assert processes_for(repo, big, RestoreOptions(t, include=["x/a"])) == 1
    assert processes_for(repo, big, RestoreOptions(t, live=tmp_path)) == 1
    assert processes_for(repo, small, RestoreOptions(t, processes=3)) == 3
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0})
    assert processes_for(repo, big, RestoreOptions(t)) == 1
    monkeypatch.setattr(repo, "store", RetryingStore(repo.store))  # as remote stores are
    assert processes_for(repo, big, RestoreOptions(t, processes=2)) == 1


def test_the_cli_reports_its_processes_and_leaves_none_behind(cli_repo: Cli,
                                                             tmp_path: Path) -> None:
    src = _source(tmp_path / "src")
    cli_repo("backup", src)
    target = tmp_path / "t"
    out = cli_repo.json("restore", "latest", "-t", target, "--processes", "2")
    assert out["processes"] == 2 and out["files"] > 100
    assert_same_tree(manifest(src), manifest(target / "src"))
    assert not processes_naming(target)
    assert stat.S_IMODE(os.stat(target / "src" / "t1" / "readonly").st_mode) == 0o555


_HANGING_PARTS = """
import sys, time
from deltavault.restore import procs
procs.run_plan = lambda *a, **k: time.sleep(120)  # parts that would outlive us
from deltavault.cli.main import run
sys.argv = ["deltavault", "restore", "latest", "-q", "--processes", "2", "-t", sys.argv[1]]
run()
"""


@contextlib.contextmanager
def _hanging_restore(cli: Cli, target: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A restore whose two parts hang, running; everything it started is gone after."""
    proc = subprocess.Popen([sys.executable, "-c", _HANGING_PARTS, str(target)],
                            env=cli.env(), stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while len(processes_naming(target)) < 3 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.05)
        assert len(set(processes_naming(target)) - {proc.pid}) == 2
        yield proc
    finally:
        for pid in processes_naming(target):
            os.kill(pid, signal.SIGKILL)
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_parts_die_with_a_killed_coordinator(cli_repo: Cli, tmp_path: Path) -> None:
    cli_repo("backup", _source(tmp_path / "src"))
    target = tmp_path / "t"
    with _hanging_restore(cli_repo, target) as proc:
        proc.kill()
        proc.wait()
        assert not processes_left(target, 5), "parts outlived their coordinator"


def test_ctrl_c_stops_the_parts_and_exits_130(cli_repo: Cli, tmp_path: Path) -> None:
    cli_repo("backup", _source(tmp_path / "src"))
    target = tmp_path / "t"
    with _hanging_restore(cli_repo, target) as proc:
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert b"Traceback" not in err
        assert not processes_naming(target)
