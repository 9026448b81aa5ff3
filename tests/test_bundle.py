"""Bundles: round trip without pickle, checksum failures name the file, atomic publish."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model_store import (
    ChecksumMismatch,
    LocalStore,
    MissingFile,
    NoModelPublished,
    SchemaVersionError,
    read_bundle,
)
from model_store.manifest import SCHEMA_VERSION


def test_round_trip_reproduces_recommendations(trained, published_store: Path) -> None:
    model, _ = trained
    loaded, manifest = LocalStore(published_store).load()
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["version"] == model.version == loaded.version
    assert set(manifest["files"]) >= {"user_emb.npy", "item_emb.npy", "index.faiss", "ranker.safetensors"}
    users = np.arange(10)
    for a, b in zip(model.recommend(users, 10), loaded.recommend(users, 10), strict=True):
        assert np.array_equal(a.items, b.items)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


def test_manifest_has_sizes_checksums_and_metrics(published_store: Path) -> None:
    store = LocalStore(published_store)
    manifest = store.manifest(store.current_version())
    for name, entry in manifest["files"].items():
        path = published_store / "versions" / manifest["version"] / name
        assert entry["size"] == path.stat().st_size
        assert len(entry["sha256"]) == 64
    assert "two_stage" in manifest["metrics"]
    assert manifest["created_at"]


def test_no_pickle_in_a_bundle(published_store: Path) -> None:
    store = LocalStore(published_store)
    folder = published_store / "versions" / store.current_version()
    for path in folder.iterdir():
        assert path.suffix in {".json", ".npy", ".faiss", ".safetensors"}, path
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)  # raises if an object array had been written


@pytest.fixture
def store_copy(trained, tmp_path: Path) -> LocalStore:
    store = LocalStore(tmp_path / "store")
    store.publish(trained[0])
    return store


def _bundle_dir(store: LocalStore) -> Path:
    return store.bundle_path(store.current_version())


def test_flipped_byte_is_a_checksum_mismatch_naming_the_file(store_copy: LocalStore) -> None:
    path = _bundle_dir(store_copy) / "item_emb.npy"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch, match=r"item_emb\.npy"):
        store_copy.load()


def test_truncated_file_is_refused(store_copy: LocalStore) -> None:
    path = _bundle_dir(store_copy) / "index.faiss"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ChecksumMismatch, match=r"index.faiss.*size"):
        store_copy.load()


def test_missing_file_and_manifest_are_refused(store_copy: LocalStore) -> None:
    (_bundle_dir(store_copy) / "ranker.json").unlink()
    with pytest.raises(MissingFile, match=r"ranker\.json"):
        store_copy.load()
    (_bundle_dir(store_copy) / "manifest.json").unlink()
    with pytest.raises(MissingFile, match="manifest"):
        read_bundle(_bundle_dir(store_copy))


def test_unknown_schema_version_is_refused(store_copy: LocalStore) -> None:
    path = _bundle_dir(store_copy) / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["schema_version"] = 999
    path.write_text(json.dumps(manifest))
    with pytest.raises(SchemaVersionError, match="999"):
        store_copy.load()


def test_empty_store_says_nothing_is_published(tmp_path: Path) -> None:
    with pytest.raises(NoModelPublished):
        LocalStore(tmp_path).load()


def test_failed_publish_leaves_current_untouched(trained, store_copy: LocalStore, monkeypatch) -> None:
    before = store_copy.current_version()
    import model_store.store as store_module

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store_module, "write_bundle", boom)
    model = trained[0]
    original = model.version
    model.version = "20990101T000000000000Z-dead"
    try:
        with pytest.raises(OSError, match="disk full"):
            store_copy.publish(model)
    finally:
        model.version = original
    assert store_copy.current_version() == before
    assert store_copy.list_versions() == [before]
    assert not any((store_copy.root / ".staging").iterdir())
