"""restic issue 22057 in deltavault: fake snapshots dated by a compromised client.

A client that has the password (it can run any code) backs up fake snapshots
whose times it chooses, far in the future and back-dated into earlier days,
hoping that the next trusted ``forget --keep-daily 3`` keeps the fakes and
drops the real snapshots. Retention reads the ledger time instead, and the
fakes are flagged by ``snapshots``, ``check`` and ``audit``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from deltavault import api
from deltavault.ops.retention import RetentionPolicy, select_forgotten
from tests.support.cli import PASSWORD, Cli


@contextmanager
def clock(monkeypatch: pytest.MonkeyPatch, when: datetime) -> Iterator[None]:
    """The backing-up client's clock says ``when`` (snapshot time and event time)."""
    text = when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    with monkeypatch.context() as m:
        m.setattr(importlib.import_module("deltavault.backup.run"), "now_rfc3339", lambda: text)
        m.setattr(importlib.import_module("deltavault.ledger.events"), "now_rfc3339",
                  lambda: text)
        yield


def test_fake_dated_snapshots_do_not_push_real_ones_out(cli_repo: Cli, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "state"
    src.mkdir()
    repo = api.open(cli_repo.repo, PASSWORD.encode())
    now = datetime.now(UTC).replace(microsecond=0)
    real = []
    for days in (2, 1, 0):  # an honest client, one backup a day
        (src / "positions.json").write_text(f"day -{days}")
        with clock(monkeypatch, now - timedelta(days=days, hours=1)):
            real.append(api.backup(repo, [src], hostname="desk").snapshot.id)
    fakes = []
    for when in (datetime(2099, 1, 1, tzinfo=UTC), now - timedelta(days=1, minutes=30),
                 now - timedelta(days=5)):
        (src / "positions.json").write_text(f"fake {when}")
        with clock(monkeypatch, when):  # the compromised client dates its snapshots
            fakes.append(api.backup(repo, [src], hostname="desk").snapshot.id)

    # what a retention policy on the claimed times would do (restic's behaviour)
    snaps = api.snapshots(repo)
    naive = {s.id for s in select_forgotten(snaps, RetentionPolicy(daily=3))}
    assert naive & set(real), "the attack must work on claimed times, or this test proves nothing"

    listed = {s["id"]: s for s in cli_repo.json("snapshots")}
    assert all(listed[f]["time_flagged"] for f in fakes)
    assert not any(listed[r]["time_flagged"] for r in real)
    assert " !" in cli_repo("snapshots").stdout.decode()
    cli_repo("forget", "--keep-daily", "3")
    after = {s["id"] for s in cli_repo.json("snapshots")}
    assert set(real) <= after  # every real snapshot kept
    assert set(fakes) <= after  # flagged: not counted, not removed, left for review
    report = cli_repo.json("check")
    assert len(report["time_flags"]) == len(fakes)
    audit = cli_repo.json("audit")
    assert len(audit["time_flags"]) == len(fakes)
