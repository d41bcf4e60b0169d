"""HTTP details of the REST server: ranges, preconditions, status codes, fuzzing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deltavault.errors import UserError
from deltavault.server import BackgroundServer, create_app, serve
from deltavault.server.app import decode_etag, encode_etag
from deltavault.server.run import parse_listen
from deltavault.store.local import LocalStore


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with BackgroundServer(LocalStore(tmp_path_factory.mktemp("http"), create=True)) as server:
        yield server.url


def put(base: str, key: str, data: bytes) -> httpx.Response:
    return httpx.put(base + "objects/" + key, content=data, headers={"If-None-Match": "*"})


def test_ranges(base: str) -> None:
    assert put(base, "r", b"0123456789").status_code == 201
    cases = {"bytes=2-4": (206, b"234", "bytes 2-4/10"), "bytes=7-": (206, b"789", "bytes 7-9/10"),
             "bytes=-3": (206, b"789", "bytes 7-9/10"), "bytes=5-100": (206, b"56789", None),
             "bytes=10-": (416, None, "bytes */10"), "bytes=4-2": (416, None, None),
             "bytes=0-1,3-4": (200, b"0123456789", None), "items=1-2": (200, b"0123456789", None)}
    for header, (status, body, content_range) in cases.items():
        resp = httpx.get(base + "objects/r", headers={"Range": header})
        assert resp.status_code == status, header
        if body is not None:
            assert resp.content == body, header
        if content_range is not None:
            assert resp.headers["Content-Range"] == content_range, header


def test_put_needs_a_precondition(base: str) -> None:
    resp = httpx.put(base + "objects/unconditional", content=b"x")
    assert resp.status_code == 428
    assert resp.json()["error"] == "precondition_required"
    both = {"If-None-Match": "*", "If-Match": '"x"'}
    assert httpx.put(base + "objects/u2", content=b"x", headers=both).status_code == 428


def test_status_codes(base: str) -> None:
    assert put(base, "s/one", b"1").status_code == 201
    assert put(base, "s/one", b"2").json()["error"] == "exists"
    head = httpx.head(base + "objects/s/one")
    assert head.status_code == 200 and head.headers["Content-Length"] == "1"
    etag = head.headers["ETag"]
    assert httpx.get(base + "objects/s/one").headers["ETag"] == etag
    r = httpx.put(base + "objects/s/one", content=b"3", headers={"If-Match": '"bogus"'})
    assert (r.status_code, r.json()["error"]) == (412, "version_conflict")
    r = httpx.put(base + "objects/s/one", content=b"3", headers={"If-Match": etag})
    assert r.status_code == 201 and r.headers["ETag"] != etag
    assert httpx.get(base + "objects/s/missing").status_code == 404
    assert httpx.head(base + "objects/s/missing").status_code == 404
    assert httpx.delete(base + "objects/s/missing").status_code == 404
    assert httpx.delete(base + "objects/s/one").status_code == 204
    assert httpx.get(base + "objects/a/../b").status_code in (400, 404)
    assert httpx.get(base + "objects/a%20b").status_code == 400
    assert httpx.get(base + "health").json() == {"status": "ok", "append_only": False}


def test_list(base: str) -> None:
    put(base, "l/a", b"1")
    put(base, "l/b", b"22")
    body = httpx.get(base + "list", params={"prefix": "l/"}).json()
    assert sorted((o["key"], o["size"]) for o in body["objects"]) == [("l/a", 1), ("l/b", 2)]


def test_too_large(tmp_path: Path) -> None:
    with BackgroundServer(LocalStore(tmp_path, create=True), max_object_size=10) as server:
        r = put(server.url, "big", b"x" * 11)
        assert r.status_code == 413
        assert put(server.url, "small", b"x" * 10).status_code == 201


def test_etag_roundtrip() -> None:
    for version in ("abc", '"quoted-s3-etag"', "1a-2b-3c", ""):
        assert decode_etag(encode_etag(version)) == version
    assert decode_etag('W/"abc"') is None
    assert decode_etag('"!!"') is None


def test_parse_listen() -> None:
    assert parse_listen("127.0.0.1:8000") == ("127.0.0.1", 8000)
    assert parse_listen("[::1]:9") == ("::1", 9)
    for bad in ("8000", "host:", "host:99999", "host:x"):
        with pytest.raises(UserError):
            parse_listen(bad)


def test_serve_validates_arguments(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="go together"):
        serve(tmp_path, "127.0.0.1:0", tls_cert="cert.pem")
    with pytest.raises(UserError, match="tokens file"):
        serve(tmp_path, "127.0.0.1:0", tokens_file=tmp_path / "missing")


def test_openapi_documents_routes(tmp_path: Path) -> None:
    schema = create_app(LocalStore(tmp_path)).openapi()
    assert {"/objects/{key}", "/list", "/metrics", "/health"} <= set(schema["paths"])
    assert set(schema["paths"]["/objects/{key}"]) == {"get", "head", "put", "delete"}
