"""Restore safety: hostile trees and hostile targets must not write outside the target."""

from __future__ import annotations

import os
from pathlib import Path

import msgpack
import pytest

from deltavault import api
from deltavault.backup.blobwriter import BlobWriter
from deltavault.repo.packs import BLOB_DATA, BLOB_TREE
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot, now_rfc3339, packlist_root
from tests.support.cli import KDF_ARGS, PASSWORD, Cli


def _file_node(name: bytes, blob: bytes, size: int) -> dict[str, object]:
    return {"name": name, "type": "file", "mode": 0o644, "uid": 0, "gid": 0, "mtime_ns": 0,
            "size": size, "content": [blob], "inode": 1, "links": 1}


def commit_raw_tree(repo: Repository, nodes_for: object) -> str:
    """Store hand-made tree bytes (bypassing Tree's checks) and a snapshot of them."""
    repo.load_index()
    w = BlobWriter(repo, workers=1)
    payload = b"attacker controlled\n"
    blob = w.save_now(payload, BLOB_DATA)
    root_nodes = nodes_for(w, blob, len(payload))  # type: ignore[operator]
    root = w.save_now(msgpack.packb({"v": 1, "nodes": root_nodes}, use_bin_type=True),
                      BLOB_TREE)
    index_file = w.flush()
    assert index_file is not None
    repo.save_index(index_file)
    packs = sorted(w.stats.written_packs)
    snap = Snapshot(time=now_rfc3339(), hostname="evil", username="evil", paths=["/x"],
                    tree=root.hex(), packs_root=packlist_root(packs), packs_count=len(packs))
    return repo.commit_snapshot(snap, packs)


def _flat(name: bytes):  # type: ignore[no-untyped-def]
    return lambda w, blob, size: [_file_node(name, blob, size)]


def _nested(name: bytes):  # type: ignore[no-untyped-def]
    def build(w: BlobWriter, blob: bytes, size: int) -> list[dict[str, object]]:
        sub = w.save_now(msgpack.packb({"v": 1, "nodes": [_file_node(name, blob, size)]},
                                       use_bin_type=True), BLOB_TREE)
        return [{"name": b"d", "type": "dir", "mode": 0o755, "mtime_ns": 0, "subtree": sub}]
    return build


@pytest.mark.parametrize("shape", [_flat(b".."), _flat(b"../evil"), _flat(b"a/../../evil"),
                                   _flat(b"/tmp/evil-abs"), _nested(b"../../evil"),
                                   _nested(b".")])
def test_traversal_names_are_refused(cli: Cli, tmp_path: Path, shape: object) -> None:
    repo = api.init(cli.repo, PASSWORD.encode(), kdf_memory_kib=8192, kdf_time_cost=1)
    sid = commit_raw_tree(repo, shape)
    target = tmp_path / "box" / "target"
    target.mkdir(parents=True)
    before = sorted(p for p in tmp_path.rglob("*") if "repo" not in p.parts)
    proc = cli("restore", sid, "-t", target, expect=None)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert "Traceback" not in err and "unsafe entry name" in err
    after = sorted(p for p in tmp_path.rglob("*") if "repo" not in p.parts)
    assert after == before  # nothing written anywhere, in or outside the target
    assert not Path("/tmp/evil-abs").exists()
    # check sees the same bad tree
    assert cli("check", expect=13).returncode == 13


def test_preexisting_symlink_in_target_is_not_followed(cli: Cli, tmp_path: Path) -> None:
    cli("init", *KDF_ARGS)
    src = tmp_path / "src"
    (src / "a").mkdir(parents=True)
    (src / "a" / "f").write_text("inside\n")
    (src / "g").write_text("file g\n")
    cli("backup", src)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "g").write_text("precious\n")
    target = tmp_path / "target"
    (target / "src").mkdir(parents=True)
    os.symlink(outside, target / "src" / "a")  # a dir in the snapshot, a link in the target
    os.symlink(outside / "g", target / "src" / "g")  # a file in the snapshot
    cli("restore", "latest", "-t", target)
    assert sorted(p.name for p in outside.iterdir()) == ["g"]
    assert (outside / "g").read_text() == "precious\n"
    assert not (target / "src" / "a").is_symlink()
    assert (target / "src" / "a" / "f").read_text() == "inside\n"
    assert not (target / "src" / "g").is_symlink()
    assert (target / "src" / "g").read_text() == "file g\n"


def test_snapshot_symlinks_are_made_after_data(cli: Cli, tmp_path: Path) -> None:
    # A snapshot whose symlink points outside is restored as a link, never written through.
    cli("init", *KDF_ARGS)
    outside = tmp_path / "outside"
    outside.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    os.symlink(outside, src / "escape")
    (src / "escapf").write_text("x")
    cli("backup", src)
    target = tmp_path / "target"
    cli("restore", "latest", "-t", target)
    assert os.readlink(target / "src" / "escape") == str(outside)
    assert list(outside.iterdir()) == []


def test_target_that_is_a_symlink_is_refused(cli: Cli, tmp_path: Path) -> None:
    cli("init", *KDF_ARGS)
    cli("backup", "--stdin", input=b"x")
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    proc = cli("restore", "latest", "-t", tmp_path / "link", expect=1)
    assert "is a symlink" in proc.stderr.decode()
    assert list(real.iterdir()) == []
