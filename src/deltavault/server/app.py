"""The REST server: any :class:`~deltavault.store.base.Store` over HTTP.

Routes, status codes and headers are specified in docs/rest-api.md; the
client is :class:`deltavault.store.rest.RestStore`. The ETag of an object is
its store version token, base64url-encoded so that any token is a valid
HTTP entity tag.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

import deltavault
from deltavault.errors import (
    BackendError,
    DeltavaultError,
    UserError,
)
from deltavault.ops.prometheus import render as render_gauges
from deltavault.ops.status import LedgerWatch
from deltavault.server.auth import Refusal, Right, TokenTable, authorize
from deltavault.server.metrics import ServerMetrics
from deltavault.store.base import ByteRange, Store, check_key
from deltavault.store.rest_protocol import http_date, iso_mtime, wire_error

DEFAULT_MAX_OBJECT = 1 << 30
_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]],
                    Callable[[Message], Awaitable[None]]], Awaitable[None]]


def encode_etag(version: str) -> str:
    """Store version token → quoted HTTP entity tag."""
    return '"' + base64.urlsafe_b64encode(version.encode()).decode().rstrip("=") + '"'


def decode_etag(etag: str) -> str | None:
    """Quoted entity tag → store version token (None if it is not one of ours)."""
    value = etag.strip()
    if value.startswith("W/"):
        return None  # weak tags never match a strong comparison
    value = value.strip('"')
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), altchars=b"-_", validate=True)
        return raw.decode()
    except (binascii.Error, ValueError):
        return None


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None
           ) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status,
                        headers=headers)


def _refused(refusal: Refusal) -> JSONResponse:
    return _error(refusal.status, refusal.code, refusal.message)


def _store_error(exc: DeltavaultError) -> JSONResponse:
    """Map a store exception to the response the client maps back (rest_protocol)."""
    status, code = wire_error(exc)
    return _error(status, code, str(exc), {"Retry-After": "1"} if status == 503 else None)


def _parse_range(header: str, size: int) -> ByteRange | Response | None:
    """One ``bytes=`` range → ByteRange; None to serve the whole object."""
    m = _RANGE_RE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None  # RFC 9110: a server may ignore a Range it does not support
    first, last = m.group(1), m.group(2)
    if not first:  # suffix range: the last N bytes
        n = int(last)
        if n == 0:
            return _error(416, "range_not_satisfiable", "empty suffix range",
                          {"Content-Range": f"bytes */{size}"})
        return ByteRange(max(0, size - n))
    start = int(first)
    if start >= size or (last and int(last) < start):
        return _error(416, "range_not_satisfiable", f"range {header} outside 0-{size - 1}",
                      {"Content-Range": f"bytes */{size}"})
    return ByteRange(start, None if not last else min(int(last), size - 1) - start + 1)


class _MetricsMiddleware:
    """Pure ASGI middleware counting requests and body bytes per route."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Callable[[Message], Awaitable[None]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        counts = {"in": 0, "out": 0, "status": 500}
        start = time.perf_counter()

        async def counting_receive() -> Message:
            message = await receive()
            counts["in"] += len(message.get("body", b""))
            return message

        async def counting_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                counts["status"] = message["status"]
            elif message["type"] == "http.response.body":
                counts["out"] += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            route = scope.get("route")
            self.metrics.observe(scope["method"], getattr(route, "path", "unmatched"),
                                 counts["status"], counts["in"],
                                 0 if scope["method"] == "HEAD" else counts["out"],
                                 time.perf_counter() - start)


_bearer = HTTPBearer(auto_error=False, description="a token from the server's tokens file")


def _caller(request: Request,
            creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
            ) -> Right | None:
    table: TokenTable = request.app.state.tokens
    return table.lookup(creds.credentials if creds else None)


# Module level: FastAPI resolves these string annotations in module globals.
Caller = Annotated[Right | None, Depends(_caller)]


