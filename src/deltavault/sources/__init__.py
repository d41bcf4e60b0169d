"""Live trading-state sources: SQLite, PostgreSQL, Redis (see docs/sources.md).

Each source is staged as ordinary files and backed up by the file pipeline
under a stable label (:mod:`deltavault.sources.base`).
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["SourceOptions", "source_kind"]


def __getattr__(name: str) -> Any:
    # lazy: `deltavault.sources.dsn` (redact, for labels) must not pull in the backup
    # pipeline and numpy through `base` before the password's key is derived (issue 14)
    if name in __all__:
        return getattr(importlib.import_module("deltavault.sources.base"), name)
    raise AttributeError(f"module 'deltavault.sources' has no attribute {name!r}")
