"""What prune keeps, deletes and repacks (docs/format.md §11), decided before anything is written.

Every blob a live snapshot needs keeps exactly one stored copy: the one with
the shortest delta chain (so no snapshot's restore gets deeper than when it
was written, docs/format.md §7.1), on a tie the one in the pack that holds
the most needed data. The needed set is closed under "base of" over the
chosen copies, so every kept delta keeps its base. A pack whose chosen
copies leave more than ``max_unused`` of it unused is repacked: its chosen
copies are copied byte for byte (a delta stays a delta on the same base)
into new packs. Packs with no chosen copy are deleted, except a pack a live
pack list names whose content the index does not know (it may hold what the
snapshot needs). A listed pack whose known blobs are all unneeded — a base
freed by re-encoding the one delta on it — is deleted, and its move records
that it now holds nothing the snapshot needs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from deltavault.errors import IntegrityError
from deltavault.repo.crypto import OVERHEAD
from deltavault.repo.layout import pack_key
from deltavault.repo.packs import ENTRY_SIZE, TRAILER_SIZE
from deltavault.repo.repository import Repository

#: a chain longer than this (or a cycle) is broken: no snapshot can restore through it
_MAX_DEPTH = 64
_INF = 1 << 30
#: bytes of a pack that are not blobs: header magic and count, its envelope, the trailer
PACK_FIXED = 8 + OVERHEAD + TRAILER_SIZE


def _full(raw: bytes) -> bytes:
    return bytes(raw).ljust(32, b"\0")


@dataclass
class PrunePlan:
    """The decision; ``chosen`` are record indices into ``records``."""

    pack_ids: list[str]
    records: npt.NDArray[np.void]
    chosen: dict[bytes, int]
    sizes: dict[str, int]
    listed: set[str]
    delete: list[str] = field(default_factory=list)
    repack: list[str] = field(default_factory=list)
    keep: list[str] = field(default_factory=list)
    #: listed packs that stay but lose index entries of needed blobs (copies chosen elsewhere)
    losing: list[str] = field(default_factory=list)
    #: listed packs kept because the index knows nothing of their content
    kept_unindexed: int = 0
    #: bytes of the blobs that repacking copies
    repack_blob_bytes: int = 0
    #: needed blobs re-encoded self-contained: their chosen copy is a delta on a blob
    #: no snapshot needs directly, so the whole chain under it can go
    materialize: dict[bytes, int] = field(default_factory=dict)
    #: estimated stored bytes of the re-encoded blobs
    materialize_bytes: int = 0

    def chosen_indices(self) -> npt.NDArray[np.int64]:
        """Record indices of the copies that stay where they are (not re-encoded)."""
        mat = set(self.materialize.values())
        return np.fromiter((i for i in self.chosen.values() if i not in mat), dtype=np.int64)

    def used_bytes(self) -> int:
        """Bytes of chosen blob copies in stored packs."""
        idx = self.chosen_indices()
        return int(self.records["length"][idx].astype(np.int64).sum()) if len(idx) else 0

    def changes_index(self) -> bool:
        """Whether the index after prune differs from the one loaded."""
        return (bool(self.delete or self.repack or self.materialize)
                or len(self.chosen) != len(self.records))


class _Chooser:
    """Picks one copy of each needed blob; closes the needed set under delta bases."""

    def __init__(self, repo: Repository, sizes: dict[str, int], needed: set[bytes]) -> None:
        self.pack_ids, self.rec = repo.index.arrays()
        self.ids = self.rec["id"]
        n_packs = max(len(self.pack_ids), 1)
        present = np.fromiter((p in sizes for p in self.pack_ids), dtype=bool,
                              count=len(self.pack_ids))
        self.ok = present[self.rec["pack"]] if len(self.rec) else np.zeros(0, dtype=bool)
        self.has_base = self.rec["base"] != b""
        self.depths: dict[bytes, int] = {}
        self.materialize_bytes = 0
        # share of each pack that holds copies of needed blobs: on a tie, the fuller pack wins,
        # so a prune that repeats an interrupted repack keeps the new packs' copies
        first = _members(self.ids, _id_array(needed)) & self.ok
        lengths = self.rec["length"].astype(np.float64)
        need_bytes = np.bincount(self.rec["pack"][first], weights=lengths[first],
                                 minlength=n_packs)
        size_arr = np.array([max(sizes.get(p, 0), 1) for p in self.pack_ids] or [1],
                            dtype=np.float64)
        self.score = need_bytes / size_arr

    def _range(self, blob: bytes) -> range:
        lo = int(np.searchsorted(self.ids, blob, side="left"))
        hi = int(np.searchsorted(self.ids, blob, side="right"))
        return range(lo, hi)

    def depth(self, blob: bytes, guard: int = 0) -> int:
        """Shortest chain under any stored copy of ``blob`` (huge: broken)."""
        known = self.depths.get(blob)
        if known is not None:
            return known
        if guard > _MAX_DEPTH:
            return _INF
        self.depths[blob] = _INF  # a cycle back to here is broken
        best = _INF
        for i in self._range(blob):
            if self.ok[i]:
                best = min(best, self.copy_depth(i, guard))
        self.depths[blob] = best
        return best

    def _broken_at(self, i: int) -> list[str]:
        """The missing packs where the delta chain under copy ``i`` breaks (to name them)."""
        seen: set[bytes] = set()
        while self.has_base[i] and len(seen) <= _MAX_DEPTH:
            base = _full(self.rec["base"][i])
            if base in seen:
                return []  # a cycle: no pack to name
            seen.add(base)
            copies = self._range(base)
            usable = [j for j in copies if self.ok[j]]
            if not usable:
                return sorted({self.pack_ids[int(self.rec["pack"][j])] for j in copies})
            i = min(usable, key=self.copy_depth)
        return []

    def copy_depth(self, i: int, guard: int = 0) -> int:
        if not self.has_base[i]:
            return 0
        return min(_INF, 1 + self.depth(_full(self.rec["base"][i]), guard + 1))

    def choose(self, blob: bytes, lo: int, hi: int) -> int:
        candidates = [i for i in range(lo, hi) if self.ok[i]]
        if not candidates:
            where = sorted({self.pack_ids[int(self.rec["pack"][i])] for i in range(lo, hi)})
            raise MissingBlob(blob, where)
        if len(candidates) == 1 and not self.has_base[candidates[0]]:
            return candidates[0]
        best = min(candidates, key=lambda i: (self.copy_depth(i),
                                              -self.score[int(self.rec["pack"][i])], i))
        if self.copy_depth(best) >= _INF:
            raise MissingBlob(blob, self._broken_at(best), broken=True)
        return best

    def run(self, needed: set[bytes]) -> dict[bytes, int]:
        chosen: dict[bytes, int] = {}
        frontier = sorted(needed)
        while frontier:
            arr = _id_array(frontier, presorted=True)
            lo = np.searchsorted(self.ids, arr, side="left")
            hi = np.searchsorted(self.ids, arr, side="right")
            bases: set[bytes] = set()
            for k, blob in enumerate(frontier):
                i = self.choose(blob, int(lo[k]), int(hi[k]))
                chosen[blob] = i
                if self.has_base[i]:
                    base = _full(self.rec["base"][i])
                    if base not in chosen and base not in needed:
                        bases.add(base)
            needed |= bases
            frontier = sorted(bases)
        return chosen


class MissingBlob(Exception):
    """A needed blob has no usable stored copy: prune must not run."""

    def __init__(self, blob: bytes, packs: list[str], broken: bool = False) -> None:
        super().__init__(blob.hex())
        self.blob, self.packs, self.broken = blob, packs, broken


def _id_array(ids: set[bytes] | list[bytes], presorted: bool = False) -> npt.NDArray[np.bytes_]:
    items = ids if presorted and isinstance(ids, list) else sorted(ids)
    return np.array(items, dtype="S32") if items else np.zeros(0, dtype="S32")


def _members(ids: npt.NDArray[np.bytes_], wanted: npt.NDArray[np.bytes_]) -> npt.NDArray[np.bool_]:
    """Which of the sorted ``ids`` are in ``wanted`` (duplicates in either are fine).

    ``np.isin`` sorts both arrays together: at a million 32-byte ids that is
    ~150 MB at once, at prune's peak. The index is sorted already, so two
    binary searches per wanted id mark the run of records that carry it.
    """
    n = len(ids)
    if not n or not len(wanted):
        return np.zeros(n, dtype=bool)
    lo = np.searchsorted(ids, wanted, side="left")
    hi = np.searchsorted(ids, wanted, side="right")
    edges = np.bincount(lo, minlength=n + 1) - np.bincount(hi, minlength=n + 1)
    mask: npt.NDArray[np.bool_] = np.cumsum(edges[:n]) > 0
    return mask


def missing_message(exc: MissingBlob, needed_by: str) -> str:
    who = f" (needed by snapshot {needed_by[:12]})" if needed_by else ""
    packs = ", ".join(pack_key(p) for p in exc.packs[:3])
    if exc.broken:
        where = f" at missing pack(s) {packs}" if packs else ""
        return f"blob {exc.blob.hex()[:16]}{who}: its delta base chain is broken{where}"
    if exc.packs:
        return f"blob {exc.blob.hex()[:16]}{who} is only in missing pack(s) {packs}"
    return f"blob {exc.blob.hex()[:16]}{who} is not in any index"


def _estimate(chooser: _Chooser, chosen: dict[bytes, int], i: int) -> int:
    """Likely stored size of record ``i`` re-encoded alone: its chain's self-contained root's."""
    rec, has_base = chooser.rec, chooser.has_base
    j, steps = i, 0
    while has_base[j] and steps <= _MAX_DEPTH:
        nxt = chosen.get(_full(rec["base"][j]))
        if nxt is None:
            return int(rec["raw_length"][i])
        j, steps = nxt, steps + 1
    if has_base[j]:
        return int(rec["raw_length"][i])
    # scale the root's stored size to this blob's plaintext size
    ratio = int(rec["length"][j]) / max(int(rec["raw_length"][j]), 1)
    return int(ratio * int(rec["raw_length"][i]))


def _materialize(chooser: _Chooser, direct: set[bytes], chosen: dict[bytes, int]
                 ) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """Pick deltas to re-encode self-contained, and the needed set that remains.

    A directly needed blob whose chosen copy is a delta on blobs that no
    snapshot needs directly keeps that chain alive: re-encoding it
    self-contained frees what of the chain no other kept delta runs through,
    and only lowers depths (docs/format.md §7.1). It is re-encoded only when
    that stores less: its estimated self-contained size below the bytes it
    frees. A chain blob that several such deltas run through is counted as
    a share to each at first (they may all be re-encoded and free it); then
    a delta whose chain stays alive because another one is not re-encoded
    is judged again on what it really frees, until nothing changes. A day's
    small delta on a forgotten day's small delta stays a delta: re-encoding
    it whole would grow the repository (30 daily snapshots, half forgotten:
    1.21x a fresh backup of the rest with unconditional re-encoding).
    """
    rec, has_base = chooser.rec, chooser.has_base
    length = rec["length"]
    chains: dict[bytes, list[bytes]] = {}  # needed delta -> the blobs below it, base first
    runs: dict[bytes, set[bytes]] = {}  # chain blob -> the needed deltas running through it
    for blob in direct:  # each chain is its own: no order needed
        i, chain = chosen[blob], list[bytes]()
        while has_base[i] and len(chain) <= _MAX_DEPTH:
            base = _full(rec["base"][i])
            if base in direct or base not in chosen:
                break
            chain.append(base)
            runs.setdefault(base, set()).add(blob)
            i = chosen[base]
        if chain:
            chains[blob] = chain
    cost = {blob: _estimate(chooser, chosen, chosen[blob]) for blob in chains}
    mat = {blob for blob, chain in chains.items()
           if cost[blob] < int(length[chosen[blob]]) + sum(
               int(length[chosen[b]]) / len(runs[b]) for b in chain)}
    # chain blob -> how many deltas running through it stay deltas (it stays if any)
    staying = {b: sum(1 for u in users if u not in mat) for b, users in runs.items()}
    changed = True
    while changed:
        changed = False
        for blob in sorted(mat):
            freed = int(length[chosen[blob]]) + sum(
                int(length[chosen[b]]) for b in chains[blob] if not staying[b])
            if cost[blob] >= freed:
                mat.discard(blob)
                for b in chains[blob]:
                    staying[b] += 1
                changed = True
    keep = set(direct)
    todo = [b for b in direct if b not in mat]
    while todo:
        i = chosen[todo.pop()]
        if has_base[i]:
            base = _full(rec["base"][i])
            if base not in keep:
                keep.add(base)
                todo.append(base)
    chooser.materialize_bytes = sum(cost[b] for b in mat)
    return {b: chosen[b] for b in keep}, {b: chosen[b] for b in mat}


def make_plan(repo: Repository, needed: set[bytes], sizes: dict[str, int], listed: set[str],
              *, max_unused: float, max_repack_size: int | None) -> PrunePlan:
    """Decide. ``repo.index`` holds every index file (read strictly).

    ``max_unused`` below 1 and no ``max_repack_size`` also allow
    re-encoding deltas whose base chain no snapshot needs directly (see
    :func:`_materialize`): what that frees is only reclaimed when the packs
    holding the chain are repacked too, which a budget may not allow, and a
    budgeted run must never grow the repository.

    Raises:
        MissingBlob: a needed blob has no usable stored copy (the caller names it).
    """
    chooser = _Chooser(repo, sizes, needed)
    chosen = chooser.run(set(needed))
    mat: dict[bytes, int] = {}
    if max_unused < 1 and max_repack_size is None:
        chosen, mat = _materialize(chooser, needed, chosen)
    plan = PrunePlan(chooser.pack_ids, chooser.rec, chosen, sizes, listed, materialize=mat,
                     materialize_bytes=chooser.materialize_bytes)
    rec = chooser.rec
    n_packs = max(len(plan.pack_ids), 1)
    idx = plan.chosen_indices()
    cpack = rec["pack"][idx]
    clen = rec["length"][idx].astype(np.float64)
    chosen_bytes = np.bincount(cpack, weights=clen, minlength=n_packs)
    chosen_count = np.bincount(cpack, minlength=n_packs)
    needed_mask = _members(rec["id"], _id_array(list(chosen))) & chooser.ok
    needed_count = np.bincount(rec["pack"][needed_mask], minlength=n_packs)
    record_count = np.bincount(rec["pack"], minlength=n_packs)
    pos = {pid: i for i, pid in enumerate(plan.pack_ids)}
    candidates: list[tuple[float, str]] = []
    for pid, size in sorted(sizes.items()):
        i = pos.get(pid)
        if i is None or chosen_count[i] == 0:
            # a listed pack whose content the index does not know may hold what a
            # snapshot needs: it stays. One whose known blobs are all unneeded (a base
            # freed by re-encoding) goes, its move recording that it holds nothing now.
            if pid in listed and (i is None or record_count[i] == 0):
                plan.kept_unindexed += 1
                plan.keep.append(pid)
            else:
                plan.delete.append(pid)
            continue
        used = int(chosen_bytes[i]) + ENTRY_SIZE * int(chosen_count[i]) + PACK_FIXED
        if size - used > max_unused * size:
            candidates.append(((size - used) / max(size, 1), pid))
        else:
            plan.keep.append(pid)
    budget = max_repack_size
    for _share, pid in sorted(candidates, key=lambda c: (-c[0], c[1])):
        if budget is not None and sizes[pid] > budget:
            plan.keep.append(pid)
            continue
        if budget is not None:
            budget -= sizes[pid]
        plan.repack.append(pid)
        plan.repack_blob_bytes += int(chosen_bytes[pos[pid]])
    plan.losing = sorted(p for p in plan.keep if p in listed and p in pos
                         and needed_count[pos[p]] > chosen_count[pos[p]])
    plan.keep.sort()
    return plan


def blobs_in(plan: PrunePlan, packs: set[str]) -> dict[str, list[bytes]]:
    """For each of ``packs``: the needed blobs it holds a stored copy of."""
    rec = plan.records
    wanted = np.array([p in packs for p in plan.pack_ids] or [False], dtype=bool)
    if not len(rec):
        return {p: [] for p in packs}
    mask = wanted[rec["pack"]] & _members(rec["id"], _id_array(list(plan.chosen)))
    out: dict[str, list[bytes]] = {p: [] for p in packs}
    for i in np.nonzero(mask)[0]:
        out[plan.pack_ids[int(rec["pack"][i])]].append(_full(rec["id"][i]))
    return out


def check_plan(plan: PrunePlan) -> None:
    """Refuse a plan that would delete a pack holding a chosen copy (a bug, never data loss)."""
    gone = set(plan.delete)
    for i in plan.chosen_indices():
        if plan.pack_ids[int(plan.records["pack"][i])] in gone:
            raise IntegrityError("prune refused: the plan would delete a pack it keeps a blob "
                                 "in; nothing was deleted")
