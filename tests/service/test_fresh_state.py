"""The fresh state's two backends keep the latest events per user, capped and expiring, and the
recomm_id round-trips what a click is credited to."""

from __future__ import annotations

import uuid

import pytest
import redis

from service.fresh import FreshItem, MemoryFresh, RedisFresh
from service.recomm import CODES, new_recomm_id, parse_recomm_id


def items(*seqs: int) -> list[FreshItem]:
    return [FreshItem(s, "click" if s % 2 else "view", f"i{s}") for s in seqs]


def test_memory_keeps_the_latest_capped_and_expires() -> None:
    now = [0.0]
    fresh = MemoryFresh(max_items=3, ttl_s=10, timer=lambda: now[0])
    fresh.add("u", items(1, 2))
    fresh.add("u", items(3, 4))
    assert [f.seq for f in fresh.get("u")] == [2, 3, 4]  # oldest first, capped at 3
    assert fresh.get_many(["u", "nobody"]) == [fresh.get("u"), []]
    now[0] = 9.0
    fresh.add("u", items(5))  # the TTL counts from the last event
    now[0] = 18.0
    assert [f.seq for f in fresh.get("u")] == [3, 4, 5]
    now[0] = 30.0
    assert fresh.get("u") == []


def test_redis_round_trips_capped_with_a_ttl() -> None:
    client = redis.Redis.from_url("redis://127.0.0.1:6379/0", socket_timeout=5)
    prefix = f"test-recserve-{uuid.uuid4().hex[:12]}"
    fresh = RedisFresh(client, prefix, max_items=3, ttl_s=60)
    try:
        fresh.add("u\tab", [FreshItem(1, "click", "item\twith tab")])  # ids are free text
        fresh.add("u\tab", items(2, 3, 4))
        assert [f.seq for f in fresh.get("u\tab")] == [2, 3, 4]
        fresh.add("v", items(7))
        assert fresh.get_many(["v", "u\tab", "none"]) == [items(7), items(2, 3, 4), []]
        fresh.add("w", [FreshItem(1, "click", "item\twith tab")])
        assert fresh.get("w") == [FreshItem(1, "click", "item\twith tab")]
        assert 0 < client.ttl(f"{prefix}:fresh:v") <= 60
    finally:
        keys = list(client.scan_iter(match=f"{prefix}:*"))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.mark.parametrize("strategy", sorted(CODES))
def test_recomm_id_names_version_and_strategy(strategy: str) -> None:
    version = "20261126T043732331779Z-48e8.with.dots"
    rid = new_recomm_id(version, strategy)
    assert parse_recomm_id(rid) == (version, strategy)
    assert rid != new_recomm_id(version, strategy)


def test_other_ids_are_not_parsed() -> None:
    for text in ("", "abc", "p0123.v", "x0123456789abcdef.v", "p0123456789abcdeg.v", "p0123456789abcdef."):
        assert parse_recomm_id(text) is None
