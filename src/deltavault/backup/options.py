"""What a backup is asked to do (options), reports while it runs (progress) and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from deltavault.codec.policy import Policy
from deltavault.repo.snapshot import Snapshot


@dataclass
class BackupOptions:
    """What to back up and how."""

    paths: list[Path] = field(default_factory=list)
    snapshot_type: str = "incr"
    tags: list[str] = field(default_factory=list)
    hostname: str = ""
    excludes: list[str] = field(default_factory=list)
    stdin: IO[bytes] | None = None
    stdin_filename: str = "stdin"
    parent: str | None = None
    workers: int = 0
    codec: Policy = "auto"
    full_every: int = 0
    full_after_days: float = 0
    #: recorded as the snapshot's ``paths`` instead of the absolute paths, so a
    #: source staged in a fresh temporary directory keeps one lineage
    #: (``sqlite:/srv/db/positions.sqlite``, ``postgres:host:5432/db``)
    label: list[str] | None = None


@dataclass
class Progress:
    """Counters the CLI renders; updated from the walker thread."""

    files_done: int = 0
    bytes_done: int = 0
    files_total: int | None = None
    bytes_total: int | None = None
    current: str = ""


@dataclass
class BackupResult:
    """The committed snapshot and what happened on the way."""

    snapshot: Snapshot
    errors: list[str]
