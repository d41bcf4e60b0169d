"""The client's verified copy of a repository's index (docs/format.md §13.1).

Opening a repository with a warm cache reads a few segment files from the
local disk instead of downloading and decrypting every ``index/<id>``
object. The cache is never an authority: every segment names the index
files it was built from (their ids are the SHA-256 of their stored bytes)
and carries a MAC under a key derived from the master key; a segment
that fails verification, or names an index file the repository no longer
lists or that another file supersedes, is dropped and its index files are
read again. New index files extend the cache with a new segment; small
segments are merged into bigger ones (each at most a quarter of the one
above), so a lookup searches a handful of segments and a record is
rewritten O(log n) times over the cache's life.

Writers on one host serialise on ``lock`` (``flock``); readers never lock:
the manifest is replaced atomically and a segment file, once named by a
manifest, never changes.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import os
import secrets
import shutil
import struct
import tempfile
import warnings
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import blake3

from deltavault.errors import FormatError, IntegrityError, ObjectNotFound, UserError
from deltavault.repo.cachedir import repository_cache
from deltavault.repo.crypto import derive
from deltavault.repo.index_build import SegmentBuilder, build_segment
from deltavault.repo.index_segment import FileSegment, Segment
from deltavault.repo.indexfile import IndexFile, IndexStream

_CTX_ICACHE = "deltavault 2026-12 v1 index cache mac"
MAN_MAGIC = b"DVXMAN1\0"
_MAN_HEAD = struct.Struct("<8sI")
_MAN_ENTRY = 16 + 32
_MAN_MAX = 1 << 12
#: a segment is folded into the next bigger one while it is at least a quarter of it
FANOUT = 4
#: past this many segments the two smallest are merged whatever their sizes
MAX_SEGMENTS = 8
#: index files downloaded at once while (re)building
FETCH_AHEAD = 8

#: the compressed plaintext of ``index/<id>``, its name and AEAD verified
Fetch = Callable[[str], bytes]
_DAMAGE = (IntegrityError, FormatError, ObjectNotFound)


@dataclass
class SyncResult:
    """What bringing the cache up to date did."""

    segments: list[FileSegment]
    #: index files that could not be read: (id, one-line reason)
    damaged: list[tuple[str, str]] = field(default_factory=list)
    #: index files downloaded (0 when the cache was current)
    fetched: int = 0

    @property
    def index_ids(self) -> set[str]:
        """The index files the segments were built from."""
        return {s for seg in self.segments for s in seg.sources}


def _summary(segs: Sequence[Segment]) -> tuple[set[str], set[str]]:
    known: set[str] = set()
    sup: set[str] = set()
    for s in segs:
        known |= s.sources
        sup |= s.supersedes
    return known, sup


class IndexCache:
    """One repository's index cache directory (one per store location)."""

    def __init__(self, directory: Path, master_secret: bytes, repo_id: str) -> None:
        self.dir = directory
        self._key = derive(master_secret, _CTX_ICACHE)
        self._rid = bytes.fromhex(repo_id)

    @classmethod
    def for_repository(cls, repo_id: str, location: str, master_secret: bytes) -> IndexCache:
        """The cache of this repository at this location; a temporary one if none can be made.

        A replica has the same repository id and other index files, so each
        store location keeps its own cache.
        """
        tag = hashlib.sha256(location.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        try:
            path = repository_cache(repo_id) / f"index-{tag}"
            path.mkdir(mode=0o700, exist_ok=True)
            probe = path / "lock"
            os.close(os.open(probe, os.O_RDWR | os.O_CREAT, 0o600))
        except (UserError, OSError) as exc:
            tmp = Path(tempfile.mkdtemp(prefix="deltavault-index-"))
            warnings.warn(f"no index cache ({exc}): the index is read into {tmp} for this run",
                          stacklevel=3)
            cache = cls(tmp, master_secret, repo_id)
            weakref.finalize(cache, shutil.rmtree, tmp, True)
            return cache
        return cls(path, master_secret, repo_id)

    # --- reading ---------------------------------------------------------------------

    def _manifest(self) -> list[tuple[str, bytes]]:
        try:
            data = (self.dir / "manifest").read_bytes()
        except FileNotFoundError:
            return []
        return parse_manifest(data, self._key)

    def segments(self, exclude: str = "") -> list[FileSegment]:
        """The verified segments the manifest names; damaged ones are left out.

        A segment missing on disk is retried with a fresh manifest (another
        process may just have merged it away), then left out as well.
        """
        for attempt in range(3):
            try:
                entries = self._manifest()
            except (FormatError, OSError):
                return []
            out: list[FileSegment] = []
            missing = False
            for name, mac in entries:
                if name == exclude:
                    continue
                try:
                    seg = FileSegment.open(self.dir / name, self._key, self._rid)
                except FileNotFoundError:
                    missing = True
                    continue
                except (FormatError, OSError):
                    continue
                if hmac.compare_digest(seg.mac, mac):
                    out.append(seg)
            if missing and attempt < 2:
                continue
            seen: set[str] = set()
            for seg in out:
                if seen & seg.sources:
                    return []  # two segments claim one file: not a manifest we wrote
                seen |= seg.sources
            return out
        return []

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the writers' lock; clears what a killed writer left behind."""
        fd = os.open(self.dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            for p in self.dir.iterdir():
                if p.name.startswith("tmp-") or p.name.endswith(".part"):
                    p.unlink(missing_ok=True)
            yield
        finally:
            os.close(fd)  # releases the flock

    # --- bringing it up to date ---------------------------------------------------------

    def sync(self, listing: Sequence[str], fetch: Fetch, *, reread: bool = False
             ) -> SyncResult:
        """Segments covering exactly the index files in ``listing`` that count.

        Without changes this reads the manifest and the segments and takes
        no lock; otherwise it reads the new (or no longer covered) index
        files under the lock and commits a new manifest. ``reread`` trusts
        nothing cached: every listed file is downloaded and verified again
        and the cache rebuilt from them (``check``).
        """
        present = set(listing)
        if reread:
            with self.locked():
                return self._update([], present, fetch)
        segs = self.segments()
        if _current(segs, present):
            return SyncResult(segs)
        with self.locked():
            segs = self.segments()
            if _current(segs, present):
                return SyncResult(segs)
            return self._update(segs, present, fetch)

    def heal(self, bad: Segment, listing: Sequence[str], fetch: Fetch) -> SyncResult:
        """Replace a segment found damaged after it was opened."""
        with self.locked():
            name = getattr(bad, "name", "")
            if name:
                (self.dir / name).unlink(missing_ok=True)
            return self._update(self.segments(exclude=name), set(listing), fetch)

    def _update(self, segs: list[FileSegment], present: set[str], fetch: Fetch) -> SyncResult:
        builder = SegmentBuilder(self.dir, secrets.token_hex(8))
        damaged: dict[str, str] = {}
        fetched: set[str] = set()
        try:
            while True:
                _, sup = _summary(segs)
                sup |= builder.supersedes()
                keep = [s for s in segs if s.sources <= present and not s.sources & sup]
                known, _ = _summary(keep)
                for iid in builder.index_ids():
                    if iid in sup:
                        builder.drop(iid)  # superseded by a file read after it
                todo = sorted(present - known - sup - fetched - damaged.keys())
                if not todo:
                    break
                _fetch_into(builder, todo, fetch, damaged)
                fetched.update(todo)
            new = []
            if builder.index_ids():
                new.append(self._new_segment(builder))
            final = self._commit([*keep, *new])
        finally:
            builder.close()
        # a damaged file that a readable one supersedes is ignored by every reader
        return SyncResult(final, sorted((k, v) for k, v in damaged.items() if k not in sup),
                          len(fetched))

    def add_files(self, files: Sequence[tuple[str, IndexFile]]) -> FileSegment | None:
        """Cache index files this process just wrote (no download on the next open).

        Returns the new segment, or None if another process (reading the
        store meanwhile) has cached every one of them already.
        """
        with self.locked():
            segs = self.segments()
            known, _ = _summary(segs)
            files = [(iid, f) for iid, f in files if iid not in known]
            if not files:
                return None
            builder = SegmentBuilder(self.dir, secrets.token_hex(8))
            try:
                for iid, f in files:
                    builder.add_file(iid, f)
                new = self._new_segment(builder)
            finally:
                builder.close()
            # segments this write supersedes entirely are gone; one superseded in part
            # stays until the next open finds it stale and reads its files again
            self._commit([*(s for s in segs if not s.sources <= new.supersedes), new])
        return new

    def _new_segment(self, builder: SegmentBuilder, fold: Sequence[Segment] = ()
                     ) -> FileSegment:
        path = self.dir / f"seg-{secrets.token_hex(16)}"
        return build_segment(builder, path, self._key, self._rid, fold)

    def _commit(self, segs: list[FileSegment]) -> list[FileSegment]:
        segs = sorted(segs, key=lambda s: -s.n)
        while (i := merge_from(segs)) is not None:
            empty = SegmentBuilder(self.dir, secrets.token_hex(8))
            merged = self._new_segment(empty, segs[i:])
            segs = sorted([*segs[:i], merged], key=lambda s: -s.n)
        tmp = self.dir / f"tmp-manifest-{secrets.token_hex(8)}"
        with open(tmp, "wb") as f:
            f.write(encode_manifest([(s.name, s.mac) for s in segs], self._key))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.dir / "manifest")
        names = {s.name for s in segs}
        for p in self.dir.glob("seg-*"):
            if p.name not in names:
                p.unlink(missing_ok=True)  # open readers keep their descriptors
        return segs


def _current(segs: Sequence[Segment], present: set[str]) -> bool:
    known, sup = _summary(segs)
    return known <= present and not known & sup and not present - known - sup


def merge_from(segs: Sequence[Segment]) -> int | None:
    """Where the run of segments to merge starts (sizes descending), or None."""
    if len(segs) < 2:
        return None
    i = len(segs) - 1
    total = max(segs[i].n, 1)
    while i > 0 and total * FANOUT >= segs[i - 1].n:
        i -= 1
        total += segs[i].n
    if len(segs) - i >= 2:
        return i
    return len(segs) - 2 if len(segs) > MAX_SEGMENTS else None


def _fetch_into(builder: SegmentBuilder, todo: list[str], fetch: Fetch,
                damaged: dict[str, str]) -> None:
    """Download index files a few at a time (in order) and stream each into ``builder``."""
    with ThreadPoolExecutor(max_workers=FETCH_AHEAD, thread_name_prefix="dv-index") as pool:
        queue: deque[tuple[str, Future[bytes]]] = deque()
        it = iter(todo)
        for iid in it:
            queue.append((iid, pool.submit(fetch, iid)))
            if len(queue) >= FETCH_AHEAD:
                break
        while queue:
            iid, fut = queue.popleft()
            nxt = next(it, None)
            if nxt is not None:
                queue.append((nxt, pool.submit(fetch, nxt)))
            try:
                builder.add_stream(iid, IndexStream(fut.result(), f"index {iid[:12]}"))
            except _DAMAGE as exc:
                builder.drop(iid)
                damaged[iid] = str(exc)


def encode_manifest(entries: Sequence[tuple[str, bytes]], key: bytes) -> bytes:
    """``magic ‖ count ‖ (name (16) ‖ segment mac (32))* ‖ mac``."""
    body = _MAN_HEAD.pack(MAN_MAGIC, len(entries)) + b"".join(
        bytes.fromhex(name.removeprefix("seg-")) + mac for name, mac in entries)
    return body + blake3.blake3(b"manifest" + body, key=key).digest()


def parse_manifest(data: bytes, key: bytes) -> list[tuple[str, bytes]]:
    """Segment names and MACs from hostile bytes; FormatError if not ours."""
    if len(data) < _MAN_HEAD.size + 32:
        raise FormatError("index cache: manifest is truncated")
    magic, n = _MAN_HEAD.unpack_from(data)
    if magic != MAN_MAGIC or n > _MAN_MAX or len(data) != _MAN_HEAD.size + n * _MAN_ENTRY + 32:
        raise FormatError("index cache: not a manifest")
    body, mac = data[:-32], data[-32:]
    if not hmac.compare_digest(blake3.blake3(b"manifest" + body, key=key).digest(), mac):
        raise FormatError("index cache: manifest authentication failed")
    out = []
    for i in range(n):
        entry = body[_MAN_HEAD.size + i * _MAN_ENTRY: _MAN_HEAD.size + (i + 1) * _MAN_ENTRY]
        out.append(("seg-" + entry[:16].hex(), entry[16:]))
    if len({name for name, _ in out}) != n:
        raise FormatError("index cache: manifest names a segment twice")
    return out
