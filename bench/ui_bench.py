"""Console page load times on a big repository: 1,000 snapshots, 100,000 journal records.

Run: PYTHONPATH=src python bench/ui_bench.py [--work DIR] [--snapshots 1000]
     [--records 100000] [--rounds 5]

The repository is built through the API (kept in DIR and reused by later
runs): a small trading state (order-book arrays, a positions database, a
trade log, a config file) changed a little before every backup, a full every
50 snapshots and incrementals between, every 100th tagged known-good; then
journal records in batches of 1,000. The console is served by uvicorn on
127.0.0.1 in this process and each page is fetched over HTTP: the first
load (cold caches) and the median of ``--rounds`` more. Start-up (indexing
the ledger, loading the snapshots) and the Repository page's storage history
(which ``deltavault ui`` computes in the background right after start-up)
are timed on their own. Numbers are printed
and written to bench/results/ui_pages.json, never asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sqlite3
import statistics
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import uvicorn

from deltavault import api
from deltavault.ledger.journal import Journal
from deltavault.ui import repository_page
from deltavault.ui.app import create_app
from deltavault.ui.engine import RepositoryView

PASSWORD = b"ui bench"


def _state(root: Path, rng: np.random.Generator) -> None:
    (root / "orderbooks").mkdir(parents=True)
    (root / "db").mkdir()
    (root / "logs").mkdir()
    for i in range(8):
        np.save(root / "orderbooks" / f"INST{i}.npy", rng.normal(100, 1, (2000, 10, 4)))
    con = sqlite3.connect(root / "db" / "positions.sqlite")
    con.execute("CREATE TABLE positions (account TEXT, instrument TEXT, qty REAL, avg_px REAL, "
                "PRIMARY KEY (account, instrument))")
    con.execute("CREATE TABLE collateral (account TEXT, asset TEXT, amount REAL, haircut REAL, "
                "PRIMARY KEY (account, asset))")
    con.executemany("INSERT INTO positions VALUES (?, ?, ?, ?)",
                    [(f"A{i % 50:03d}", f"I{i}", float(i), 100.0) for i in range(5000)])
    con.executemany("INSERT INTO collateral VALUES (?, ?, ?, ?)",
                    [(f"A{i:03d}", "USD", 1e6, 0.0) for i in range(50)])
    con.commit()
    con.close()
    (root / "logs" / "trades.jsonl").write_text("")
    (root / "config.json").write_text(json.dumps({"risk": 1}))


def _change(root: Path, day: int, rng: np.random.Generator) -> None:
    path = root / "orderbooks" / f"INST{day % 8}.npy"
    arr = np.load(path)
    arr[rng.integers(0, len(arr))] += 0.25
    np.save(path, arr)
    con = sqlite3.connect(root / "db" / "positions.sqlite")
    with con:
        con.execute("UPDATE positions SET qty = qty + 1 WHERE instrument = ?", (f"I{day}",))
    con.close()
    with open(root / "logs" / "trades.jsonl", "a") as f:
        f.write(json.dumps({"day": day, "symbol": "ESZ6", "qty": 1}) + "\n")
    (root / "config.json").write_text(json.dumps({"risk": day}))


def build(work: Path, snapshots: int, records: int) -> Path:
    """The repository (reused when DIR already holds a complete one)."""
    repo_dir, done = work / "repo", work / "built"
    if done.exists():
        return repo_dir
    started = time.perf_counter()
    state = work / "state"
    rng = np.random.default_rng(7)
    _state(state, rng)
    repo = api.init(repo_dir, PASSWORD, kdf_memory_kib=8192, kdf_time_cost=1)
    for day in range(snapshots):
        kind = "full" if day % 50 == 0 else "incr"
        tags = ["known-good"] if day % 100 == 99 else []
        if day:
            _change(state, day, rng)
        api.backup(repo, [state], snapshot_type=kind, tags=tags)
        if day % 100 == 0:
            print(f"  {day} snapshots, {time.perf_counter() - started:.0f}s", flush=True)
    journal = Journal(repo.ledger, repo.crypto)
    for start in range(0, records, 1000):
        journal.append([{"kind": "trade", "order_id": f"O-{i:07d}", "symbol": "ESZ6",
                         "qty": 1 + i % 5, "px": 4800 + (i % 100) / 4}
                        for i in range(start, min(records, start + 1000))])
    done.write_text(f"built in {time.perf_counter() - started:.0f}s\n")
    return repo_dir


def _serve(app: object) -> tuple[uvicorn.Server, str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))  # type: ignore[arg-type]
    threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    return server, f"http://127.0.0.1:{sock.getsockname()[1]}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", type=Path, default=Path("/tmp/deltavault-ui-bench"))
    ap.add_argument("--snapshots", type=int, default=1000)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    repo_dir = build(args.work, args.snapshots, args.records)
    t = time.perf_counter()
    repo = api.open(repo_dir, PASSWORD)
    view = RepositoryView(repo)
    view.refresh()
    startup = time.perf_counter() - t
    print(f"startup (open, index {view.ledger.size} ledger entries, load "
          f"{len(view.refresh())} snapshots): {startup:.2f}s")
    t = time.perf_counter()
    repository_page.history(view)  # what `deltavault ui` starts in the background at startup
    history_s = time.perf_counter() - t
    print(f"storage history of {len(view.refresh())} snapshots (background at startup): "
          f"{history_s:.2f}s")
    snaps = view.refresh()
    latest, older = snaps[-1].snapshot.id, snaps[-2].snapshot.id
    n = view.ledger.size
    top = Path(snaps[-1].snapshot.paths[0]).name  # a backed-up directory is stored by its name
    pages = {
        "timeline": "/timeline",
        "timeline, page 10": "/timeline?page=10",
        "snapshot root": f"/snapshot/{latest}",
        "snapshot dir": f"/snapshot/{latest}?path={top}/orderbooks",
        "file + summary (sqlite)": f"/snapshot/{latest}/file?path={top}/db/positions.sqlite",
        "diff + reconcile": f"/diff?a={older}&b={latest}",
        "ledger": "/ledger",
        "ledger, snapshot events": "/ledger?type=snapshot",
        "ledger, events before n/2": f"/ledger?before={n // 2}",
        "journal record by index": f"/ledger/journal?index={n - 500}",
        "journal search, 25 hits": "/ledger/journal?q=symbol%3DESZ6",
        "journal search, 1 hit (32 batches)": "/ledger/journal?q=order_id%3DO-0099990",
        "journal search, further back": "/ledger/journal?q=order_id%3DO-0000010&cursor=40",
        "proof download": f"/ledger/journal/{n - 10}/proof",
        "repository": "/repository",
    }
    server, base = _serve(create_app(view, loopback=False))
    results: dict[str, dict[str, float]] = {}
    with httpx.Client(base_url=base, timeout=600) as http:
        for name, url in pages.items():
            t = time.perf_counter()
            res = http.get(url)
            cold = time.perf_counter() - t
            assert res.status_code == 200, (url, res.status_code, res.text[:300])
            warm = []
            for _ in range(args.rounds):
                t = time.perf_counter()
                http.get(url)
                warm.append(time.perf_counter() - t)
            results[name] = {"cold_s": round(cold, 4), "warm_median_s":
                             round(statistics.median(warm), 4), "bytes": len(res.content)}
            mid = statistics.median(warm) * 1000
            print(f"{name:34s} cold {cold * 1000:8.1f} ms   warm {mid:8.1f} ms   "
                  f"{len(res.content) / 1024:7.1f} KiB", flush=True)
        t = time.perf_counter()
        result = view.ledger.verify()
        print(f"{'ledger verify (Verify button)':34s} {time.perf_counter() - t:8.2f} s "
              f"({result.entries_checked} entries, ok={result.ok})")
    server.should_exit = True
    out = Path(__file__).parent / "results" / "ui_pages.json"
    out.write_text(json.dumps({"snapshots": len(snaps), "ledger_entries": n,
                               "startup_s": round(startup, 3),
                               "storage_history_s": round(history_s, 3), "cpus": os.cpu_count(),
                               "load_average_1m": round(os.getloadavg()[0], 2),
                               "pages": results}, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
