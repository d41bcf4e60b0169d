"""``repair index`` rebuilds the index from the pack headers: no replica needed."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from deltavault import api
from deltavault.repo.packs import TRAILER_SIZE
from tests.support.cli import Cli
from tests.support.history import (  # noqa: F401 (fixtures)
    History,
    assert_restores,
    assert_sound,
    history_cli,
    history_copy,
    history_template,
)


def _flip(path: Path, offset: int) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def test_damaged_index_is_rebuilt_from_pack_headers(cli: Cli, hist: History,
                                                    tmp_path: Path) -> None:
    index = sorted((hist.repo / "index").iterdir())[0]
    _flip(index, 40)
    assert f"index/{index.name}" in cli("check", expect=13).stderr.decode()
    report = cli.json("repair", "index")
    assert report["ok"] and report["packs"] == len(list((hist.repo / "data").rglob("*/*")))
    assert not index.exists()
    cli("check", "--read-data")
    assert assert_sound(hist, tmp_path / "out", read_data=True) == len(hist.states)


def test_every_index_file_lost(cli: Cli, hist: History, tmp_path: Path) -> None:
    for index in (hist.repo / "index").iterdir():
        index.unlink()
    cli("check", expect=13)
    cli("prune", expect=13)  # blobs without a location: nothing may be deleted
    cli("repair", "index")
    cli("prune")
    assert_sound(hist, tmp_path / "out")


def test_unreadable_header_keeps_what_the_old_index_knew(cli: Cli, hist: History,
                                                         tmp_path: Path) -> None:
    pack = max((p for p in (hist.repo / "data").rglob("*") if p.is_file()),
               key=lambda p: p.stat().st_size)
    data = pack.read_bytes()
    (hlen, _magic) = struct.unpack("<I4s", data[-TRAILER_SIZE:])
    _flip(pack, len(data) - TRAILER_SIZE - hlen // 2)  # inside the encrypted header only
    proc = cli("repair", "index", expect=13)
    assert pack.name in proc.stderr.decode()
    report = cli.json("repair", "index", expect=13)
    assert report["unreadable"][0]["pack"].endswith(pack.name)
    assert not report["unreadable"][0]["kept"].startswith("0 ")
    # the blobs are intact and still indexed: every snapshot restores
    repo = hist.open()
    assert api.check(repo).ok
    assert assert_restores(hist, tmp_path / "out", repo=repo) == len(hist.states)


@pytest.mark.parametrize("attack", ["delete", "replace"])
def test_missing_or_replaced_pack_keeps_what_the_old_index_knew(
        cli: Cli, hist: History, tmp_path: Path, attack: str) -> None:
    """Found by the storage attacker: with a pack deleted, or another pack's bytes under its
    name, ``repair index`` exited 0 and dropped the pack's blobs from the index, so once the
    pack was back (from a backup of the bucket) its snapshots no longer restored."""
    packs = sorted((p for p in (hist.repo / "data").rglob("*") if p.is_file()),
                   key=lambda p: p.stat().st_size)
    pack, other = packs[-1], packs[-2]
    original = pack.read_bytes()
    pack.chmod(0o644)
    if attack == "delete":
        pack.unlink()
    else:
        pack.write_bytes(other.read_bytes())
    report = cli.json("repair", "index", expect=13)
    assert [u["pack"] for u in report["unreadable"]] == [f"data/{pack.parent.name}/{pack.name}"]
    assert not report["unreadable"][0]["kept"].startswith("0 ")
    pack.write_bytes(original)  # the pack is back: every snapshot restores
    repo = hist.open()
    assert api.check(repo).ok
    assert assert_restores(hist, tmp_path / "out", repo=repo) == len(hist.states)
