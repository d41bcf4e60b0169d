"""The Diff page: two snapshots side by side, files and bytes changed, reconcile breaks."""

from __future__ import annotations

from typing import Any

from deltavault.errors import DeltavaultError
from deltavault.trading.reconcile import ReconcileReport
from deltavault.ui.engine import RepositoryView
from deltavault.ui.kinds import SQLITE, summary_kind
from deltavault.ui.timeline import row_of

#: rows shown per change list (the counts and byte totals cover all of them)
SHOWN = 500
#: changed databases reconciled per page
MAX_DATABASES = 5


def diff_context(view: RepositoryView, a: str, b: str) -> dict[str, Any]:
    """Template values: the picker, and with both snapshots the diff and reconcile views."""
    entries = view.refresh()
    choices = [(e.snapshot.id, f"{e.snapshot.time[:19].replace('T', ' ')} {e.snapshot.type} "
                               f"{e.snapshot.id[:12]}" + (f" [{', '.join(e.snapshot.tags)}]"
                                                         if e.snapshot.tags else ""))
               for e in reversed(entries)]
    if not (a or b) and len(entries) >= 2:  # by default: what the latest snapshot changed
        a, b = entries[-2].snapshot.id, entries[-1].snapshot.id
    ctx: dict[str, Any] = {"choices": choices, "a": a, "b": b, "result": None}
    if not (a and b):
        return ctx
    ea, eb = view.snapshot(a), view.snapshot(b)
    result = view.diff(ea.snapshot, eb.snapshot)
    doc = result.to_dict()
    reconciles: list[tuple[str, ReconcileReport | None, str]] = []
    dbs = [p for p, _o, _n in result.changed if summary_kind(p) == SQLITE]
    for path in dbs[:MAX_DATABASES]:
        try:
            reconciles.append((path, view.reconcile_file(ea.snapshot, eb.snapshot, path), ""))
        except DeltavaultError as exc:
            reconciles.append((path, None, exc.one_line()))
    ctx.update({
        "a": ea.snapshot.id, "b": eb.snapshot.id, "left": row_of(ea), "right": row_of(eb),
        "result": result, "totals": {k: doc[k] for k in ("bytes_added", "bytes_removed",
                                                         "bytes_changed")},
        "added": result.added[:SHOWN], "removed": result.removed[:SHOWN],
        "changed": result.changed[:SHOWN], "metadata_only": result.metadata_only[:SHOWN],
        "shown": SHOWN, "reconciles": reconciles, "more_databases": max(0, len(dbs) -
                                                                           MAX_DATABASES),
    })
    return ctx
