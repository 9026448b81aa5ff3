"""Every /recommend, /recommend/batch and /similar-items option through HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from recommender.model import RecommenderModel
from service.app import create_app
from service.settings import Settings


@pytest.fixture(scope="module")
def api(published_store: Path) -> Iterator[TestClient]:
    app = create_app(Settings(store_uri=str(published_store), _env_file=None))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def model(trained: tuple[RecommenderModel, dict]) -> RecommenderModel:
    return trained[0]


def _ids(body: dict) -> list[str]:
    return [it["item_id"] for it in body["items"]]


def _cat(model: RecommenderModel, item_id: str) -> str:
    return model.item_attributes["category"][model.item_ids.index(item_id)][0]


def test_default_k_and_response_fields(api: TestClient) -> None:
    r = api.get("/recommend", params={"user_id": "u1"})
    assert r.status_code == 200
    body = r.json()
    assert len(body["items"]) == 10
    assert body["strategy"] == "personalized" and body["source"] == "computed"
    assert body["complete"] is True and body["notes"] == []
    assert r.headers["X-Model-Version"] == body["model_version"]
    assert "reason" not in body["items"][0]


def test_get_and_post_agree(api: TestClient) -> None:
    g = api.get("/recommend", params={"user_id": "u5", "k": 7, "exclude_item_ids": ["i1", "i2"]}).json()
    p = api.post("/recommend", json={"user_id": "u5", "k": 7, "exclude_item_ids": ["i1", "i2"]}).json()
    assert _ids(g) == _ids(p) and len(_ids(g)) == 7


def test_exclude_seen_default_and_off(api: TestClient, model: RecommenderModel) -> None:
    seen = set(model.item_ids.externals(model.seen(model.user_ids.index("u2"))))
    on = _ids(api.post("/recommend", json={"user_id": "u2", "k": 30}).json())
    assert not set(on) & seen
    off = _ids(api.post("/recommend", json={"user_id": "u2", "k": 30, "exclude_seen": False}).json())
    assert set(off) & seen


def test_exclude_item_ids(api: TestClient) -> None:
    first = _ids(api.post("/recommend", json={"user_id": "u3", "k": 5}).json())
    body = api.post(
        "/recommend", json={"user_id": "u3", "k": 5, "exclude_item_ids": [*first[:3], "not-an-item"]}
    ).json()
    assert not set(_ids(body)) & set(first[:3])
    assert len(body["items"]) == 5 and body["complete"]


def test_item_filter_include_and_exclude(api: TestClient, model: RecommenderModel) -> None:
    body = api.post(
        "/recommend",
        json={"user_id": "u4", "k": 8, "item_filter": {"include": {"category": ["cat1", "cat3"]}}},
    ).json()
    assert len(body["items"]) == 8
    assert {_cat(model, i) for i in _ids(body)} <= {"cat1", "cat3"}
    body = api.post(
        "/recommend", json={"user_id": "u4", "k": 20, "item_filter": {"exclude": {"category": ["cat0"]}}}
    ).json()
    assert "cat0" not in {_cat(model, i) for i in _ids(body)}


def test_filter_leaving_fewer_than_k_says_so(api: TestClient, model: RecommenderModel) -> None:
    body = api.post(
        "/recommend",
        json={"user_id": "u6", "k": 200, "item_filter": {"include": {"category": ["cat2"]}}},
    ).json()
    allowed = {i for i in model.item_ids.ids if _cat(model, i) == "cat2"}
    seen = set(model.item_ids.externals(model.seen(model.user_ids.index("u6"))))
    assert set(_ids(body)) == allowed - seen
    assert body["complete"] is False
    assert any(f"only {len(allowed - seen)} items" in n for n in body["notes"])
    empty = api.post(
        "/recommend", json={"user_id": "u6", "k": 5, "item_filter": {"include": {"category": ["nope"]}}}
    ).json()
    assert empty["items"] == [] and empty["complete"] is False


def test_cold_start_from_recent_items(api: TestClient, model: RecommenderModel) -> None:
    recent = [i for i in model.item_ids.ids if _cat(model, i) == "cat5"][:4]
    body = api.post(
        "/recommend",
        json={"user_id": "brand-new-user", "k": 10, "recent_item_ids": [*recent, "unknown-item"]},
    ).json()
    assert body["strategy"] == "recent_items" and body["user_id"] == "brand-new-user"
    assert len(body["items"]) == 10 and not set(_ids(body)) & set(recent)
    assert sum(_cat(model, i) == "cat5" for i in _ids(body)) >= 3
    assert any("recent_item_ids unknown" in n and "unknown-item" in n for n in body["notes"])
    get = api.get("/recommend", params={"user_id": "brand-new-user", "k": 10, "recent_item_ids": recent})
    assert _ids(get.json()) == _ids(body)


def test_cold_start_popularity_fallback_within_filter(api: TestClient, model: RecommenderModel) -> None:
    order = np.argsort(-model.popularity, kind="stable")
    body = api.get("/recommend", params={"user_id": "nobody", "k": 5}).json()
    assert body["strategy"] == "popularity"
    assert _ids(body) == model.item_ids.externals(order[:5])
    assert [it["score"] for it in body["items"]] == model.popularity[order[:5]].tolist()
    body = api.post(
        "/recommend",
        json={"user_id": "nobody", "k": 5, "item_filter": {"include": {"category": ["cat7"]}}},
    ).json()
    expected = [i for i in model.item_ids.externals(order) if _cat(model, i) == "cat7"][:5]
    assert _ids(body) == expected
    body = api.post("/recommend", json={"user_id": "nobody", "k": 5, "recent_item_ids": ["zzz"]}).json()
    assert body["strategy"] == "popularity"


def test_cold_start_fallback_error(published_store: Path) -> None:
    app = create_app(Settings(store_uri=str(published_store), cold_start_fallback="error", _env_file=None))
    with TestClient(app) as c:
        r = c.get("/recommend", params={"user_id": "nobody"})
        assert r.status_code == 404
        assert r.json()["error"]["code"] == "unknown_user" and r.json()["error"]["field"] == "user_id"
        assert "nobody" in r.json()["error"]["message"]
        ok = c.post("/recommend", json={"user_id": "nobody", "recent_item_ids": ["i1"]})
        assert ok.status_code == 200 and ok.json()["strategy"] == "recent_items"
        r = c.post("/recommend/batch", json={"user_ids": ["u1", "nobody"]})
        assert r.status_code == 404 and r.json()["error"]["field"] == "user_ids.1"


def test_diversity(api: TestClient, model: RecommenderModel) -> None:
    unit = model.item_emb / np.linalg.norm(model.item_emb, axis=1, keepdims=True)

    def avg_sim(ids: list[str]) -> float:
        ix = [model.item_ids.index(i) for i in ids]
        s = unit[ix] @ unit[ix].T
        return float(s[np.triu_indices(len(ix), 1)].mean())

    plain, diverse = [], []
    for u in ("u10", "u11", "u12", "u13"):
        p = api.get("/recommend", params={"user_id": u, "k": 10}).json()
        z = api.get("/recommend", params={"user_id": u, "k": 10, "diversity": 0}).json()
        d = api.get("/recommend", params={"user_id": u, "k": 10, "diversity": 0.9}).json()
        assert _ids(p) == _ids(z)
        assert len(set(_ids(d))) == 10 and _ids(d)[0] == _ids(p)[0]
        plain.append(avg_sim(_ids(p)))
        diverse.append(avg_sim(_ids(d)))
    assert np.mean(diverse) < np.mean(plain)


def test_explain(api: TestClient, model: RecommenderModel) -> None:
    body = api.post("/recommend", json={"user_id": "u8", "k": 5, "explain": True}).json()
    seen = set(model.item_ids.externals(model.seen(model.user_ids.index("u8"))))
    for item in body["items"]:
        reason = item["reason"]
        assert reason["similar_to"] in seen
        assert reason["similar_to"] in reason["text"]
        assert -1.0 <= reason["similarity"] <= 1.0
        assert reason["ranker_score"] == pytest.approx(item["score"])
        assert isinstance(reason["retrieval_score"], float)
    plain = api.post("/recommend", json={"user_id": "u8", "k": 5}).json()
    assert _ids(plain) == _ids(body)

    recent = ["i3", "i4"]
    body = api.post(
        "/recommend", json={"user_id": "x", "k": 3, "recent_item_ids": recent, "explain": True}
    ).json()
    assert all(it["reason"]["similar_to"] in recent for it in body["items"])
    body = api.post("/recommend", json={"user_id": "x", "k": 3, "explain": True}).json()
    assert all(it["reason"]["text"].startswith("popular") for it in body["items"])
    assert all(it["reason"]["retrieval_score"] is None for it in body["items"])


def test_batch_matches_single_requests(api: TestClient) -> None:
    users = ["u20", "u21", "stranger", "u22"]
    opts = {"k": 6, "exclude_item_ids": ["i0"], "item_filter": {"exclude": {"category": ["cat1"]}}}
    r = api.post("/recommend/batch", json={"user_ids": users, **opts, "explain": True})
    assert r.status_code == 200
    body = r.json()
    assert r.headers["X-Model-Version"] == body["model_version"]
    assert [x["user_id"] for x in body["results"]] == users
    assert [x["strategy"] for x in body["results"]] == ["personalized"] * 2 + ["popularity", "personalized"]
    for user, result in zip(users, body["results"], strict=True):
        single = api.post("/recommend", json={"user_id": user, **opts}).json()
        assert _ids(result) == _ids(single)
        assert all("reason" in it for it in result["items"])


def test_similar_items_options(api: TestClient, model: RecommenderModel) -> None:
    base = api.get("/similar-items", params={"item_id": "i0", "k": 5}).json()
    assert len(base["items"]) == 5 and "i0" not in _ids(base) and base["complete"]
    excl = api.get(
        "/similar-items", params={"item_id": "i0", "k": 5, "exclude_item_ids": _ids(base)[:2]}
    ).json()
    assert not set(_ids(excl)) & set(_ids(base)[:2])
    filt = api.post(
        "/similar-items", json={"item_id": "i0", "k": 500, "item_filter": {"include": {"category": ["cat3"]}}}
    ).json()
    cat3 = {i for i in model.item_ids.ids if _cat(model, i) == "cat3"} - {"i0"}
    assert set(_ids(filt)) == cat3 and filt["complete"] is False


def test_k_at_max_k_and_small_catalogue(api: TestClient, model: RecommenderModel) -> None:
    body = api.get("/recommend", params={"user_id": "u1", "k": 500}).json()
    n_unseen = model.n_items - len(model.seen(model.user_ids.index("u1")))
    assert len(body["items"]) == n_unseen and body["complete"] is False
