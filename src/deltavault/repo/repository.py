"""Open, create and read a repository: keys, config, objects, index, snapshots.

This is the one place that knows how objects are named, encrypted and
verified. Higher layers (backup, restore, check) call it; it never walks
file systems or talks to the user.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from deltavault import codec_ids
from deltavault.errors import (
    BackendError,
    FormatError,
    IntegrityError,
    ObjectExists,
    ObjectNotFound,
    RepositoryError,
    RepositoryNotFound,
    SnapshotNotFound,
    UserError,
    WrongPassword,
)
from deltavault.index import BlobLocation, IndexFile, MasterIndex
from deltavault.packs import pack_key
from deltavault.payload import decode_delta, decode_plain
from deltavault.repo.config import (
    CONFIG_KEY,
    ChunkerParams,
    Config,
    parse_config,
    verify_config_mac,
)
from deltavault.repo.crypto import AAD_INDEX, AAD_SNAPSHOT, Crypto, MasterKey
from deltavault.repo.keys import (
    KEY_PREFIX,
    KdfParams,
    KeyFile,
    key_id_of,
    make_key_file,
    parse_key_file,
    unwrap,
)
from deltavault.repo.locks import Lock, locked
from deltavault.snapshot import Snapshot, now_rfc3339
from deltavault.store.base import ByteRange, Store

INDEX_PREFIX = "index/"
SNAPSHOT_PREFIX = "snapshots/"
PACKLIST_PREFIX = "packlists/"
_CACHE_BYTES = 64 * 1024 * 1024


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

    # --- create and open -------------------------------------------------------

    @classmethod
    def init(cls, store: Store, password: bytes, *, chunker: ChunkerParams | None = None,
             compression_level: int = 3, pack_size: int = 16 * 1024 * 1024,
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
        """Extension point run by ``init`` before the config is written."""

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
        return kid

    def remove_key(self, key_id: str) -> str:
        """Remove a key file by id or unique prefix; never the last one or the one in use."""
        matches = [k.id for k in self.list_keys() if k.id.startswith(key_id)]
        if len(matches) != 1:
            raise UserError(f"key {key_id!r} matches {len(matches)} keys; give a unique prefix")
        if matches[0] == self.key_id:
            raise UserError("refusing to remove the key this session was opened with")
        self.store.delete(KEY_PREFIX + matches[0])
        return matches[0]

    # --- objects ---------------------------------------------------------------

    def save_object(self, prefix: str, aad: bytes, plaintext: bytes) -> str:
        """Encrypt, name by SHA-256 of the stored bytes, write once."""
        data = self.crypto.seal(aad, plaintext)
        oid = hashlib.sha256(data).hexdigest()
        with contextlib.suppress(ObjectExists):
            self.store.put(prefix + oid, data)
        return oid

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

        def one(iid: str) -> tuple[str, IndexFile]:
            return iid, IndexFile.decode(self.load_object(INDEX_PREFIX, iid, AAD_INDEX),
                                         f"index {iid[:12]}")

        with ThreadPoolExecutor(max_workers=8) as pool:
            files = list(pool.map(one, ids))
        self.index = MasterIndex()
        self.index.load(files)
        self._index_loaded = True
        return self.index

    def save_index(self, index_file: IndexFile) -> str:
        return self.save_object(INDEX_PREFIX, AAD_INDEX, index_file.encode())

    # --- blobs -----------------------------------------------------------------

    def locate(self, blob_id: bytes) -> BlobLocation:
        loc = self.index.get(blob_id)
        if loc is None:
            raise RepositoryError(f"blob {blob_id.hex()[:16]} is not in any index")
        return loc

    def decode_blob(self, loc: BlobLocation, envelope: bytes) -> bytes:
        """Decrypt and decode a stored blob (following delta bases); verify its id."""
        payload = self.crypto.open_blob(loc.id, envelope)
        if loc.codec in codec_ids.CODECS_WITH_BASE:
            if loc.base is None:
                raise FormatError(f"blob {loc.id.hex()[:16]}: delta without a base")
            plain = decode_delta(loc.codec, payload, self.load_blob(loc.base), loc.raw_length)
        else:
            plain = decode_plain(loc.codec, payload, loc.raw_length)
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
        """Every live snapshot, oldest first (ones superseded by a rewrite hidden)."""
        ids = self.snapshot_ids()
        with ThreadPoolExecutor(max_workers=8) as pool:
            snaps = list(pool.map(self.load_snapshot, ids))
        superseded = {s.original for s in snaps if s.original}
        return sorted((s for s in snaps if s.id not in superseded),
                      key=lambda s: (s.datetime, s.id))

    def forget_superseded(self, sid: str) -> None:
        """Delete a snapshot object another one replaced, where the store allows."""
        if self.store.supports_deletes:
            with contextlib.suppress(ObjectNotFound, BackendError):
                self.store.delete(SNAPSHOT_PREFIX + sid)

    def find_snapshot(self, ref: str, snaps: list[Snapshot] | None = None) -> Snapshot:
        """Resolve ``latest``, ``latest~N``, a full id or a unique id prefix."""
        if snaps is None and len(ref) == 64 and self.store.exists(SNAPSHOT_PREFIX + ref.lower()):
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
        matches = [s for s in snaps if s.id.startswith(ref.lower())]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise SnapshotNotFound(f"no snapshot matches {ref!r}",
                                   hint="list them with 'deltavault snapshots'")
        raise SnapshotNotFound(f"snapshot prefix {ref!r} is ambiguous ({len(matches)} match)")

    # --- locks -----------------------------------------------------------------

    def lock(self, *, exclusive: bool = False) -> contextlib.AbstractContextManager[Lock]:
        return locked(self.store, self.crypto, exclusive=exclusive)
