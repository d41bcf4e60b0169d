"""Live trading-state sources: SQLite, PostgreSQL, Redis (see docs/sources.md).

Each source is staged as ordinary files and backed up by the file pipeline
under a stable label (:mod:`deltavault.sources.base`).
"""

from deltavault.sources.base import SourceOptions, source_kind

__all__ = ["SourceOptions", "source_kind"]
