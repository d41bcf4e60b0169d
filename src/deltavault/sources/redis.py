"""Redis keyspaces: every key's serialized value (DUMP) and TTL, sorted by key.

Staged layout (the tree of a ``redis:`` snapshot)::

    redis/manifest.json   db, key count per type, server version, time
    redis/keys.dvr        the records, sorted by key

``keys.dvr`` is ``b"DVREDIS1\\n"`` then, per key::

    u32 key length ‖ key ‖ u8 type length ‖ type ‖ i64 PTTL (ms, -1 = none)
    ‖ u32 payload length ‖ DUMP payload          (big-endian)

Keys are listed with SCAN and read with TYPE, PTTL and DUMP in pipelines.
Redis has no read snapshot, so a key changed during the scan is captured as
it was when it was read (each key is itself consistent; a key deleted before
it is read is left out). Sorting by key keeps unchanged keys in unchanged
byte runs, so content-defined chunking deduplicates them.

Restore RESTOREs every key (with its remaining TTL) into an empty database.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO

from deltavault.backup.options import BackupResult
from deltavault.errors import FormatError, UserError
from deltavault.repo.repository import Repository
from deltavault.repo.snapshot import Snapshot, now_rfc3339
from deltavault.sources.base import SourceOptions, backup_staged, require_kind, staging_dir
from deltavault.sources.dsn import redact

KIND = "redis"
MAGIC = b"DVREDIS1\n"
_BATCH = 500


@dataclass(frozen=True)
class KeyRecord:
    """One key as dumped."""

    key: bytes
    type: str
    pttl: int
    payload: bytes


def _client(url: str) -> Any:
    try:
        import redis
    except ImportError as exc:
        raise UserError("the Redis source needs the redis client", hint="pip install redis"
                        ) from exc
    try:
        client = redis.Redis.from_url(url)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise UserError(f"cannot connect to Redis {redact(url)}: {exc}") from exc
    return client


def label_for(client: Any) -> str:
    """``redis:<host>:<port>/<db>``."""
    kw = client.connection_pool.connection_kwargs
    where = kw.get("path") or f"{kw.get('host', 'localhost')}:{kw.get('port', 6379)}"
    return f"{KIND}:{where}/{kw.get('db', 0)}"


def encode_record(r: KeyRecord) -> bytes:
    t = r.type.encode()
    return b"".join((struct.pack(">I", len(r.key)), r.key, struct.pack(">B", len(t)), t,
                     struct.pack(">qI", r.pttl, len(r.payload)), r.payload))


def read_records(f: BinaryIO) -> Iterator[KeyRecord]:
    """Decode ``keys.dvr``.

    Raises:
        FormatError: a bad magic or a truncated record.
    """
    if f.read(len(MAGIC)) != MAGIC:
        raise FormatError("not a deltavault Redis dump (bad magic)")

    def take(n: int) -> bytes:
        data = f.read(n)
        if len(data) != n:
            raise FormatError("truncated Redis dump record")
        return data

    while head := f.read(4):
        if len(head) != 4:
            raise FormatError("truncated Redis dump record")
        key = take(struct.unpack(">I", head)[0])
        kind = take(take(1)[0]).decode()
        pttl, n = struct.unpack(">qI", take(12))
        yield KeyRecord(key, kind, pttl, take(n))


def _dump_all(client: Any) -> list[KeyRecord]:
    keys = sorted(set(client.scan_iter(count=1000)))
    out: list[KeyRecord] = []
    for i in range(0, len(keys), _BATCH):
        batch = keys[i : i + _BATCH]
        pipe = client.pipeline(transaction=False)
        for k in batch:
            pipe.type(k)
            pipe.pttl(k)
            pipe.dump(k)
        replies = pipe.execute()
        for j, k in enumerate(batch):
            kind, pttl, payload = replies[3 * j : 3 * j + 3]
            if payload is None or pttl == -2:
                continue  # deleted or expired since SCAN listed it
            out.append(KeyRecord(k, kind.decode() if isinstance(kind, bytes) else str(kind),
                                 int(pttl), bytes(payload)))
    return out


def stage_redis(client: Any, root: Path) -> dict[str, Any]:
    """Write the staged layout below ``root``; returns the manifest."""
    root.mkdir(parents=True)
    started = now_rfc3339()
    records = _dump_all(client)
    with (root / "keys.dvr").open("wb") as f:
        f.write(MAGIC)
        for r in records:
            f.write(encode_record(r))
    types: dict[str, int] = {}
    for r in records:
        types[r.type] = types.get(r.type, 0) + 1
    info = client.info("server")
    db = client.connection_pool.connection_kwargs.get("db", 0)
    manifest = {"v": 1, "time": started, "db": db,
                "keys": len(records), "types": types,
                "server_version": info.get("redis_version", "")}
    (root / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def backup_redis(repo: Repository, url: str, opts: SourceOptions | None = None) -> BackupResult:
    """Snapshot every key of one Redis database. The caller holds the repository lock."""
    client = _client(url)
    try:
        def stage(tmp: Path) -> Path:
            stage_redis(client, tmp / KIND)
            return tmp / KIND

        return backup_staged(repo, label_for(client), stage, opts or SourceOptions(), KIND)
    finally:
        client.close()


@dataclass
class RedisRestoreResult:
    """What was loaded."""

    keys: int
    expired: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def restore_redis(repo: Repository, snap: Snapshot, url: str, *, force: bool = False
                  ) -> RedisRestoreResult:
    """RESTORE every key of a ``redis:`` snapshot into an empty database (``force``: replace).

    Raises:
        UserError: the database holds keys and ``force`` is not set.
        FormatError: the staged dump is malformed.
    """
    from deltavault.sources.base import restore_into

    require_kind(snap, KIND)
    client = _client(url)
    loaded = expired = 0
    try:
        if client.dbsize() and not force:
            raise UserError(f"Redis database {label_for(client)} is not empty",
                            hint="use --force to replace existing keys")
        with staging_dir("redis-restore") as tmp:
            restore_into(repo, snap, tmp)
            with (tmp / KIND / "keys.dvr").open("rb") as f:
                pipe = client.pipeline(transaction=False)
                for n, r in enumerate(read_records(f), 1):
                    if r.pttl == 0:
                        expired += 1
                        continue
                    pipe.restore(r.key, max(r.pttl, 0), r.payload, replace=force)
                    loaded += 1
                    if n % _BATCH == 0:
                        pipe.execute()
                pipe.execute()
        repo.record_best_effort("restore", snapshot=snap.id, target=label_for(client),
                                source=KIND)
    finally:
        client.close()
    return RedisRestoreResult(loaded, expired)
