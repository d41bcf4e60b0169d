"""Open a store from a repository URL (``--repo`` / ``DELTAVAULT_REPO``).

========================================  =====================================
URL                                       store
========================================  =====================================
``/srv/repo``, ``file:///srv/repo``       :class:`LocalStore`
``s3://bucket/prefix``                    :class:`S3Store` (+ ``AWS_*`` env)
``sftp://user@host:port/path``            :class:`SFTPStore` (absolute path)
``sftp://user@host/~/repo``               :class:`SFTPStore` (below the login dir)
``rest:http(s)://host:port/``             :class:`RestStore` (+ DELTAVAULT_REST_TOKEN)
========================================  =====================================

Remote stores are wrapped in :class:`~deltavault.store.wrappers.RetryingStore`.
:func:`open_store` is the one way the CLI, the API and the engine turn a
location into a store.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

from deltavault.errors import RepositoryNotFound, UserError
from deltavault.store.base import Store
from deltavault.store.local import LocalStore
from deltavault.store.wrappers import RetryingStore

_S3_OPTIONS = {"endpoint_url", "region", "access_key", "secret_key", "session_token",
               "profile", "max_concurrency", "object_lock", "multipart_threshold",
               "conditional_writes", "connect_timeout", "read_timeout", "addressing_style"}
_SFTP_OPTIONS = {"key_filename", "known_hosts", "host_key_policy", "max_connections",
                 "timeout", "password"}
_REST_OPTIONS = {"token", "verify_tls", "ca_file", "timeout", "max_connections"}
_COMMON = {"retries", "backoff", "first_contact_attempts"}


def open_store(location: str | os.PathLike[str] | Store, *, create: bool = False,
               options: Mapping[str, Any] | None = None,
               env: Mapping[str, str] | None = None) -> Store:
    """Open the store a repository location names.

    Args:
        location: a Store (returned as it is), a local path or a URL (see the
            module docstring).
        create: create the directory (local, SFTP) if missing; without it a
            missing local directory is :class:`RepositoryNotFound`.
        options: backend keyword arguments (e.g. ``endpoint_url``,
            ``object_lock``, ``key_filename``, ``token``) plus ``retries``,
            ``backoff`` and ``first_contact_attempts`` for the retry wrapper.
            Unknown names are errors.
        env: environment to read ``AWS_*``, ``DELTAVAULT_REST_TOKEN`` and
            ``DELTAVAULT_OBJECT_LOCK_DAYS``/``_MODE`` from (default ``os.environ``).

    Raises:
        UserError: the URL is malformed or an option does not apply.
        RepositoryNotFound: a local path that does not exist (without ``create``).
    """
    if isinstance(location, Store):
        return location
    url = os.fspath(location)
    opts = dict(options or {})
    env = os.environ if env is None else env
    if not url or not url.strip():
        raise UserError("empty repository URL", hint="pass --repo or set DELTAVAULT_REPO")
    url = url.strip()
    try:
        store = _remote(url, opts, env, create)
    except ImportError as exc:  # backends are optional extras
        raise UserError(f"no backend for {url!r} is installed ({exc.name} is missing)",
                        hint="pip install 'deltavault[all]'") from exc
    if store is None:
        return _local(url, opts, create)
    retries = int(opts.get("retries", 5))
    backoff = float(opts.get("backoff", 0.5))
    return RetryingStore(store, attempts=max(1, retries), backoff=backoff,
                         first_contact_attempts=int(opts.get("first_contact_attempts", 2)))


def _remote(url: str, opts: dict[str, Any], env: Mapping[str, str],
            create: bool) -> Store | None:
    """The backend store of a remote URL, or None for a local path."""
    if url.startswith("rest:"):
        return _rest(url[5:], opts, env)
    if url.startswith("s3://"):
        lock = _object_lock_from_env(env)
        if lock is not None:
            opts.setdefault("object_lock", lock)
        return _s3(url, opts, env)
    if url.startswith("sftp://"):
        return _sftp(url, opts, create)
    if ("://" in url and not url.startswith("file://")) or url.startswith(("s3:", "sftp:")):
        raise UserError(f"unknown repository URL scheme in {url!r}",
                        hint="use a path, file://, s3://, sftp:// or rest:http(s)://")
    return None


def _local(url: str, opts: dict[str, Any], create: bool) -> Store:
    """A local directory from a path or a file:/// URL."""
    _check_options(url, opts, set())
    if url.startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise UserError(f"file URL must be file:///path, got {url!r}")
        path = unquote(parts.path)
    else:
        path = os.path.expanduser(url)
    if not create and not os.path.isdir(path):
        raise RepositoryNotFound(f"no repository at {url}")
    return LocalStore(path, create=create)


