"""Who may talk to the console: loopback by default, a token to listen anywhere else.

The console reads decrypted trading state, so it is as sensitive as the
password. Rules:

* listening on a non-loopback address requires a token (the CLI refuses to
  start otherwise, exit 2);
* with a token, every request must carry it: ``Authorization: Bearer``, the
  cookie set after the first visit, or ``?token=`` on that first visit (the
  URL the command prints), which is then dropped from the address bar;
* on loopback, the ``Host`` header must name the loopback address: a web page
  on the internet cannot use DNS rebinding to read the console through the
  user's browser;
* every ``POST`` carries the page's CSRF value in a header, which a page of
  another origin cannot read, so it cannot start a verification or an action.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
from collections.abc import Awaitable, Callable, MutableMapping
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from deltavault.errors import UsageError, UserError

COOKIE = "deltavault_ui_token"
CSRF_HEADER = "x-deltavault-csrf"
MIN_TOKEN = 16
#: no framing, no sniffing, nothing loaded from anywhere but the console itself
_SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' data:; "
                                 b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only accepts local connections."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: whatever it resolves to, treat as reachable


def read_token(path: Path) -> str:
    """The token: the first line of ``path``, at least 16 characters."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read token file {path}: {exc.strerror}") from exc
    token = text.splitlines()[0].strip() if text.strip() else ""
    if len(token) < MIN_TOKEN or any(c.isspace() for c in token):
        raise UserError(f"token file {path}: the token must be one word of at least "
                        f"{MIN_TOKEN} characters", hint="e.g. 'openssl rand -hex 24 > FILE'")
    return token


def check_listen(host: str, token: str | None) -> None:
    """Refuse (exit 2) to listen beyond loopback without a token."""
    if token is None and not is_loopback(host):
        raise UsageError(f"listening on {host} needs --token-file: the console shows "
                         "decrypted repository data",
                         hint="use --listen 127.0.0.1:PORT, or give --token-file")


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class Guard:
    """ASGI middleware enforcing the rules above."""

    def __init__(self, app: ASGIApp, *, token: str | None, loopback: bool,
                 csrf: str) -> None:
        self.app = app
        self.token = token
        self.loopback = loopback
        self.csrf = csrf

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin1").lower(): v.decode("latin1")
                   for k, v in scope.get("headers", [])}
        if self.loopback and not _loopback_host(headers.get("host", "")):
            await _reply(send, 400, "unexpected Host header: open the console by its loopback "
                                    "address")
            return
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin1")))
        if self.token is not None and not self._authorised(headers):
            offered = query.get("token")
            if offered is not None and _same(offered, self.token) and scope["method"] == "GET":
                rest = urlencode({k: v for k, v in query.items() if k != "token"})
                location = scope.get("path", "/") + (f"?{rest}" if rest else "")
                cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                await _reply(send, 303, "", [(b"location", location.encode()),
                                             (b"set-cookie", cookie.encode())])
                return
            await _reply(send, 401, "this console needs its token: open the address that "
                                    "'deltavault ui' printed, or send 'Authorization: Bearer'",
                         [(b"www-authenticate", b"Bearer")])
            return
        if scope["method"] not in ("GET", "HEAD") and not _same(
                headers.get(CSRF_HEADER, ""), self.csrf):
            await _reply(send, 403, "missing or wrong CSRF header: use the console's buttons")
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_SECURITY_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    def _authorised(self, headers: dict[str, str]) -> bool:
        assert self.token is not None
        auth = headers.get("authorization", "")
        if auth[:7].lower() == "bearer " and _same(auth[7:].strip(), self.token):
            return True
        cookie: SimpleCookie = SimpleCookie()
        try:
            cookie.load(headers.get("cookie", ""))
        except Exception:  # a malformed cookie header is just no cookie
            return False
        morsel = cookie.get(COOKIE)
        return morsel is not None and _same(morsel.value, self.token)


def _loopback_host(host_header: str) -> bool:
    host = host_header.strip()
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return bool(host) and is_loopback(host)


async def _reply(send: Send, status: int, text: str,
                 headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()),
                            (b"cache-control", b"no-store"), *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


def new_csrf() -> str:
    """A per-process CSRF value (embedded in every page)."""
    return secrets.token_urlsafe(24)
