"""Repository URLs → stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from deltavault.errors import UserError
from deltavault.store.local import LocalStore
from deltavault.store.object_lock import ObjectLockPolicy
from deltavault.store.rest import RestStore
from deltavault.store.s3 import S3Store
from deltavault.store.sftp import SFTPStore
from deltavault.store.url import open_store
from deltavault.store.wrappers import RetryingStore


def test_local_paths(tmp_path: Path) -> None:
    for url in (str(tmp_path / "a"), f"file://{tmp_path / 'a'}"):
        store = open_store(url, create=True)
        assert isinstance(store, LocalStore) and store.root == tmp_path / "a"
    assert open_store(f"file://localhost{tmp_path}").location() == str(tmp_path)


def test_s3_from_env() -> None:
    env = {"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK",
           "AWS_ENDPOINT_URL": "http://127.0.0.1:9", "AWS_DEFAULT_REGION": "eu-west-1"}
    store = open_store("s3://bucket/some/prefix/", env=env,
                       options={"object_lock": ObjectLockPolicy(days=7), "retries": 2})
    assert isinstance(store, RetryingStore) and store.attempts == 2
    s3 = store.inner
    assert isinstance(s3, S3Store)
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("bucket", "some/prefix/",
                                                       "http://127.0.0.1:9")
    assert s3._s3.meta.region_name == "eu-west-1"
    assert s3.object_lock == ObjectLockPolicy(days=7)
    assert s3.location() == "s3://bucket/some/prefix at http://127.0.0.1:9"


def test_s3_options_override_env() -> None:
    env = {"AWS_ENDPOINT_URL": "http://env:1", "AWS_ACCESS_KEY_ID": "a",
           "AWS_SECRET_ACCESS_KEY": "b"}
    store = open_store("s3://b", env=env, options={"endpoint_url": "http://opt:2",
                                                   "region": "us-east-1"})
    assert isinstance(store, RetryingStore)
    assert isinstance(store.inner, S3Store) and store.inner.endpoint_url == "http://opt:2"
    assert store.inner.prefix == ""


def test_sftp_url() -> None:
    store = open_store("sftp://backup@host.example:2222/srv/repo", options={"timeout": 1})
    assert isinstance(store, RetryingStore)
    sftp = store.inner
    assert isinstance(sftp, SFTPStore)
    assert (sftp.host, sftp.port, sftp.user, sftp.root) == ("host.example", 2222, "backup",
                                                           "/srv/repo")
    home = open_store("sftp://u@h/~/repo")
    assert isinstance(home, RetryingStore) and isinstance(home.inner, SFTPStore)
    assert home.inner.root == "repo" and home.inner.port == 22


def test_rest_url_and_token_env() -> None:
    store = open_store("rest:https://backup.example:8443/",
                       env={"DELTAVAULT_REST_TOKEN": "tok"})
    assert isinstance(store, RetryingStore)
    rest = store.inner
    assert isinstance(rest, RestStore)
    assert rest.base_url == "https://backup.example:8443/"
    assert rest._http.headers["Authorization"] == "Bearer tok"
    explicit = open_store("rest:http://h:1", options={"token": "opt"}, env={})
    assert isinstance(explicit, RetryingStore) and isinstance(explicit.inner, RestStore)
    assert explicit.inner._http.headers["Authorization"] == "Bearer opt"


@pytest.mark.parametrize("url", [
    "", "   ", "s3://", "s3:///prefix", "s3://user@bucket/p", "s3://b/p?x=1", "sftp://host",
    "sftp://host/", "sftp://u:pw@host/p", "sftp://h:notaport/p", "rest:ftp://h/",
    "rest:http:///", "rest:http://user:pw@h/", "rest:http://h:99999/", "gs://bucket/x",
    "file://remotehost/path", "s3:bucket",
])
def test_malformed_urls(url: str) -> None:
    with pytest.raises(UserError):
        open_store(url, env={})


def test_options_must_apply(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="endpoint_url"):
        open_store(str(tmp_path), options={"endpoint_url": "x"})
    with pytest.raises(UserError, match="key_filename"):
        open_store("s3://b", options={"key_filename": "k"}, env={})