def _object_lock_from_env(env: Mapping[str, str]) -> Any:
    """S3 Object Lock retention from DELTAVAULT_OBJECT_LOCK_DAYS/_MODE, or None."""
    days = env.get("DELTAVAULT_OBJECT_LOCK_DAYS")
    if not days:
        return None
    from deltavault.store.object_lock import ObjectLockPolicy

    try:
        return ObjectLockPolicy(int(days), env.get(  # type: ignore[arg-type]
            "DELTAVAULT_OBJECT_LOCK_MODE", "compliance"))
    except ValueError as exc:
        raise UserError(f"bad DELTAVAULT_OBJECT_LOCK_DAYS/MODE: {exc}") from exc


def _check_options(url: str, opts: dict[str, Any], allowed: set[str]) -> None:
    unknown = set(opts) - allowed - _COMMON
    if unknown:
        raise UserError(f"option(s) {', '.join(sorted(unknown))} do not apply to {url}")


def _s3(url: str, opts: dict[str, Any], env: Mapping[str, str]) -> Store:
    from deltavault.store.s3 import S3Store

    _check_options(url, opts, _S3_OPTIONS)
    parts = urlsplit(url)
    bucket = parts.netloc
    if not bucket or "@" in bucket or ":" in bucket:
        raise UserError(f"S3 URL must be s3://bucket/prefix, got {url!r}",
                        hint="give the endpoint with AWS_ENDPOINT_URL or the endpoint option")
    if parts.query or parts.fragment:
        raise UserError(f"S3 URL takes no query or fragment: {url!r}")
    kwargs = {k: v for k, v in opts.items() if k in _S3_OPTIONS}
    for option, var in (("endpoint_url", "AWS_ENDPOINT_URL"), ("region", "AWS_DEFAULT_REGION"),
                        ("access_key", "AWS_ACCESS_KEY_ID"),
                        ("secret_key", "AWS_SECRET_ACCESS_KEY"),
                        ("session_token", "AWS_SESSION_TOKEN"), ("profile", "AWS_PROFILE")):
        if kwargs.get(option) is None and env.get(var):
            kwargs[option] = env[var]
    if kwargs.get("region") is None and env.get("AWS_REGION"):
        kwargs["region"] = env["AWS_REGION"]
    return S3Store(bucket, unquote(parts.path).strip("/"), **kwargs)


def _sftp(url: str, opts: dict[str, Any], create: bool) -> Store:
    from deltavault.store.sftp import SFTPStore

    _check_options(url, opts, _SFTP_OPTIONS)
    parts = urlsplit(url)
    try:
        port = parts.port or 22
    except ValueError as exc:
        raise UserError(f"bad port in SFTP URL {url!r}") from exc
    if not parts.hostname or not parts.path or parts.path == "/":
        raise UserError(f"SFTP URL must be sftp://user@host:port/path, got {url!r}")
    if parts.password:
        raise UserError("do not put a password in the SFTP URL; use a key file")
    path = unquote(parts.path)
    if path.startswith("/~/"):
        path = path[3:]  # relative to the login directory
    kwargs = {k: v for k, v in opts.items() if k in _SFTP_OPTIONS}  # not the retry options
    return SFTPStore(parts.hostname, port, unquote(parts.username) if parts.username else None,
                     path, create=create, **kwargs)


def _rest(url: str, opts: dict[str, Any], env: Mapping[str, str]) -> Store:
    from deltavault.store.rest import RestStore

    _check_options("rest:" + url, opts, _REST_OPTIONS)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UserError(f"REST URL must be rest:http(s)://host:port/, got 'rest:{url}'")
    try:
        _ = parts.port
    except ValueError as exc:
        raise UserError(f"bad port in REST URL 'rest:{url}'") from exc
    if parts.username or parts.password:
        raise UserError("do not put credentials in the REST URL; set DELTAVAULT_REST_TOKEN")
    kwargs = {k: v for k, v in opts.items() if k in _REST_OPTIONS}
    token = kwargs.pop("token", None) or env.get("DELTAVAULT_REST_TOKEN")
    return RestStore(url, token, **kwargs)
