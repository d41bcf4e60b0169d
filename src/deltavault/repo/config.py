"""The plaintext, MAC-authenticated ``config`` object (docs/format.md §3)."""

from __future__ import annotations

import copy
import hmac
from dataclasses import dataclass, field
from typing import Any

from deltavault.errors import FormatError, IntegrityError
from deltavault.repo.canonical import canonical_json, parse_json_object
from deltavault.repo.canonical import field as req
from deltavault.repo.crypto import Crypto

FORMAT_VERSION = 1


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC sizes; the gear seed is secret and derived from the master key."""

    min_size: int = 256 * 1024
    avg_size: int = 1024 * 1024
    max_size: int = 4 * 1024 * 1024
    normalization: int = 1

    def check(self) -> None:
        if not (64 <= self.min_size <= self.avg_size <= self.max_size <= 64 * 1024 * 1024):
            raise FormatError("config: chunker sizes out of range")
        if self.normalization not in (0, 1, 2, 3):
            raise FormatError("config: chunker normalization must be 0-3")


@dataclass
class Config:
    """Repository parameters every reader and writer must agree on."""

    id: str
    created: str
    chunker: ChunkerParams = field(default_factory=ChunkerParams)
    compression_level: int = 3
    pack_size: int = 8 * 1024 * 1024
    max_chain: int = 8
    ledger_origin: str = ""
    ledger_verifier_key: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    #: the parsed document without "mac", exactly as stored (for MAC checks)
    raw: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The config as a dict without the MAC (unknown fields kept)."""
        d = copy.deepcopy(self.extra)
        d.update({
            "chunker": {
                "algorithm": "fastcdc2020",
                "avg_size": self.chunker.avg_size,
                "max_size": self.chunker.max_size,
                "min_size": self.chunker.min_size,
                "normalization": self.chunker.normalization,
            },
            "compression": {"algorithm": "zstd", "level": self.compression_level},
            "created": self.created,
            "delta": {"max_chain": self.max_chain},
            "id": self.id,
            "ledger": {"origin": self.ledger_origin, "verifier_key": self.ledger_verifier_key},
            "pack_size": self.pack_size,
            "version": FORMAT_VERSION,
        })
        return d

    def encode(self, crypto: Crypto) -> bytes:
        """Canonical JSON with the MAC over everything else."""
        d = self.to_dict()
        d["mac"] = crypto.mac(canonical_json(d))
        return canonical_json(d)


def parse_config(data: bytes) -> tuple[Config, str]:
    """Parse ``config`` (unauthenticated); returns it and the claimed MAC.

    Call :func:`verify_config_mac` once the master key is known.
    """
    what = "config"
    d = parse_json_object(data, what)
    version = req(d, "version", int, what)
    if version != FORMAT_VERSION:
        raise FormatError(f"config: repository format version {version} is not supported")
    mac = req(d, "mac", str, what)
    if len(mac) != 64 or any(c not in "0123456789abcdef" for c in mac):
        raise FormatError("config: mac must be 64 lowercase hex digits")
    ch = req(d, "chunker", dict, what)
    comp = req(d, "compression", dict, what)
    ledger = req(d, "ledger", dict, what)
    delta = req(d, "delta", dict, what)
    rid = req(d, "id", str, what)
    if len(rid) != 64 or any(c not in "0123456789abcdef" for c in rid):
        raise FormatError("config: id must be 64 lowercase hex digits")
    chunker = ChunkerParams(
        min_size=req(ch, "min_size", int, what),
        avg_size=req(ch, "avg_size", int, what),
        max_size=req(ch, "max_size", int, what),
        normalization=req(ch, "normalization", int, what),
    )
    chunker.check()
    level = req(comp, "level", int, what)
    pack_size = req(d, "pack_size", int, what)
    max_chain = req(delta, "max_chain", int, what)
    if not -7 <= level <= 22 or not 1 << 16 <= pack_size <= 1 << 31 or not 0 <= max_chain <= 64:
        raise FormatError("config: compression level, pack size or chain cap out of range")
    known = {"chunker", "compression", "created", "delta", "id", "ledger", "mac", "pack_size",
             "version"}
    cfg = Config(
        id=rid,
        created=str(d.get("created", "")),
        chunker=chunker,
        compression_level=level,
        pack_size=pack_size,
        max_chain=max_chain,
        ledger_origin=str(ledger.get("origin", "")),
        ledger_verifier_key=str(ledger.get("verifier_key", "")),
        extra={k: v for k, v in d.items() if k not in known},
        raw={k: v for k, v in d.items() if k != "mac"},
    )
    return cfg, mac


def verify_config_mac(cfg: Config, mac: str, crypto: Crypto) -> None:
    """Refuse a config changed by someone without the master key."""
    body = cfg.raw if cfg.raw is not None else cfg.to_dict()
    try:
        canonical = canonical_json(body)
    except ValueError as exc:  # NaN, 1e400, ints beyond 2^53: json.loads takes them, JCS not
        raise FormatError(f"config: not expressible as canonical JSON ({exc})") from exc
    expected = crypto.mac(canonical)
    if not hmac.compare_digest(expected, mac):
        raise IntegrityError("config: MAC does not match (the config object was modified)")
