"""The read path through the real app: cache first, compute on a miss, ``source`` says which."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from fastapi.testclient import TestClient
from redis_support import SHARED_REDIS_URL

from listcache import list_key, ready_key
from listcache.precompute import PrecomputeConfig, precompute
from listcache.redis_backend import RedisBackend
from model_store import LocalStore
from recommender.model import RecommenderModel
from service.app import create_app
from service.settings import Settings

USERS = [f"u{u}" for u in range(0, 300, 37)]
ITEMS = [f"i{i}" for i in range(0, 200, 23)]


def make_client(store: Path, **settings) -> TestClient:
    settings.setdefault("redis_socket_timeout_s", 2.0)  # the machine is shared: no spurious timeouts
    settings.setdefault("redis_connect_timeout_s", 2.0)
    return TestClient(create_app(Settings(store_uri=str(store), _env_file=None, **settings)))


def ids(body: dict) -> list[str]:
    return [e["item_id"] for e in body["items"]]


@pytest.fixture
def served_model(published_store: Path) -> RecommenderModel:
    """A private copy of the published model, configured as the service configures it."""
    model, _ = LocalStore(published_store).load()
    if Settings(_env_file=None).n_candidates is not None:  # as the service configures it
        model.n_candidates = Settings(_env_file=None).n_candidates
    return model


@pytest.fixture
def computed(published_store: Path) -> Iterator[TestClient]:
    """The reference: a service with no cache at all (every answer computed online)."""
    with make_client(published_store, cache_size=0) as c:
        yield c


def test_without_any_cache_every_answer_is_computed(computed: TestClient) -> None:
    for _ in range(2):
        assert computed.get("/recommend", params={"user_id": "u1"}).json()["source"] == "computed"
        assert computed.get("/similar-items", params={"item_id": "i1"}).json()["source"] == "computed"


def test_in_process_lru_is_the_default_and_answers_like_the_model(
    published_store: Path, computed: TestClient
) -> None:
    with make_client(published_store) as c:
        for user in USERS:
            first = c.get("/recommend", params={"user_id": user, "k": 7}).json()
            again = c.get("/recommend", params={"user_id": user, "k": 5}).json()
            reference = computed.get("/recommend", params={"user_id": user, "k": 7}).json()
            assert (first["source"], again["source"]) == ("computed", "cache")
            assert first["items"] == reference["items"]
            assert again["items"] == reference["items"][:5]  # the stored N-list serves a smaller k
        for item in ITEMS:
            first = c.get("/similar-items", params={"item_id": item}).json()
            again = c.get("/similar-items", params={"item_id": item}).json()
            assert (first["source"], again["source"]) == ("computed", "cache")
            assert again["items"] == computed.get("/similar-items", params={"item_id": item}).json()["items"]
        metrics = c.get("/metrics").text
        assert 'recserve_cache_requests_total{endpoint="recommend",result="hit"} 9.0' in metrics


def test_options_the_cached_list_cannot_answer_are_computed(published_store: Path) -> None:
    with make_client(published_store, cache_list_size=20) as c:
        assert c.get("/recommend", params={"user_id": "u3", "k": 10}).json()["source"] == "computed"
        assert c.get("/recommend", params={"user_id": "u3", "k": 20}).json()["source"] == "cache"
        big = c.get("/recommend", params={"user_id": "u3", "k": 21}).json()  # k > N
        assert big["source"] == "computed" and len(big["items"]) == 21
        seen = c.get("/recommend", params={"user_id": "u3", "k": 5, "exclude_seen": "false"}).json()
        assert seen["source"] == "computed"  # lists are stored with seen items excluded
        assert c.get("/similar-items", params={"item_id": "i3", "k": 30}).json()["source"] == "computed"
        # POST bodies go through the same path
        post = c.post("/recommend", json={"user_id": "u3", "k": 3}).json()
        assert post["source"] == "cache"


def test_unknown_ids_bypass_the_cache(published_store: Path) -> None:
    with make_client(published_store) as c:
        resp = c.get("/similar-items", params={"item_id": "nothing"})
        assert resp.status_code == 404 and resp.json()["error"]["field"] == "item_id"
        # an unknown user is a cold start (popularity fallback), never a cache lookup
        for _ in range(2):
            body = c.get("/recommend", params={"user_id": "nobody"}).json()
            assert body["strategy"] == "popularity" and body["source"] == "computed"


# -- Redis -----------------------------------------------------------------------------------------
@pytest.fixture
def precomputed(served_model: RecommenderModel, shared_redis: redis.Redis, redis_prefix: str) -> str:
    """Every list of the served model written under this test's prefix; returns the version."""
    report = precompute(
        served_model, RedisBackend(shared_redis), PrecomputeConfig(n=50, prefix=redis_prefix), progress=False
    )
    assert report.keys == served_model.n_users + served_model.n_items
    return served_model.version