def create_app(store: Store, tokens: TokenTable | None = None, append_only: bool = False,
               *, max_object_size: int = DEFAULT_MAX_OBJECT) -> FastAPI:
    """Build the ASGI app serving ``store``.

    Args:
        store: the store to expose (a LocalStore for ``deltavault serve``).
        tokens: bearer tokens and rights; None or empty = no authentication.
        append_only: refuse deletes and overwrites except those the
            protocol needs (see :mod:`deltavault.server.auth`).
        max_object_size: largest accepted PUT body (413 above).
    """
    tokens = tokens or TokenTable()
    metrics = ServerMetrics()
    watch = LedgerWatch(store)
    app = FastAPI(
        title="deltavault REST store",
        version=deltavault.__version__,
        description="Object store protocol of deltavault; see docs/rest-api.md.",
    )
    app.state.metrics = metrics
    app.state.store = store
    app.state.tokens = tokens

    def check(op: str, key: str, right: Right | None) -> Response | None:
        if right is None:
            return _error(401, "unauthorized", "missing or unknown bearer token",
                          {"WWW-Authenticate": 'Bearer realm="deltavault"'})
        refusal = authorize(op, key, right, append_only=append_only)
        return _refused(refusal) if refusal else None

    def valid_key(key: str) -> Response | None:
        try:
            check_key(key)
        except UserError as exc:
            return _error(400, "bad_request", str(exc))
        return None

    obj_responses: dict[int | str, dict[str, Any]] = {
        400: {"description": "invalid key"}, 401: {"description": "no or unknown token"},
        403: {"description": "permission_denied or object_locked"},
        404: {"description": "no such object"},
    }

    @app.get("/objects/{key:path}", responses={**obj_responses, 206: {"description": "range"},
                                               416: {"description": "range outside object"}})
    async def get_object(key: str, right: Caller,
                         range_: Annotated[str | None, Header(alias="Range")] = None
                         ) -> Response:
        """Read an object, or one byte range of it (``Range: bytes=a-b``)."""
        if (refused := check("read", key, right) or valid_key(key)) is not None:
            return refused
        try:
            if range_ is None:
                data, version = await run_in_threadpool(store.get_versioned, key)
                return Response(data, media_type="application/octet-stream",
                                headers={"ETag": encode_etag(version),
                                         "Accept-Ranges": "bytes"})
            info = await run_in_threadpool(store.stat, key)
            parsed = _parse_range(range_, info.size)
            if isinstance(parsed, Response):
                return parsed
            if parsed is None:
                data, version = await run_in_threadpool(store.get_versioned, key)
                return Response(data, media_type="application/octet-stream",
                                headers={"ETag": encode_etag(version)})
            data = await run_in_threadpool(store.get, key, parsed)
        except DeltavaultError as exc:
            return _store_error(exc)
        end = parsed.start + len(data) - 1
        return Response(data, status_code=206, media_type="application/octet-stream",
                        headers={"ETag": encode_etag(info.version),
                                 "Content-Range": f"bytes {parsed.start}-{end}/{info.size}"})

    @app.head("/objects/{key:path}", responses=obj_responses)
    async def head_object(key: str, right: Caller) -> Response:
        """Size, version (``ETag``) and store mtime (``Last-Modified``) without the content."""
        if (refused := check("read", key, right) or valid_key(key)) is not None:
            return refused
        try:
            info = await run_in_threadpool(store.stat, key)
        except DeltavaultError as exc:
            return _store_error(exc)
        return Response(headers={"Content-Length": str(info.size),
                                 "ETag": encode_etag(info.version),
                                 "Accept-Ranges": "bytes", **http_date(info.mtime)})

    @app.put("/objects/{key:path}", status_code=201,
             responses={**obj_responses, 201: {"description": "created or replaced"},
                        412: {"description": "exists / version conflict"},
                        413: {"description": "body too large"},
                        428: {"description": "If-None-Match or If-Match required"}},
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/octet-stream": {"schema": {"type": "string",
                                                         "format": "binary"}}}}})
    async def put_object(request: Request, key: str, right: Caller,
                         if_none_match: Annotated[str | None, Header()] = None,
                         if_match: Annotated[str | None, Header()] = None) -> Response:
        """Create (``If-None-Match: *``) or compare-and-swap (``If-Match: <etag>``)."""
        if if_none_match is not None and if_none_match.strip() == "*" and if_match is None:
            op = "create"
        elif if_match is not None and if_none_match is None:
            op = "replace"
        else:
            return _error(428, "precondition_required",
                          "PUT needs exactly one of 'If-None-Match: *' or 'If-Match: <etag>'")
        if (refused := check(op, key, right) or valid_key(key)) is not None:
            return refused
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_object_size:
            return _error(413, "too_large", f"object larger than {max_object_size} bytes")
        body = await request.body()
        if len(body) > max_object_size:
            return _error(413, "too_large", f"object larger than {max_object_size} bytes")
        try:
            if op == "create":
                await run_in_threadpool(store.put, key, body)
                # The version of a write-once object never changes; one stat
                # gives the client the ETag without a second request.
                version = (await run_in_threadpool(store.stat, key)).version
            else:
                expected = decode_etag(if_match or "")
                if expected is None:
                    return _error(412, "version_conflict", f"If-Match {if_match} matches nothing")
                version = await run_in_threadpool(store.replace, key, body, expected)
        except DeltavaultError as exc:
            return _store_error(exc)
        return Response(status_code=201, headers={"ETag": encode_etag(version)})

    @app.delete("/objects/{key:path}", status_code=204, responses=obj_responses)
    async def delete_object(key: str, right: Caller) -> Response:
        """Delete an object (admin, or ``locks/*`` for append tokens)."""
        if (refused := check("delete", key, right) or valid_key(key)) is not None:
            return refused
        try:
            await run_in_threadpool(store.delete, key)
        except DeltavaultError as exc:
            return _store_error(exc)
        return Response(status_code=204)

    @app.get("/list", responses={401: {"description": "no or unknown token"},
                                 403: {"description": "permission_denied"}})
    async def list_objects(right: Caller, prefix: Annotated[str, Query()] = "") -> Response:
        """Every object under ``prefix``: ``{"objects": [{key, size, etag, mtime}]}``."""
        if (refused := check("list", prefix, right)) is not None:
            return refused
        try:
            infos = await run_in_threadpool(lambda: list(store.list(prefix)))
        except DeltavaultError as exc:
            return _store_error(exc)
        return JSONResponse({"objects": [
            {"key": i.key, "size": i.size, "etag": encode_etag(i.version),
             "mtime": iso_mtime(i.mtime)} for i in infos]})

    @app.get("/metrics", response_class=PlainTextResponse,
             responses={401: {"description": "no or unknown token"}})
    async def get_metrics(right: Caller) -> Response:
        """Prometheus text format: requests by route and status, bytes in and out, and the
        repository gauges readable without its key (ledger size and verification, newest
        snapshot per host, last passing check)."""
        if right is None:
            return _error(401, "unauthorized", "missing or unknown bearer token",
                          {"WWW-Authenticate": 'Bearer realm="deltavault"'})
        repository = render_gauges(await run_in_threadpool(watch.gauges))
        return PlainTextResponse(metrics.render() + repository,
                                 media_type="text/plain; version=0.0.4; charset=utf-8")

    @app.get("/health")
    async def health() -> dict[str, Any]:
        """Liveness: the server runs (no token needed; says nothing of the store)."""
        return {"status": "ok", "append_only": append_only}

    @app.get("/capabilities", responses={401: {"description": "no or unknown token"}})
    async def capabilities(right: Caller) -> Response:
        """What the caller's token may do here (``deletes``: prune/forget can work)."""
        if right is None:
            return _error(401, "unauthorized", "missing or unknown bearer token",
                          {"WWW-Authenticate": 'Bearer realm="deltavault"'})
        effective = min(right, Right.APPEND) if append_only else right
        return JSONResponse({"right": right.name.lower(), "effective": effective.name.lower(),
                             "append_only": append_only,
                             "deletes": effective >= Right.ADMIN,
                             "atomic_replace": store.atomic_replace})

    @app.exception_handler(BackendError)
    async def backend_error(request: Request, exc: BackendError) -> Response:
        return _store_error(exc)

    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    return app
