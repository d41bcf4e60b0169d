"""The machine and its physical limits on the benchmark's own bytes.

No backup of the workload can be faster than reading, hashing, compressing
and writing it; these figures put the tools' times in proportion (a tool at
2x ``tar | zstd -3 -T0`` is near the limit, one at 10x is not).
"""

from __future__ import annotations

import hashlib
import os
import platform
import subprocess
import time
from pathlib import Path

import blake3
import zstandard


def machine() -> dict[str, object]:
    """Cores, CPU model, memory, OS and Python of this machine."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "memory_bytes": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "os": _os_name()}


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


def read_tree(root: Path) -> list[bytes]:
    """Contents of every file under ``root`` (hot in the page cache afterwards)."""
    return [p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()]


def throughput(root: Path, scratch: Path, *, disk_bytes: int = 1 << 30) -> dict[str, float]:
    """tar|zstd time, hash and zstd throughputs (bytes/s, one core), disk write speed."""
    blobs = read_tree(root)
    total = sum(len(b) for b in blobs)
    out: dict[str, float] = {"bytes": float(total)}
    t0 = time.perf_counter()
    r = subprocess.run(f"tar -C '{root}' -cf - . | zstd -3 -T0 -q -c | wc -c", shell=True,
                       check=True, capture_output=True, text=True)
    out["tar_zstd3_T0_s"] = time.perf_counter() - t0
    out["tar_zstd3_bytes"] = float(r.stdout.strip())
    out["blake3_1thread_Bps"] = total / _timed(lambda b: blake3.blake3(b, max_threads=1)
                                               .digest(), blobs)
    out["sha256_Bps"] = total / _timed(lambda b: hashlib.sha256(b).digest(), blobs)
    zc = zstandard.ZstdCompressor(level=3)
    frames: list[bytes] = []
    out["zstd3_compress_1thread_Bps"] = total / _timed(lambda b: frames.append(zc.compress(b)),
                                                       blobs)
    zd = zstandard.ZstdDecompressor()
    out["zstd3_decompress_1thread_Bps"] = total / _timed(
        lambda f: zd.decompress(f, max_output_size=1 << 31), frames)
    out["disk_write_fsync_Bps"] = disk_write(scratch / "disk-test.bin", disk_bytes)
    return out


def _timed(fn: object, items: list[bytes]) -> float:
    assert callable(fn)
    t0 = time.perf_counter()
    for b in items:
        fn(b)
    return time.perf_counter() - t0


def disk_write(path: Path, nbytes: int) -> float:
    """Write ``nbytes`` of incompressible data and fsync, like ``dd conv=fsync``."""
    block = os.urandom(8 << 20)
    t0 = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        written = 0
        while written < nbytes:
            written += os.write(fd, block)
        os.fsync(fd)
    finally:
        os.close(fd)
    seconds = time.perf_counter() - t0
    path.unlink()
    return written / seconds
