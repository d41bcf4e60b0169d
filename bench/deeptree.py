"""Deep-tree check: a 10,000-level directory chain backed up, restored and checked.

    python bench/deeptree.py --depth 10000 --tools deltavault-incr,restic-auto

The chain ``d/d/d/...`` is built with ``mkdir``/``open`` relative to the
parent's file descriptor (its path is ~20,000 characters, far past
PATH_MAX), with a small file every 1,000 levels and one at the bottom. Each
tool backs it up, restores it into an empty directory and checks its
repository; the restored chain is walked the same way and every level
compared (one ``d`` below each level, the same files with the same bytes).
The report is pass/fail and the time of each step, with the error line of a
failing step and how many lines of stderr it printed (one clear line is
expected, never a traceback). A report for the bench only: the test suite
has its own deep-tree test.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "src"))
sys.path.insert(0, str(HERE))

from tools import Tool, ToolError, describe, make_tools, remove_tree  # noqa: E402

_DIR = os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0)
FILE_EVERY = 1000


def _content(level: int) -> bytes:
    return f"level {level}\n".encode() * 8


def make_chain(root: Path, depth: int) -> None:
    """Create ``depth`` nested directories under ``root`` with marker files."""
    root.mkdir(parents=True)
    fd = os.open(root, _DIR)
    try:
        for level in range(depth):
            if level % FILE_EVERY == 0:
                _write(fd, "f", _content(level))
            os.mkdir("d", dir_fd=fd)
            nfd = os.open("d", _DIR, dir_fd=fd)
            os.close(fd)
            fd = nfd
        _write(fd, "leaf", _content(depth))
    finally:
        os.close(fd)


def _write(dir_fd: int, name: str, data: bytes) -> None:
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, dir_fd=dir_fd)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def _read(dir_fd: int, name: str) -> bytes:
    fd = os.open(name, os.O_RDONLY, dir_fd=dir_fd)
    try:
        return os.read(fd, 1 << 16)
    finally:
        os.close(fd)


def verify_chain(root: Path, depth: int) -> str | None:
    """None if ``root`` holds exactly the chain :func:`make_chain` wrote, else what differs."""
    fd = os.open(root, _DIR)
    try:
        for level in range(depth + 1):
            names = sorted(os.listdir(fd))
            want = ["leaf"] if level == depth else \
                (["d", "f"] if level % FILE_EVERY == 0 else ["d"])
            if names != want:
                return f"level {level}: found {names}, expected {want}"
            for f in ("f", "leaf"):
                if f in names and _read(fd, f) != _content(level):
                    return f"level {level}: {f} differs"
            if level < depth:
                nfd = os.open("d", _DIR, dir_fd=fd)
                os.close(fd)
                fd = nfd
    finally:
        os.close(fd)
    return None


def check_tool(tool: Tool, chain: Path, depth: int, work: Path) -> dict[str, Any]:
    """Backup, restore, check with one tool; each step's time, pass/fail and error."""
    out: dict[str, Any] = {"ok": False}
    tool.prepare()
    step = "init"
    try:
        tool.init()
        step = "backup"
        snap, m = tool.backup(chain, "deep", "full")
        out["backup_s"] = m.seconds
        step = "restore"
        target = work / f"restore-{tool.name}"
        tree, m = tool.restore(snap, target)
        out["restore_s"] = m.seconds
        step = "verify"
        problem = verify_chain(tree, depth)
        if problem:
            raise ToolError(f"restored chain differs: {problem}")
        remove_tree(target)
        step = "check"
        out["check_s"] = tool.check().seconds
        out["ok"] = True
    except Exception as exc:  # one tool's failure is a finding; the rest go on
        out.update(failed_step=step, error=describe(exc)[:600])
    finally:
        remove_tree(tool.work)
    return out


def run(work: Path, depth: int, tool_names: list[str], say: Any = print) -> dict[str, Any]:
    """Build the chain once and check every tool on it."""
    chain = work / "chain"
    t0 = time.perf_counter()
    make_chain(chain, depth)
    say(f"  built a {depth:,}-level chain in {time.perf_counter() - t0:.1f} s")
    out: dict[str, Any] = {"depth": depth, "tools": {}}
    for tool in make_tools(tool_names, work):
        r = check_tool(tool, chain, depth, work)
        out["tools"][tool.name] = r
        say(f"  {tool.name}: " + ("pass" if r["ok"] else
                                  f"FAIL at {r['failed_step']}: {r['error'][:300]}")
            + "".join(f", {k[:-2]} {r[k]:.2f} s" for k in ("backup_s", "restore_s", "check_s")
                      if k in r))
    remove_tree(chain)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", default="10000", help="levels, or a comma list (2000,10000)")
    ap.add_argument("--tools", default="deltavault-incr,restic-auto")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--out", type=Path, help="write the JSON result here as well")
    args = ap.parse_args(argv)
    results = []
    for depth in (int(d) for d in args.depth.split(",")):
        work = Path(tempfile.mkdtemp(prefix="deltavault-deep-", dir=args.workdir))
        try:
            results.append(run(work, depth,
                               [t.strip() for t in args.tools.split(",") if t.strip()]))
        finally:
            remove_tree(work)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if all(r["ok"] for res in results for r in res["tools"].values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
