"""Judge one storage-attack trial: correct, closed or open outcome; anything lost.

* **correct** — exit 0 and the result a user would get from the unattacked
  repository (the same snapshot list, a byte-identical restore, the
  policy's snapshot forgotten, only unneeded data pruned, a backup that
  restores, an index rebuilt), or — for ``check`` and ``audit`` — exit 0
  because the attack is outside what they examine and harmless (junk).
* **closed** — a documented refusal: exit 13 or 14 (exit 10 for a deleted
  ``config``: "no repository"; 12 when the only key the password opens was
  attacked: to the client that is a wrong password; 11 for an unreadable
  lock, which counts as held) with one ``deltavault: error:`` line on stderr
  naming an object the attack changed (its key, its id, or for the ledger
  and the cache the kind), and no traceback.
* **open** — anything else: a wrong result, another exit code, a refusal
  that does not say what is wrong, a traceback.

A **loss** is independent of the outcome: an object a committed snapshot
needs deleted or changed by the command, or — once the attack is undone — a
committed snapshot that is no longer live or does not restore byte-identically.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deltavault import api
from deltavault.errors import DeltavaultError
from tests.support.attack_repo import Pristine, cache_dir, copy_cache
from tests.support.attacks import Change
from tests.support.cli import PASSWORD
from tests.support.trees import Entry, manifest

COMMANDS = ("snapshots", "restore", "backup", "forget", "prune", "repair", "check", "audit")
#: the destructive ones: what they may delete on success is judged by :func:`store_losses`
DESTRUCTIVE = ("forget", "prune", "repair")
#: kinds whose damage ``check --read-data`` must report (it opens the repository with the key)
CHECKED = {"config", "keys", "index", "pack", "snapshot", "packlist", "checkpoint", "tile",
           "bundle", "journal"}
#: kinds whose damage the keyless ``audit`` must report (the ledger, snapshots, pack lists, packs)
AUDITED = {"pack", "snapshot", "packlist", "checkpoint", "tile", "bundle"}
FAIL_CLOSED = (13, 14)
#: other documented refusals, for the kinds whose attack they truthfully describe
REFUSALS = {("config", 10), ("keys", 12), ("lock", 11)}


@dataclass
class Trial:
    """One (kind, attack, command) run and what the judge found."""

    kind: str
    attack: str
    command: str
    runner: str = "python -m deltavault"
    exit_code: int | None = None
    outcome: str = ""
    reason: str = ""
    losses: list[str] = field(default_factory=list)
    message: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def argv(command: str, p: Pristine, trial_dir: Path) -> list[str]:
    """The command line a user would type (``--json`` so the result can be judged)."""
    return {
        "snapshots": ["snapshots", "--json"],
        "restore": ["restore", "latest", "--target", str(trial_dir / "restored"), "--json"],
        "backup": ["backup", str(p.src), "--json"],
        "forget": ["forget", "--keep-last", "1", "--keep-tag", "known-good", "--prune",
                   "--json"],
        "prune": ["prune", "--json"],
        "repair": ["repair", "index", "--json"],
        "check": ["check", "--read-data", "--json"],
        "audit": ["audit", "--key", p.verifier, "--json"],
    }[command]


def names_object(text: str, changes: list[Change]) -> bool:
    """Whether a message names one of the objects the attack changed."""
    low = text.lower()
    for c in changes:
        if c.key.lower() in low:
            return True
        last = c.key.rsplit("/", 1)[-1]
        if len(last) >= 16 and last[:8] in low:
            return True
        words = {"config": ("config",), "ledger/checkpoint": ("checkpoint",),
                 "cache": ("ledger state", "cache")}.get(c.key, ())
        if c.key.startswith("ledger/tile/"):
            # a tile that disagrees with the signed root cannot be told from a rewritten log
            words = ("tile", "bundle", "ledger/checkpoint")
        if c.key.startswith("index/"):
            words = ("not in any index",)  # a deleted index file cannot be named
        if c.key.startswith("keys/") and c.after is None:
            words = ("wrong password",)  # to the client a deleted key is a password it lacks
        if c.key.startswith("locks/"):
            words = ("lock " + last[:8], "locks/" + last[:8])
        if any(w in low for w in words):
            return True
    return False


def _json(stdout: bytes) -> Any:
    try:
        return json.loads(stdout)
    except ValueError:
        return None


def _result_is_correct(t: Trial, p: Pristine, out: Any, trial_dir: Path) -> str:
    """'' if an exit-0 result is what the unattacked repository gives, else why not."""
    if t.command == "snapshots":
        got = {s["id"]: sorted(s.get("tags", [])) for s in out or []}
        want = {s: sorted(p.tags[s]) for s in p.live}
        return "" if got == want else f"lists {_short(got)} instead of {_short(want)}"
    if t.command == "restore":
        restored = trial_dir / "restored" / p.src.name
        if not restored.is_dir():
            return "restored nothing"
        diff = _tree_diff(p.trees[p.live[-1]], manifest(restored))
        return f"restored tree differs from the latest snapshot: {diff}" if diff else ""
    if t.command == "forget":
        forgotten = (out or {}).get("forgotten")
        return "" if forgotten == [p.policy_forgets] else (
            f"forgot {_short(forgotten)} instead of {p.policy_forgets[:12]}")
    if t.command == "backup":
        return "" if isinstance(out, dict) and out.get("snapshot_id") else "no snapshot id"
    if t.command in ("prune", "repair"):
        return "" if isinstance(out, dict) else f"no {t.command} result"
    damaged = t.kind in (CHECKED if t.command == "check" else AUDITED) and t.attack != "junk"
    if t.command == "audit" and t.kind == "config" and t.attack == "forge":
        damaged = True  # the forged config comes with a forged log
    if damaged:
        return f"{t.command} exits 0 on a repository whose {t.kind} was attacked"
    if t.command == "audit" and (not (out or {}).get("ok")
                                 or out.get("snapshots_checked") != len(p.live)
                                 or out.get("events") != p.ledger_size):
        return f"audit result {_short(out)} is not the unattacked repository's"
    return ""


def judge(t: Trial, proc: subprocess.CompletedProcess[bytes], changes: list[Change],
          p: Pristine, trial_dir: Path) -> None:
    """Set the trial's outcome and reason from the command's exit code and output."""
    t.exit_code = proc.returncode
    stderr = proc.stderr.decode(errors="replace")
    text = stderr + proc.stdout.decode(errors="replace")
    t.message = " ".join(stderr.split())[-400:]
    errors = [line for line in stderr.splitlines() if line.startswith("deltavault: error:")]
    if "Traceback" in stderr:
        t.outcome, t.reason = "open", "a traceback on stderr"
    elif proc.returncode != 0 and len(errors) != 1:
        t.outcome, t.reason = "open", f"{len(errors)} 'deltavault: error:' lines, not one"
    elif proc.returncode == 0:
        why = _result_is_correct(t, p, _json(proc.stdout), trial_dir)
        t.outcome, t.reason = ("open", why) if why else ("correct", "")
    elif proc.returncode in FAIL_CLOSED or (t.kind, proc.returncode) in REFUSALS:
        if names_object(text, changes):
            t.outcome = "closed"
        else:
            t.outcome, t.reason = "open", f"exit {proc.returncode} without naming the object"
    else:
        t.outcome, t.reason = "open", f"exit {proc.returncode}"


def store_losses(t: Trial, p: Pristine, before: dict[str, bytes],
                 after: dict[str, bytes]) -> list[str]:
    """Objects a committed snapshot needs that the command deleted or changed, and any
    object a command that failed deleted."""
    allowed: set[str] = {"ledger/checkpoint"}  # appends replace it; the final open checks it
    if (t.exit_code == 0 and t.command in DESTRUCTIVE) or t.command == "repair":
        # index files are rewritten (superseded, rebuilt: ``repair index`` also when it exits
        # 13 for a pack it could not read, documented); the final restore proves them
        allowed |= {k for k in before if k.startswith("index/")}
    if t.exit_code == 0 and t.command in ("prune", "forget"):
        allowed |= p.prunable
    if t.exit_code == 0 and t.command == "forget":
        allowed |= p.forget_frees
    out = []
    for key in sorted(p.needed & before.keys()):
        if key in allowed:
            continue
        if key not in after:
            out.append(f"deleted {key}")
        elif after[key] != before[key]:
            out.append(f"overwrote {key}")
    if t.exit_code != 0:  # a refusal deletes nothing at all (its own lock aside)
        out += [f"deleted {key} and then failed" for key in sorted(before.keys() - after.keys())
                if key not in p.needed | allowed and not key.startswith("locks/")]
    return out


def final_losses(t: Trial, p: Pristine, trial_dir: Path, repo: Path,
                 backup_id: str | None) -> list[str]:
    """After the undo: every committed snapshot live and restoring byte-identically.

    Opened as the host that wrote stage C (its cache), so a log the command
    rolled back or forked is refused here and counts as a loss.
    """
    want = list(p.live)
    expected: dict[str, dict[bytes, Entry]] = dict(p.trees)
    if t.command == "forget" and t.outcome == "correct":
        want.remove(p.policy_forgets)
    if t.command == "backup" and t.outcome == "correct" and backup_id:
        want.append(backup_id)
        expected[backup_id] = p.next_tree
    cache = trial_dir / "final-cache"
    copy_cache(p.other_cache, cache, repo)
    out = []
    with cache_dir(cache):
        try:
            r = api.open(repo, PASSWORD.encode())
            live = set(r.committed())
        except DeltavaultError as exc:
            return [f"repository refused after the undo: {exc.one_line()}"]
        out += [f"snapshot {s[:12]} is no longer live" for s in want if s not in live]
        extra = live - set(want) - ({backup_id} if backup_id else set())
        out += [f"snapshot {s[:12]} is live but should not be" for s in sorted(extra)]
        for sid in want:
            if sid not in live:
                continue
            target = trial_dir / f"verify-{sid[:12]}"
            try:
                api.restore(r, sid, target)
            except DeltavaultError as exc:
                out.append(f"snapshot {sid[:12]} does not restore: {exc.one_line()}")
                continue
            diff = _tree_diff(expected[sid], manifest(target / p.src.name))
            if diff:
                out.append(f"snapshot {sid[:12]} restores differently: {diff}")
            shutil.rmtree(target)
    return out


def _tree_diff(want: dict[bytes, Entry], got: dict[bytes, Entry]) -> str:
    missing = sorted(want.keys() - got.keys())
    extra = sorted(got.keys() - want.keys())
    differ = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])
    if not (missing or extra or differ):
        return ""
    return f"missing {missing[:3]}, extra {extra[:3]}, different {differ[:3]}"


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) < 300 else text[:300] + "…"
