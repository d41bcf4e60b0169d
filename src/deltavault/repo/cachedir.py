"""Where a client keeps what it learned about a repository between runs.

``$DELTAVAULT_CACHE_DIR``, else ``$XDG_CACHE_HOME/deltavault``, else
``~/.cache/deltavault``; one subdirectory per repository id (docs/format.md
§13). It holds, for example, the last ledger checkpoint this client verified
and a local copy of the index. Nothing in it is trusted blindly: a cached
item is checked against the repository (or the repository against it) before
it is used, and a damaged or stale cache is rebuilt, never believed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from deltavault.errors import UserError

_REPO_ID = re.compile(r"[0-9a-f]{64}")


def cache_root() -> Path:
    """The directory under which every repository's cache lives."""
    explicit = os.environ.get("DELTAVAULT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "deltavault"


def repository_cache(repo_id: str) -> Path:
    """This client's cache directory of one repository (created, mode 0700).

    Raises:
        UserError: ``repo_id`` is not a repository id, or the directory cannot be made.
    """
    if not _REPO_ID.fullmatch(repo_id):
        raise UserError(f"not a repository id: {repo_id!r}")
    path = cache_root() / repo_id
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:
        raise UserError(f"cannot create the cache directory {path}: {exc.strerror}",
                        hint="set DELTAVAULT_CACHE_DIR to a writable directory") from exc
    return path
