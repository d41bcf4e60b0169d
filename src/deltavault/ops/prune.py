"""prune: free the space of data no live snapshot needs, repacking mostly-unused packs.

Prune runs only on a complete, verified view (docs/format.md §11): every
live snapshot's object and pack list, every index file, a stored copy of
every blob a live snapshot needs — or it deletes nothing and exits 13
naming the object. Its write order makes a crash at any point harmless:

1. repack: new packs, indexed every few packs (partial index files);
2. a ``prune-start`` ledger event naming what will be deleted (packs,
   index files, leftover snapshot objects) and where the needed blobs of
   packs that live pack lists name now lie (``moved``);
3. the new index, as several files of bounded size superseding every old one;
4. deletions: old index files, packs, leftover snapshot objects and pack lists
   (objects under retention are skipped and counted);
5. the ``prune`` completion event.

The next prune recomputes everything from the repository and so finishes
an interrupted one; its completion event names the runs it finished.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from deltavault.errors import IntegrityError, ObjectLocked, ObjectNotFound, RepositoryError
from deltavault.ledger.packmoves import MAX_MOVES_PER_EVENT
from deltavault.ops.forget import require_deletes
from deltavault.ops.pruneplan import (
    PACK_FIXED,
    MissingBlob,
    PrunePlan,
    blobs_in,
    check_plan,
    make_plan,
    missing_message,
)
from deltavault.ops.repack import RepackOutcome, repack
from deltavault.ops.view import LiveView, reachable_blobs, users_of, verified_live
from deltavault.repo.crypto import Crypto
from deltavault.repo.index import RECORD_DTYPE, MasterIndex
from deltavault.repo.indexset import MAX_RECORDS_PER_FILE, load_strict, write_index_files
from deltavault.repo.ledger_link import make_event
from deltavault.repo.packs import ENTRY_SIZE, ZERO_ID
from deltavault.repo.repository import Repository

#: default share of a pack that may be unused before prune repacks it (``--max-unused``)
DEFAULT_MAX_UNUSED = 0.05


@dataclass
class PruneResult:
    """What prune found and did (or, with ``dry_run``, would do)."""

    packs_kept: int = 0
    packs_removed: int = 0
    bytes_removed: int = 0
    blobs_kept: int = 0
    indexes_replaced: int = 0
    packs_retained: int = 0
    dry_run: bool = False
    packs_repacked: int = 0
    bytes_repacked: int = 0
    packs_written: int = 0
    bytes_written: int = 0
    indexes_written: int = 0
    snapshots_removed: int = 0
    snapshots_retained: int = 0
    blobs_reencoded: int = 0
    bytes_before: int = 0
    unused_before: int = 0
    unused_after: int = 0
    run: str = ""
    finished_runs: list[str] = field(default_factory=list)

    @property
    def bytes_reclaimed(self) -> int:
        """Space freed: deleted packs less the new packs repacking wrote."""
        return self.bytes_removed - self.bytes_written

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "bytes_reclaimed": self.bytes_reclaimed}


@contextmanager
def _refusing() -> Iterator[None]:
    """Turn a damaged object found while reading the view into prune's refusal."""
    try:
        yield
    except RepositoryError as exc:
        if "refused" in str(exc):
            raise
        raise IntegrityError(f"prune refused: {exc}; nothing was deleted",
                             hint=exc.hint or "see 'deltavault check'") from exc


def _needed(repo: Repository, view: LiveView) -> set[bytes]:
    return reachable_blobs(repo, view.ordered())


def _plan(repo: Repository, view: LiveView, sizes: dict[str, int], max_unused: float,
          max_repack_size: int | None) -> PrunePlan:
    needed = _needed(repo, view)
    try:
        plan = make_plan(repo, needed, sizes, view.listed(), max_unused=max_unused,
                         max_repack_size=max_repack_size)
    except MissingBlob as exc:
        who = users_of(repo, view.ordered(), exc.blob)
        raise IntegrityError(f"prune refused: {missing_message(exc, who)}; nothing was deleted",
                             hint="run 'deltavault repair index' (or 'deltavault repair "
                                  "--from-repo REPLICA')") from exc
    check_plan(plan)
    return plan


