"""The repository a storage attacker works on: built once, copied for every trial.

:func:`build` makes a small repository the way two hosts would, keeping what
an attack needs: copies of the repository and of the client cache at earlier
stages (for "replace with an older version"), the objects of every kind that
committed snapshots need, and the expected tree of every snapshot.

Stages (docs in tests/e2e/test_storage_attacker.py):

* A, by the **client** (the machine whose commands the trials run): ``init``,
  a second password (the one the trials use), a full backup tagged
  ``known-good`` (S1), 300 journal records (so the log has a full tile), a
  stale lock L1.
* B, by the client: a diff backup (S2), ``tag S2 --add reviewed`` (S2').
  The client's cache is kept here: the trials' client last saw the log at B.
* C, by **another host**: an incr backup (S3), 5 journal records, a full backup
  of other data (S4) and ``forget S4`` (so ``prune`` has a pack to free), a
  stale lock L2. Its cache (it saw C) is what the final check opens with, so a
  log rolled back below C is refused there.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from deltavault import api
from deltavault.ledger.journal import Journal
from deltavault.repo.canonical import pack_msgpack
from deltavault.repo.crypto import AAD_LOCK
from deltavault.repo.keys import KdfParams
from deltavault.repo.repository import Repository
from tests.support.cli import KDF, PASSWORD
from tests.support.indexes import cache_dir
from tests.support.trees import Entry, manifest, write_random

#: the password the client's first key was made with; the trials use PASSWORD (the second)
FIRST_PASSWORD = b"first password of the storage attacker's repository"
JOURNAL_RECORDS = 300  # > 256: the log gets a full level-0 tile and a level-1 tile
STATE_PREFIX = "ledger-state-"


@dataclass
class Objects:
    """The objects of one kind an attack uses: its target, an older one, a swap partner.

    ``older`` is a path whose bytes replace the target in the "older version"
    attack; ``partner`` the key swapped with the target. None: not applicable.
    """

    target: str
    older: Path | None = None
    partner: str | None = None


@dataclass
class Pristine:
    """A repository and everything the trials compare against."""

    root: Path
    repo: Path
    src: Path  #: the backed-up tree, now at the state a trial's backup takes
    password_file: Path
    client_cache: Path  #: the client's cache (it saw stage B), keyed for ``repo``
    other_cache: Path  #: the other host's cache (it saw stage C)
    verifier: str
    ledger_size: int
    live: list[str]  #: committed, not forgotten: S1, S2', S3 (oldest first)
    tags: dict[str, list[str]]
    trees: dict[str, dict[bytes, Entry]]  #: expected restore of each live snapshot
    next_tree: dict[bytes, Entry]  #: what a backup of ``src`` must restore to
    policy_forgets: str  #: the one snapshot ``forget --keep-last 1 --keep-tag known-good`` drops
    prunable: set[str]  #: keys prune may delete (the forgotten S4's packs)
    #: keys ``forget --prune`` may delete besides: the policy's snapshot, its pack list and
    #: the packs only it needs
    forget_frees: set[str]
    needed: set[str]  #: keys a committed snapshot needs (never deleted or changed)
    ids: dict[str, str] = field(default_factory=dict)  #: S1, S2, S3, S4 → id
    entry_of: dict[str, int] = field(default_factory=dict)  #: S1, S3, forget-S4 → log index
    kinds: dict[str, Objects] = field(default_factory=dict)


def state_name(repo: Path) -> str:
    """The file name of the verified ledger state a client keeps for the store at ``repo``."""
    location = api.open_store(repo).location()
    digest = hashlib.sha256(location.encode("utf-8", "surrogateescape")).hexdigest()
    return STATE_PREFIX + digest[:16]


def copy_cache(src: Path, dst: Path, repo: Path) -> None:
    """Copy a client cache, re-keying its ledger state files for the store at ``repo``.

    The state is kept per store location; a trial's copy of the repository
    lives elsewhere, and a client that moved its repository would do the same.
    """
    shutil.copytree(src, dst)
    for state in dst.glob(f"*/{STATE_PREFIX}*"):
        state.rename(state.with_name(state_name(repo)))


def state_file(cache: Path) -> Path:
    """The one ledger state file in a client cache."""
    files = sorted(cache.glob(f"*/{STATE_PREFIX}*"))
    assert len(files) == 1, files
    return files[0]


def listing(repo: Path) -> dict[str, bytes]:
    """Every object of a local store, key → bytes (backend temporaries left out)."""
    out = {}
    for dirpath, _dirs, names in os.walk(repo):
        for name in names:
            p = Path(dirpath) / name
            key = p.relative_to(repo).as_posix()
            if key.startswith(("tmp/", ".")) or "/." in key:
                continue
            out[key] = p.read_bytes()
    return out


def _added(before: dict[str, bytes], after: dict[str, bytes], prefix: str) -> list[str]:
    return sorted(k for k in after.keys() - before.keys() if k.startswith(prefix))


def _stale_lock(repo: Repository, path: Path, key: str) -> None:
    """Plant a lock of a process that is gone, last refreshed two hours ago."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    then = datetime.now(UTC) - timedelta(hours=2)
    doc = {"time": then.isoformat(), "exclusive": False, "hostname": os.uname().nodename,
           "pid": proc.pid, "username": "attacker-test"}
    repo.store.put(key, repo.crypto.seal(AAD_LOCK, pack_msgpack(doc)))
    os.utime(path / key, (then.timestamp(), then.timestamp()))


