"""Open, create and read a repository: keys, config, index, blobs, snapshots, ledger.

:class:`Repository` is the one place that encrypts, decrypts and verifies
repository objects and commits snapshots; object names come from
:mod:`deltavault.repo.layout` and the store I/O from
:class:`~deltavault.repo.objects.RepositoryObjects`. Higher layers (backup,
restore, ops) call it; it never walks file systems or talks to the user.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from deltavault.errors import (
    BackendError,
    IntegrityError,
    NoCompareAndSwap,
    ObjectLocked,
    ObjectNotFound,
    PermissionDenied,
    UserError,
)
from deltavault.ledger.client import LedgerClient
from deltavault.ledger.events import Event, snapshot_event
from deltavault.ledger.log import Ledger
from deltavault.ledger.state import LiveSnapshot
from deltavault.repo import layout, refs
from deltavault.repo.blobcache import BlobCache
from deltavault.repo.config import ChunkerParams, Config
from deltavault.repo.crypto import AAD_SNAPSHOT, Crypto, MasterKey
from deltavault.repo.keys import KdfParams, KeyFile, key_id_of, make_key_file
from deltavault.repo.ledger_link import (
    ledger_client,
    make_event,
    new_ledger_key,
    open_ledger,
    protect_event,
)
from deltavault.repo.locks import DEFAULT_TIMING, Lock, LockTiming, locked
from deltavault.repo.objects import RepositoryObjects
from deltavault.repo.repo_index import RepositoryIndex
from deltavault.repo.snapshot import Snapshot, now_rfc3339
from deltavault.repo.unlock import Unlocked, key_files, unlock
from deltavault.store.base import ByteRange, Store

if TYPE_CHECKING:  # numpy and the codecs load on first use, not at start-up (issue 14)
    from deltavault.repo.index import BlobLocation


@functools.cache
def _codec_decode() -> Callable[[int, bytes, bytes | None, int], bytes]:
    """The codecs' decoder, imported on first use (``snapshots`` and ``--help`` never
    load them) and then called without an import statement per blob."""
    from deltavault.codec.registry import decode

    return decode


class Repository(RepositoryIndex):
    """An opened repository: decrypted keys, config and the blob index."""

    def __init__(self, store: Store, config: Config, crypto: Crypto, key_id: str) -> None:
        self.store = store
        self.objects = RepositoryObjects(store)
        self.config = config
        self.crypto = crypto
        self.key_id = key_id
        self.cache = BlobCache()
        self._init_index()
        self._ledger: Ledger | None = None
        self._client: LedgerClient | None = None
        #: whether operations append their events to the ledger
        self.record_events = True
        #: how this process keeps its locks (tests shorten it)
        self.lock_timing: LockTiming = DEFAULT_TIMING
        self._locks: list[Lock] = []
        self.objects.guard = self.check_lock

    # --- create and open -------------------------------------------------------

    @classmethod
    def init(cls, store: Store, password: bytes, *, chunker: ChunkerParams | None = None,
             compression_level: int = 3, pack_size: int = 8 * 1024 * 1024,
             max_chain: int = 8, kdf: KdfParams | None = None) -> Repository:
        """Create a new repository in an empty store."""
        if store.exists(layout.CONFIG_KEY):
            raise UserError(f"a repository already exists at {store.location()}")
        if not password:
            raise UserError("an empty password is not allowed")
        if not store.atomic_replace:
            # its ledger could never be appended to (Ledger.append refuses)
            raise NoCompareAndSwap(f"cannot create a repository in {store.location()}: the "
                                   "store has no atomic compare-and-swap for the ledger")
        master = MasterKey.generate()
        crypto = Crypto(master)
        repo_id = hashlib.sha256(master.secret + b"id").hexdigest()
        config = Config(id=repo_id, created=now_rfc3339(), chunker=chunker or ChunkerParams(),
                        compression_level=compression_level, pack_size=pack_size,
                        max_chain=max_chain, ledger_origin=f"deltavault.local/{repo_id}")
        config.chunker.check()
        kf = make_key_file(master, password, repo_id, kdf or KdfParams.fresh())
        key_id = key_id_of(kf)
        store.put(layout.key_file_key(key_id), kf)
        repo = cls(store, config, crypto, key_id)
        # the ledger signing key exists before the config that names its verifier key
        repo.config.ledger_verifier_key = new_ledger_key(store, crypto, config.ledger_origin)
        store.put(layout.CONFIG_KEY, repo.config.encode(crypto))
        return repo

    @classmethod
    def open(cls, store: Store, password: bytes) -> Repository:
        """Open with a password; WrongPassword if no key file accepts it."""
        return cls.unlocked(store, unlock(store, password))

    @classmethod
    def unlocked(cls, store: Store, opened: Unlocked) -> Repository:
        """The repository a successful :func:`~deltavault.repo.unlock.unlock` opened."""
        return cls(store, opened.config, opened.crypto, opened.key_id)

    # --- keys ------------------------------------------------------------------

    def list_keys(self) -> list[KeyFile]:
        """Every readable key file."""
        return list(key_files(self.store))

    def add_key(self, password: bytes, kdf: KdfParams | None = None) -> str:
        """Another password for the same master key; returns the new key id."""
        if not password:
            raise UserError("an empty password is not allowed")
        kf = make_key_file(self.crypto.master, password, self.config.id, kdf or KdfParams.fresh())
        kid = key_id_of(kf)
        with self.lock():  # a writer like any other: its event waits out a prune
            self.store.put(layout.key_file_key(kid), kf)
            self.record("key-add", key_id=kid)
        return kid

    def remove_key(self, key_id: str) -> str:
        """Remove a key file by id or unique prefix; never the last one or the one in use."""
        matches = [k.id for k in self.list_keys() if k.id.startswith(key_id)]
        if len(matches) != 1:
            raise UserError(f"key {key_id!r} matches {len(matches)} keys; give a unique prefix")
        if matches[0] == self.key_id:
            raise UserError("refusing to remove the key this session was opened with")
        with self.lock():
            self.store.delete(layout.key_file_key(matches[0]))
            self.record("key-remove", key_id=matches[0])
        return matches[0]

    def change_password(self, password: bytes) -> tuple[str, str]:
        """Add a key for the new password, then remove the one in use."""
        old = self.key_id
        with self.lock():
            new = self.add_key(password)
            self.store.delete(layout.key_file_key(old))
            self.record("key-remove", key_id=old)
        self.key_id = new
        return new, old

    def _open_named(self, key: str, oid: str, read: Callable[[str], bytes], aad: bytes) -> bytes:
        """Read a hash-named object, check the name against the SHA-256, decrypt."""
        data = read(oid)
        if hashlib.sha256(data).hexdigest() != oid:
            raise IntegrityError(f"{key}: content does not match its name (SHA-256)")
        return self.crypto.open(aad, data, key)

    # --- blobs -----------------------------------------------------------------

    def decode_blob(self, loc: BlobLocation, envelope: bytes | memoryview) -> bytes:
        """Decrypt and decode a stored blob (following delta bases); verify its id."""
        return self._decode(loc, lambda: envelope)

    def _decode(self, loc: BlobLocation, read: Callable[[], bytes | memoryview]) -> bytes:
        """The base first, then this blob's envelope, read and decrypted only then.

        In this order a worker never holds a blob's envelope or payload while
        its base is read and decoded, and an envelope read here is freed as
        soon as it is decrypted: at the peak of a restore of the bench's mixed
        state, two workers each held a base's envelope, its payload and the
        blob's own payload (tracemalloc, ~4 MiB each) before this.
        """
        base = self.load_blob(loc.base) if loc.base is not None else None
        try:
            payload = self.crypto.open_blob(loc.id, read())
        except IntegrityError as exc:  # name the stored object, not only the blob in it
            raise IntegrityError(f"{layout.pack_key(loc.pack_id)}: {exc}") from exc
        plain = _codec_decode()(loc.codec, payload, base, loc.raw_length)
        del payload, base
        if self.crypto.blob_id(plain) != loc.id:
            raise IntegrityError(f"blob {loc.id.hex()[:16]} in pack {loc.pack_id[:12]}: "
                                 "content does not match its id")
        return plain

    def load_blob(self, blob_id: bytes, *, cache: bool = True) -> bytes:
        """One blob's plaintext, from the cache or a ranged read of its pack.

        ``cache=False`` still uses a cached copy but does not add one: a walk
        that reads each blob once (restore's trees) would otherwise evict the
        blobs other readers ask for again (delta bases).
        """
        hit = self.cache.get(blob_id)
        if hit is not None:
            return hit
        return self.read_blob(self.locate(blob_id), cache=cache)

    def read_blob(self, loc: BlobLocation, *, cache: bool = True) -> bytes:
        """One blob's plaintext from a ranged read of its pack at a known location."""

        def read() -> bytes:
            envelope = self.objects.read_pack(loc.pack_id, ByteRange(loc.offset, loc.length))
            if len(envelope) != loc.length:
                raise IntegrityError(f"pack {loc.pack_id[:12]} is truncated")
            return envelope

        plain = self._decode(loc, read)
        if cache:
            self.cache.put(loc.id, plain)
        return plain

    # --- snapshots -------------------------------------------------------------

    def snapshot_ids(self) -> list[str]:
        """Every stored snapshot object (committed or not)."""
        return self.objects.snapshot_ids()

    def load_snapshot(self, sid: str) -> Snapshot:
        """One snapshot object: checked against its name, decrypted, parsed."""
        plain = self._open_named(layout.snapshot_key(sid), sid, self.objects.read_snapshot,
                                 AAD_SNAPSHOT)
        return Snapshot.decode(plain, sid)

    def seal_snapshot(self, snap: Snapshot) -> tuple[str, bytes]:
        """Encrypt a snapshot; its id is known before it is written."""
        data = self.crypto.seal(AAD_SNAPSHOT, snap.encode())
        return hashlib.sha256(data).hexdigest(), data

    def commit_snapshot(self, snap: Snapshot, packs: set[str] | list[str],
                        event_for: Callable[[str], Event] | None = None) -> str:
        """Write a snapshot and make it exist: pack list → snapshot object → ledger event.

        The order is docs/format.md §11's: until the event is in the signed
        log, readers do not see the snapshot, so a crash before it leaves only
        garbage that ``prune`` removes. ``event_for(snapshot_id)`` replaces the
        default ``snapshot`` event (``tag`` commits a re-tagged copy with its own).

        Returns:
            The snapshot id (also set on ``snap``).
        """
        sid, sealed = self.seal_snapshot(snap)
        self.objects.write_packlist(sid, packs)
        self.objects.write_snapshot(sid, sealed)
        snap.id = sid
        if event_for is not None:
            event = event_for(sid)
        else:
            event = snapshot_event(
                snapshot_id=sid, snapshot_type=snap.type, parent=snap.parent, base=snap.base,
                snapshot_time=snap.time, hostname=snap.hostname, tags=snap.tags, tree=snap.tree,
                summary=snap.summary, packs_root=snap.packs_root, packs_count=snap.packs_count)
        self.check_lock()
        self.ledger.append([protect_event(event, self.crypto).to_bytes()])
        return sid

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot committed to the ledger and not forgotten, oldest first.

        The ledger says which snapshots exist, not the listing of
        ``snapshots/``: a committed snapshot whose object is missing is an
        IntegrityError naming it, never silently left out (``latest`` would
        otherwise name an older snapshot, and a retention policy would count
        without it).
        """
        with ThreadPoolExecutor(max_workers=8) as pool:
            found = list(pool.map(self._load_committed, sorted(self.committed())))
        snaps = [s for s in found if s is not None]
        return sorted(snaps, key=lambda s: (s.datetime, s.id))

    def _load_committed(self, sid: str) -> Snapshot | None:
        """The snapshot; None only for one a copy of chosen snapshots did not copy."""
        try:
            return self.load_snapshot(sid)
        except ObjectNotFound:
            if (self.objects.is_replica()
                    and not self.store.exists(layout.packlist_key(sid))):
                # `copy SNAPSHOT…` copies the whole ledger and the chosen snapshots'
                # objects; check lists the others as not copied. prune still refuses
                # to run on such a view (ops/view.py), so this hides nothing it could lose.
                return None
            raise IntegrityError(
                f"{layout.snapshot_key(sid)} is missing: snapshot {sid[:12]} is committed to "
                "the ledger (see 'deltavault check'; 'deltavault forget ID' accepts the loss)"
            ) from None

    def uncommitted_snapshot_ids(self) -> list[str]:
        """Snapshot objects without a ledger event (an interrupted backup's)."""
        live = set(self.committed())
        return [i for i in self.snapshot_ids() if i not in live]

    def delete_snapshot_objects(self, sid: str) -> None:
        """Delete a snapshot object and its pack list; missing ones are fine.

        ObjectLocked (retention) propagates: callers decide whether it matters.
        """
        for delete in (self.objects.delete_snapshot, self.objects.delete_packlist):
            with contextlib.suppress(ObjectNotFound):
                delete(sid)

    def forget_superseded(self, sid: str) -> None:
        """Delete a snapshot object another one replaced, where the store allows."""
        if self.store.supports_deletes:
            with contextlib.suppress(ObjectNotFound, BackendError):
                self.objects.delete_snapshot(sid)

    def find_snapshot(self, ref: str, snaps: list[Snapshot] | None = None) -> Snapshot:
        """Resolve ``latest``, ``latest~N``, an id or unique prefix, or a tag (see refs)."""
        if snaps is None and refs.is_full_id(ref) and ref.lower() in self.committed():
            # a full id needs no listing, so one damaged snapshot does not block the others
            return self.load_snapshot(ref.lower())
        return refs.resolve(ref, self.snapshots() if snaps is None else snaps)

    # --- ledger ----------------------------------------------------------------

    @property
    def ledger_client(self) -> LedgerClient:
        """This client's verified view of the log (docs/ledger.md §9.2)."""
        if self._client is None:
            self._client = ledger_client(self.store, self.crypto, self.config.ledger_origin,
                                         self.config.ledger_verifier_key, self.config.id)
        return self._client

    @property
    def ledger(self) -> Ledger:
        """The Merkle log, opened for appending and verified against this client's
        cached state (LedgerError, exit 13, on any mismatch; nothing written)."""
        if self._ledger is None:
            self._ledger = open_ledger(self.store, self.crypto, self.config.ledger_origin,
                                       self.config.ledger_verifier_key, self.ledger_client)
        return self._ledger

    def record(self, etype: str, **fields: Any) -> int:
        """Append one event (private fields committed); returns its index in the log."""
        self.check_lock()
        return self.ledger.append([make_event(etype, self.crypto, **fields)])[0]

    def record_best_effort(self, etype: str, **fields: Any) -> int | None:
        """Append an event for a read-only operation; a read-only store only warns.

        Nothing is recorded in a replica: its ledger must stay a prefix of
        the source's, or the next ``copy`` would find a fork. The lock is not
        checked: the event commits nothing a prune could invalidate, and the
        work it reports was verified as it was done.
        """
        if not self.record_events or self.objects.is_replica():
            return None
        try:
            return self.ledger.append([make_event(etype, self.crypto, **fields)])[0]
        except (PermissionDenied, ObjectLocked) as exc:
            warnings.warn(f"could not record the {etype} event in the ledger: {exc}",
                          stacklevel=2)
            return None

    def live_snapshots(self) -> dict[str, LiveSnapshot]:
        """Live snapshots with ledger index, time and flag, from the verified state
        (brought up to the current checkpoint: only new entries are read)."""
        self.ledger.refresh()
        return dict(self.ledger_client.state.live)

    def committed(self) -> dict[str, Event]:
        """Snapshots that exist: committed to the ledger, not forgotten (verified state)."""
        return {sid: s.event for sid, s in self.live_snapshots().items()}

    # --- locks -----------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, *, exclusive: bool = False) -> Iterator[Lock]:
        """A shared (backup, readers) or exclusive (prune, forget) repository lock.

        Re-entrant: inside a block holding an exclusive lock, or a shared one
        when shared is asked for, the held lock is reused, so an entry point
        and the engine below it can both say what they need. While a lock is
        held every commit point checks it (:meth:`check_lock`).
        """
        held = self._locks[-1] if self._locks else None
        if held is not None and (held.exclusive or not exclusive):
            held.check()
            yield held
            return
        with locked(self.store, self.crypto, exclusive=exclusive,
                    timing=self.lock_timing) as lock:
            self._locks.append(lock)
            try:
                yield lock
            finally:
                self._locks.remove(lock)

    def check_lock(self) -> None:
        """Before a commit point: raise LockLost if a lock this repository holds was lost."""
        for lock in self._locks:
            lock.check()
