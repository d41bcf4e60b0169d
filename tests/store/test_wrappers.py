"""Wrapper stores: retry, rate limit, metrics, fault injection."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from deltavault.errors import (
    BackendError,
    BackendUnavailable,
    ObjectExists,
    ObjectNotFound,
    UserError,
    VersionConflict,
)
from deltavault.store.local import LocalStore
from deltavault.store.testing import FaultyStore, StoreConformance
from deltavault.store.wrappers import MetricsStore, RateLimitedStore, RetryingStore


class TestRetryingStoreConformance(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> RetryingStore:
        return RetryingStore(LocalStore(tmp_path, create=True), attempts=3, backoff=0)


class TestMetricsStoreConformance(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> MetricsStore:
        return MetricsStore(LocalStore(tmp_path, create=True))


def sleeps() -> tuple[list[float], Callable[[float], None]]:
    slept: list[float] = []
    return slept, slept.append


def test_retry_recovers_from_flaky_store(tmp_path: Path) -> None:
    slept, sleep = sleeps()
    faulty = FaultyStore(LocalStore(tmp_path, create=True), mode="flaky")
    store = RetryingStore(faulty, attempts=3, backoff=0.1, sleep=sleep)
    store.put("a", b"1")
    assert store.get("a") == b"1"
    assert [o.key for o in store.list("")] == ["a"]
    assert store.retries == 3 and len(slept) == 3
    assert all(0.05 <= s <= 0.1 for s in slept)


def test_retry_gives_up(tmp_path: Path) -> None:
    slept, sleep = sleeps()
    store = RetryingStore(FaultyStore(LocalStore(tmp_path, create=True)), attempts=4,
                          backoff=1, max_backoff=3, sleep=sleep)
    with pytest.raises(BackendUnavailable, match="injected"):
        store.get("a")
    assert len(slept) == 3 and max(slept) <= 3  # exponential, capped


def test_retry_does_not_retry_permanent_or_conflicts(tmp_path: Path) -> None:
    slept, sleep = sleeps()
    store = RetryingStore(LocalStore(tmp_path, create=True), attempts=5, sleep=sleep)
    with pytest.raises(ObjectNotFound):
        store.get("missing")
    store.put("a", b"1")
    with pytest.raises(ObjectExists):
        store.put("a", b"2")
    v = store.replace("cp", b"1", None)
    with pytest.raises(VersionConflict):
        store.replace("cp", b"2", "stale")
    assert store.replace("cp", b"2", v)
    assert slept == [] and store.retries == 0


def test_retry_after_lost_ack_reports_exists(tmp_path: Path) -> None:
    faulty = FaultyStore(LocalStore(tmp_path, create=True), mode="lost-ack", ops=("put",))
    store = RetryingStore(faulty, attempts=2, backoff=0, sleep=lambda s: None)
    with pytest.raises(ObjectExists):
        store.put("data/aa/p", b"pack")  # stored, ack lost, retry sees it
    assert store.get("data/aa/p") == b"pack"


def test_retry_validates_attempts(tmp_path: Path) -> None:
    with pytest.raises(UserError):
        RetryingStore(LocalStore(tmp_path, create=True), attempts=0)


def test_faulty_corrupt_flips_a_bit(tmp_path: Path) -> None:
    store = FaultyStore(LocalStore(tmp_path, create=True), fail_after=2, mode="corrupt")
    store.put("a", b"\x00abc")  # call 1
    assert store.get("a") == b"\x00abc"  # call 2
    assert store.get("a") == b"\x01abc"
    assert store.faults == 1


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_rate_limit_paces_transfers(tmp_path: Path) -> None:
    clock = FakeClock()
    store = RateLimitedStore(LocalStore(tmp_path, create=True), 1000, clock=clock,
                             sleep=clock.sleep)
    for i in range(10):
        store.put(f"o{i}", b"x" * 500)  # 5000 bytes at 1000 B/s, 250 B burst
    assert 4.5 <= clock.now <= 5.0
    before = clock.now
    for i in range(10):
        store.get(f"o{i}")
    assert 4.5 <= clock.now - before <= 5.0


def test_rate_limit_directions_and_validation(tmp_path: Path) -> None:
    clock = FakeClock()
    store = RateLimitedStore(LocalStore(tmp_path, create=True), upload_bps=100, clock=clock,
                             sleep=clock.sleep)
    store.put("a", b"x" * 125)
    assert clock.now == pytest.approx(1.0)
    store.get("a")
    assert clock.now == pytest.approx(1.0)  # downloads unlimited
    with pytest.raises(UserError):
        RateLimitedStore(LocalStore(tmp_path), 0)


def test_metrics_counts(tmp_path: Path) -> None:
    store = MetricsStore(LocalStore(tmp_path, create=True))
    store.put("a", b"12345")
    store.get("a")
    store.get("a", None)
    with pytest.raises(ObjectNotFound):
        store.get("missing")
    list(store.list(""))
    m = store.metrics
    assert m.ops == {"put": 1, "get": 3, "list": 1}
    assert m.errors == {"get": 1}
    assert (m.bytes_in, m.bytes_out) == (5, 10)
    assert set(m.seconds) == {"put", "get", "list"}


def test_wrappers_forward_capabilities(tmp_path: Path) -> None:
    inner = LocalStore(tmp_path, create=True)
    inner.supports_deletes = False
    for wrapper in (RetryingStore(inner), MetricsStore(inner), RateLimitedStore(inner, 10)):
        assert wrapper.supports_deletes is False
        assert wrapper.location() == str(tmp_path)
    assert issubclass(BackendUnavailable, BackendError)


def test_put_file_goes_through_each_wrappers_put_and_is_retried(tmp_path: Path) -> None:
    """A wrapper that acts on ``put`` sees a file's write too; a retry reads the file again."""
    spool = tmp_path / "spool"
    spool.write_bytes(b"abcdefgh-tail")
    metrics = MetricsStore(LocalStore(tmp_path / "m", create=True))
    with open(spool, "rb") as fh:
        metrics.put_file("k", fh, 8)
    assert metrics.metrics.ops == {"put": 1} and metrics.metrics.bytes_in == 8
    _slept, sleep = sleeps()
    inner = LocalStore(tmp_path / "r", create=True)
    store = RetryingStore(FaultyStore(inner, mode="flaky"), attempts=3, backoff=0.1,
                          sleep=sleep)
    with open(spool, "rb") as fh:
        fh.seek(5)  # wherever the file stands, the object is its first bytes
        store.put_file("k", fh, 8)
    assert inner.get("k") == b"abcdefgh" and store.retries >= 1
