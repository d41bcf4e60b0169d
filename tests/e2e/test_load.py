"""Four hosts back up into one S3 repository at once while ``forget --prune`` runs.

Every backup either commits or is refused cleanly (exit 11 while the prune
holds the repository) and retried; the ledger stays one linear log (a
monitor checks every checkpoint it sees against the last one); ``audit``
and ``check --read-data`` pass; every snapshot that is still committed
restores byte-identically, and every other one was forgotten by the policy.
The bigger run is ``bench/load.py``.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

from deltavault import api
from deltavault.ledger.state import committed_snapshots
from deltavault.ledger.verify import verify_log
from tests.support.cli import KDF_ARGS, PASSWORD, Cli, cli_env
from tests.support.load import LoadConfig, run_load
from tests.support.servers import S3Server
from tests.support.trees import assert_same_files

BUCKET = "dv-load"


def test_four_writers_and_a_prune_on_one_s3_repository(s3_server: S3Server, tmp_path: Path,
                                                       password_file: Path) -> None:
    with contextlib.suppress(Exception):  # another test of the session made it
        s3_server.client().create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
    url = f"s3://{BUCKET}/load{time.monotonic_ns()}"
    env = cli_env(tmp_path / "unused", password_file, DELTAVAULT_REPO=url,
                  AWS_ENDPOINT_URL=s3_server.endpoint, AWS_ACCESS_KEY_ID=s3_server.access_key,
                  AWS_SECRET_ACCESS_KEY=s3_server.secret_key, AWS_DEFAULT_REGION="us-east-1")
    cli = Cli(tmp_path / "unused", password_file)
    cli("init", *KDF_ARGS, "--pack-size", "1", env=env)
    repo = api.open(url_store := api.open_store(url, options={
        "endpoint_url": s3_server.endpoint, "access_key": s3_server.access_key,
        "secret_key": s3_server.secret_key, "region": "us-east-1"}), PASSWORD.encode())
    cfg = LoadConfig(writers=4, backups_per_writer=3, prune_after=2, keep_last=1)
    result = run_load(env, url_store, repo.config.ledger_origin,
                      repo.config.ledger_verifier_key, tmp_path / "load", cfg)
    assert result.errors == []
    print(f"\nload: {cfg.writers} writers x {cfg.backups_per_writer} backups committed in "
          f"{result.seconds:.1f} s, retries {dict(result.retries)}, prunes {result.prunes}, "
          f"{result.checkpoints_seen} checkpoints seen")
    assert all(len(c) == cfg.backups_per_writer for c in result.commits.values())
    assert len(result.prunes) == 1 and result.prunes[0]["forgotten"] >= cfg.writers

    # one linear log holding every commit, nothing lost and nothing twice
    repo = api.open(url_store, PASSWORD.encode())
    log = verify_log(repo.ledger)
    assert log.ok, log.problems
    taken = {sid: kept for commits in result.commits.values() for sid, kept in commits}
    assert len(taken) == cfg.writers * cfg.backups_per_writer
    live = committed_snapshots(repo.ledger)
    assert set(live) <= set(taken)
    # retention kept the newest of each host; the rest was forgotten by the policy
    for host, commits in result.commits.items():
        assert commits[-1][0] in live, host
    cli("check", "--read-data", env=env)
    cli("audit", env=env)
    for snap in api.snapshots(repo):
        out = tmp_path / "restore" / snap.id
        api.restore(repo, snap.id, out)
        assert_same_files(taken[snap.id] / "state", out / "state")
