"""Client of deltavault's REST server (``deltavault serve``), over httpx.

One pooled :class:`httpx.Client` per store, safe to share between threads.
The version token of an object is the ETag the server sends. Status codes
map back to the store errors the server mapped from (docs/rest-api.md).
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from typing import NoReturn
from urllib.parse import quote

import httpx

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
from deltavault.store.base import ByteRange, ObjectInfo, Store, check_key
from deltavault.store.rest_protocol import error_class, parse_http_date, parse_iso_mtime


class RestStore(Store):
    """Objects on a deltavault REST server.

    Args:
        base_url: ``http(s)://host:port/`` (a path prefix is allowed).
        token: bearer token (None if the server runs without tokens).
        verify_tls: verify the server certificate (default True).
        ca_file: CA bundle or self-signed certificate to trust instead of
            the system store.
        timeout: seconds for connect and for each read/write.
        max_connections: size of the connection pool.
    """

    def __init__(self, base_url: str, token: str | None = None, *, verify_tls: bool = True,
                 ca_file: str | None = None, timeout: float = 60.0,
                 max_connections: int = 16) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise UserError(f"REST store URL must start with http:// or https://: {base_url!r}")
        self.base_url = base_url.rstrip("/") + "/"
        verify: ssl.SSLContext | bool = verify_tls
        if ca_file is not None:
            try:
                verify = ssl.create_default_context(cafile=ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise UserError(f"cannot load CA file {ca_file}: {exc}") from exc
        headers = {"User-Agent": "deltavault"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(
            base_url=self.base_url, headers=headers, verify=verify,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_connections,
                                max_keepalive_connections=max_connections),
        )

        self._caps: dict[str, object] | None = None

    def location(self) -> str:
        return f"rest:{self.base_url}"

    @property  # type: ignore[override]
    def supports_deletes(self) -> bool:  # type: ignore[override]
        """Whether this token may delete data here (asks ``GET /capabilities`` once).

        False for an append token or an ``--append-only`` server, so that
        forget and prune refuse before they change anything.
        """
        return bool(self._capabilities().get("deletes", True))

    @property  # type: ignore[override]
    def atomic_replace(self) -> bool:  # type: ignore[override]
        """Whether the server's store swaps atomically (``GET /capabilities``, once)."""
        return bool(self._capabilities().get("atomic_replace", True))

    def _capabilities(self) -> dict[str, object]:
        if self._caps is None:
            resp = self._send("GET", "capabilities", "query the rights for", "/")
            if resp.status_code == 404:  # a server without the route: learn on use
                self._caps = {}
            elif resp.status_code != 200:
                self._fail(resp, "query the rights for", "/", on_412=VersionConflict)
            else:
                try:
                    caps = resp.json()
                    if not isinstance(caps, dict):
                        raise ValueError("not a JSON object")
                except ValueError as exc:
                    raise BackendError(f"REST server sent malformed capabilities: {exc}"
                                       ) from exc
                self._caps = caps
        return self._caps

    def _url(self, key: str) -> str:
        return "objects/" + quote(check_key(key), safe="/")

    def _send(self, method: str, url: str, what: str, key: str, **kwargs: object
              ) -> httpx.Response:
        try:
            return self._http.request(method, url, **kwargs)  # type: ignore[arg-type]
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                f"cannot reach REST server {self.base_url} to {what} {key}: "
                f"{type(exc).__name__}: {exc}",
                hint="check that 'deltavault serve' runs and the URL is right",
            ) from exc

    def _fail(self, resp: httpx.Response, what: str, key: str, *, on_412: type[BackendError]
              ) -> NoReturn:
        try:
            body = resp.json()
            code, message = str(body.get("error", "")), str(body.get("message", ""))
        except ValueError:
            code, message = "", resp.text[:200]
        where = f"{self.base_url}: {message or resp.reason_phrase}"
        status = resp.status_code
        if status == 401:
            raise PermissionDenied(f"REST server refused the token to {what} {key}: {where}",
                                   hint="set DELTAVAULT_REST_TOKEN to a token of the server")
        if status in (504, 429) or (status >= 500 and not code):
            # a gateway or rate limit in front of the server, or a server error without
            # our error document (a handler cut off as the server goes down): retry
            raise BackendUnavailable(f"REST server could not {what} {key}: {where}")
        # a 412 means "exists" for a create and "changed" for a swap: the caller knows which
        cls = on_412 if status == 412 else error_class(status, code)
        if cls is ObjectNotFound:
            raise ObjectNotFound(f"object {key} not found on {self.base_url}")
        if cls is ObjectExists:
            raise ObjectExists(f"object {key} already exists")
        if cls is VersionConflict:
            raise VersionConflict(f"object {key} changed since it was read ({message})")
        if cls is ObjectLocked:
            raise ObjectLocked(f"REST server refuses to {what} {key}: {message}",
                               hint="the server or the token is append-only; use an admin "
                                    "token on a server without --append-only")
        if cls is PermissionDenied:
            raise PermissionDenied(f"REST server denied {what} {key}: {where}",
                                   hint="the token lacks the right for this operation")
        if cls is BackendUnavailable or (cls is BackendError and status == 502):
            raise BackendUnavailable(f"REST server could not {what} {key}: {where}")
        if cls is UserError:
            raise UserError(f"REST server rejected {what} {key}: {where}")
        if cls is NoCompareAndSwap:
            raise NoCompareAndSwap(f"REST server cannot {what} {key} atomically: {where}")
        raise BackendError(f"REST {what} {key} failed with HTTP {status}: {where}")

    # --- reads ---------------------------------------------------------------

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        headers = {}
        if byte_range is not None:
            if byte_range.length == 0:
                self.stat(key)
                return b""
            end = "" if byte_range.length is None else byte_range.start + byte_range.length - 1
            headers["Range"] = f"bytes={byte_range.start}-{end}"
        resp = self._send("GET", self._url(key), "read", key, headers=headers)
        if resp.status_code == 416:
            return b""  # the range starts at or past the end
        if resp.status_code not in (200, 206):
            self._fail(resp, "read", key, on_412=VersionConflict)
        data = resp.content
        if byte_range is not None and resp.status_code == 200:
            # The server ignored the range; cut it here.
            stop = None if byte_range.length is None else byte_range.start + byte_range.length
            data = data[byte_range.start:stop]
        return data

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        resp = self._send("GET", self._url(key), "read", key)
        if resp.status_code != 200:
            self._fail(resp, "read", key, on_412=VersionConflict)
        return resp.content, resp.headers["ETag"]

    def stat(self, key: str) -> ObjectInfo:
        resp = self._send("HEAD", self._url(key), "stat", key)
        if resp.status_code != 200:
            self._fail(resp, "stat", key, on_412=VersionConflict)
        return ObjectInfo(key, int(resp.headers["Content-Length"]), resp.headers["ETag"],
                          parse_http_date(resp.headers.get("Last-Modified")))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        resp = self._send("GET", "list", "list", prefix or "/", params={"prefix": prefix})
        if resp.status_code != 200:
            self._fail(resp, "list", prefix or "/", on_412=VersionConflict)
        try:
            objects = [ObjectInfo(o["key"], int(o["size"]), o["etag"],
                                  parse_iso_mtime(o.get("mtime")))
                       for o in resp.json()["objects"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise BackendError(f"REST server sent a malformed listing: {exc}") from exc
        return iter(objects)

    # --- writes --------------------------------------------------------------

    def put(self, key: str, data: bytes | bytearray) -> None:
        resp = self._send("PUT", self._url(key), "write", key, content=bytes(data),
                          headers={"If-None-Match": "*",
                                   "Content-Type": "application/octet-stream"})
        if resp.status_code not in (200, 201):
            self._fail(resp, "write", key, on_412=ObjectExists)

    def replace(self, key: str, data: bytes, expected_version: str | None) -> str:
        cond = {"If-None-Match": "*"} if expected_version is None else {
            "If-Match": expected_version}
        resp = self._send("PUT", self._url(key), "replace", key, content=data,
                          headers={**cond, "Content-Type": "application/octet-stream"})
        if resp.status_code not in (200, 201):
            self._fail(resp, "replace", key, on_412=VersionConflict)
        return resp.headers["ETag"]

    def delete(self, key: str) -> None:
        resp = self._send("DELETE", self._url(key), "delete", key)
        if resp.status_code not in (200, 204):
            self._fail(resp, "delete", key, on_412=VersionConflict)

    def close(self) -> None:
        self._http.close()
