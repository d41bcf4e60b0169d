"""``--object-lock-days`` / ``--object-lock-mode`` and ``maintenance``, run as a user would,
against the real SeaweedFS S3 gateway the tests start (docs/backends.md, Object Lock)."""

from __future__ import annotations

import datetime as dt
import itertools
import time
from pathlib import Path

import pytest

from deltavault.store.s3 import S3Store
from tests.support.cli import KDF_ARGS, PASSWORD, Cli
from tests.support.servers import S3Server

BUCKET = "dv-cli-locked"
_counter = itertools.count()


@pytest.fixture
def s3_cli(s3_server: S3Server, tmp_path: Path) -> tuple[Cli, S3Store]:
    """A CLI runner for an empty s3:// repository in a bucket with Object Lock enabled."""
    client = s3_server.client()
    existing = {b["Name"] for b in client.list_buckets()["Buckets"]}  # type: ignore[attr-defined]
    if BUCKET not in existing:
        client.create_bucket(Bucket=BUCKET,  # type: ignore[attr-defined]
                             ObjectLockEnabledForBucket=True)
    prefix = f"cli{time.monotonic_ns()}-{next(_counter)}"
    pw = tmp_path / "password"
    pw.write_text(PASSWORD + "\n")
    cli = Cli(tmp_path / "unused", pw)
    env = cli.env(DELTAVAULT_REPO=f"s3://{BUCKET}/{prefix}", AWS_ENDPOINT_URL=s3_server.endpoint,
                  AWS_ACCESS_KEY_ID=s3_server.access_key,
                  AWS_SECRET_ACCESS_KEY=s3_server.secret_key, AWS_DEFAULT_REGION="us-east-1")
    cli.env = lambda **extra: {**env, **extra}  # type: ignore[method-assign]
    store = S3Store(BUCKET, prefix, endpoint_url=s3_server.endpoint, region="us-east-1",
                    access_key=s3_server.access_key, secret_key=s3_server.secret_key)
    return cli, store


def retention_days(store: S3Store, key: str) -> tuple[str | None, float | None]:
    """(mode, days from now until the retention ends) of one object."""
    mode, until = store.retention(key)
    if until is None:
        return mode, None
    return mode, (until - dt.datetime.now(dt.UTC)).total_seconds() / 86400


def keys(store: S3Store, prefix: str) -> list[str]:
    return sorted(i.key for i in store.list(prefix))


def test_object_lock_options_lock_what_each_command_writes(
        s3_cli: tuple[Cli, S3Store]) -> None:
    cli, store = s3_cli
    cli("--object-lock-days", "2", "init", *KDF_ARGS)
    cli("--object-lock-days", "3", "--object-lock-mode", "governance", "backup", "--stdin",
        input=b"positions at the close")
    (pack,) = keys(store, "data/")
    (snapshot,) = keys(store, "snapshots/")
    tile = keys(store, "ledger/tile/")[0]
    for key in (pack, snapshot, tile):
        mode, days = retention_days(store, key)
        assert mode == "GOVERNANCE" and days is not None and 2.9 < days <= 3, (key, mode, days)
    for key in ("config", *keys(store, "keys/")):  # never locked: docs/backends.md
        assert retention_days(store, key) == (None, None)

    # the environment variables are the same setting
    cli("backup", "--stdin", input=b"another day", env=cli.env(DELTAVAULT_OBJECT_LOCK_DAYS="4"))
    newest = next(k for k in keys(store, "data/") if k != pack)
    mode, days = retention_days(store, newest)
    assert mode == "COMPLIANCE" and days is not None and 3.9 < days <= 4

    # without either, nothing is locked
    cli("backup", "--stdin", input=b"unlocked day")
    unlocked = [k for k in keys(store, "data/") if k not in (pack, newest)]
    assert [retention_days(store, k) for k in unlocked] == [(None, None)]

    # maintenance --json extends what a kept snapshot needs (never shortens)
    doc = cli.json("maintenance", "--retention-days", "10")
    assert doc["retention_days"] == 10 and doc["objects"] >= 3
    for key in (pack, newest, *unlocked):
        mode, days = retention_days(store, key)
        assert days is not None and 9.9 < days <= 10, (key, mode, days)


@pytest.mark.parametrize("args,says", [
    (["--object-lock-days", "0"], "at least 1"),
    (["--object-lock-days", "ninety"], "object-lock-days"),
    (["--object-lock-days", "9", "--object-lock-mode", "strict"], "compliance or governance"),
])
def test_object_lock_option_errors_exit_2(s3_cli: tuple[Cli, S3Store], args: list[str],
                                          says: str) -> None:
    cli, store = s3_cli
    proc = cli(*args, "init", *KDF_ARGS, expect=2)
    assert says in proc.stderr.decode()
    assert keys(store, "") == []  # nothing written
