"""Rollback: a swap built from the live tree; the previous tree kept; bad targets refused."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

import pytest

from deltavault import api, sampledata
from deltavault.restore import rollback
from deltavault.restore.rollback import PREVIOUS, STAGING, exchange, flush_tree
from tests.support.cli import Cli
from tests.support.trees import differences


def test_exchange_swaps_two_directories(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    (b / "x").write_text("b")
    exchange(a, b)
    assert (a / "x").read_text() == "b" and (b / "x").read_text() == "a"


def _recording_fsync(monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], list[int]]:
    synced: list[str] = []
    whole: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(rollback, "_syncfs", whole.append)
    return synced, whole


def _tree_of(root: Path, files: int) -> set[str]:
    (root / "d" / "e").mkdir(parents=True)
    os.symlink("nowhere", root / "d" / "link")
    for i in range(files):
        (root / ("d/e" if i % 2 else "d") / f"f{i}").write_bytes(b"x" * i)
    return {str(root), str(root / "d"), str(root / "d" / "e")} | {
        str(p) for p in root.rglob("f*")}


def test_a_small_side_tree_is_fsynced_entry_by_entry_not_the_whole_fs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """syncfs would also wait for every other process's dirty pages."""
    expected = _tree_of(tmp_path / "t", 10)
    synced, whole = _recording_fsync(monkeypatch)
    assert flush_tree(tmp_path / "t", limit=64) == "fsync"
    assert whole == [] and set(synced) == expected and len(synced) == len(expected)
    # every file before the directory that names it
    for path in expected:
        parent = os.path.dirname(path)
        if parent in expected:
            assert synced.index(path) < synced.index(parent)


def test_a_large_side_tree_is_flushed_with_one_syncfs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _tree_of(tmp_path / "t", 70)
    synced, whole = _recording_fsync(monkeypatch)
    assert flush_tree(tmp_path / "t", limit=64) == "syncfs"
    assert synced == [] and len(whole) == 1


def _known_good_then_day1(cli: Cli, tmp_path: Path, scale: float = 0.005,
                          seed: int = 3) -> tuple[Path, Path]:
    """State backed up as known-good, then a trading day; returns (state, good copy)."""
    state = tmp_path / "live" / "trading"
    sampledata.generate(state, scale=scale, seed=seed)
    good = tmp_path / "good"
    shutil.copytree(state, good, symlinks=True)
    repo = api.init(cli.repo, cli.password_file.read_text().strip().encode(),
                    kdf_memory_kib=8192, kdf_time_cost=1)
    api.backup(repo, [state], snapshot_type="full", tags=["known-good"])
    sampledata.mutate(state, day=1, seed=seed)
    api.backup(repo, [state])
    return state, good


def _siblings(state: Path, prefix: str) -> list[Path]:
    return sorted(p for p in state.parent.iterdir() if p.name.startswith(prefix))


def test_rollback_puts_the_tagged_state_back_and_keeps_the_previous(cli: Cli,
                                                                    tmp_path: Path) -> None:
    state, good = _known_good_then_day1(cli, tmp_path)
    (state / "db" / "positions.sqlite").write_bytes(b"corrupted by an erroneous trade")
    bad = tmp_path / "bad"
    shutil.copytree(state, bad, symlinks=True)
    out = cli.json("rollback", "--tag", "known-good", "--target", state)
    assert differences(good, state) == []
    previous = Path(out["previous"])
    assert previous.parent == state.parent and previous.name.startswith(PREVIOUS + "trading-")
    assert differences(bad, previous) == []  # the replaced tree, intact
    assert out["reused_bytes"] > 0 and out["bytes"] > 0
    assert _siblings(state, STAGING) == []
    # a second rollback keeps the first one's previous tree (within its grace period)
    out2 = cli.json("rollback", "--tag", "known-good", "--target", state)
    assert previous.exists() and Path(out2["previous"]).exists()
    assert out2["removed_previous"] == []
    # ... until it is older than --keep-previous-hours
    cli("rollback", "--tag", "known-good", "--target", state, "--keep-previous-hours", "0",
        "--discard-previous")
    assert _siblings(state, PREVIOUS) == []
    assert differences(good, state) == []


def test_discard_previous_leaves_nothing_beside_the_target(cli: Cli, tmp_path: Path) -> None:
    state, good = _known_good_then_day1(cli, tmp_path)
    cli("rollback", "--tag", "known-good", "--target", state, "--discard-previous")
    assert differences(good, state) == []
    assert sorted(p.name for p in state.parent.iterdir()) == ["trading"]


@pytest.mark.parametrize("reuse", ["metadata", "link", "content", "none"])
def test_every_reuse_mode_gives_the_snapshot(cli: Cli, tmp_path: Path, reuse: str) -> None:
    state, good = _known_good_then_day1(cli, tmp_path)
    out = cli.json("rollback", "--tag", "known-good", "--target", state, "--reuse", reuse,
                   "--discard-previous")
    assert differences(good, state) == []
    assert (out["reused_bytes"] == 0) == (reuse == "none")


