"""Scale benchmark on trees of many small files: every operation, deltavault against restic.

For each kind (binary, text) and size, one tree (bench/scaletree.py) is
generated once and shared. For each tool in turn, phase A: first backup,
no-change backup, ``snapshots``, full restore (checked: file count, bytes and
1,000 sampled files byte for byte), one-file restore (checked), ``check``.
Then every tenth directory is deleted from the tree (10 % of the files), and
phase B: a backup of the thinned tree, ``forget`` of the first two snapshots
and ``prune`` (repository bytes before and after). The tool's repository is
deleted and the directories written back before the next tool starts. Every
command's wall time, peak RSS and CPU time are recorded.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from pathlib import Path
from typing import Any

import scaletree
from tools import Measured, Tool, ToolError, describe, dir_bytes, make_tools, remove_tree

#: ext4 without a journal (this bench's VM disk) skips, when it allocates an inode, each free
#: inode deleted in the last 5 s — 300 s while its inode table block is not yet written back —
#: and reads the inode table to find out (``recently_deleted``). A restore of 200k files
#: started a minute or two after 200k others were deleted spent 71–85 s of system time there
#: (60 s in all); five minutes after the last deletion 18 s (35.0 s, restic 35.0 s). Timed
#: full restores start this long after the bench's last large deletion (``--settle``).
SETTLE_S = 310.0
#: the bench's start counts as a deletion: a run just before it (or any other work) may
#: have deleted large trees that the bench cannot see (docs/benchmark.md, "Why --settle")
_last_delete = [time.monotonic()]


def _delete(path: Path) -> None:
    """Remove a tree, noting when (see :data:`SETTLE_S`)."""
    if path.exists():
        remove_tree(path)
        _last_delete[0] = time.monotonic()


def _settle(seconds: float) -> float:
    """Write back what earlier steps left dirty, then wait until ``seconds`` have passed
    since the last large deletion; the wait."""
    subprocess.run(["sync"], check=False)
    wait = _last_delete[0] + seconds - time.monotonic()
    if wait <= 0:
        return 0.0
    time.sleep(wait)
    return round(wait, 1)


OPS = ("first_backup", "nochange_backup", "snapshots", "restore_all", "restore_one", "check",
       "backup_after_delete", "forget", "prune")


def parse_size(text: str) -> int:
    """``10k``, ``1m``, ``5M``, ``250000`` -> an integer."""
    t = text.strip().lower().replace("_", "")
    mult = {"k": 1_000, "m": 1_000_000}.get(t[-1:], 1)
    return int(float(t[:-1] if mult > 1 else t) * mult)


def size_label(n: int) -> str:
    """The inverse of :func:`parse_size` for round numbers."""
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1_000 == 0:
        return f"{n // 1_000}k"
    return str(n)


def _record(figs: dict[str, float], op: str, m: Measured) -> None:
    figs.update(m.figures(op))


def phase_a(tool: Tool, tree: Path, n: int, kind: str, seed: int, work: Path,
            figs: dict[str, Any], settle_s: float = SETTLE_S) -> list[str]:
    """First backup to check; returns the snapshot ids."""
    tool.prepare()
    tool.init()
    snap1, m = tool.backup(tree, "first", "full")
    _record(figs, "first_backup", m)
    figs["repo_bytes_first"] = dir_bytes(tool.repo)
    snap2, m = tool.backup(tree, "nochange", "change")
    _record(figs, "nochange_backup", m)
    _record(figs, "snapshots", tool.list_snapshots())
    target = work / "restore"
    _delete(target)
    figs["settle_before_restore_s"] = _settle(settle_s)
    restored, m = tool.restore(snap2, target)
    _record(figs, "restore_all", m)
    problem = scaletree.check_restore(restored, tree, n, kind, seed)
    _delete(target)
    if problem:
        raise ToolError(f"full restore: {problem}")
    rel = scaletree.one_file(n, kind)
    restored, m = tool.restore(snap2, target, include=rel)
    _record(figs, "restore_one", m)
    files, _ = scaletree.count_tree(target)
    ok = (restored / rel).is_file() and (restored / rel).read_bytes() == (tree / rel).read_bytes()
    _delete(target)
    if not ok or files != 1:
        raise ToolError(f"one-file restore of {rel}: {files} files restored, content "
                        f"{'ok' if ok else 'wrong or missing'}")
    _record(figs, "check", tool.check())
    return [snap1, snap2]


def phase_b(tool: Tool, tree: Path, snaps: list[str], figs: dict[str, Any]) -> None:
    """Backup of the thinned tree, forget of the first two snapshots, prune."""
    _, m = tool.backup(tree, "thinned", "change")
    _record(figs, "backup_after_delete", m)
    figs["repo_bytes_before_prune"] = dir_bytes(tool.repo)
    forget, prune = tool.forget_and_prune(snaps)
    _record(figs, "forget", forget)
    _record(figs, "prune", prune)
    figs["repo_bytes_after_prune"] = dir_bytes(tool.repo)


def bench_size(work: Path, n: int, kind: str, tool_names: list[str], seed: int,
               say: Any, settle_s: float = SETTLE_S) -> dict[str, Any]:
    """Both phases for every tool on one generated tree."""
    tree = work / "tree"
    _delete(tree)
    t0 = time.perf_counter()
    made = scaletree.make_tree(tree, n, kind, seed)
    say(f"  {kind} {size_label(n)}: generated {made['files']:,} files, "
        f"{made['bytes'] / 2**20:.0f} MiB in {time.perf_counter() - t0:.0f} s")
    tools = make_tools(tool_names, work)
    figs: dict[str, dict[str, Any]] = {t.name: {} for t in tools}
    errors: dict[str, str] = {}
    for tool in tools:
        # One tool at a time, its repository deleted before the next starts: at 5M files
        # the tree, a restored copy and one repository already take ~55 GB.
        snaps: list[str] = []
        try:
            snaps = phase_a(tool, tree, n, kind, seed, work, figs[tool.name], settle_s)
        except Exception as exc:  # one tool's failure is a finding; the rest go on
            errors[tool.name] = f"phase A: {describe(exc)}"
        _say_figs(say, tool.name, figs[tool.name], OPS[:6])
        made["deleted_files"] = scaletree.drop_share(tree, n)
        try:
            if snaps:
                phase_b(tool, tree, snaps, figs[tool.name])
        except Exception as exc:  # one tool's failure is a finding; the rest go on
            errors[tool.name] = f"phase B: {describe(exc)}"
        _say_figs(say, tool.name, figs[tool.name], OPS[6:])
        _delete(tool.work)
        _delete(work / "restore")
        scaletree.refill_share(tree, n, kind, seed)
    _delete(tree)
    for name, err in errors.items():
        say(f"    [red]{name} failed[/red]: {err}")
    return {"tree": made, "results": figs, "errors": errors}


def _say_figs(say: Any, name: str, figs: dict[str, Any], ops: tuple[str, ...]) -> None:
    parts = [f"{op} {figs[op + '_s']:.2f} s/{figs[op + '_peak_rss_bytes'] / 2**20:.0f} MiB"
             for op in ops if op + "_s" in figs]
    say(f"    {name}: " + ", ".join(parts))


def slopes(by_size: dict[str, dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per tool and op: extra peak RSS per file and extra seconds per file between sizes.

    Keyed ``"<small>-><large>"``; the slope is what each further file costs,
    free of the fixed start-up cost that dominates small trees.
    """
    sizes = sorted(by_size, key=parse_size)
    out: dict[str, dict[str, dict[str, float]]] = {}
    for a, b in itertools.pairwise(sizes):
        na, nb = parse_size(a), parse_size(b)
        ra, rb = by_size[a]["results"], by_size[b]["results"]
        for tool in rb:
            if tool not in ra:
                continue
            row = out.setdefault(tool, {}).setdefault(f"{a}->{b}", {})
            for op in OPS:
                k_rss, k_s = f"{op}_peak_rss_bytes", f"{op}_s"
                if k_rss in ra[tool] and k_rss in rb[tool]:
                    row[f"{op}_rss_bytes_per_file"] = (rb[tool][k_rss] - ra[tool][k_rss]) / (
                        nb - na)
                    row[f"{op}_us_per_file"] = (rb[tool][k_s] - ra[tool][k_s]) / (nb - na) * 1e6
    return out


def bench_files(work: Path, sizes: list[int], kinds: list[str], tool_names: list[str],
                seed: int, say: Any, settle_s: float = SETTLE_S) -> dict[str, Any]:
    """Every kind and size; returns results per kind and size, and the slopes."""
    out: dict[str, Any] = {}
    for kind in kinds:
        by_size: dict[str, Any] = {}
        for n in sizes:
            by_size[size_label(n)] = bench_size(work / f"{kind}-{size_label(n)}", n, kind,
                                                tool_names, seed, say, settle_s)
            _delete(work / f"{kind}-{size_label(n)}")
        out[kind] = {"sizes": by_size, "slopes": slopes(by_size)}
    return out
