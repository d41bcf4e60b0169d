"""Backup and restore wall time of sample trading state: local vs S3 vs REST.

Generates ``deltavault.sampledata.state`` at ``--scale`` (0.35 ≈ 200 MiB), then for
each backend: ``init``, a full backup, and a restore of it into an empty
directory, timed end to end through the public API (repositories opened from
their URLs). Servers are the tests' own: SeaweedFS (``weed server -s3``) and
the deltavault REST server (LocalStore behind uvicorn), on loopback.

    PYTHONPATH=src:. python bench/backends_e2e_bench.py [--scale 0.35] [--sftp]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tests.store import conftest

from deltavault import api, sampledata
from deltavault.server import BackgroundServer
from deltavault.store.base import Store
from deltavault.store.local import LocalStore
from deltavault.store.url import open_store

PASSWORD = b"bench"


class _Factory:
    """Stands in for pytest's tmp_path_factory outside pytest."""

    def __init__(self, base: Path) -> None:
        self.base = base

    def mktemp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=name, dir=self.base))


@contextlib.contextmanager
def locations(base: Path, sftp: bool) -> Iterator[dict[str, str | Store]]:
    factory = _Factory(base)
    with contextlib.ExitStack() as stack:
        out: dict[str, str | Store] = {"local disk": str(base / "local-repo")}
        s3 = stack.enter_context(contextlib.contextmanager(
            conftest.s3_server.__wrapped__)(factory))  # type: ignore[attr-defined]
        s3.client().create_bucket(Bucket="bench")  # type: ignore[attr-defined]
        os.environ.update(AWS_ENDPOINT_URL=s3.endpoint, AWS_ACCESS_KEY_ID=s3.access_key,
                          AWS_SECRET_ACCESS_KEY=s3.secret_key, AWS_DEFAULT_REGION="us-east-1")
        out["S3 (SeaweedFS)"] = "s3://bench/repo"
        rest = stack.enter_context(BackgroundServer(LocalStore(base / "rest-repo",
                                                               create=True)))
        out["REST (uvicorn)"] = f"rest:{rest.url}"
        if sftp:
            ssh = stack.enter_context(contextlib.contextmanager(
                conftest.sshd_server.__wrapped__)(factory))  # type: ignore[attr-defined]
            out["SFTP (sshd)"] = open_store(
                f"sftp://{ssh.user}@{ssh.host}:{ssh.port}{ssh.root}/repo", create=True,
                options={"key_filename": str(ssh.key_file), "known_hosts": str(ssh.known_hosts)})
        yield out


def tree_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.35)
    parser.add_argument("--sftp", action="store_true", help="also measure SFTP")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="dv-e2e-bench-"))
    try:
        state = base / "state"
        sampledata.generate(state, scale=args.scale)
        size = tree_bytes(state)
        print(f"sample trading state: {size / 2**20:.0f} MiB in "
              f"{sum(1 for _ in state.rglob('*'))} entries (scale {args.scale})")
        rows = []
        with locations(base, args.sftp) as where:
            for name, location in where.items():
                repo = api.init(location, PASSWORD, kdf_memory_kib=8192, kdf_time_cost=1)
                start = time.perf_counter()
                result = api.backup(repo, [state], snapshot_type="full")
                backup_s = time.perf_counter() - start
                stored = result.snapshot.summary.get("bytes_added", 0)
                target = base / f"restore-{len(rows)}"
                start = time.perf_counter()
                api.restore(api.open(location, PASSWORD), "latest", target)
                restore_s = time.perf_counter() - start
                shutil.rmtree(target)
                rows.append((name, backup_s, size / 2**20 / backup_s, restore_s,
                             size / 2**20 / restore_s, stored / 2**20))
        print("\n| backend | backup s | backup MB/s | restore s | restore MB/s | stored MiB |")
        print("|---|---|---|---|---|---|")
        for name, bs, bmb, rs, rmb, st in rows:
            print(f"| {name} | {bs:.1f} | {bmb:.0f} | {rs:.1f} | {rmb:.0f} | {st:.0f} |")
        print(f"\n(MB/s = MiB of source state per second; {os.cpu_count()} CPUs, loopback)")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