def _inodes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.stat().st_ino for p in root.rglob("*") if p.is_file()}


def test_reuse_link_shares_unchanged_files_with_the_replaced_tree(cli: Cli,
                                                                 tmp_path: Path) -> None:
    state, good = _known_good_then_day1(cli, tmp_path)
    victim = state / "db" / "positions.sqlite"
    victim.write_bytes(b"corrupted by an erroneous trade")
    bad = tmp_path / "bad"
    shutil.copytree(state, bad, symlinks=True)
    out = cli.json("rollback", "--tag", "known-good", "--target", state, "--reuse", "link")
    assert differences(good, state) == []
    previous = Path(out["previous"])
    assert differences(bad, previous) == []
    new, old = _inodes(state), _inodes(previous)
    linked = {name for name in new if new[name] == old.get(name)}
    # the files the day left alone are the same inodes (nothing copied) ...
    assert linked and out["reused_files"] >= len(linked)
    assert sum((state / name).stat().st_size for name in linked) <= out["reused_bytes"]
    # ... and the files it changed are new ones, with the snapshot's bytes
    assert "db/positions.sqlite" not in linked
    changed = {n for n in new
               if not (bad / n).exists() or (good / n).read_bytes() != (bad / n).read_bytes()}
    assert changed and changed & linked == set()


def test_a_changed_file_with_its_old_size_and_mtime_is_not_trusted(cli: Cli,
                                                                  tmp_path: Path) -> None:
    state, good = _known_good_then_day1(cli, tmp_path)
    name = next(p.name for p in sorted((good / "config").iterdir()) if p.is_file())
    victim = state / "config" / name
    shutil.copy2(good / "config" / name, victim)
    st = victim.stat()
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 1  # same size ...
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and the same mtime
    cli("rollback", "--tag", "known-good", "--target", state, "--discard-previous")
    assert differences(good, state) == []


def test_rollback_needs_a_target(cli: Cli, tmp_path: Path) -> None:
    state, good = _known_good_then_day1(cli, tmp_path)
    proc = cli("rollback", "--tag", "known-good", expect=2, cwd=state)
    assert "--target" in proc.stderr.decode()
    assert differences(good, state) != []  # nothing happened to the current directory
    env = cli.env(DELTAVAULT_ROLLBACK_TARGET=str(state))
    cli("rollback", "--tag", "known-good", "--discard-previous", env=env)
    assert differences(good, state) == []


@pytest.mark.parametrize("what", ["root", "home", "repository", "repository parent",
                                  "symlink"])
def test_dangerous_targets_are_refused(cli: Cli, tmp_path: Path, what: str) -> None:
    state, _good = _known_good_then_day1(cli, tmp_path)
    env = cli.env()
    target: Path = Path("/")
    if what == "home":
        env["HOME"] = str(state)
        target = state
    elif what == "repository":
        target = cli.repo
    elif what == "repository parent":
        target = cli.repo.parent
    elif what == "symlink":
        target = tmp_path / "link"
        os.symlink(state, target)
    before = sorted(os.listdir(tmp_path))
    proc = cli("rollback", "--tag", "known-good", "--target", target, expect=1, env=env)
    assert "refusing to roll back" in proc.stderr.decode()
    assert sorted(os.listdir(tmp_path)) == before
    assert not _siblings(state, STAGING) and not _siblings(state, PREVIOUS)


def test_a_concurrent_rollback_of_the_same_directory_is_refused(cli: Cli,
                                                               tmp_path: Path) -> None:
    state, good = _known_good_then_day1(cli, tmp_path)
    fd = os.open(state.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a running rollback holds
        proc = cli("rollback", "--tag", "known-good", "--target", state, expect=1)
        assert "another rollback" in proc.stderr.decode()
    finally:
        os.close(fd)
    assert differences(good, state) != []


def test_json_reports_what_was_taken_from_the_live_tree(cli: Cli, tmp_path: Path) -> None:
    state, _good = _known_good_then_day1(cli, tmp_path)
    out = json.loads(cli("rollback", "--tag", "known-good", "--target", state, "--json",
                         "--discard-previous").stdout)
    assert set(out) >= {"snapshot_id", "target", "previous", "files", "bytes", "reused_files",
                        "reused_bytes", "duration_s", "removed_previous"}
    assert out["previous"] is None
    # after one day of change most of the tree is still the snapshot's
    assert out["reused_bytes"] >= out["bytes"] // 2


def test_iter_tree_lists_every_entry_once_and_does_not_follow_links(tmp_path: Path) -> None:
    from deltavault.restore.fsdir import iter_tree

    (tmp_path / "a" / "b").mkdir(parents=True)
    (tmp_path / "a" / "b" / "f").write_text("x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "g").write_text("y")
    os.symlink(tmp_path / "outside", tmp_path / "a" / "link")
    got = sorted(os.path.relpath(e.path, tmp_path / "a") for e in iter_tree(tmp_path / "a"))
    assert got == ["b", "b/f", "link"]