def _mutate(src: Path, step: int) -> dict[bytes, Entry]:
    """Change the source tree for the next backup; returns its new manifest."""
    (src / "notes.txt").write_text(f"state {step}\n" * (step + 1))
    write_random(src / f"book{step % 3}.bin", 120_000 + step * 1000, 100 + step)
    time.sleep(0.01)  # distinct mtimes
    return manifest(src)


def build(root: Path) -> Pristine:
    """Build the stages A, B, C (see the module docstring) under ``root``."""
    repo_path, src, other_src = root / "repo", root / "src", root / "other"
    client, client_a, other = root / "cache-client", root / "cache-client-a", root / "cache-other"
    password_file = root / "password"
    password_file.write_text(PASSWORD + "\n")
    for d in (src, other_src):
        d.mkdir(parents=True)
    for i in range(3):
        write_random(src / f"book{i}.bin", 150_000, i)
    write_random(other_src / "other.bin", 200_000, 99)
    ids: dict[str, str] = {}
    trees: dict[str, dict[bytes, Entry]] = {}
    stage: dict[str, dict[str, bytes]] = {}

    with cache_dir(client):  # --- stage A, the client ---
        first = api.init(repo_path, FIRST_PASSWORD, **KDF)  # type: ignore[arg-type]
        first.add_key(PASSWORD.encode(), KdfParams.fresh(memory_kib=KDF["kdf_memory_kib"],
                                                         time_cost=KDF["kdf_time_cost"]))
        repo = api.open(repo_path, PASSWORD.encode())
        v1 = _mutate(src, 1)
        s1 = api.backup(repo, [src], snapshot_type="full", tags=["known-good"])
        ids["S1"] = s1.snapshot.id
        trees["S1"] = v1
        before_journal = listing(repo_path)
        Journal(repo.ledger, repo.crypto).append([{"trade": i, "qty": i % 7}
                                                  for i in range(JOURNAL_RECORDS)])
        stage["A-journal"] = before_journal
        _stale_lock(repo, repo_path, "locks/" + "a1" * 32)
        stage["A"] = listing(repo_path)
        shutil.copytree(repo_path, root / "repo-A")
        shutil.copytree(client, client_a)

    with cache_dir(client):  # --- stage B, the client ---
        repo = api.open(repo_path, PASSWORD.encode())
        v2 = _mutate(src, 2)
        ids["S2"] = api.backup(repo, [src], snapshot_type="diff").snapshot.id
        _old, retagged = api.tag(repo, ids["S2"], add=["reviewed"])
        ids["S2'"] = retagged.id
        trees["S2'"] = v2
        stage["B"] = listing(repo_path)
        client_b = root / "cache-client-b"
        shutil.copytree(client, client_b)

    with cache_dir(other):  # --- stage C, another host ---
        repo = api.open(repo_path, PASSWORD.encode())
        v3 = _mutate(src, 3)
        ids["S3"] = api.backup(repo, [src]).snapshot.id
        trees["S3"] = v3
        before_j2 = listing(repo_path)
        Journal(repo.ledger, repo.crypto).append([{"order": i} for i in range(5)])
        stage["C-journal"] = before_j2
        before_s4 = listing(repo_path)
        ids["S4"] = api.backup(repo, [other_src], snapshot_type="full").snapshot.id
        after_s4 = listing(repo_path)
        api.forget(repo, [ids["S4"]])
        _stale_lock(repo, repo_path, "locks/" + "c3" * 32)
        live_events = repo.live_snapshots()
        tags = {s.id: list(s.tags) for s in repo.snapshots()}
        size = repo.ledger.size
        verifier = repo.config.ledger_verifier_key
        final = listing(repo_path)

    next_tree = _mutate(src, 4)
    live = sorted(live_events, key=lambda s: live_events[s].index)
    assert live == [ids["S1"], ids["S2'"], ids["S3"]], (live, ids)
    entry_of = {name: live_events[ids[name]].index for name in ("S1", "S3")}
    entry_of["forget-S4"] = size - 1
    packs_of = {sid: _packlist(final, sid) for sid in live}
    s4_packs = {k for k in _added(before_s4, after_s4, "data/")}
    needed_packs = {f"data/{p[:2]}/{p}" for ps in packs_of.values() for p in ps}
    assert not s4_packs & needed_packs
    needed = {k for k in final if k.startswith(("config", "ledger-key", "keys/", "index/",
                                                "journal/", "ledger/"))}
    needed |= {f"snapshots/{s}" for s in live} | {f"packlists/{s}" for s in live} | needed_packs
    dropped = ids["S2'"]
    kept_packs = {f"data/{x[:2]}/{x}" for s in live if s != dropped for x in packs_of[s]}
    forget_frees = {f"snapshots/{dropped}", f"packlists/{dropped}"} | (
        {f"data/{x[:2]}/{x}" for x in packs_of[dropped]} - kept_packs)

    p = Pristine(root=root, repo=repo_path, src=src, password_file=password_file,
                 client_cache=client_b, other_cache=other, verifier=verifier, ledger_size=size,
                 live=live, tags=tags,
                 trees={ids[n]: t for n, t in trees.items()}, next_tree=next_tree,
                 policy_forgets=dropped, prunable=s4_packs,
                 forget_frees=forget_frees, needed=needed, ids=ids,
                 entry_of=entry_of)
    p.kinds = _kinds(p, stage, final, first.key_id, repo_path, client_a)
    return p


