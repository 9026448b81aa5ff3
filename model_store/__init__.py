"""Versioned, checksummed model bundles: write, publish atomically, verify, load.

The service reads through this package and training writes through it; neither knows the file
layout. No pickle anywhere: loading a bundle never executes code from it.
"""

from model_store.bundle import read_bundle, write_bundle
from model_store.errors import (
    BundleError,
    ChecksumMismatch,
    CurrentMoved,
    InconsistentBundle,
    MissingFile,
    NoModelPublished,
    SchemaVersionError,
    StoreError,
    StoreNotFound,
    VersionNotFound,
)
from model_store.store import LocalStore, ModelStore, open_store

__all__ = [
    "BundleError",
    "ChecksumMismatch",
    "CurrentMoved",
    "InconsistentBundle",
    "LocalStore",
    "MissingFile",
    "ModelStore",
    "NoModelPublished",
    "SchemaVersionError",
    "StoreError",
    "StoreNotFound",
    "VersionNotFound",
    "open_store",
    "read_bundle",
    "write_bundle",
]
