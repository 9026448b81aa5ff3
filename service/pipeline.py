"""Request → answer: validation against the loaded model, the two-stage call, stage timings."""

from __future__ import annotations

from typing import Any

import numpy as np

from service.errors import APIError
from service.metrics import Metrics
from service.settings import Settings
from service.state import LoadedModel, ModelHolder


class ServingPipeline:
    """Turns validated requests into response bodies using whatever model is current.

    Each call takes the current :class:`LoadedModel` reference once, so a model swap in the middle
    of a request cannot mix two models in one answer.
    """

    def __init__(self, holder: ModelHolder, settings: Settings, metrics: Metrics) -> None:
        self.holder = holder
        self.settings = settings
        self.metrics = metrics

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
        timings: dict[str, float] = {}
        rec = model.recommend(np.array([user]), k, exclude_seen=exclude_seen, timings=timings)[0]
        self.metrics.observe_stages(timings)
        self.metrics.candidates.observe(min(model.n_candidates, model.n_items))
        body = {
            "model_version": model.version,
            "user_id": user_id,
            "source": "computed",
            "items": _items(model.item_ids.externals(rec.items), rec.scores),
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
        timings: dict[str, float] = {}
        rec = model.similar(item, k, timings=timings)
        self.metrics.observe_stages(timings)
        body = {
            "model_version": model.version,
            "item_id": item_id,
            "source": "computed",
            "items": _items(model.item_ids.externals(rec.items), rec.scores),
        }
        return loaded, body


def _items(ids: list[str], scores: np.ndarray) -> list[dict[str, Any]]:
    return [{"item_id": i, "score": float(s)} for i, s in zip(ids, scores.tolist(), strict=True)]
