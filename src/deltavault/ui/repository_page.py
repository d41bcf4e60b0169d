"""The Repository page: stored against original bytes per data kind, and check results."""

from __future__ import annotations

import threading
from typing import Any

from deltavault.ui.engine import RepositoryView
from deltavault.ui.ledger_view import events_text
from deltavault.ui.storage import StorageHistory, storage_history
from deltavault.ui.svg import Series, line_chart_svg

_ORIGINAL, _STORED = "#9aa5b1", "#1f5fbf"
_cache: dict[int, tuple[tuple[str, ...], StorageHistory]] = {}
_cache_lock = threading.Lock()


def history(view: RepositoryView) -> StorageHistory:
    """The storage history, recomputed only when the set of snapshots changed."""
    entries = view.refresh()
    key = tuple(e.snapshot.id for e in entries)
    with _cache_lock:
        hit = _cache.get(id(view))
        if hit is not None and hit[0] == key:
            return hit[1]
        result = storage_history(view, entries)
        _cache[id(view)] = (key, result)
        return result


def repository_context(view: RepositoryView) -> dict[str, Any]:
    """Template values: per-kind charts and totals, repository facts, recent checks."""
    h = history(view)
    charts, totals = [], []
    for kind, original, stored in h.totals():
        orig_pts, stored_pts = h.cumulative(kind)
        charts.append(line_chart_svg(kind, [Series("original", _ORIGINAL, orig_pts),
                                            Series("stored", _STORED, stored_pts)]))
        totals.append({"kind": kind, "original": original, "stored": stored,
                       "ratio": original / stored if stored else None})
    checks = []
    for i, event, error in view.ledger.check_results():
        f = dict(event.fields) if event is not None else {}
        checks.append({"index": i, "time": event.time[:19].replace("T", " ") if event else "",
                       "ok": f.get("ok"), "errors": f.get("errors"),
                       "read_data": f.get("read_data"),
                       "details": events_text(f) if event else error})
    cfg = view.repo.config
    return {"charts": charts, "totals": totals, "checks": checks,
            "snapshots": len(h.times), "repo_id": cfg.id, "created": cfg.created,
            "ledger_size": view.ledger.size,
            "all_original": sum(t["original"] for t in totals),
            "all_stored": sum(t["stored"] for t in totals)}
