"""Hostile trees and hostile targets: symlink swaps while restoring, deep chains, odd names."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from deltavault import api
from deltavault.backup.blobwriter import BlobWriter
from deltavault.errors import DeltavaultError
from deltavault.repo.packs import BLOB_DATA, BLOB_TREE
from deltavault.repo.tree import Tree
from deltavault.restore.restorer import RestoreOptions, run_restore
from tests.restore.snapshots import (
    check_deep,
    commit_tree,
    deep_snapshot,
    dir_node,
    file_node,
    remove,
)
from tests.support.cli import PASSWORD, Cli

DEPTH = 10_000


def _swapper(victim: Path, outside: Path, stop: threading.Event) -> None:
    """Keep replacing ``victim`` (a directory) by a symlink to ``outside`` and back."""
    aside = victim.with_name(victim.name + ".real")
    while not stop.is_set():
        try:
            os.rename(victim, aside)
            os.symlink(outside, victim)
            os.unlink(victim)
            os.rename(aside, victim)
        except OSError:
            continue


def test_a_directory_swapped_for_a_symlink_during_restore_never_redirects_a_write(
        repo: api.Repository, tmp_path: Path) -> None:
    src = tmp_path / "src"
    for d in range(8):
        (src / "a" / f"d{d}").mkdir(parents=True)
        for f in range(40):
            (src / "a" / f"d{d}" / f"f{f}").write_bytes(os.urandom(64) + bytes([d, f]))
    snap = api.backup(repo, [src]).snapshot
    outside = tmp_path / "outside"
    outside.mkdir()
    for round_ in range(6):
        target = tmp_path / f"target{round_}"
        (target / "src" / "a").mkdir(parents=True)
        stop = threading.Event()
        t = threading.Thread(target=_swapper, args=(target / "src" / "a", outside, stop))
        t.start()
        try:
            run_restore(repo, snap, RestoreOptions(target, workers=2), record=False)
        except DeltavaultError as exc:
            assert "replaced" in str(exc) or "could not be written" in str(exc), exc
        finally:
            stop.set()
            t.join()
        assert list(outside.iterdir()) == [], f"round {round_} wrote outside the target"


@pytest.mark.timeout(1800)
def test_a_10000_level_tree_restores_checks_and_lists(cli_repo: Cli, tmp_path: Path) -> None:
    repo = api.open(cli_repo.repo, PASSWORD.encode())
    sid = deep_snapshot(repo, DEPTH)
    target = tmp_path / "deep"
    try:
        proc = cli_repo("restore", sid, "-t", target, "--json", timeout=1200)
        assert b'"files": 10000' in proc.stdout
        check_deep(target, DEPTH)
        cli_repo("check", timeout=1200)
        assert sum(1 for _ in api.ls(repo, sid)) == 2 * DEPTH  # top, then f and d per level
        assert cli_repo("dump", sid, "top/" + "d/" * (DEPTH - 1) + "f").stdout == b"level\n"
    finally:
        remove(target)


def test_names_that_are_not_utf8_long_or_odd_round_trip(repo: api.Repository,
                                                       tmp_path: Path) -> None:
    names = [b"\xff\xfe-not-utf8", b"new\nline", b"-dash", b"x" * 255, b" space ",
             b".deltavault-tmp-looks-like-ours", "日本語".encode(), b"back\\slash"]
    repo.load_index()
    w = BlobWriter(repo, workers=1)
    nodes = []
    for i, name in enumerate(names):
        data = f"content {i}\n".encode()
        nodes.append(file_node(name, [w.save_now(data, BLOB_DATA)], len(data)))
    sub = w.save_now(Tree(nodes).encode(), BLOB_TREE)
    root = w.save_now(Tree([dir_node(b"top", sub)]).encode(), BLOB_TREE)
    snap = repo.find_snapshot(commit_tree(repo, w, root, "top"))
    target = tmp_path / "t"
    for _ in range(2):  # fresh, then over what the first one made
        run_restore(repo, snap, RestoreOptions(target), record=False)
        top = os.fsencode(target / "top")
        got = {n: Path(os.fsdecode(os.path.join(top, n))).read_bytes()
               for n in os.listdir(top)}
        assert got == {n: f"content {i}\n".encode() for i, n in enumerate(names)}
