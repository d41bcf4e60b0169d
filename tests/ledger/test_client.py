"""The verifying client: cached state, incremental verification, rollback and fork refusal."""

from __future__ import annotations

import hashlib
import hmac
import shutil
import warnings
from pathlib import Path

import pytest
from hypothesis import given

from deltavault.errors import LedgerError
from deltavault.ledger.client import LedgerClient, StateCache
from deltavault.ledger.events import Event, snapshot_event
from deltavault.ledger.log import Ledger
from deltavault.ledger.note import NoteSigner, NoteVerifier
from deltavault.ledger.statecache import MAGIC, decode, encode
from deltavault.ledger.tiles import CHECKPOINT_KEY
from deltavault.store.base import ByteRange, Store
from deltavault.store.local import LocalStore
from deltavault.store.wrappers import StoreWrapper
from tests.support.hostile import HOSTILE, decode_or_reject, mutations
from tests.support.ledger import ORIGIN, seeded_key

KEY = seeded_key("deltavault ledger test key")
MAC = b"k" * 32


class CountingStore(StoreWrapper):
    """Records every key read."""

    def __init__(self, inner: Store) -> None:
        super().__init__(inner)
        self.reads: list[str] = []

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        self.reads.append(key)
        return self.inner.get(key, byte_range)


def _verifier() -> NoteVerifier:
    return NoteSigner(ORIGIN, KEY).verifier


def snap(n: int, time: str = "2026-12-01T10:00:00Z") -> bytes:
    return snapshot_event(snapshot_id=f"{n:064x}", snapshot_type="full", parent=None, base=None,
                          snapshot_time=time, hostname="h", tags=[], tree="a" * 64, summary={},
                          packs_root="b" * 64, packs_count=0, time=time).to_bytes()


def journal(n: int) -> list[bytes]:
    return [Event.new("journal", commitment=f"{i:064x}", object="c" * 64, slot=i).to_bytes()
            for i in range(n)]


def client(tmp_path: Path) -> LedgerClient:
    return LedgerClient(_verifier(), ORIGIN, StateCache(tmp_path / "state", MAC))


def test_warm_cache_reads_only_the_new_tiles(store: LocalStore, tmp_path: Path) -> None:
    writer = Ledger.open(store, ORIGIN, signer=KEY)
    writer.append([snap(1)])
    for _ in range(6):
        writer.append(journal(500))
    cold = CountingStore(store)
    first = client(tmp_path).open(cold)
    assert set(first.follower.state.live) == {f"{1:064x}"}  # type: ignore[union-attr]
    cold_bundles = [k for k in cold.reads if "/entries/" in k]
    assert len(cold_bundles) == 12  # 3001 entries: bundles 000 … 011
    writer.append([snap(2), *journal(10)])
    warm = CountingStore(store)
    second = client(tmp_path).open(warm)
    state = second.follower.state  # type: ignore[union-attr]
    assert set(state.live) == {f"{1:064x}", f"{2:064x}"} and state.size == 3012
    touched = [k for k in warm.reads if k.startswith("ledger/tile/")]
    # only the right edge: bundle 011, its level-0 tile and the level-1 tail
    assert touched and all("/011" in k or k.startswith("ledger/tile/1/") for k in touched), touched
    assert sum("/entries/" in k for k in warm.reads) == 1


def test_rolled_back_checkpoint_is_refused_and_cache_kept(store: LocalStore,
                                                         tmp_path: Path) -> None:
    writer = Ledger.open(store, ORIGIN, signer=KEY)
    writer.append([snap(1)])
    old = store.get(CHECKPOINT_KEY)
    writer.append([snap(2)])
    client(tmp_path).open(store)
    cached = (tmp_path / "state").read_bytes()
    path = Path(store.location()) / CHECKPOINT_KEY
    path.write_bytes(old)
    with pytest.raises(LedgerError, match="went back from size 2"):
        client(tmp_path).open(store)
    assert (tmp_path / "state").read_bytes() == cached


