"""Build a segment from index files and older segments with bounded memory.

Records arrive in any order (an index file lists them by pack); they are
buffered, sorted by id prefix and spilled as runs to scratch files when
the buffer fills, then every run and every input segment is merged in one
pass into a :class:`~deltavault.repo.index_segment.SegmentWriter`. Memory
stays at one buffer plus one window per run, whatever the number of blobs.

Pack ids are numbered provisionally, one range per index file, and mapped
to the sorted, de-duplicated pack table only at the end; so a file found
damaged or superseded after it was read is dropped by marking its range
dead, without rereading anything.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from deltavault.repo.distinct import distinct
from deltavault.repo.index_segment import FileSegment, Segment, SegmentWriter
from deltavault.repo.indexfile import (
    RECORD_DTYPE,
    RECORD_SIZE,
    IndexFile,
    IndexStream,
    concat,
    prefixes,
    take,
)

#: records sorted in memory before a run is spilled (about 42 MiB)
RUN_RECORDS = 1 << 19
#: records read at once from each run or segment while merging (about 1.3 MiB)
WINDOW_RECORDS = 1 << 14
_DEAD = np.uint32(0xFFFFFFFF)


@dataclass
class _Source:
    """One index file added to the builder: its provisional pack range."""

    index_id: str
    base: int
    packs: bytes
    supersedes: frozenset[str]
    live: bool = True


def _run_reader(path: Path, n: int) -> Iterator[npt.NDArray[np.void]]:
    with open(path, "rb") as f:
        for _ in range(0, n, WINDOW_RECORDS):
            raw = f.read(WINDOW_RECORDS * RECORD_SIZE)
            yield np.frombuffer(raw, dtype=RECORD_DTYPE)


def merge_sorted(inputs: list[Iterator[npt.NDArray[np.void]]]
                 ) -> Iterator[npt.NDArray[np.void]]:
    """Merge streams of prefix-sorted record windows into one prefix-sorted stream.

    Each round emits, from every stream, the records up to the smallest
    last prefix of the current windows: nothing still unread can sort
    below it, and the stream that set it is emptied, so every round makes
    progress.
    """
    live: list[tuple[Iterator[npt.NDArray[np.void]], npt.NDArray[np.void],
                     npt.NDArray[np.uint64]]] = []

    def pull(it: Iterator[npt.NDArray[np.void]]) -> None:
        for w in it:
            if len(w):
                live.append((it, w, prefixes(w)))
                return

    for it in inputs:
        pull(it)
    while live:
        bound = min(p[-1] for _, _, p in live)
        parts = []
        rest = []
        for it, w, p in live:
            k = int(p.searchsorted(bound, "right"))
            parts.append(w[:k])
            if k < len(w):
                rest.append((it, w[k:], p[k:]))
            else:
                rest.append((it, w[:0], p[:0]))
        live = []
        for it, w, p in rest:
            if len(w):
                live.append((it, w, p))
            else:
                pull(it)
        out = concat(parts)
        if len(parts) > 1:
            out = take(out, np.argsort(prefixes(out), kind="stable"))
        yield out


class SegmentBuilder:
    """Collects index files (and segments to fold in) and writes one segment."""

    def __init__(self, scratch: Path, tag: str) -> None:
        self._scratch = scratch
        self._tag = tag
        self._buf = np.empty(0, dtype=RECORD_DTYPE)
        self._used = 0
        self._runs: list[tuple[Path, int]] = []
        self._sources: list[_Source] = []
        self._n_prov = 0
        self.records = 0

    # --- input ---------------------------------------------------------------------

    def add_stream(self, index_id: str, stream: IndexStream) -> None:
        """Read one index file's records into the builder.

        If the stream turns out damaged (FormatError from its last batches)
        its records are already in; the caller then calls :meth:`drop`.
        """
        src = self._register(index_id, stream.pack_ids, stream.supersedes)
        for batch in stream.batches():
            self._append(batch, src.base)

    def add_file(self, index_id: str, index_file: IndexFile) -> None:
        """Add an index file held in memory (one this process just wrote)."""
        src = self._register(index_id, index_file.pack_ids, index_file.supersedes)
        rec = index_file.records
        for start in range(0, len(rec), RUN_RECORDS):
            self._append(rec[start: start + RUN_RECORDS], src.base)

    def _register(self, index_id: str, pack_ids: list[bytes],
                  supersedes: list[bytes]) -> _Source:
        if self._n_prov + len(pack_ids) >= int(_DEAD):
            raise OverflowError("too many packs for one segment")
        src = _Source(index_id, self._n_prov, b"".join(pack_ids),
                      frozenset(s.hex() for s in supersedes))
        self._sources.append(src)
        self._n_prov += len(pack_ids)
        return src

    def drop(self, index_id: str) -> None:
        """Leave out an index file already added (damaged, or superseded by another)."""
        for s in self._sources:
            if s.index_id == index_id:
                s.live = False

    def supersedes(self) -> set[str]:
        """Every index id that a file added here supersedes."""
        return {x for s in self._sources if s.live for x in s.supersedes}

    def index_ids(self) -> list[str]:
        """The index files this builder holds (and has not dropped)."""
        return [s.index_id for s in self._sources if s.live]

    def _append(self, batch: npt.NDArray[np.void], base: int) -> None:
        while len(batch):
            if self._used == len(self._buf):
                if len(self._buf) < RUN_RECORDS:
                    grown = np.empty(min(RUN_RECORDS, max(4096, 2 * len(self._buf))),
                                     dtype=RECORD_DTYPE)
                    np.copyto(grown[: self._used].view(np.uint8),
                              self._buf[: self._used].view(np.uint8))
                    self._buf = grown
                else:
                    self._spill()
            k = min(len(batch), len(self._buf) - self._used)
            dst = self._buf[self._used: self._used + k]
            np.copyto(dst.view(np.uint8), np.ascontiguousarray(batch[:k]).view(np.uint8))
            dst["pack"] += np.uint32(base)
            self._used += k
            self.records += k
            batch = batch[k:]

    def _sorted_buffer(self) -> npt.NDArray[np.void]:
        rec = self._buf[: self._used]
        return take(rec, np.argsort(prefixes(rec), kind="stable"))

    def _spill(self) -> None:
        path = self._scratch / f"tmp-run-{self._tag}-{len(self._runs)}"
        with open(path, "wb") as f:
            f.write(self._sorted_buffer().tobytes())
        self._runs.append((path, self._used))
        self._used = 0

    # --- output --------------------------------------------------------------------

    def finish(self, writer: SegmentWriter, fold: Sequence[Segment] = ()
               ) -> tuple[list[str], list[str], npt.NDArray[np.bytes_]]:
        """Merge everything into ``writer``; returns (sources, supersedes, pack table).

        ``fold`` are segments whose records (and sources) join the new one.
        The caller finishes the writer with what this returns.
        """
        live = [s for s in self._sources if s.live]
        prov = np.frombuffer(b"".join(s.packs for s in self._sources), dtype="S32")
        alive = np.zeros(self._n_prov, dtype=bool)
        for s in live:
            alive[s.base: s.base + len(s.packs) // 32] = True
        tables = [prov[alive], *(seg.packs for seg in fold)]
        table = distinct(np.concatenate(tables)) if tables else np.zeros(0, "S32")
        remap = np.full(max(self._n_prov, 1), _DEAD, dtype=np.uint32)
        remap[: self._n_prov][alive] = np.searchsorted(table, prov[alive]).astype(np.uint32)
        inputs: list[Iterator[npt.NDArray[np.void]]] = []
        for path, n in self._runs:
            inputs.append(_remapped(_run_reader(path, n), remap))
        if self._used:
            inputs.append(_remapped(_windows(self._sorted_buffer()), remap))
        for seg in fold:
            seg_map = np.searchsorted(table, seg.packs).astype(np.uint32)
            inputs.append(_remapped((r for _, r in seg.batches()), seg_map))
        for out in merge_sorted(inputs):
            writer.write(out)
        sources = {s.index_id for s in live}
        sup = {x for s in live for x in s.supersedes}
        for seg in fold:
            sources |= seg.sources
            sup |= seg.supersedes
        return sorted(sources), sorted(sup), table

    def close(self) -> None:
        """Remove the scratch runs."""
        for path, _ in self._runs:
            path.unlink(missing_ok=True)
        self._runs = []
        self._buf = np.empty(0, dtype=RECORD_DTYPE)
        self._used = 0


def _windows(rec: npt.NDArray[np.void]) -> Iterator[npt.NDArray[np.void]]:
    for start in range(0, len(rec), WINDOW_RECORDS):
        yield rec[start: start + WINDOW_RECORDS]


def _remapped(windows: Iterator[npt.NDArray[np.void]], remap: npt.NDArray[np.uint32]
              ) -> Iterator[npt.NDArray[np.void]]:
    """Windows with their ``pack`` field mapped to the final table; dead records left out."""
    for w in windows:
        out = w.copy()
        out["pack"] = remap[out["pack"]]
        yield out[out["pack"] != _DEAD]


def build_segment(builder: SegmentBuilder, path: Path, key: bytes, repo_id: bytes,
                  fold: Sequence[Segment] = ()) -> FileSegment:
    """Run ``builder`` into a new segment file at ``path`` (written, fsynced, reopened)."""
    writer = SegmentWriter(path.with_name(path.name + ".part"), key, repo_id)
    try:
        sources, sup, table = builder.finish(writer, fold)
        writer.finish(sources, sup, table)
    except BaseException:
        writer.abort()
        raise
    finally:
        builder.close()
    os.replace(writer.path, path)
    return FileSegment.open(path, key, repo_id)
