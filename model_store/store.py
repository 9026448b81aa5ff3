"""The model store: immutable versioned bundles, a ``CURRENT`` pointer and a promotion history.

Layout (relative to the store root, on any backend)::

    versions/<version>/…   one immutable bundle per version (see bundle.py, docs/bundle-format.md)
    CURRENT                the version the service should serve (one line)
    HISTORY                versions that were CURRENT, oldest first, one per line (rollback undoes)
    .staging/              half-written bundles; never read by anyone
    .lock                  held while publishing/promoting, so two writers cannot interleave

Publishing writes into staging, fsyncs, verifies, makes the bundle visible in one step and only
then replaces ``CURRENT`` (one atomic write). A publisher that dies at any point leaves
``CURRENT`` and every visible bundle untouched; the next ``gc`` removes its leftovers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

from model_store.backends import VERSIONS, Backend, LocalBackend, check_version_name
from model_store.bundle import read_bundle, write_bundle
from model_store.errors import (
    BundleError,
    CurrentMoved,
    InconsistentBundle,
    MissingFile,
    NoModelPublished,
    StoreError,
    VersionNotFound,
)
from model_store.manifest import MANIFEST, parse_manifest, read_manifest, verify_files
from recommender.model import RecommenderModel

CURRENT = "CURRENT"
HISTORY = "HISTORY"


class ModelStore:
    """Store logic over a :class:`~model_store.backends.Backend` (local directory or S3 prefix)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    @property
    def uri(self) -> str:
        return self.backend.uri

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.uri!r})"

    # -- reading ---------------------------------------------------------------------------------
    def list_versions(self) -> list[str]:
        """All published versions, oldest first (version ids sort by time)."""
        return sorted(self.backend.list_versions())

    def current_version(self) -> str:
        try:
            version = self.backend.read_bytes(CURRENT).decode().strip()
        except FileNotFoundError as exc:
            raise NoModelPublished(f"no model published in store {self.uri} (no CURRENT)") from exc
        if not version:
            raise NoModelPublished(f"{self.uri}: CURRENT is empty")
        return version

    def history(self) -> list[str]:
        """Versions that were made CURRENT, oldest first, with rollbacks undone."""
        try:
            text = self.backend.read_bytes(HISTORY).decode()
        except FileNotFoundError:
            return []
        return [line.strip() for line in text.splitlines() if line.strip()]

    def previous_version(self) -> str | None:
        """The version ``rollback`` would make CURRENT (None when there is none to go back to)."""
        stack = self._rollback_stack()
        return stack[-2] if len(stack) >= 2 else None

    def _rollback_stack(self) -> list[str]:
        """History trimmed so it ends at CURRENT, without versions that no longer exist.

        HISTORY is written before CURRENT; if a writer died between the two, HISTORY has a
        trailing entry that never became current, which this drops.
        """
        try:
            current = self.current_version()
        except NoModelPublished:
            return []
        existing = set(self.list_versions())
        stack = [v for v in self.history() if v in existing or v == current]
        while stack and stack[-1] != current:
            stack.pop()
        if not stack:
            stack = [current]
        # Collapse repeats (A, A) so "previous" is always a different version.
        out: list[str] = []
        for v in stack:
            if not out or out[-1] != v:
                out.append(v)
        return out

    def _require(self, version: str) -> str:
        try:
            check_version_name(version)
        except StoreError as exc:
            raise VersionNotFound(str(exc)) from exc
        if not self.backend.exists(version):
            raise VersionNotFound(f"version {version} not found in store {self.uri}")
        return version

    def manifest(self, version: str) -> dict[str, Any]:
        """A version's manifest, checked for a known schema version (no file checksums)."""
        self._require(version)
        key = f"{VERSIONS}/{version}/{MANIFEST}"
        label = self.backend.file_uri(version, MANIFEST)
        try:
            data = self.backend.read_bytes(key)
        except FileNotFoundError as exc:
            raise MissingFile(f"{label}: manifest is missing", label) from exc
        return parse_manifest(data, label)

    @contextlib.contextmanager
    def _local_copy(self, version: str) -> Iterator[Path]:
        """The bundle as a local directory; errors name the file by its store URI."""
        self._require(version)
        with self.backend.fetch(version) as path:
            try:
                yield path
            except BundleError as exc:
                raise _relabel(exc, path, self.backend.file_uri(version, "")) from exc

    def verify(self, version: str) -> dict[str, Any]:
        """Check the manifest and every file's size and sha256; raise a BundleError naming the bad
        file, else return the manifest."""
        with self._local_copy(version) as path:
            manifest = read_manifest(path)
            verify_files(path, manifest)
            return manifest

    def load(self, version: str | None = None, mmap: bool = False) -> tuple[RecommenderModel, dict[str, Any]]:
        """Load ``version`` (default: CURRENT), verifying every checksum first.

        ``mmap`` maps the embeddings and index vectors from the files (see
        :func:`~model_store.bundle.read_bundle`); shared between processes for a local store. An
        S3 bundle's download is deleted after loading, so there each process keeps its own copy
        (Linux keeps the unlinked file alive while it is mapped).
        """
        version = version or self.current_version()
        with self._local_copy(version) as path:
            model, manifest = read_bundle(path, mmap=mmap)
            if model.version != version:
                label = self.backend.file_uri(version, MANIFEST)
                raise InconsistentBundle(f"{label}: manifest names version {model.version!r}", label)
            return model, manifest

    # -- writing ---------------------------------------------------------------------------------
    def publish(
        self,
        model: RecommenderModel,
        training_config: dict[str, Any] | None = None,
        metrics: dict[str, Any] | None = None,
        data_fingerprint: str | None = None,
        make_current: bool = True,
    ) -> str:
        """Write ``model`` as a new immutable version; by default point CURRENT at it."""
        version = check_version_name(model.version)
        self.backend.create()  # publishing is the one operation that may create a store
        with self.backend.lock():
            if self.backend.exists(version):
                raise StoreError(f"version {version} already exists in {self.uri}")
            with self.backend.staging(version) as staging:
                manifest = write_bundle(model, staging, training_config, metrics, data_fingerprint)
                verify_files(staging, read_manifest(staging))
                self.backend.commit(staging, version, list(manifest["files"]))
            if make_current:
                self._set_current(version)
        return version

    def _set_current(self, version: str) -> None:
        stack = self._rollback_stack()
        if not stack or stack[-1] != version:
            stack.append(version)
        self.backend.write_atomic(HISTORY, ("\n".join(stack) + "\n").encode())
        self.backend.write_atomic(CURRENT, (version + "\n").encode())

    def promote(self, version: str, expect_current: str | None = None) -> None:
        """Point CURRENT at an existing version, after verifying it in full.

        With ``expect_current``, only while CURRENT is still that version (a compare-and-set under
        the store's lock, on every backend): a job that started from a CURRENT someone has since
        replaced gets :class:`CurrentMoved` instead of overwriting the newer model.
        """
        with self.backend.lock():
            if expect_current is not None:
                try:
                    current: str | None = self.current_version()
                except NoModelPublished:
                    current = None
                if current != expect_current:
                    raise CurrentMoved(
                        f"{self.uri}: CURRENT is {current}, not {expect_current}: not promoting {version}"
                    )
            self.verify(version)
            self._set_current(version)

    def rollback(self) -> str:
        """Make the previously current version CURRENT again (undo the last promote); returns it."""
        with self.backend.lock():
            stack = self._rollback_stack()
            if len(stack) < 2:
                raise StoreError(f"nothing to roll back to in store {self.uri} (history: {stack})")
            stack.pop()
            target = stack[-1]
            self.verify(target)
            self.backend.write_atomic(HISTORY, ("\n".join(stack) + "\n").encode())
            self.backend.write_atomic(CURRENT, (target + "\n").encode())
            return target

    def gc(self, keep: int) -> list[str]:
        """Delete all but the newest ``keep`` versions, never CURRENT or the previous one; also
        clear dead publishers' staging leftovers. Returns the deleted versions."""
        if keep < 0:
            raise StoreError(f"--keep must be >= 0, got {keep}")
        with self.backend.lock():
            versions = self.list_versions()
            stack = self._rollback_stack()
            protected = set(stack[-2:]) | set(versions[len(versions) - keep :] if keep else [])
            doomed = [v for v in versions if v not in protected]
            for v in doomed:
                self.backend.delete_version(v)
            self.backend.clean_staging()
            if doomed and self.history():
                kept = [v for v in self.history() if v not in doomed]
                self.backend.write_atomic(HISTORY, ("\n".join(kept) + "\n").encode())
            return doomed


