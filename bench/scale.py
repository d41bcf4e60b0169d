"""Scale benchmark (issue 13): many small files, 10M blobs, 10M journal records, deep trees.

    python bench/scale.py                                  # full size: hours, ~60 GB of disk
    python bench/scale.py --files 10k --blobs 100k --journal 100k --deep 2000 \\
        --reclaim-scale 0.02                               # a few minutes

Sections (``--only`` picks some; each is skipped when its size list is empty):

- ``files``: trees of ``--files`` small unique files of each ``--kinds``, every
  operation timed with peak RSS for deltavault and restic in the same run
  (bench/scale_files.py), and the per-file slopes between sizes;
- ``blobs``: a synthetic repository of ``--blobs`` blobs built through the
  API, opened cold and warm: open time, index RAM per blob, lookups per
  second (bench/scale_repo.py);
- ``journal``: ``backup`` and ``snapshots`` with ``--journal`` journal records
  against none (bench/scale_repo.py);
- ``deep``: a ``--deep``-level directory chain backed up, restored and checked
  (bench/deeptree.py);
- ``reclaim``: ``--reclaim-days`` daily backups of a workload, every odd day
  forgotten and pruned, against a fresh backup of the kept days
  (bench/scale_reclaim.py).

The JSON (rewritten after every section, so a late failure keeps the early
figures) and its Markdown go to ``bench/results/<date>-scale-<tag>.json/.md``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time
import traceback
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

import deeptree  # noqa: E402
import limits  # noqa: E402
import report  # noqa: E402
import scale_files  # noqa: E402
import scale_reclaim  # noqa: E402
import scale_repo  # noqa: E402
import scale_report  # noqa: E402
from scale_files import parse_size, size_label  # noqa: E402
from tools import make_tools, remove_tree  # noqa: E402

SECTIONS = ("files", "blobs", "journal", "deep", "reclaim")


def _sizes(text: str) -> list[int]:
    return sorted(parse_size(s) for s in text.split(",") if s.strip())


def main(argv: list[str] | None = None) -> int:
    """Run the selected sections and write JSON and Markdown."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", default="100k,1m,5m", help="tree sizes, e.g. 10k,100k (or '')")
    ap.add_argument("--kinds", default="binary,text", help="binary, text or both")
    ap.add_argument("--blobs", default="10m", help="synthetic repository sizes, e.g. 1m,10m")
    ap.add_argument("--blobs-per-index", type=int, default=50_000)
    ap.add_argument("--lookups", type=int, default=200_000, help="lookups per probe")
    ap.add_argument("--journal", default="10m", help="journal record counts, e.g. 100k")
    ap.add_argument("--journal-batch", type=int, default=100_000, help="records per append")
    ap.add_argument("--repeat", type=int, default=3, help="timed repeats in the journal section")
    ap.add_argument("--deep", default="10000", help="chain depths, e.g. 2000,10000")
    ap.add_argument("--reclaim-workload", default="mixed")
    ap.add_argument("--reclaim-scale", type=float, default=0.2)
    ap.add_argument("--reclaim-days", type=int, default=30)
    ap.add_argument("--only", default=",".join(SECTIONS), help="comma list of sections")
    ap.add_argument("--tools", default="deltavault-incr,restic-auto",
                    help="tools for files, deep and reclaim (see run.py --tools)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--settle", type=float, default=scale_files.SETTLE_S,
                    help="seconds between the last large deletion and a timed full restore")
    ap.add_argument("--workdir", type=Path, help="where trees and repositories go")
    ap.add_argument("--out", type=Path, help="JSON path (default bench/results/...)")
    args = ap.parse_args(argv)
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    if unknown := set(only) - set(SECTIONS):
        ap.error(f"unknown section(s) {', '.join(sorted(unknown))}: use {', '.join(SECTIONS)}")
    tool_names = [t.strip() for t in args.tools.split(",") if t.strip()]
    make_tools(tool_names, Path("/nonexistent"))  # fail on a bad --tools before hours of work
    files, blobs, journal = _sizes(args.files), _sizes(args.blobs), _sizes(args.journal)
    depths = [int(d) for d in args.deep.split(",") if d.strip()]
    tag = "-".join(p for p in (
        "files" + "_".join(size_label(n) for n in files) if "files" in only and files else "",
        "blobs" + "_".join(size_label(n) for n in blobs) if "blobs" in only and blobs else "",
        "journal" + "_".join(size_label(n) for n in journal)
        if "journal" in only and journal else "") if p) or "scale"
    out = args.out or HERE / "results" / f"{date.today().isoformat()}-scale-{tag}.json"
    doc: dict[str, Any] = {
        "kind": "scale", "date": date.today().isoformat(),
        "command": "python bench/scale.py " + shlex.join(argv if argv is not None
                                                           else sys.argv[1:]),
        "machine": limits.machine(), "load_average": {"start": os.getloadavg()},
        "versions": {t.name: t.version() for t in make_tools(tool_names, Path("/nonexistent"))},
        "seed": args.seed, "errors": {},
    }
    say = report.console.print
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="deltavault-scale-", dir=args.workdir))

    def section(name: str, fn: Any) -> None:
        if name not in only:
            return
        say(f"[bold]{name}[/bold]")
        t0 = time.perf_counter()
        try:
            fn()
        except Exception as exc:  # one failed section must not lose the others' figures
            traceback.print_exc()
            doc["errors"][name] = f"{type(exc).__name__}: {exc}"
        finally:
            remove_tree(base / name)
            doc.setdefault("section_s", {})[name] = time.perf_counter() - t0
            doc["load_average"]["end"] = os.getloadavg()
            report.write_json(out, doc)

    def run_files() -> None:
        kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
        doc["files"] = scale_files.bench_files(base / "files", files, kinds, tool_names,
                                               args.seed, say, args.settle)

    def run_blobs() -> None:
        doc["blobs"] = {}
        for n in blobs:
            try:
                doc["blobs"][size_label(n)] = scale_repo.bench_blobs(
                    base / "blobs", n, args.seed, per_index=args.blobs_per_index,
                    lookups=args.lookups, say=say)
            except Exception as exc:
                traceback.print_exc()
                doc["blobs"][size_label(n)] = {"error": f"{type(exc).__name__}: {exc}"}
            remove_tree(base / "blobs")
        ok = [(b["build"]["blobs"], b["warm"]["index_rss_bytes"]) for b in doc["blobs"].values()
              if "error" not in b]
        if len(ok) >= 2:
            (n1, r1), (n2, r2) = ok[0], ok[-1]
            doc["blob_slope_bytes_per_blob"] = (r2 - r1) / (n2 - n1)

    def run_journal() -> None:
        doc["journal"] = {}
        for n in journal:
            try:
                doc["journal"][size_label(n)] = scale_repo.bench_journal(
                    base / "journal", n, args.seed, batch=args.journal_batch,
                    repeat=args.repeat, say=say)
            except Exception as exc:
                traceback.print_exc()
                doc["journal"][size_label(n)] = {"error": f"{type(exc).__name__}: {exc}"}
            remove_tree(base / "journal")

    def run_deep() -> None:
        doc["deep"] = []
        for depth in depths:
            (base / "deep").mkdir(parents=True, exist_ok=True)
            doc["deep"].append(deeptree.run(base / "deep", depth, tool_names, say))
            remove_tree(base / "deep")

    def run_reclaim() -> None:
        (base / "reclaim").mkdir(parents=True)
        doc["reclaim"] = scale_reclaim.bench_reclaim(
            base / "reclaim", args.reclaim_workload, args.reclaim_scale, args.reclaim_days,
            args.seed, tool_names, say)

    try:
        if files:
            section("files", run_files)
        if blobs:
            section("blobs", run_blobs)
        if journal:
            section("journal", run_journal)
        if depths:
            section("deep", run_deep)
        if args.reclaim_days > 1:
            section("reclaim", run_reclaim)
    finally:
        remove_tree(base)
    md = scale_report.to_markdown(doc)
    out.with_suffix(".md").write_text(md)
    print(md)
    say(f"JSON written to {out} (Markdown beside it)")
    return 1 if doc["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
