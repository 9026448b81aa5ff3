"""The bundle format of a trained model: which files, what the manifest records, no pickle.

Damage of every kind (flipped byte, truncation, missing file or manifest, unknown schema, wrong
dimensions, a pickled array) is refused on every backend: ``test_store_contract.py``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model_store import LocalStore, read_bundle
from model_store.manifest import SCHEMA_VERSION


def test_a_trained_model_bundle_lists_its_files_and_metrics(trained, published_store: Path) -> None:
    model, _ = trained
    store = LocalStore(published_store)
    manifest = store.manifest(store.current_version())
    assert manifest["schema_version"] == SCHEMA_VERSION and manifest["version"] == model.version
    assert set(manifest["files"]) >= {"user_emb.npy", "item_emb.npy", "index.faiss", "ranker.safetensors"}
    for name, entry in manifest["files"].items():
        path = published_store / "versions" / manifest["version"] / name
        assert entry["size"] == path.stat().st_size
        assert len(entry["sha256"]) == 64
    assert "two_stage" in manifest["metrics"]
    assert manifest["created_at"]


def test_read_bundle_round_trip(trained, published_store: Path) -> None:
    model, _ = trained
    store = LocalStore(published_store)
    loaded, _ = read_bundle(store.bundle_path(store.current_version()))
    users = np.arange(10)
    for a, b in zip(model.recommend(users, 10), loaded.recommend(users, 10), strict=True):
        assert np.array_equal(a.items, b.items)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)


def test_no_pickle_in_a_bundle(published_store: Path) -> None:
    store = LocalStore(published_store)
    folder = published_store / "versions" / store.current_version()
    for path in folder.iterdir():
        assert path.suffix in {".json", ".npy", ".faiss", ".safetensors"}, path
        if path.suffix == ".npy":
            np.load(path, allow_pickle=False)  # raises if an object array had been written


def test_mmap_load_maps_the_files_and_answers_the_same(published_store: Path) -> None:
    store = LocalStore(published_store)
    copied, _ = store.load()
    mapped, _ = store.load(mmap=True)
    # the embeddings are read-only views of the bundle's own files, not copies
    bundle = store.bundle_path(store.current_version())
    assert isinstance(mapped.item_emb, np.memmap) and not isinstance(copied.item_emb, np.memmap)
    assert Path(mapped.item_emb.filename) == (bundle / "item_emb.npy").resolve()
    assert not mapped.user_emb.flags.writeable
    users = np.arange(10)
    for a, b in zip(copied.recommend(users, 10), mapped.recommend(users, 10), strict=True):
        assert np.array_equal(a.items, b.items)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    for item in range(5):
        assert np.array_equal(copied.similar(item, 5).items, mapped.similar(item, 5).items)