def _packlist(objects: dict[str, bytes], sid: str) -> list[str]:
    return objects[f"packlists/{sid}"].decode().splitlines()[1:]


def _latest_partial(final: dict[str, bytes], prefix: str) -> str:
    """The newest partial tile (or bundle) under ``prefix``: the widest ``.p/W``."""
    partials = [k for k in final if k.startswith(prefix) and ".p/" in k]
    index = max(k.split(".p/")[0] for k in partials)
    return max((k for k in partials if k.startswith(index + ".p/")),
               key=lambda k: int(k.rsplit("/", 1)[1]))


def _kinds(p: Pristine, stage: dict[str, dict[str, bytes]], final: dict[str, bytes],
           first_key: str, repo: Path, client_a: Path) -> dict[str, Objects]:
    """Target, older object and swap partner of every kind (module docstring of the test)."""
    a, repo_a = stage["A"], p.root / "repo-A"
    user_key = next(k for k in final if k.startswith("keys/") and not k.endswith(first_key))
    first = f"keys/{first_key}"
    s1, s3 = p.ids["S1"], p.ids["S3"]
    s1_packs = {f"data/{x[:2]}/{x}" for x in _packlist(final, s1)}
    s3_only = sorted({f"data/{x[:2]}/{x}" for x in _packlist(final, s3)}
                     - {f"data/{x[:2]}/{x}" for x in _packlist(final, p.ids["S2'"])})
    index_a = sorted(k for k in a if k.startswith("index/"))
    index_c = _added(stage["B"], stage["C-journal"], "index/")  # S3's backup
    journal_a = _added(stage["A-journal"], a, "journal/")
    journal_c = _added(stage["C-journal"], final, "journal/")
    tile, bundle = (_latest_partial(final, "ledger/tile/0/"),
                    _latest_partial(final, "ledger/tile/entries/"))
    tile_a, bundle_a = (_latest_partial(a, "ledger/tile/0/"),
                        _latest_partial(a, "ledger/tile/entries/"))
    full_tile, full_bundle = "ledger/tile/0/000", "ledger/tile/entries/000"
    assert full_tile in final and full_bundle in final and tile != tile_a
    return {
        "config": Objects("config"),
        "keys": Objects(user_key, repo / first, first),
        "index": Objects(index_c[0], repo / index_a[0], index_a[0]),
        "pack": Objects(s3_only[0], repo / sorted(s1_packs)[0], sorted(s1_packs)[0]),
        "snapshot": Objects(f"snapshots/{s3}", repo / f"snapshots/{s1}", f"snapshots/{s1}"),
        "packlist": Objects(f"packlists/{s3}", repo / f"packlists/{s1}", f"packlists/{s1}"),
        "checkpoint": Objects("ledger/checkpoint", repo_a / "ledger/checkpoint"),
        "tile": Objects(tile, repo / tile_a, full_tile),
        "bundle": Objects(bundle, repo / bundle_a, full_bundle),
        "journal": Objects(journal_c[0], repo / journal_a[0], journal_a[0]),
        "lock": Objects("locks/" + "c3" * 32, repo / ("locks/" + "a1" * 32), "locks/" + "a1" * 32),
        "cache": Objects("cache", state_file(client_a)),
    }