def test_precomputed_lists_are_served_from_redis_and_match_the_model(
    published_store: Path, computed: TestClient, precomputed: str, redis_prefix: str
) -> None:
    with make_client(
        published_store, redis_url=SHARED_REDIS_URL, redis_prefix=redis_prefix, cache_list_size=50
    ) as c:
        for user in USERS:
            got = c.get("/recommend", params={"user_id": user, "k": 10}).json()
            want = computed.get("/recommend", params={"user_id": user, "k": 10}).json()
            assert got["source"] == "cache" and got["model_version"] == precomputed
            assert ids(got) == ids(want)
            np.testing.assert_allclose(
                [e["score"] for e in got["items"]], [e["score"] for e in want["items"]], rtol=1e-5
            )
        for item in ITEMS:
            got = c.get("/similar-items", params={"item_id": item, "k": 10}).json()
            want = computed.get("/similar-items", params={"item_id": item, "k": 10}).json()
            assert got["source"] == "cache" and ids(got) == ids(want)
        assert c.get("/recommend", params={"user_id": "u1", "k": 51}).json()["source"] == "computed"


def test_a_missing_key_is_computed_and_written_back(
    published_store: Path, shared_redis: redis.Redis, precomputed: str, redis_prefix: str
) -> None:
    key = list_key(redis_prefix, precomputed, "rec", "u5")
    shared_redis.delete(key)
    with make_client(
        published_store, redis_url=SHARED_REDIS_URL, redis_prefix=redis_prefix, cache_list_size=50
    ) as c:
        first = c.get("/recommend", params={"user_id": "u5", "k": 4}).json()
        assert first["source"] == "computed"
        assert shared_redis.exists(key) and shared_redis.ttl(key) > 0
        again = c.get("/recommend", params={"user_id": "u5", "k": 4}).json()
        assert again["source"] == "cache" and again["items"] == first["items"]


def test_without_the_ready_marker_redis_is_not_used(
    published_store: Path, shared_redis: redis.Redis, precomputed: str, redis_prefix: str
) -> None:
    shared_redis.delete(ready_key(redis_prefix, precomputed))
    with make_client(published_store, redis_url=SHARED_REDIS_URL, redis_prefix=redis_prefix) as c:
        assert c.get("/recommend", params={"user_id": "u1"}).json()["source"] == "computed"
        assert c.get("/similar-items", params={"item_id": "i1"}).json()["source"] == "computed"


def test_another_versions_lists_are_never_served(
    published_store: Path, shared_redis: redis.Redis, served_model: RecommenderModel, redis_prefix: str
) -> None:
    served_model.version = "some-other-version"  # as if an older model's job had run
    precompute(
        served_model, RedisBackend(shared_redis), PrecomputeConfig(n=50, prefix=redis_prefix), progress=False
    )
    with make_client(published_store, redis_url=SHARED_REDIS_URL, redis_prefix=redis_prefix) as c:
        body = c.get("/recommend", params={"user_id": "u1"}).json()
        assert body["source"] == "computed" and body["model_version"] != "some-other-version"


def test_post_filtering_a_real_cached_list(
    published_store: Path, precomputed: str, redis_prefix: str, served_model: RecommenderModel
) -> None:
    """Request-time exclusions on a precomputed list: answered from it when enough items remain
    (the next best in list order), else handed to the online computation, which fills from beyond N."""
    app = create_app(
        Settings(
            store_uri=str(published_store),
            redis_url=SHARED_REDIS_URL,
            redis_prefix=redis_prefix,
            cache_list_size=50,
            redis_socket_timeout_s=2.0,
            _env_file=None,
        )
    )
    cache = app.state.cache
    m = served_model
    look = lambda k, excluded: cache.lookup(  # noqa: E731
        "rec", m.version, "u8", m.n_items, k, np.array(sorted(excluded), np.int64)
    )
    full = look(50, set())
    assert full.hit and len(full.items) == 50
    top = full.items.tolist()

    # enough left: the answer is the cached list minus the exclusions
    excluded = set(top[:3]) | {top[7]}
    hit = look(10, excluded)
    assert hit.result == "hit"
    assert hit.items.tolist() == [i for i in top if i not in excluded][:10]

    # too few left: miss, and the online computation (seen + excluded removed) has k items
    excluded = set(top[:45])
    miss = look(10, excluded)
    assert miss.result == "miss" and miss.items is None
    user = m.user_ids.index("u8")
    rec = m.recommend(np.array([user]), 10, exclude_items=np.array(sorted(excluded), np.int64))[0]
    answer = set(rec.items.tolist())
    assert len(answer) == 10 and not answer & excluded
    assert answer - set(top)  # it needed items from beyond the cached N
    cache.close()
