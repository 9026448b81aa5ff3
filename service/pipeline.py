"""Request → answer: validation against the loaded model, the two-stage call, stage timings."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from service.cache import ListCache
from service.errors import APIError
from service.metrics import Metrics
from service.settings import Settings
from service.state import LoadedModel, ModelHolder


class ServingPipeline:
    """Turns validated requests into response bodies using whatever model is current.

    Each call takes the current :class:`LoadedModel` reference once, so a model swap in the middle
    of a request cannot mix two models in one answer.
    """

    def __init__(
        self, holder: ModelHolder, settings: Settings, metrics: Metrics, cache: ListCache | None = None
    ) -> None:
        self.holder = holder
        self.settings = settings
        self.metrics = metrics
        self.cache = cache

    def loaded(self) -> LoadedModel:
        current = self.holder.current
        if current is None:
            raise APIError(503, "no_model", "no model is loaded yet; see /readyz")
        return current

    def check_k(self, k: int) -> None:
        if k > self.settings.max_k:
            raise APIError(
                422, "validation_error", f"k: must be <= {self.settings.max_k} (max_k), got {k}", "k"
            )

    def recommend(
        self, user_id: str, k: int, exclude_seen: bool = True
    ) -> tuple[LoadedModel, dict[str, Any]]:
        self.check_k(k)
        loaded = self.loaded()
        model = loaded.model
        user = model.user_ids.get(user_id)
        if user is None:
            raise APIError(
                404, "unknown_user", f"user_id {user_id!r} is not known to model {model.version}", "user_id"
            )
        # Cache hook: precomputed lists exclude seen items, so only exclude_seen=True may use them.
        cached = self._cached("recommend", "rec", loaded, user_id, k, cacheable=exclude_seen)
        if cached is not None:
            return loaded, {"model_version": model.version, "user_id": user_id, **cached}
        timings: dict[str, float] = {}
        n = self.cache.compute_k(k, exclude_seen) if self.cache else k
        rec = model.recommend(np.array([user]), n, exclude_seen=exclude_seen, timings=timings)[0]
        self.metrics.observe_stages(timings)
        self.metrics.candidates.observe(min(model.n_candidates, model.n_items))
        if self.cache is not None and exclude_seen:
            self.cache.store("rec", model.version, user_id, rec.items, rec.scores, k)
        body = {
            "model_version": model.version,
            "user_id": user_id,
            "source": "computed",
            "items": _items(model.item_ids.externals(rec.items[:k]), rec.scores[:k]),
        }
        return loaded, body

    def similar(self, item_id: str, k: int) -> tuple[LoadedModel, dict[str, Any]]:
        self.check_k(k)
        loaded = self.loaded()
        model = loaded.model
        item = model.item_ids.get(item_id)
        if item is None:
            raise APIError(
                404, "unknown_item", f"item_id {item_id!r} is not known to model {model.version}", "item_id"
            )
        cached = self._cached("similar", "sim", loaded, item_id, k)
        if cached is not None:
            return loaded, {"model_version": model.version, "item_id": item_id, **cached}
        timings: dict[str, float] = {}
        n = self.cache.compute_k(k) if self.cache else k
        rec = model.similar(item, n, timings=timings)
        self.metrics.observe_stages(timings)
        if self.cache is not None:
            self.cache.store("sim", model.version, item_id, rec.items, rec.scores, k)
        body = {
            "model_version": model.version,
            "item_id": item_id,
            "source": "computed",
            "items": _items(model.item_ids.externals(rec.items[:k]), rec.scores[:k]),
        }
        return loaded, body

    # -- cache hook (issue 7): look up first; None = compute. Request options map onto
    # cacheable (False for anything that changes the ranking itself), excluded_ids and allowed
    # (post-filters on the cached list; see service.cache.answer_from_cached).
    def _cached(
        self,
        endpoint: str,
        kind: str,
        loaded: LoadedModel,
        key_id: str,
        k: int,
        cacheable: bool = True,
        excluded_ids: set[str] | frozenset[str] = frozenset(),
        allowed: Callable[[str], bool] | None = None,
    ) -> dict[str, Any] | None:
        if self.cache is None:
            return None
        model = loaded.model
        start = time.perf_counter()
        found = self.cache.lookup(
            endpoint,
            kind,
            model.version,
            key_id,
            model.item_ids,
            model.n_items,
            k,
            cacheable=cacheable,
            excluded_ids=excluded_ids,
            allowed=allowed,
        )
        self.metrics.stage_latency.labels("cache").observe(time.perf_counter() - start)
        if found.items is None:
            return None
        return {"source": "cache", "items": [{"item_id": i, "score": s} for i, s in found.items]}


def _items(ids: list[str], scores: np.ndarray) -> list[dict[str, Any]]:
    return [{"item_id": i, "score": float(s)} for i, s in zip(ids, scores.tolist(), strict=True)]
