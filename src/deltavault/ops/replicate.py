"""Replicate a repository (or some of its snapshots) to another store.

The model is a **replica**: the destination holds the same repository —
same ``config``, key files, master key and ``ledger-key`` — so every object
is copied byte for byte under its own name. Packs, indexes, snapshots,
journal batches and key files are named by the SHA-256 of their bytes, pack
lists by their snapshot, ledger tiles by their position; all are write-once,
so copying is "put what is missing", which makes ``copy`` idempotent and
resumable: an interrupted copy is finished by running it again.

Order in the destination (crash safety, as for a backup): replica marker,
``ledger-key``, key files, packs, indexes, pack lists, snapshots, journal,
ledger tiles/bundles, ``ledger/checkpoint`` (``replace``, last of the
ledger), and on the first copy ``config`` very last — until then the
destination is not a repository anyone can open.

The destination's ledger must stay a prefix of the source's: before the
checkpoint is swapped, the destination's old checkpoint is checked to be
consistent with the source's tree, and a fork is refused. Read-only
commands record nothing in a replica (the ``replica`` marker) for that
reason; do not back up into a replica.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence

from deltavault.errors import (
    FormatError,
    LedgerError,
    NoCompareAndSwap,
    ObjectExists,
    ObjectNotFound,
    RepositoryError,
    RepositoryNotFound,
    UserError,
)
from deltavault.ledger.log import Ledger
from deltavault.ledger.note import open_checkpoint, parse_vkey
from deltavault.ledger.packmoves import resolve
from deltavault.ledger.state import committed_snapshots
from deltavault.ledger.storage import TileStore
from deltavault.ledger.tiles import CHECKPOINT_KEY
from deltavault.ops.transfer import CopyReport, ProgressFn, Transfer
from deltavault.ops.view import read_history
from deltavault.repo.index import IndexFile
from deltavault.repo.layout import (
    CONFIG_KEY,
    DATA_PREFIX,
    INDEX_PREFIX,
    JOURNAL_PREFIX,
    KEY_PREFIX,
    LEDGER_KEY,
    LEDGER_PREFIX,
    PACKLIST_PREFIX,
    REPLICA_KEY,
    SNAPSHOT_PREFIX,
    name_of,
    pack_key,
    packlist_key,
    snapshot_key,
)
from deltavault.repo.objects import RepositoryObjects
from deltavault.repo.packs import PackEntry
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import packlist_root
from deltavault.store.base import Store
from deltavault.store.url import open_store


def _listing(store: Store, prefix: str) -> list[tuple[str, int]]:
    return RepositoryObjects(store).listing(prefix)


def _config_ledger(config: bytes) -> tuple[str, str]:
    try:
        doc = json.loads(config)
        return str(doc["ledger"]["origin"]), str(doc["ledger"]["verifier_key"])
    except (ValueError, KeyError, TypeError) as exc:
        raise FormatError(f"config: cannot read the ledger origin and key: {exc}") from exc


def _open_destination(src: Store, dst: Store, report: CopyReport) -> bytes:
    """Check the destination is empty or a replica of the source; mark it."""
    try:
        config = src.get(CONFIG_KEY)
    except ObjectNotFound as exc:
        raise RepositoryNotFound(f"no repository at {src.location()}") from exc
    try:
        existing: bytes | None = dst.get(CONFIG_KEY)
    except ObjectNotFound:
        existing = None
    if existing is not None and existing != config:
        raise UserError(f"{dst.location()} holds a different repository",
                        hint="copy needs an empty destination or a replica made by copy")
    if not dst.atomic_replace:
        raise NoCompareAndSwap(f"cannot copy into {dst.location()}: the store has no atomic "
                               "compare-and-swap for ledger/checkpoint; nothing was written")
    report.initialised = existing is None
    if existing is None and not dst.exists(REPLICA_KEY) and any(True for _ in dst.list("")):
        raise UserError(f"{dst.location()} is not empty and not a replica",
                        hint="copy into an empty location")
    with contextlib.suppress(ObjectExists):
        dst.put(REPLICA_KEY, json.dumps({"replica_of": src.location(), "version": 1},
                                        sort_keys=True).encode())
    try:
        ledger_key = src.get(LEDGER_KEY)
    except ObjectNotFound as exc:
        raise RepositoryError(f"{src.location()} has no {LEDGER_KEY}") from exc
    try:
        if dst.get(LEDGER_KEY) != ledger_key:
            raise UserError(f"{dst.location()} has another {LEDGER_KEY}; not a replica")
    except ObjectNotFound:
        dst.put(LEDGER_KEY, ledger_key)
    return config


def _select(repo: Repository, refs: Sequence[str]) -> tuple[list[str], set[str]]:
    """Snapshot ids and the packs their pack lists name (resolved through prune's moves)."""
    snaps = repo.snapshots()
    ids = sorted({repo.find_snapshot(ref, snaps).id for ref in refs})
    moves = read_history(repo).moves
    packs: set[str] = set()
    for sid in ids:
        packs.update(resolve(moves, repo.objects.read_packlist(sid)))
    return ids, packs


def _subset_indexes(repo: Repository, dst: Store, packs: set[str], xfer: Transfer,
                    report: CopyReport) -> None:
    """Copy index files wholly about copied packs; index the rest in one new file.

    An original index file that also names packs not being copied would make
    ``check`` on the destination report them missing, so those packs' blobs
    are indexed in a new file (sealed with the same key) instead.
    """
    dst_repo = Repository(dst, repo.config, repo.crypto, repo.key_id)
    covered = dst_repo.load_index(force=True).pack_ids()
    whole: list[tuple[str, int]] = []
    for key, size in repo.objects.listing(INDEX_PREFIX):
        index = repo.load_index_file(name_of(key))
        names = {p.hex() for p in index.pack_ids}
        if names and names <= packs | covered:
            whole.append((key, size))
            covered |= names
    xfer.run(xfer.missing(whole))
    rest = packs - covered
    if not rest:
        return
    entries: dict[str, list[PackEntry]] = {}
    for loc in repo.load_index().all_locations():
        if loc.pack_id in rest:
            entries.setdefault(loc.pack_id, []).append(PackEntry(
                loc.type, loc.codec, loc.offset, loc.length, loc.raw_length, loc.id, loc.base))
    dst_repo.save_index(IndexFile.from_packs(entries))
    report.indexes_written += 1


def _copy_ledger(src: Store, dst: Store, config: bytes, xfer: Transfer,
                 report: CopyReport) -> None:
    """Copy the log, then swap the destination's checkpoint if it is a prefix."""
    origin, vkey = _config_ledger(config)
    verifier = parse_vkey(vkey)
    try:
        cp_data = src.get(CHECKPOINT_KEY)
    except ObjectNotFound:
        return  # an empty log
    cp = open_checkpoint(cp_data, verifier, origin).checkpoint
    try:
        old_data, version = dst.get_versioned(CHECKPOINT_KEY)
    except ObjectNotFound:
        old_data, version = b"", None
    if version is not None and old_data != cp_data:
        # Position-addressed tiles are write-once: a destination log that is
        # not a prefix of the source's can never be brought in line.
        old = open_checkpoint(old_data, verifier, origin).checkpoint
        if old.size > cp.size or TileStore(src).root(old.size) != old.root:
            raise LedgerError(
                f"the ledger of {dst.location()} has forked from the source's (size "
                f"{old.size} vs {cp.size}); it was written to directly",
                hint="a replica must only be written by copy; make a new replica")
    for _attempt in range(3):  # the source may be publishing tiles right now
        xfer.run(xfer.missing((k, s) for k, s in _listing(src, LEDGER_PREFIX)
                              if k != CHECKPOINT_KEY))
        try:
            root = TileStore(dst).root(cp.size)
        except (ObjectNotFound, LedgerError, FormatError):
            continue
        if root != cp.root:
            raise LedgerError(f"the copied ledger does not hash to the source checkpoint "
                              f"at size {cp.size}")
        break
    else:
        raise LedgerError(f"ledger tiles for size {cp.size} are missing in {src.location()}")
    report.ledger_size = cp.size
    if old_data == cp_data:
        return
    dst.replace(CHECKPOINT_KEY, cp_data, version)


def _check_packlists(src: Store, config: bytes, sids: set[str], report: CopyReport) -> None:
    """Pack lists are not hash-named: check them against the ledger's roots."""
    origin, vkey = _config_ledger(config)
    try:
        live = committed_snapshots(Ledger.open(src, origin, verifier=vkey))
    except ObjectNotFound:
        return
    for sid in sorted(sids & set(live)):
        try:
            ok = packlist_root(RepositoryObjects(src).read_packlist(sid)) == \
                live[sid].fields.get("packs_root")
        except (FormatError, ObjectNotFound):
            ok = False
        if not ok:
            report.damaged_in_source.append(packlist_key(sid))


def copy_snapshots(src_repo: Repository | Store,
                   dst_repo: Repository | Store | str | os.PathLike[str],
                   snapshot_ids: Sequence[str] | None = None, *,
                   on_progress: ProgressFn | None = None, workers: int = 4) -> CopyReport:
    """Copy a repository, or some snapshots of it, into a replica.

    Args:
        src_repo: the source; an opened Repository, or a bare Store for a
            keyless copy of everything (no password needed, no lock taken).
        dst_repo: the destination: an empty store (it becomes a replica) or
            a replica made by an earlier copy; a Repository, Store, path or URL.
        snapshot_ids: ids, prefixes or ``latest``; None copies everything.
            Needs an opened source Repository.
        on_progress: called with (bytes done, bytes planned).
        workers: objects transferred in parallel.

    Returns:
        What was copied, and the source objects that failed verification
        (not copied; repair the source, then copy again).

    Raises:
        UserError: the destination is another repository, or not empty.
        LedgerError: the destination's ledger forked from the source's.
    """
    src = src_repo.store if isinstance(src_repo, Repository) else src_repo
    dst = dst_repo.store if isinstance(dst_repo, Repository) else open_store(dst_repo,
                                                                                 create=True)
    if snapshot_ids and not isinstance(src_repo, Repository):
        raise UserError("copying chosen snapshots needs the source opened with its password")
    report = CopyReport(src.location(), dst.location())
    lock = (src_repo.lock() if isinstance(src_repo, Repository)
            else contextlib.nullcontext())
    with lock:  # a shared lock: prune cannot remove packs while they are copied
        config = _open_destination(src, dst, report)
        xfer = Transfer(src, dst, report, on_progress, workers)
        xfer.run(xfer.missing(_listing(src, KEY_PREFIX)))
        if snapshot_ids:
            assert isinstance(src_repo, Repository)
            sids, packs = _select(src_repo, snapshot_ids)
            sizes = dict(_listing(src, DATA_PREFIX))
            pack_keys = [(pack_key(p), sizes.get(pack_key(p), 0)) for p in sorted(packs)]
            lists = [(packlist_key(s), 0) for s in sids]
            snaps = [(snapshot_key(s), 0) for s in sids]
            report.snapshots = sids
        else:
            pack_keys = _listing(src, DATA_PREFIX)
            lists = _listing(src, PACKLIST_PREFIX)
            snaps = _listing(src, SNAPSHOT_PREFIX)
            sids = [name_of(k) for k, _ in snaps]
            report.snapshots = sids
        todo_packs, todo_lists = xfer.missing(pack_keys), xfer.missing(lists)
        todo_snaps = xfer.missing(snaps)
        xfer.plan([todo_packs, todo_snaps])
        xfer.run(todo_packs)
        if snapshot_ids:
            assert isinstance(src_repo, Repository)
            _subset_indexes(src_repo, dst, packs, xfer, report)
        else:
            xfer.run(xfer.missing(_listing(src, INDEX_PREFIX)))
        _check_packlists(src, config, {name_of(k) for k, _ in todo_lists}, report)
        bad = set(report.damaged_in_source)
        xfer.run([kv for kv in todo_lists if kv[0] not in bad])
        xfer.run(todo_snaps)
        xfer.run(xfer.missing(_listing(src, JOURNAL_PREFIX)))
        if isinstance(src_repo, Repository):
            src_repo.check_lock()  # before the replica's commit point, its checkpoint
        _copy_ledger(src, dst, config, xfer, report)
        if report.initialised:
            try:
                dst.put(CONFIG_KEY, config)
            except ObjectExists:
                if dst.get(CONFIG_KEY) != config:
                    raise
    return report


def copy_error_summary(report: CopyReport) -> str | None:
    """One line for a copy that skipped damaged source objects, else None."""
    if report.ok:
        return None
    return (f"{len(report.damaged_in_source)} source object(s) failed verification and were "
            f"not copied: {', '.join(report.damaged_in_source[:3])}")


