"""The seam a precomputed-list cache plugs into: which queries a cached list can answer, and
that the pipeline consults ``lookup`` before computing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from recommender.filters import ItemFilter
from service.app import create_app
from service.pipeline import RecommendQuery, ServingPipeline
from service.schemas import RecommendRequest
from service.settings import Settings
from service.state import LoadedModel


def test_query_classification() -> None:
    assert RecommendQuery("u1", 10).plain
    assert RecommendQuery("u1", 10, exclude_seen=False).plain
    # exclusions and filters: a cached list post-filtered may answer (else compute)
    for q in (
        RecommendQuery("u1", 10, exclude_item_ids=("i1",)),
        RecommendQuery("u1", 10, item_filter=ItemFilter(include={"category": ["cat1"]})),
    ):
        assert not q.plain and not q.needs_compute
    # options that change the ranking itself can only be computed
    for q in (
        RecommendQuery("u1", 10, diversity=0.3),
        RecommendQuery("u1", 10, explain=True),
        RecommendQuery("u1", 10, recent_item_ids=("i1",)),
    ):
        assert q.needs_compute and not q.plain


def test_request_normalisation(published_store: Path) -> None:
    settings = Settings(store_uri=str(published_store), default_k=7, _env_file=None)
    pipeline = create_app(settings).state.pipeline
    q = pipeline.recommend_query(RecommendRequest(user_id="u1", item_filter={"include": {}, "exclude": {}}))
    assert q.k == 7 and q.item_filter is None and q.plain
    q = pipeline.recommend_query(
        RecommendRequest(
            user_id="u1", k=3, exclude_item_ids=["a"], item_filter={"exclude": {"category": ["x"]}}
        )
    )
    assert q.k == 3 and q.exclude_item_ids == ("a",)
    assert q.item_filter == ItemFilter(include={}, exclude={"category": ["x"]})


class _Canned(ServingPipeline):
    """A stand-in cache: answers plain queries itself, counts what reached compute."""

    computed: list[RecommendQuery]

    def lookup(
        self, loaded: LoadedModel, query: RecommendQuery, allowed: np.ndarray | None
    ) -> dict[str, Any] | None:
        if not query.plain:
            return None
        return {
            "model_version": loaded.version,
            "user_id": query.user_id,
            "source": "cache",
            "strategy": "personalized",
            "items": [{"item_id": "i0", "score": 1.0}],
            "complete": query.k <= 1,
            "notes": [],
        }

    def compute(
        self, loaded: LoadedModel, query: RecommendQuery, allowed: np.ndarray | None
    ) -> dict[str, Any]:
        self.computed.append(query)
        return super().compute(loaded, query, allowed)


@pytest.fixture
def canned(published_store: Path) -> Iterator[tuple[TestClient, _Canned]]:
    app = create_app(Settings(store_uri=str(published_store), _env_file=None))
    pipeline = _Canned(app.state.holder, app.state.settings, app.state.metrics)
    pipeline.computed = []
    app.state.pipeline = pipeline
    with TestClient(app) as c:
        yield c, pipeline


def test_lookup_answers_before_compute(canned: tuple[TestClient, _Canned]) -> None:
    client, pipeline = canned
    body = client.get("/recommend", params={"user_id": "u1", "k": 1}).json()
    assert body["source"] == "cache" and pipeline.computed == []
    body = client.get("/recommend", params={"user_id": "u1", "k": 4, "explain": True}).json()
    assert body["source"] == "computed" and len(body["items"]) == 4
    assert [q.explain for q in pipeline.computed] == [True]
