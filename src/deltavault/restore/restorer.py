"""Restore a snapshot into a directory.

Safety first: every name was validated when its tree was decoded (one path
component, no ``..``); directories are created by us and checked with
``lstat`` so no pre-existing symlink is followed; files are opened with
``O_NOFOLLOW``; symlinks from the snapshot are created only after all data
is written, so they cannot redirect a write outside the target.

Speed: blobs are grouped by pack and each pack is read once (one ranged
read covering the blobs needed), on several threads; each blob is verified
against its id before any byte of it is written.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from deltavault.errors import DeltavaultError, RepositoryError, UnsafePath
from deltavault.repo.index import BlobLocation
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot
from deltavault.repo.tree import Node
from deltavault.repo.walk import matches, walk
from deltavault.store.base import ByteRange

_MAX_SPAN_GAP = 4 * 1024 * 1024


@dataclass
class RestoreOptions:
    """Where to restore and what."""

    target: Path
    include: list[str] = field(default_factory=list)
    workers: int = 0
    owners: bool = field(default_factory=lambda: os.geteuid() == 0)


@dataclass
class RestoreResult:
    """Counts, timing and per-file errors."""

    files: int = 0
    dirs: int = 0
    bytes: int = 0
    duration_s: float = 0.0
    errors: list[str] = field(default_factory=list)


@dataclass
class _Job:
    path: str
    node: Node
    damaged: bool = False


@dataclass
class _Plan:
    dirs: list[tuple[str, Node]] = field(default_factory=list)
    files: list[_Job] = field(default_factory=list)
    links: list[tuple[str, str]] = field(default_factory=list)  # (path, first path)
    others: list[tuple[str, Node]] = field(default_factory=list)
    # blob id -> [(file job, offset)], grouped per pack later
    uses: dict[bytes, list[tuple[_Job, int]]] = field(default_factory=lambda: defaultdict(list))
    # blob id -> the location restore reads (looked up once)
    locs: dict[bytes, BlobLocation] = field(default_factory=dict)


def _plan(repo: Repository, snap: Snapshot, include: list[str]) -> _Plan:
    plan = _Plan()
    entries = list(walk(repo, bytes.fromhex(snap.tree)))
    wanted = {p for p, n in entries if n.type != "dir" and matches(p, include)}
    wanted |= {p for p, n in entries if n.type == "dir" and matches(p, include)}
    for p in list(wanted):
        parts = p.split("/")
        wanted.update("/".join(parts[:i]) for i in range(1, len(parts)))
    first_by_inode: dict[tuple[int, int], str] = {}
    for path, node in entries:
        if path not in wanted:
            continue
        if node.type == "dir":
            plan.dirs.append((path, node))
        elif node.type == "file":
            key = (node.dev, node.inode)
            if node.links > 1 and node.inode and key in first_by_inode:
                plan.links.append((path, first_by_inode[key]))
                continue
            if node.links > 1 and node.inode:
                first_by_inode[key] = path
            job = _Job(path, node)
            plan.files.append(job)
            offset = 0
            for blob in node.content:
                plan.uses[blob].append((job, offset))
                if blob not in plan.locs:
                    plan.locs[blob] = repo.locate(blob)
                offset += plan.locs[blob].raw_length
        else:
            plan.others.append((path, node))
    return plan


def _ensure_dir(path: Path) -> None:
    """mkdir that replaces a file or symlink in the way, never follows one."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o700)
        return
    if stat.S_ISDIR(st.st_mode):
        return
    os.unlink(path)
    os.mkdir(path, 0o700)


