"""What only the S3 backend does: staging by copy (a publisher can die half-way through making a
bundle visible), a lease lock in the bucket, downloads to a cache folder. The behaviour every
backend shares is in ``test_store_contract.py``."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from store_backends import S3StoreUnderTest

from model_store import ModelStore, StoreError
from model_store.manifest import new_version_id
from model_store.s3 import S3Backend
from model_store.store import clone_model
from recommender.model import RecommenderModel
from service.app import create_app
from service.settings import Settings


@pytest.fixture
def model(trained: tuple[RecommenderModel, dict]) -> RecommenderModel:
    return trained[0]


def publish_new(store: ModelStore, model: RecommenderModel, **kw) -> str:
    return store.publish(clone_model(model, new_version_id()), **kw)


def test_publish_leaves_no_staging_or_lock_objects(
    s3_store: S3StoreUnderTest, model: RecommenderModel
) -> None:
    version = publish_new(s3_store.open(), model)
    stored = s3_store.stored_keys()
    assert f"versions/{version}/manifest.json" in stored
    assert not [k for k in stored if k.startswith((".staging", ".lock"))]


def test_publisher_dying_half_way_through_the_copy_leaves_nothing_visible(
    s3_store: S3StoreUnderTest, model: RecommenderModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = s3_store.open()
    good = publish_new(store, model)
    backend = store.backend
    assert isinstance(backend, S3Backend)
    real_copy, calls = backend.client.copy, []

    def copy_then_die(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 3:
            raise ConnectionError("network gone")
        real_copy(*args, **kwargs)

    monkeypatch.setattr(backend.client, "copy", copy_then_die)
    with pytest.raises(ConnectionError):
        publish_new(store, model)
    monkeypatch.setattr(backend.client, "copy", real_copy)
    assert store.list_versions() == [good]
    assert store.current_version() == good
    orphans = {k.split("/")[1] for k in s3_store.stored_keys() if k.startswith("versions/")} - {good}
    assert len(orphans) == 1  # two data files copied, no manifest: invisible
    store.gc(keep=10)
    assert {k.split("/")[1] for k in s3_store.stored_keys() if k.startswith("versions/")} == {good}


def test_lock_excludes_a_second_writer_and_breaks_stale_leases(s3_store: S3StoreUnderTest) -> None:
    first = S3Backend.from_uri(s3_store.uri)
    second = S3Backend.from_uri(s3_store.uri)
    second.lock_timeout = 0.3
    with first.lock(), pytest.raises(StoreError, match="locked by another writer"), second.lock():
        pass
    second.lock_timeout = 30.0  # from here on it must succeed; a loaded CI machine may be slow
    with second.lock():  # released: free again
        pass
    dead = S3Backend.from_uri(s3_store.uri)
    dead.lock_ttl = -1.0  # a lease that has already expired, as a crashed writer's would
    held = dead.lock()
    held.__enter__()  # never released
    with second.lock():
        assert b"token" in s3_store.get(".lock")


def test_service_serves_and_hot_swaps_from_s3(
    s3_store: S3StoreUnderTest, model: RecommenderModel, tmp_path: Path
) -> None:
    store = s3_store.open()
    first = publish_new(store, model)
    settings = Settings(
        store_uri=s3_store.uri,
        store_cache_dir=str(tmp_path / "cache"),
        store_poll_interval=0,
        admin_token="s3cret",
        _env_file=None,
    )
    user = model.user_ids.ids[0]
    with TestClient(create_app(settings)) as client:
        resp = client.get("/recommend", params={"user_id": user})
        assert resp.status_code == 200 and resp.headers["X-Model-Version"] == first
        second = publish_new(store, model)
        resp = client.post("/admin/reload", headers={"Authorization": "Bearer s3cret"})
        assert resp.status_code == 200 and resp.json()["model_version"] == second
        resp = client.get("/recommend", params={"user_id": user})
        assert resp.json()["model_version"] == second
    assert list((tmp_path / "cache").iterdir()) == []  # downloads removed once loaded
