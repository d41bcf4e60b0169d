"""Many hosts backing up into one repository while retention runs: the load driver.

Used by ``tests/e2e/test_load.py`` (small, in CI) and ``bench/load.py``
(bigger). Every writer is a thread that runs the real ``deltavault backup
--host hostN`` script again and again (the state changes between backups);
a backup refused with exit 11 (a prune holds the exclusive lock) or 14 (the
store failed) is retried, any other exit code is a failure. Meanwhile a
``forget --keep-last K --prune`` runs (retried on exit 11 the same way), and
a monitor re-reads the ledger checkpoint every 100 ms: each new one must be
consistent with the last one it saw (:meth:`Ledger.refresh` checks the
consistency proof), so the hosts never fork the log.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deltavault.ledger.log import Ledger
from deltavault.store.base import Store
from tests.support.trees import write_random

RETRYABLE = (11, 14)  # locked by a prune; the store failed


@dataclass
class LoadConfig:
    writers: int = 4
    backups_per_writer: int = 3
    files: int = 4
    file_size: int = 256 * 1024
    prunes: int = 1
    keep_last: int = 1
    #: the pruner starts once every writer has committed this many snapshots
    prune_after: int = 2
    #: seconds between two forget --prune runs
    prune_pause: float = 1.0
    max_attempts: int = 200


@dataclass
class LoadResult:
    #: host → [(snapshot id, directory holding the state it was taken of)]
    commits: dict[str, list[tuple[str, Path]]] = field(default_factory=dict)
    retries: Counter[int] = field(default_factory=Counter)
    prunes: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    bytes_read: int = 0
    checkpoints_seen: int = 0
    errors: list[str] = field(default_factory=list)

    @property
    def snapshots(self) -> int:
        return sum(len(c) for c in self.commits.values())


def _argv(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "deltavault", *map(os.fspath, args)]


def _mutate(state: Path, round_: int, rng: random.Random, cfg: LoadConfig) -> None:
    """A day of change: one file rewritten, the trade log appended."""
    write_random(state / f"book{rng.randrange(cfg.files)}.bin", cfg.file_size,
                 rng.randrange(1 << 30))
    with open(state / "trades.log", "a") as log:
        log.write(f"round {round_} trade {rng.random():.6f}\n")


class _Load:
    def __init__(self, env: dict[str, str], work: Path, cfg: LoadConfig,
                 ledger: Ledger) -> None:
        self.env, self.work, self.cfg, self.ledger = env, work, cfg, ledger
        self.result = LoadResult()
        self.mutex = threading.Lock()
        self.ready = threading.Barrier(cfg.writers + 1)
        self.stop = threading.Event()

    def _retrying(self, what: str, args: list[str | os.PathLike[str]]) -> bytes:
        for _ in range(self.cfg.max_attempts):
            proc = subprocess.run(_argv(*args), env=self.env, capture_output=True,
                                  timeout=600, check=False)
            if proc.returncode == 0:
                return proc.stdout
            if proc.returncode not in RETRYABLE or b"Traceback" in proc.stderr:
                raise AssertionError(f"{what} exited {proc.returncode}: "
                                     f"{proc.stderr.decode(errors='replace')[-2000:]}")
            with self.mutex:
                self.result.retries[proc.returncode] += 1
            time.sleep(random.uniform(0.05, 0.3))
        raise AssertionError(f"{what} did not get through in {self.cfg.max_attempts} tries")

    def writer(self, n: int) -> None:
        host = f"host{n}"
        rng = random.Random(n)
        state = self.work / host / "state"
        state.mkdir(parents=True)
        for i in range(self.cfg.files):
            write_random(state / f"book{i}.bin", self.cfg.file_size, n * 1000 + i)
        commits: list[tuple[str, Path]] = []
        for k in range(self.cfg.backups_per_writer):
            if k:
                _mutate(state, k, rng, self.cfg)
            out = self._retrying(f"backup of {host}",
                                 ["backup", "--host", host, "--json", "--quiet", state])
            doc = json.loads(out)
            kept = self.work / host / doc["snapshot_id"]
            shutil.copytree(state, kept / "state")
            commits.append((doc["snapshot_id"], kept))
            with self.mutex:
                self.result.bytes_read += int(doc["summary"].get("bytes_read", 0))
            if k + 1 == self.cfg.prune_after:
                self.ready.wait()
            time.sleep(rng.uniform(0, 0.2))
        with self.mutex:
            self.result.commits[host] = commits

    def pruner(self) -> None:
        self.ready.wait()  # every host has prune_after snapshots: prune under load
        for p in range(self.cfg.prunes):
            if p:
                time.sleep(self.cfg.prune_pause)
            started = time.monotonic()
            out = self._retrying("forget --prune", ["forget", "--keep-last",
                                                    str(self.cfg.keep_last), "--prune",
                                                    "--json"])
            doc = json.loads(out)
            self.result.prunes.append({"seconds": round(time.monotonic() - started, 2),
                                       "forgotten": len(doc.get("forgotten", [])),
                                       "prune": doc.get("prune")})

    def monitor(self) -> None:
        sizes = set()
        while not self.stop.wait(0.1):
            try:
                self.ledger.refresh()  # raises on a fork or a rollback
            except Exception as exc:
                self.result.errors.append(f"ledger monitor: {exc}")
                return
            sizes.add(self.ledger.size)
        self.result.checkpoints_seen = len(sizes)


def run_load(env: dict[str, str], store: Store, origin: str, verifier: str, work: Path,
             cfg: LoadConfig) -> LoadResult:
    """Run ``cfg.writers`` backup loops and the pruner against the repository in ``env``."""
    load = _Load(env, work, cfg, Ledger.open(store, origin, verifier=verifier))
    errors: list[str] = []

    def guarded(fn: Any, *args: Any) -> None:
        try:
            fn(*args)
        except BaseException as exc:  # reported by run_load's caller
            errors.append(f"{fn.__name__}{args}: {exc}")
            load.ready.abort()

    started = time.monotonic()
    threads = [threading.Thread(target=guarded, args=(load.writer, n))
               for n in range(cfg.writers)]
    threads.append(threading.Thread(target=guarded, args=(load.pruner,)))
    monitor = threading.Thread(target=load.monitor)
    monitor.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    load.stop.set()
    monitor.join()
    load.result.seconds = time.monotonic() - started
    load.result.errors += errors
    return load.result
