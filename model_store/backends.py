"""Where a store's bytes live: one small interface, a local-filesystem and an S3 implementation.

:class:`~model_store.store.ModelStore` holds all the store logic (versions, ``CURRENT``, history,
rollback, gc); a backend only knows how to keep bundles and small pointer files, and how to make
a fully written bundle visible in one step. Keys are ``/``-separated paths relative to the store
root (``CURRENT``, ``HISTORY``, ``versions/<version>/manifest.json``).

A bundle becomes visible in one step: the local backend renames a complete directory into
``versions/``; the S3 backend writes ``versions/<version>/manifest.json`` last, and lists only
versions whose manifest exists. Either way a publisher that dies half-way leaves nothing a reader would load.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from model_store.errors import StoreError, StoreNotFound

VERSIONS = "versions"
STAGING = ".staging"


def fsync_dir(path: Path) -> None:
    """Persist a directory entry change (a rename or a new file) before we rely on it."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_version_name(version: str) -> str:
    """Refuse names that could escape ``versions/`` or hide as dotfiles."""
    bad = not version or version.startswith(".") or version != version.strip()
    if bad or "/" in version or "\\" in version:
        raise StoreError(f"invalid version name {version!r}")
    return version


class Backend(Protocol):
    """The storage operations a :class:`~model_store.store.ModelStore` needs, and nothing more."""

    uri: str

    def read_bytes(self, key: str) -> bytes:
        """The object's bytes; ``FileNotFoundError`` when it does not exist."""
        ...

    def write_atomic(self, key: str, data: bytes) -> None:
        """Replace a small object so that readers see the old or the new bytes, never a mix."""
        ...

    def create(self) -> None:
        """Make the store exist so a first publish can write into it (reads never create one)."""
        ...

    def lock(self) -> contextlib.AbstractContextManager[None]:
        """Exclusive lock over the store for publish/promote/rollback/gc."""
        ...

    def list_versions(self) -> list[str]:
        """Names of visible bundles, unsorted."""
        ...

    def exists(self, version: str) -> bool:
        """Whether anything of ``version`` is in the store (even a damaged bundle)."""
        ...

    def staging(self, version: str) -> contextlib.AbstractContextManager[Path]:
        """An empty local directory to write a bundle into; removed on exit unless committed."""
        ...

    def commit(self, local_dir: Path, version: str, files: list[str]) -> None:
        """Make the bundle in ``local_dir`` visible as ``version`` (files listed, manifest last)."""
        ...

    def fetch(self, version: str) -> contextlib.AbstractContextManager[Path]:
        """A local directory holding the bundle's files for the duration of the block."""
        ...

    def file_uri(self, version: str, name: str) -> str:
        """How to name one of a bundle's files in an error message."""
        ...

    def delete_version(self, version: str) -> None:
        """Remove a bundle; it stops being visible before any of its data files go."""
        ...

    def clean_staging(self) -> int:
        """Remove leftovers of dead publishers (call under the lock); returns how many."""
        ...


class LocalBackend:
    """A store on a local (or shared POSIX) filesystem: atomic renames and ``flock``.

    Layout: ``versions/<v>/`` bundles, ``CURRENT``, ``HISTORY``, ``.staging/`` half-written
    bundles, ``.lock`` the publishers' lock file.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.uri = str(self.root)

    def _path(self, key: str) -> Path:
        return self.root / key

    def _require_root(self) -> None:
        # A missing root is an error, not an empty store: `store list --store /mistyped` would
        # otherwise report "no versions" and a service would wait forever on the wrong path.
        if not self.root.is_dir():
            raise StoreNotFound(f"no model store at {self.uri} (no such directory)")

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            self._require_root()
            raise

    def write_atomic(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        fsync_dir(path.parent)

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        # flock is released by the kernel when the holder dies, so a crashed publisher never
        # leaves the store locked. Only publish creates the root (create()); gc or rollback on a
        # mistyped path fails instead of making an empty store there.
        self._require_root()
        with (self.root / ".lock").open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def list_versions(self) -> list[str]:
        base = self.root / VERSIONS
        if not base.is_dir():
            self._require_root()
            return []
        # A directory in versions/ got there by one rename of a complete bundle: list it even if
        # it was damaged afterwards, so `verify` can say what is wrong with it.
        return [p.name for p in base.iterdir() if p.is_dir()]

    def exists(self, version: str) -> bool:
        if self.version_dir(version).is_dir():
            return True
        self._require_root()
        return False

    def version_dir(self, version: str) -> Path:
        return self.root / VERSIONS / check_version_name(version)

    @contextlib.contextmanager
    def staging(self, version: str) -> Iterator[Path]:
        # Inside the store, so the final rename stays on one filesystem (atomic).
        staging_root = self.root / STAGING
        staging_root.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix=f"{version}.", dir=staging_root))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def commit(self, local_dir: Path, version: str, files: list[str]) -> None:
        target = self.version_dir(version)
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            raise StoreError(f"version {version} already exists in {self.uri}")
        os.rename(local_dir, target)
        fsync_dir(target.parent)

    @contextlib.contextmanager
    def fetch(self, version: str) -> Iterator[Path]:
        yield self.version_dir(version)

    def file_uri(self, version: str, name: str) -> str:
        return str(self.version_dir(version) / name)

    def delete_version(self, version: str) -> None:
        # Rename out of versions/ first: the bundle disappears in one step, then is removed.
        src = self.version_dir(version)
        trash_root = self.root / STAGING
        trash_root.mkdir(parents=True, exist_ok=True)
        trash = Path(tempfile.mkdtemp(prefix=f"deleted-{version}.", dir=trash_root))
        os.rename(src, trash / "bundle")
        fsync_dir(src.parent)
        shutil.rmtree(trash, ignore_errors=True)

    def clean_staging(self) -> int:
        staging_root = self.root / STAGING
        if not staging_root.is_dir():
            return 0
        n = 0
        for p in staging_root.iterdir():
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
            n += 1
        return n
