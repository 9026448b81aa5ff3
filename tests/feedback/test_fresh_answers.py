"""Feedback counts at once: the next answer leaves the item out (cached lists included), an
unknown user's clicks become their recent items, and the fresh state lives in Redis when one is
configured (shared by replicas, never failing a request when it is down)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
import redis
from fastapi.testclient import TestClient
from feedback_support import metric

from benchmarks.procs import free_port

SHARED_REDIS = "redis://127.0.0.1:6379/0"


def items(answer: dict) -> list[str]:
    return [i["item_id"] for i in answer["items"]]


def recommend(client: TestClient, user: str, **params: object) -> dict:
    r = client.get("/recommend", params={"user_id": user, "k": 10, **params})
    assert r.status_code == 200, r.text
    return r.json()


def feedback(client: TestClient, user: str, item: str, type_: str = "click") -> None:
    r = client.post("/feedback", json={"user_id": user, "item_id": item, "type": type_})
    assert r.status_code == 202, r.text


def test_the_next_answer_leaves_the_item_out(client: TestClient) -> None:
    top = items(recommend(client, "u5"))[0]
    other = items(recommend(client, "u6"))
    feedback(client, "u5", top, "view")
    after = recommend(client, "u5")
    assert top not in items(after) and len(items(after)) == 10
    assert top in items(recommend(client, "u5", exclude_seen="false", k=40))
    assert items(recommend(client, "u6")) == other  # other users are not affected


def test_a_cached_list_is_post_filtered(make_client: Callable[..., TestClient]) -> None:
    client = make_client()  # the in-process list cache is on by default
    first = recommend(client, "u8")
    assert first["source"] == "computed"
    assert recommend(client, "u8")["source"] == "cache"
    top = items(first)[:2]
    for item in top:
        feedback(client, "u8", item)
    after = recommend(client, "u8")
    assert after["source"] == "cache" and not set(top) & set(items(after))
    assert items(after)[:8] == items(first)[2:]


def test_batch_answers_count_fresh_events_per_user(client: TestClient) -> None:
    before = client.post("/recommend/batch", json={"user_ids": ["u3", "u4"], "k": 5}).json()["results"]
    top3 = items(before[0])[0]
    feedback(client, "u3", top3)
    after = client.post("/recommend/batch", json={"user_ids": ["u3", "u4"], "k": 5}).json()["results"]
    assert top3 not in items(after[0])
    assert items(after[1]) == items(before[1])


def test_an_unknown_users_clicks_are_their_recent_items(client: TestClient) -> None:
    cold = recommend(client, "visitor-1")
    assert cold["strategy"] == "popularity"
    disliked = items(cold)[0]
    feedback(client, "visitor-1", disliked, "dislike")
    after = recommend(client, "visitor-1")
    assert after["strategy"] == "popularity" and disliked not in items(after)  # not an interest
    feedback(client, "visitor-1", "i17", "click")
    warm = recommend(client, "visitor-1")
    assert warm["strategy"] == "recent_items" and "i17" not in items(warm) and disliked not in items(warm)
    batch = client.post("/recommend/batch", json={"user_ids": ["visitor-1", "visitor-2"], "k": 5}).json()
    assert [r["strategy"] for r in batch["results"]] == ["recent_items", "popularity"]


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    client = redis.Redis.from_url(SHARED_REDIS, socket_timeout=5)
    client.ping()
    prefix = f"test-recserve-{uuid.uuid4().hex[:12]}"
    yield prefix
    keys = list(client.scan_iter(match=f"{prefix}:*"))
    if keys:
        client.delete(*keys)
    client.close()


def test_with_redis_every_replica_sees_the_event(
    make_client: Callable[..., TestClient], redis_prefix: str
) -> None:
    settings = {"redis_url": SHARED_REDIS, "redis_prefix": redis_prefix, "cache_size": 0}
    replica_a, replica_b = make_client(**settings), make_client(**settings)
    top = items(recommend(replica_b, "u9"))[0]
    feedback(replica_a, "u9", top)
    assert top not in items(recommend(replica_b, "u9"))
    stored = redis.Redis.from_url(SHARED_REDIS).lrange(f"{redis_prefix}:fresh:u9", 0, -1)
    assert len(stored) == 1 and stored[0].endswith(f"\tclick\t{top}".encode())


def test_redis_down_fails_no_request(make_client: Callable[..., TestClient], events) -> None:  # type: ignore[no-untyped-def]
    dead = f"redis://127.0.0.1:{free_port()}/0"
    client = make_client(redis_url=dead, redis_breaker_failures=1)
    for i in range(5):
        assert recommend(client, "u2")["items"]
        feedback(client, "u2", f"i{i}")
    assert events.count() == 5  # durable regardless
    assert metric(client, "recserve_redis_errors_total", op="fresh_get") >= 1
