"""S3Store against a real SeaweedFS S3 gateway on loopback."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deltavault import api
from deltavault.errors import (
    BackendError,
    BackendUnavailable,
    NoCompareAndSwap,
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    PermissionDenied,
    UserError,
    VersionConflict,
)
from deltavault.ledger.log import Ledger
from deltavault.server import BackgroundServer
from deltavault.store.object_lock import ObjectLockPolicy
from deltavault.store.s3 import S3Store
from deltavault.store.testing import StoreConformance
from tests.support.cli import API_PASSWORD, KDF, KDF_ARGS, Cli
from tests.support.servers import S3Server, free_ports

_counter = itertools.count()


_buckets: dict[tuple[str, bool], str] = {}


def new_bucket(server: S3Server, *, object_lock: bool = False) -> str:
    """A bucket shared by the tests of this session (SeaweedFS gives every
    bucket its own volumes, so one per test would exhaust them); tests are
    isolated by a unique prefix instead."""
    name = _buckets.get((server.endpoint, object_lock))
    if name is None:
        name = "dv-locked" if object_lock else "dv-plain"
        kwargs = {"ObjectLockEnabledForBucket": True} if object_lock else {}
        server.client().create_bucket(Bucket=name, **kwargs)  # type: ignore[attr-defined]
        _buckets[(server.endpoint, object_lock)] = name
    return name


def unique_prefix() -> str:
    return f"t{time.monotonic_ns()}-{next(_counter)}"


def make_store(server: S3Server, bucket: str, **kwargs: object) -> S3Store:
    return S3Store(bucket, unique_prefix(), endpoint_url=server.endpoint, region="us-east-1",
                   access_key=server.access_key, secret_key=server.secret_key,
                   **kwargs)  # type: ignore[arg-type]


class TestS3Store(StoreConformance):
    @pytest.fixture
    def store(self, s3_server: S3Server) -> Iterator[S3Store]:
        # A small multipart threshold makes the 10 MiB conformance object
        # exercise the multipart path.
        with make_store(s3_server, new_bucket(s3_server), multipart_threshold=6 * 2**20,
                        multipart_chunk=5 * 2**20) as store:
            yield store  # type: ignore[misc]


class TestS3StoreWithoutConditionalWrites(StoreConformance):
    """Servers that ignore If-None-Match: HEAD-then-PUT for put, replace refused."""

    @pytest.fixture
    def store(self, s3_server: S3Server) -> Iterator[S3Store]:
        with make_store(s3_server, new_bucket(s3_server), conditional_writes=False) as store:
            yield store  # type: ignore[misc]


def test_seaweedfs_honours_conditional_writes(s3_server: S3Server) -> None:
    store = make_store(s3_server, new_bucket(s3_server))
    assert store.conditional_writes() is True
    assert store.atomic_replace is True
    assert list(store.list("")) == []  # the probe object is gone


def test_prefix_isolates_repositories(s3_server: S3Server) -> None:
    bucket = new_bucket(s3_server)
    a = make_store(s3_server, bucket)
    b = S3Store(bucket, a.prefix.rstrip("/") + "-other", endpoint_url=s3_server.endpoint,
                region="us-east-1", access_key=s3_server.access_key,
                secret_key=s3_server.secret_key)
    a.put("config", b"a")
    b.put("config", b"b")
    assert a.get("config") == b"a" and b.get("config") == b"b"
    assert [o.key for o in a.list()] == ["config"]


def test_range_past_end_is_empty(s3_server: S3Server) -> None:
    store = make_store(s3_server, new_bucket(s3_server))
    store.put("r", b"0123")
    from deltavault.store.base import ByteRange

    assert store.get("r", ByteRange(10, 5)) == b""
    assert store.get("r", ByteRange(2, 0)) == b""
    with pytest.raises(ObjectNotFound):
        store.get("missing", ByteRange(0, 1))


def test_bad_secret_is_permission_denied(s3_server: S3Server) -> None:
    bucket = new_bucket(s3_server)
    store = S3Store(bucket, endpoint_url=s3_server.endpoint, region="us-east-1",
                    access_key=s3_server.access_key, secret_key="wrong", conditional_writes=True)
    with pytest.raises(PermissionDenied, match="SignatureDoesNotMatch"):
        store.get("config")
    with pytest.raises(PermissionDenied):
        store.stat("config")
    with pytest.raises(PermissionDenied):
        list(store.list())
    with pytest.raises(PermissionDenied):
        store.put("config", b"x")


def test_unknown_access_key_is_permission_denied(s3_server: S3Server) -> None:
    store = S3Store(new_bucket(s3_server), endpoint_url=s3_server.endpoint, region="us-east-1",
                    access_key="NOSUCHKEY", secret_key="x", conditional_writes=True)
    with pytest.raises(PermissionDenied, match="InvalidAccessKeyId"):
        store.get("config")


def test_missing_bucket_names_the_bucket(s3_server: S3Server) -> None:
    store = make_store(s3_server, "dv-no-such-bucket", conditional_writes=True)
    for op in (lambda: store.get("config"), lambda: list(store.list("")),
               lambda: store.put("config", b"x")):
        with pytest.raises(BackendError, match="dv-no-such-bucket") as info:
            op()
        assert not isinstance(info.value, ObjectNotFound)


def test_unreachable_endpoint_fails_fast(s3_server: S3Server) -> None:
    port = free_ports(1)[0]  # nothing listens there
    store = S3Store("bucket", endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1",
                    access_key="a", secret_key="b", connect_timeout=0.5, retries=1,
                    conditional_writes=True)
    start = time.monotonic()
    with pytest.raises(BackendUnavailable, match=f"127.0.0.1:{port}"):
        store.get("config")
    with pytest.raises(BackendUnavailable):
        list(store.list())
    assert time.monotonic() - start < 10


def test_object_lock_policy_validation() -> None:
    with pytest.raises(UserError):
        ObjectLockPolicy(days=0)
    with pytest.raises(UserError):
        ObjectLockPolicy(days=1, mode="strict")  # type: ignore[arg-type]
    policy = ObjectLockPolicy(days=3)
    assert policy.applies_to("data/ab/ab12") and policy.applies_to("ledger/checkpoint")
    assert not policy.applies_to("locks/x") and not policy.applies_to("config")


class TestObjectLock:
    @pytest.fixture
    def store(self, s3_server: S3Server) -> S3Store:
        bucket = new_bucket(s3_server, object_lock=True)
        return make_store(s3_server, bucket, object_lock=ObjectLockPolicy(days=1))

    def test_locked_object_cannot_be_deleted(self, store: S3Store) -> None:
        store.put("data/ab/ab01", b"pack")
        mode, until = store.retention("data/ab/ab01")
        assert mode == "COMPLIANCE"
        assert until is not None and until > dt.datetime.now(dt.UTC) + dt.timedelta(hours=23)
        with pytest.raises(ObjectLocked, match="Object Lock"):
            store.delete("data/ab/ab01")
        assert store.get("data/ab/ab01") == b"pack"  # not hidden by a delete marker

    def test_locked_object_cannot_be_overwritten(self, store: S3Store) -> None:
        store.put("snapshots/s1", b"one")
        with pytest.raises(ObjectExists):
            store.put("snapshots/s1", b"two")
        assert store.get("snapshots/s1") == b"one"

    def test_locks_stay_deletable(self, store: S3Store) -> None:
        store.put("locks/l1", b"lock")
        assert store.retention("locks/l1") == (None, None)
        store.delete("locks/l1")
        assert not store.exists("locks/l1")
        with pytest.raises(ObjectNotFound):
            store.delete("locks/l1")

    def test_checkpoint_cas_in_locked_bucket(self, store: S3Store) -> None:
        v1 = store.replace("ledger/checkpoint", b"1", None)
        v2 = store.replace("ledger/checkpoint", b"2", v1)
        with pytest.raises(VersionConflict):
            store.replace("ledger/checkpoint", b"3", v1)
        assert store.get_versioned("ledger/checkpoint") == (b"2", v2)

    def test_extend_retention(self, store: S3Store) -> None:
        store.put("data/cd/cd01", b"pack")
        _, before = store.retention("data/cd/cd01")
        assert before is not None
        later = before + dt.timedelta(days=10)
        assert store.extend_retention(["data/cd/cd01"], later) == 1
        _, after = store.retention("data/cd/cd01")
        assert after is not None and abs((after - later).total_seconds()) < 1
        # Never shortens.
        assert store.extend_retention(["data/cd/cd01"], before) == 0

    def test_governance_mode(self, s3_server: S3Server) -> None:
        bucket = new_bucket(s3_server, object_lock=True)
        store = make_store(s3_server, bucket,
                           object_lock=ObjectLockPolicy(days=1, mode="governance"))
        store.put("index/i1", b"idx")
        assert store.retention("index/i1")[0] == "GOVERNANCE"
        with pytest.raises(ObjectLocked):
            store.delete("index/i1")


# --- servers without conditional writes: refused, not raced ------------------------


def test_without_conditional_writes_swaps_are_refused(s3_server: S3Server,
                                                      tmp_path: Path) -> None:
    # Nothing that needs a compare-and-swap starts: no repository, no ledger
    # append, no replica — and nothing is written.
    store = make_store(s3_server, new_bucket(s3_server), conditional_writes=False)
    assert store.atomic_replace is False
    with pytest.raises(NoCompareAndSwap, match="cannot create a repository"):
        api.init(store, API_PASSWORD, **KDF)
    ledger = Ledger.open(store, "test.local/log", signer=Ed25519PrivateKey.generate())
    with pytest.raises(NoCompareAndSwap, match="refusing to append"):
        ledger.append([b"an event"])
    source = api.init(tmp_path / "src", API_PASSWORD, **KDF)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "f").write_bytes(b"x" * 1000)
    api.backup(source, [tmp_path / "data"])
    with pytest.raises(NoCompareAndSwap, match="nothing was written"):
        api.copy(source, store)
    assert list(store.list("")) == []


def test_rest_server_over_a_store_without_swaps_refuses_through_the_cli(
        s3_server: S3Server, tmp_path: Path, password_file: Path) -> None:
    inner = make_store(s3_server, new_bucket(s3_server), conditional_writes=False)
    with BackgroundServer(inner) as srv:
        cli = Cli(tmp_path / "unused", password_file)
        env = cli.env(DELTAVAULT_REPO=f"rest:{srv.url}")
        proc = cli("init", *KDF_ARGS, env=env, expect=14)
        assert b"no atomic compare-and-swap" in proc.stderr
        assert b"Traceback" not in proc.stderr
    assert list(inner.list("")) == []
