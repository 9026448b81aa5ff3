"""S3-compatible object store backend (AWS S3, MinIO, Ceph RGW, moto …) through boto3.

Why boto3 and not s3fs: the store needs exactly the S3 primitives that make it safe to share
between replicas and publishers — conditional writes (``If-None-Match: *``) for the lock,
conditional deletes (``If-Match``) to break a stale lock without racing, and server-side SHA-256
checksums to prove an upload is intact — and boto3 exposes them directly. s3fs adds a filesystem
abstraction (and listing caches that would hide a fresh ``CURRENT``) on top of aiobotocore.

Consistency model: S3 has no rename, so a bundle is uploaded to ``.staging/``, checked there
(size and server-computed SHA-256 of every object), copied server-side into ``versions/<v>/``
with ``manifest.json`` last, and only versions whose manifest exists are listed. ``CURRENT`` is a
single PUT, which S3 applies atomically (readers get the old or the new object).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model_store.backends import STAGING, VERSIONS, check_version_name
from model_store.errors import ChecksumMismatch, StoreError, StoreNotFound
from model_store.manifest import MANIFEST, sha256_file

LOCK = ".lock"


def _is_missing(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("NoSuchKey", "404", "NotFound")


def _is_no_bucket(exc: Exception) -> bool:
    return getattr(exc, "response", {}).get("Error", {}).get("Code") == "NoSuchBucket"


def _is_precondition(exc: Exception) -> bool:
    code = getattr(exc, "response", {}).get("Error", {}).get("Code")
    return code in ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")


class S3Backend:
    """A store under ``s3://bucket/prefix``.

    The client comes from the standard AWS configuration: ``AWS_ENDPOINT_URL`` (or
    ``AWS_ENDPOINT_URL_S3``) points it at an S3-compatible server, credentials come from the
    environment or the usual files.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        client: Any = None,
        cache_dir: str | Path | None = None,
        lock_ttl: float = 600.0,
        lock_timeout: float = 120.0,
    ) -> None:
        if client is None:
            import boto3

            client = boto3.client("s3")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.uri = f"s3://{bucket}/{self.prefix}".rstrip("/")
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.lock_ttl = lock_ttl
        self.lock_timeout = lock_timeout

    @classmethod
    def from_uri(cls, uri: str, cache_dir: str | Path | None = None, client: Any = None) -> S3Backend:
        rest = uri[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise StoreError(f"{uri!r}: an s3:// store URI needs a bucket (s3://bucket/prefix)")
        return cls(bucket, prefix, client=client, cache_dir=cache_dir)

    def _key(self, key: str) -> str:
        return self.prefix + key

    # -- small objects ---------------------------------------------------------------------------
    def read_bytes(self, key: str) -> bytes:
        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read()
        except Exception as exc:
            if _is_missing(exc):
                raise FileNotFoundError(f"{self.uri}/{key}") from exc
            self._raise_if_no_bucket(exc)
            raise StoreError(f"{self.uri}/{key}: {exc}") from exc

    def _raise_if_no_bucket(self, exc: Exception) -> None:
        """A missing bucket is a missing store (as a missing directory is for a local one)."""
        if _is_no_bucket(exc):
            message = f"no model store at {self.uri} (bucket {self.bucket} does not exist)"
            raise StoreNotFound(message) from exc

    def write_atomic(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data, ChecksumAlgorithm="SHA256")

    def create(self) -> None:
        """Nothing to do: a prefix exists once an object is under it (the bucket must exist)."""

    # -- lock ------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """A lease object created with ``If-None-Match: *``: only one writer can create it.

        A lease older than ``lock_ttl`` belongs to a dead publisher and is removed with
        ``If-Match`` on its ETag, so two waiters cannot both break it and both win.
        """
        token = secrets.token_hex(8)
        owner = f"{socket.gethostname()}:{os.getpid()}"
        body = json.dumps({"token": token, "owner": owner, "expires": time.time() + self.lock_ttl}).encode()
        key = self._key(LOCK)
        deadline = time.monotonic() + self.lock_timeout
        while True:
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*")
                break
            except Exception as exc:
                if not _is_precondition(exc):
                    self._raise_if_no_bucket(exc)
                    raise
            self._break_stale_lock(key)
            if time.monotonic() > deadline:
                raise StoreError(f"{self.uri}: store is locked by another writer ({self._lock_owner(key)})")
            time.sleep(0.05 + secrets.randbelow(100) / 1000)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                current = self.client.get_object(Bucket=self.bucket, Key=key)
                if json.loads(current["Body"].read()).get("token") == token:
                    self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=current["ETag"])

    def _lock_owner(self, key: str) -> str:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            return str(json.loads(body)["owner"])
        except Exception:
            return "unknown owner"

    def _break_stale_lock(self, key: str) -> None:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=key)
            expires = float(json.loads(obj["Body"].read()).get("expires", 0))
        except Exception:
            return
        if expires < time.time():
            with contextlib.suppress(Exception):
                self.client.delete_object(Bucket=self.bucket, Key=key, IfMatch=obj["ETag"])

    # -- bundles ---------------------------------------------------------------------------------
    def _list_keys(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self._key(prefix)):
                yield from page.get("Contents", [])
        except Exception as exc:
            self._raise_if_no_bucket(exc)
            raise

    def list_versions(self) -> list[str]:
        base = self._key(VERSIONS + "/")
        out = []
        for obj in self._list_keys(VERSIONS + "/"):
            version, _, name = obj["Key"][len(base) :].partition("/")
            if name == MANIFEST:
                out.append(version)
        return out

    def exists(self, version: str) -> bool:
        prefix = self._key(f"{VERSIONS}/{check_version_name(version)}/")
        try:
            resp = self.client.list_objects_v2(Bucket=self.bucket, Prefix=prefix, MaxKeys=1)
        except Exception as exc:
            self._raise_if_no_bucket(exc)
            raise
        return bool(resp.get("Contents"))

    @contextlib.contextmanager
    def _tempdir(self, prefix: str) -> Iterator[Path]:
        if self.cache_dir:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=self.cache_dir))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def staging(self, version: str) -> contextlib.AbstractContextManager[Path]:
        return self._tempdir(f"recserve-publish-{version}.")

    def commit(self, local_dir: Path, version: str, files: list[str]) -> None:
        check_version_name(version)
        staging = f"{STAGING}/{version}.{secrets.token_hex(4)}/"
        names = [n for n in files if n != MANIFEST] + [MANIFEST]
        try:
            for name in names:
                self.client.upload_file(
                    str(local_dir / name),
                    self.bucket,
                    self._key(staging + name),
                    ExtraArgs={"ChecksumAlgorithm": "SHA256"},
                )
            for name in names:  # prove the stored bytes are the ones we wrote
                self._check_uploaded(local_dir / name, self._key(staging + name))
            for name in names:  # manifest last: the bundle becomes visible with it
                self.client.copy(
                    {"Bucket": self.bucket, "Key": self._key(staging + name)},
                    self.bucket,
                    self._key(f"{VERSIONS}/{version}/{name}"),
                    ExtraArgs={"ChecksumAlgorithm": "SHA256"},
                )
        finally:
            self._delete_prefix(staging)

    def _check_uploaded(self, local: Path, key: str) -> None:
        head = self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
        size, where = local.stat().st_size, f"s3://{self.bucket}/{key}"
        if head["ContentLength"] != size:
            raise ChecksumMismatch(f"{where}: uploaded size {head['ContentLength']} != {size}", where)
        remote = head.get("ChecksumSHA256")
        if remote and "-" not in remote:  # multipart uploads report a checksum of checksums
            local_b64 = base64.b64encode(bytes.fromhex(sha256_file(local))).decode()
            if remote != local_b64:
                raise ChecksumMismatch(f"{where}: uploaded sha256 differs from the local file", where)

    @contextlib.contextmanager
    def fetch(self, version: str) -> Iterator[Path]:
        """Download the manifest and the files it lists into a temporary directory.

        Files the manifest does not list are ignored; names that could escape the directory are
        skipped (verification then reports them missing).
        """
        check_version_name(version)
        with self._tempdir(f"recserve-{version}.") as path:
            base = f"{VERSIONS}/{version}/"
            try:
                raw = self.read_bytes(base + MANIFEST)
            except FileNotFoundError:
                yield path
                return
            (path / MANIFEST).write_bytes(raw)
            try:
                files = json.loads(raw).get("files") or {}
            except (ValueError, AttributeError):
                files = {}
            for name in files if isinstance(files, dict) else {}:
                if not name or "/" in name or name.startswith(".") or name == MANIFEST:
                    continue
                try:
                    self.client.download_file(self.bucket, self._key(base + name), str(path / name))
                except Exception as exc:
                    if not _is_missing(exc):
                        raise StoreError(f"{self.uri}/{base}{name}: download failed: {exc}") from exc
            yield path

    def file_uri(self, version: str, name: str) -> str:
        return f"{self.uri}/{VERSIONS}/{version}/{name}"

    def _delete_prefix(self, prefix: str, manifest_first: str | None = None) -> None:
        keys = [o["Key"] for o in self._list_keys(prefix)]
        if manifest_first and manifest_first in keys:
            self.client.delete_object(Bucket=self.bucket, Key=manifest_first)
            keys.remove(manifest_first)
        for i in range(0, len(keys), 1000):
            chunk = [{"Key": k} for k in keys[i : i + 1000]]
            if chunk:
                self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": chunk, "Quiet": True})

    def delete_version(self, version: str) -> None:
        # The manifest goes first, so the version stops being listed before its files vanish.
        prefix = f"{VERSIONS}/{check_version_name(version)}/"
        self._delete_prefix(prefix, manifest_first=self._key(prefix + MANIFEST))

    def clean_staging(self) -> int:
        """Staging uploads and manifest-less ``versions/<v>/`` objects of dead publishers."""
        keys = {o["Key"] for o in self._list_keys(STAGING + "/")}
        n = len(keys)
        self._delete_prefix(STAGING + "/")
        listed = set(self.list_versions())
        base = self._key(VERSIONS + "/")
        orphans = {
            o["Key"][len(base) :].partition("/")[0]
            for o in self._list_keys(VERSIONS + "/")
            if o["Key"][len(base) :].partition("/")[0] not in listed
        }
        for version in orphans:
            self._delete_prefix(f"{VERSIONS}/{version}/")
        return n + len(orphans)
