"""The manifest: what a bundle is, and the checksums that prove its files are intact."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from model_store.errors import ChecksumMismatch, MissingFile, SchemaVersionError

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"


def new_version_id(now: datetime | None = None) -> str:
    """A version id that sorts by creation time: ``20261126T041500123456Z-1a2b``.

    The random suffix keeps two publishes in the same microsecond distinct.
    """
    now = now or datetime.now(UTC)
    return now.strftime("%Y%m%dT%H%M%S%fZ") + "-" + secrets.token_hex(2)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def file_entries(directory: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    return {
        n: {"sha256": sha256_file(directory / n), "size": (directory / n).stat().st_size}
        for n in sorted(names)
    }


def parse_manifest(text: str | bytes, label: str) -> dict[str, Any]:
    """Decode and check a manifest's JSON; ``label`` names the file in errors (a path or a URI)."""
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ChecksumMismatch(f"{label}: manifest is not valid JSON ({exc})", label) from exc
    if not isinstance(manifest, dict):
        raise ChecksumMismatch(f"{label}: manifest is not a JSON object", label)
    version = manifest.get("schema_version")
    if version != SCHEMA_VERSION:
        raise SchemaVersionError(
            f"{label}: unknown schema_version {version!r} (this build reads {SCHEMA_VERSION})", label
        )
    return manifest


def read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise MissingFile(f"{path}: manifest is missing", str(path))
    return parse_manifest(path.read_bytes(), str(path))


def verify_files(directory: Path, manifest: dict[str, Any]) -> None:
    """Raise on the first missing file, size mismatch or checksum mismatch (size first: cheap)."""
    files = manifest.get("files")
    if not isinstance(files, dict) or not files:
        raise ChecksumMismatch(f"{directory / MANIFEST}: no 'files' table", str(directory / MANIFEST))
    for name, entry in sorted(files.items()):
        path = directory / name
        if not path.is_file():
            raise MissingFile(f"{path}: listed in the manifest but missing", str(path))
        size = path.stat().st_size
        if size != entry.get("size"):
            raise ChecksumMismatch(f"{path}: size {size} != manifest {entry.get('size')}", str(path))
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            raise ChecksumMismatch(
                f"{path}: sha256 {digest[:12]}… != manifest {str(entry.get('sha256'))[:12]}…", str(path)
            )
