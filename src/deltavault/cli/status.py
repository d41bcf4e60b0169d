"""status: the newest snapshot per host and paths, its age, and the last check.

Thin: parse, call :func:`deltavault.ops.status.repository_status`, render.
Exits 4 (:class:`~deltavault.errors.StaleBackup`) when ``--max-age`` is
exceeded, after printing, so one cron line both logs and alerts.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any

import typer

from deltavault.cli.common import (
    JsonOpt,
    PasswordFileOpt,
    RepoOpt,
    emit_json,
    human_bytes,
    open_repo,
    out_console,
)
from deltavault.errors import StaleBackup, UsageError

if TYPE_CHECKING:
    from deltavault.ops.status import RepositoryStatus

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?[smhdw])+")


def parse_duration(text: str) -> float:
    """``26h``, ``90m``, ``1d12h``, ``3600s`` → seconds.

    Raises:
        UsageError: anything else, or zero.
    """
    value = text.strip().lower()
    if not _DURATION.fullmatch(value):
        raise UsageError(f"--max-age {text!r} is not a duration like 26h, 90m or 1d12h")
    seconds = sum(float(n) * _UNITS[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)([smhdw])",
                                                               value))
    if seconds <= 0:
        raise UsageError("--max-age must be more than zero")
    return seconds


def human_age(seconds: float) -> str:
    """``3d 4h``, ``2h 5m``, ``40s``: two units at most."""
    s = max(0, int(seconds))
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if s >= size or (unit == "s" and not parts):
            parts.append(f"{s // size}{unit}")
            s %= size
        if len(parts) == 2:
            break
    return " ".join(parts)


def _check_line(report: RepositoryStatus) -> str:
    facts, now = report.facts, report.now
    if facts.last_check_ok is None:
        line = "last check: never passed"
    else:
        seen = facts.last_check_ok.to_dict(now)
        line = f"last check passed {seen['time'][:19]}Z ({human_age(seen['age_s'])} ago)"
        rd = facts.last_check_ok_read_data
        line += (f"; with --read-data {rd.time[:19]}Z ({human_age(rd.to_dict(now)['age_s'])} ago)"
                 if rd else "; never with --read-data")
    if facts.last_check is not None and not facts.last_check.ok:
        line += f"; [red]the newest check ({facts.last_check.time[:19]}Z) FAILED[/]"
    return line


def status(
    repo: RepoOpt = "",
    password_file: PasswordFileOpt = None,
    max_age: Annotated[str | None, typer.Option(
        "--max-age", help="Exit 4 if any host/paths' newest snapshot is older (26h, 90m, "
                          "1d12h), or if there is no snapshot at all.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Newest snapshot per host and paths, its age and type, ledger size, last check."""
    from deltavault import api

    limit = parse_duration(max_age) if max_age is not None else None
    report = api.status(open_repo(repo, password_file), max_age_s=limit)
    if json_out:
        if report.ok:  # a stale report travels as the error document's details
            emit_json(report.to_dict())
    else:
        _print(report)
    if not report.ok:
        late = [f"{g.host}:{' '.join(g.paths or ['?'])} ({human_age(g.age_s)})"
                for g in report.stale]
        what = (f"{len(late)} of {len(report.groups)} backup(s) older than {max_age}: "
                + ", ".join(late[:5])) if late else "the repository has no snapshot"
        raise StaleBackup(what, details=report.to_dict())


def _print(report: RepositoryStatus) -> None:
    from rich.table import Table

    out_console.print(f"ledger: {report.ledger_size} entries, checkpoint verified "
                      f"(root {report.ledger_root[:16]}…)", highlight=False)
    out_console.print(_check_line(report), highlight=False)
    table = Table("host", "paths", "snapshots", "newest (UTC)", "age", "type", "id", "added")
    for g in report.groups:
        age: Any = human_age(g.age_s)
        if g.stale:
            age = f"[red]{age} (stale)[/]"
        table.add_row(g.host, "\n".join(g.paths or ["?"]), str(g.snapshots),
                      g.last_time[:19].replace("T", " "), age, g.last_type, g.last_id[:12],
                      human_bytes(g.bytes_added))
    out_console.print(table)
