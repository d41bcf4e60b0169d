"""Back up Python objects directly, and load them back as the same objects.

Each object is written as a file whose format the chunkers and codecs
understand, so delta backups of slowly changing model state stay small:

* ``numpy.ndarray`` → ``<name>.npy`` (element-aligned chunks, float XOR and
  integer delta codecs); dtype, shape, memory order and every bit (NaN
  payloads, -0.0) come back unchanged. Object arrays are refused (they would
  need pickle).
* ``dict`` / ``list`` (of JSON values) → ``<name>.json``, one canonical
  spelling (sorted keys, no spaces, UTF-8, Python's shortest round-trip
  floats, so ``1.0`` stays a float and ``1`` an int). Tuples come back as
  lists; NaN and infinities are refused.
* ``pyarrow.Table`` and ``pandas.DataFrame`` → ``<name>.arrow`` (Arrow IPC
  file), only when pyarrow is installed.

A manifest ``_objects.json`` maps names to kinds. The snapshot's label is
``objects:<collection>``, so successive snapshots of one collection form a
lineage and incr/diff snapshots store only changed chunks::

    from deltavault.sources import objects
    objects.backup_objects(repo, {"weights": w, "params": {"lr": 0.01}}, tags=["eod"])
    state = objects.load_objects(repo, "latest")
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from deltavault.backup.options import BackupResult
from deltavault.errors import FormatError, UserError
from deltavault.ledger.events import canonical_json
from deltavault.repo.repository import Repository
from deltavault.sources.base import (
    SourceOptions,
    backup_staged,
    list_files,
    read_file,
    require_kind,
)

__all__ = ["MANIFEST", "backup_objects", "load_objects"]

MANIFEST = "_objects.json"
KIND = "objects"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")


def _encode(name: str, obj: Any) -> tuple[str, str, bytes]:
    """(kind, file name, bytes) of one object."""
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject:
            raise UserError(f"object {name!r}: arrays of Python objects cannot be stored "
                            "without pickle")
        buf = io.BytesIO()
        np.save(buf, obj, allow_pickle=False)
        return "ndarray", f"{name}.npy", buf.getvalue()
    if isinstance(obj, (dict, list, tuple)):
        return "json", f"{name}.json", _json_bytes(name, obj)
    arrow = _arrow_bytes(obj)
    if arrow is not None:
        return arrow[0], f"{name}.arrow", arrow[1]
    raise UserError(f"object {name!r}: cannot store a {type(obj).__name__} (numpy arrays, "
                    "dicts and lists; Arrow tables and DataFrames with pyarrow installed)")


def _json_bytes(name: str, obj: Any) -> bytes:
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise UserError(f"object {name!r} is not JSON-representable: {exc}") from exc
    return text.encode("utf-8")


def _arrow_bytes(obj: Any) -> tuple[str, bytes] | None:
    try:
        import pyarrow as pa  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    kind = "arrow"
    if type(obj).__name__ == "DataFrame" and type(obj).__module__.startswith("pandas"):
        obj, kind = pa.Table.from_pandas(obj), "dataframe"
    if not isinstance(obj, pa.Table):
        return None
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, obj.schema) as writer:
        writer.write_table(obj)
    return kind, bytes(sink.getvalue())


def _decode(kind: str, name: str, data: bytes) -> Any:
    if kind == "ndarray":
        try:
            return np.load(io.BytesIO(data), allow_pickle=False)
        except ValueError as exc:
            raise FormatError(f"object {name!r}: not a valid .npy file: {exc}") from exc
    if kind == "json":
        return json.loads(data)
    if kind in ("arrow", "dataframe"):
        try:
            import pyarrow as pa
        except ImportError as exc:
            raise UserError(f"object {name!r} is an Arrow table: install pyarrow to load "
                            "it") from exc
        table = pa.ipc.open_file(pa.BufferReader(data)).read_all()
        return table.to_pandas() if kind == "dataframe" else table
    raise FormatError(f"object {name!r} has unknown kind {kind!r}")


def backup_objects(repo: Repository, objects: Mapping[str, Any], *, collection: str = "default",
                   tags: Sequence[str] = (), snapshot_type: str = "incr",
                   hostname: str = "") -> BackupResult:
    """Snapshot named objects as the collection ``objects:<collection>``.

    Args:
        repo: an open repository (the shared lock is taken here).
        objects: name → object; names are ``[A-Za-z0-9][A-Za-z0-9._-]*``.
        collection: the lineage name; incr/diff snapshots refer to the
            previous/last full snapshot of the same collection.

    Raises:
        UserError: a bad name or an object of a type that cannot be stored.
    """
    if not _NAME.fullmatch(collection):
        raise UserError(f"bad collection name {collection!r}")
    encoded: dict[str, tuple[str, str, bytes]] = {}
    for name, obj in objects.items():
        if not isinstance(name, str) or not _NAME.fullmatch(name) or name.startswith("_"):
            raise UserError(f"bad object name {name!r} (letters, digits, '.', '_', '-')")
        encoded[name] = _encode(name, obj)
    files = {f for _k, f, _d in encoded.values()}
    if len(files) != len(encoded):
        raise UserError("two objects map to the same file name")

    def stage(tmp: Path) -> Path:
        root = tmp / collection
        root.mkdir()
        for _kind, fname, data in encoded.values():
            (root / fname).write_bytes(data)
        manifest = {"objects": {n: {"file": f, "kind": k} for n, (k, f, _d) in encoded.items()},
                    "v": 1}
        (root / MANIFEST).write_bytes(canonical_json(manifest))
        return root

    opts = SourceOptions(snapshot_type=snapshot_type, tags=list(tags), hostname=hostname)
    with repo.lock():
        return backup_staged(repo, f"{KIND}:{collection}", stage, opts, KIND)


def load_objects(repo: Repository, snapshot: str = "latest",
                 names: Sequence[str] | None = None) -> dict[str, Any]:
    """The objects of an ``objects:`` snapshot (id, prefix, ``latest``), in memory.

    ``latest`` means the newest objects snapshot. Every blob is verified
    against its id as it is read.
    """
    if snapshot == "latest":
        snaps = [s for s in repo.snapshots() if s.paths and s.paths[0].startswith(f"{KIND}:")]
        if not snaps:
            raise UserError("the repository holds no objects snapshot")
        snap = snaps[-1]
    else:
        snap = repo.find_snapshot(snapshot)
    require_kind(snap, KIND)
    top = next((f.split("/")[0] for f in list_files(repo, snap) if f.endswith(MANIFEST)), None)
    if top is None:
        raise FormatError(f"snapshot {snap.id[:12]} has no {MANIFEST}")
    manifest = json.loads(read_file(repo, snap, f"{top}/{MANIFEST}"))
    entries: dict[str, dict[str, str]] = manifest["objects"]
    wanted = list(entries) if names is None else list(names)
    out: dict[str, Any] = {}
    for name in wanted:
        if name not in entries:
            raise UserError(f"snapshot {snap.id[:12]} has no object {name!r}")
        e = entries[name]
        out[name] = _decode(e["kind"], name, read_file(repo, snap, f"{top}/{e['file']}"))
    return out
