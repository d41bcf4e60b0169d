"""Open, create and read a repository: keys, config, objects, index, snapshots.

This is the one place that knows how objects are named, encrypted and
verified. Higher layers (backup, restore, check) call it; it never walks
file systems or talks to the user.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from deltavault.codec.registry import decode as codec_decode
from deltavault.errors import (
    BackendError,
    FormatError,
    IntegrityError,
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    PermissionDenied,
    RepositoryError,
    RepositoryNotFound,
    SnapshotNotFound,
    UserError,
    WrongPassword,
)
from deltavault.ledger.events import Event
from deltavault.ledger.log import Ledger
from deltavault.repo.config import (
    CONFIG_KEY,
    ChunkerParams,
    Config,
    parse_config,
    verify_config_mac,
)
from deltavault.repo.crypto import AAD_INDEX, AAD_SNAPSHOT, Crypto, MasterKey
from deltavault.repo.index import BlobLocation, IndexFile, MasterIndex
from deltavault.repo.keys import (
    KEY_PREFIX,
    KdfParams,
    KeyFile,
    key_id_of,
    make_key_file,
    parse_key_file,
    unwrap,
)
from deltavault.repo.ledger_link import (
    committed_snapshots,
    make_event,
    new_ledger_key,
    open_ledger,
)
from deltavault.repo.locks import Lock, locked
from deltavault.repo.packs import pack_key
from deltavault.repo.snapshot import Snapshot, now_rfc3339
from deltavault.store.base import ByteRange, Store

INDEX_PREFIX = "index/"
SNAPSHOT_PREFIX = "snapshots/"
PACKLIST_PREFIX = "packlists/"
#: Plaintext marker ``copy`` writes into a replica (docs/backends.md "Replicas").
REPLICA_KEY = "replica"
_CACHE_BYTES = 32 * 1024 * 1024


class BlobCache:
    """A small LRU of decoded blobs (trees and delta bases are read often)."""

    def __init__(self, max_bytes: int = _CACHE_BYTES) -> None:
        self._items: OrderedDict[bytes, bytes] = OrderedDict()
        self._size = 0
        self._max = max_bytes
        self._lock = threading.Lock()

    def get(self, key: bytes) -> bytes | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: bytes, value: bytes) -> None:
        if len(value) > self._max // 4:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = value
            self._size += len(value)
            while self._size > self._max:
                _, old = self._items.popitem(last=False)
                self._size -= len(old)


class Repository:
    """An opened repository: decrypted keys, config and the blob index."""

    def __init__(self, store: Store, config: Config, crypto: Crypto, key_id: str) -> None:
        self.store = store
        self.config = config
        self.crypto = crypto
        self.key_id = key_id
        self.index = MasterIndex()
        self.cache = BlobCache()
        self._index_loaded = False
        self._ledger: Ledger | None = None
        self._committed: tuple[tuple[int, bytes], dict[str, Event]] | None = None
        self._depths: dict[tuple[str, int], int] = {}
        #: whether operations append their events to the ledger
        self.record_events = True

    # --- create and open -------------------------------------------------------

    @classmethod
    def init(cls, store: Store, password: bytes, *, chunker: ChunkerParams | None = None,
             compression_level: int = 3, pack_size: int = 8 * 1024 * 1024,
             max_chain: int = 8, kdf: KdfParams | None = None) -> Repository:
        """Create a new repository in an empty store."""
        if store.exists(CONFIG_KEY):
            raise UserError(f"a repository already exists at {store.location()}")
        if not password:
            raise UserError("an empty password is not allowed")
        master = MasterKey.generate()
        crypto = Crypto(master)
        repo_id = hashlib.sha256(master.secret + b"id").hexdigest()
        config = Config(id=repo_id, created=now_rfc3339(), chunker=chunker or ChunkerParams(),
                        compression_level=compression_level, pack_size=pack_size,
                        max_chain=max_chain, ledger_origin=f"deltavault.local/{repo_id}")
        config.chunker.check()
        kf = make_key_file(master, password, repo_id, kdf or KdfParams.fresh())
        key_id = key_id_of(kf)
        store.put(KEY_PREFIX + key_id, kf)
        repo = cls(store, config, crypto, key_id)
        repo._init_hooks()
        store.put(CONFIG_KEY, repo.config.encode(crypto))
        return repo

    def _init_hooks(self) -> None:
        """Create the ledger signing key before the config (which names it) is written."""
        self.config.ledger_verifier_key = new_ledger_key(self.store, self.crypto,
                                                         self.config.ledger_origin)

    @classmethod
    def open(cls, store: Store, password: bytes) -> Repository:
        """Open with a password; WrongPassword if no key file accepts it."""
        try:
            raw = store.get(CONFIG_KEY)
        except ObjectNotFound as exc:
            raise RepositoryNotFound(f"no repository at {store.location()}") from exc
        config, mac = parse_config(raw)
        for kf in cls._key_files(store):
            master = unwrap(kf, password, config.id)
            if master is not None:
                crypto = Crypto(master)
                verify_config_mac(config, mac, crypto)
                return cls(store, config, crypto, kf.id)
        raise WrongPassword(f"wrong password for the repository at {store.location()}")

    @staticmethod
    def _key_files(store: Store) -> Iterator[KeyFile]:
        for info in sorted(store.list(KEY_PREFIX), key=lambda i: i.key):
            kid = info.key[len(KEY_PREFIX):]
            try:
                data = store.get(info.key)
                if key_id_of(data) != kid:
                    continue
                yield parse_key_file(data, kid)
            except (FormatError, ObjectNotFound):
                continue

    # --- keys ------------------------------------------------------------------

    def list_keys(self) -> list[KeyFile]:
        return list(self._key_files(self.store))

    def add_key(self, password: bytes, kdf: KdfParams | None = None) -> str:
        """Another password for the same master key; returns the new key id."""
        if not password:
            raise UserError("an empty password is not allowed")
        kf = make_key_file(self.crypto.master, password, self.config.id, kdf or KdfParams.fresh())
        kid = key_id_of(kf)
        self.store.put(KEY_PREFIX + kid, kf)
        self.record("key-add", key_id=kid)
        return kid

    def remove_key(self, key_id: str) -> str:
        """Remove a key file by id or unique prefix; never the last one or the one in use."""
        matches = [k.id for k in self.list_keys() if k.id.startswith(key_id)]
        if len(matches) != 1:
            raise UserError(f"key {key_id!r} matches {len(matches)} keys; give a unique prefix")
        if matches[0] == self.key_id:
            raise UserError("refusing to remove the key this session was opened with")
        self.store.delete(KEY_PREFIX + matches[0])
        self.record("key-remove", key_id=matches[0])
        return matches[0]

    def change_password(self, password: bytes) -> tuple[str, str]:
        """Add a key for the new password, then remove the one in use."""
        old = self.key_id
        new = self.add_key(password)
        self.store.delete(KEY_PREFIX + old)
        self.record("key-remove", key_id=old)
        self.key_id = new
        return new, old

    # --- objects ---------------------------------------------------------------

    def save_object(self, prefix: str, aad: bytes, plaintext: bytes) -> str:
        """Encrypt, name by SHA-256 of the stored bytes, write once."""
        data = self.crypto.seal(aad, plaintext)
        oid = hashlib.sha256(data).hexdigest()
        with contextlib.suppress(ObjectExists):
            self.store.put(prefix + oid, data)
        return oid

    def put_once(self, key: str, data: bytes) -> None:
        """Write-once put that accepts an identical existing object (a retry)."""
        try:
            self.store.put(key, data)
        except ObjectExists:
            if self.store.get(key) != data:
                raise

    def load_object(self, prefix: str, oid: str, aad: bytes) -> bytes:
        """Read, check the name against the SHA-256, decrypt."""
        key = prefix + oid
        data = self.store.get(key)
        if hashlib.sha256(data).hexdigest() != oid:
            raise IntegrityError(f"{key}: content does not match its name (SHA-256)")
        return self.crypto.open(aad, data, key)

    # --- index -----------------------------------------------------------------

    def load_index(self, *, force: bool = False) -> MasterIndex:
        """Load every index file into the compact in-memory index."""
        if self._index_loaded and not force:
            return self.index
        ids = [i.key[len(INDEX_PREFIX):] for i in self.store.list(INDEX_PREFIX)]

        def one(iid: str) -> tuple[str, IndexFile] | None:
            try:
                return iid, IndexFile.decode(self.load_object(INDEX_PREFIX, iid, AAD_INDEX),
                                             f"index {iid[:12]}")
            except (IntegrityError, FormatError, ObjectNotFound) as exc:
                # One damaged index must not block every restore: what it named
                # is reported by check (blobs "not in any index") and repairable.
                self.damaged_indexes.append(f"index/{iid}: {exc}")
                warnings.warn(f"skipping damaged index/{iid[:12]}: {exc}", stacklevel=2)
                return None

        self.damaged_indexes: list[str] = []
        with ThreadPoolExecutor(max_workers=8) as pool:
            files = [f for f in pool.map(one, ids) if f is not None]
        self.index = MasterIndex()
        self.index.load(files)
        self._index_loaded = True
        return self.index

    def save_index(self, index_file: IndexFile) -> str:
        return self.save_object(INDEX_PREFIX, AAD_INDEX, index_file.encode())

    # --- blobs -----------------------------------------------------------------

    def locate(self, blob_id: bytes) -> BlobLocation:
        """The blob's location with the shortest delta chain (a blob may be stored twice)."""
        locs = self.index.locations(blob_id)
        if not locs:
            raise RepositoryError(f"blob {blob_id.hex()[:16]} is not in any index")
        if len(locs) == 1:
            return locs[0]
        return min(locs, key=self.depth_of)

    def depth_of(self, loc: BlobLocation) -> int:
        """Delta chain length under a stored blob (0: self-contained; huge: broken)."""
        depth, cur, seen = 0, loc, {loc.id}
        while cur.base is not None:
            cached = self._depths.get((cur.pack_id, cur.offset))
            if cached is not None:
                depth += cached
                break
            locs = self.index.locations(cur.base)
            if not locs or cur.base in seen or depth > 64:
                return 1 << 30  # missing or cyclic base: never build on it
            seen.add(cur.base)
            cur = min(locs, key=lambda x: x.base is not None)
            depth += 1
        if loc.base is not None:
            self._depths[(loc.pack_id, loc.offset)] = depth
        return depth

    def decode_blob(self, loc: BlobLocation, envelope: bytes | memoryview) -> bytes:
        """Decrypt and decode a stored blob (following delta bases); verify its id."""
        payload = self.crypto.open_blob(loc.id, envelope)
        base = self.load_blob(loc.base) if loc.base is not None else None
        plain = codec_decode(loc.codec, payload, base, loc.raw_length)
        if self.crypto.blob_id(plain) != loc.id:
            raise IntegrityError(f"blob {loc.id.hex()[:16]} in pack {loc.pack_id[:12]}: "
                                 "content does not match its id")
        return plain

    def load_blob(self, blob_id: bytes) -> bytes:
        """One blob's plaintext, from the cache or a ranged read of its pack."""
        hit = self.cache.get(blob_id)
        if hit is not None:
            return hit
        loc = self.locate(blob_id)
        envelope = self.store.get(pack_key(loc.pack_id), ByteRange(loc.offset, loc.length))
        if len(envelope) != loc.length:
            raise IntegrityError(f"pack {loc.pack_id[:12]} is truncated")
        plain = self.decode_blob(loc, envelope)
        self.cache.put(blob_id, plain)
        return plain

    # --- snapshots -------------------------------------------------------------

    def snapshot_ids(self) -> list[str]:
        return [i.key[len(SNAPSHOT_PREFIX):] for i in self.store.list(SNAPSHOT_PREFIX)]

    def load_snapshot(self, sid: str) -> Snapshot:
        return Snapshot.decode(self.load_object(SNAPSHOT_PREFIX, sid, AAD_SNAPSHOT), sid)

    def seal_snapshot(self, snap: Snapshot) -> tuple[str, bytes]:
        """Encrypt a snapshot; its id is known before it is written."""
        data = self.crypto.seal(AAD_SNAPSHOT, snap.encode())
        return hashlib.sha256(data).hexdigest(), data

    def put_sealed_snapshot(self, snap: Snapshot, sid: str, data: bytes) -> str:
        with contextlib.suppress(ObjectExists):
            self.store.put(SNAPSHOT_PREFIX + sid, data)
        snap.id = sid
        return sid

    def save_snapshot(self, snap: Snapshot) -> str:
        """Write a snapshot object (no pack list; for rewrites such as tag)."""
        sid, data = self.seal_snapshot(snap)
        return self.put_sealed_snapshot(snap, sid, data)

    def snapshots(self) -> list[Snapshot]:
        """Every snapshot committed to the ledger and not forgotten, oldest first."""
        live = set(self.committed())
        ids = [i for i in self.snapshot_ids() if i in live]
        with ThreadPoolExecutor(max_workers=8) as pool:
            snaps = list(pool.map(self.load_snapshot, ids))
        return sorted(snaps, key=lambda s: (s.datetime, s.id))

    def uncommitted_snapshot_ids(self) -> list[str]:
        """Snapshot objects without a ledger event (an interrupted backup's)."""
        live = set(self.committed())
        return [i for i in self.snapshot_ids() if i not in live]

    def forget_superseded(self, sid: str) -> None:
        """Delete a snapshot object another one replaced, where the store allows."""
        if self.store.supports_deletes:
            with contextlib.suppress(ObjectNotFound, BackendError):
                self.store.delete(SNAPSHOT_PREFIX + sid)

    def find_snapshot(self, ref: str, snaps: list[Snapshot] | None = None) -> Snapshot:
        """Resolve ``latest``, ``latest~N``, an id or unique prefix, or a tag.

        A tag (``tag:NAME``, or any name that is not hex) means the newest
        snapshot carrying it, e.g. ``known-good``.
        """
        if snaps is None and len(ref) == 64 and ref.lower() in self.committed():
            # a full id needs no listing, so one damaged snapshot does not block the others
            return self.load_snapshot(ref.lower())
        snaps = self.snapshots() if snaps is None else snaps
        if not snaps:
            raise SnapshotNotFound("the repository has no snapshots")
        if ref == "latest" or ref.startswith("latest~"):
            back = int(ref[7:]) if ref.startswith("latest~") and ref[7:].isdigit() else 0
            if back >= len(snaps):
                raise SnapshotNotFound(f"no snapshot {ref}: only {len(snaps)} exist")
            return snaps[-1 - back]
        if ref.startswith("tag:") or any(c not in "0123456789abcdefABCDEF" for c in ref):
            tag = ref.removeprefix("tag:")
            tagged = [s for s in snaps if tag in s.tags]
            if not tagged:
                raise SnapshotNotFound(f"no snapshot matches {ref!r}: it is not an id and "
                                       "no snapshot carries that tag",
                                       hint="list them with 'deltavault snapshots'; tag one "
                                            f"with 'deltavault tag SNAPSHOT --add {tag}'")
            return tagged[-1]
        matches = [s for s in snaps if s.id.startswith(ref.lower())]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise SnapshotNotFound(f"no snapshot matches {ref!r}",
                                   hint="list them with 'deltavault snapshots'")
        raise SnapshotNotFound(f"snapshot prefix {ref!r} is ambiguous ({len(matches)} match)")

    # --- ledger ----------------------------------------------------------------

    @property
    def ledger(self) -> Ledger:
        """The repository's Merkle log, opened for appending."""
        if self._ledger is None:
            self._ledger = open_ledger(self.store, self.crypto, self.config.ledger_origin,
                                       self.config.ledger_verifier_key)
        return self._ledger

    def record(self, etype: str, **fields: Any) -> int:
        """Append one event; returns its index in the log."""
        return self.ledger.append([make_event(etype, **fields)])[0]

    def record_best_effort(self, etype: str, **fields: Any) -> int | None:
        """Append an event for a read-only operation; a read-only store only warns.

        Nothing is recorded in a replica: its ledger must stay a prefix of
        the source's, or the next ``copy`` would find a fork.
        """
        if not self.record_events or self.store.exists(REPLICA_KEY):
            return None
        try:
            return self.record(etype, **fields)
        except (PermissionDenied, ObjectLocked) as exc:
            warnings.warn(f"could not record the {etype} event in the ledger: {exc}",
                          stacklevel=2)
            return None

    def committed(self) -> dict[str, Event]:
        """Snapshots that exist: committed to the ledger, not forgotten.

        The scan of the log is remembered per (size, root): a backup asks
        several times (cleanup, lineage) and the answer only changes when the
        log grows.
        """
        self.ledger.refresh()
        key = (self.ledger.size, self.ledger.root)
        if self._committed is None or self._committed[0] != key:
            self._committed = (key, committed_snapshots(self.ledger))
        return dict(self._committed[1])

    # --- locks -----------------------------------------------------------------

    def lock(self, *, exclusive: bool = False) -> contextlib.AbstractContextManager[Lock]:
        return locked(self.store, self.crypto, exclusive=exclusive)
