"""repair: damaged and missing packs of A replaced from its replica B."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deltavault import api
from deltavault.errors import UserError
from deltavault.ops.repair import repair_from
from deltavault.ops.replicate import copy_snapshots
from deltavault.repo.repository import Repository
from tests.e2e.test_backends import full_and_diff
from tests.support.cli import API_PASSWORD, KDF, run_cli, trading_state
from tests.support.trees import assert_same_files


def damage(root: Path, flips: int, deletes: int) -> list[str]:
    """Flip a byte in ``flips`` packs, delete ``deletes`` more; returns their keys."""
    packs = sorted(p for p in (root / "data").rglob("*") if p.is_file())
    assert len(packs) >= flips + deletes
    for p in packs[:flips]:
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0x40
        p.chmod(0o644)
        p.write_bytes(bytes(data))
    for p in packs[flips:flips + deletes]:
        p.unlink()
    return [f"data/{p.parent.name}/{p.name}" for p in packs[:flips + deletes]]


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Repository, Path]:
    state = trading_state(tmp_path / "state", scale=0.004)
    repo = api.init(tmp_path / "A", API_PASSWORD, pack_size=1 << 18, **KDF)
    full_and_diff(repo, state)
    assert copy_snapshots(repo, tmp_path / "B").ok
    return repo, state


def test_repair_from_replica_cli(pair: tuple[Repository, Path], tmp_path: Path) -> None:
    _repo, state = pair
    damaged = damage(tmp_path / "A", flips=3, deletes=1)
    a = str(tmp_path / "A")

    check = run_cli("check", "--read-data", "--repo", a, "--json", env={})
    assert check.returncode == 13, check.stderr
    found = {p["object"] for p in json.loads(check.stdout)["problems"]}
    assert set(damaged) <= found

    fixed = run_cli("repair", "--repo", a, "--from-repo", str(tmp_path / "B"), "--json", env={})
    assert fixed.returncode == 0, fixed.stderr
    report = json.loads(fixed.stdout)
    assert sorted(r["key"] for r in report["repaired"]) == sorted(damaged)
    assert {r["key"]: r["was"] for r in report["repaired"]}[damaged[3]] == "missing"
    assert report["not_repaired"] == [] and report["check_after"]["ok"]

    assert run_cli("check", "--read-data", "--repo", a, env={}).returncode == 0
    api.restore(api.open(a, API_PASSWORD), "latest", tmp_path / "out")
    assert_same_files(state, tmp_path / "out" / "state")


def test_repair_index_snapshot_and_packlist(pair: tuple[Repository, Path],
                                            tmp_path: Path) -> None:
    _repo, _state = pair
    a = tmp_path / "A"
    index = sorted((a / "index").iterdir())[0]
    index.chmod(0o644)
    index.write_bytes(index.read_bytes()[:-3] + b"xyz")
    snap = sorted((a / "snapshots").iterdir())[0]
    snap.unlink()
    (a / "packlists" / snap.name).unlink()
    report = repair_from(api.open(a, API_PASSWORD), tmp_path / "B")
    keys = {r["key"] for r in report.repaired}
    assert {f"index/{index.name}", f"snapshots/{snap.name}", f"packlists/{snap.name}"} <= keys
    assert report.ok and report.check_after is not None and report.check_after.ok
    assert len(api.snapshots(api.open(a, API_PASSWORD))) == 2


def test_replica_damaged_too_is_reported(pair: tuple[Repository, Path], tmp_path: Path) -> None:
    damaged = damage(tmp_path / "A", flips=1, deletes=0)
    twin = tmp_path / "B" / damaged[0]
    twin.chmod(0o644)
    twin.write_bytes(b"also broken")
    report = repair_from(api.open(tmp_path / "A", API_PASSWORD), tmp_path / "B")
    assert not report.ok
    assert report.not_repaired == [{"key": damaged[0],
                                    "reason": "the replica's copy is damaged too"}]
    cli = run_cli("repair", "--repo", str(tmp_path / "A"), "--from-repo", str(tmp_path / "B"),
                  env={})
    assert cli.returncode == 13
    assert cli.stderr.strip().splitlines()[-1].startswith("deltavault: error: repair left")


def test_repair_refuses_an_unrelated_repository(pair: tuple[Repository, Path],
                                                tmp_path: Path) -> None:
    repo, _state = pair
    other = api.init(tmp_path / "C", API_PASSWORD, **KDF)
    with pytest.raises(UserError, match="not a replica"):
        repair_from(repo, other)
