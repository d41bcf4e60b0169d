"""The targets of issues 13 and 14, evaluated on a result document.

Each target is a ratio or an absolute figure with a bound; the report shows
the measured value, the bound and whether it holds, per deltavault variant.
Targets are read from the median figures of one run of the benchmark, never
asserted anywhere: a missed target is a finding, not a failure.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MiB = 1 << 20
Figures = dict[str, float]


@dataclass(frozen=True)
class Target:
    """``value(ours, restic)`` compared with ``bound`` (``<=`` or ``>=``)."""

    key: str
    text: str
    value: Callable[[Figures, Figures], float | None]
    op: str
    bound: float
    unit: str = "x"


def _div(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _days_key(f: Figures) -> str | None:
    return next((k for k in f if k.startswith("repo_bytes_after_")), None)


WORKLOAD_TARGETS = (
    Target("full_speed", "full backup speed vs restic (restic time / ours)",
           lambda o, r: _div(r.get("full_s"), o.get("full_s")), ">=", 2.0),
    Target("restore_speed", "restore (latest) speed vs restic",
           lambda o, r: _div(r.get("restore_latest_s"), o.get("restore_latest_s")), ">=", 2.0),
    Target("rollback_vs_restic", "rollback after one day vs restic restore + swap (speed)",
           lambda o, r: _div(r.get("rollback_1day_s"), o.get("rollback_1day_s")), ">=", 4.0),
    Target("rollback_vs_restore", "rollback after one day / our full restore of that snapshot",
           lambda o, r: _div(o.get("rollback_1day_s"), o.get("restore_rollback_target_s")),
           "<=", 0.25),
    Target("full_repo", "full backup repository size vs restic",
           lambda o, r: _div(o.get("full_repo_bytes"), r.get("full_repo_bytes")), "<=", 1.0),
    Target("repo_after_days", "repository after all days vs restic",
           lambda o, r: _div(o.get(_days_key(o) or ""), r.get(_days_key(r) or "")), "<=", 1.0),
    Target("day1_bytes", "day-1 bytes added vs restic",
           lambda o, r: _div(o.get("day1_bytes_added"), r.get("day1_bytes_added")), "<=", 0.5),
    Target("backup_rss", "peak RSS of backup (full and day 1), MiB",
           lambda o, r: _div(max(o.get("full_peak_rss_bytes", 0), o.get("day1_peak_rss_bytes", 0))
                             or None, MiB), "<=", 100.0, " MiB"),
    Target("restore_rss", "peak RSS of restore (latest), MiB",
           lambda o, r: _div(o.get("restore_latest_peak_rss_bytes"), MiB), "<=", 100.0, " MiB"),
    Target("help_time", "`deltavault --help` wall time, s",
           lambda o, r: o.get("help_s"), "<=", 0.3, " s"),
)


def evaluate(results: dict[str, Figures],
             targets: tuple[Target, ...] = WORKLOAD_TARGETS) -> list[dict[str, Any]]:
    """One row per target and deltavault variant: value, bound, met (None: not measured)."""
    restic = results.get("restic")  # restic with its default compression
    rows = []
    for t in targets:
        for name, figs in results.items():
            if not name.startswith("deltavault"):
                continue
            value = t.value(figs, restic or {})
            met = None if value is None else (value <= t.bound if t.op == "<=" else
                                              value >= t.bound)
            rows.append({"target": t.key, "text": t.text, "variant": name, "value": value,
                         "op": t.op, "bound": t.bound, "unit": t.unit, "met": met})
    return rows


def fmt_row(row: dict[str, Any]) -> tuple[str, str, str, str]:
    """(text, value, bound, verdict) for tables."""
    v = row["value"]
    unit = row["unit"]
    value = "-" if v is None else (f"{v:.2f}{unit}")
    verdict = {None: "not measured", True: "met", False: "MISSED"}[row["met"]]
    return row["text"], value, f"{row['op']} {row['bound']:g}{unit}", verdict