class LocalStore(ModelStore):
    """A model store in a local directory (the default backend)."""

    def __init__(self, root: Path | str) -> None:
        super().__init__(LocalBackend(root))
        self.root = Path(root)

    @property
    def versions_dir(self) -> Path:
        return self.root / VERSIONS

    def bundle_path(self, version: str) -> Path:
        """The directory of a published version (raises VersionNotFound)."""
        self._require(version)
        return self.root / VERSIONS / version


def _relabel(exc: BundleError, local: Path, uri_prefix: str) -> BundleError:
    """The same error with a temporary download path replaced by the file's store URI."""
    local_prefix = str(local).rstrip("/") + "/"
    if uri_prefix.rstrip("/") + "/" == local_prefix:
        return exc
    message = str(exc).replace(local_prefix, uri_prefix.rstrip("/") + "/")
    path = exc.path.replace(local_prefix, uri_prefix.rstrip("/") + "/") if exc.path else exc.path
    return type(exc)(message, path)


def open_store(uri: str | Path, cache_dir: str | Path | None = None) -> ModelStore:
    """A store from a URI: a filesystem path, a ``file://`` URL, or ``s3://bucket/prefix``.

    S3 stores use the standard AWS configuration (``AWS_ENDPOINT_URL`` for an S3-compatible
    server, credentials from the environment); ``cache_dir`` is where bundles are downloaded
    before loading (default: the system temp dir).
    """
    text = str(uri)
    if text.startswith("s3://"):
        from model_store.s3 import S3Backend

        return ModelStore(S3Backend.from_uri(text, cache_dir=cache_dir))
    if text.startswith("file://"):
        text = text[len("file://") :]
    if "://" in text:
        raise StoreError(f"unsupported store URI {uri!r} (expected a filesystem path or s3://bucket/prefix)")
    return LocalStore(Path(text))


def clone_model(model: RecommenderModel, version: str) -> RecommenderModel:
    """The same model under another version id (tests and benchmarks publish many versions)."""
    return replace(model, version=version)


__all__ = ["CURRENT", "HISTORY", "LocalStore", "ModelStore", "clone_model", "open_store"]
