"""Blobs written during this session, before an index file names them.

The backup pipeline adds the entries of each pack it writes. They are kept
as numpy record arrays sorted by id prefix — a few levels of geometrically
growing size, as in a log-structured merge tree — not as a Python object a
blob: 90 bytes a blob, and an addition costs amortised O(log n) copying.
The state is immutable and replaced whole under the owner's lock, so
lookups from the pipeline's threads read it without locking.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from deltavault.repo.indexfile import (
    RECORD,
    RECORD_DTYPE,
    Record,
    concat,
    id_prefix,
    prefixes,
    present,
    take,
)
from deltavault.repo.packs import ZERO_ID, PackEntry

#: a level is merged into the one above while it is at least this fraction of it
_FANOUT = 4


@dataclass(frozen=True)
class Level:
    """Records sorted by prefix, with their prefixes."""

    rec: npt.NDArray[np.void]
    pfx: npt.NDArray[np.uint64]

    @classmethod
    def of(cls, rec: npt.NDArray[np.void]) -> Level:
        pfx = prefixes(rec)
        order = np.argsort(pfx, kind="stable")
        return cls(take(rec, order), pfx[order])


@dataclass(frozen=True)
class Pending:
    """An immutable view of the session's added records.

    ``packs`` is shared and only ever appended to, so a position stays
    valid in every later view.
    """

    packs: list[str]
    levels: tuple[Level, ...] = ()

    def __len__(self) -> int:
        return sum(len(lv.rec) for lv in self.levels)

    def find(self, blob_id: bytes) -> list[Record]:
        """Every added record of ``blob_id``."""
        if not self.levels:
            return []
        p = id_prefix(blob_id)
        out = []
        for lv in self.levels:
            lo = int(lv.pfx.searchsorted(p, "left"))
            while lo < len(lv.pfx) and lv.pfx[lo] == p:
                r: Record = RECORD.unpack(lv.rec[lo: lo + 1].tobytes())  # type: ignore[assignment]
                if r[0] == blob_id:
                    out.append(r)
                lo += 1
        return out

    def prefix_hits(self, q: npt.NDArray[np.uint64]) -> npt.NDArray[np.bool_]:
        """Which of the id prefixes ``q`` occur among the added records."""
        hit = np.zeros(len(q), dtype=bool)
        for lv in self.levels:
            hit |= present(lv.pfx, q)
        return hit

    def records(self) -> Iterator[npt.NDArray[np.void]]:
        """Every added record, a level at a time."""
        for lv in self.levels:
            yield lv.rec

    def with_entries(self, pack_pos: int, entries: Iterable[PackEntry]) -> Pending:
        """A new view with one pack's entries added (levels merged as needed)."""
        batch = [(e.id, e.base or ZERO_ID, pack_pos, e.offset, e.length, e.raw_length, e.type,
                  e.codec) for e in entries]
        if not batch:
            return self
        levels = [*self.levels, Level.of(np.array(batch, dtype=RECORD_DTYPE))]
        while len(levels) >= 2 and len(levels[-1].rec) * _FANOUT >= len(levels[-2].rec):
            top, new = levels[-2], levels[-1]
            rec = concat([top.rec, new.rec])
            pfx = np.concatenate([top.pfx, new.pfx])
            order = np.argsort(pfx, kind="stable")  # two sorted runs: a linear merge
            levels[-2:] = [Level(take(rec, order), pfx[order])]
        return Pending(self.packs, tuple(levels))

    def without_packs(self, positions: Iterable[int]) -> Pending:
        """A new view without the records of the packs at ``positions``."""
        drop = np.fromiter(positions, dtype=np.uint32)
        levels = []
        for lv in self.levels:
            keep = ~np.isin(lv.rec["pack"], drop)
            if bool(keep.any()):
                levels.append(Level(lv.rec[keep], lv.pfx[keep]))
        levels.sort(key=lambda lv: -len(lv.rec))
        return Pending(self.packs, tuple(levels))
