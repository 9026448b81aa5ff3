"""Micro-batching (service/batching.py): every request of a batch gets the answer it gets alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.batching import MicroBatcher, run_batch
from service.exceptions import UnknownItem, UnknownUser
from service.queries import RecommendQuery, SimilarQuery
from service.settings import Settings
from service.strategies import Serving


@pytest.fixture
def client(published_store: Path) -> Iterator[TestClient]:
    settings = Settings(
        store_uri=str(published_store), cache_size=0, cold_start_fallback="error", _env_file=None
    )
    with TestClient(create_app(settings)) as c:
        yield c


def _same(a: tuple, b: tuple) -> None:
    (loaded_a, x), (loaded_b, y) = a, b
    assert loaded_a.version == loaded_b.version
    assert (x.source, x.strategy, x.k, x.notes) == (y.source, y.strategy, y.k, y.notes)
    np.testing.assert_array_equal(x.rec.items, y.rec.items)
    np.testing.assert_array_equal(x.rec.scores, y.rec.scores)  # bit for bit, not "close"
    np.testing.assert_array_equal(x.rec.retrieval_scores, y.rec.retrieval_scores)
    np.testing.assert_array_equal(x.history, y.history)


def test_a_batch_answers_each_request_as_it_is_answered_alone(client: TestClient) -> None:
    serving: Serving = client.app.state.serving
    model = serving.holder.current.model
    users, items = model.user_ids.ids, model.item_ids.ids
    rng = np.random.default_rng(0)
    jobs: list[tuple[str, object]] = []
    for u in rng.choice(len(users), 40, replace=False).tolist():
        jobs.append(("rec", RecommendQuery(users[u], int(rng.integers(1, 12)))))
    jobs += [
        ("rec", RecommendQuery(users[0], 10, exclude_item_ids=tuple(items[:3]))),
        ("rec", RecommendQuery(users[1], 10, exclude_item_ids=tuple(items[3:20]))),
        ("rec", RecommendQuery(users[2], 10, exclude_seen=False)),
        ("rec", RecommendQuery(users[3], 5, exclude_seen=False, exclude_item_ids=(items[0],))),
        ("rec", RecommendQuery(users[4], 5, diversity=0.5)),  # alone: diversity
        ("rec", RecommendQuery(users[5], 5, explain=True)),
        ("rec", RecommendQuery("nobody", 5, recent_item_ids=(items[1], items[2]))),  # cold start
        ("rec", RecommendQuery("nobody", 5)),  # 404 with cold_start_fallback=error
        ("sim", SimilarQuery("no-such-item", 5)),
    ]
    jobs += [("sim", SimilarQuery(items[i], int(rng.integers(1, 12)))) for i in range(30)]
    jobs.append(("sim", SimilarQuery(items[0], 5, exclude_item_ids=(items[1],))))
    rng.shuffle(jobs)
    before = _batched_lists(serving)
    batched = run_batch(serving, jobs)
    # every list but the two errors and the cold start (computed in its steps: no model batch)
    assert _batched_lists(serving) - before == len(jobs) - 3
    assert _largest_batch(serving) > 1
    for (kind, query), got in zip(jobs, batched, strict=True):
        alone = serving.recommend if kind == "rec" else serving.similar
        if isinstance(got, BaseException):
            with pytest.raises(type(got)):
                alone(query)  # type: ignore[arg-type]
            assert isinstance(got, UnknownUser | UnknownItem)
        else:
            _same(got, alone(query))  # type: ignore[arg-type]


def _batch_samples(serving: Serving, suffix: str) -> list[tuple[dict, float]]:
    return [
        (s.labels, s.value)
        for m in serving.metrics.registry.collect()
        if m.name == "recserve_batch_size"
        for s in m.samples
        if s.name == f"recserve_batch_size{suffix}"
    ]


def _batched_lists(serving: Serving) -> float:
    return sum(v for _, v in _batch_samples(serving, "_sum"))


def _largest_batch(serving: Serving) -> float:
    counts = {}
    for labels, value in _batch_samples(serving, "_bucket"):
        counts.setdefault(labels["kind"], []).append((float(labels["le"]), value))
    largest = 0.0
    for buckets in counts.values():
        buckets.sort()
        for (le, c), (_, prev) in zip(buckets[1:], buckets[:-1], strict=True):
            if c > prev:
                largest = max(largest, le)
    return largest


def test_the_http_answers_match_with_batching_on_and_off(published_store: Path) -> None:
    def answers(batching: bool) -> list[dict]:
        settings = Settings(
            store_uri=str(published_store), cache_size=0, micro_batching=batching, _env_file=None
        )
        with TestClient(create_app(settings)) as c:
            assert (c.app.state.serving.batcher is not None) is batching
            ids = c.app.state.serving.holder.current.model.user_ids.ids[:5]
            out = [c.get(f"/recommend?user_id={u}&k=7").json() for u in ids]
            out.append(c.post("/recommend", json={"user_id": ids[0], "k": 3}).json())
            out.append(c.get("/similar-items?item_id=" + out[0]["items"][0]["item_id"]).json())
        return [{k: v for k, v in body.items() if k != "recomm_id"} for body in out]

    assert answers(True) == answers(False)


def test_micro_batcher_batches_what_queued_and_keeps_each_result() -> None:
    seen: list[int] = []

    def run(jobs: list) -> list:
        seen.append(len(jobs))
        return [ValueError(job[1]) if job[1] < 0 else job[1] * 2 for job in jobs]

    async def main() -> list:
        batcher = MicroBatcher(run, max_batch=4)
        try:
            return await asyncio.gather(
                *(batcher.submit("rec", q) for q in [1, 2, -3, 4, 5, 6, 7]), return_exceptions=True
            )
        finally:
            batcher.close()

    got = asyncio.run(main())
    assert got[:2] == [2, 4] and isinstance(got[2], ValueError) and got[3:] == [8, 10, 12, 14]
    assert sum(seen) == 7 and max(seen) <= 4 and len(seen) < 7  # batched, bounded


def test_batched_cache_reads_and_write_backs_answer_as_alone(published_store: Path) -> None:
    """With the list cache: a first batch computes and writes back, a second reads (one
    ``get_many``); both answer as the lone path does."""
    settings = Settings(store_uri=str(published_store), cache_size=1000, _env_file=None)
    with TestClient(create_app(settings)) as c:
        serving: Serving = c.app.state.serving
        users = serving.holder.current.model.user_ids.ids[:12]
        jobs = [("rec", RecommendQuery(u, 5)) for u in users]
        jobs.append(("rec", RecommendQuery(users[0], 5, exclude_item_ids=("no-such-item",))))
        first = run_batch(serving, jobs)
        second = run_batch(serving, jobs)
        assert {a[1].source for a in first} == {"computed"}  # type: ignore[index]
        assert {a[1].source for a in second} == {"cache"}  # type: ignore[index]
        for (_, query), a, b in zip(jobs, first, second, strict=True):
            alone = serving.recommend(query)  # type: ignore[arg-type]
            assert alone[1].source == "cache"
            for got in (a, b):
                np.testing.assert_array_equal(got[1].rec.items, alone[1].rec.items)  # type: ignore[index]
                np.testing.assert_array_equal(got[1].rec.scores, alone[1].rec.scores)  # type: ignore[index]


def test_each_batched_request_runs_in_its_own_context() -> None:
    """The worker thread runs a request's steps in the context the request was queued from, so
    its log lines carry its own request id (``service.logs.request_id_var``), batched or not."""
    from service.logs import request_id_var

    def run(jobs: list) -> list:
        return [job[2].run(request_id_var.get) for job in jobs]

    async def one(batcher: MicroBatcher, rid: str) -> str:
        request_id_var.set(rid)  # each gather task has its own copy of the context
        return await batcher.submit("rec", rid)

    async def main() -> list:
        batcher = MicroBatcher(run, max_batch=8)
        try:
            return await asyncio.gather(*(one(batcher, f"r-{i}") for i in range(6)))
        finally:
            batcher.close()

    assert asyncio.run(main()) == [f"r-{i}" for i in range(6)]
