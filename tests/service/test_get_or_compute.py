"""``get_or_compute``: the serving path's cache rules, against the in-process backend and a stub."""

from __future__ import annotations

import numpy as np
import pytest

from listcache import ListCache, MemoryBackend
from recommender.model import Recommendations
from service.lists import CachedLists, ListRequest, build_list_cache
from service.metrics import Metrics
from service.settings import Settings

N_ITEMS = 50
NONE = np.zeros(0, np.int64)


class Model:
    """Stands in for the model: its top-n is items 10, 11, 12, … with falling scores."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def __call__(self, n: int) -> Recommendations:
        self.asked.append(n)
        items = np.arange(10, 10 + n, dtype=np.int64)
        scores = np.linspace(1.0, 0.5, n, dtype=np.float32)
        return Recommendations(items, scores, scores)


def request(k: int, cacheable: bool = True, excluded=NONE, allowed=None, max_n=None) -> ListRequest:
    return ListRequest("recommend", "rec", "u1", k, cacheable, np.asarray(excluded, np.int64), allowed, max_n)


def counted(metrics: Metrics, result: str) -> float:
    labels = {"endpoint": "recommend", "result": result}
    return metrics.registry.get_sample_value("recserve_cache_requests_total", labels) or 0.0


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def lists(metrics: Metrics) -> CachedLists:
    return CachedLists(ListCache(MemoryBackend(100), prefix="p", list_size=8), metrics)


def test_a_miss_computes_n_stores_it_and_answers_k(lists: CachedLists, metrics: Metrics) -> None:
    model = Model()
    rec, source = lists.get_or_compute("v1", N_ITEMS, request(3), model)
    assert source == "computed" and rec.items.tolist() == [10, 11, 12]
    assert model.asked == [8]  # N, not k: the stored list serves any later k <= N
    rec, source = lists.get_or_compute("v1", N_ITEMS, request(5), model)
    assert source == "cache" and rec.items.tolist() == [10, 11, 12, 13, 14]
    assert model.asked == [8]
    assert counted(metrics, "miss") == 1 and counted(metrics, "hit") == 1


def test_hits_are_post_filtered_on_indices(lists: CachedLists) -> None:
    model = Model()
    lists.get_or_compute("v1", N_ITEMS, request(1), model)
    allowed = np.ones(N_ITEMS, bool)
    allowed[11] = False
    rec, source = lists.get_or_compute("v1", N_ITEMS, request(3, excluded=[10], allowed=allowed), model)
    assert source == "cache" and rec.items.tolist() == [12, 13, 14]
    np.testing.assert_allclose(rec.scores, model(8).scores[2:5])


def test_too_few_survivors_compute_k_and_store_nothing(lists: CachedLists, metrics: Metrics) -> None:
    model = Model()
    lists.get_or_compute("v1", N_ITEMS, request(1), model)
    excluded = list(range(10, 16))  # 2 of 8 stored items survive
    _, source = lists.get_or_compute("v1", N_ITEMS, request(3, excluded=excluded), model)
    assert source == "computed" and model.asked == [8, 3]  # not the plain top N: not stored
    assert lists.get_or_compute("v1", N_ITEMS, request(8), model)[1] == "cache"  # the N-list is intact
    assert counted(metrics, "miss") == 2


def test_uncacheable_requests_and_k_over_n_bypass(lists: CachedLists, metrics: Metrics) -> None:
    model = Model()
    assert lists.get_or_compute("v1", N_ITEMS, request(3, cacheable=False), model)[1] == "computed"
    assert lists.get_or_compute("v1", N_ITEMS, request(9), model)[1] == "computed"
    assert model.asked == [3, 9]
    assert counted(metrics, "bypass") == 2
    assert lists.get_or_compute("v1", N_ITEMS, request(2), model)[1] == "computed"  # nothing was stored


def test_a_miss_never_computes_past_max_n(lists: CachedLists) -> None:
    model = Model()
    rec, _ = lists.get_or_compute("v1", N_ITEMS, request(2, max_n=5), model)
    assert model.asked == [5] and len(rec.items) == 2


def test_an_unready_backend_computes_k(metrics: Metrics) -> None:
    class NotReady(MemoryBackend):
        def ready(self, marker_key: str) -> bool:
            return False

    backend = NotReady(10)
    lists = CachedLists(ListCache(backend, list_size=8), metrics)
    model = Model()
    assert lists.get_or_compute("v1", N_ITEMS, request(3), model)[1] == "computed"
    assert model.asked == [3] and len(backend) == 0
    assert counted(metrics, "unavailable") == 1


def test_without_a_cache_everything_is_computed(metrics: Metrics) -> None:
    model = Model()
    lists = CachedLists(None, metrics)
    assert lists.get_or_compute("v1", N_ITEMS, request(3), model)[1] == "computed"
    assert model.asked == [3] and counted(metrics, "bypass") == 0


def test_build_list_cache_follows_the_settings() -> None:
    metrics = Metrics()
    memory = build_list_cache(Settings(_env_file=None), metrics)
    assert isinstance(memory.backend, MemoryBackend)
    assert build_list_cache(Settings(cache_size=0, _env_file=None), metrics) is None
    remote = build_list_cache(
        Settings(redis_url="redis://127.0.0.1:6379/0", redis_prefix="x", _env_file=None), metrics
    )
    assert remote.backend.name == "redis" and remote.prefix == "x" and remote.backend.observer is metrics
    remote.close()


def test_a_malformed_redis_url_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValueError, match=r"redis_url[\s\S]*must start with redis://"):
        Settings(redis_url="localhost:6379", _env_file=None)
    assert Settings(redis_url="", _env_file=None).redis_url is None  # empty = no Redis
