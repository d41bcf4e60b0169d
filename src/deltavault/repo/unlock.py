"""Unlock a repository: read its config and find the key file the password opens.

Kept apart from :mod:`deltavault.repo.repository` so that the console script
derives the key (Argon2id: 64 MiB by default) before it imports the ledger,
the index and the codecs: that memory is returned to the system before those
modules and the data path add theirs, so it does not stack on them in the
command's peak (issue 14; measured in docs/benchmark.md). This module imports
only the store, the config and the key-file code.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from deltavault.errors import FormatError, ObjectNotFound, RepositoryNotFound, WrongPassword
from deltavault.repo import layout
from deltavault.repo.config import Config, parse_config, verify_config_mac
from deltavault.repo.crypto import Crypto
from deltavault.repo.keys import KeyFile, key_id_of, parse_key_file, unwrap
from deltavault.store.base import Store


@dataclass(frozen=True)
class Unlocked:
    """A verified config and the master key one key file gave for the password."""

    config: Config
    crypto: Crypto
    key_id: str


def unlock(store: Store, password: bytes) -> Unlocked:
    """Verify the config with the key the password unwraps; WrongPassword if none does."""
    try:
        raw = store.get(layout.CONFIG_KEY)
    except ObjectNotFound as exc:
        raise RepositoryNotFound(f"no repository at {store.location()}") from exc
    config, mac = parse_config(raw)
    unreadable: list[str] = []
    for kf in key_files(store, unreadable):
        master = unwrap(kf, password, config.id)
        if master is not None:
            crypto = Crypto(master)
            verify_config_mac(config, mac, crypto)
            return Unlocked(config, crypto, kf.id)
    # the password may be right and its key file damaged: say which files were skipped
    damaged = f"; damaged key file(s) skipped: {', '.join(unreadable)}" if unreadable else ""
    raise WrongPassword(f"wrong password for the repository at {store.location()}{damaged}")


def key_files(store: Store, unreadable: list[str] | None = None) -> Iterator[KeyFile]:
    """Every readable key file; the keys of the others are added to ``unreadable``."""
    for info in sorted(store.list(layout.KEY_PREFIX), key=lambda i: i.key):
        kid = layout.name_of(info.key)
        try:
            data = store.get(info.key)
            if key_id_of(data) != kid:
                raise FormatError(f"{info.key} does not match its name")
            yield parse_key_file(data, kid)
        except FormatError:
            if unreadable is not None:
                unreadable.append(info.key)
        except ObjectNotFound:
            continue
