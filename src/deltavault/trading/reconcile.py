"""Reconcile positions and collateral between two sources.

A *book* is the ``positions`` table keyed by (account, instrument) with qty
and avg_px, and the ``collateral`` table keyed by (account, asset) with
amount and haircut. Two books are compared key by key; every difference
beyond its tolerance is a :class:`Break`: a row missing on one side, a
quantity mismatch, a price drift, a collateral amount or haircut drift.

Sources (``SOURCE`` strings of the CLI)::

    snapshot:<id|latest>[:path/to/positions.sqlite]   a database inside a snapshot
    sqlite:/path/to/db.sqlite                         a live SQLite file (read-only)
    postgres:<DSN>                                    a live PostgreSQL database
    reconstruct:<RFC 3339 time>                       snapshot + proven journal up to T
"""

from __future__ import annotations

import csv
import io
import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deltavault.errors import UserError
from deltavault.repo.repository import Repository
from deltavault.sources.dsn import redact
from deltavault.trading.books import Book, Key, read_postgres_book, read_sqlite_book


@dataclass(frozen=True)
class Tolerances:
    """Absolute tolerances; a difference strictly greater is a break."""

    qty: float = 0.0
    px: float = 0.0
    amount: float = 0.0
    haircut: float = 0.0


@dataclass(frozen=True)
class Break:
    """One difference: ``kind`` is missing_left, missing_right, qty, avg_px, amount, haircut."""

    table: str
    key: Key
    kind: str
    left: float | None
    right: float | None

    @property
    def diff(self) -> float | None:
        if self.left is None or self.right is None:
            return None
        return self.right - self.left

    def to_dict(self) -> dict[str, Any]:
        """JSON/CSV form."""
        second = "asset" if self.table == "collateral" else "instrument"
        return {"table": self.table, "account": self.key[0], second: self.key[1],
                "key": "/".join(self.key), "break": self.kind, "left": self.left,
                "right": self.right, "diff": self.diff}


@dataclass
class ReconcileReport:
    """Every break between ``left`` and ``right``, and what was compared."""

    left: str
    right: str
    tolerances: Tolerances
    positions_compared: int
    collateral_compared: int
    breaks: list[Break]

    @property
    def ok(self) -> bool:
        return not self.breaks

    def counts(self) -> dict[str, int]:
        """Number of breaks per kind."""
        out: dict[str, int] = {}
        for b in self.breaks:
            out[b.kind] = out.get(b.kind, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON form (``--json``)."""
        t = self.tolerances
        return {"ok": self.ok, "left": self.left, "right": self.right,
                "tolerances": {"qty": t.qty, "px": t.px, "amount": t.amount,
                               "haircut": t.haircut},
                "positions_compared": self.positions_compared,
                "collateral_compared": self.collateral_compared,
                "differences": len(self.breaks), "counts": self.counts(),
                "breaks": [b.to_dict() for b in self.breaks]}

    def to_csv(self) -> str:
        """One line per break: table, account, key, break, left, right, diff."""
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(["table", "account", "key", "break", "left", "right", "diff"])
        for b in self.breaks:
            w.writerow([b.table, b.key[0], b.key[1], b.kind, _num(b.left), _num(b.right),
                        _num(b.diff)])
        return buf.getvalue()

    def summary(self) -> str:
        """One line."""
        if self.ok:
            return (f"no breaks: {self.positions_compared} positions and "
                    f"{self.collateral_compared} collateral rows agree")
        detail = ", ".join(f"{n} {k}" for k, n in sorted(self.counts().items()))
        return f"{len(self.breaks)} break(s) between {self.left} and {self.right}: {detail}"


def _num(x: float | None) -> str:
    return "" if x is None else repr(x)


def _differs(a: float, b: float, tol: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) != math.isnan(b)
    return abs(a - b) > tol


def compare(left: Book, right: Book, tol: Tolerances, *, left_name: str = "left",
            right_name: str = "right") -> ReconcileReport:
    """Every break between two books, in table then key order."""
    breaks: list[Break] = []
    for table, names, tols in (("positions", ("qty", "avg_px"), (tol.qty, tol.px)),
                               ("collateral", ("amount", "haircut"), (tol.amount, tol.haircut))):
        lrows: dict[Key, tuple[float, float]] = getattr(left, table)
        rrows: dict[Key, tuple[float, float]] = getattr(right, table)
        for key in sorted(lrows.keys() | rrows.keys()):
            lv, rv = lrows.get(key), rrows.get(key)
            if rv is None:
                assert lv is not None
                breaks.append(Break(table, key, "missing_right", lv[0], None))
            elif lv is None:
                breaks.append(Break(table, key, "missing_left", None, rv[0]))
            else:
                for i, name in enumerate(names):
                    if _differs(lv[i], rv[i], tols[i]):
                        breaks.append(Break(table, key, name, lv[i], rv[i]))
    return ReconcileReport(left_name, right_name, tol,
                           len(left.positions.keys() | right.positions.keys()),
                           len(left.collateral.keys() | right.collateral.keys()), breaks)


def needs_repository(spec: str) -> bool:
    """Whether a source is read from the repository."""
    return spec.startswith(("snapshot:", "reconstruct:"))


@contextmanager
def open_book(spec: str, repo: Repository | None) -> Iterator[Book]:
    """The book a SOURCE string names (temporary files removed afterwards)."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise UserError(f"bad source {spec!r}: use snapshot:, sqlite:, postgres: or reconstruct:")
    if kind == "sqlite":
        yield read_sqlite_book(rest)
        return
    if kind == "postgres":
        yield read_postgres_book(rest)
        return
    if kind not in ("snapshot", "reconstruct"):
        raise UserError(f"unknown source kind {kind!r} (snapshot, sqlite, postgres, reconstruct)")
    if repo is None:
        raise UserError(f"source {spec!r} needs a repository", hint="use --repo")
    with tempfile.TemporaryDirectory(prefix="deltavault-reconcile-") as tmp:
        if kind == "snapshot":
            from deltavault.sources.sqlite import extract_database

            ref, _, inner = rest.partition(":")
            snap = repo.find_snapshot(ref)
            db = Path(tmp) / "db.sqlite"
            extract_database(repo, snap, db, inner or None)
        else:
            from deltavault.trading.reconstruct import reconstruct

            db = reconstruct(repo, rest, Path(tmp) / "state").database
        yield read_sqlite_book(db)


def reconcile(left: str, right: str, tol: Tolerances, repo: Repository | None = None
              ) -> ReconcileReport:
    """Compare two sources; record a ``reconcile`` event in ``repo`` when given."""
    with open_book(left, repo) as lb, open_book(right, repo) as rb:
        report = compare(lb, rb, tol, left_name=redact(left), right_name=redact(right))
    if repo is not None:
        repo.record_best_effort("reconcile", ok=report.ok, differences=len(report.breaks),
                                left=report.left, right=report.right, counts=report.counts())
    return report