def _prepare(target: Path, plan: _Plan) -> None:
    target.mkdir(parents=True, exist_ok=True)
    if os.path.islink(target):
        raise UnsafePath(f"restore target {target} is a symlink")
    for path, _node in plan.dirs:
        _ensure_dir(target / path)
    for job in plan.files:
        full = target / job.path
        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
            if os.path.islink(full):
                os.unlink(full)
        fd = os.open(full, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            os.ftruncate(fd, job.node.size)
        finally:
            os.close(fd)


def _restore_pack(repo: Repository, target: Path, pack_id: str,
                  locs: list[BlobLocation], uses: dict[bytes, list[tuple[_Job, int]]],
                  bases: set[bytes], on_bytes: Callable[[int], None]) -> list[str]:
    """Read the needed span(s) of one pack once; write each blob where it goes."""
    errors: list[str] = []
    spans: list[list[BlobLocation]] = []
    for loc in sorted(locs, key=lambda loc: loc.offset):
        if spans and loc.offset - _span_end(spans[-1]) <= _MAX_SPAN_GAP:
            spans[-1].append(loc)
        else:
            spans.append([loc])
    for span in spans:
        start = span[0].offset
        try:
            data = repo.objects.read_pack(pack_id, ByteRange(start, _span_end(span) - start))
        except DeltavaultError as exc:
            errors += _mark_damaged(uses, [loc.id for loc in span], f"pack {pack_id[:12]}: {exc}")
            continue
        view = memoryview(data)
        for loc in span:
            try:
                rel = loc.offset - start
                plain = repo.decode_blob(loc, view[rel : rel + loc.length])
            except DeltavaultError as exc:
                errors += _mark_damaged(uses, [loc.id], str(exc))
                continue
            if loc.id in bases:
                repo.cache.put(loc.id, plain)  # a delta in another pack will need it
            zero = plain[:1] == b"\0" and plain.count(0) == len(plain)
            for job, offset in uses[loc.id]:
                if zero and job.node.sparse:
                    continue
                fd = os.open(target / job.path, os.O_WRONLY | os.O_NOFOLLOW)
                try:
                    os.pwrite(fd, plain, offset)
                finally:
                    os.close(fd)
            on_bytes(len(plain) * len(uses[loc.id]))
    return errors


def _span_end(span: list[BlobLocation]) -> int:
    return max(loc.offset + loc.length for loc in span)


def _mark_damaged(uses: dict[bytes, list[tuple[_Job, int]]], blobs: list[bytes],
                  reason: str) -> list[str]:
    out = []
    for b in blobs:
        for job, _ in uses.get(b, []):
            if not job.damaged:
                job.damaged = True
                out.append(f"{job.path}: {reason}")
    return out


def _apply_meta(path: Path, node: Node, owners: bool) -> None:
    if owners:
        with contextlib.suppress(OSError):
            os.chown(path, node.uid, node.gid, follow_symlinks=False)
    if node.type != "symlink":
        os.chmod(path, node.mode)
    with contextlib.suppress(OSError, NotImplementedError, OverflowError, ValueError):
        os.utime(path, ns=(node.mtime_ns, node.mtime_ns), follow_symlinks=False)


def run_restore(repo: Repository, snap: Snapshot, opts: RestoreOptions, *,
                on_progress: Callable[[int, int], None] | None = None) -> RestoreResult:
    """Restore ``snap`` below ``opts.target``; raises if any file was damaged."""
    started = time.monotonic()
    repo.load_index()
    target = Path(os.path.abspath(opts.target))
    plan = _plan(repo, snap, opts.include)
    total = sum(j.node.size for j in plan.files)
    _prepare(target, plan)
    by_pack: dict[str, list[BlobLocation]] = defaultdict(list)
    bases: set[bytes] = set()
    for loc in plan.locs.values():
        by_pack[loc.pack_id].append(loc)
        if loc.base is not None:
            bases.add(loc.base)
    done = [0]

    def on_bytes(n: int) -> None:
        done[0] += n
        if on_progress is not None:
            on_progress(done[0], total)

    result = RestoreResult()
    workers = opts.workers or max(2, min(8, (os.cpu_count() or 2) * 2))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dv-restore") as pool:
        futures = [pool.submit(_restore_pack, repo, target, pid, blobs, plan.uses, bases,
                               on_bytes)
                   for pid, blobs in by_pack.items()]
        for f in futures:
            result.errors += f.result()
    for job in plan.files:
        if job.damaged:
            with contextlib.suppress(OSError):
                os.unlink(target / job.path)
    for path, first in plan.links:
        dest = target / path
        with contextlib.suppress(FileNotFoundError):
            os.unlink(dest)
        os.link(target / first, dest, follow_symlinks=False)
    for path, node in plan.others:
        _make_special(target / path, node, result)
    for job in plan.files:
        if not job.damaged:
            _apply_meta(target / job.path, job.node, opts.owners)
    for path, node in reversed(plan.dirs):
        _apply_meta(target / path, node, opts.owners)
    result.files = len(plan.files) + len(plan.links)
    result.dirs = len(plan.dirs)
    result.bytes = total
    result.duration_s = round(time.monotonic() - started, 3)
    repo.record_best_effort("restore", snapshot=snap.id, target=str(target),
                            files=result.files, bytes=result.bytes, ok=not result.errors)
    if result.errors:
        raise RepositoryError(
            f"{len(result.errors)} file(s) could not be restored because stored data is "
            f"damaged: {'; '.join(result.errors[:5])}",
            hint="run 'deltavault check --read-data'; restore from a replica with 'repair'")
    return result


def _make_special(path: Path, node: Node, result: RestoreResult) -> None:
    with contextlib.suppress(FileNotFoundError):
        if not os.path.isdir(path) or os.path.islink(path):
            os.unlink(path)
    try:
        if node.type == "symlink":
            assert node.target is not None
            os.symlink(node.target, path)
        elif node.type == "fifo":
            os.mkfifo(path, node.mode)
        elif node.type in ("chardev", "blockdev"):
            kind = stat.S_IFCHR if node.type == "chardev" else stat.S_IFBLK
            os.mknod(path, node.mode | kind, node.rdev)
        else:
            return  # sockets are not recreated
        _apply_meta(path, node, os.geteuid() == 0)
    except OSError as exc:
        if node.type == "symlink":  # devices and fifos may be refused to non-root: not data
            result.errors.append(f"{path}: cannot create {node.type}: {exc.strerror}")
