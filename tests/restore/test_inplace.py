"""Restore over an existing tree: nothing is lost before its replacement is whole.

Issue 12: restore used to truncate every existing file before any blob was
verified and unlink it if a blob was damaged, and wrote through hard links
into files outside the target. Each test here fails on that code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deltavault import api
from deltavault.repo.layout import pack_key
from deltavault.restore.fsdir import TMP_PREFIX
from tests.support.cli import PASSWORD, Cli

#: every case in one process and split over two (restore/procs.py)
pytestmark = pytest.mark.parametrize("processes", ["1", "2"])


def _source(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _damage_blob_of(cli: Cli, data: bytes) -> None:
    """Flip one byte inside the stored blob that holds ``data`` (a one-chunk file)."""
    repo = api.open(cli.repo, PASSWORD.encode())
    repo.load_index()
    loc = repo.locate(repo.crypto.blob_id(data))
    pack = cli.repo / pack_key(loc.pack_id)
    raw = bytearray(pack.read_bytes())
    raw[loc.offset + loc.length // 2] ^= 0x40
    pack.write_bytes(bytes(raw))


def _temp_leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(os.fsdecode(TMP_PREFIX))]


def test_existing_files_are_replaced_by_rename_not_written_through(
        cli_repo: Cli, tmp_path: Path, processes: str) -> None:
    src = _source(tmp_path / "src", {"a.txt": b"snapshot a\n", "d/b.txt": b"snapshot b\n"})
    cli_repo("backup", src)
    target = tmp_path / "target"
    live = _source(target / "src", {"a.txt": b"live a, longer than the snapshot's\n",
                                    "d/b.txt": b"live b\n", "d/extra.txt": b"not in it\n"})
    outside = tmp_path / "outside"
    outside.mkdir()
    os.link(live / "a.txt", outside / "alias")  # a hard link out of the target
    cli_repo("restore", "latest", "-t", target, "--processes", processes)
    assert (live / "a.txt").read_bytes() == b"snapshot a\n"
    assert (live / "d" / "b.txt").read_bytes() == b"snapshot b\n"
    assert (live / "d" / "extra.txt").read_bytes() == b"not in it\n"  # not in the snapshot
    # the old code truncated a.txt in place and so rewrote the file outside
    assert (outside / "alias").read_bytes() == b"live a, longer than the snapshot's\n"
    assert not _temp_leftovers(target)


def test_a_damaged_blob_leaves_the_existing_file_untouched(
        cli_repo: Cli, tmp_path: Path, processes: str) -> None:
    src = _source(tmp_path / "src", {"good.txt": b"good snapshot data\n"})
    cli_repo("backup", src)
    bad = b"this blob will be damaged in storage\n" * 3
    (src / "bad.txt").write_bytes(bad)
    cli_repo("backup", src)
    _damage_blob_of(cli_repo, bad)
    target = tmp_path / "target"
    live = _source(target / "src", {"good.txt": b"old good\n",
                                    "bad.txt": b"the only good copy of this file\n"})
    proc = cli_repo("restore", "latest", "-t", target, "--processes", processes, expect=13)
    err = proc.stderr.decode()
    assert "bad.txt" in err and "damaged" in err and "Traceback" not in err
    assert (live / "bad.txt").read_bytes() == b"the only good copy of this file\n"
    assert (live / "good.txt").read_bytes() == b"good snapshot data\n"
    assert not _temp_leftovers(target)


def test_a_new_file_with_a_damaged_blob_is_not_left_half_made(
        cli_repo: Cli, tmp_path: Path, processes: str) -> None:
    data = b"x" * 5000 + b"unique tail\n"
    src = _source(tmp_path / "src", {"f.bin": data, "ok.txt": b"fine\n"})
    cli_repo("backup", src)
    _damage_blob_of(cli_repo, data)
    target = tmp_path / "target"
    cli_repo("restore", "latest", "-t", target, "--processes", processes, expect=13)
    assert not (target / "src" / "f.bin").exists()
    assert (target / "src" / "ok.txt").read_bytes() == b"fine\n"


def test_a_file_where_the_snapshot_has_a_directory_is_replaced_when_complete(
        cli_repo: Cli, tmp_path: Path, processes: str) -> None:
    src = _source(tmp_path / "src", {"a/inner.txt": b"inner\n"})
    cli_repo("backup", src)
    target = tmp_path / "target"
    _source(target / "src", {"a": b"a file in the way\n"})
    cli_repo("restore", "latest", "-t", target, "--processes", processes)
    assert (target / "src" / "a" / "inner.txt").read_bytes() == b"inner\n"
    assert not _temp_leftovers(target)


def test_a_directory_where_the_snapshot_has_a_file_is_kept_and_reported(
        cli_repo: Cli, tmp_path: Path, processes: str) -> None:
    src = _source(tmp_path / "src", {"g": b"a file in the snapshot\n", "h": b"h\n"})
    cli_repo("backup", src)
    target = tmp_path / "target"
    _source(target / "src", {"g/precious.txt": b"precious\n"})
    proc = cli_repo("restore", "latest", "-t", target, "--processes", processes, expect=1)
    assert "directory is in the way" in proc.stderr.decode()
    assert (target / "src" / "g" / "precious.txt").read_bytes() == b"precious\n"
    assert (target / "src" / "h").read_bytes() == b"h\n"
    assert not _temp_leftovers(target)


def test_leftovers_of_an_interrupted_restore_are_removed(
        cli_repo: Cli, tmp_path: Path, processes: str) -> None:
    src = _source(tmp_path / "src", {"d/a.txt": b"a\n"})
    cli_repo("backup", src)
    target = tmp_path / "target"
    cli_repo("restore", "latest", "-t", target, "--processes", processes)
    left = target / "src" / "d" / (os.fsdecode(TMP_PREFIX) + "0123456789abcdef")
    left.write_bytes(b"half a file")
    cli_repo("restore", "latest", "-t", target, "--processes", processes)
    assert not left.exists()
    assert (target / "src" / "d" / "a.txt").read_bytes() == b"a\n"


def test_restore_twice_gives_the_same_tree_and_metadata(
        cli_repo: Cli, tmp_path: Path, processes: str) -> None:
    src = _source(tmp_path / "src", {"a": b"1\n", "d/b": b"2\n", "d/e/c": b"3\n"})
    os.chmod(src / "d" / "b", 0o600)
    os.utime(src / "d" / "e" / "c", ns=(1_600_000_000_000_000_000,) * 2)
    os.symlink("d/b", src / "link")
    cli_repo("backup", src)
    target = tmp_path / "target"
    cli_repo("restore", "latest", "-t", target, "--processes", processes)
    (target / "src" / "d" / "b").write_bytes(b"changed")
    os.chmod(target / "src" / "d" / "b", 0o644)
    os.unlink(target / "src" / "link")
    os.symlink("/etc/passwd", target / "src" / "link")
    cli_repo("restore", "latest", "-t", target, "--processes", processes)
    assert (target / "src" / "d" / "b").read_bytes() == b"2\n"
    assert (target / "src" / "d" / "b").stat().st_mode & 0o777 == 0o600
    assert (target / "src" / "d" / "e" / "c").stat().st_mtime_ns == 1_600_000_000_000_000_000
    assert os.readlink(target / "src" / "link") == "d/b"
