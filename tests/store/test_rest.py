"""RestStore against the real REST server (uvicorn on a loopback port)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deltavault.errors import (
    BackendUnavailable,
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    PermissionDenied,
    VersionConflict,
)
from deltavault.server import BackgroundServer, Right, TokenTable
from deltavault.store.local import LocalStore
from deltavault.store.rest import RestStore
from deltavault.store.testing import StoreConformance
from tests.support.servers import free_ports

ADMIN = "admin-token-0123456789abcdef"
APPEND = "append-token-0123456789abcdef"
READ = "read-token-0123456789abcdef01"


def token_table() -> TokenTable:
    table = TokenTable()
    table.add(ADMIN, Right.ADMIN)
    table.add(APPEND, Right.APPEND)
    table.add(READ, Right.READ)
    return table


class TestRestStore(StoreConformance):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[RestStore]:
        with BackgroundServer(LocalStore(tmp_path / "repo", create=True),
                              tokens=token_table()) as server, \
                RestStore(server.url, ADMIN) as store:
            yield store  # type: ignore[misc]


@pytest.fixture(scope="module")
def append_only_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    root = tmp_path_factory.mktemp("append-only")
    with BackgroundServer(LocalStore(root, create=True), tokens=token_table(),
                          append_only=True) as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BackgroundServer]:
    root = tmp_path_factory.mktemp("rest")
    with BackgroundServer(LocalStore(root, create=True), tokens=token_table()) as server:
        yield server


def test_append_only_refuses_delete_and_overwrite(append_only_server: BackgroundServer) -> None:
    store = RestStore(append_only_server.url, ADMIN)  # even admin is capped
    store.put("data/aa/p1", b"pack")
    with pytest.raises(ObjectLocked, match="append-only server refuses to delete data/aa/p1"):
        store.delete("data/aa/p1")
    with pytest.raises(ObjectExists):
        store.put("data/aa/p1", b"other")
    version = store.stat("data/aa/p1").version
    with pytest.raises(ObjectLocked, match="overwrite"):
        store.replace("data/aa/p1", b"other", version)
    assert store.get("data/aa/p1") == b"pack"


def test_append_only_allows_what_the_protocol_needs(append_only_server: BackgroundServer
                                                     ) -> None:
    store = RestStore(append_only_server.url, APPEND)
    v1 = store.replace("ledger/checkpoint", b"1", None)
    v2 = store.replace("ledger/checkpoint", b"2", v1)
    with pytest.raises(VersionConflict):
        store.replace("ledger/checkpoint", b"3", v1)
    assert store.get_versioned("ledger/checkpoint") == (b"2", v2)
    store.put("locks/l1", b"lock")
    lv = store.stat("locks/l1").version
    store.replace("locks/l1", b"refreshed", lv)
    store.delete("locks/l1")
    assert not store.exists("locks/l1")


def test_append_token_on_normal_server(server: BackgroundServer) -> None:
    admin, append = RestStore(server.url, ADMIN), RestStore(server.url, APPEND)
    append.put("snapshots/s1", b"snap")
    with pytest.raises(ObjectLocked, match="token without admin right"):
        append.delete("snapshots/s1")
    admin.delete("snapshots/s1")  # admin may prune
    assert not admin.exists("snapshots/s1")


def test_read_token(server: BackgroundServer) -> None:
    RestStore(server.url, ADMIN).put("config", b"cfg")
    reader = RestStore(server.url, READ)
    assert reader.get("config") == b"cfg"
    assert [o.key for o in reader.list("config")] == ["config"]
    with pytest.raises(PermissionDenied, match="needs 'append'"):
        reader.put("index/i1", b"x")
    with pytest.raises(PermissionDenied):
        reader.delete("config")


def test_missing_or_bad_token(server: BackgroundServer) -> None:
    for token in (None, "not-a-token-of-this-server"):
        store = RestStore(server.url, token)
        with pytest.raises(PermissionDenied) as info:
            store.get("config")
        assert "DELTAVAULT_REST_TOKEN" in info.value.one_line()
        with pytest.raises(PermissionDenied):
            list(store.list())


def test_unreachable_server() -> None:
    store = RestStore(f"http://127.0.0.1:{free_ports(1)[0]}/", ADMIN, timeout=2)
    start = time.monotonic()
    with pytest.raises(BackendUnavailable, match="cannot reach REST server"):
        store.get("config")
    assert time.monotonic() - start < 5


def test_etag_is_version_token(server: BackgroundServer) -> None:
    store = RestStore(server.url, ADMIN)
    v = store.replace("cp-etag", b"x", None)
    assert v.startswith('"') and v.endswith('"')
    assert store.stat("cp-etag").version == v
    assert {o.key: o.version for o in store.list("cp-etag")} == {"cp-etag": v}


def test_metrics(server: BackgroundServer) -> None:
    store = RestStore(server.url, ADMIN)
    store.put("metrics-probe", b"12345")
    assert store.get("metrics-probe") == b"12345"
    with pytest.raises(ObjectNotFound):
        store.get("metrics-missing")
    import httpx

    text = httpx.get(server.url + "metrics", headers={"Authorization": f"Bearer {READ}"}).text
    assert 'deltavault_http_requests_total{method="PUT",route="/objects/{key:path}",' \
           'status="201"}' in text
    assert 'status="404"' in text
    assert 'deltavault_http_received_bytes_total{route="/objects/{key:path}"}' in text
    assert httpx.get(server.url + "metrics").status_code == 401


# --- TLS -----------------------------------------------------------------------


def _self_signed(dir_: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "deltavault test")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = dir_ / "cert.pem", dir_ / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_file, key_file


def test_tls(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    with BackgroundServer(LocalStore(tmp_path / "repo", create=True), tokens=token_table(),
                          tls_cert=str(cert), tls_key=str(key)) as server:
        assert server.url.startswith("https://127.0.0.1:")
        store = RestStore(server.url, ADMIN, ca_file=str(cert))
        store.put("config", b"over tls")
        assert store.get("config") == b"over tls"
        with pytest.raises(BackendUnavailable, match=r"CERTIFICATE_VERIFY_FAILED|certificate"):
            RestStore(server.url, ADMIN).get("config")  # system CAs do not know it
        assert RestStore(server.url, ADMIN, verify_tls=False).get("config") == b"over tls"
