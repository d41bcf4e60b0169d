"""Repository locks (docs/format.md §10): conflicts, staleness by the store's clock,
refresh failures and lost locks, hostile lock objects."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltavault.errors import BackendUnavailable, LockLost, RepositoryLocked
from deltavault.repo.canonical import pack_msgpack
from deltavault.repo.crypto import AAD_LOCK, Crypto, MasterKey
from deltavault.repo.layout import LOCK_PREFIX
from deltavault.repo.locks import Lock, LockTiming, read_locks, remove_locks, server_now
from deltavault.store.local import LocalStore
from deltavault.store.testing import FaultyStore
from tests.support.hostile import HOSTILE_IO, msgpack_values, mutations

CRYPTO = Crypto(MasterKey(bytes(range(32))))


def _lock_doc(**kw: object) -> dict[str, object]:
    doc: dict[str, object] = {"time": datetime.now(UTC).isoformat(), "exclusive": False,
                              "hostname": socket.gethostname(), "pid": os.getpid(),
                              "username": "t"}
    doc.update(kw)
    return doc


def _put(store: LocalStore, name: str, plain: bytes, *, raw: bool = False) -> None:
    store.put(LOCK_PREFIX + name, plain if raw else CRYPTO.seal(AAD_LOCK, plain))


def test_shared_locks_coexist_exclusive_conflicts(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, create=True)
    a = Lock(store, CRYPTO, False).acquire()
    b = Lock(store, CRYPTO, False).acquire()
    with pytest.raises(RepositoryLocked):
        Lock(store, CRYPTO, True).acquire()
    a.release()
    b.release()
    c = Lock(store, CRYPTO, True).acquire()
    with pytest.raises(RepositoryLocked):
        Lock(store, CRYPTO, False).acquire()
    c.release()
    assert list(store.list(LOCK_PREFIX)) == []


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _age(store: LocalStore, name: str, by: timedelta) -> None:
    """Make the store report the lock object as written ``by`` ago (its mtime)."""
    path = store.root / LOCK_PREFIX / name
    when = time.time() - by.total_seconds()
    os.utime(path, (when, when))


def test_dead_process_on_this_host_is_stale(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, create=True)
    _put(store, "dead", pack_msgpack(_lock_doc(exclusive=True, pid=_dead_pid())))
    Lock(store, CRYPTO, True).acquire().release()
    assert [x.key for x in remove_locks(store, CRYPTO, all_locks=False)] == [LOCK_PREFIX + "dead"]


def test_staleness_is_the_stores_age_not_the_writers_clock(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, create=True)
    # A writer whose clock is an hour behind wrote this just now: it is live.
    skewed = _lock_doc(exclusive=True, hostname="elsewhere", pid=1,
                       time=(datetime.now(UTC) - timedelta(hours=1)).isoformat())
    _put(store, "skewed", pack_msgpack(skewed))
    with pytest.raises(RepositoryLocked):
        Lock(store, CRYPTO, False).acquire()
    assert remove_locks(store, CRYPTO, all_locks=False) == []
    # A writer whose clock is an hour ahead, not refreshed for 31 minutes: stale.
    _age(store, "skewed", timedelta(minutes=31))
    ahead = _lock_doc(exclusive=True, hostname="elsewhere", pid=1,
                      time=(datetime.now(UTC) + timedelta(hours=1)).isoformat())
    _put(store, "ahead", pack_msgpack(ahead))
    _age(store, "ahead", timedelta(minutes=31))
    Lock(store, CRYPTO, True).acquire().release()
    removed = {x.key for x in remove_locks(store, CRYPTO, all_locks=False)}
    assert removed == {LOCK_PREFIX + "skewed", LOCK_PREFIX + "ahead"}


def test_unreadable_lock_turns_stale_by_its_mtime(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, create=True)
    _put(store, "junk", b"not a lock", raw=True)
    with pytest.raises(RepositoryLocked):
        Lock(store, CRYPTO, False).acquire()
    _age(store, "junk", timedelta(minutes=31))
    Lock(store, CRYPTO, True).acquire().release()


def test_live_lock_on_other_host_blocks(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, create=True)
    _put(store, "other", pack_msgpack(_lock_doc(exclusive=True, hostname="elsewhere", pid=1)))
    with pytest.raises(RepositoryLocked):
        Lock(store, CRYPTO, False).acquire()
    assert remove_locks(store, CRYPTO, all_locks=False) == []
    assert len(remove_locks(store, CRYPTO, all_locks=True)) == 1


#: a lock kept on a fast clock: refreshed every 50 ms; a refresh failing for
#: 1 s (stale_after - commit_window) stops the holder
FAST = LockTiming(stale_after=timedelta(seconds=2), refresh_every=timedelta(milliseconds=50),
                  retry_every=timedelta(milliseconds=50), commit_window=timedelta(seconds=1),
                  verify_every=timedelta(0))


def _until(cond: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.02)


def _lost(lock: Lock) -> bool:
    try:
        lock.check()
    except LockLost:
        return True
    return False


def test_refresh_replaces_the_lock_object_and_check_passes(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, create=True)
    lock = Lock(store, CRYPTO, False, timing=FAST).acquire()
    first = lock.key
    _until(lambda: lock.key != first, "the lock was refreshed")
    for _ in range(20):
        lock.check()  # refreshes race with checks: never a false alarm
        time.sleep(0.01)
    # a refresh writes the new object before it deletes the old one, so a listing may
    # catch both for a moment; between refreshes exactly the current one is there
    _until(lambda: [i.key for i in store.list(LOCK_PREFIX)] == [lock.key],
           "only the current lock object is listed")
    lock.release()
    assert list(store.list(LOCK_PREFIX)) == []


def test_failing_refresh_stops_the_holder_before_the_lock_can_go_stale(tmp_path: Path) -> None:
    inner = LocalStore(tmp_path, create=True)
    faulty = FaultyStore(inner, fail_after=10**9, prefixes=(LOCK_PREFIX,), ops=("put",))
    lock = Lock(faulty, CRYPTO, False, timing=FAST).acquire()
    lock.check()
    faulty.fail_after = faulty.calls  # every lock write fails from now on
    _until(lambda: _lost(lock), "the holder noticed")
    with pytest.raises(LockLost, match="could not refresh the shared lock") as info:
        lock.check()
    assert isinstance(info.value.__cause__, BackendUnavailable)
    assert info.value.exit_code == 11
    # The object it last wrote is still younger than stale_after: nobody else
    # could have judged it stale before the holder stopped.
    (obj,) = inner.list(LOCK_PREFIX)
    assert obj.mtime is not None
    assert datetime.now(UTC) - obj.mtime < FAST.stale_after
    lock.release()


def test_a_transient_refresh_failure_is_retried(tmp_path: Path) -> None:
    inner = LocalStore(tmp_path, create=True)
    faulty = FaultyStore(inner, fail_after=10**9, mode="flaky", prefixes=(LOCK_PREFIX,),
                         ops=("put",))
    lock = Lock(faulty, CRYPTO, True, timing=FAST).acquire()
    faulty.fail_after = faulty.calls  # every other lock write fails
    _until(lambda: faulty.faults >= 5, "several refreshes failed")
    lock.check()
    lock.release()


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_lock_removed_or_replaced_behind_the_holders_back(tmp_path: Path, how: str) -> None:
    store = LocalStore(tmp_path, create=True)
    slow = LockTiming(verify_every=timedelta(0))  # no refresh during the test
    lock = Lock(store, CRYPTO, True, timing=slow).acquire()
    lock.check()
    store.delete(lock.key)
    if how == "replaced":
        store.put(lock.key, _encode_for_test(exclusive=True))
    with pytest.raises(LockLost, match="removed by another process" if how == "deleted"
                       else "replaced by another writer"):
        lock.check()
    with pytest.raises(LockLost):
        lock.check()  # the loss is permanent
    lock.release()


def _encode_for_test(**kw: object) -> bytes:
    return CRYPTO.seal(AAD_LOCK, pack_msgpack(_lock_doc(**kw)))


def test_released_lock_fails_its_check(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, create=True)
    lock = Lock(store, CRYPTO, False).acquire()
    lock.release()
    with pytest.raises(LockLost, match="released"):
        lock.check()


def test_unlock_judges_by_the_store_clock(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, create=True)
    _put(store, "fresh", pack_msgpack(_lock_doc(hostname="elsewhere", pid=1)))
    _put(store, "old", pack_msgpack(_lock_doc(hostname="elsewhere", pid=1)))
    _age(store, "old", timedelta(hours=2))
    now = server_now(store, CRYPTO)
    assert now is not None and abs(now - datetime.now(UTC)) < timedelta(minutes=1)
    assert [x.key for x in remove_locks(store, CRYPTO, all_locks=False)] == [LOCK_PREFIX + "old"]
    assert [x.key for x in read_locks(store, CRYPTO)] == [LOCK_PREFIX + "fresh"]


VALID = CRYPTO.seal(AAD_LOCK, pack_msgpack(_lock_doc()))


@given(mutations(VALID))
@HOSTILE_IO
def test_unreadable_lock_counts_as_held(tmp_path_factory: pytest.TempPathFactory,
                                        data: bytes) -> None:
    store = LocalStore(tmp_path_factory.mktemp("l"), create=True)
    _put(store, "x", data, raw=True)
    (info,) = read_locks(store, CRYPTO)
    if data != VALID:
        assert info.exclusive  # cannot tell whose it is: be safe
        with pytest.raises(RepositoryLocked):
            Lock(store, CRYPTO, False).acquire()


@given(st.fixed_dictionaries({}, optional={
    "time": msgpack_values | st.datetimes().map(datetime.isoformat)
    | st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
    "exclusive": msgpack_values, "hostname": st.just(socket.gethostname()) | msgpack_values,
    # msgpack itself cannot encode integers outside [-2**63, 2**64): the bounds a
    # stored lock can hold
    "pid": st.integers(-(2**63), 2**64 - 1) | msgpack_values, "username": msgpack_values}))
@HOSTILE_IO
def test_hostile_lock_fields_never_crash_acquire(tmp_path_factory: pytest.TempPathFactory,
                                                 doc: dict[str, object]) -> None:
    # a readable lock with nonsense inside: acquiring either succeeds (stale) or is refused
    store = LocalStore(tmp_path_factory.mktemp("l"), create=True)
    _put(store, "x", pack_msgpack(doc))
    read_locks(store, CRYPTO)
    with contextlib.suppress(RepositoryLocked):
        Lock(store, CRYPTO, True).acquire().release()
    remove_locks(store, CRYPTO, all_locks=False)
