"""The S3 store on a replicated multi-node SeaweedFS cluster that loses a node.

A volume server is SIGKILLed in the middle of a backup, and (after it came
back) another one in the middle of a restore, both run through the real
``deltavault`` script. Each operation either completes or fails with exit
14 (storage) and is completed by a rerun; nothing committed is lost; with a
node still down, ``check --read-data`` and the keyless ``audit`` pass.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support.cli import KDF_ARGS, SRC
from tests.support.cluster import SeaweedCluster, s3_cluster
from tests.support.trees import assert_same_files, write_random

__all__ = ["s3_cluster"]

BUCKET = "dv-cluster"
FILE_SIZE = 1536 * 1024


class Runner:
    """``deltavault`` against ``s3://dv-cluster/repo`` with the cluster's credentials."""

    def __init__(self, cluster: SeaweedCluster, password_file: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DELTAVAULT_")
                    or k == "DELTAVAULT_CACHE_DIR"}
        self.env.update(PYTHONPATH=str(SRC), DELTAVAULT_REPO=f"s3://{BUCKET}/repo",
                        DELTAVAULT_PASSWORD_FILE=str(password_file),
                        AWS_ENDPOINT_URL=cluster.s3.endpoint,
                        AWS_ACCESS_KEY_ID=cluster.s3.access_key,
                        AWS_SECRET_ACCESS_KEY=cluster.s3.secret_key,
                        AWS_DEFAULT_REGION="us-east-1")

    def json(self, *args: str | os.PathLike[str]) -> Any:
        return json.loads(self(*args, "--json").stdout)

    def argv(self, *args: str | os.PathLike[str]) -> list[str]:
        return [sys.executable, "-m", "deltavault", *map(os.fspath, args)]

    def __call__(self, *args: str | os.PathLike[str], expect: int = 0
                 ) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(self.argv(*args), env=self.env, capture_output=True,
                              timeout=600, check=False)
        assert proc.returncode == expect, (args, proc.returncode, proc.stderr[-3000:])
        return proc

    def killed_midway(self, args: list[str | os.PathLike[str]], midway: Callable[[], bool],
                      kill: Callable[[], None]) -> int:
        """Run a command, ``kill`` a node once ``midway()`` holds, return the exit code."""
        proc = subprocess.Popen(self.argv(*args), env=self.env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        deadline = time.monotonic() + 300
        while not midway():
            assert proc.poll() is None, "the command ended before the node was killed"
            assert time.monotonic() < deadline
            time.sleep(0.02)
        kill()
        _, err = proc.communicate(timeout=600)
        assert proc.returncode in (0, 14), (proc.returncode, err[-3000:])
        if proc.returncode == 14:
            assert b"Traceback" not in err
        return proc.returncode


def _tree(root: Path, files: int, seed: int) -> Path:
    root.mkdir(parents=True)
    for i in range(files):
        write_random(root / f"part{i:02}.bin", FILE_SIZE, seed * 100 + i)
    return root


def _busiest(cluster: SeaweedCluster, exclude: int | None = None) -> int:
    """The live volume server holding the most volumes of the repository's bucket."""
    holders = cluster.volumes_by_node(BUCKET)
    live = [i for i in range(len(cluster.volume_ports))
            if f"volume{i}" in cluster.procs and i != exclude]
    return max(live, key=lambda i: len(holders.get(cluster.node_url(i), ())))


def _size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _written(root: Path) -> int:
    """Bytes on disk below ``root`` (a restore may size its files before filling them)."""
    return sum(p.stat().st_blocks * 512 for p in root.rglob("*") if p.is_file())


def test_volume_server_killed_during_backup_and_restore(s3_cluster: SeaweedCluster,
                                                        tmp_path: Path,
                                                        password_file: Path) -> None:
    cluster = s3_cluster
    client = cluster.s3.client()
    client.create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
    run = Runner(cluster, password_file)
    run("init", *KDF_ARGS, "--pack-size", "1", "--chunk-avg", "262144")
    first = _tree(tmp_path / "state", 8, 1)
    run("backup", first)
    assert set(cluster.volume_replicas(BUCKET).values()) == {2}  # replication 001

    def packs() -> int:
        pages = client.get_paginator("list_objects_v2").paginate(  # type: ignore[attr-defined]
            Bucket=BUCKET, Prefix="repo/data/")
        return sum(len(p.get("Contents", [])) for p in pages)

    # --- a node dies while a backup uploads packs -----------------------------------
    second = _tree(tmp_path / "state2", 16, 2)
    before = packs()
    victim = _busiest(cluster)
    at_kill: list[int] = []

    def kill_first() -> None:
        at_kill.append(packs() - before)
        cluster.kill_volume(victim)

    code = run.killed_midway(["backup", second], lambda: packs() >= before + 4, kill_first)
    if code == 14:
        run("backup", second)  # the rerun completes the job
    snaps = run.json("snapshots")
    assert len(snaps) == 2
    print(f"\nbackup: volume server {victim} killed after {at_kill[0]} of "
          f"{packs() - before} packs were uploaded; backup exited {code}"
          + (", rerun completed" if code else ""))

    # --- it comes back; another dies while a restore reads ------------------------------
    cluster.start_volume(victim)
    second_victim = _busiest(cluster, exclude=victim)
    target = tmp_path / "out"
    total = _size(second)
    restored: list[int] = []

    def kill_second() -> None:
        restored.append(_written(target))
        cluster.kill_volume(second_victim)

    code = run.killed_midway(["restore", "latest", "--target", target],
                             lambda: target.exists() and _written(target) > total // 4,
                             kill_second)
    if code == 14:
        shutil.rmtree(target)
        run("restore", "latest", "--target", target)
    print(f"restore: volume server {second_victim} killed with {restored[0] >> 20} of "
          f"{total >> 20} MiB restored; restore exited {code}"
          + (", rerun completed" if code else ""))
    assert_same_files(second, target / "state2")

    # --- nothing committed is lost, and it all verifies, with a node still down -------
    shutil.rmtree(target)
    run("restore", snaps[0]["id"], "--target", target)
    assert_same_files(first, target / "state")
    run("check", "--read-data")
    run("audit")
