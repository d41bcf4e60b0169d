"""Collect the storage-attack matrix across pytest-xdist workers and report it.

Each trial of tests/e2e/test_storage_attacker.py attaches its result as the
user property ``storage_attack``; reports travel to the controller, where
this plugin tallies them (attacks × commands: fail closed, correct, open,
losses), prints one summary line and the table, and writes the whole matrix
as JSON to ``$DELTAVAULT_ATTACK_MATRIX`` when set (for the issue's closing note).
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

PROPERTY = "storage_attack"
_rows: list[dict[str, Any]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when != "call":
        return
    for name, value in report.user_properties:
        if name == PROPERTY:
            _rows.append(json.loads(str(value)))


def tally(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts per attack × command, and in all."""
    cells: dict[str, dict[str, Counter[str]]] = {}
    total: Counter[str] = Counter()
    for r in rows:
        c = cells.setdefault(r["attack"], {}).setdefault(r["command"], Counter())
        for counter in (c, total):
            counter[r["outcome"]] += 1
            counter["trials"] += 1
            counter["losses"] += bool(r["losses"])
    return {"total": dict(total),
            "by_attack_and_command": {a: {c: dict(v) for c, v in cmds.items()}
                                      for a, cmds in cells.items()}}


def summary_line(rows: list[dict[str, Any]]) -> str:
    t = tally(rows)["total"]
    kinds = len({r["kind"] for r in rows})
    attacks = len({r["attack"] for r in rows})
    commands = len({r["command"] for r in rows})
    return (f"storage attacker: {t.get('trials', 0)} trials ({kinds} kinds, {attacks} attacks, "
            f"{commands} commands): {t.get('closed', 0)} fail closed, "
            f"{t.get('correct', 0)} correct, {t.get('open', 0)} open, "
            f"{t.get('losses', 0)} with losses")


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    if not _rows or hasattr(config, "workerinput"):
        return
    rows = sorted(_rows, key=lambda r: (r["kind"], r["attack"], r["command"]))
    tr = terminalreporter
    tr.section("storage attacker matrix")
    counts = tally(rows)["by_attack_and_command"]
    commands = sorted({r["command"] for r in rows})
    tr.write_line("attack \\ command: closed/correct/open (losses)")
    tr.write_line(" " * 10 + "".join(f"{c:>14}" for c in commands))
    for attack in sorted(counts):
        cells = []
        for c in commands:
            v = counts[attack].get(c, {})
            cells.append(f"{v.get('closed', 0)}/{v.get('correct', 0)}/{v.get('open', 0)}"
                         f" ({v.get('losses', 0)})" if v else "-")
        tr.write_line(f"{attack:<10}" + "".join(f"{x:>14}" for x in cells))
    for r in rows:
        if r["outcome"] == "open" or r["losses"]:
            tr.write_line(f"  {r['kind']}/{r['attack']}/{r['command']}: {r['outcome']} "
                          f"{r['reason']} {'; '.join(r['losses'])}".rstrip())
    tr.write_line(summary_line(rows))
    path = os.environ.get("DELTAVAULT_ATTACK_MATRIX")
    if path:
        Path(path).write_text(json.dumps({"summary": summary_line(rows), **tally(rows),
                                          "trials": rows}, indent=1, sort_keys=True) + "\n")