def _leftovers(repo: Repository, view: LiveView) -> tuple[list[str], list[str]]:
    """Snapshot objects and pack lists of snapshots that do not exist (uncommitted, forgotten).

    Under the exclusive lock no backup is between writing its snapshot and
    committing it, so every such object is garbage, whatever its age.
    """
    live = set(view.committed)
    return (sorted(set(repo.snapshot_ids()) - live),
            sorted(set(repo.objects.packlist_ids()) - live))


def _figures(plan: PrunePlan, result: PruneResult, pack_size: int) -> None:
    sizes = plan.sizes
    gone = plan.delete + plan.repack
    result.packs_removed = len(gone)
    result.bytes_removed = sum(sizes[p] for p in gone)
    result.packs_repacked = len(plan.repack)
    result.bytes_repacked = sum(sizes[p] for p in plan.repack)
    result.packs_kept = len(plan.keep)
    result.blobs_kept = len(plan.chosen)
    result.bytes_before = sum(sizes.values())
    result.unused_before = result.bytes_before - plan.used_bytes()
    if plan.repack or plan.materialize:  # estimate until the packs are written
        repacked = set(plan.repack)
        n = len(plan.materialize) + sum(
            1 for i in plan.chosen_indices()
            if plan.pack_ids[int(plan.records["pack"][i])] in repacked)
        # a re-encoded blob is estimated from its chain's self-contained root
        blob_bytes = plan.repack_blob_bytes + plan.materialize_bytes
        result.bytes_written = blob_bytes + ENTRY_SIZE * n
        result.packs_written = max(1, math.ceil(blob_bytes / max(pack_size, 1)))
        result.bytes_written += PACK_FIXED * result.packs_written
    result.blobs_reencoded = len(plan.materialize)


def _unused_after(result: PruneResult, reencoded: int) -> int:
    """Stored bytes after prune that are not kept blobs (re-encoded ones are kept blobs)."""
    return result.unused_before - result.bytes_removed + result.bytes_written - reencoded


def _moves(plan: PrunePlan, outcome: RepackOutcome) -> list[list[Any]]:
    """``[old, [targets]]`` for every listed pack that loses, or loses entries of, needed blobs."""
    keep = set(plan.keep)
    affected = plan.listed & (set(plan.delete) | set(plan.repack) | set(plan.losing))
    if not affected:
        return []
    holders = blobs_in(plan, affected)
    rec = plan.records

    def final(i: int) -> str:
        moved = outcome.relocated.get(i)
        return moved[0] if moved is not None else plan.pack_ids[int(rec["pack"][i])]

    out: list[list[Any]] = []
    for pid in sorted(affected):
        targets = {final(plan.chosen[b]) for b in holders[pid]}
        if pid in keep:
            targets.add(pid)
        out.append([pid, sorted(targets)])
    return out


def _new_records(plan: PrunePlan, outcome: RepackOutcome) -> tuple[list[str],
                                                                   npt.NDArray[np.void]]:
    idx = plan.chosen_indices()
    moved = np.fromiter(outcome.relocated, dtype=np.int64, count=len(outcome.relocated))
    stay = plan.records[idx[~np.isin(idx, moved)]]
    table = plan.pack_ids + outcome.new_packs
    pos = {pid: len(plan.pack_ids) + k for k, pid in enumerate(outcome.new_packs)}
    fresh = np.zeros(len(outcome.relocated), dtype=RECORD_DTYPE)
    for k, (pid, e) in enumerate(outcome.relocated.values()):
        fresh[k] = (e.id, e.base or ZERO_ID, pos[pid], e.offset, e.length, e.raw_length,
                    e.type, e.codec)
    return table, np.concatenate([stay, fresh])


def _start_events(crypto: Crypto, run: str, packs: list[str], indexes: list[str],
                  snapshots: list[str], moved: list[list[Any]],
                  summary: dict[str, Any]) -> list[bytes]:
    """One ``prune-start`` event, or several parts of one run when the lists are long."""
    lists: dict[str, list[Any]] = {"packs": packs, "indexes": indexes, "snapshots": snapshots,
                                   "moved": moved}
    step = MAX_MOVES_PER_EVENT
    parts = max(1, *(math.ceil(len(v) / step) for v in lists.values()))
    out = []
    for k in range(parts):
        fields = {name: v[k * step : (k + 1) * step] for name, v in lists.items()}
        extra = summary if k == 0 else {}
        out.append(make_event("prune-start", crypto, run=run, part=k, parts=parts, **fields,
                              **extra))
    return out


