"""Request → answer: normalised queries, validation against the loaded model, the two-stage call.

Shape of a request's life, kept flat on purpose so a precomputed-list cache slots in at one place:

    RecommendQuery (options normalised, k checked)  →  lookup(loaded, query, allowed)  →  compute(…)

``lookup`` is the hook: it returns a finished body (e.g. a cached list post-filtered for this
query's exclusions/filter) or ``None``, and then ``compute`` runs the model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommender.filters import ItemFilter, UnknownAttribute
from recommender.model import Recommendations, RecommenderModel
from service.cache import ListCache
from service.errors import APIError
from service.metrics import Metrics
from service.schemas import BatchRecommendRequest, ItemFilterModel, RecommendRequest, SimilarRequest
from service.settings import Settings
from service.state import LoadedModel, ModelHolder


@dataclass(frozen=True)
class RecommendQuery:
    """One recommendation request with every option resolved (defaults applied, k bounded).

    ``plain`` says whether the answer depends only on ``(user_id, k, exclude_seen)``: such a
    query can be served straight from a precomputed list; one with exclusions or a filter needs
    that list post-filtered (and may fall back to compute if too few survive); one with
    diversity, explain or recent items must be computed.
    """

    user_id: str
    k: int
    exclude_seen: bool = True
    exclude_item_ids: tuple[str, ...] = ()
    item_filter: ItemFilter | None = None
    recent_item_ids: tuple[str, ...] = ()
    diversity: float = 0.0
    explain: bool = False

    @property
    def plain(self) -> bool:
        return not (self.exclude_item_ids or self.item_filter or self.needs_compute)

    @property
    def needs_compute(self) -> bool:
        """True when no cached list can answer, even post-filtered."""
        return bool(self.diversity > 0 or self.explain or self.recent_item_ids)


@dataclass(frozen=True)
class SimilarQuery:
    item_id: str
    k: int
    exclude_item_ids: tuple[str, ...] = ()
    item_filter: ItemFilter | None = None


@dataclass(frozen=True)
class BatchQuery:
    user_ids: tuple[str, ...]
    k: int
    exclude_seen: bool = True
    exclude_item_ids: tuple[str, ...] = ()
    item_filter: ItemFilter | None = None
    diversity: float = 0.0
    explain: bool = False


def to_filter(model: ItemFilterModel | None) -> ItemFilter | None:
    if model is None or not (model.include or model.exclude):
        return None
    return ItemFilter(include=dict(model.include), exclude=dict(model.exclude))


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

    # -- request normalisation ---------------------------------------------------------------
    def loaded(self) -> LoadedModel:
        current = self.holder.current
        if current is None:
            raise APIError(503, "no_model", "no model is loaded yet; see /readyz")
        return current

    def resolve_k(self, k: int | None) -> int:
        if k is None:
            return min(self.settings.default_k, self.settings.max_k)
        if k > self.settings.max_k:
            raise APIError(
                422, "validation_error", f"k: must be <= {self.settings.max_k} (max_k), got {k}", "k"
            )
        return k

    def recommend_query(self, req: RecommendRequest) -> RecommendQuery:
        return RecommendQuery(
            user_id=req.user_id,
            k=self.resolve_k(req.k),
            exclude_seen=req.exclude_seen,
            exclude_item_ids=tuple(req.exclude_item_ids),
            item_filter=to_filter(req.item_filter),
            recent_item_ids=tuple(req.recent_item_ids),
            diversity=req.diversity,
            explain=req.explain,
        )

    def batch_query(self, req: BatchRecommendRequest) -> BatchQuery:
        limit = self.settings.max_batch_size
        if len(req.user_ids) > limit:
            raise APIError(
                422,
                "batch_too_large",
                f"user_ids: at most {limit} users per batch (max_batch_size), got {len(req.user_ids)}",
                "user_ids",
            )
        return BatchQuery(
            user_ids=tuple(req.user_ids),
            k=self.resolve_k(req.k),
            exclude_seen=req.exclude_seen,
            exclude_item_ids=tuple(req.exclude_item_ids),
            item_filter=to_filter(req.item_filter),
            diversity=req.diversity,
            explain=req.explain,
        )

    def similar_query(self, req: SimilarRequest) -> SimilarQuery:
        return SimilarQuery(
            item_id=req.item_id,
            k=self.resolve_k(req.k),
            exclude_item_ids=tuple(req.exclude_item_ids),
            item_filter=to_filter(req.item_filter),
        )

    # -- /recommend --------------------------------------------------------------------------
    def recommend(self, query: RecommendQuery) -> tuple[LoadedModel, dict[str, Any]]:
        loaded = self.loaded()
        # The filter mask is O(n_items): build it once for both the lookup and a compute on a miss.
        allowed = _mask(loaded.model, query.item_filter)
        body = self.lookup(loaded, query, allowed)
        if body is None:
            body = self.compute(loaded, query, allowed)
        return loaded, body

    def lookup(
        self, loaded: LoadedModel, query: RecommendQuery, allowed: np.ndarray | None
    ) -> dict[str, Any] | None:
        """The cache hook: a finished body for ``query`` from a precomputed list, or ``None``.

        Stored lists are a known user's top N with seen items excluded, so only such queries may
        use them; exclusions and filters post-filter the list (``answer_from_cached``), and
        options that change the ranking itself (recent items, diversity, explain) always compute.
        """
        model = loaded.model
        if self.cache is None or model.user_ids.get(query.user_id) is None:
            return None
        cacheable = query.exclude_seen and not query.needs_compute
        items = self._cached(
            "recommend",
            "rec",
            loaded,
            query.user_id,
            query.k,
            cacheable,
            query.exclude_item_ids,
            allowed,
        )
        if items is None:
            return None
        return {
            "model_version": model.version,
            "user_id": query.user_id,
            "source": "cache",
            "strategy": "personalized",
            "items": items,
            "complete": True,
            "notes": [],
        }

    def compute(
        self, loaded: LoadedModel, query: RecommendQuery, allowed: np.ndarray | None
    ) -> dict[str, Any]:
        """Run the model for ``query``; ``allowed`` is its item-filter mask (None = all items)."""
        model = loaded.model
        excluded = _known_items(model, query.exclude_item_ids)
        notes: list[str] = []
        timings: dict[str, float] = {}
        user = model.user_ids.get(query.user_id)
        recent = _known_items(model, query.recent_item_ids)
        unknown = [i for i in dict.fromkeys(query.recent_item_ids) if i not in model.item_ids]
        if unknown:
            shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
            notes.append(f"recent_item_ids unknown to model {model.version}, ignored: {shown}")
        if user is not None:
            strategy = "personalized"
            if query.exclude_seen and len(recent):
                excluded = np.concatenate([excluded, recent])
            # A plain query computes the cache's N items (same top k, a few µs more) and stores them.
            store = self.cache is not None and query.plain and query.exclude_seen
            n = query.k
            if store and self.cache is not None:
                # never past the model's candidate count: more would rank a different candidate list
                n = min(self.cache.compute_k(query.k), max(query.k, model.n_candidates))
            rec = model.recommend(
                np.array([user]),
                n,
                exclude_seen=query.exclude_seen,
                timings=timings,
                exclude_items=excluded,
                allowed=allowed,
                diversity=query.diversity,
            )[0]
            if store and self.cache is not None:
                self.cache.store("rec", model.version, query.user_id, rec.items, rec.scores, query.k)
                rec = _head(rec, query.k)
            history = model.seen(user)
            self.metrics.candidates.observe(min(model.n_candidates, model.n_items))
        elif len(recent):
            strategy = "recent_items"
            rec = model.recommend_items(
                recent, query.k, query.exclude_seen, excluded, allowed, query.diversity, timings
            )
            history = recent
            self.metrics.candidates.observe(min(model.n_candidates, model.n_items))
        else:
            strategy = self._fallback(model, query.user_id, "user_id")
            rec = model.popular(query.k, excluded, allowed, query.diversity)
            history = np.zeros(0, np.int64)
        self.metrics.observe_stages(timings)
        return self._list_body(
            model, rec, query.k, strategy, history, query.explain, notes, user_id=query.user_id
        )

    def _fallback(self, model: RecommenderModel, user_id: str, field_name: str) -> str:
        if self.settings.cold_start_fallback == "error":
            raise APIError(
                404,
                "unknown_user",
                f"user_id {user_id!r} is not known to model {model.version} "
                "and no known recent_item_ids were given",
                field_name,
            )
        return "popularity"

    # -- /recommend/batch --------------------------------------------------------------------
    def recommend_batch(self, query: BatchQuery) -> tuple[LoadedModel, dict[str, Any]]:
        """All known users in one vectorised retrieval → ranking pass; unknown users share one
        popularity answer (the fallback does not depend on the user)."""
        loaded = self.loaded()
        model = loaded.model
        allowed = _mask(model, query.item_filter)
        excluded = _known_items(model, query.exclude_item_ids)
        index = [model.user_ids.get(u) for u in query.user_ids]
        known_rows = [r for r, u in enumerate(index) if u is not None]
        results: list[Recommendations | None] = [None] * len(index)
        timings: dict[str, float] = {}
        if known_rows:
            users = np.array([index[r] for r in known_rows], np.int64)
            recs = model.recommend(
                users,
                query.k,
                exclude_seen=query.exclude_seen,
                timings=timings,
                exclude_items=excluded,
                allowed=allowed,
                diversity=query.diversity,
            )
            for r, rec in zip(known_rows, recs, strict=True):
                results[r] = rec
            self.metrics.candidates.observe(min(model.n_candidates, model.n_items))
        popular: Recommendations | None = None
        out = []
        for r, user_id in enumerate(query.user_ids):
            user = index[r]
            rec = results[r]
            if user is None or rec is None:
                self._fallback(model, user_id, f"user_ids.{r}")
                if popular is None:
                    popular = model.popular(query.k, excluded, allowed, query.diversity)
                rec, strategy, history = popular, "popularity", np.zeros(0, np.int64)
            else:
                strategy, history = "personalized", model.seen(user)
            out.append(
                self._list_body(model, rec, query.k, strategy, history, query.explain, [], user_id=user_id)
            )
        self.metrics.observe_stages(timings)
        return loaded, {"model_version": model.version, "results": out}

    # -- /similar-items ----------------------------------------------------------------------
    def similar(self, query: SimilarQuery) -> tuple[LoadedModel, dict[str, Any]]:
        loaded = self.loaded()
        model = loaded.model
        item = model.item_ids.get(query.item_id)
        if item is None:
            raise APIError(
                404,
                "unknown_item",
                f"item_id {query.item_id!r} is not known to model {model.version}",
                "item_id",
            )
        allowed = _mask(model, query.item_filter)
        cached = self._cached(
            "similar", "sim", loaded, query.item_id, query.k, True, query.exclude_item_ids, allowed
        )
        if cached is not None:
            body = {
                "model_version": model.version,
                "item_id": query.item_id,
                "source": "cache",
                "items": cached,
            }
            body.update(_complete(len(cached), query.k, []))
            return loaded, body
        excluded = _known_items(model, query.exclude_item_ids)
        store = self.cache is not None and not query.exclude_item_ids and query.item_filter is None
        n = self.cache.compute_k(query.k) if store and self.cache is not None else query.k
        timings: dict[str, float] = {}
        rec = model.similar(item, n, timings=timings, exclude_items=excluded, allowed=allowed)
        self.metrics.observe_stages(timings)
        if store and self.cache is not None:
            self.cache.store("sim", model.version, query.item_id, rec.items, rec.scores, query.k)
            rec = _head(rec, query.k)
        body = {
            "model_version": model.version,
            "item_id": query.item_id,
            "source": "computed",
            "items": _items(model.item_ids.externals(rec.items), rec.scores),
        }
        body.update(_complete(len(rec.items), query.k, []))
        return loaded, body

    # -- cache hook (issue 7): look up first; None = compute --------------------------------
    def _cached(
        self,
        endpoint: str,
        kind: str,
        loaded: LoadedModel,
        key_id: str,
        k: int,
        cacheable: bool,
        exclude_item_ids: tuple[str, ...],
        allowed: np.ndarray | None,
    ) -> list[dict[str, Any]] | None:
        """Items for the answer from a stored list (post-filtered), or None. Counts the outcome."""
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
            excluded_ids=frozenset(exclude_item_ids),
            allowed=_predicate(model, allowed),
        )
        self.metrics.stage_latency.labels("cache").observe(time.perf_counter() - start)
        if found.items is None:
            return None
        return [{"item_id": i, "score": s} for i, s in found.items]

    # -- response bodies ---------------------------------------------------------------------
    def _list_body(
        self,
        model: RecommenderModel,
        rec: Recommendations,
        k: int,
        strategy: str,
        history: np.ndarray,
        explain: bool,
        notes: list[str],
        *,
        user_id: str,
    ) -> dict[str, Any]:
        ids = model.item_ids.externals(rec.items)
        items = _items(ids, rec.scores)
        if explain:
            for item, reason in zip(items, _reasons(model, rec, strategy, history), strict=True):
                item["reason"] = reason
        body: dict[str, Any] = {
            "model_version": model.version,
            "user_id": user_id,
            "source": "computed",
            "strategy": strategy,
            "items": items,
        }
        body.update(_complete(len(items), k, notes))
        return body


def _mask(model: RecommenderModel, item_filter: ItemFilter | None) -> np.ndarray | None:
    try:
        return model.filter_mask(item_filter)
    except UnknownAttribute as exc:
        raise APIError(422, "unknown_attribute", str(exc), f"item_filter.{exc.side}.{exc.attribute}") from exc


def _predicate(model: RecommenderModel, mask: np.ndarray | None) -> Callable[[str], bool] | None:
    """An item-filter mask as a predicate on external ids, for post-filtering cached lists."""
    if mask is None:
        return None
    index = model.item_ids.index
    return lambda item_id: bool(mask[index(item_id)])


def _head(rec: Recommendations, k: int) -> Recommendations:
    return Recommendations(rec.items[:k], rec.scores[:k], rec.retrieval_scores[:k])


def _known_items(model: RecommenderModel, ids: tuple[str, ...]) -> np.ndarray:
    """Internal indices of the ids the model knows; unknown ones are dropped (see the API doc)."""
    idx = [model.item_ids.get(i) for i in ids]
    return np.array([i for i in idx if i is not None], np.int64)


def _complete(n: int, k: int, notes: list[str]) -> dict[str, Any]:
    complete = n >= k
    if not complete:
        notes = [*notes, f"only {n} items qualified for k={k} after exclusions and filters"]
    return {"complete": complete, "notes": notes}


def _finite(x: float) -> float | None:
    return x if np.isfinite(x) else None


def _reasons(
    model: RecommenderModel, rec: Recommendations, strategy: str, history: np.ndarray
) -> list[dict[str, Any]]:
    if strategy == "popularity":
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
    similar_idx, sims = model.explain(rec.items, history)
    has_ranker = model.ranker is not None
    whose = "one of your recent items" if strategy == "recent_items" else "an item you interacted with"
    out = []
    for j in range(len(rec.items)):
        sim_item = int(similar_idx[j])
        sim_id = model.item_ids.external(sim_item) if sim_item >= 0 else None
        sim = _finite(float(sims[j]))
        text = f"similar to {sim_id}, {whose}" if sim_id is not None else "matches your taste profile"
        out.append(
            {
                "text": text,
                "similar_to": sim_id,
                "similarity": sim,
                "retrieval_score": _finite(float(rec.retrieval_scores[j])),
                "ranker_score": _finite(float(rec.scores[j])) if has_ranker else None,
            }
        )
    return out


def _items(ids: list[str], scores: np.ndarray) -> list[dict[str, Any]]:
    return [{"item_id": i, "score": float(s)} for i, s in zip(ids, scores.tolist(), strict=True)]
