"""HTTP API: happy paths and every bad-input case of the end-to-end slice."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.settings import Settings


def test_recommend_get_returns_k_items_best_first(client: TestClient, trained) -> None:
    model, _ = trained
    user = model.user_ids.external(0)
    resp = client.get("/recommend", params={"user_id": user, "k": 7})
    assert resp.status_code == 200
    body = resp.json()
    assert body["user_id"] == user and body["model_version"] == model.version
    assert resp.headers["X-Model-Version"] == model.version
    scores = [it["score"] for it in body["items"]]
    assert len(scores) == 7 and scores == sorted(scores, reverse=True)
    assert all(it["item_id"] in model.item_ids for it in body["items"])


def test_recommend_excludes_seen_items_by_default(client: TestClient, trained) -> None:
    model, _ = trained
    user = 3
    seen = set(model.item_ids.externals(model.seen(user)))
    ext = model.user_ids.external(user)
    got = {it["item_id"] for it in client.get("/recommend", params={"user_id": ext, "k": 40}).json()["items"]}
    assert got and not got & seen
    with_seen = client.post("/recommend", json={"user_id": ext, "k": 40, "exclude_seen": False}).json()
    assert {it["item_id"] for it in with_seen["items"]} & seen


def test_recommend_post_matches_get(client: TestClient, trained) -> None:
    user = trained[0].user_ids.external(5)
    get = client.get("/recommend", params={"user_id": user, "k": 5}).json()
    post = client.post("/recommend", json={"user_id": user, "k": 5}).json()
    # the second answer comes from the in-process cache filled by the first: same list
    assert (get["source"], post["source"]) == ("computed", "cache")
    assert get["items"] == post["items"] and get["model_version"] == post["model_version"]


def test_api_scores_equal_offline_scores(client: TestClient, trained) -> None:
    import numpy as np

    model, _ = trained
    rec = model.recommend(np.array([9]), 10)[0]
    body = client.get("/recommend", params={"user_id": model.user_ids.external(9), "k": 10}).json()
    assert [it["item_id"] for it in body["items"]] == model.item_ids.externals(rec.items)
    np.testing.assert_allclose([it["score"] for it in body["items"]], rec.scores, atol=1e-5)


def test_similar_items_excludes_the_item_itself(client: TestClient, trained) -> None:
    model, _ = trained
    item = model.item_ids.external(4)
    for resp in (
        client.get("/similar-items", params={"item_id": item, "k": 6}),
        client.post("/similar-items", json={"item_id": item, "k": 6}),
    ):
        assert resp.status_code == 200
        body = resp.json()
        ids = [it["item_id"] for it in body["items"]]
        assert len(ids) == 6 and item not in ids and body["item_id"] == item
        scores = [it["score"] for it in body["items"]]
        assert scores == sorted(scores, reverse=True)


def test_unknown_item_is_404_naming_it(client: TestClient) -> None:
    resp = client.get("/similar-items", params={"item_id": "nothing"})
    assert resp.status_code == 404
    err = resp.json()["error"]
    assert err["field"] == "item_id" and "nothing" in err["message"]


def test_unknown_user_gets_the_popularity_fallback_by_default(client: TestClient) -> None:
    resp = client.get("/recommend", params={"user_id": "nobody", "k": 5})
    assert resp.status_code == 200
    assert resp.json()["strategy"] == "popularity" and len(resp.json()["items"]) == 5


def test_unknown_user_is_404_naming_it_when_the_fallback_is_off(published_store) -> None:
    settings = Settings(store_uri=str(published_store), cold_start_fallback="error", _env_file=None)
    with TestClient(create_app(settings)) as c:
        resp = c.get("/recommend", params={"user_id": "nobody"})
    assert resp.status_code == 404
    err = resp.json()["error"]
    assert err["field"] == "user_id" and "nobody" in err["message"]


@pytest.mark.parametrize("k", ["0", "-3", "ten", "2.5", "501"])
def test_bad_k_is_422_naming_k(client: TestClient, trained, k: str) -> None:
    user = trained[0].user_ids.external(0)
    for resp in (
        client.get("/recommend", params={"user_id": user, "k": k}),
        client.get("/similar-items", params={"item_id": trained[0].item_ids.external(0), "k": k}),
    ):
        assert resp.status_code == 422, resp.text
        assert resp.json()["error"]["field"] == "k"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"k": 5}, "user_id"),
        ({"user_id": "u1", "k": "many"}, "k"),
        ({"user_id": "", "k": 5}, "user_id"),
        ({"user_id": "u1", "k": 5, "bogus": 1}, "bogus"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(client: TestClient, body: dict, field: str) -> None:
    resp = client.post("/recommend", json=body)
    assert resp.status_code == 422
    assert resp.json()["error"]["field"] == field


def test_malformed_json_is_422_not_500(client: TestClient) -> None:
    resp = client.post("/recommend", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 422
    assert "error" in resp.json()


def test_missing_user_id_on_get_is_422(client: TestClient) -> None:
    resp = client.get("/recommend")
    assert resp.status_code == 422 and resp.json()["error"]["field"] == "user_id"


def test_health_ready_metrics_and_docs(client: TestClient, trained) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["model_version"] == trained[0].version
    client.get("/recommend", params={"user_id": trained[0].user_ids.external(0)})
    text = client.get("/metrics").text
    assert 'recserve_request_latency_seconds_bucket{endpoint="/recommend"' in text
    assert 'recserve_stage_latency_seconds_count{stage="ranking"}' in text
    assert f'recserve_model_info{{version="{trained[0].version}"}} 1.0' in text
    assert client.get("/docs").status_code == 200
    assert "/recommend" in client.get("/openapi.json").json()["paths"]


def test_service_without_a_model_is_alive_but_not_ready(tmp_path) -> None:
    with TestClient(create_app(Settings(store_uri=str(tmp_path / "empty"), _env_file=None))) as c:
        assert c.get("/healthz").status_code == 200
        ready = c.get("/readyz")
        assert ready.status_code == 503 and "no model" in ready.json()["last_error"]
        resp = c.get("/recommend", params={"user_id": "u1"})
        assert resp.status_code == 503 and resp.json()["error"]["code"] == "no_model"
