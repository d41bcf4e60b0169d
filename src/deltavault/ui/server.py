"""Run the console: bind, say where, serve until Ctrl-C or SIGTERM."""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Sequence

import uvicorn

from deltavault.errors import UserError
from deltavault.ledger.note import NoteVerifier
from deltavault.repo.repository import Repository
from deltavault.ui import repository_page
from deltavault.ui.app import create_app
from deltavault.ui.auth import check_listen, is_loopback
from deltavault.ui.engine import RepositoryView


def bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port, which is then printed)."""
    try:
        family, kind, proto, _name, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(128)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


def serve_console(repo: Repository, host: str, port: int, *, token: str | None = None,
                  allow_actions: bool = False, witnesses: Sequence[NoteVerifier] = (),
                  announce: Callable[[str], None] | None = None) -> None:
    """Index the ledger, then serve the console on ``host:port`` until interrupted."""
    check_listen(host, token)
    view = RepositoryView(repo, witnesses=witnesses)
    view.refresh()  # index the log once, before the first page is asked for
    # The per-kind storage history walks every snapshot once (seconds on a big
    # repository): start it now so the Repository page is ready when asked for.
    threading.Thread(target=repository_page.history, args=(view,), daemon=True,
                     name="deltavault-ui-warm").start()
    app = create_app(view, allow_actions=allow_actions, token=token, loopback=is_loopback(host))
    sock = bind(host, port)
    bound = sock.getsockname()
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    mode = "actions allowed" if allow_actions else "read-only"
    auth = "; open it with ?token=<the token> once" if token else ""
    say = announce or (lambda line: print(line, file=sys.stderr, flush=True))
    say(f"deltavault ui: serving http://{shown}:{bound[1]}/ ({mode}{auth}); Ctrl-C stops it")
    config = uvicorn.Config(app, log_level="warning", access_log=False, server_header=False,
                            timeout_graceful_shutdown=2, timeout_keep_alive=30)
    uvicorn.Server(config).run(sockets=[sock])
