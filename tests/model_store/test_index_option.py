"""The compressed index option (IVF-PQ) in a bundle: round trip, mapped load, serving; and
bundles written before the option still load as the inner-product HNSW they hold."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
from bundle_faults import _rehash
from fastapi.testclient import TestClient

from model_store import LocalStore, read_bundle
from recommender.retrieval import ItemIndex, IVFPQParams
from service.app import create_app
from service.settings import Settings


def _compressed(trained, tmp_path: Path) -> tuple[object, Path]:
    model, metrics = trained
    index = ItemIndex.build(model.item_emb, "ivfpq", IVFPQParams(pq_m=8, nprobe=4, refine=4))
    compressed = dataclasses.replace(model, index=index, version=model.version + "-pq")
    root = tmp_path / "store"
    LocalStore(root).publish(compressed, metrics=metrics)
    return compressed, root


def test_ivfpq_bundle_round_trips_and_answers_the_same(trained, tmp_path: Path) -> None:
    compressed, root = _compressed(trained, tmp_path)
    store = LocalStore(root)
    bundle = store.bundle_path(store.current_version())
    assert json.loads((bundle / "model.json").read_text())["index_params"]["nprobe"] == 4
    users = np.arange(20)
    for mmap in (False, True):
        loaded, _ = store.load(mmap=mmap)
        assert loaded.index.kind == "ivfpq" and loaded.index.nprobe == 4 and not loaded.index.mips_transform
        for a, b in zip(compressed.recommend(users, 10), loaded.recommend(users, 10), strict=True):
            assert np.array_equal(a.items, b.items)
            np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)


def test_ivfpq_bundle_serves(trained, tmp_path: Path) -> None:
    compressed, root = _compressed(trained, tmp_path)
    app = create_app(Settings(store_uri=str(root), _env_file=None))
    with TestClient(app) as client:
        user, item = compressed.user_ids.external(0), compressed.item_ids.external(0)
        rec = client.get("/recommend", params={"user_id": user, "k": 5})
        sim = client.get("/similar-items", params={"item_id": item, "k": 5})
    assert rec.status_code == 200 and len(rec.json()["items"]) == 5
    assert sim.status_code == 200 and len(sim.json()["items"]) == 5
    assert rec.json()["model_version"] == compressed.version


def test_bundle_without_index_params_still_loads(published_store: Path, tmp_path: Path) -> None:
    """A bundle written before ``index_params`` existed: an inner-product HNSW, as before."""
    store = LocalStore(published_store)
    source = store.bundle_path(store.current_version())
    old = tmp_path / source.name
    shutil.copytree(source, old)
    meta = json.loads((old / "model.json").read_text())
    del meta["index_params"]
    (old / "model.json").write_text(json.dumps(meta))
    _rehash(old, "model.json")
    model, _ = read_bundle(old)
    fresh, _ = read_bundle(source)
    assert model.index.kind == "hnsw" and not model.index.mips_transform
    users = np.arange(10)
    for a, b in zip(fresh.recommend(users, 10), model.recommend(users, 10), strict=True):
        assert np.array_equal(a.items, b.items)