def _delete_all(keys: list[str], delete: Callable[[str], None]) -> tuple[int, int]:
    """Delete each; returns (deleted, kept under retention). Missing ones were deleted before."""
    done = retained = 0
    for key in keys:
        try:
            delete(key)
            done += 1
        except ObjectNotFound:
            continue
        except ObjectLocked:  # S3 Object Lock: freed by a prune after retention ends
            retained += 1
    return done, retained


def run_prune(repo: Repository, *, dry_run: bool = False,
              max_unused: float = DEFAULT_MAX_UNUSED, max_repack_size: int | None = None,
              on_progress: Callable[[int, int], None] | None = None,
              max_index_records: int = MAX_RECORDS_PER_FILE) -> PruneResult:
    """Remove what no live snapshot needs. The caller holds the exclusive lock.

    Args:
        repo: the repository, opened.
        dry_run: decide and report, change nothing.
        max_unused: repack a pack whose unused share exceeds this (0-1).
        max_repack_size: repack at most this many bytes of packs (None: no limit).
        on_progress: (bytes of old packs repacked, bytes to repack).
        max_index_records: records per new index file.

    Raises:
        RepositoryError: the view is incomplete or damaged (nothing deleted).
    """
    view = verified_live(repo, "prune")
    sizes = repo.objects.pack_sizes()
    with _refusing():
        old_indexes = load_strict(repo)
        plan = _plan(repo, view, sizes, max_unused, max_repack_size)
    snaps_gone, lists_gone = _leftovers(repo, view)
    result = PruneResult(dry_run=dry_run, finished_runs=list(view.history.unfinished))
    _figures(plan, result, repo.config.pack_size)
    result.snapshots_removed = len(set(snaps_gone) | set(lists_gone))
    result.unused_after = _unused_after(result, plan.materialize_bytes)
    needed_files = max(1, math.ceil(len(plan.chosen) / max_index_records))
    idle = (not plan.changes_index() and not snaps_gone and not lists_gone
            and len(old_indexes) <= needed_files and not view.history.unfinished)
    if dry_run:
        return result
    require_deletes(repo, "prune")
    if idle:
        repo.record("prune", packs_removed=0, bytes_removed=0)
        return result
    outcome = repack(repo, plan, on_progress=on_progress)
    result.packs_written, result.bytes_written = len(outcome.new_packs), outcome.bytes_written
    result.run = run = secrets.token_hex(32)
    doomed_indexes = sorted(set(old_indexes) | set(outcome.partial_indexes))
    doomed_packs = sorted(plan.delete + plan.repack)
    repo.check_lock()  # a commit point: a prune whose lock was lost records nothing more
    repo.ledger.append(_start_events(
        repo.crypto, run, doomed_packs, doomed_indexes, sorted(set(snaps_gone) | set(lists_gone)),
        _moves(plan, outcome),
        {"bytes_removed": result.bytes_removed, "bytes_written": result.bytes_written,
         "packs_repacked": result.packs_repacked, "new_packs": outcome.new_packs}))
    table, records = _new_records(plan, outcome)
    written = write_index_files(repo, table, records, doomed_indexes,
                                max_records=max_index_records)
    result.indexes_written = len(written)
    result.indexes_replaced = _delete_all(doomed_indexes, repo.objects.delete_index)[0]
    _, result.packs_retained = _delete_all(doomed_packs, repo.objects.delete_pack)
    _, kept_snaps = _delete_all(snaps_gone, repo.objects.delete_snapshot)
    _, kept_lists = _delete_all(lists_gone, repo.objects.delete_packlist)
    result.snapshots_retained = kept_snaps + kept_lists
    result.unused_after = _unused_after(result, sum(
        outcome.relocated[i][1].length for i in plan.materialize.values()))
    repo.record("prune", run=run, packs_removed=result.packs_removed,
                bytes_removed=result.bytes_removed, bytes_written=result.bytes_written,
                packs_repacked=result.packs_repacked, packs_retained=result.packs_retained,
                blobs_reencoded=result.blobs_reencoded,
                indexes_removed=result.indexes_replaced, indexes_written=written,
                snapshots_removed=result.snapshots_removed,
                snapshots_retained=result.snapshots_retained, finished=result.finished_runs)
    # the next reader loads the new index; nothing may use the old one meanwhile
    repo.index, repo._index_loaded = MasterIndex(), False
    return result
