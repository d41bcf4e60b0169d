"""Summary lines reach a log or a pipe whole: no wrapping where there is no terminal.

Rich wraps at 80 columns when it cannot measure a terminal, so a restore's
summary with a long target path came out as three lines in a cron log.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import KDF_ARGS, PASSWORD, Cli


def test_a_long_summary_line_is_not_wrapped_in_a_pipe(tmp_path: Path) -> None:
    pw = tmp_path / "password"
    pw.write_text(PASSWORD + "\n")
    cli = Cli(tmp_path / "repo", pw)
    cli("init", *KDF_ARGS)
    cli("backup", "--stdin", input=b"some state")
    target = tmp_path / ("t" * 60) / ("u" * 60)
    env = cli.env()
    env.pop("COLUMNS")  # what cron or a pipe gives: no width to go by
    out = cli("restore", "latest", "--target", target, env=env).stdout.decode()
    lines = out.splitlines()
    assert len(lines) == 1 and str(target) in lines[0], out


def test_a_table_in_a_pipe_keeps_whole_snapshot_ids(tmp_path: Path) -> None:
    pw = tmp_path / "password"
    pw.write_text(PASSWORD + "\n")
    cli = Cli(tmp_path / "repo", pw)
    cli("init", *KDF_ARGS)
    snap = cli.json("backup", "--stdin", "--tag", "known-good", input=b"state")["snapshot_id"]
    env = cli.env()
    env.pop("COLUMNS")
    out = cli("snapshots", env=env).stdout.decode()
    assert snap[:12] in out and "known-good" in out, out  # at 80 columns: "7865c8f7…"
