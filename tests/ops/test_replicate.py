"""copy: byte-identical replicas between backends, idempotent and resumable."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from deltavault import api
from deltavault.errors import BackendUnavailable, LedgerError, UserError
from deltavault.ops.audit import audit
from deltavault.ops.prune import run_prune
from deltavault.ops.replicate import copy_snapshots
from deltavault.repo.layout import REPLICA_KEY, pack_key
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import decode_packlist
from deltavault.store.local import LocalStore
from deltavault.store.testing import FaultyStore
from tests.e2e.test_backends import full_and_diff
from tests.support.backends import MakeLocation
from tests.support.cli import API_PASSWORD, KDF, trading_state
from tests.support.trees import assert_same_files


@pytest.fixture
def source(tmp_path: Path) -> tuple[Repository, Path]:
    """A local repository with a full and a diff snapshot of sample trading state."""
    src = trading_state(tmp_path / "state", scale=0.004)
    repo = api.init(tmp_path / "A", API_PASSWORD, pack_size=1 << 18, **KDF)
    full_and_diff(repo, src)
    return repo, src


def objects(store: LocalStore, skip: tuple[str, ...] = ("locks/", REPLICA_KEY)) -> dict[str, str]:
    return {i.key: hashlib.sha256(store.get(i.key)).hexdigest()
            for i in store.list("") if not i.key.startswith(skip)}


def verify_replica(dst: Repository | str | os.PathLike[str] | object, src: Repository,
                   tmp_path: Path, state: Path) -> None:
    replica = api.open(dst, API_PASSWORD)  # type: ignore[arg-type]
    report = api.check(replica, read_data=True)
    assert report.ok, [p.to_dict() for p in report.problems]
    assert audit(replica.store, src.config.ledger_verifier_key).ok
    target = tmp_path / f"restore-{os.urandom(4).hex()}"
    api.restore(replica, "latest", target)
    assert_same_files(state, target / "state")


def test_full_copy_is_byte_identical_and_idempotent(source: tuple[Repository, Path],
                                                    tmp_path: Path) -> None:
    repo, state = source
    report = copy_snapshots(repo, tmp_path / "B")
    assert report.ok and report.initialised and len(report.snapshots) == 2
    a, b = LocalStore(tmp_path / "A"), LocalStore(tmp_path / "B")
    assert objects(b) == objects(a)  # config, keys, ledger-key, packs, ledger: all identical
    verify_replica(tmp_path / "B", repo, tmp_path, state)

    again = copy_snapshots(repo, tmp_path / "B")
    assert again.objects_copied == 0 and not again.initialised
    # check/restore on the replica recorded nothing: its ledger is still the source's
    assert b.get("ledger/checkpoint") == a.get("ledger/checkpoint")

    (state / "new-file.csv").write_bytes(b"t,px\n1,100.5\n" * 1000)
    api.backup(repo, [state])
    third = copy_snapshots(repo, tmp_path / "B")
    assert third.objects_copied > 0 and len(third.snapshots) == 3
    assert objects(b) == objects(a)
    verify_replica(tmp_path / "B", repo, tmp_path, state)


def test_interrupted_copy_resumes(source: tuple[Repository, Path], tmp_path: Path) -> None:
    repo, state = source
    dst = FaultyStore(LocalStore(tmp_path / "B", create=True), fail_after=8, ops=("put",))
    with pytest.raises(BackendUnavailable):
        copy_snapshots(repo, dst)
    with pytest.raises(Exception, match="no repository"):  # config is written last
        api.open(tmp_path / "B", API_PASSWORD)
    report = copy_snapshots(repo, tmp_path / "B")
    assert report.objects_present >= 5 and report.initialised
    assert objects(LocalStore(tmp_path / "B")) == objects(LocalStore(tmp_path / "A"))
    verify_replica(tmp_path / "B", repo, tmp_path, state)


def test_copy_chosen_snapshot(source: tuple[Repository, Path], tmp_path: Path) -> None:
    repo, _state = source
    full = api.snapshots(repo)[0]
    run_prune(repo)  # one index file for every pack: the subset copy must index anew
    report = copy_snapshots(repo, tmp_path / "B", [full.id[:10]])
    assert report.snapshots == [full.id] and report.indexes_written == 1
    b = LocalStore(tmp_path / "B")
    wanted = set(decode_packlist(repo.store.get(f"packlists/{full.id}")))
    assert {k.key.rsplit("/", 1)[-1] for k in b.list("data/")} == wanted
    assert all(b.exists(pack_key(p)) for p in wanted)
    replica = api.open(tmp_path / "B", API_PASSWORD)
    assert [s.id for s in api.snapshots(replica)] == [full.id]
    assert api.check(replica, read_data=True).ok
    api.restore(replica, full.id, tmp_path / "out")
    again = copy_snapshots(repo, tmp_path / "B", [full.id])
    assert again.objects_copied == 0 and again.indexes_written == 0


def test_damaged_source_objects_are_not_copied(source: tuple[Repository, Path],
                                               tmp_path: Path) -> None:
    repo, _state = source
    victim = sorted(p for p in (tmp_path / "A" / "data").rglob("*") if p.is_file())[0]
    victim.chmod(0o644)
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    report = copy_snapshots(repo, tmp_path / "B")
    assert not report.ok
    assert report.damaged_in_source == [f"data/{victim.parent.name}/{victim.name}"]
    assert not LocalStore(tmp_path / "B").exists(report.damaged_in_source[0])


def test_refuses_other_repository_and_forked_replica(source: tuple[Repository, Path],
                                                     tmp_path: Path) -> None:
    repo, state = source
    other = api.init(tmp_path / "C", API_PASSWORD, **KDF)
    with pytest.raises(UserError, match="different repository"):
        copy_snapshots(repo, other)
    (tmp_path / "D").mkdir()
    (tmp_path / "D" / "stray").write_bytes(b"x")
    with pytest.raises(UserError, match="not empty"):
        copy_snapshots(repo, tmp_path / "D")

    copy_snapshots(repo, tmp_path / "B")
    replica = api.open(tmp_path / "B", API_PASSWORD)
    api.backup(replica, [state])  # written to directly: its ledger forks
    api.backup(repo, [state], tags=["source"])
    with pytest.raises(LedgerError, match="forked"):
        copy_snapshots(repo, tmp_path / "B")


def test_keyless_copy_from_a_bare_store(source: tuple[Repository, Path],
                                        tmp_path: Path) -> None:
    repo, state = source
    report = copy_snapshots(LocalStore(tmp_path / "A"), tmp_path / "B")
    assert report.ok
    verify_replica(tmp_path / "B", repo, tmp_path, state)


@pytest.mark.parametrize("backend_location", ["s3", "sftp", "rest"], indirect=True)
def test_copy_local_to_remote_and_back(source: tuple[Repository, Path], tmp_path: Path,
                                       backend_location: MakeLocation) -> None:
    repo, state = source
    remote = backend_location("replica")
    report = copy_snapshots(repo, remote)
    assert report.ok and report.initialised
    verify_replica(remote, repo, tmp_path, state)
    remote_repo = api.open(remote, API_PASSWORD)
    back = copy_snapshots(remote_repo, tmp_path / "C")  # remote → local
    assert back.ok
    assert objects(LocalStore(tmp_path / "C")) == objects(LocalStore(tmp_path / "A"))
