"""The benchmark's workloads: today's trading state and four variants with their own generators.

| name | what it stresses | scale 1 |
|---|---|---|
| ``trading`` | :mod:`deltavault.sampledata` (the product's demo data) | ~580 MiB, 71 files |
| ``books`` | thousands of smaller float64 L2 books, interleaved columns | ~590 MiB, 4,000 files |
| ``weights`` | incompressible float32 model weights, 1-2 blocks tuned a day | ~250 MiB, 53 files |
| ``textlog`` | one large JSON-lines execution log, appended daily | ~150 MiB, 2 files |
| ``mixed`` | held-out-like: ~1,000 books, weights, 155 MiB log, SQLite, configs | ~590 MiB |

Every workload is a pure function of ``(scale, seed)`` and, after it, of the
days applied in order: the same arguments write the same bytes. The variants
never call into :mod:`deltavault.sampledata` (one generator must not be the
only judge of the engine).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from variants import books, positions, tradelog, weights
from variants.common import Change, MiB, scaled, tree_manifest


@dataclass(frozen=True)
class Workload:
    """A named generator: ``generate(root, scale, seed)``, ``mutate(root, day, seed)``."""

    name: str
    about: str
    make: Callable[[Path, float, int], None]
    change: Callable[[Path, int, int], Change]
    part_of: Callable[[str], str]

    def generate(self, root: Path, *, scale: float, seed: int) -> dict[str, Any]:
        """Write the day-0 state; returns its manifest (files, bytes per part)."""
        if root.exists() and any(root.iterdir()):
            raise FileExistsError(f"{root} is not empty")
        root.mkdir(parents=True, exist_ok=True)
        self.make(root, scale, seed)
        return tree_manifest(root, self.part_of, name=self.name, scale=scale, seed=seed)

    def mutate(self, root: Path, *, day: int, seed: int) -> Change:
        """Apply day ``day`` (days must be applied in order 1, 2, ...)."""
        return self.change(root, day, seed)


def _part(rel: str) -> str:
    top = rel.split("/", 1)[0]
    if rel.endswith("instruments.json"):
        return "config"
    return {"l2": "orderbooks", "model": "model", "logs": "tradelog", "db": "sqlite"}.get(
        top, "config")


# --- trading: the sampledata generator, unchanged ---------------------------------------

def _trading_make(root: Path, scale: float, seed: int) -> None:
    from deltavault import sampledata

    root.rmdir()  # sampledata.generate wants to create it
    sampledata.generate(root, scale=scale, seed=seed)


def _trading_change(root: Path, day: int, seed: int) -> Change:
    from deltavault import sampledata

    s = sampledata.mutate(root, day=day, seed=seed)
    c = Change(day, list(s.changed_files))
    c.count("books_moved", len(s.books_moved))
    c.count("positions_updated", s.positions_updated)
    c.count("layers_tuned", len(s.layers_tuned))
    c.count("trades_appended", s.trades_appended)
    return c


def _trading_part(rel: str) -> str:
    from deltavault import sampledata

    return sampledata.part_of(rel)


# --- variants ---------------------------------------------------------------------------

BOOK_ROWS = 360
SESSIONS = 10


def _books_make(root: Path, scale: float, seed: int) -> None:
    books.generate(root / "l2", seed, instruments=scaled(400, scale, 6), sessions=SESSIONS,
                   mean_rows=BOOK_ROWS)


def _books_change(root: Path, day: int, seed: int) -> Change:
    return books.mutate(root / "l2", "l2/", seed, day, mean_rows=BOOK_ROWS)


def _weights_make(root: Path, scale: float, seed: int) -> None:
    weights.generate(root / "model", seed, target_bytes=int(250 * MiB * scale))


def _weights_change(root: Path, day: int, seed: int) -> Change:
    return weights.mutate(root / "model", "model/", seed, day)


def _log_make(root: Path, scale: float, seed: int) -> None:
    tradelog.generate(root / "logs", seed, target_bytes=int(150 * MiB * scale))


def _log_change(root: Path, day: int, seed: int) -> Change:
    return tradelog.mutate(root / "logs", "logs/", seed, day)


def _mixed_make(root: Path, scale: float, seed: int) -> None:
    books.generate(root / "l2", seed, instruments=scaled(100, scale, 4), sessions=SESSIONS,
                   mean_rows=BOOK_ROWS, tag="mixed-books")
    weights.generate(root / "model", seed, target_bytes=int(250 * MiB * scale),
                     tag="mixed-weights")
    tradelog.generate(root / "logs", seed, target_bytes=int(155 * MiB * scale),
                      tag="mixed-log")
    positions.generate(root / "db" / "positions.sqlite", seed,
                       target_bytes=int(30 * MiB * scale), tag="mixed-db")
    positions.generate_configs(root / "config", seed, tag="mixed-config")


def _mixed_change(root: Path, day: int, seed: int) -> Change:
    c = Change(day)
    c.merge(books.mutate(root / "l2", "l2/", seed, day, mean_rows=BOOK_ROWS, tag="mixed-books"))
    c.merge(weights.mutate(root / "model", "model/", seed, day, tag="mixed-weights"))
    c.merge(tradelog.mutate(root / "logs", "logs/", seed, day, tag="mixed-log"))
    c.merge(positions.mutate(root / "db" / "positions.sqlite", "db/positions.sqlite", seed, day,
                             tag="mixed-db"))
    c.merge(positions.mutate_configs(root / "config", "config/", seed, day, tag="mixed-config"))
    return c


WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("trading", "deltavault.sampledata trading state (the original bench workload)",
             _trading_make, _trading_change, _trading_part),
    Workload("books", "~4,000 float64 L2 order-book files, interleaved price/size columns",
             _books_make, _books_change, _part),
    Workload("weights", "~250 MiB incompressible float32 weights, 1-2 blocks tuned a day",
             _weights_make, _weights_change, _part),
    Workload("textlog", "~150 MiB JSON-lines execution log appended daily",
             _log_make, _log_change, _part),
    Workload("mixed", "~1,000 books + 250 MiB weights + 155 MiB log + SQLite + configs",
             _mixed_make, _mixed_change, _part),
)}


def select(spec: str) -> list[Workload]:
    """Workloads for ``--workload``: a name, a comma list, or ``all``."""
    if spec == "all":
        return list(WORKLOADS.values())
    out = []
    for name in (s.strip() for s in spec.split(",") if s.strip()):
        if name not in WORKLOADS:
            raise SystemExit(f"unknown workload {name!r}: use {', '.join(WORKLOADS)} or all")
        out.append(WORKLOADS[name])
    return out
