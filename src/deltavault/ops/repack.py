"""Copy the kept blobs of mostly-unused packs into new packs, byte for byte.

A blob's envelope is bound to its id, not to its pack (docs/format.md §2.2),
so repacking moves the stored envelope unchanged: no decode, no re-encode,
a delta keeps its codec and base and so its depth (§7.1). Each old pack is
read whole and checked against its SHA-256 name, and each envelope is
authenticated before it is copied, so damage is found here, before prune
deletes anything. The new packs are indexed every few packs (partial index
files), so a repack killed half-way leaves its work indexed and the next
prune keeps it instead of redoing it.

The one exception to byte-for-byte: a blob the plan re-encodes
self-contained (a delta whose base chain no snapshot needs directly) is
decoded through its chain, checked against its id by the decoder, and
encoded alone — its depth drops to 0, so no depth rule can break.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from deltavault.codec.policy import choose
from deltavault.codec.registry import CodecId
from deltavault.errors import IntegrityError, ObjectNotFound
from deltavault.ops.pruneplan import PrunePlan
from deltavault.repo.index import IndexFile
from deltavault.repo.layout import pack_key
from deltavault.repo.packs import TRAILER_SIZE, PackBuilder, PackEntry
from deltavault.repo.repository import Repository
from deltavault.store.base import ByteRange

#: new packs per partial index file written while repacking
INDEX_EVERY = 16


@dataclass
class RepackOutcome:
    """Where each repacked record went, and what was written."""

    #: record index (into the plan's records) → (new pack id, its entry there)
    relocated: dict[int, tuple[str, PackEntry]] = field(default_factory=dict)
    new_packs: list[str] = field(default_factory=list)
    partial_indexes: list[str] = field(default_factory=list)
    bytes_written: int = 0


class _Writer:
    """Fills new packs and indexes them every ``INDEX_EVERY`` packs."""

    def __init__(self, repo: Repository, out: RepackOutcome) -> None:
        self.repo, self.out = repo, out
        self.builder = PackBuilder()
        self.sources: list[int] = []
        self.unindexed: dict[str, list[PackEntry]] = {}

    def add(self, record: int, entry: PackEntry, envelope: bytes | memoryview) -> None:
        self.builder.add(type=entry.type, codec=entry.codec, blob_id=entry.id,
                         raw_length=entry.raw_length, envelope=bytes(envelope), base=entry.base)
        self.sources.append(record)
        if self.builder.size >= self.repo.config.pack_size:
            self.flush_pack()

    def flush_pack(self) -> None:
        if not len(self.builder):
            return
        pid, data, entries = self.builder.finish(self.repo.crypto)
        self.repo.objects.write_pack(pid, data)
        self.out.bytes_written += len(data)
        self.out.new_packs.append(pid)
        for record, entry in zip(self.sources, entries, strict=True):
            self.out.relocated[record] = (pid, entry)
        self.unindexed[pid] = list(entries)
        self.builder, self.sources = PackBuilder(), []
        if len(self.unindexed) >= INDEX_EVERY:
            self.flush_index()

    def flush_index(self) -> None:
        if self.unindexed:
            self.out.partial_indexes.append(
                self.repo.save_index(IndexFile.from_packs(self.unindexed)))
            self.unindexed = {}


_FLOAT_CODECS = frozenset({CodecId.FLOAT_XOR, CodecId.FLOAT_SUB, CodecId.DECIMAL,
                           CodecId.SHUFFLE, CodecId.DECIMAL_COL})


def _self_contained(repo: Repository, blob_id: bytes, old_codec: int,
                    stored: ByteRange, pack_id: str) -> tuple[int, bytes]:
    """A delta blob decoded through its chain (verified against its id) and re-encoded alone.

    The chunker's hint is gone, so it is recovered where it can be: a float
    codec tries both widths, and a column codec's payload names its row
    length (without it an order book's columns are predicted from their left
    neighbour, a price from a size, and the copy is far larger).
    """
    plain = repo.load_blob(blob_id)
    hints: list[str | None] = [None]
    if old_codec in _FLOAT_CODECS:
        hints += ["f8", "f4"]
    if old_codec == CodecId.DECIMAL_COL:
        from deltavault.codec import columns

        envelope = repo.objects.read_pack(pack_id, stored)
        hint = columns.payload_hint(repo.crypto.open_blob(blob_id, envelope))
        if hint is not None and hint not in hints:
            hints.append(hint)
    best = min((choose(plain, None, hint, "auto", level=repo.config.compression_level)
                for hint in hints), key=lambda e: len(e.payload))
    if best.base_used:  # choose() was given no base; never store a dangling one
        raise IntegrityError(f"blob {blob_id.hex()[:16]}: re-encoding needed a base")
    return int(best.codec_id), repo.crypto.seal_blob(blob_id, best.payload)


def _read_verified(repo: Repository, pack_id: str) -> bytes:
    try:
        data = repo.objects.read_pack(pack_id)
    except ObjectNotFound as exc:
        raise IntegrityError(f"prune refused: {pack_key(pack_id)} disappeared while "
                             "repacking; nothing was deleted") from exc
    if hashlib.sha256(data).hexdigest() != pack_id:
        raise IntegrityError(f"prune refused: {pack_key(pack_id)}: content does not match its "
                             "name (SHA-256); nothing was deleted",
                             hint="see 'deltavault check --read-data' and 'deltavault repair'")
    return data


def repack(repo: Repository, plan: PrunePlan, *,
           on_progress: Callable[[int, int], None] | None = None) -> RepackOutcome:
    """Copy every chosen blob of ``plan.repack``'s packs into new packs (indexed)."""
    out = RepackOutcome()
    if not plan.repack and not plan.materialize:
        return out
    rec = plan.records
    todo = set(plan.repack)
    by_pack: dict[str, list[int]] = defaultdict(list)
    for i in plan.chosen_indices():
        pid = plan.pack_ids[int(rec["pack"][i])]
        if pid in todo:
            by_pack[pid].append(int(i))
    total = sum(plan.sizes[p] for p in plan.repack) + sum(
        int(rec["raw_length"][i]) for i in plan.materialize.values())
    done = 0
    writer = _Writer(repo, out)
    for pid in plan.repack:
        data = _read_verified(repo, pid)
        view = memoryview(data)
        limit = len(data) - TRAILER_SIZE
        for i in sorted(by_pack[pid], key=lambda r: int(rec["offset"][r])):
            r = rec[i]
            start, length = int(r["offset"]), int(r["length"])
            blob_id = bytes(r["id"]).ljust(32, b"\0")
            if start + length > limit:
                raise IntegrityError(f"prune refused: {pack_key(pid)}: the index places blob "
                                     f"{blob_id.hex()[:16]} past the pack's end; nothing was "
                                     "deleted", hint="run 'deltavault repair index'")
            envelope = view[start : start + length]
            repo.crypto.open_blob(blob_id, envelope)  # authentic, and the blob the index says
            base = bytes(r["base"]).ljust(32, b"\0") if r["base"] != b"" else None
            writer.add(i, PackEntry(int(r["type"]), int(r["codec"]), 0, length,
                                    int(r["raw_length"]), blob_id, base), envelope)
        done += plan.sizes[pid]
        if on_progress is not None:
            on_progress(done, total)
    for blob_id, i in sorted(plan.materialize.items()):
        r = rec[i]
        codec, sealed = _self_contained(
            repo, blob_id, int(r["codec"]), ByteRange(int(r["offset"]), int(r["length"])),
            plan.pack_ids[int(r["pack"])])
        writer.add(i, PackEntry(int(r["type"]), codec, 0, len(sealed),
                                int(r["raw_length"]), blob_id, None), sealed)
        done += int(r["raw_length"])
        if on_progress is not None:
            on_progress(done, total)
    writer.flush_pack()
    writer.flush_index()
    return out
