"""Point-in-time reconstruction: newest snapshot at or before T, plus the journal up to T.

1. Pick the newest live snapshot whose time is ≤ T (optionally with a tag
   or a source label) and restore it into an empty target directory.
2. Collect the ``journal`` events appended to the ledger *after* that
   snapshot's ``snapshot`` event and stamped ≤ T. Records journaled before
   the snapshot event are taken to be reflected in the snapshot (the trading
   system journals a record once it is committed to its database).
3. For each, in log order: prove the leaf's inclusion in the current signed
   checkpoint (tlog inclusion proof against the signed root), then read the
   sealed record and check its salted commitment (:class:`Journal.read`).
   The event's time is taken from the proven leaf, not from an unverified
   read. Any failure stops the reconstruction with a RepositoryError.
4. Apply the records to the restored SQLite database in one transaction,
   with the built-in trade applier or a user's ``module:function``.

A ``reconstruct`` event (snapshot, target, at, records applied, checkpoint
size) is appended to the ledger.
"""

from __future__ import annotations

import importlib
import os
import re
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from deltavault.errors import FormatError, LedgerError, ProofError, UserError
from deltavault.ledger.events import Event
from deltavault.ledger.journal import Journal
from deltavault.ledger.merkle import leaf_hash
from deltavault.ledger.state import events
from deltavault.ledger.tiles import is_reference
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot, parse_time
from deltavault.restore.restorer import RestoreOptions, run_restore
from deltavault.sources.base import source_kind
from deltavault.sources.sqlite import database_path
from deltavault.trading.booking import ASSETS, EPOCH, Position, apply_trade

#: Applies one journal record to the database; returns False if it ignored it.
Applier = Callable[[sqlite3.Connection, dict[str, Any]], object]

_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_at(text: str) -> datetime:
    """A user's or an event's RFC 3339 time (``Z`` or offset; naive = UTC; ns truncated)."""
    return parse_time(_FRACTION.sub(r"\1", text.strip()))


def _user_time(text: str) -> datetime:
    """``--at`` as the user typed it: a bad one is the caller's mistake (exit 1), not
    damaged data (a stored time that does not parse stays a FormatError, exit 13)."""
    try:
        return parse_at(text)
    except FormatError as exc:
        raise UserError(f"time {text!r} is not RFC 3339",
                        hint="give e.g. 2026-11-20T14:03:00Z") from exc


@dataclass(frozen=True)
class JournalRecord:
    """One verified record: leaf index, event time, the record."""

    index: int
    time: str
    record: dict[str, Any]


@dataclass
class ReconstructResult:
    """What was restored and replayed."""

    at: str
    snapshot: Snapshot
    target: Path
    database: Path
    applied: int
    ignored: int
    last_index: int | None
    checkpoint_size: int

    def to_dict(self) -> dict[str, Any]:
        """JSON form for ``--json``."""
        return {"at": self.at, "snapshot_id": self.snapshot.id, "snapshot_time": self.snapshot.time,
                "target": str(self.target), "database": str(self.database),
                "records_applied": self.applied, "records_ignored": self.ignored,
                "last_index": self.last_index, "checkpoint_size": self.checkpoint_size}


@dataclass
class _LogScan:
    snapshot_index: dict[str, int]  # live snapshot id -> index of its snapshot event
    journal: list[int]  # indexes of journal events, log order


def _scan(repo: Repository) -> _LogScan:
    live: dict[str, int] = {}
    journal: list[int] = []
    for i, ev in events(repo.ledger):
        f = ev.fields
        if ev.type == "snapshot":
            live[f["id"]] = i
        elif ev.type == "tag" and isinstance(f.get("new_id"), str) and f.get("snapshot") in live:
            live[f["new_id"]] = live.pop(f["snapshot"])
        elif ev.type == "forget":
            for sid in f.get("snapshots", []):
                live.pop(sid, None)
        elif ev.type == "journal":
            journal.append(i)
    return _LogScan(live, journal)


def pick_snapshot(repo: Repository, at: datetime, *, tag: str | None = None,
                  source: str | None = None) -> Snapshot:
    """The newest snapshot at or before ``at`` (of files or a sqlite source)."""
    cands = [s for s in repo.snapshots() if s.datetime <= at
             and source_kind(s) in (None, "sqlite")
             and (tag is None or tag in s.tags) and (source is None or source in s.paths)]
    if not cands:
        raise UserError(f"no snapshot at or before {at.isoformat()}"
                        + (f" with tag {tag!r}" if tag else ""))
    return max(cands, key=lambda s: s.datetime)


