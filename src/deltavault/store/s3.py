"""S3 (and S3-compatible) backend with conditional writes and Object Lock.

* ``put`` is one ``PutObject`` with ``If-None-Match: *`` (``412`` →
  ObjectExists), or for objects above ``multipart_threshold`` a multipart
  upload whose ``CompleteMultipartUpload`` carries the same condition. The
  object appears atomically either way.
* ``replace`` is ``PutObject`` with ``If-Match: <etag>`` (``If-None-Match:
  *`` when the object must not exist yet); the version token is the ETag.
* Servers that ignore conditional headers are detected once per store by
  writing a probe object twice (``atomic_replace`` asks, so the answer is
  never a guess). For them ``put`` falls back to HEAD then PUT — enough for
  content-addressed and randomly named objects, where two writers of one key
  write the same bytes — and ``replace`` **refuses** with NoCompareAndSwap:
  two ``ledger/checkpoint`` writers could both "win" a HEAD-compare-PUT, so
  no repository lock could make it safe from writers that do not take it;
  see docs/backends.md.
* With an :class:`ObjectLockPolicy`, objects under the protected prefixes
  are written with a retention date. ``delete`` removes the current
  *version* (not just hiding it behind a delete marker), so the server's
  refusal during retention reaches the caller as ObjectLocked.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import threading
from collections.abc import Iterable, Iterator
from typing import Any, Literal

import boto3
import botocore.exceptions
from botocore.config import Config

from deltavault.errors import (
    BackendError,
    BackendUnavailable,
    NoCompareAndSwap,
    ObjectExists,
    ObjectLocked,
    ObjectNotFound,
    PermissionDenied,
    UserError,
    VersionConflict,
)
from deltavault.store.base import ByteRange, ObjectInfo, Store, check_key
from deltavault.store.object_lock import ObjectLockPolicy

_MiB = 1024 * 1024
_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "403",
           "Forbidden", "AllAccessDisabled", "InvalidToken", "ExpiredToken"}
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_PRECONDITION = {"PreconditionFailed", "412", "ConditionalRequestConflict"}


def _utc(value: object) -> dt.datetime | None:
    """S3's ``LastModified`` (the server's clock) as an aware UTC datetime."""
    if not isinstance(value, dt.datetime):
        return None
    return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)


class S3Store(Store):
    """Objects in ``bucket`` under ``prefix`` (``prefix/`` + key)."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        session_token: str | None = None,
        profile: str | None = None,
        session: boto3.session.Session | None = None,
        max_concurrency: int = 16,
        object_lock: ObjectLockPolicy | None = None,
        multipart_threshold: int = 64 * _MiB,
        multipart_chunk: int = 16 * _MiB,
        conditional_writes: bool | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        retries: int = 3,
        addressing_style: Literal["auto", "path", "virtual"] = "auto",
    ) -> None:
        if not bucket:
            raise UserError("S3 bucket name is empty")
        if multipart_chunk < 5 * _MiB:
            raise UserError("S3 multipart parts must be at least 5 MiB")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.endpoint_url = endpoint_url
        self.object_lock = object_lock
        self.multipart_threshold = multipart_threshold
        self.multipart_chunk = multipart_chunk
        self._conditional = conditional_writes
        self._probe_lock = threading.Lock()
        if session is None:
            session = boto3.session.Session(
                aws_access_key_id=access_key,
                aws_secret_access_key=secret_key,
                aws_session_token=session_token,
                profile_name=profile,
                region_name=region,
            )
        style = addressing_style if addressing_style != "auto" else (
            "path" if endpoint_url else "auto")
        config = Config(
            max_pool_connections=max_concurrency,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"max_attempts": retries, "mode": "standard"},
            s3={"addressing_style": style},
            # Checksums on every request would make SeaweedFS/MinIO-era
            # servers that lack CRC trailers reject uploads.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        try:
            self._s3: Any = session.client("s3", endpoint_url=endpoint_url, config=config)
        except botocore.exceptions.BotoCoreError as exc:
            raise UserError(f"cannot configure S3 client: {exc}") from exc

    # --- helpers --------------------------------------------------------------

    def location(self) -> str:
        where = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        return f"{where} at {self.endpoint_url}" if self.endpoint_url else where

    def _key(self, key: str) -> str:
        return self.prefix + check_key(key)

    def _call(self, what: str, key: str, fn: Any, **kwargs: Any) -> Any:
        try:
            return fn(Bucket=self.bucket, **kwargs)
        except botocore.exceptions.ClientError as exc:
            raise self._translate(exc, what, key) from exc
        except (botocore.exceptions.EndpointConnectionError,
                botocore.exceptions.ConnectionError,
                botocore.exceptions.ConnectTimeoutError,
                botocore.exceptions.ReadTimeoutError) as exc:
            raise BackendUnavailable(
                f"cannot reach S3 endpoint {self.endpoint_url or 'AWS'} to {what} {key}: {exc}",
                hint="check the endpoint URL and the network",
            ) from exc
        except botocore.exceptions.NoCredentialsError as exc:
            raise PermissionDenied(
                f"no S3 credentials to {what} {key}",
                hint="set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE",
            ) from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise BackendError(f"S3 {what} {key} failed: {exc}") from exc

    def _translate(self, exc: botocore.exceptions.ClientError, what: str, key: str) -> BackendError:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        message = err.get("Message", "") or code
        if code == "NoSuchBucket":
            return BackendError(
                f"S3 bucket {self.bucket!r} does not exist at {self.endpoint_url or 'AWS'}",
                hint="create the bucket first or check the repository URL",
            )
        if code in _NOT_FOUND or status == 404:
            return ObjectNotFound(f"object {key} not found in {self.location()}")
        if code in _PRECONDITION or status == 412:
            return VersionConflict(f"object {key} changed or exists ({code})")
        if code in _DENIED or status == 403:
            return PermissionDenied(
                f"S3 refused to {what} {key} in bucket {self.bucket!r}: {code} {message}",
                hint="check the access key, secret key and bucket policy",
            )
        if code in ("SlowDown", "ServiceUnavailable", "InternalError", "RequestTimeout") or (
            status >= 500
        ):
            return BackendUnavailable(f"S3 {what} {key} failed, try again: {code} {message}")
        return BackendError(f"S3 {what} {key} failed: {code} {message} (HTTP {status})")

    # --- conditional-write capability ----------------------------------------

    @property  # type: ignore[override]
    def atomic_replace(self) -> bool:  # type: ignore[override]
        """Whether put/replace are atomic: probes the server on first use."""
        return self.conditional_writes()

    def conditional_writes(self) -> bool:
        """Whether the server honours ``If-None-Match``/``If-Match`` (probed once)."""
        if self._conditional is None:
            with self._probe_lock:
                if self._conditional is None:
                    self._conditional = self._probe_conditional()
        return self._conditional

    def _probe_conditional(self) -> bool:
        probe = f"{self.prefix}tmp/cond-probe-{secrets.token_hex(8)}"
        try:
            self._call("probe", probe, self._s3.put_object, Key=probe, Body=b"1",
                       IfNoneMatch="*")
            try:
                self._call("probe", probe, self._s3.put_object, Key=probe, Body=b"2",
                           IfNoneMatch="*")
            except VersionConflict:
                return True
            except BackendError as exc:
                if "NotImplemented" in str(exc) or "501" in str(exc):
                    return False
                raise
            return False
        except BackendError as exc:
            if "NotImplemented" in str(exc) or "(HTTP 501)" in str(exc):
                return False
            raise
        finally:
            self._delete_all_versions(probe)

    def _delete_all_versions(self, full_key: str) -> None:
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=full_key)
            versions = self._s3.list_object_versions(Bucket=self.bucket, Prefix=full_key)
            for entry in versions.get("Versions", []) + versions.get("DeleteMarkers", []):
                if entry["Key"] == full_key:
                    self._s3.delete_object(Bucket=self.bucket, Key=full_key,
                                           VersionId=entry["VersionId"])
        except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError):
            pass  # a leftover probe under tmp/ is harmless; readers ignore it

    # --- reads ---------------------------------------------------------------

    def get(self, key: str, byte_range: ByteRange | None = None) -> bytes:
        kwargs: dict[str, Any] = {"Key": self._key(key)}
        if byte_range is not None:
            if byte_range.length == 0:
                self.stat(key)  # still report a missing object
                return b""
            end = "" if byte_range.length is None else str(byte_range.start + byte_range.length - 1)
            kwargs["Range"] = f"bytes={byte_range.start}-{end}"
        try:
            resp = self._call("read", key, self._s3.get_object, **kwargs)
        except BackendError as exc:
            if "InvalidRange" in str(exc):
                return b""  # a range starting at or past the end is empty
            raise
        return bytes(resp["Body"].read())

    def get_versioned(self, key: str) -> tuple[bytes, str]:
        resp = self._call("read", key, self._s3.get_object, Key=self._key(key))
        return bytes(resp["Body"].read()), str(resp["ETag"])

    def stat(self, key: str) -> ObjectInfo:
        resp = self._call("stat", key, self._s3.head_object, Key=self._key(key))
        return ObjectInfo(key, int(resp["ContentLength"]), str(resp["ETag"]),
                          _utc(resp.get("LastModified")))

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        paginator = self._s3.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + prefix)
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"][len(self.prefix):]
                    if key.startswith("tmp/"):
                        continue
                    yield ObjectInfo(key, int(obj["Size"]), str(obj["ETag"]),
                                     _utc(obj.get("LastModified")))
        except botocore.exceptions.ClientError as exc:
            raise self._translate(exc, "list", prefix or "/") from exc
        except botocore.exceptions.BotoCoreError as exc:
            raise BackendUnavailable(f"S3 list {prefix!r} failed: {exc}") from exc

    # --- writes --------------------------------------------------------------

    def _lock_args(self, key: str) -> dict[str, Any]:
        if self.object_lock is None or not self.object_lock.applies_to(key):
            return {}
        return {
            "ObjectLockMode": self.object_lock.mode.upper(),
            "ObjectLockRetainUntilDate": self.object_lock.retain_until(),
        }

    def put(self, key: str, data: bytes | bytearray) -> None:
        full = self._key(key)
        extra = self._lock_args(key)
        if self.conditional_writes():
            try:
                self._upload(key, full, data, {"IfNoneMatch": "*"}, extra)
            except VersionConflict as exc:
                raise ObjectExists(f"object {key} already exists") from exc
            return
        # Fallback for servers without conditional writes: two writers may both
        # pass the HEAD. Only content-addressed and randomly named objects are
        # written to such a store (init and the ledger refuse it), so both
        # would write the same bytes.
        if self.exists(key):
            raise ObjectExists(f"object {key} already exists")
        self._upload(key, full, data, {}, extra)

    def replace(self, key: str, data: bytes, expected_version: str | None) -> str:
        full = self._key(key)
        if self.conditional_writes():
            cond = {"IfNoneMatch": "*"} if expected_version is None else {
                "IfMatch": expected_version}
            try:
                return self._upload(key, full, data, cond, self._lock_args(key))
            except (VersionConflict, ObjectNotFound) as exc:
                raise VersionConflict(
                    f"object {key} changed since it was read (expected {expected_version})"
                ) from exc
        # HEAD, compare, PUT would let two writers both "win": refuse instead.
        raise NoCompareAndSwap(
            f"S3 server {self.endpoint_url or 'AWS'} ignores conditional writes: refusing to "
            f"replace {key} without an atomic compare-and-swap")

    def _upload(self, key: str, full: str, data: bytes | bytearray, cond: dict[str, str],
                extra: dict[str, Any]) -> str:
        if len(data) <= self.multipart_threshold:
            resp = self._call("write", key, self._s3.put_object, Key=full, Body=data,
                              **cond, **extra)
            return str(resp["ETag"])
        return self._multipart(key, full, data, cond, extra)

    def _multipart(self, key: str, full: str, data: bytes | bytearray, cond: dict[str, str],
                   extra: dict[str, Any]) -> str:
        upload = self._call("write", key, self._s3.create_multipart_upload, Key=full, **extra)
        upload_id = upload["UploadId"]
        try:
            parts = []
            view = memoryview(data)
            for number, start in enumerate(range(0, len(data), self.multipart_chunk), 1):
                part = self._call("write", key, self._s3.upload_part, Key=full,
                                  UploadId=upload_id, PartNumber=number,
                                  Body=bytes(view[start:start + self.multipart_chunk]))
                parts.append({"PartNumber": number, "ETag": part["ETag"]})
            resp = self._call("write", key, self._s3.complete_multipart_upload, Key=full,
                              UploadId=upload_id, MultipartUpload={"Parts": parts}, **cond)
            return str(resp["ETag"])
        except BaseException:
            # On failure, the bucket's lifecycle rule for incomplete uploads cleans up.
            with contextlib.suppress(botocore.exceptions.ClientError,
                                     botocore.exceptions.BotoCoreError):
                self._s3.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
            raise

    def delete(self, key: str) -> None:
        full = self._key(key)
        head = self._call("delete", key, self._s3.head_object, Key=full)
        version_id = head.get("VersionId")
        if version_id in (None, "null") and "ObjectLockMode" not in head:
            self._call("delete", key, self._s3.delete_object, Key=full)
            return
        # Versioned bucket (Object Lock implies versioning): delete the
        # version itself, so retention is enforced instead of a delete marker
        # silently hiding the object.
        try:
            self._call("delete", key, self._s3.delete_object, Key=full, VersionId=version_id)
        except PermissionDenied as exc:
            until = head.get("ObjectLockRetainUntilDate")
            held = head.get("ObjectLockLegalHoldStatus") == "ON"
            if held or (until is not None and until > dt.datetime.now(dt.UTC)):
                raise ObjectLocked(
                    f"object {key} is under S3 Object Lock "
                    f"({head.get('ObjectLockMode', 'legal hold')} until {until})",
                    hint="it can be deleted once its retention has expired",
                ) from exc
            raise

    # --- Object Lock maintenance ---------------------------------------------

    def extend_retention(self, keys: Iterable[str], until: dt.datetime) -> int:
        """Extend the retention of existing objects to at least ``until``.

        A maintenance step for packs reused by new snapshots (kopia#1067):
        retention set at upload would otherwise expire while a newer
        snapshot still needs the pack. Never shortens a retention.

        Returns:
            How many objects had their retention extended.
        """
        mode = (self.object_lock.mode if self.object_lock else "compliance").upper()
        changed = 0
        for key in keys:
            full = self._key(key)
            head = self._call("stat", key, self._s3.head_object, Key=full)
            current = head.get("ObjectLockRetainUntilDate")
            if current is not None and current >= until:
                continue
            self._call("extend retention of", key, self._s3.put_object_retention, Key=full,
                       VersionId=head.get("VersionId"),
                       Retention={"Mode": head.get("ObjectLockMode", mode),
                                  "RetainUntilDate": until})
            changed += 1
        return changed

    def retention(self, key: str) -> tuple[str | None, dt.datetime | None]:
        """The Object Lock mode and retain-until date of ``key`` (None if unset)."""
        head = self._call("stat", key, self._s3.head_object, Key=self._key(key))
        return head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")

    def close(self) -> None:
        self._s3.close()
