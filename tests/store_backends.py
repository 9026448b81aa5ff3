"""Every model-store backend behind one test handle, so a store test is written once and runs on each.

A handle knows its store URI and can read and write the raw objects underneath the store (files of
a local directory, objects of an S3 prefix), which is what tests need to damage a bundle or plant a
dead publisher's leftovers. Fixtures that build handles are in ``tests/conftest.py``
(``store_backend``, parametrised over :data:`BACKENDS`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bundle_faults import damage

from model_store import ModelStore, open_store
from model_store.backends import VERSIONS

BACKENDS = ("local", "s3")


class StoreUnderTest:
    """A store URI plus raw access to the objects under it (keys are relative to the store root)."""

    kind = ""

    def __init__(self, uri: str) -> None:
        self.uri = uri

    def __repr__(self) -> str:
        return f"{self.kind}:{self.uri}"

    def open(self) -> ModelStore:
        """A fresh store object, as another process would open it."""
        return open_store(self.uri)

    def file_uri(self, version: str, name: str) -> str:
        """How errors name a bundle file (the store URI, never a temporary download path)."""
        return f"{self.uri}/{VERSIONS}/{version}/{name}"

    def missing_uri(self) -> str:
        """A URI of this kind where no store exists (a mistyped path, a bucket that is not there)."""
        raise NotImplementedError

    def stored_keys(self) -> list[str]:
        raise NotImplementedError

    def get(self, key: str) -> bytes:
        raise NotImplementedError

    def put(self, key: str, data: bytes) -> None:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def damage(self, version: str, fault: str) -> str:
        """Apply a :mod:`bundle_faults` fault to a published bundle; returns the file to blame."""
        prefix = f"{VERSIONS}/{version}/"
        with tempfile.TemporaryDirectory(prefix="recserve-damage-") as tmp:
            local = Path(tmp)
            before = {k[len(prefix) :]: self.get(k) for k in self.stored_keys() if k.startswith(prefix)}
            for name, data in before.items():
                (local / name).write_bytes(data)
            blamed = damage(local, fault)
            after = {p.name: p.read_bytes() for p in local.iterdir()}
        for name in before.keys() - after.keys():
            self.delete(prefix + name)
        for name, data in after.items():
            if before.get(name) != data:
                self.put(prefix + name, data)
        return blamed


class LocalStoreUnderTest(StoreUnderTest):
    kind = "local"

    def __init__(self, root: Path) -> None:
        root.mkdir(parents=True, exist_ok=True)  # an empty store is an existing, empty folder
        super().__init__(str(root))
        self.root = root

    def missing_uri(self) -> str:
        return str(self.root.parent / "no-such-store" / "models")

    def stored_keys(self) -> list[str]:
        return sorted(p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file())

    def get(self, key: str) -> bytes:
        return (self.root / key).read_bytes()

    def put(self, key: str, data: bytes) -> None:
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def delete(self, key: str) -> None:
        (self.root / key).unlink()


class S3StoreUnderTest(StoreUnderTest):
    kind = "s3"

    def __init__(self, bucket: str, prefix: str) -> None:
        import boto3

        super().__init__(f"s3://{bucket}/{prefix}")
        self.bucket, self.prefix = bucket, prefix
        self.client = boto3.client("s3")
        self.client.create_bucket(Bucket=bucket)

    def missing_uri(self) -> str:
        return f"s3://{self.bucket}-missing/{self.prefix}"

    def stored_keys(self) -> list[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + "/")
        return sorted(o["Key"][len(self.prefix) + 1 :] for page in pages for o in page.get("Contents", []))

    def get(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")["Body"].read()

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}", Body=data)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=f"{self.prefix}/{key}")