def test_forked_log_is_refused(store: LocalStore, tmp_path: Path) -> None:
    writer = Ledger.open(store, ORIGIN, signer=KEY)
    writer.append([snap(1)])
    root = Path(store.location())
    shutil.copytree(root / "ledger", tmp_path / "saved")
    writer.append([snap(2)])
    client(tmp_path).open(store)
    # an insider with the key rewrites history from size 1 on and outgrows it
    shutil.rmtree(root / "ledger")
    shutil.copytree(tmp_path / "saved", root / "ledger")
    Ledger.open(store, ORIGIN, signer=KEY).append([snap(3), snap(4)])
    with pytest.raises(LedgerError, match="not consistent with the checkpoint of size 2"):
        client(tmp_path).open(store)
    # same size, other root
    shutil.rmtree(root / "ledger")
    shutil.copytree(tmp_path / "saved", root / "ledger")
    Ledger.open(store, ORIGIN, signer=KEY).append([snap(5)])
    with pytest.raises(LedgerError, match="fork"):
        client(tmp_path).open(store)


def test_damaged_cache_is_rebuilt_not_believed(store: LocalStore, tmp_path: Path) -> None:
    writer = Ledger.open(store, ORIGIN, signer=KEY)
    writer.append([snap(1), snap(2)])
    client(tmp_path).open(store)
    good = (tmp_path / "state").read_bytes()
    # a forged state claiming a third snapshot, without the MAC key
    forged = good.replace(f"{2:064x}".encode(), f"{3:064x}".encode())
    (tmp_path / "state").write_bytes(forged)
    with pytest.warns(UserWarning, match="not usable"):
        again = client(tmp_path).open(store)
    assert set(again.follower.state.live) == {f"{1:064x}", f"{2:064x}"}  # type: ignore[union-attr]
    assert (tmp_path / "state").read_bytes() != forged
    (tmp_path / "state").write_bytes(b"garbage")
    with pytest.warns(UserWarning):
        client(tmp_path).open(store)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        client(tmp_path).open(store)  # rebuilt: no warning any more


def test_checkpoint_of_a_damaged_cache_still_forbids_rollback(store: LocalStore,
                                                            tmp_path: Path) -> None:
    writer = Ledger.open(store, ORIGIN, signer=KEY)
    writer.append([snap(1)])
    old = store.get(CHECKPOINT_KEY)
    writer.append([snap(2)])
    client(tmp_path).open(store)
    data = bytearray((tmp_path / "state").read_bytes())
    data[40] ^= 1  # the MAC line: the body is intact, its checkpoint still verifies
    (tmp_path / "state").write_bytes(bytes(data))
    (Path(store.location()) / CHECKPOINT_KEY).write_bytes(old)
    with pytest.warns(UserWarning), pytest.raises(LedgerError, match="went back"):
        client(tmp_path).open(store)


def test_append_builds_only_on_a_verified_log(store: LocalStore, tmp_path: Path) -> None:
    writer = Ledger.open(store, ORIGIN, signer=KEY)
    writer.append([snap(1)])
    old = store.get(CHECKPOINT_KEY)
    writer.append([snap(2)])
    mine = client(tmp_path).open(store, KEY)
    (Path(store.location()) / CHECKPOINT_KEY).write_bytes(old)
    with pytest.raises(LedgerError, match="went back"):
        mine.append([snap(9)])
    assert store.get(CHECKPOINT_KEY) == old  # nothing written on top of the rolled-back log


def test_state_file_roundtrip_and_hostile_bytes(store: LocalStore, tmp_path: Path) -> None:
    writer = Ledger.open(store, ORIGIN, signer=KEY)
    writer.append([snap(1), *journal(300), snap(2)])
    c = client(tmp_path)
    c.open(store)
    data = (tmp_path / "state").read_bytes()
    cached = decode(data, MAC, _verifier(), ORIGIN)
    assert cached.state == c.state and cached.frontier == c.frontier
    assert encode(cached, MAC) == data

    @HOSTILE
    @given(mutations(data))
    def hostile(blob: bytes) -> None:
        decode_or_reject(lambda b: decode(b, MAC, _verifier(), ORIGIN), blob)

    hostile()


    body = data.partition(b"\n")[2].partition(b"\n")[2]

    @HOSTILE
    @given(mutations(body))
    def hostile_body(mutated: bytes) -> None:
        # a body that carries a valid MAC: the decoder must still check every field
        mac = hmac.new(MAC, MAGIC + mutated, hashlib.sha256).hexdigest().encode()
        got = decode_or_reject(lambda b: decode(b, MAC, _verifier(), ORIGIN),
                               MAGIC + mac + b"\n" + mutated)
        if got is not None:
            assert got.frontier.size == got.state.size

    hostile_body()
