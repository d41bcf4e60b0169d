"""SFTP backend (paramiko), laid out like the local backend on the server.

How write-once is enforced: ``put`` uploads to ``<path>/tmp/<random>``,
asks the server to fsync it (``fsync@openssh.com`` when offered), and then
publishes it with the *standard* SFTP ``RENAME``. SFTP v3 defines that rename
to fail when the target exists, and OpenSSH's sftp-server implements it as
``link(tmp, target)`` + ``unlink(tmp)``, so on OpenSSH creation is atomic and
exactly one of several concurrent writers wins. (On filesystems without hard
links OpenSSH falls back to stat-then-rename, which has a small race; other
servers may do the same.)

How ``replace`` is a compare-and-swap: SFTP has no conditional write, so
every writer takes a per-key lock file ``tmp/cas~<key>`` created with
``O_EXCL`` (SFTP ``CREAT|EXCL``), compares, then swaps the new content in with
``posix-rename@openssh.com``. A lock file older than ``cas_lock_stale``
seconds is a crashed writer's and is broken. SFTP v3 reports mtimes in whole
seconds and no inode, so the version token is ``size-mtime`` and ``replace``
sets the new file's mtime to at least one second past the old one: every
replace therefore changes the version.
"""

from __future__ import annotations

import contextlib
import errno
import posixpath
import queue
import secrets
import socket
import stat as stat_mod
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Literal, TypeVar

import paramiko
from paramiko.sftp import CMD_EXTENDED

from deltavault.errors import (
    BackendError,
    BackendUnavailable,
    ObjectExists,
    ObjectNotFound,
    PermissionDenied,
    UserError,
    VersionConflict,
)
from deltavault.store.base import ByteRange, ObjectInfo, Store, check_key

T = TypeVar("T")
_TMP = "tmp"
# paramiko reports SFTP status codes as plain OSError (with errno ENOENT or
# EACCES, or none); these are the ones that mean the connection is gone.
_TRANSPORT_ERRORS = (paramiko.SSHException, EOFError, ConnectionError, TimeoutError,
                     socket.gaierror)


def _version(attrs: paramiko.SFTPAttributes) -> str:
    return f"{attrs.st_size or 0:x}-{attrs.st_mtime or 0:x}"


def _info(key: str, attrs: paramiko.SFTPAttributes) -> ObjectInfo:
    # st_mtime is set by the server when it writes the file: the server's clock
    mtime = datetime.fromtimestamp(attrs.st_mtime, UTC) if attrs.st_mtime is not None else None
    return ObjectInfo(key, attrs.st_size or 0, _version(attrs), mtime)


