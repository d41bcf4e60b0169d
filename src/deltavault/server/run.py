"""Run the REST server: in the foreground for the CLI, or in a thread."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import uvicorn

from deltavault.errors import UserError
from deltavault.server.app import DEFAULT_MAX_OBJECT, create_app
from deltavault.server.auth import TokenTable
from deltavault.store.base import Store
from deltavault.store.local import LocalStore


def parse_listen(listen: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) → (host, port)."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) < 65536:
        raise UserError(f"--listen must be HOST:PORT, got {listen!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _config(store: Store, listen: str, *, append_only: bool, tokens: TokenTable | None,
            tls_cert: str | None, tls_key: str | None, max_object_size: int,
            log_level: str) -> uvicorn.Config:
    if (tls_cert is None) != (tls_key is None):
        raise UserError("--tls-cert and --tls-key go together")
    for f in (tls_cert, tls_key):
        if f is not None and not os.path.isfile(f):
            raise UserError(f"TLS file {f} does not exist")
    host, port = parse_listen(listen)
    app = create_app(store, tokens, append_only, max_object_size=max_object_size)
    return uvicorn.Config(app, host=host, port=port, ssl_certfile=tls_cert, ssl_keyfile=tls_key,
                          log_level=log_level, access_log=log_level == "debug",
                          timeout_keep_alive=30, server_header=False,
                          timeout_graceful_shutdown=2)


def serve(path: str | Path, listen: str = "127.0.0.1:8000", *, append_only: bool = False,
          tokens_file: str | Path | None = None, tls_cert: str | None = None,
          tls_key: str | None = None, max_object_size: int = DEFAULT_MAX_OBJECT,
          log_level: str = "info", store: Store | None = None) -> None:
    """Serve a repository directory (or any ``store``) until interrupted.

    This is what ``deltavault serve`` calls.
    """
    tokens = TokenTable.load(tokens_file) if tokens_file else None
    backend = store if store is not None else LocalStore(path, create=True)
    config = _config(backend, listen, append_only=append_only, tokens=tokens, tls_cert=tls_cert,
                     tls_key=tls_key, max_object_size=max_object_size, log_level=log_level)
    uvicorn.Server(config).run()


class BackgroundServer:
    """The same server on a thread of this process (tests, benchmarks, embedding).

    Use as a context manager; ``url`` is valid once it is entered.
    """

    def __init__(self, store: Store, listen: str = "127.0.0.1:0", *,
                 append_only: bool = False, tokens: TokenTable | None = None,
                 tls_cert: str | None = None, tls_key: str | None = None,
                 max_object_size: int = DEFAULT_MAX_OBJECT) -> None:
        self.config = _config(store, listen, append_only=append_only, tokens=tokens,
                              tls_cert=tls_cert, tls_key=tls_key,
                              max_object_size=max_object_size, log_level="warning")
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=self.server.run, name="deltavault-rest",
                                       daemon=True)
        self.url = ""

    def __enter__(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("REST server did not start")
            time.sleep(0.01)
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        scheme = "https" if self.config.ssl_certfile else "http"
        self.url = f"{scheme}://{host}:{port}/"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(3)
        if self.thread.is_alive():
            # A client that keeps a connection open would hold uvicorn's
            # graceful shutdown; a test or embedder wants the port back now.
            self.server.force_exit = True
            self.thread.join(10)
