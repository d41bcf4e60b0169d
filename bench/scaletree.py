"""Trees of many small unique files for the scale benchmark, and how to check their restores.

``make_tree(root, n, kind, seed)`` writes ``n`` files of 1-4 KiB (uniform),
100 to a directory, directories grouped 1,000 to a parent
(``g000/d000/f00.bin``). ``binary`` files are random bytes (incompressible,
no two alike); ``text`` files are JSON lines of trading records (a unique
first line naming the file, then lines drawn from a seeded pool), which
compress about 4x. Each directory draws from its own seeded stream, so the
tree is the same for the same ``(n, kind, seed)`` whatever the order of work.

``drop_share(root, n)`` deletes every tenth directory (10 % of the files):
what a prune benchmark needs to free; ``refill_share`` writes them back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from variants.common import rng

from deltavault.restore.fsdir import iter_tree

FILES_PER_DIR = 100
DIRS_PER_GROUP = 1000
KINDS = ("binary", "text")
_POOL_LINES = 4096


def dir_path(d: int) -> str:
    """Relative path of directory number ``d``."""
    return f"g{d // DIRS_PER_GROUP:03d}/d{d % DIRS_PER_GROUP:03d}"


def file_name(kind: str, i: int) -> str:
    return f"f{i:02d}.{'bin' if kind == 'binary' else 'jsonl'}"


def _pool(seed: int) -> list[bytes]:
    g = rng(seed, "scaletree", "pool")
    syms = ["ES", "NQ", "CL", "GC", "ZN", "BTC-USD", "ETH-USD", "EURUSD", "AAPL", "MSFT"]
    out = []
    for i in range(_POOL_LINES):
        px = float(np.round(g.lognormal(5, 1.2), 2))
        out.append((f'{{"seq":{int(g.integers(10**9))},"sym":"{syms[i % len(syms)]}",'
                    f'"side":"{"BUY" if g.random() < 0.5 else "SELL"}",'
                    f'"qty":{int(g.integers(1, 5000))},"px":{px},'
                    f'"venue":"V{int(g.integers(40)):02d}","acct":"A{int(g.integers(900)):04d}",'
                    f'"ts":{1_767_000_000_000_000 + int(g.integers(10**13))}}}\n').encode())
    return out


def _contents(kind: str, d: int, count: int, seed: int, pool: list[bytes]) -> Iterator[bytes]:
    g = rng(seed, "scaletree", kind, d)
    sizes = g.integers(1024, 4097, count)
    if kind == "binary":
        buf = g.bytes(int(sizes.sum()))
        pos = 0
        for s in sizes.tolist():
            yield buf[pos:pos + s]
            pos += s
        return
    picks = g.integers(0, len(pool), (count, 40))
    nonces = g.integers(0, 2**63, count)
    for i, s in enumerate(sizes.tolist()):
        parts = [f'{{"file":"{dir_path(d)}/{i:02d}","nonce":{int(nonces[i])}}}\n'.encode()]
        total = len(parts[0])
        for k in picks[i].tolist():
            if total >= s:
                break
            parts.append(pool[k])
            total += len(pool[k])
        yield b"".join(parts)


def make_tree(root: Path, n: int, kind: str, seed: int) -> dict[str, int]:
    """Write the tree; returns its file count, byte count and directory count."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    pool = _pool(seed) if kind == "text" else []
    dirs = (n + FILES_PER_DIR - 1) // FILES_PER_DIR
    total = sum(_write_dir(root, n, kind, seed, pool, d) for d in range(dirs))
    return {"files": n, "bytes": total, "dirs": dirs}


def _write_dir(root: Path, n: int, kind: str, seed: int, pool: list[bytes], d: int) -> int:
    """Make directory ``d`` of the tree with its files; returns the bytes written."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    count = min(FILES_PER_DIR, n - d * FILES_PER_DIR)
    here = root / dir_path(d)
    here.mkdir(parents=True)
    total = 0
    for i, data in enumerate(_contents(kind, d, count, seed, pool)):
        fd = os.open(here / file_name(kind, i), flags, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        total += len(data)
    return total


def expected(n: int, kind: str, seed: int, d: int, i: int) -> bytes:
    """The content ``make_tree`` wrote for file ``i`` of directory ``d``."""
    count = min(FILES_PER_DIR, n - d * FILES_PER_DIR)
    pool = _pool(seed) if kind == "text" else []
    for k, data in enumerate(_contents(kind, d, count, seed, pool)):
        if k == i:
            return data
    raise IndexError(f"no file {i} in directory {d}")


def one_file(n: int, kind: str) -> str:
    """The relative path of the file a one-file restore asks for (in the middle of the tree)."""
    d = (n // FILES_PER_DIR) // 2
    return f"{dir_path(d)}/{file_name(kind, 0)}"


def count_tree(root: Path) -> tuple[int, int]:
    """Regular files and their bytes under ``root`` (iterative scandir walk)."""
    files = size = 0
    for e in iter_tree(root):
        if e.is_file(follow_symlinks=False):
            files += 1
            size += e.stat(follow_symlinks=False).st_size
    return files, size


def check_restore(restored: Path, source: Path, n: int, kind: str, seed: int,
                  *, samples: int = 1000) -> str | None:
    """None if ``restored`` has the source's file count and bytes and ``samples`` sampled
    files (fixed seed) hold exactly what the generator wrote; else what differs."""
    want = count_tree(source)
    got = count_tree(restored)
    if got != want:
        return f"restored {got[0]} files / {got[1]} bytes, expected {want[0]} / {want[1]}"
    g = rng(seed, "scaletree", "samples", n)
    pool = _pool(seed) if kind == "text" else []
    dirs = (n + FILES_PER_DIR - 1) // FILES_PER_DIR
    checked = 0
    for _ in range(samples * 4):  # a dropped directory costs a draw, not a check
        if checked >= samples:
            break
        d = int(g.integers(0, dirs))
        if not (source / dir_path(d)).is_dir():
            continue
        count = min(FILES_PER_DIR, n - d * FILES_PER_DIR)
        i = int(g.integers(0, count))
        data = next(x for k, x in enumerate(_contents(kind, d, count, seed, pool)) if k == i)
        rel = f"{dir_path(d)}/{file_name(kind, i)}"
        try:
            if (restored / rel).read_bytes() != data:
                return f"{rel}: restored content differs"
        except OSError as exc:
            return f"{rel}: {exc}"
        checked += 1
    return None


def refill_share(root: Path, n: int, kind: str, seed: int, every: int = 10) -> None:
    """Write back the directories :func:`drop_share` deleted, with the same contents."""
    pool = _pool(seed) if kind == "text" else []
    for d in range(0, (n + FILES_PER_DIR - 1) // FILES_PER_DIR, every):
        _write_dir(root, n, kind, seed, pool, d)


def drop_share(root: Path, n: int, every: int = 10) -> int:
    """Delete every ``every``-th directory's files (and the directory); returns files deleted."""
    deleted = 0
    dirs = (n + FILES_PER_DIR - 1) // FILES_PER_DIR
    for d in range(0, dirs, every):
        here = root / dir_path(d)
        for entry in os.scandir(here):
            os.unlink(entry.path)
            deleted += 1
        here.rmdir()
    return deleted
