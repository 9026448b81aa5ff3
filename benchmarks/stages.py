"""Where one request's time goes: the stages of ``/recommend`` and ``/similar-items`` in process.

The model's own stage timers (the ones ``/metrics`` exports) give retrieval, feature assembly,
ranking and selection of the very call being timed; around them, the serving layer's id lookups
and body building ("response": ``service/strategies.py``, ``service/presenter.py``) and the
orjson rendering of the body ("serialization"). Medians over many requests with random users,
one thread each for torch and faiss, as in the service.
"""

from __future__ import annotations

import time
from typing import Any

import faiss
import numpy as np
import torch

from benchmarks.catalogue import Catalogue
from model_store import LocalStore
from service import presenter
from service.lists import CachedLists
from service.metrics import Metrics
from service.parsing import resolve_k
from service.queries import RecommendQuery, SimilarQuery
from service.responses import FastJSONResponse
from service.settings import Settings
from service.state import LoadedModel, ModelHolder
from service.strategies import Serving

MODEL_STAGES = ("retrieval", "features", "ranking", "selection")


class _Recorder:
    """Stands in for :class:`~service.metrics.Metrics`: keeps the stage timings of the last call.

    Serving reports its model's stage timings through ``metrics.observe_stages``; recording
    them there times the stages of the very call whose total is measured. Every other metric it
    touches becomes a no-op.
    """

    def __init__(self) -> None:
        self.last: dict[str, float] = {}

    def observe_stages(self, timings: dict[str, float]) -> None:
        self.last = dict(timings)

    def __getattr__(self, name: str) -> Any:
        return _NoOp()


class _NoOp:
    def __getattr__(self, name: str) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self


def _median_us(values: list[float]) -> float:
    return float(np.median(values) * 1e6)


def run_stages(cat: Catalogue, n_requests: int = 300, k: int = 10) -> dict[str, Any]:
    """Median µs per stage for ``/recommend`` and ``/similar-items``; names the slowest stage."""
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    model, manifest = LocalStore(cat.store_root).load()
    holder = ModelHolder(str(cat.store_root), Metrics())
    holder.swap(LoadedModel(model, manifest))
    recorder = _Recorder()
    settings = Settings(_env_file=None)
    serving = Serving(holder, settings, recorder, CachedLists(None, recorder))  # type: ignore[arg-type]
    k = resolve_k(k, settings)
    rng = np.random.default_rng(cat.spec.seed + 4)
    users = rng.integers(0, model.n_users, n_requests)
    items = rng.integers(0, model.n_items, n_requests)

    rec: dict[str, list[float]] = {s: [] for s in (*MODEL_STAGES, "response", "serialization", "total")}
    for i, u in enumerate(users.tolist()):
        t0 = time.perf_counter()
        uid = model.user_ids.external(u)
        loaded, answer = serving.recommend(RecommendQuery(uid, k))
        body = presenter.recommend_body(loaded.model, uid, answer, explain=False)
        t1 = time.perf_counter()
        FastJSONResponse(body)
        t2 = time.perf_counter()
        if i == 0:
            continue  # first call warms lazily initialised state
        timings = recorder.last
        for s in MODEL_STAGES:
            rec[s].append(timings.get(s, 0.0))
        rec["response"].append(max(0.0, (t1 - t0) - sum(timings.values())))
        rec["serialization"].append(t2 - t1)
        rec["total"].append(t2 - t0)

    sim: dict[str, list[float]] = {s: [] for s in ("retrieval", "response", "serialization", "total")}
    for i, it in enumerate(items.tolist()):
        t0 = time.perf_counter()
        iid = model.item_ids.external(it)
        loaded, answer = serving.similar(SimilarQuery(iid, k))
        body = presenter.similar_body(loaded.model, iid, answer)
        t1 = time.perf_counter()
        FastJSONResponse(body)
        t2 = time.perf_counter()
        if i == 0:
            continue
        timings = recorder.last
        sim["retrieval"].append(timings.get("retrieval", 0.0))
        sim["response"].append(max(0.0, (t1 - t0) - timings.get("retrieval", 0.0)))
        sim["serialization"].append(t2 - t1)
        sim["total"].append(t2 - t0)

    recommend_us = {s: _median_us(v) for s, v in rec.items()}
    similar_us = {s: _median_us(v) for s, v in sim.items()}
    stage_names = [s for s in recommend_us if s != "total"]
    return {
        "n_items": cat.spec.n_items,
        "recommend_us": recommend_us,
        "similar_us": similar_us,
        "slowest": max(stage_names, key=recommend_us.__getitem__),
    }
