"""deltavault copy / repair run as a user would: JSON output, errors, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

from deltavault import api
from tests.support.cli import API_PASSWORD, KDF, run_cli, trading_state


def test_copy_cli_json_and_rerun(tmp_path: Path) -> None:
    state = trading_state(tmp_path / "state", scale=0.002)
    repo = api.init(tmp_path / "A", API_PASSWORD, **KDF)
    api.backup(repo, [state], snapshot_type="full")
    first = run_cli("copy", "--from-repo", str(tmp_path / "A"), "--to-repo",
                    str(tmp_path / "B"), "--json", env={})
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["ok"] and report["initialised"] and report["objects_copied"] > 0
    again = run_cli("copy", "--to-repo", str(tmp_path / "B"), "--json",
                    env={"DELTAVAULT_REPO": str(tmp_path / "A")})
    assert json.loads(again.stdout)["objects_copied"] == 0
    human = run_cli("copy", "latest", "--from-repo", str(tmp_path / "A"), "--to-repo",
                    str(tmp_path / "B"), env={})
    assert human.returncode == 0 and "copied 0 object(s)" in human.stdout
    assert run_cli("audit", "--repo", str(tmp_path / "B"), "--key",
                   repo.config.ledger_verifier_key, env={}).returncode == 0


def test_copy_cli_errors(tmp_path: Path) -> None:
    repo = api.init(tmp_path / "A", API_PASSWORD, **KDF)
    api.init(tmp_path / "C", API_PASSWORD, **KDF)
    cases = [
        (["copy", "--from-repo", str(tmp_path / "A")], 1, "no destination given"),
        (["copy", "--from-repo", str(tmp_path / "A"), "--to-repo", str(tmp_path / "C")], 1,
         "holds a different repository"),
        (["copy", "--from-repo", str(tmp_path / "nothing"), "--to-repo", str(tmp_path / "B")],
         10, "no repository"),
        (["copy", "nosuch", "--from-repo", str(tmp_path / "A"), "--to-repo",
          str(tmp_path / "D")], 1, "no snapshots"),
        (["repair", "--repo", str(tmp_path / "A")], 1, "no replica given"),
        (["repair", "--repo", str(tmp_path / "A"), "--from-repo", str(tmp_path / "C")], 1,
         "not a replica"),
    ]
    for args, code, text in cases:
        result = run_cli(*args, env={})
        lines = result.stderr.strip().splitlines()
        assert result.returncode == code, (args, result.stderr)
        assert len(lines) == 1 and text in lines[0], (args, result.stderr)
    del repo
