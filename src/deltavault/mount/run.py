"""Mount and serve until unmounted: the one module that touches the FUSE binding.

The binding is ``mfusepy`` (the ``mount`` extra): pure ``ctypes`` over the
system's libfuse 3, so installing it compiles nothing, and its callbacks are
plain threads, which suits an engine built on threads. libfuse runs the loop
in this process, in the foreground: SIGINT (Ctrl-C), SIGTERM and SIGHUP make
it leave the loop and unmount, then :func:`serve` returns — no helper
process stays behind. A process killed with SIGKILL cannot unmount; then
``umount MOUNTPOINT`` (or ``fusermount3 -u``) clears the stale mount.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType
from typing import cast

from deltavault.errors import UserError
from deltavault.mount.fs import SnapshotFS

#: kernel caching is safe: nothing inside a snapshot ever changes
_TIMEOUTS = {"entry_timeout": 60, "attr_timeout": 60, "negative_timeout": 1}
#: explicit, or libfuse 3.14 warns about its own unset default (libfuse issue #1003)
_IDLE_THREADS = 8


def _binding() -> ModuleType:
    """Import mfusepy against libfuse 3 (it would pick libfuse 2 first if both exist)."""
    os.environ.setdefault("FUSE_LIBRARY_NAME", "fuse3")
    try:
        import mfusepy
    except ImportError as exc:
        raise UserError("the FUSE binding is not installed",
                        hint="pip install 'deltavault[mount]'") from exc
    except (OSError, AttributeError) as exc:  # no libfuse, or one it cannot drive
        raise UserError(f"libfuse 3 is not usable: {exc}",
                        hint="install it, e.g. 'apt-get install fuse3'") from exc
    return cast(ModuleType, mfusepy)


def check_mountpoint(mountpoint: Path) -> Path:
    """The absolute mount point, which must be an existing directory not yet mounted."""
    path = mountpoint.absolute()
    if not path.is_dir():
        raise UserError(f"mount point {mountpoint} is not a directory",
                        hint="create it first with mkdir")
    if os.path.ismount(path):
        raise UserError(f"{mountpoint} is already a mount point")
    return path


def serve(fs: SnapshotFS, mountpoint: Path, *, allow_other: bool = False,
          debug: bool = False) -> None:
    """Mount ``fs`` read-only at ``mountpoint`` and serve until a signal unmounts it.

    Raises:
        UserError: the binding or libfuse is missing, or libfuse refused to mount.
    """
    fuse = _binding()
    options: dict[str, object] = {
        "ro": True, "nosuid": True, "nodev": True, "kernel_cache": True,
        # the kernel checks stored modes and owners when other users may look
        "default_permissions": True, "fsname": "deltavault", "subtype": "deltavault",
        "max_idle_threads": _IDLE_THREADS, **_TIMEOUTS,
    }
    if allow_other:
        options["allow_other"] = True
    try:
        fuse.FUSE(fs, str(mountpoint), foreground=True, debug=debug, **options)
    except RuntimeError as exc:
        # libfuse >= 3.12 returns an error code from a loop that a signal ended
        # (its handler records the signal number), so the code alone cannot tell
        # a clean unmount from a failure: a mount that was up and is gone is clean.
        if fs.mounted and not os.path.ismount(mountpoint):
            return
        if fs.mounted:
            raise UserError(f"the FUSE loop at {mountpoint} failed (libfuse error {exc})",
                            hint=f"unmount it with 'umount {mountpoint}'") from exc
        raise UserError(f"cannot mount at {mountpoint} (libfuse error {exc})",
                        hint="is /dev/fuse available, and may this user mount?") from exc
