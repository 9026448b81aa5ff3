"""The "try it" section's helpers: example ids, a user's training history, item attributes.

The recommendations themselves are *not* produced here: the page calls the real ``/recommend``
and ``/similar-items`` endpoints, so what it shows is exactly what a client gets. These helpers
only add context read from the same loaded model: which items a user interacted with in training
(``model.seen``, the set ``exclude_seen`` removes), the user's feedback since the model was
trained (the fresh events ``/recommend`` also leaves out under ``exclude_seen``, and whose positive
types shift the ranking) and each item's attributes (what ``item_filter`` matches on).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recommender.model import RecommenderModel
from service.fresh import FreshItem

N_EXAMPLES = 6
MAX_ATTRIBUTE_VALUES = 200


def _spread(candidates: np.ndarray, n: int) -> list[int]:
    """``n`` entries spread evenly over ``candidates`` (first and last included)."""
    if len(candidates) == 0:
        return []
    picks = np.linspace(0, len(candidates) - 1, num=min(n, len(candidates))).round().astype(np.int64)
    return [int(candidates[i]) for i in dict.fromkeys(picks.tolist())]


def examples(model: RecommenderModel, n: int = N_EXAMPLES) -> dict[str, Any]:
    """Ids to offer in the page's inputs, and the attribute values ``item_filter`` can use.

    Users are spread over those with a training history (so the history column is not empty);
    items are the most popular half and the rest spread over the catalogue.
    """
    history_sizes = np.diff(model.seen_indptr)
    users = _spread(np.flatnonzero(history_sizes > 0), n)
    popular = np.argsort(-model.popularity, kind="stable")[: max(1, n // 2)].tolist()
    items = list(dict.fromkeys([*popular, *_spread(np.arange(model.n_items), n)]))[:n]
    index = model.attribute_index
    return {
        "model_version": model.version,
        "users": model.user_ids.externals(users),
        "items": model.item_ids.externals(items),
        "attributes": {name: index.values(name)[:MAX_ATTRIBUTE_VALUES] for name in index.attributes},
    }


def attributes_of(model: RecommenderModel, item: int) -> dict[str, list[str]]:
    return {name: [str(v) for v in per_item[item]] for name, per_item in model.item_attributes.items()}


def items_info(model: RecommenderModel, item_ids: list[str]) -> dict[str, Any]:
    """Attributes of each known id; unknown ids listed apart (not an error: the page decorates
    answers, and a hot swap between two calls can make an id disappear)."""
    known: dict[str, Any] = {}
    unknown: list[str] = []
    for item_id in item_ids:
        index = model.item_ids.get(item_id)
        if index is None:
            unknown.append(item_id)
        else:
            popularity = float(model.popularity[index])
            known[item_id] = {"attributes": attributes_of(model, index), "popularity": popularity}
    return {"model_version": model.version, "items": known, "unknown": unknown}


def fresh_rows(model: RecommenderModel, fresh: list[FreshItem], watermark: int) -> list[dict[str, Any]]:
    """The user's events newer than the model's watermark (what ``/recommend`` reads of them:
    ``service/strategies.py`` drops ``seq <= watermark``), newest first."""
    rows = []
    for f in reversed(fresh):
        if f.seq <= watermark:
            continue
        index = model.item_ids.get(f.item_id)
        rows.append(
            {
                "item_id": f.item_id,
                "type": f.type,
                "seq": f.seq,
                "known": index is not None,
                "attributes": attributes_of(model, index) if index is not None else {},
            }
        )
    return rows


def history(
    model: RecommenderModel,
    user_id: str,
    limit: int,
    fresh: list[FreshItem] | None = None,
    watermark: int = 0,
) -> dict[str, Any]:
    """The user's training items (at most ``limit``, in the bundle's order) with attributes, and
    their feedback since training (``fresh``, newest first).

    An unknown user is a normal case for the page (``/recommend`` answers them with the
    cold-start fallback), so it is ``known: false`` with no items rather than an error; their
    fresh events are still listed (positive ones are their recent items).
    """
    recent = fresh_rows(model, fresh or [], watermark)
    user = model.user_ids.get(user_id)
    if user is None:
        return {
            "model_version": model.version,
            "user_id": user_id,
            "known": False,
            "n_items": 0,
            "items": [],
            "fresh": recent,
        }
    seen = model.seen(user)
    shown = seen[:limit].tolist()
    return {
        "model_version": model.version,
        "user_id": user_id,
        "known": True,
        "n_items": len(seen),
        "items": [
            {"item_id": item_id, "attributes": attributes_of(model, i)}
            for i, item_id in zip(shown, model.item_ids.externals(shown), strict=True)
        ],
        "fresh": recent,
    }
