"""The model store: a folder of immutable bundles and a ``CURRENT`` pointer.

Layout::

    <root>/versions/<version>/…   one immutable bundle per version (see bundle.py)
    <root>/CURRENT                 the version the service should serve (one line)
    <root>/.staging/               half-written bundles; never read by anyone
    <root>/.lock                   held while publishing, so two publishers cannot interleave

Publishing writes into ``.staging``, fsyncs, verifies, renames the folder into ``versions/``
(atomic on one filesystem) and only then replaces ``CURRENT`` (write temp + ``os.replace``).
A publisher that dies at any point leaves ``CURRENT`` and every visible bundle untouched.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from model_store.bundle import _fsync_dir, read_bundle, write_bundle
from model_store.errors import NoModelPublished, StoreError, VersionNotFound
from model_store.manifest import read_manifest, verify_files
from recommender.model import RecommenderModel


class LocalStore:
    """A model store on the local filesystem."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with (self.root / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def list_versions(self) -> list[str]:
        """All published versions, oldest first (version ids sort by time)."""
        if not self.versions_dir.is_dir():
            return []
        return sorted(p.name for p in self.versions_dir.iterdir() if p.is_dir())

    def current_version(self) -> str:
        path = self.root / "CURRENT"
        try:
            version = path.read_text().strip()
        except FileNotFoundError as exc:
            raise NoModelPublished(f"no model published in store {self.root} (no CURRENT file)") from exc
        if not version:
            raise NoModelPublished(f"{path} is empty")
        return version

    def bundle_path(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise VersionNotFound(f"invalid version name {version!r}")
        path = self.versions_dir / version
        if not path.is_dir():
            raise VersionNotFound(f"version {version} not found in store {self.root}")
        return path

    def manifest(self, version: str) -> dict[str, Any]:
        return read_manifest(self.bundle_path(version))

    def verify(self, version: str) -> dict[str, Any]:
        """Raise a BundleError naming the bad file, else return the manifest."""
        path = self.bundle_path(version)
        manifest = read_manifest(path)
        verify_files(path, manifest)
        return manifest

    def load(self, version: str | None = None) -> tuple[RecommenderModel, dict[str, Any]]:
        """Load ``version`` (default: CURRENT), verifying every checksum."""
        return read_bundle(self.bundle_path(version or self.current_version()))

    def publish(
        self,
        model: RecommenderModel,
        training_config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        data_fingerprint: str | None = None,
        make_current: bool = True,
    ) -> str:
        """Write ``model`` as a new immutable version; by default point CURRENT at it."""
        with self._lock():
            staging_root = self.root / ".staging"
            staging_root.mkdir(parents=True, exist_ok=True)
            self.versions_dir.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f"{model.version}.", dir=staging_root))
            try:
                write_bundle(model, staging, training_config, metrics, data_fingerprint)
                verify_files(staging, read_manifest(staging))
                target = self.versions_dir / model.version
                if target.exists():
                    raise StoreError(f"version {model.version} already exists in {self.root}")
                os.rename(staging, target)
                _fsync_dir(self.versions_dir)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            if make_current:
                self._set_current(model.version)
        return model.version

    def _set_current(self, version: str) -> None:
        tmp = self.root / f".CURRENT.{os.getpid()}.tmp"
        with tmp.open("w") as fh:
            fh.write(version + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.root / "CURRENT")
        _fsync_dir(self.root)

    def promote(self, version: str) -> None:
        """Point CURRENT at an existing, verified version."""
        with self._lock():
            self.verify(version)
            self._set_current(version)


def open_store(uri: str | Path) -> LocalStore:
    """A store from a URI: a filesystem path or ``file://`` URL."""
    text = str(uri)
    if text.startswith("file://"):
        text = text[len("file://") :]
    if "://" in text:
        raise StoreError(f"unsupported store URI {uri!r} (expected a filesystem path)")
    return LocalStore(Path(text))
