"""``repair index``: rebuild the index from the packs themselves, as restic's ``repair index``.

Every pack ends with its encrypted header, which lists each blob's type,
codec, length, raw length, id and delta base (docs/format.md §5), so the
index is redundant and can be rebuilt with two ranged reads per pack (the
trailer, then the header) and no replica. A pack whose header cannot be
read, that the old index names but is missing, or whose header lacks blobs
the old index has in it (another pack's bytes under its name) keeps the
records a readable old index file has for it, so a damaged or replaced pack
never loses what the old index still knew; such packs are reported.

Write order: the new index files (bounded size; the last supersedes every
old file) → a ``repair-index`` ledger event → deletion of the old files.
A crash before the last new file leaves old and new files side by side
(duplicates, all valid); after it, the old ones are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from deltavault.errors import ObjectLocked, ObjectNotFound, RepositoryError
from deltavault.repo.crypto import AAD_PACK_HEADER
from deltavault.repo.index import RECORD_DTYPE, IndexFile, MasterIndex
from deltavault.repo.indexset import MAX_RECORDS_PER_FILE, write_index_files
from deltavault.repo.layout import pack_key
from deltavault.repo.packs import TRAILER_SIZE, ZERO_ID, PackEntry, decode_header, split_trailer
from deltavault.repo.repository import Repository
from deltavault.store.base import ByteRange


@dataclass
class ReindexReport:
    """What ``repair index`` read, wrote and could not read."""

    packs: int = 0
    blobs: int = 0
    indexes_written: list[str] = field(default_factory=list)
    indexes_removed: int = 0
    indexes_retained: int = 0
    #: packs whose header could not be read: {"pack": key, "reason": ..., "kept": "n records"}
    unreadable: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.unreadable

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "packs": self.packs, "blobs": self.blobs,
                "indexes_written": self.indexes_written,
                "indexes_removed": self.indexes_removed,
                "indexes_retained": self.indexes_retained, "unreadable": self.unreadable}


def read_pack_header(repo: Repository, pack_id: str, size: int) -> list[PackEntry]:
    """A pack's entries from its trailer and encrypted header (two ranged reads)."""
    key = pack_key(pack_id)
    tail = repo.objects.read_pack(pack_id, ByteRange(max(size - TRAILER_SIZE, 0), TRAILER_SIZE))
    hlen = split_trailer(size, tail)
    start = size - TRAILER_SIZE - hlen
    sealed = repo.objects.read_pack(pack_id, ByteRange(start, hlen))
    if len(sealed) != hlen:
        raise RepositoryError(f"{key}: truncated header")
    header = repo.crypto.open(AAD_PACK_HEADER, sealed, f"{key} header")
    return decode_header(header, start)


def _old_records(repo: Repository, old_ids: list[str]) -> dict[str, list[PackEntry]]:
    """Records of every readable, current old index file, by pack (what the index knew)."""
    out: dict[str, list[PackEntry]] = {}
    files = []
    for iid in old_ids:
        try:
            files.append((iid, repo.load_index_file(iid)))
        except (RepositoryError, ObjectNotFound):
            continue
    superseded = {s.hex() for _iid, f in files for s in f.supersedes}
    for iid, f in files:
        if iid in superseded:  # an interrupted prune's leftovers name packs it deleted
            continue
        for r in f.records:
            pid = f.pack_ids[int(r["pack"])].hex()
            base = bytes(r["base"]).ljust(32, b"\0")
            out.setdefault(pid, []).append(PackEntry(
                int(r["type"]), int(r["codec"]), int(r["offset"]), int(r["length"]),
                int(r["raw_length"]), bytes(r["id"]).ljust(32, b"\0"),
                None if base == ZERO_ID else base))
    return out


def rebuild_index(repo: Repository, *, on_progress: Callable[[int, int], None] | None = None,
                  max_records: int = MAX_RECORDS_PER_FILE) -> ReindexReport:
    """Index every stored pack from its header. The caller holds the exclusive lock."""
    report = ReindexReport()
    sizes = repo.objects.pack_sizes()
    old_ids = sorted(repo.objects.index_ids())
    packs: dict[str, list[PackEntry]] = {}
    failed: dict[str, str] = {}

    def one(item: tuple[str, int]) -> tuple[str, list[PackEntry] | str]:
        pid, size = item
        try:
            return pid, read_pack_header(repo, pid, size)
        except RepositoryError as exc:
            return pid, str(exc)

    with ThreadPoolExecutor(max_workers=8) as pool:
        for n, (pid, got) in enumerate(pool.map(one, sorted(sizes.items())), 1):
            if isinstance(got, str):
                failed[pid] = got
            else:
                packs[pid] = got
            if on_progress is not None:
                on_progress(n, len(sizes))
    fallback = _old_records(repo, old_ids)
    for pid, known in fallback.items():
        # A pack the index names that is gone, or whose header lacks blobs the index has in
        # it (another pack's bytes under its name), is not evidence that those blobs are
        # gone: keep what the index knew and report it, never drop the only location.
        if pid in failed:
            continue
        if pid not in packs:
            failed[pid] = "the index names this pack but it is missing"
        elif {e.id for e in known} - {e.id for e in packs[pid]}:
            failed[pid] = "its header lacks blobs the index has in it (the pack was replaced?)"
            del packs[pid]
    for pid, reason in sorted(failed.items()):
        kept = fallback.get(pid, [])
        if kept:
            packs[pid] = kept
        report.unreadable.append({"pack": pack_key(pid), "reason": reason,
                                  "kept": f"{len(kept)} record(s) from the old index"})
    pack_ids = sorted(packs)
    records = np.zeros(sum(len(v) for v in packs.values()), dtype=RECORD_DTYPE)
    if len(records):
        records = IndexFile.from_packs({p: packs[p] for p in pack_ids}).records
    report.packs, report.blobs = len(pack_ids), len(records)
    report.indexes_written = write_index_files(repo, pack_ids, records, old_ids,
                                               max_records=max_records)
    repo.record("repair-index", packs=report.packs, blobs=report.blobs,
                indexes_written=len(report.indexes_written),
                unreadable=[u["pack"] for u in report.unreadable])
    if repo.store.supports_deletes:
        for iid in old_ids:
            try:
                repo.objects.delete_index(iid)
                report.indexes_removed += 1
            except ObjectNotFound:
                continue
            except ObjectLocked:
                report.indexes_retained += 1
    repo.cache.clear()
    # the next reader loads the new index; nothing may use the old one meanwhile
    repo.index, repo._index_loaded = MasterIndex(), False
    return report
