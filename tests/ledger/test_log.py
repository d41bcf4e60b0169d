"""The Ledger over a real LocalStore: appends, reopen, concurrency, crashes."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from deltavault.errors import LedgerError, UserError
from deltavault.ledger.log import Ledger
from deltavault.ledger.merkle import leaf_hash, root_of_entries
from deltavault.ledger.tiles import make_reference
from deltavault.ledger.verify import verify_log
from deltavault.store.local import LocalStore
from deltavault.store.testing import Crash, CrashingStore
from tests.support.ledger import ORIGIN, seeded_key


def entries(prefix: str, n: int) -> list[bytes]:
    return [f"{prefix}-{i}".encode() for i in range(n)]


def test_verify_reports_progress_per_bundle(ledger: Ledger) -> None:
    ledger.append(entries("p", 600))
    seen: list[tuple[int, int]] = []
    assert verify_log(ledger, on_progress=lambda done, total: seen.append((done, total))).ok
    assert seen == [(256, 600), (512, 600), (600, 600)]


def test_append_reopen_verify(ledger: Ledger, store: LocalStore) -> None:
    expected: list[bytes] = []
    for b, n in enumerate([1, 2, 253, 300, 1, 600]):
        batch = entries(f"b{b}", n)
        assert ledger.append(batch) == list(range(len(expected), len(expected) + n))
        expected += batch
    assert ledger.size == len(expected)
    assert ledger.root == root_of_entries(expected)
    reader = Ledger.open(store, ORIGIN, verifier=ledger.verifier.vkey())
    assert reader.entries(0, reader.size) == expected
    assert reader.entry(300) == expected[300]
    for i in range(0, reader.size, 97):
        reader.inclusion_proof(i).verify(leaf_hash(expected[i]), reader.root)
    for old in (1, 3, 256, 555, reader.size):
        reader.consistency_proof(old).verify(root_of_entries(expected[:old]), reader.root)
    result = verify_log(reader)
    assert result.ok, result.problems
    assert result.entries_checked == len(expected)
    assert not list(store.list("ledger/staging"))


def test_large_entries_use_references(ledger: Ledger) -> None:
    big = bytes(range(256)) * 300
    ledger.append([b"small", big])
    assert ledger.entry(1) == big
    assert ledger.root == root_of_entries([b"small", make_reference(big)])
    assert verify_log(ledger).blobs_checked == 1
    with pytest.raises(UserError):
        ledger.append([make_reference(big)])


def test_read_only_and_wrong_keys(store: LocalStore, ledger: Ledger) -> None:
    ledger.append([b"x"])
    reader = Ledger.open(store, ORIGIN, verifier=ledger.verifier.vkey())
    with pytest.raises(UserError):
        reader.append([b"y"])
    with pytest.raises(UserError):
        Ledger.open(store, ORIGIN, signer=seeded_key("other"), verifier=ledger.verifier.vkey())
    with pytest.raises(LedgerError):
        Ledger.open(store, ORIGIN, signer=seeded_key("other"))
    with pytest.raises(LedgerError):
        Ledger.open(store, "other/origin", verifier=ledger.verifier.vkey())


def test_concurrent_appenders(store: LocalStore) -> None:
    key = seeded_key("deltavault ledger test key")
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            mine = Ledger.open(store, ORIGIN, signer=key)
            for b in range(8):
                mine.append(entries(f"w{w}b{b}", 7))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    reader = Ledger.open(store, ORIGIN, signer=key)
    got = reader.entries(0, reader.size)
    assert reader.size == 4 * 8 * 7
    assert sorted(got) == sorted(
        e for w in range(4) for b in range(8) for e in entries(f"w{w}b{b}", 7)
    )
    assert verify_log(reader).ok


def _seed_store(path: Path) -> LocalStore:
    store = LocalStore(path, create=True)
    Ledger.open(store, ORIGIN, signer=seeded_key("k")).append(entries("base", 300))
    return store


def test_crash_at_every_write(tmp_path: Path) -> None:
    key = seeded_key("k")
    probe = CrashingStore(_seed_store(tmp_path / "probe"), 10_000)
    Ledger.open(probe, ORIGIN, signer=key).append(entries("new", 230))
    total = probe.writes
    assert total >= 8
    for n in range(total):
        inner = _seed_store(tmp_path / f"crash{n}")
        with pytest.raises(Crash):
            Ledger.open(CrashingStore(inner, n), ORIGIN, signer=key).append(entries("new", 230))
        reader = Ledger.open(inner, ORIGIN, verifier=Ledger.open(inner, ORIGIN, signer=key)
                             .verifier.vkey())  # fmt: skip
        result = verify_log(reader)
        assert result.ok, (n, result.problems)
        assert result.size in (300, 530), n
        retry = Ledger.open(inner, ORIGIN, signer=key)
        retry.append(entries("retry", 5))
        final = verify_log(retry)
        assert final.ok and final.size == result.size + 5, (n, final.problems)
        assert retry.entries(result.size, final.size) == entries("retry", 5)
