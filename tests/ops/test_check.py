"""Tamper tests: a flipped byte or a missing object is found, named and contained."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from deltavault.repo.layout import pack_key
from tests.support.cli import KDF_ARGS, Cli
from tests.support.trees import write_random


@dataclass
class Two:
    cli: Cli
    a: str  # snapshot of src-a (file big.bin)
    b: str  # snapshot of src-b (file other.bin)
    src_a: Path
    src_b: Path


@pytest.fixture
def two(tmp_path: Path, password_file: Path) -> Two:
    cli = Cli(tmp_path / "repo", password_file)
    cli("init", *KDF_ARGS)
    src_a, src_b = tmp_path / "src-a", tmp_path / "src-b"
    for src, name, seed in ((src_a, "big.bin", 1), (src_b, "other.bin", 2)):
        src.mkdir()
        write_random(src / name, 300_000, seed)
        (src / "small.txt").write_text(f"{name}\n")
    a = cli.json("backup", src_a)["snapshot_id"]
    b = cli.json("backup", src_b)["snapshot_id"]
    return Two(cli, a, b, src_a, src_b)


def _packs_of(t: Two, sid: str) -> list[str]:
    lines = (t.cli.repo / "packlists" / sid).read_bytes().splitlines()[1:]
    return [x.decode() for x in lines]


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x40
    path.write_bytes(bytes(data))


def test_flipped_pack_byte(two: Two, tmp_path: Path) -> None:
    t = two
    only_a = sorted(set(_packs_of(t, t.a)) - set(_packs_of(t, t.b)))
    assert only_a, "each backup writes its own pack"
    key = pack_key(only_a[0])
    _flip(t.cli.repo / key, 1000)  # inside the first blob: big.bin's first chunk
    assert t.cli.json("check")["ok"]  # structure is intact; only the bytes changed
    proc = t.cli("check", "--read-data", "--json", expect=13)
    rep = json.loads(proc.stdout)
    assert not rep["ok"]
    objects = [p["object"] for p in rep["problems"]]
    assert key in objects
    affected = [a for p in rep["problems"] for a in p["affected"]]
    assert f"{t.a[:12]}:src-a/big.bin" in affected
    assert not any(a.startswith(t.b[:12]) for a in affected)
    proc = t.cli("check", "--read-data", expect=13)
    text = (proc.stdout + proc.stderr).decode()
    assert only_a[0][:12] in text and "src-a/big.bin" in text
    # restore of the damaged snapshot fails, naming the file, and leaves no wrong bytes
    proc = t.cli("restore", t.a, "-t", tmp_path / "out-a", expect=13)
    err = proc.stderr.decode()
    assert "src-a/big.bin" in err and "Traceback" not in err
    restored = tmp_path / "out-a" / "src-a" / "big.bin"
    assert not restored.exists() or restored.read_bytes() == (t.src_a / "big.bin").read_bytes()
    # dump refuses too
    assert t.cli("dump", t.a, "src-a/big.bin", expect=13).stdout == b""
    # the untouched snapshot restores
    t.cli("restore", t.b, "-t", tmp_path / "out-b")
    assert (tmp_path / "out-b/src-b/other.bin").read_bytes() == (
        t.src_b / "other.bin").read_bytes()


def test_flipped_pack_header_byte(two: Two) -> None:
    t = two
    pid = sorted(set(_packs_of(t, t.a)) - set(_packs_of(t, t.b)))[0]
    path = t.cli.repo / pack_key(pid)
    _flip(path, os.path.getsize(path) - 20)  # inside the encrypted header
    rep = t.cli.json("check", "--read-data", expect=13)
    assert pack_key(pid) in [p["object"] for p in rep["problems"]]
    assert any(a.startswith(t.a[:12]) for p in rep["problems"] for a in p["affected"])


def test_flipped_index_byte(two: Two, tmp_path: Path) -> None:
    t = two
    indexes = sorted((t.cli.repo / "index").iterdir())
    assert len(indexes) == 2
    _flip(indexes[0], 50)
    rep = t.cli.json("check", expect=13)
    assert f"index/{indexes[0].name}" in [p["object"] for p in rep["problems"]]
    # the blobs that index named are now unknown: the snapshot needing them is reported
    proc = t.cli("check", "--read-data", expect=13)
    assert indexes[0].name in (proc.stdout + proc.stderr).decode()


def test_flipped_snapshot_byte(two: Two, tmp_path: Path) -> None:
    t = two
    _flip(t.cli.repo / "snapshots" / t.a, 30)
    rep = t.cli.json("check", "--read-data", expect=13)
    problem = next(p for p in rep["problems"] if p["kind"] == "snapshot")
    assert problem["object"] == f"snapshots/{t.a}"
    assert "does not match its name" in problem["message"]
    # the untouched snapshot still restores by its id
    t.cli("restore", t.b, "-t", tmp_path / "out")
    assert (tmp_path / "out/src-b/other.bin").read_bytes() == (
        t.src_b / "other.bin").read_bytes()
    # the damaged one fails, naming itself
    proc = t.cli("restore", t.a, "-t", tmp_path / "out-a", expect=13)
    assert t.a[:12] in proc.stderr.decode()
    assert not (tmp_path / "out-a").exists()
    # a listing does not hide the damage
    proc = t.cli("snapshots", expect=13)
    assert t.a[:12] in proc.stderr.decode()


def test_deleted_pack_is_reported_missing(two: Two) -> None:
    t = two
    pid = sorted(set(_packs_of(t, t.a)) - set(_packs_of(t, t.b)))[0]
    (t.cli.repo / pack_key(pid)).unlink()
    rep = t.cli.json("check", expect=13)
    missing = [p for p in rep["problems"] if p["object"] == pack_key(pid)]
    assert missing and "missing" in missing[0]["message"]


def test_check_without_damage_reports_unreferenced_pack(two: Two) -> None:
    t = two
    stray = t.cli.repo / "data" / "ff" / ("ff" * 32)
    stray.parent.mkdir(exist_ok=True)
    stray.write_bytes(b"left by a crashed backup")
    rep = t.cli.json("check")
    assert rep["ok"] and rep["unreferenced_packs"] == ["ff" * 32]

