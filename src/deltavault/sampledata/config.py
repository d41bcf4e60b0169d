"""Configuration files of the sample trading state (JSON and TOML).

Small files whose only daily change is one value, the case where a backup
tool's per-file overhead (metadata, minimum chunk, pack header) dominates.
TOML is written by a tiny writer of our own because the standard library
reads TOML (``tomllib``) but does not write it; the writer's fixed layout
keeps a rewrite byte-identical except for the value that changed.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import numpy as np

from deltavault.sampledata.trading import Instrument

#: The files whose values a day may change; reference data is never edited.
EDITABLE = ("config/risk_limits.json", "config/engine.toml", "config/strategy.toml")


def write_reference(root: Path, instruments: list[Instrument]) -> None:
    """Instrument reference data and venue connectivity."""
    cfg = root / "config"
    cfg.mkdir(parents=True, exist_ok=True)
    _write_json(cfg / "instruments.json", {"version": 1,
                                           "instruments": [i.to_dict() for i in instruments]})
    venues = sorted({i.venue for i in instruments})
    _write_json(cfg / "venues.json", {
        "version": 1,
        "venues": {
            v: {"gateway": f"{v.lower()}-gw.internal", "port": 9000 + k,
                "protocol": "fix-4.4" if v not in ("BINANCE",) else "websocket",
                "orders_per_second": 50 * (k + 1), "cancel_on_disconnect": True}
            for k, v in enumerate(venues)
        },
    })


def write_settings(root: Path, instruments: list[Instrument], rng: np.random.Generator) -> None:
    """Risk limits per instrument, engine and strategy settings."""
    booked = [i for i in instruments if i.has_book]
    _write_json(root / "config" / "risk_limits.json", {
        "version": 1,
        "max_gross_notional_usd": 250_000_000,
        "max_daily_loss_usd": 2_500_000,
        "kill_switch": {"enabled": True, "max_rejects_per_minute": 120},
        "instruments": {
            i.symbol: {"max_position": int(rng.integers(10, 500)) * 10,
                       "max_order_qty": int(rng.integers(1, 50)) * 5,
                       "price_band_ticks": int(rng.integers(20, 200))}
            for i in booked
        },
    })
    _write_toml(root / "config" / "engine.toml", {
        "engine": {"threads": 8, "snapshot_interval_ms": 250, "book_levels": 10,
                   "journal_fsync": True},
        "risk": {"max_drawdown_pct": 4.5, "var_confidence": 0.99, "margin_buffer_pct": 12.5},
        "persistence": {"positions_db": "db/positions.sqlite", "trade_log": "logs/trades.jsonl"},
    })
    _write_toml(root / "config" / "strategy.toml", {
        f"strategy.{i.symbol.lower().replace('-', '_')}": {
            "enabled": True,
            "spread_bps": round(float(rng.uniform(0.5, 8.0)), 2),
            "quote_size_lots": int(rng.integers(1, 20)),
            "skew_per_lot_bps": round(float(rng.uniform(0.01, 0.5)), 3),
            "model": "alpha_transformer" if rng.random() < 0.7 else "risk_factor_mlp",
        }
        for i in booked
    })


def change_one_value(root: Path, rng: np.random.Generator) -> tuple[str, str, object, object]:
    """Change one numeric value in one editable file: ``(file, key, old, new)``."""
    rel = EDITABLE[int(rng.integers(len(EDITABLE)))]
    path = root / rel
    data = load(path)
    numeric = [k for k, v in flatten(data).items()
               if isinstance(v, int | float) and not isinstance(v, bool) and k != "version"]
    key = numeric[int(rng.integers(len(numeric)))]
    old = flatten(data)[key]
    new: int | float
    if isinstance(old, int):
        new = old + int(rng.integers(1, 10)) * (1 if rng.random() < 0.5 else -1)
    else:
        new = round(old * float(rng.uniform(0.8, 1.25)), 3)
        if new == old:
            new = round(old + 0.001, 3)
    _set(data, key, new)
    if rel.endswith(".json"):
        _write_json(path, data)
    else:
        _write_toml(path, _tables(data))
    return rel, key, old, new


def load(path: Path) -> dict[str, Any]:
    """A JSON or TOML config file as a dict."""
    if path.suffix == ".toml":
        return tomllib.loads(path.read_text())
    return dict(json.loads(path.read_text()))


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Leaves of nested dicts under dotted keys (lists stay whole leaves)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _set(data: dict[str, Any], dotted: str, value: object) -> None:
    # TOML table names themselves contain dots ("strategy.esh5"), so walk the
    # real nesting rather than splitting blindly.
    parts = dotted.split(".")
    node = data
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = value


def _tables(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Nested TOML data back to ``{"a.b": {leaf: value}}`` tables for the writer."""
    out: dict[str, dict[str, Any]] = {}

    def walk(node: dict[str, Any], name: str) -> None:
        leaves = {k: v for k, v in node.items() if not isinstance(v, dict)}
        if leaves:
            out[name] = leaves
        for k, v in node.items():
            if isinstance(v, dict):
                walk(v, f"{name}.{k}" if name else k)

    walk(data, "")
    return out


def _write_json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")


def _write_toml(path: Path, tables: dict[str, dict[str, Any]]) -> None:
    lines: list[str] = []
    for name, leaves in tables.items():
        lines.append(f"[{name}]")
        for k, v in leaves.items():
            lines.append(f"{k} = {_toml_value(v)}")
        lines.append("")
    path.write_text("\n".join(lines))


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(v)