def verified_records(repo: Repository, indexes: list[int], at: datetime
                     ) -> Iterator[JournalRecord]:
    """Records at ``indexes`` stamped ≤ ``at``, each proven in the signed log first.

    Raises:
        ProofError: a leaf is not in the tree of the signed checkpoint.
        IntegrityError: a record's object is missing or altered, or does not
            match its commitment.
    """
    ledger = repo.ledger
    signed = ledger.checkpoint()
    if signed is None:
        return
    size, root = signed.checkpoint.size, signed.checkpoint.root
    journal = Journal(ledger, repo.crypto)
    for index in indexes:
        leaf = ledger.leaf(index)
        ledger.inclusion_proof(index, size).verify(leaf_hash(leaf), root)
        entry = ledger.entry(index) if is_reference(leaf) else leaf  # references hash-checked
        try:
            event = Event.from_bytes(entry)
        except Exception as exc:
            raise LedgerError(f"ledger entry {index} is not an event: {exc}") from exc
        if event.type != "journal":
            raise ProofError(f"ledger entry {index} is no longer a journal event")
        when = str(event.fields["time"])
        if parse_at(when) > at:
            continue
        record, _salt = journal.read(index)
        yield JournalRecord(index, when, record)


class TradeApplier:
    """The built-in applier: trades into ``positions``, fees and moves into ``collateral``.

    * A trade ``{account, instrument, side, qty, px, fee, ts}`` updates the
      position with average-cost accounting (the rule of
      :func:`deltavault.trading.booking.apply_trade`: fees reduce realized
      P&L). With ``fee_asset`` the fee is also debited from that collateral row.
    * ``{"kind": "collateral", account, asset, amount, ts[, haircut]}`` sets a
      collateral row (``delta`` instead of ``amount`` adds to it).
    * Anything else is ignored (counted, not applied).

    Quantities are rounded to the instrument's size decimals from
    ``config/instruments.json`` when the restored tree has one, else to the
    decimals the quantities themselves carry.
    """

    def __init__(self, size_decimals: dict[str, int] | None = None) -> None:
        self.size_decimals = dict(size_decimals or {})

    @classmethod
    def for_state(cls, root: Path) -> TradeApplier:
        """An applier using the instruments file found below ``root``, if any."""
        import json

        for path in sorted(root.glob("**/config/instruments.json"))[:1]:
            try:
                data = json.loads(path.read_text())
                return cls({d["symbol"]: int(d["size_decimals"]) for d in data["instruments"]})
            except (OSError, ValueError, KeyError, TypeError):
                break
        return cls()

    def __call__(self, con: sqlite3.Connection, record: dict[str, Any]) -> bool:
        if record.get("kind") == "collateral":
            return self._collateral(con, record)
        if record.get("kind", "trade") != "trade" or not record.keys() >= _TRADE_KEYS:
            return False
        if record["side"] not in ("buy", "sell"):
            raise ValueError(f"side {record['side']!r} is neither buy nor sell")
        key = (str(record["account"]), str(record["instrument"]))
        row = con.execute("SELECT qty, avg_px, realized_pnl, updated_at FROM positions "
                          "WHERE account = ? AND instrument = ?", key).fetchone()
        pos = Position(*row) if row else Position()
        decimals = self.size_decimals.get(key[1])
        if decimals is None:
            decimals = max(_decimals(float(record["qty"])), _decimals(pos.qty))
        apply_trade(pos, record, decimals)
        con.execute("INSERT OR REPLACE INTO positions (account, instrument, qty, avg_px, "
                    "realized_pnl, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (*key, pos.qty, pos.avg_px, pos.realized_pnl, pos.updated_at))
        if record.get("fee_asset"):
            self._move(con, key[0], str(record["fee_asset"]), -float(record["fee"]),
                       pos.updated_at, None)
        return True

    def _collateral(self, con: sqlite3.Connection, record: dict[str, Any]) -> bool:
        if not {"account", "asset", "ts"} <= record.keys():
            return False
        ts = _us(str(record["ts"]))
        haircut = record.get("haircut")
        account, asset = str(record["account"]), str(record["asset"])
        if "amount" in record:
            self._move(con, account, asset, float(record["amount"]), ts, haircut, absolute=True)
        elif "delta" in record:
            self._move(con, account, asset, float(record["delta"]), ts, haircut)
        else:
            return False
        return True

    @staticmethod
    def _move(con: sqlite3.Connection, account: str, asset: str, amount: float, ts: int,
              haircut: object, *, absolute: bool = False) -> None:
        row = con.execute("SELECT amount, haircut FROM collateral WHERE account = ? AND asset = ?",
                          (account, asset)).fetchone()
        if row is None:
            cut = float(haircut) if isinstance(haircut, (int, float)) else \
                ASSETS.get(asset, (0.0, 2))[0]
            con.execute("INSERT INTO collateral (account, asset, amount, haircut, updated_at) "
                        "VALUES (?, ?, ?, ?, ?)", (account, asset, amount, cut, ts))
            return
        new = amount if absolute else row[0] + amount
        new = round(new, ASSETS.get(asset, (0.0, 8))[1])
        cut = float(haircut) if isinstance(haircut, (int, float)) else row[1]
        con.execute("UPDATE collateral SET amount = ?, haircut = ?, updated_at = ? "
                    "WHERE account = ? AND asset = ?", (new, cut, ts, account, asset))


_TRADE_KEYS = {"account", "instrument", "side", "qty", "px", "fee", "ts"}


def _decimals(x: float) -> int:
    text = repr(float(x))
    if "e" in text or "n" in text:
        return 10
    frac = text.split(".")[1]
    return 0 if frac == "0" else len(frac)


def _us(ts: str) -> int:
    return int((parse_at(ts) - EPOCH).total_seconds() * 1_000_000)


def load_applier(spec: str, root: Path) -> Applier:
    """``builtin`` (trades → positions/collateral) or ``package.module:function``."""
    if spec == "builtin":
        return TradeApplier.for_state(root)
    mod_name, sep, func_name = spec.partition(":")
    if not sep or not mod_name or not func_name:
        raise UserError(f"bad applier {spec!r}: use 'builtin' or 'module:function'")
    try:
        func = getattr(importlib.import_module(mod_name), func_name)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"cannot load applier {spec!r}: {exc}") from exc
    if not callable(func):
        raise UserError(f"applier {spec!r} is not callable")
    return func  # type: ignore[no-any-return]


