"""Start-up stays light: commands that need no data path do not import it (issue 14).

``deltavault --help``, ``version``, ``snapshots``, ``ledger verify`` and
``audit`` import neither numpy nor the codecs, chunkers, backup/restore
pipeline or REST server. The list of imported modules comes from the
installed script itself (``PYTHONPROFILEIMPORTTIME``), so a module-level
import added anywhere on these paths fails here; timings are measured in
bench/ and the issue, never asserted.
"""

from __future__ import annotations

import pytest

from deltavault.cli.app import COMMANDS, click_command
from tests.support.cli import KDF_ARGS, PASSWORD, Cli

#: module prefixes a light command must not import
HEAVY = ("numpy", "deltavault.codec", "deltavault.chunk", "deltavault.backup",
         "deltavault.restore", "deltavault.server", "deltavault.sampledata", "uvicorn",
         "fastapi", "pydantic")


def imported_modules(stderr: bytes) -> set[str]:
    """Module names from ``-X importtime`` lines (``import time: self | cum | name``)."""
    names = set()
    for line in stderr.decode(errors="replace").splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            if name != "package":
                names.add(name)
    return names


@pytest.fixture(scope="module")
def repo_with_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Cli:
    tmp = tmp_path_factory.mktemp("startup")
    pw = tmp / "password"
    pw.write_text(PASSWORD + "\n")
    cli = Cli(tmp / "repo", pw)
    cli("init", *KDF_ARGS)
    cli("backup", "--stdin", input=b"some state")
    return cli


@pytest.mark.parametrize("args", [["--help"], ["version"], ["backup", "--help"], ["snapshots"],
                                  ["snapshots", "--json"], ["ledger", "verify"], ["audit"]])
def test_light_commands_import_no_data_path(repo_with_snapshot: Cli, args: list[str]) -> None:
    cli = repo_with_snapshot
    proc = cli(*args, env=cli.env(PYTHONPROFILEIMPORTTIME="1"))
    modules = imported_modules(proc.stderr)
    assert "deltavault.cli.main" in modules  # the measurement works
    heavy = sorted(m for m in modules if m.startswith(HEAVY))
    assert not heavy, f"deltavault {' '.join(args)} imports {heavy[:10]}"


def test_help_and_version_skip_the_engine(repo_with_snapshot: Cli) -> None:
    """``--help`` builds the commands without importing what they run; ``version`` without
    even Typer."""
    cli = repo_with_snapshot
    help_modules = imported_modules(cli("--help", env=cli.env(PYTHONPROFILEIMPORTTIME="1")).stderr)
    assert not [m for m in help_modules if m.startswith(("deltavault.repo", "deltavault.ledger",
                                                         "deltavault.api", "rich"))]
    # the command table is enough: no command module is imported to list them
    assert not [m for m in help_modules if m.startswith("deltavault.cli.")
                and m not in ("deltavault.cli.main", "deltavault.cli.outcome",
                              "deltavault.cli.app", "deltavault.cli.common",
                              "deltavault.cli.allocator", "deltavault.cli.blas")]
    version = imported_modules(cli("version", env=cli.env(PYTHONPROFILEIMPORTTIME="1")).stderr)
    assert not [m for m in version if m.startswith(("typer", "click", "rich"))]


def test_data_path_still_imported_where_needed(repo_with_snapshot: Cli) -> None:
    """The check above can fail: a restore does import numpy and the codecs."""
    cli = repo_with_snapshot
    target = cli.repo.parent / "restored"
    proc = cli("restore", "latest", "--target", target, env=cli.env(PYTHONPROFILEIMPORTTIME="1"))
    modules = imported_modules(proc.stderr)
    assert "numpy" in modules and "deltavault.codec.registry" in modules
    # ... but not the chunkers, which only a backup cuts with, nor (a small snapshot) the
    # machinery of a restore in several processes
    assert not [m for m in modules if m.startswith(("pyfastcdc", "sqlite3", "deltavault.backup",
                                                    "deltavault.chunk.fastcdc",
                                                    "deltavault.restore.procs"))]
    assert "numpy.ma" not in modules  # what np.unique imports (repo/distinct.py)


def test_help_summaries_are_the_commands_own() -> None:
    """``--help`` lists the table's summaries without importing the commands: each must be
    what the command's own help says (click's short help of its docstring)."""
    for name, (_target, summary) in COMMANDS.items():
        assert click_command(name).get_short_help_str(200) == summary, name
