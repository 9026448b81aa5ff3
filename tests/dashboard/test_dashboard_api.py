"""``/dashboard`` and its JSON endpoints, in process (the browser test drives the page itself)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import Depends, Header
from fastapi.testclient import TestClient

from model_store import LocalStore, StoreError
from model_store.manifest import new_version_id
from model_store.store import clone_model
from recommender.model import RecommenderModel
from service.app import create_app
from service.errors import APIError
from service.routers import dashboard
from service.settings import Settings


@pytest.fixture
def model(client: TestClient) -> RecommenderModel:
    return client.app.state.holder.current.model


@pytest.fixture
def versions_store(trained: tuple[RecommenderModel, dict], tmp_path: Path) -> tuple[LocalStore, list[str]]:
    """Three versions A, B, C published in order, then A promoted: CURRENT A, previous C."""
    model, metrics = trained
    store = LocalStore(tmp_path / "store")
    versions = []
    for i in range(3):
        shifted = {**metrics, "two_stage": {k: v + i / 100 for k, v in metrics["two_stage"].items()}}
        versions.append(store.publish(clone_model(model, new_version_id()), metrics=shifted))
    store.promote(versions[0])
    return store, versions


@pytest.fixture
def store_client(versions_store: tuple[LocalStore, list[str]]) -> Iterator[TestClient]:
    store, _ = versions_store
    with TestClient(create_app(Settings(store_uri=str(store.root), _env_file=None))) as c:
        yield c


def test_page_and_assets_are_served_with_no_outside_references(client: TestClient) -> None:
    page = client.get("/dashboard")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in page.headers["content-security-policy"]
    refs = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert refs and all(r.startswith(("/", "#", "data:")) for r in refs), refs
    for path in (
        "/dashboard/static/dashboard.js",
        "/dashboard/static/feedback.js",
        "/dashboard/static/dashboard.css",
    ):
        assert path in refs
        asset = client.get(path)
        assert asset.status_code == 200 and asset.text
        # the only absolute URL in the assets is the SVG namespace name, which is never fetched
        urls = set(re.findall(r"https?://[^\s\"'`)]+", asset.text))
        assert urls <= {"http://www.w3.org/2000/svg"}, urls
        assert "@import" not in asset.text and "url(" not in asset.text


def test_model_section_marks_current_and_what_rollback_restores(
    store_client: TestClient, versions_store: tuple[LocalStore, list[str]]
) -> None:
    store, versions = versions_store
    body = store_client.get("/dashboard/api/model").json()
    ready = store_client.get("/readyz").json()
    assert body["serving"]["version"] == ready["model_version"] == versions[0]
    assert body["store"]["current"] == versions[0]
    assert body["store"]["previous"] == store.previous_version() == versions[2]
    rows = {r["version"]: r for r in body["store"]["versions"]}
    assert [r["version"] for r in body["store"]["versions"]] == sorted(versions, reverse=True)
    assert rows[versions[0]]["mark"] == "current" and rows[versions[2]]["mark"] == "previous"
    assert rows[versions[1]]["mark"] == ""
    for v in versions:
        manifest = store.manifest(v)
        assert rows[v]["metrics"] == {
            m: manifest["metrics"][m] for m in ("popularity", "retrieval", "two_stage")
        }
        assert rows[v]["loss"] == manifest["training_config"].get("mf", {}).get("loss")
    assert body["metric_names"][:2] == ["recall@10", "ndcg@10"]
    # the row marked previous is exactly what `recserve store rollback` makes CURRENT
    assert store.rollback() == versions[2]


def test_serving_model_details_come_from_the_loaded_model(
    client: TestClient, model: RecommenderModel
) -> None:
    serving = client.get("/dashboard/api/model").json()["serving"]
    assert serving["dataset"] == model.metadata["dataset"]
    assert (serving["n_users"], serving["n_items"]) == (model.n_users, model.n_items)
    assert serving["n_train_interactions"] == len(model.seen_indices)
    assert serving["age_seconds"] >= 0 and set(serving["metrics"]) == {"popularity", "retrieval", "two_stage"}


def test_a_damaged_manifest_is_one_row_and_an_unreadable_store_keeps_the_serving_model(
    store_client: TestClient, versions_store: tuple[LocalStore, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    store, versions = versions_store
    (store.bundle_path(versions[1]) / "manifest.json").write_text("{not json")
    rows = {r["version"]: r for r in store_client.get("/dashboard/api/model").json()["store"]["versions"]}
    assert "not valid JSON" in rows[versions[1]]["error"]
    assert "error" not in rows[versions[0]]

    holder = store_client.app.state.holder

    def broken() -> None:
        raise StoreError("s3://bucket/models: connection refused")

    monkeypatch.setattr(holder, "store", broken)
    body = store_client.get("/dashboard/api/model").json()
    assert body["store"]["error"] == "s3://bucket/models: connection refused"
    assert body["serving"]["version"] == versions[0]


def test_history_is_the_users_training_items(client: TestClient, model: RecommenderModel) -> None:
    user = next(u for u in range(model.n_users) if len(model.seen(u)) > 3)
    user_id = model.user_ids.external(user)
    expected = model.item_ids.externals(model.seen(user))
    body = client.get("/dashboard/api/history", params={"user_id": user_id}).json()
    assert body["known"] and body["n_items"] == len(expected)
    assert [it["item_id"] for it in body["items"]] == expected
    first = model.item_ids.index(expected[0])
    assert body["items"][0]["attributes"] == {n: v[first] for n, v in model.item_attributes.items()}
    short = client.get("/dashboard/api/history", params={"user_id": user_id, "limit": 2}).json()
    assert [it["item_id"] for it in short["items"]] == expected[:2] and short["n_items"] == len(expected)
    cold = client.get("/dashboard/api/history", params={"user_id": "nobody-knows-me"}).json()
    assert cold["known"] is False and cold["items"] == []


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/dashboard/api/history", {}, "user_id"),
        ("/dashboard/api/history", {"user_id": "u1", "limit": 0}, "limit"),
        ("/dashboard/api/items", {}, "item_id"),
        ("/dashboard/api/items", {"item_id": [f"i{i}" for i in range(501)]}, "item_id"),
    ],
)
def test_bad_queries_are_a_422_naming_the_field(
    client: TestClient, path: str, params: dict, field: str
) -> None:
    resp = client.get(path, params=params)
    assert resp.status_code == 422
    assert resp.json()["error"]["field"] == field


def test_items_and_examples_describe_the_serving_model(client: TestClient, model: RecommenderModel) -> None:
    ids = [model.item_ids.external(i) for i in (0, 5)]
    body = client.get("/dashboard/api/items", params={"item_id": [*ids, "no-such-item"]}).json()
    assert body["unknown"] == ["no-such-item"]
    for item_id in ids:
        index = model.item_ids.index(item_id)
        assert body["items"][item_id]["attributes"] == {n: v[index] for n, v in model.item_attributes.items()}
        assert body["items"][item_id]["popularity"] == float(model.popularity[index])
    ex = client.get("/dashboard/api/examples").json()
    assert ex["model_version"] == model.version and len(ex["users"]) >= 3
    assert all(len(model.seen(model.user_ids.index(u))) > 0 for u in ex["users"])
    assert all(i in model.item_ids for i in ex["items"])
    assert set(ex["attributes"]) == set(model.item_attributes)


def test_live_counts_api_requests_not_ops_or_its_own(client: TestClient) -> None:
    def recommend_total() -> float:
        rows = client.get("/dashboard/api/live").json()["endpoints"]
        return next((r["requests_total"] for r in rows if r["endpoint"] == "/recommend"), 0.0)

    before = recommend_total()
    for u in range(4):
        assert client.get("/recommend", params={"user_id": f"u{u}"}).status_code == 200
    client.get("/healthz")
    assert recommend_total() == before + 4
    rows = client.get("/dashboard/api/live").json()["endpoints"]
    assert not [r for r in rows if r["endpoint"] in ("/healthz", "/readyz", "/metrics")]
    assert not [r for r in rows if r["endpoint"].startswith("/dashboard")]


def test_without_a_model_the_page_still_answers(tmp_path: Path) -> None:
    app = create_app(Settings(store_uri=str(tmp_path / "empty"), store_poll_interval=0, _env_file=None))
    with TestClient(app) as c:
        assert c.get("/dashboard").status_code == 200
        body = c.get("/dashboard/api/model").json()
        assert body["serving"] is None and body["status"]["ready"] is False
        resp = c.get("/dashboard/api/examples")
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "no_model"


def test_the_setting_turns_the_dashboard_off(published_store: Path) -> None:
    app = create_app(Settings(store_uri=str(published_store), dashboard=False, _env_file=None))
    with TestClient(app) as c:
        assert c.get("/dashboard").status_code == 404
        assert c.get("/dashboard/api/model").status_code == 404


def test_a_router_level_dependency_puts_the_data_behind_a_key(published_store: Path) -> None:
    """How API keys attach: one ``dependencies=[...]`` on the include of ``dashboard.router``."""

    def require_key(x_api_key: str | None = Header(None)) -> None:
        if x_api_key != "k1":
            raise APIError(401, "unauthorized", "a valid X-API-Key is required", "x-api-key")

    app = create_app(Settings(store_uri=str(published_store), dashboard=False, _env_file=None))
    app.include_router(dashboard.page_router)
    app.include_router(dashboard.router, dependencies=[Depends(require_key)])
    with TestClient(app) as c:
        assert c.get("/dashboard").status_code == 200  # the shell holds no data
        for path in ("/dashboard/api/model", "/dashboard/api/live", "/dashboard/api/examples"):
            assert c.get(path).status_code == 401
            assert c.get(path, headers={"X-API-Key": "k1"}).status_code == 200
