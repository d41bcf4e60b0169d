"""Many hosts backing up into one S3 repository while forget --prune runs (issue 12).

Starts a replicated SeaweedFS cluster on loopback (one master, three volume
servers with replication 001, a filer and an S3 gateway: the tests'
harness), creates a repository in it, and runs ``--writers`` threads, each
running the real ``deltavault backup --host hostN`` script ``--backups``
times on its own changing state, while ``forget --keep-last 1 --prune``
runs ``--prunes`` times. Refused backups (exit 11 while the prune holds the
repository) are retried. Afterwards: ``audit`` and ``check --read-data``
through the script, and every still-committed snapshot restored and
compared. Prints a summary and writes ``bench/results/load-<date>-<w>x<b>.json``.

    PYTHONPATH=src:. python bench/load.py [--writers 8] [--backups 4] [--files 8]
        [--file-mib 1] [--prunes 2]

The CI-sized version is ``tests/e2e/test_load.py`` (4 writers x 3 backups).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.support.cli import KDF_ARGS, PASSWORD, SRC
from tests.support.cluster import start_cluster
from tests.support.load import LoadConfig, run_load
from tests.support.trees import differences

from deltavault import api
from deltavault.ledger.verify import verify_log

BUCKET = "dv-load"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "deltavault", *args], env=env,
                          capture_output=True, timeout=3600, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--backups", type=int, default=4)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--file-mib", type=float, default=1.0)
    parser.add_argument("--prunes", type=int, default=2)
    args = parser.parse_args()
    cfg = LoadConfig(writers=args.writers, backups_per_writer=args.backups, files=args.files,
                     file_size=int(args.file_mib * 2**20), prunes=args.prunes, keep_last=1,
                     prune_after=2, prune_pause=2.0)
    work = Path(tempfile.mkdtemp(prefix="dv-load-"))
    cluster = start_cluster(work / "cluster")
    try:
        cluster.s3.client().create_bucket(Bucket=BUCKET)  # type: ignore[attr-defined]
        password = work / "password"
        password.write_text(PASSWORD + "\n")
        url = f"s3://{BUCKET}/repo"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DELTAVAULT_")}
        env.update(PYTHONPATH=str(SRC), DELTAVAULT_REPO=url, DELTAVAULT_PASSWORD_FILE=str(password),
                   DELTAVAULT_CACHE_DIR=str(work / "cache"), AWS_ENDPOINT_URL=cluster.s3.endpoint,
                   AWS_ACCESS_KEY_ID=cluster.s3.access_key,
                   AWS_SECRET_ACCESS_KEY=cluster.s3.secret_key, AWS_DEFAULT_REGION="us-east-1")
        os.environ.update({k: env[k] for k in env if k.startswith(("AWS_", "DELTAVAULT_C"))})
        assert _cli(env, "init", *KDF_ARGS, "--pack-size", "4").returncode == 0
        store = api.open_store(url)
        repo = api.open(store, PASSWORD.encode())
        result = run_load(env, store, repo.config.ledger_origin,
                          repo.config.ledger_verifier_key, work / "load", cfg)
        if result.errors:
            raise SystemExit(f"load failed: {result.errors}")
        repo = api.open(store, PASSWORD.encode())
        log = verify_log(repo.ledger)
        ledger_bytes = sum(i.size for i in store.list("ledger/"))
        t = time.monotonic()
        audit = _cli(env, "audit", "--json")
        audit_s = time.monotonic() - t
        check = _cli(env, "check", "--read-data", "--json")
        taken = {sid: kept for c in result.commits.values() for sid, kept in c}
        restored = 0
        for snap in api.snapshots(repo):
            out = work / "restore" / snap.id
            api.restore(repo, snap.id, out)
            assert not differences(taken[snap.id] / "state", out / "state"), snap.id
            restored += 1
            shutil.rmtree(out)
        summary = {
            "date": dt.date.today().isoformat(), "cores": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "writers": cfg.writers, "backups_per_writer": cfg.backups_per_writer,
            "state_mib_per_host": round(cfg.files * cfg.file_size / 2**20, 1),
            "snapshots_committed": result.snapshots, "seconds": round(result.seconds, 1),
            "snapshots_per_minute": round(60 * result.snapshots / result.seconds, 1),
            "mib_read_per_s": round(result.bytes_read / 2**20 / result.seconds, 2),
            "retries": dict(result.retries), "prunes": result.prunes,
            "checkpoints_seen": result.checkpoints_seen,
            "ledger_entries": repo.ledger.size, "ledger_bytes": ledger_bytes,
            "ledger_verifies": log.ok, "audit_exit": audit.returncode,
            "audit": json.loads(audit.stdout or b"{}"), "audit_seconds": round(audit_s, 1),
            "check_read_data_exit": check.returncode, "snapshots_restored_identical": restored,
        }
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({k: v for k, v in summary.items() if k != "audit"}, indent=2))
    results = Path(__file__).parent / "results"
    name = f"load-{summary['date']}-{cfg.writers}x{cfg.backups_per_writer}.json"
    (results / name).write_text(json.dumps(summary, indent=2, default=str) + "\n")


if __name__ == "__main__":
    main()
