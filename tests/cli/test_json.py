"""``--json`` on every command: one JSON document on stdout, through the installed script.

The command list is the app's own (every leaf command of ``deltavault``), so
a command added without a ``--json`` that parses fails here.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import typer

from deltavault.cli.app import build_app
from tests.support.cli import KDF_ARGS, Cli, entry_argv
from tests.support.servers import free_ports
from tests.support.trees import write_random

#: commands whose --json is tested elsewhere, and where
ELSEWHERE = {
    "maintenance": "tests/cli/test_object_lock.py (needs S3 Object Lock)",
}


def leaf_commands() -> set[str]:
    """Every runnable command path of the app, e.g. ``ledger witness-key new``."""
    group = typer.main.get_command(build_app())
    found: set[str] = set()

    def walk(cmd: Any, path: list[str]) -> None:
        if hasattr(cmd, "list_commands"):  # a group: click's API, lazy groups included
            ctx = cmd.make_context("deltavault", ["--help"], resilient_parsing=True)
            for name in cmd.list_commands(ctx):
                walk(cmd.get_command(ctx, name), [*path, name])
        else:
            found.add(" ".join(path))

    walk(group, [])
    assert len(found) > 40 and "ledger witness-key new" in found
    return found


def test_every_command_prints_one_json_document(cli: Cli, tmp_path: Path) -> None:
    ran: dict[str, Any] = {}

    def run(command: str, *args: str | Path, input: bytes | None = None) -> Any:
        """``deltavault COMMAND ARGS --json``; its document (exit 0 required)."""
        proc = cli(*command.split(), *args, "--json", input=input)
        doc = json.loads(proc.stdout)
        ran[command] = doc
        return doc

    src = tmp_path / "src"
    src.mkdir()
    write_random(src / "a.bin", 300_000, seed=1)
    (src / "note.txt").write_text("one\n")
    run("init", *KDF_ARGS)
    first = run("backup", src, "--type", "full", "--tag", "eod")["snapshot_id"]
    (src / "note.txt").write_text("two\n")
    second = run("backup", src)["snapshot_id"]
    assert [s["id"] for s in run("snapshots")] == [first, second]
    assert {e["path"] for e in run("ls", "latest")} >= {"src", "src/note.txt"}
    assert [c["path"] for c in run("diff", first, second)["changed"]] == ["src/note.txt"]
    out = tmp_path / "note.out"
    dumped = run("dump", "latest", "src/note.txt", "--output", out)
    assert dumped == {"snapshot": second, "path": "src/note.txt", "size": 4, "output": str(out)}
    assert out.read_text() == "two\n"
    assert run("restore", first, "--target", tmp_path / "restored")["files"] == 2
    live = tmp_path / "live"
    live.mkdir()
    assert run("rollback", second, "--target", live)["snapshot_id"] == second
    tagged = run("tag", first, "--add", "known-good")
    assert tagged["tags"] == ["eod", "known-good"]
    first = tagged["new_id"]
    assert run("check", "--read-data")["ok"] is True
    assert run("stats")["snapshots"] == 2
    run("unlock")

    pw2 = tmp_path / "pw2"
    pw2.write_text("second password\n")
    added = run("key add", "--new-password-file", pw2)["added"]
    assert len(run("key list")) == 2
    assert run("key remove", added[:12])["removed"] == added
    pw3 = tmp_path / "pw3"
    pw3.write_text("third password\n")
    assert run("key passwd", "--new-password-file", pw3)["removed"]
    cli.password_file.write_text("third password\n")

    vkey = run("ledger key")["verifier_key"]
    old_checkpoint = tmp_path / "old.checkpoint"
    old_checkpoint.write_bytes((cli.repo / "ledger" / "checkpoint").read_bytes())
    appended = run("journal append", input=b'{"trade_id": 1, "qty": "5"}\n')
    index = appended["indexes"][0]
    assert run("journal show", str(index)) == {"index": index,
                                                "record": {"trade_id": 1, "qty": "5"}}
    proof = run("ledger prove", "--index", str(index))["proof"]
    proof_file = tmp_path / "trade.proof"
    proof_file.write_text(proof)
    assert run("ledger prove", "--index", str(index), "--out", proof_file)["path"]
    assert run("ledger verify-proof", proof_file, "--key", vkey)["record"]["trade_id"] == 1
    assert any(e["type"] == "journal" for e in run("ledger events"))
    assert run("ledger consistency", old_checkpoint)["ok"] is True
    wkey = run("ledger witness-key new", "--name", "w.example", "--out",
               tmp_path / "w.key")["verifier_key"]
    assert wkey.startswith("w.example+")
    run("ledger cosign", "--witness-key", tmp_path / "w.key", "--state", tmp_path / "wstate")
    assert run("ledger verify", "--require-witness", wkey)["ok"] is True
    assert run("ledger mirror", tmp_path / "mirror")["copied"] > 0
    assert run("ledger export", tmp_path / "mirror")["copied"] == 0
    assert run("audit", "--key", vkey)["ok"] is True

    state = tmp_path / "state"
    run("demo-data", state, "--scale", "0.002")
    run("backup", state)
    db = state / "db" / "positions.sqlite"
    assert run("reconcile", "--left", "snapshot:latest", "--right", f"sqlite:{db}")["ok"]
    assert run("reconstruct", "--at", "2999-01-01T00:00:00Z", "--target",
               tmp_path / "rebuilt")["records_applied"] >= 0
    replica = tmp_path / "replica"
    assert run("copy", "--to-repo", replica)["ok"] is True
    assert run("repair", "--from-repo", replica)["ok"] is True
    index = run("repair index")
    assert index["ok"] is True and index["packs"] > 0 and index["indexes_written"]
    run("forget", first, "--dry-run")
    assert run("forget", "--keep-last", "1")["forgotten"]  # per host and paths
    run("prune")
    assert run("status")["groups"]
    assert run("version")["version"]
    ran["serve"] = serve_json(cli, tmp_path / "served")
    ran["ui"] = ui_json(cli)
    ran["mount"] = mount_json(cli, tmp_path / "mnt")

    missing = leaf_commands() - set(ran) - set(ELSEWHERE)
    assert not missing, f"--json not tested for: {sorted(missing)}"


def serve_json(cli: Cli, path: Path) -> Any:
    """``serve --json``: its document as it starts; then Ctrl-C stops it (exit 130)."""
    (port,) = free_ports(1)
    proc = subprocess.Popen([*entry_argv(), "serve", "--path", str(path), "--listen",
                             f"127.0.0.1:{port}", "--json"], env=cli.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        doc = first_document(proc)
        assert doc["url"] == f"rest:http://127.0.0.1:{port}/"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return doc


def ui_json(cli: Cli) -> Any:
    """``ui --json``: its document once the port is bound; Ctrl-C stops it (exit 130)."""
    proc = subprocess.Popen([*entry_argv(), "ui", "--listen", "127.0.0.1:0", "--json"],
                            env=cli.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        doc = first_document(proc)
        assert doc["url"].startswith("http://127.0.0.1:") and doc["read_only"] is True
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return doc


def mount_json(cli: Cli, mountpoint: Path) -> Any:
    """``mount --json``: its document as it mounts; SIGTERM unmounts and exits 0."""
    mountpoint.mkdir()
    proc = subprocess.Popen([*entry_argv(), "mount", str(mountpoint), "--json"], env=cli.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        doc = first_document(proc)
        assert doc["mountpoint"] == str(mountpoint) and doc["snapshots"] >= 1
        deadline = time.monotonic() + 60
        while not os.path.ismount(mountpoint):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if os.path.ismount(mountpoint):
            subprocess.run(["umount", "-l", str(mountpoint)], check=False)
    return doc


def first_document(proc: subprocess.Popen[str]) -> Any:
    """The JSON document a long-running command prints first (indented, ends with "}")."""
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if line.rstrip() == "}":
            break
    return json.loads("".join(lines))


def test_json_error_document_carries_the_report(cli: Cli) -> None:
    """A command that fails after building its report prints that report, marked failed,
    as its one document (not a report and then an error document)."""
    cli("init", *KDF_ARGS)
    cli("backup", "--stdin", input=b"x" * 5000)
    for pack in (cli.repo / "data").rglob("*"):
        if pack.is_file():
            data = bytearray(pack.read_bytes())
            data[len(data) // 2] ^= 1
            pack.chmod(0o644)
            pack.write_bytes(bytes(data))
    proc = cli("check", "--read-data", "--json", expect=13)
    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and doc["exit_code"] == 13 and doc["kind"] == "RepositoryError"
    assert doc["problems"] and doc["snapshots"] == 1  # the check report itself
    assert doc["error"].startswith("check found")
    # dump -o: a dump stopped by damaged data leaves no file, not even a partial one
    out_dir = cli.repo.parent / "dumps"
    out_dir.mkdir()
    cli("dump", "latest", "stdin", "-o", out_dir / "stdin.out", "--json", expect=13)
    assert list(out_dir.iterdir()) == []
