"""A lock whose refresh fails stops its operation before the next commit point.

The refresh failure is injected with :class:`FaultyStore` filtered to
``locks/``: from a chosen moment every write of a lock object fails, so the
holder's lock ages in the store. A prune in another process (here: another
``Repository`` on the same directory, whose stale limit is as short as the
holder's) judges it stale by the store's mtime and runs — deleting the
packs the backup wrote and no index names yet. The backup must then fail
with LockLost and commit nothing; every committed snapshot still restores.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest

from deltavault import api
from deltavault.errors import LockLost
from deltavault.repo.layout import DATA_PREFIX, INDEX_PREFIX, LOCK_PREFIX
from deltavault.repo.locks import LockTiming
from deltavault.repo.repository import Repository
from deltavault.store.base import Store
from deltavault.store.local import LocalStore
from deltavault.store.testing import FaultyStore
from deltavault.store.wrappers import StoreWrapper
from tests.support.cli import API_PASSWORD, KDF
from tests.support.trees import assert_same_files, write_random

#: refresh every 50 ms; a lock not refreshed for 1 s stops its holder, and
#: others judge it stale after 2 s (the format's 5/20/30 minutes, scaled down)
FAST = LockTiming(stale_after=timedelta(seconds=2), refresh_every=timedelta(milliseconds=50),
                  retry_every=timedelta(milliseconds=50), commit_window=timedelta(seconds=1),
                  verify_every=timedelta(0))


class Trigger(StoreWrapper):
    """Runs ``hook`` once, just before the ``nth`` write under ``prefix`` goes through."""

    def __init__(self, inner: Store, prefix: str, nth: int, hook: Callable[[], None]) -> None:
        super().__init__(inner)
        self.prefix, self.nth, self.hook = prefix, nth, hook
        self.seen = 0
        self.fired = threading.Event()
        self._mutex = threading.Lock()

    def _maybe_fire(self, key: str) -> None:
        if not key.startswith(self.prefix):
            return
        with self._mutex:
            self.seen += 1
            fire = self.seen == self.nth
        if fire:
            self.hook()
            self.fired.set()

    def put(self, key: str, data: bytes | bytearray) -> None:
        self._maybe_fire(key)
        self.inner.put(key, data)

    def list(self, prefix: str = ""):  # type: ignore[no-untyped-def]
        self._maybe_fire(prefix)
        return self.inner.list(prefix)


def _committed_tree(tmp_path: Path, name: str, seed: int, files: int = 3) -> Path:
    root = tmp_path / name
    root.mkdir()
    for i in range(files):
        write_random(root / f"f{i}.bin", 400_000, seed * 10 + i)
    return root


def _open(path: Path, wrap: Callable[[Store], Store] = lambda s: s) -> Repository:
    repo = Repository.open(wrap(LocalStore(path)), API_PASSWORD)
    repo.lock_timing = FAST
    return repo


def _wait_lost(repo: Repository) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            repo.check_lock()
        except LockLost:
            return
        if time.monotonic() > deadline:
            raise AssertionError("the lock was never lost")
        time.sleep(0.05)


def test_backup_whose_lock_refresh_fails_commits_nothing(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    api.init(repo_dir, API_PASSWORD, pack_size=1 << 17, **KDF)
    kept_src = _committed_tree(tmp_path, "kept", 1)
    kept = api.backup(_open(repo_dir), [kept_src]).snapshot
    kept_packs = {i.key for i in LocalStore(repo_dir).list(DATA_PREFIX)}
    faults: list[FaultyStore] = []
    pruned: list[api.PruneResult] = []

    def lose_lock_and_prune() -> None:
        # from now on no lock object can be written: the holder's lock ages
        faults[0].fail_after = faults[0].calls
        _wait_lost(backup_repo)
        time.sleep(FAST.stale_after.total_seconds() - FAST.commit_window.total_seconds())
        pruned.append(api.prune(_open(repo_dir)))  # elsewhere: judges the lock stale

    def wrap(store: Store) -> Store:
        faulty = FaultyStore(store, fail_after=10**9, prefixes=(LOCK_PREFIX,), ops=("put",))
        faults.append(faulty)
        return Trigger(faulty, DATA_PREFIX, 3, lose_lock_and_prune)

    backup_repo = _open(repo_dir, wrap)
    new_src = _committed_tree(tmp_path, "new", 2, files=6)
    with pytest.raises(LockLost, match="could not refresh the shared lock") as info:
        api.backup(backup_repo, [new_src])
    assert info.value.exit_code == 11
    assert pruned and pruned[0].packs_removed >= 2  # the backup's two first packs
    store = LocalStore(repo_dir)
    # nothing committed: no snapshot, no index, no ledger event beyond the first backup's
    after = _open(repo_dir)
    assert [s.id for s in api.snapshots(after)] == [kept.id]
    assert set(after.committed()) == {kept.id}
    assert kept_packs <= {i.key for i in store.list(DATA_PREFIX)}
    report = api.check(after, read_data=True)
    assert report.ok, report.problems
    api.restore(after, kept.id, tmp_path / "out")
    assert_same_files(kept_src, tmp_path / "out" / "kept")
    # and the next backup completes
    assert api.backup(_open(repo_dir), [new_src]).snapshot.id


def test_prune_whose_lock_is_lost_deletes_nothing(tmp_path: Path) -> None:
    repo_dir = tmp_path / "repo"
    repo = api.init(repo_dir, API_PASSWORD, pack_size=1 << 17, **KDF)
    a_src = _committed_tree(tmp_path, "a", 1)
    b_src = _committed_tree(tmp_path, "b", 2)
    api.backup(repo, [a_src])
    b = api.backup(repo, [b_src]).snapshot
    api.forget(repo, [b.id])
    store = LocalStore(repo_dir)
    before = {i.key for i in store.list("")} - {i.key for i in store.list(LOCK_PREFIX)}
    faults: list[FaultyStore] = []

    def lose_lock() -> None:
        faults[0].fail_after = faults[0].calls
        _wait_lost(prune_repo)

    def wrap(inner: Store) -> Store:
        faulty = FaultyStore(inner, fail_after=10**9, prefixes=(LOCK_PREFIX,), ops=("put",))
        faults.append(faulty)
        return Trigger(faulty, DATA_PREFIX, 1, lose_lock)  # prune lists the packs first

    prune_repo = _open(repo_dir, wrap)
    with pytest.raises(LockLost):
        api.prune(prune_repo)
    after = {i.key for i in store.list("")} - {i.key for i in store.list(LOCK_PREFIX)}
    assert after == before  # no new index, no deletion, no prune event
    assert not any(k.startswith(INDEX_PREFIX) for k in after - before)
    assert api.prune(_open(repo_dir)).packs_removed > 0  # the next prune does the work
