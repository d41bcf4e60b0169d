"""Repository locks (docs/format.md §10): conflicts, staleness, hostile lock objects."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltavault.errors import RepositoryLocked
from deltavault.repo.canonical import pack_msgpack
from deltavault.repo.crypto import AAD_LOCK, Crypto, MasterKey
from deltavault.repo.layout import LOCK_PREFIX
from deltavault.repo.locks import Lock, read_locks, remove_locks
from deltavault.store.local import LocalStore
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


@pytest.mark.parametrize("doc", [
    _lock_doc(exclusive=True, pid=_dead_pid()),  # process gone on this host
    _lock_doc(exclusive=True, time=(datetime.now(UTC) - timedelta(hours=1)).isoformat(),
              hostname="elsewhere"),  # not refreshed for an hour
])
def test_stale_locks_do_not_block_and_unlock_removes_them(tmp_path: Path,
                                                          doc: dict[str, object]) -> None:
    store = LocalStore(tmp_path, create=True)
    _put(store, "stale", pack_msgpack(doc))
    Lock(store, CRYPTO, True).acquire().release()
    assert [x.key for x in remove_locks(store, CRYPTO, all_locks=False)] == [LOCK_PREFIX + "stale"]


def test_live_lock_on_other_host_blocks(tmp_path: Path) -> None:
    store = LocalStore(tmp_path, create=True)
    _put(store, "other", pack_msgpack(_lock_doc(exclusive=True, hostname="elsewhere", pid=1)))
    with pytest.raises(RepositoryLocked):
        Lock(store, CRYPTO, False).acquire()
    assert remove_locks(store, CRYPTO, all_locks=False) == []
    assert len(remove_locks(store, CRYPTO, all_locks=True)) == 1


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
