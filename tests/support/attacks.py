"""What a storage attacker does to one kind of object, and how the test undoes it.

The attacker has write access to the store (and, for the ``cache`` kind, to
the client's cache directory) and no password: delete, truncate, flip one
byte, replace with an older version, swap two objects of the same kind, add
a junk object beside the real ones, and forge a well-formed object. Forging
needs no key where the format is plaintext: a ledger rewritten with valid
events (bundles; bundles + the tiles recomputed; + a checkpoint signed by
the attacker; + a config naming the attacker's key), a pack list that
leaves a pack out, a cache state whose body was edited. Encrypted objects
(keys, index, packs, snapshots, journal, locks) cannot be forged without
the master key: that cell is not applicable.

Every attack returns the :class:`Change` list that :func:`undo` puts back.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deltavault.ledger.events import canonical_json
from deltavault.ledger.merkle import leaf_hash, tree_hash
from deltavault.ledger.note import Checkpoint, NoteSigner, sign_checkpoint
from deltavault.ledger.tiles import (
    TILE_WIDTH,
    build_tiles,
    bundle_key,
    encode_bundle,
    encode_tile,
    parse_bundle,
)
from tests.support.attack_repo import Pristine, state_file

ATTACKS = ("delete", "truncate", "flip", "older", "swap", "junk", "forge")
KINDS = ("config", "keys", "index", "pack", "snapshot", "packlist", "checkpoint", "tile",
         "bundle", "journal", "lock", "cache")
#: (kind, attack) cells that do not exist, and why (documented in the matrix)
NOT_APPLICABLE = {
    ("config", "older"): "config is written once: there is no older version",
    ("config", "swap"): "a repository has one config",
    ("checkpoint", "swap"): "a repository has one checkpoint",
    ("cache", "swap"): "a client keeps one ledger state per repository location",
    **{(k, "junk"): "there is one such object: a second one cannot be added beside it"
       for k in ("config", "checkpoint", "cache")},
    **{(k, "forge"): "encrypted and authenticated: a well-formed forgery needs the master key"
       for k in ("keys", "index", "pack", "snapshot", "journal", "lock")},
}
CELLS = [(k, a) for k in KINDS for a in ATTACKS if (k, a) not in NOT_APPLICABLE]


@dataclass
class Change:
    """One file the attack changed: its bytes before (pristine) and after (attacked)."""

    key: str  #: store key, or ``cache`` for the client's ledger state file
    path: Path
    before: bytes | None
    after: bytes | None


def _read(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def _write(path: Path, data: bytes | None) -> None:
    if data is None:
        path.unlink(missing_ok=True)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def _set(changes: list[Change], key: str, path: Path, data: bytes | None) -> None:
    changes.append(Change(key, path, _read(path), data))
    _write(path, data)


def flip_position(kind: str, size: int) -> int:
    """Which byte to flip: one a command must read.

    The newest entries of a bundle and the newest hashes of a tile are the
    ones the client has not verified yet (its cache is behind); elsewhere the
    middle of the object.
    """
    if kind == "bundle":
        return size - 20
    if kind == "tile":
        return size - 5
    return size // 2


def apply(attack: str, kind: str, repo: Path, cache: Path, p: Pristine) -> list[Change]:
    """Apply one attack to one kind of object of the trial's repository (or cache)."""
    objects = p.kinds[kind]
    key = objects.target
    path = state_file(cache) if kind == "cache" else repo / key
    data = path.read_bytes()
    changes: list[Change] = []
    if attack == "delete":
        _set(changes, key, path, None)
    elif attack == "truncate":
        _set(changes, key, path, data[: len(data) // 2])
    elif attack == "flip":
        pos = flip_position(kind, len(data))
        _set(changes, key, path, data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1:])
    elif attack == "older":
        assert objects.older is not None
        older = objects.older.read_bytes()
        assert older != data, f"{kind}: the older version is the same object"
        _set(changes, key, path, older)
    elif attack == "swap":
        assert objects.partner is not None
        other = repo / objects.partner
        other_data = other.read_bytes()
        _set(changes, key, path, other_data)
        _set(changes, objects.partner, other, data)
    elif attack == "junk":
        junk = junk_key(kind, key)
        _set(changes, junk, repo / junk, hashlib.sha256(junk.encode()).digest() * 7)
    elif attack == "forge":
        FORGERS[kind](changes, repo, path, p)
    else:
        raise ValueError(attack)
    assert changes and all(c.before != c.after for c in changes), (kind, attack)
    return changes


def junk_key(kind: str, target: str) -> str:
    """A new object of the kind, named like its real ones, where every lister looks.

    Hash-named kinds get a well-formed name that nothing references; ledger
    tiles and bundles a tile index past the end of the log.
    """
    name = hashlib.sha256(f"junk {kind}".encode()).hexdigest()
    if kind in ("tile", "bundle"):
        return target.split(".p/")[0].rsplit("/", 1)[0] + "/x001/234"
    if kind == "pack":
        return f"data/{name[:2]}/{name}"
    return f"{target.rsplit('/', 1)[0]}/{name}"


def undo(changes: list[Change]) -> list[str]:
    """Put back every changed file that still holds the attacked bytes.

    Returns the keys left alone because a command changed them since (undoing
    those would itself be an attack, e.g. rolling back a checkpoint).
    """
    left = []
    for c in reversed(changes):
        if _read(c.path) == c.after:
            _write(c.path, c.before)
        else:
            left.append(c.key)
    return left


# --- forgeries -------------------------------------------------------------------------


def _entries(repo: Path, size: int) -> list[bytes]:
    out: list[bytes] = []
    for i in range(size // TILE_WIDTH):
        out += parse_bundle((repo / bundle_key(i)).read_bytes())
    if size % TILE_WIDTH:
        out += parse_bundle((repo / bundle_key(size // TILE_WIDTH, size % TILE_WIDTH))
                            .read_bytes())
    assert len(out) == size
    return out


def forged_entries(entries: list[bytes], p: Pristine) -> list[bytes]:
    """The log as the attacker wants it: S1 and S3 forgotten, S4 resurrected.

    Each forged entry is a valid, canonical event with the original's time:
    only the tiles, the checkpoint signature and the client's memory of the
    log can tell it was never signed.
    """
    out = list(entries)

    def time_of(i: int) -> str:
        return str(json.loads(entries[i])["time"])

    for name in ("S1", "S3"):
        i = p.entry_of[name]
        out[i] = canonical_json({"reason": "", "snapshots": [p.ids[name]], "time": time_of(i),
                                 "type": "forget"})
    i = p.entry_of["forget-S4"]
    out[i] = canonical_json({"errors": 0, "ok": True, "time": time_of(i), "type": "check"})
    return out


def _forge_log(changes: list[Change], repo: Path, p: Pristine, *, tiles: bool,
               checkpoint: bool) -> NoteSigner:
    """Rewrite the bundles (and the tiles, and the checkpoint) for the forged entries."""
    size = p.ledger_size
    entries = _entries(repo, size)
    forged = forged_entries(entries, p)
    for i in range(0, size, TILE_WIDTH):
        chunk = forged[i: i + TILE_WIDTH]
        if chunk != entries[i: i + TILE_WIDTH]:
            key = bundle_key(i // TILE_WIDTH, len(chunk))
            _set(changes, key, repo / key, encode_bundle(chunk))
    leaves = [leaf_hash(e) for e in forged]
    if tiles:
        for tile in build_tiles(0, {}, leaves):
            data = encode_tile(tile.hashes)
            if (repo / tile.key).read_bytes() != data:
                _set(changes, tile.key, repo / tile.key, data)
    origin = (repo / "ledger/checkpoint").read_bytes().split(b"\n", 1)[0].decode()
    attacker = NoteSigner(origin, Ed25519PrivateKey.generate())
    if checkpoint:
        note = sign_checkpoint(Checkpoint(origin, size, tree_hash(leaves)), attacker)
        _set(changes, "ledger/checkpoint", repo / "ledger/checkpoint", note.to_bytes())
    return attacker


def _forge_bundle(changes: list[Change], repo: Path, path: Path, p: Pristine) -> None:
    _forge_log(changes, repo, p, tiles=False, checkpoint=False)


def _forge_tile(changes: list[Change], repo: Path, path: Path, p: Pristine) -> None:
    _forge_log(changes, repo, p, tiles=True, checkpoint=False)


def _forge_checkpoint(changes: list[Change], repo: Path, path: Path, p: Pristine) -> None:
    _forge_log(changes, repo, p, tiles=True, checkpoint=True)


def _forge_config(changes: list[Change], repo: Path, path: Path, p: Pristine) -> None:
    """The whole forged log, and a config naming the attacker's key (its MAC cannot follow)."""
    attacker = _forge_log(changes, repo, p, tiles=True, checkpoint=True)
    config = json.loads(path.read_bytes())
    config["ledger"]["verifier_key"] = attacker.verifier.vkey()
    _set(changes, "config", path, canonical_json(config))


def _forge_packlist(changes: list[Change], repo: Path, path: Path, p: Pristine) -> None:
    """A well-formed pack list that leaves out the full snapshot's pack (a delta base)."""
    lines = path.read_text().splitlines()
    s1_pack = p.kinds["pack"].partner
    assert s1_pack is not None
    kept = [x for x in lines[1:] if x != s1_pack.rsplit("/", 1)[1]]
    assert len(kept) == len(lines) - 2
    _set(changes, p.kinds["packlist"].target, path,
         "\n".join([lines[0], *kept]).encode() + b"\n")


def _forge_cache(changes: list[Change], repo: Path, path: Path, p: Pristine) -> None:
    """The client's state with S1 moved from live to forgotten; the MAC line kept."""
    data = path.read_bytes()
    head, _sep, body = data.rpartition(b"\n")
    state = json.loads(body)
    s1 = p.ids["S1"]
    index = state["live"].pop(s1)["index"]
    state["forgotten"][s1] = index
    new_body = json.dumps(state, sort_keys=True, separators=(",", ":")).encode()
    _set(changes, "cache", path, head + b"\n" + new_body)


FORGERS: dict[str, Callable[[list[Change], Path, Path, Pristine], None]] = {
    "bundle": _forge_bundle, "tile": _forge_tile, "checkpoint": _forge_checkpoint,
    "config": _forge_config, "packlist": _forge_packlist, "cache": _forge_cache,
}
