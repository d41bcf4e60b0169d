"""The Ledger page: checkpoint and cosignatures, events by type and time, journal records."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from deltavault.errors import UserError
from deltavault.ui.engine import RepositoryView
from deltavault.ui.ledger_view import JournalHit, JournalSearch, events_text, parse_time_us

#: events per page
EVENTS_PAGE = 50


def _when(ts: float | int | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def ledger_context(view: RepositoryView, etype: str, since: str, until: str,
                   before: int | None) -> dict[str, Any]:
    """Template values for the checkpoint, the verify box and one page of events."""
    view.refresh()
    index = view.ledger
    cp = index.checkpoint()
    since_us = parse_time_us(since) if since else None
    until_us = parse_time_us(until) if until else None
    if len(etype) > 64:
        raise UserError("event type too long")
    hits, total = index.find_events(etype, since_us, until_us, before, EVENTS_PAGE)
    live = set(index.live_snapshots())
    rows = []
    for i, event, error in index.entries(hits):
        fields = dict(event.fields) if event is not None else {}
        sid = fields.get("id") if event is not None and event.type == "snapshot" else None
        rows.append({"index": i, "type": event.type if event else "(invalid)",
                     "time": event.time[:19].replace("T", " ") if event else "",
                     "details": events_text(fields) if event else error,
                     "snapshot": sid if isinstance(sid, str) and sid in live else None,
                     "journal": event is not None and event.type == "journal"})
    last = index.last_verify
    verified = None
    if last is not None:
        when, result = last
        verified = {"when": _when(when), "ok": result.ok, "size": result.size,
                    "current": cp is not None and (result.size, result.root) == (cp.size, cp.root),
                    "problems": result.problems[:20]}
    return {
        "cp": cp, "vkey": view.repo.config.ledger_verifier_key,
        "cosignatures": [{"name": c.name, "key_id": c.key_id, "time": _when(c.timestamp),
                          "verified": c.verified} for c in (cp.cosignatures if cp else [])],
        "witnesses": [w.name for w in index.witnesses],
        "counts": sorted(index.type_counts().items()), "etype": etype, "since": since,
        "until": until, "events": rows, "matching": total,
        "next_before": rows[-1]["index"] if len(rows) == EVENTS_PAGE else None,
        "before": before, "verified": verified,
    }


def journal_context(view: RepositoryView, query: str, index: int | None,
                    cursor: int | None) -> dict[str, Any]:
    """Template values for a journal lookup by index or a search by field or text."""
    view.refresh()
    ledger = view.ledger
    ctx: dict[str, Any] = {"q": query, "index": index, "records": ledger.journal_count(),
                           "hits": [], "search": None, "cursor": cursor}
    if index is not None:
        hit: JournalHit = ledger.record(index)
        ctx["hits"] = [hit]
    elif query:
        if len(query) > 400:
            raise UserError("search text too long")
        found: JournalSearch = ledger.search(query, cursor)
        ctx["hits"], ctx["search"] = found.hits, found
    return ctx
