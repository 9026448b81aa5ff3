"""Every response body of the list endpoints, built here and only here.

Every list carries a fresh ``recomm_id`` (``service/recomm.py``): the id feedback on its items
sends back, which encodes the model version and strategy the click is credited to.

Answers arrive in internal item indices (:class:`~service.answers.ListAnswer`); this is where they
become external ids — once, at the end — with scores, optional reasons, and ``complete``/``notes``.
The shapes are the pydantic response models in ``service/schemas.py``; bodies are plain dicts
rendered by orjson (validating them through pydantic on every request would cost more than
the recommendation).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recommender.model import RecommenderModel
from service.answers import ListAnswer
from service.recomm import new_recomm_id
from service.responses import FastJSONResponse
from service.state import LoadedModel


def respond(loaded: LoadedModel, body: dict[str, Any]) -> FastJSONResponse:
    """The JSON response, naming the model that answered in ``X-Model-Version``."""
    return FastJSONResponse(body, headers={"X-Model-Version": loaded.version})


def recommend_body(
    model: RecommenderModel, user_id: str, answer: ListAnswer, explain: bool
) -> dict[str, Any]:
    items = _items(model, answer)
    if explain:
        for item, reason in zip(items, _reasons(model, answer), strict=True):
            item["reason"] = reason
    body: dict[str, Any] = {
        "model_version": model.version,
        "recomm_id": new_recomm_id(model.version, answer.strategy or "personalized"),
        "user_id": user_id,
        "source": answer.source,
        "strategy": answer.strategy,
        "items": items,
    }
    return _with_completeness(body, answer)


def batch_body(
    model: RecommenderModel, user_ids: tuple[str, ...], answers: list[ListAnswer], explain: bool
) -> dict[str, Any]:
    results = [recommend_body(model, u, a, explain) for u, a in zip(user_ids, answers, strict=True)]
    return {
        "model_version": model.version,
        "recomm_id": new_recomm_id(model.version, "batch"),
        "results": results,
    }


def similar_body(model: RecommenderModel, item_id: str, answer: ListAnswer) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model_version": model.version,
        "recomm_id": new_recomm_id(model.version, "similar_items"),
        "item_id": item_id,
        "source": answer.source,
        "items": _items(model, answer),
    }
    return _with_completeness(body, answer)


def _items(model: RecommenderModel, answer: ListAnswer) -> list[dict[str, Any]]:
    ids = model.item_ids.externals(answer.rec.items)
    return [{"item_id": i, "score": s} for i, s in zip(ids, answer.rec.scores.tolist(), strict=True)]


def _with_completeness(body: dict[str, Any], answer: ListAnswer) -> dict[str, Any]:
    n, k = len(answer.rec.items), answer.k
    notes = list(answer.notes)
    if n < k:
        notes.append(f"only {n} items qualified for k={k} after exclusions and filters")
    body["complete"] = n >= k
    body["notes"] = notes
    return body


def _finite(x: float) -> float | None:
    return x if np.isfinite(x) else None


def _reasons(model: RecommenderModel, answer: ListAnswer) -> list[dict[str, Any]]:
    rec = answer.rec
    if answer.strategy == "popularity":
        return [
            {
                "text": f"popular: {int(s)} interactions in training",
                "similar_to": None,
                "similarity": None,
                "retrieval_score": None,
                "ranker_score": None,
            }
            for s in rec.scores.tolist()
        ]
    similar_idx, sims = model.explain(rec.items, answer.history)
    has_ranker = model.ranker is not None
    whose = "one of your recent items" if answer.strategy == "recent_items" else "an item you interacted with"
    out = []
    for j in range(len(rec.items)):
        sim_item = int(similar_idx[j])
        sim_id = model.item_ids.external(sim_item) if sim_item >= 0 else None
        text = f"similar to {sim_id}, {whose}" if sim_id is not None else "matches your taste profile"
        out.append(
            {
                "text": text,
                "similar_to": sim_id,
                "similarity": _finite(float(sims[j])),
                "retrieval_score": _finite(float(rec.retrieval_scores[j])),
                "ranker_score": _finite(float(rec.scores[j])) if has_ranker else None,
            }
        )
    return out