def reconstruct(repo: Repository, at: str | datetime, target: str | os.PathLike[str], *,
                applier: str | Applier = "builtin", db: str | None = None,
                tag: str | None = None, source: str | None = None) -> ReconstructResult:
    """Rebuild the state as of ``at`` below ``target`` (which must be empty or absent).

    Raises:
        UserError: no snapshot at or before ``at``, a non-empty target, a bad applier.
        RepositoryError: a record failed its inclusion proof or commitment
            (nothing is applied then), or stored data is damaged.
    """
    when = at if isinstance(at, datetime) else _user_time(at)
    target_path = Path(os.path.abspath(target))
    if target_path.exists() and (not target_path.is_dir() or any(target_path.iterdir())):
        raise UserError(f"{target_path} is not an empty directory")
    snap = pick_snapshot(repo, when, tag=tag, source=source)
    scan = _scan(repo)
    if snap.id not in scan.snapshot_index:
        raise LedgerError(f"snapshot {snap.id[:12]} has no snapshot event in the ledger")
    after = [i for i in scan.journal if i > scan.snapshot_index[snap.id]]
    # verify everything before touching the restored state
    records = list(verified_records(repo, after, when))
    with repo.lock():  # shared: prune cannot remove the packs being read
        run_restore(repo, snap, RestoreOptions(target_path))
    inner = database_path(repo, snap, db)
    db_file = target_path / inner
    apply_fn = load_applier(applier, target_path) if isinstance(applier, str) else applier
    applied = _apply_all(db_file, apply_fn, records)
    size = repo.ledger.size
    result = ReconstructResult(when.isoformat().replace("+00:00", "Z"), snap, target_path,
                               db_file, applied, len(records) - applied,
                               records[-1].index if records else None, size)
    repo.record_best_effort("reconstruct", snapshot=snap.id, target=str(target_path),
                            at=result.at, records_applied=applied,
                            last_index=result.last_index, checkpoint_size=size)
    return result


def _apply_all(db_file: Path, apply_fn: Applier, records: list[JournalRecord]) -> int:
    con = sqlite3.connect(db_file)
    applied = 0
    try:
        with con:
            for rec in records:
                try:
                    done = apply_fn(con, rec.record)
                except (ValueError, TypeError, KeyError, sqlite3.Error) as exc:
                    raise UserError(f"journal record {rec.index} cannot be applied: {exc}",
                                    hint="fix the applier or the restored database") from exc
                applied += done is not False
    finally:
        con.close()
    return applied