class SFTPStore(Store):
    """Objects as files below ``path`` on an SSH server.

    Args:
        host, port, user: where to log in.
        path: repository directory on the server (absolute, or relative to
            the login directory).
        key_filename: private key file; without it the SSH agent and the
            default keys in ``~/.ssh`` are tried.
        known_hosts: known_hosts file to verify the server's host key
            (default ``~/.ssh/known_hosts``).
        host_key_policy: ``reject`` an unknown host key (default),
            ``warn`` and continue, or ``auto-add`` it.
        max_connections: SFTP channels opened in parallel over one SSH
            connection (one per concurrent operation).
        create: create ``path`` if it does not exist.
    """

    def __init__(
        self,
        host: str,
        port: int = 22,
        user: str | None = None,
        path: str = ".",
        *,
        key_filename: str | None = None,
        password: str | None = None,
        known_hosts: str | None = None,
        host_key_policy: Literal["reject", "warn", "auto-add"] = "reject",
        max_connections: int = 4,
        timeout: float = 15.0,
        cas_lock_stale: float = 30.0,
        create: bool = False,
    ) -> None:
        if host_key_policy not in ("reject", "warn", "auto-add"):
            raise UserError(f"unknown host key policy {host_key_policy!r}")
        self.host, self.port, self.user = host, port, user
        self.root = path.rstrip("/") or "/"
        self._key_filename = key_filename
        self._password = password
        self._known_hosts = known_hosts
        self._policy = host_key_policy
        self._timeout = timeout
        self._cas_stale = cas_lock_stale
        self._max = max_connections
        self._pool: queue.LifoQueue[paramiko.SFTPClient] = queue.LifoQueue()
        self._opened = 0
        self._lock = threading.Lock()
        self._ssh: paramiko.SSHClient | None = None
        self._dirs: set[str] = set()
        if create:
            self._run("create", path, lambda c: self._makedirs(c, self.root))

    # --- connections ---------------------------------------------------------

    def location(self) -> str:
        user = f"{self.user}@" if self.user else ""
        return f"sftp://{user}{self.host}:{self.port}{'' if self.root.startswith('/') else '/'}" \
               f"{self.root}"

    def _connect(self) -> paramiko.SSHClient:
        ssh = paramiko.SSHClient()
        if self._known_hosts:
            ssh.load_host_keys(self._known_hosts)
        else:
            with contextlib.suppress(OSError):
                ssh.load_system_host_keys()
        ssh.set_missing_host_key_policy({
            "reject": paramiko.RejectPolicy, "warn": paramiko.WarningPolicy,
            "auto-add": paramiko.AutoAddPolicy}[self._policy]())
        try:
            ssh.connect(self.host, self.port, username=self.user, password=self._password,
                        key_filename=self._key_filename, timeout=self._timeout,
                        banner_timeout=self._timeout, auth_timeout=self._timeout,
                        allow_agent=self._key_filename is None,
                        look_for_keys=self._key_filename is None)
        except paramiko.AuthenticationException as exc:
            raise PermissionDenied(f"SSH login to {self.location()} refused: {exc}",
                                   hint="check the user and key file") from exc
        except paramiko.BadHostKeyException as exc:
            raise PermissionDenied(f"host key of {self.host} does not match known_hosts: {exc}",
                                   hint="verify the server, then fix known_hosts") from exc
        except paramiko.SSHException as exc:
            if "not found in known_hosts" in str(exc):
                raise PermissionDenied(
                    f"unknown host key for {self.host}:{self.port}",
                    hint="add it to known_hosts (ssh-keyscan) or pass a known_hosts file",
                ) from exc
            raise BackendUnavailable(f"SSH to {self.location()} failed: {exc}") from exc
        except OSError as exc:
            raise BackendUnavailable(f"cannot reach {self.location()}: {exc}") from exc
        return ssh

    def _borrow(self) -> paramiko.SFTPClient:
        with contextlib.suppress(queue.Empty):
            while True:
                client = self._pool.get_nowait()
                channel = client.get_channel()
                if channel is not None and not channel.closed:
                    return client
                with self._lock:
                    self._opened -= 1
        with self._lock:
            if self._ssh is None or not self._alive():
                self._ssh = self._connect()
                self._opened = 0
            self._opened += 1
            ssh = self._ssh
        try:
            client = ssh.open_sftp()
        except _TRANSPORT_ERRORS as exc:
            with self._lock:
                self._opened -= 1
            raise BackendUnavailable(f"cannot open SFTP session on {self.location()}: {exc}") \
                from exc
        return client

    def _alive(self) -> bool:
        transport = self._ssh.get_transport() if self._ssh else None
        return transport is not None and transport.is_active()

    def _run(self, what: str, key: str, fn: Callable[[paramiko.SFTPClient], T]) -> T:
        client = self._borrow()
        healthy = True
        try:
            return fn(client)
        except BackendError:
            raise
        except _TRANSPORT_ERRORS as exc:
            healthy = False
            raise BackendUnavailable(f"SFTP {what} {key} on {self.location()} failed: {exc}") \
                from exc
        except OSError as exc:
            raise _translate(exc, what, key) from exc
        finally:
            if healthy:
                self._pool.put(client)
            else:
                with contextlib.suppress(Exception):
                    client.close()
                with self._lock:
                    self._opened -= 1

    def close(self) -> None:
        while not self._pool.empty():
            with contextlib.suppress(Exception):
                self._pool.get_nowait().close()
        if self._ssh is not None:
            self._ssh.close()
            self._ssh = None

    # --- paths ---------------------------------------------------------------

    def _path(self, key: str) -> str:
        return posixpath.join(self.root, check_key(key))

    def _makedirs(self, client: paramiko.SFTPClient, path: str) -> None:
        if path in self._dirs or path in ("", "/", "."):
            return
        parent = posixpath.dirname(path)
        if parent != path:
            self._makedirs(client, parent)
        try:
            client.mkdir(path)
        except OSError:
            try:
                attrs = client.stat(path)  # already there (OpenSSH reports EEXIST as FAILURE)
            except OSError:
                raise
            if not stat_mod.S_ISDIR(attrs.st_mode or 0):
                raise
        self._dirs.add(path)

    def _upload_temp(self, client: paramiko.SFTPClient, data: bytes | bytearray) -> str:
        tmpdir = posixpath.join(self.root, _TMP)
        self._makedirs(client, tmpdir)
        tmp = posixpath.join(tmpdir, secrets.token_hex(16))
        with client.open(tmp, "wb") as fh:
            fh.set_pipelined(True)
            fh.write(data)
            fh.flush()
            # Durable before it gets a name, like the local backend's fsync.
            with contextlib.suppress(OSError):
                # paramiko has no public call for this OpenSSH extension.
                client._request(  # type: ignore[attr-defined]
                    CMD_EXTENDED, "fsync@openssh.com", fh.handle)
        return tmp

    # --- operations ----------------------------------------------------------

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        path = self._path(key)

        def read(client: paramiko.SFTPClient) -> bytes:
            with client.open(path, "rb") as fh:
                if byte_range is None:
                    fh.prefetch()
                    return bytes(fh.read())
                if byte_range.length == 0:
                    return b""
                fh.seek(byte_range.start)
                return bytes(fh.read(byte_range.length))

        return self._run("read", key, read)

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        path = self._path(key)

        def read(client: paramiko.SFTPClient) -> tuple[bytes, str]:
            with client.open(path, "rb") as fh:
                version = _version(fh.stat())
                fh.prefetch()
                return bytes(fh.read()), version

        return self._run("read", key, read)

    def stat(self, key: str) -> ObjectInfo:
        attrs = self._run("stat", key, lambda c: c.stat(self._path(key)))
        if stat_mod.S_ISDIR(attrs.st_mode or 0):
            raise ObjectNotFound(f"object {key} not found (a directory)")
        return _info(key, attrs)

    def put(self, key: str, data: bytes | bytearray) -> None:
        path = self._path(key)

        def publish(client: paramiko.SFTPClient) -> None:
            tmp = self._upload_temp(client, data)
            try:
                self._makedirs(client, posixpath.dirname(path))
                client.rename(tmp, path)  # standard RENAME: fails if path exists
            except OSError as exc:
                with contextlib.suppress(OSError):
                    client.remove(tmp)
                try:
                    client.stat(path)
                except OSError:
                    raise exc from None
                raise ObjectExists(f"object {key} already exists") from exc

        self._run("write", key, publish)

    def replace(self, key: str, data: bytes, expected_version: str | None) -> str:
        path = self._path(key)

        def swap(client: paramiko.SFTPClient) -> str:
            tmp = self._upload_temp(client, data)
            try:
                with self._cas_lock(client, key):
                    try:
                        old: paramiko.SFTPAttributes | None = client.stat(path)
                    except FileNotFoundError:
                        old = None
                    current = _version(old) if old is not None else None
                    if current != expected_version:
                        raise VersionConflict(
                            f"object {key} changed since it was read (expected "
                            f"{expected_version}, found {current})")
                    new = client.stat(tmp)
                    mtime = max(new.st_mtime or 0, (old.st_mtime or 0) + 1 if old else 0)
                    client.utime(tmp, (mtime, mtime))
                    self._makedirs(client, posixpath.dirname(path))
                    client.posix_rename(tmp, path)
                    return _version(client.stat(path))
            finally:
                with contextlib.suppress(OSError):
                    client.remove(tmp)

        return self._run("replace", key, swap)

    @contextlib.contextmanager
    def _cas_lock(self, client: paramiko.SFTPClient, key: str) -> Iterator[None]:
        lock = posixpath.join(self.root, _TMP, "cas~" + key.replace("/", "~"))
        deadline = time.monotonic() + max(2 * self._cas_stale, 10.0)
        delay = 0.005
        while True:
            try:
                fh = client.open(lock, "wx")  # CREAT|EXCL: exactly one writer gets it
            except OSError as exc:
                if exc.errno in (errno.EACCES, errno.ENOENT):
                    raise
                with contextlib.suppress(OSError):
                    age = time.time() - (client.stat(lock).st_mtime or 0)
                    if age > self._cas_stale:
                        client.remove(lock)  # left by a writer that died
                        continue
                if time.monotonic() > deadline:
                    raise BackendUnavailable(
                        f"timed out waiting for the compare-and-swap lock of {key}",
                        hint=f"remove {lock} if no deltavault process is running") from exc
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
            else:
                fh.close()
                break
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                client.remove(lock)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        head, _, _ = prefix.rpartition("/")
        start = posixpath.join(self.root, head) if head else self.root
        found: list[ObjectInfo] = []

        def walk(client: paramiko.SFTPClient) -> None:
            stack = [(start, head)]
            while stack:
                directory, rel = stack.pop()
                try:
                    entries = client.listdir_attr(directory)
                except FileNotFoundError:
                    continue
                for attrs in entries:
                    key = f"{rel}/{attrs.filename}" if rel else attrs.filename
                    if stat_mod.S_ISDIR(attrs.st_mode or 0):
                        top_tmp = rel == "" and attrs.filename == _TMP
                        if not top_tmp and key.startswith(prefix[: len(key)]):
                            stack.append((posixpath.join(directory, attrs.filename), key))
                    elif key.startswith(prefix):
                        found.append(_info(key, attrs))

        self._run("list", prefix or "/", walk)
        return iter(found)

    def delete(self, key: str) -> None:
        self._run("delete", key, lambda c: c.remove(self._path(key)))


def _translate(exc: OSError, what: str, key: str) -> BackendError:
    if exc.errno == errno.ENOENT:
        return ObjectNotFound(f"object {key} not found")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PermissionDenied(f"SFTP server refused to {what} {key}: {exc}")
    return BackendError(f"SFTP {what} {key} failed: {exc}")

