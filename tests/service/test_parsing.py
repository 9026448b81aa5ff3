"""Request parsing: the FastAPI dependencies that turn query strings and bodies into domain queries."""

from __future__ import annotations

import asyncio

import pytest

from listcache import DEFAULTS
from recommender.filters import ItemFilter
from service.exceptions import BatchTooLarge, KTooLarge
from service.parsing import batch_from_body, recommend_from_body, resolve_k, similar_from_body
from service.queries import RecommendQuery
from service.schemas import BatchRecommendRequest, RecommendRequest, SimilarRequest
from service.settings import Settings

SETTINGS = Settings(default_k=7, max_k=50, max_batch_size=3, _env_file=None)


def test_k_is_resolved_against_the_settings() -> None:
    assert resolve_k(None, SETTINGS) == 7
    assert resolve_k(50, SETTINGS) == 50
    assert resolve_k(None, Settings(default_k=90, max_k=40, _env_file=None)) == 40  # never above max_k
    with pytest.raises(KTooLarge) as err:
        resolve_k(51, SETTINGS)
    assert err.value.field == "k" and "50" in err.value.message


def test_bodies_become_queries_with_defaults_and_filters() -> None:
    q = asyncio.run(
        recommend_from_body(
            SETTINGS, RecommendRequest(user_id="u1", item_filter={"include": {}, "exclude": {}})
        )
    )
    assert q == RecommendQuery("u1", 7)  # an empty filter is no filter
    q = asyncio.run(
        recommend_from_body(
            SETTINGS,
            RecommendRequest(
                user_id="u1", k=3, exclude_item_ids=["a"], item_filter={"exclude": {"c": ["x"]}}
            ),
        )
    )
    assert q.k == 3 and q.exclude_item_ids == ("a",)
    assert q.item_filter == ItemFilter(include={}, exclude={"c": ["x"]})
    s = asyncio.run(similar_from_body(SETTINGS, SimilarRequest(item_id="i1")))
    assert (s.item_id, s.k, s.item_filter) == ("i1", 7, None)


def test_a_batch_over_the_limit_is_refused() -> None:
    ok = asyncio.run(batch_from_body(SETTINGS, BatchRecommendRequest(user_ids=["a", "b", "c"])))
    assert ok.user_ids == ("a", "b", "c") and ok.k == 7
    with pytest.raises(BatchTooLarge) as err:
        asyncio.run(batch_from_body(SETTINGS, BatchRecommendRequest(user_ids=["a", "b", "c", "d"])))
    assert err.value.field == "user_ids" and "at most 3" in err.value.message


def test_which_queries_a_stored_list_can_answer() -> None:
    assert RecommendQuery("u1", 10).cacheable
    # exclusions and filters: a stored list post-filtered may answer (else compute)
    assert RecommendQuery("u1", 10, exclude_item_ids=("i1",)).cacheable
    assert RecommendQuery("u1", 10, item_filter=ItemFilter(include={"category": ["cat1"]})).cacheable
    # options that change the ranking itself, or need more than ids and scores, cannot
    for q in (
        RecommendQuery("u1", 10, exclude_seen=False),
        RecommendQuery("u1", 10, diversity=0.3),
        RecommendQuery("u1", 10, explain=True),
        RecommendQuery("u1", 10, recent_item_ids=("i1",)),
    ):
        assert not q.cacheable


def test_settings_take_their_list_defaults_from_listcache() -> None:
    s = Settings(_env_file=None)
    assert (s.redis_prefix, s.redis_ttl_s, s.cache_list_size) == (
        DEFAULTS.prefix,
        DEFAULTS.ttl_s,
        DEFAULTS.list_size,
    )
    assert (s.redis_breaker_failures, s.redis_ready_check_s) == (
        DEFAULTS.breaker_failures,
        DEFAULTS.ready_check_s,
    )
