"""deltavault's REST server: any Store over HTTP, with tokens and append-only mode."""

from deltavault.server.app import create_app
from deltavault.server.auth import Right, TokenTable, authorize
from deltavault.server.run import BackgroundServer, serve

__all__ = ["BackgroundServer", "Right", "TokenTable", "authorize", "create_app", "serve"]
