"""Exception tree of the model store.

``StoreError``
 ├── ``StoreNotFound`` — nothing at the store's location (reading never creates a store)
 ├── ``NoModelPublished`` — the store has no CURRENT version yet
 ├── ``VersionNotFound`` — a named version does not exist
 └── ``BundleError`` — a bundle cannot be trusted (the caller keeps its previous model)
      ├── ``MissingFile`` — the manifest or a listed file is absent
      ├── ``ChecksumMismatch`` — a file's sha256 or size differs from the manifest
      ├── ``SchemaVersionError`` — the manifest's schema version is unknown
      └── ``InconsistentBundle`` — files verify but do not fit together (e.g. dimensions)
"""

from __future__ import annotations


class StoreError(Exception):
    """Base class: anything that went wrong reading or writing the store."""


class StoreNotFound(StoreError):
    """Nothing exists at the store's location: a mistyped path must not read as an empty store."""


class NoModelPublished(StoreError):
    """The store exists but nothing has been published (no CURRENT pointer)."""


class VersionNotFound(StoreError):
    """A version named by the caller is not in the store."""


class CurrentMoved(StoreError):
    """CURRENT is no longer the version a compare-and-set promote expected (another writer won)."""


class BundleError(StoreError):
    """A bundle failed verification; ``reason`` is a short machine-friendly label for metrics."""

    reason = "invalid"

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


class MissingFile(BundleError):
    reason = "missing_file"


class ChecksumMismatch(BundleError):
    reason = "checksum_mismatch"


class SchemaVersionError(BundleError):
    reason = "schema_version"


class InconsistentBundle(BundleError):
    reason = "inconsistent"
