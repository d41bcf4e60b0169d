"""Summary lines reach a log or a pipe whole: no wrapping where there is no terminal.

Rich wraps at 80 columns when it cannot measure a terminal, so a restore's
summary with a long target path came out as three lines in a cron log.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import Cli


def _piped_env(cli: Cli) -> dict[str, str]:
    env = cli.env()
    env.pop("COLUMNS")  # what cron or a pipe gives: no width to go by
    return env


def test_a_long_summary_line_is_not_wrapped_in_a_pipe(cli_repo: Cli, tmp_path: Path) -> None:
    cli_repo("backup", "--stdin", input=b"some state")
    target = tmp_path / ("t" * 60) / ("u" * 60)
    out = cli_repo("restore", "latest", "--target", target, env=_piped_env(cli_repo))
    lines = out.stdout.decode().splitlines()
    assert len(lines) == 1 and str(target) in lines[0], lines


def test_a_table_in_a_pipe_keeps_whole_snapshot_ids(cli_repo: Cli) -> None:
    snap = cli_repo.json("backup", "--stdin", "--tag", "known-good",
                         input=b"state")["snapshot_id"]
    out = cli_repo("snapshots", env=_piped_env(cli_repo)).stdout.decode()
    assert snap[:12] in out and "known-good" in out, out  # at 80 columns: "7865c8f7…"
