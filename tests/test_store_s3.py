"""The S3 backend against a real S3 HTTP server on loopback (moto's server mode)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import boto3
import numpy as np
import pytest
from fastapi.testclient import TestClient

from model_store import ChecksumMismatch, MissingFile, ModelStore, StoreError, open_store
from model_store.manifest import new_version_id
from model_store.s3 import S3Backend
from model_store.store import clone_model
from recommender.model import RecommenderModel
from recserve.cli import main
from service.app import create_app
from service.settings import Settings

moto_server = pytest.importorskip("moto.server")


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_uri(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh bucket; boto3 finds the server through the standard AWS_* variables."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    bucket = f"recserve-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/models/prod"


@pytest.fixture
def model(trained: tuple[RecommenderModel, dict]) -> RecommenderModel:
    return trained[0]


def keys(uri: str) -> list[str]:
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    resp = boto3.client("s3").list_objects_v2(Bucket=bucket, Prefix=prefix + "/")
    return sorted(o["Key"][len(prefix) + 1 :] for o in resp.get("Contents", []))


def put(uri: str, key: str, data: bytes) -> None:
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    boto3.client("s3").put_object(Bucket=bucket, Key=f"{prefix}/{key}", Body=data)


def get(uri: str, key: str) -> bytes:
    bucket, _, prefix = uri[len("s3://") :].partition("/")
    return boto3.client("s3").get_object(Bucket=bucket, Key=f"{prefix}/{key}")["Body"].read()


def publish_new(store: ModelStore, model: RecommenderModel, **kw) -> str:
    return store.publish(clone_model(model, new_version_id()), **kw)


def test_publish_and_load_round_trip(s3_uri: str, model: RecommenderModel) -> None:
    store = open_store(s3_uri)
    version = publish_new(store, model, metrics={"m": 1})
    assert store.list_versions() == [version]
    assert store.current_version() == version
    assert store.manifest(version)["metrics"] == {"m": 1}
    stored = keys(s3_uri)
    assert f"versions/{version}/manifest.json" in stored
    assert not [k for k in stored if k.startswith((".staging", ".lock"))]  # staging and lock cleaned up
    loaded, _ = store.load()
    users = np.arange(10)
    for a, b in zip(model.recommend(users, 5), loaded.recommend(users, 5), strict=True):
        np.testing.assert_array_equal(a.items, b.items)


def test_verify_names_the_damaged_object(s3_uri: str, model: RecommenderModel) -> None:
    store = open_store(s3_uri)
    version = publish_new(store, model)
    key = f"versions/{version}/item_emb.npy"
    data = bytearray(get(s3_uri, key))
    data[len(data) // 2] ^= 0xFF
    put(s3_uri, key, bytes(data))
    with pytest.raises(ChecksumMismatch, match=f"{s3_uri}/{key}"):
        store.verify(version)
    bucket, _, prefix = s3_uri[5:].partition("/")
    boto3.client("s3").delete_object(Bucket=bucket, Key=f"{prefix}/versions/{version}/ids.json")
    with pytest.raises(MissingFile, match=f"{s3_uri}/versions/{version}/ids.json"):
        store.load(version)


def test_promote_rollback_gc(s3_uri: str, model: RecommenderModel) -> None:
    store = open_store(s3_uri)
    a, b, c = (publish_new(store, model) for _ in range(3))
    store.promote(a)
    assert store.current_version() == a and store.previous_version() == c
    assert store.gc(keep=1) == [b]
    assert store.list_versions() == [a, c]
    assert not [k for k in keys(s3_uri) if k.startswith(f"versions/{b}/")]
    assert store.rollback() == c


def test_publish_that_dies_half_way_leaves_nothing_visible(
    s3_uri: str, model: RecommenderModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = open_store(s3_uri)
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
    orphans = {k.split("/")[1] for k in keys(s3_uri) if k.startswith("versions/")} - {good}
    assert len(orphans) == 1  # two data files copied, no manifest: invisible
    store.gc(keep=10)
    assert {k.split("/")[1] for k in keys(s3_uri) if k.startswith("versions/")} == {good}


def test_lock_excludes_a_second_writer_and_breaks_stale_leases(s3_uri: str) -> None:
    first = S3Backend.from_uri(s3_uri)
    second = S3Backend.from_uri(s3_uri)
    second.lock_timeout = 0.3
    with first.lock(), pytest.raises(StoreError, match="locked by another writer"), second.lock():
        pass
    second.lock_timeout = 30.0  # from here on it must succeed; a loaded CI machine may be slow
    with second.lock():  # released: free again
        pass
    dead = S3Backend.from_uri(s3_uri)
    dead.lock_ttl = -1.0  # a lease that has already expired, as a crashed writer's would
    held = dead.lock()
    held.__enter__()  # never released
    with second.lock():
        assert b"token" in get(s3_uri, ".lock")


def test_concurrent_publishers(s3_uri: str, model: RecommenderModel) -> None:
    published: list[str] = []
    errors: list[BaseException] = []

    def publisher() -> None:
        try:
            for _ in range(2):
                published.append(publish_new(open_store(s3_uri), model))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publisher) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    store = open_store(s3_uri)
    assert store.list_versions() == sorted(published)
    assert sorted(store.history()) == sorted(published)
    for v in published:
        store.verify(v)


def test_cli_against_s3(s3_uri: str, model: RecommenderModel, capsys: pytest.CaptureFixture[str]) -> None:
    store = open_store(s3_uri)
    a = publish_new(store, model)
    b = publish_new(store, model)
    assert main(["store", "list", "--store", s3_uri]) == 0
    out = capsys.readouterr().out
    assert f"current   {b}" in out and f"previous  {a}" in out
    put(s3_uri, f"versions/{b}/index.faiss", b"truncated")
    assert main(["store", "verify", "--store", s3_uri]) == 2
    assert f"{s3_uri}/versions/{b}/index.faiss" in capsys.readouterr().err
    assert main(["store", "rollback", "--store", s3_uri]) == 0
    assert store.current_version() == a


def test_service_serves_and_hot_swaps_from_s3(s3_uri: str, model: RecommenderModel, tmp_path: Path) -> None:
    store = open_store(s3_uri)
    first = publish_new(store, model)
    settings = Settings(
        store_uri=s3_uri,
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
