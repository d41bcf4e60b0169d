"""The public Python API, used without the CLI."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from deltavault import api
from deltavault.errors import (
    IntegrityError,
    RepositoryLocked,
    RepositoryNotFound,
    SnapshotNotFound,
    UserError,
    WrongPassword,
)
from deltavault.repo.repository import Repository
from tests.support.cli import PASSWORD
from tests.support.trees import assert_same_tree, manifest, write_random

PW = PASSWORD.encode()


def _init(path: Path) -> Repository:
    return api.init(path, PW, kdf_memory_kib=8192, kdf_time_cost=1)


def test_init_backup_restore_check(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "a.csv").write_bytes(b"ts,px\n1,2\n" * 1000)
    write_random(src / "blob.bin", 3 << 20, seed=1)
    repo = _init(tmp_path / "repo")
    first = api.backup(repo, [src], tags=["eod"]).snapshot
    assert first.type == "full" and first.tags == ["eod"]
    (src / "d" / "a.csv").write_bytes(b"changed")
    second = api.backup(repo, [src]).snapshot
    assert second.type == "incr" and second.parent == first.id and second.chain_depth == 1
    assert second.summary["files_changed"] == 1 and second.summary["files_unmodified"] == 1

    reopened = api.open(tmp_path / "repo", PW)
    assert [s.id for s in api.snapshots(reopened)] == [first.id, second.id]
    api.restore(reopened, "latest", tmp_path / "out")
    assert_same_tree(manifest(src), manifest(tmp_path / "out" / "src"))
    api.restore(reopened, first.id[:8], tmp_path / "old", include=["src/d"])
    assert (tmp_path / "old" / "src" / "d" / "a.csv").read_bytes() == b"ts,px\n1,2\n" * 1000
    assert not (tmp_path / "old" / "src" / "blob.bin").exists()
    report = api.check(reopened, read_data=True)
    assert report.ok and report.snapshots == 2 and report.blobs_verified >= 3


def test_stdin_backup(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    snap = api.backup(repo, stdin=io.BytesIO(b"pg_dump output" * 100),
                      stdin_filename="db.sql").snapshot
    api.restore(repo, snap.id, tmp_path / "out")
    assert (tmp_path / "out" / "db.sql").read_bytes() == b"pg_dump output" * 100


def test_identical_data_is_stored_once(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    write_random(src / "a", 2 << 20, seed=7)
    (src / "b").write_bytes((src / "a").read_bytes())
    repo = _init(tmp_path / "repo")
    result = api.backup(repo, [src])
    assert result.snapshot.summary["bytes_plain_added"] < (2 << 20) + 64 * 1024
    again = api.backup(repo, [src], snapshot_type="full")
    assert again.snapshot.summary["blobs_added"] == 0
    assert again.snapshot.summary["bytes_added"] == 0


def test_wrong_password(tmp_path: Path) -> None:
    _init(tmp_path / "repo")
    with pytest.raises(WrongPassword):
        api.open(tmp_path / "repo", b"not it")


def test_missing_repository(tmp_path: Path) -> None:
    with pytest.raises(RepositoryNotFound):
        api.open(tmp_path / "nothing", PW)
    (tmp_path / "empty").mkdir()
    with pytest.raises(RepositoryNotFound):
        api.open(tmp_path / "empty", PW)


def test_init_refuses_existing_repository_and_empty_password(tmp_path: Path) -> None:
    _init(tmp_path / "repo")
    with pytest.raises(UserError):
        _init(tmp_path / "repo")
    with pytest.raises(UserError):
        api.init(tmp_path / "other", b"", kdf_memory_kib=8192, kdf_time_cost=1)


@pytest.mark.parametrize("edit", [
    lambda d: d.update(pack_size=1 << 20),
    lambda d: d["compression"].update(level=19),
    lambda d: d["ledger"].update(verifier_key="attacker"),
    lambda d: d.update(added_by_attacker=1),
])
def test_config_with_altered_field_is_refused(tmp_path: Path, edit: object) -> None:
    _init(tmp_path / "repo")
    path = tmp_path / "repo" / "config"
    doc = json.loads(path.read_bytes())
    edit(doc)  # type: ignore[operator]
    path.write_text(json.dumps(doc))
    with pytest.raises(IntegrityError):
        api.open(tmp_path / "repo", PW)


def test_config_with_other_id_opens_no_key(tmp_path: Path) -> None:
    # the key files wrap the master key with the repository id as aad
    _init(tmp_path / "repo")
    path = tmp_path / "repo" / "config"
    doc = json.loads(path.read_bytes())
    doc["id"] = "0" * 64
    path.write_text(json.dumps(doc))
    with pytest.raises(WrongPassword):
        api.open(tmp_path / "repo", PW)


def test_unknown_snapshot_refs(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    with pytest.raises(SnapshotNotFound):
        repo.find_snapshot("latest")
    api.backup(repo, stdin=io.BytesIO(b"x"))
    with pytest.raises(SnapshotNotFound):
        repo.find_snapshot("latest~1")
    with pytest.raises(SnapshotNotFound):
        repo.find_snapshot("zz")
    assert repo.find_snapshot("latest~0").id == repo.find_snapshot("latest").id


def test_exclusive_lock_blocks_backup(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    other = api.open(tmp_path / "repo", PW)  # another process's view
    with other.lock(exclusive=True), pytest.raises(RepositoryLocked):
        api.backup(repo, stdin=io.BytesIO(b"x"))
    api.backup(repo, stdin=io.BytesIO(b"x"))


def test_readers_take_shared_locks_that_block_prune(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    snap = api.backup(repo, stdin=io.BytesIO(b"x"), stdin_filename="f").snapshot
    other = api.open(tmp_path / "repo", PW)
    readers = {
        "restore": lambda: api.restore(repo, snap.id, tmp_path / "out"),
        "ls": lambda: list(api.ls(repo, snap.id)),
        "dump": lambda: api.dump(repo, snap.id, "f", io.BytesIO()),
        "diff": lambda: api.diff(repo, snap.id, snap.id),
        "check": lambda: api.check(repo),
        "copy": lambda: api.copy(repo, tmp_path / "replica"),
        "rollback": lambda: api.rollback(repo, snap.id, target=tmp_path / "live"),
        "audit": lambda: api.audit(tmp_path / "repo", repo.config.ledger_verifier_key,
                                   password=PW),
    }
    for name, read in readers.items():
        with other.lock(exclusive=True), pytest.raises(RepositoryLocked):
            read()  # a prune holds the repository: the reader waits its turn
        read()  # and runs once it is gone
        assert list(repo.store.list("locks/")) == [], name
    with other.lock(), pytest.raises(RepositoryLocked):
        api.prune(repo)  # and a reader holds off a prune


def test_lock_is_reentrant_per_repository(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    with repo.lock(exclusive=True) as held:
        api.backup(repo, stdin=io.BytesIO(b"x"))  # reuses the exclusive lock
        api.prune(repo)
        assert [i.key for i in repo.store.list("locks/")] == [held.key]
    with repo.lock(), pytest.raises(RepositoryLocked):
        api.prune(repo)  # its own shared lock stands in the way of an exclusive one


def test_bad_backup_arguments(tmp_path: Path) -> None:
    repo = _init(tmp_path / "repo")
    with pytest.raises(UserError):
        api.backup(repo, [tmp_path], snapshot_type="weekly")
    with pytest.raises(UserError):
        api.backup(repo, [])
    a, b = tmp_path / "x" / "same", tmp_path / "y" / "same"
    a.mkdir(parents=True)
    b.mkdir(parents=True)
    with pytest.raises(UserError):
        api.backup(repo, [a, b])
