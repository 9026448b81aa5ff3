"""Which strategy answers a query, on the model current when the request started.

Personalised for a known user, built from recent items for an unknown user who sent some, the
popularity fallback otherwise (or ``UnknownUser`` with ``cold_start_fallback=error``). Each call
reads ``holder.current`` once and uses that model to the end, so a hot swap in the middle of a
request cannot mix two models in one answer. Cache rules live in ``service/lists.py``,
response bodies in ``service/presenter.py``.
"""

from __future__ import annotations

import numpy as np

from recommender.filters import ItemFilter, UnknownAttribute
from recommender.model import Recommendations, RecommenderModel
from service.answers import ListAnswer
from service.exceptions import NoModel, UnknownFilterAttribute, UnknownItem, UnknownUser
from service.lists import CachedLists, ListRequest
from service.metrics import Metrics
from service.queries import BatchQuery, RecommendQuery, SimilarQuery
from service.settings import Settings
from service.state import LoadedModel, ModelHolder


def item_mask(model: RecommenderModel, item_filter: ItemFilter | None) -> np.ndarray | None:
    """The filter as a mask over the catalogue (O(n_items): built once per request)."""
    try:
        return model.filter_mask(item_filter)
    except UnknownAttribute as exc:
        raise UnknownFilterAttribute(str(exc), exc.side, exc.attribute) from exc


def filter_attributes(model: RecommenderModel) -> list[str]:
    """The item attributes ``model``'s filters accept.

    Read from the refusal of an attribute no bundle can carry (names are 1..64 characters), so
    only :meth:`RecommenderModel.filter_mask` is relied on: ``UnknownAttribute.known`` lists them.
    """
    try:
        model.filter_mask(ItemFilter(include={"": ()}))
    except UnknownAttribute as exc:
        return sorted(exc.known)
    return []


def known_items(model: RecommenderModel, ids: tuple[str, ...]) -> np.ndarray:
    """Internal indices of the ids the model knows; unknown ones are dropped (see the API doc)."""
    idx = [model.item_ids.get(i) for i in ids]
    return np.array([i for i in idx if i is not None], np.int64)


def _unknown_recent(model: RecommenderModel, ids: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [i for i in dict.fromkeys(ids) if i not in model.item_ids]
    if not unknown:
        return ()
    shown = ", ".join(unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
    return (f"recent_item_ids unknown to model {model.version}, ignored: {shown}",)


class Serving:
    def __init__(self, holder: ModelHolder, settings: Settings, metrics: Metrics, lists: CachedLists) -> None:
        self.holder = holder
        self.settings = settings
        self.metrics = metrics
        self.lists = lists

    def loaded(self) -> LoadedModel:
        current = self.holder.current  # the one read of the reference for this request
        if current is None:
            raise NoModel()
        return current

    def _fallback(self, model: RecommenderModel, user_id: str, field: str) -> None:
        if self.settings.cold_start_fallback == "error":
            raise UnknownUser(user_id, model.version, field)

    def _observe_candidates(self, model: RecommenderModel) -> None:
        self.metrics.candidates.observe(min(model.n_candidates, model.n_items))

    # -- /recommend --------------------------------------------------------------------------
    def recommend(self, query: RecommendQuery) -> tuple[LoadedModel, ListAnswer]:
        loaded = self.loaded()
        model = loaded.model
        allowed = item_mask(model, query.item_filter)
        excluded = known_items(model, query.exclude_item_ids)
        recent = known_items(model, query.recent_item_ids)
        notes = _unknown_recent(model, query.recent_item_ids)
        timings: dict[str, float] = {}
        user = model.user_ids.get(query.user_id)
        if user is not None:
            drop = np.concatenate([excluded, recent]) if query.exclude_seen and len(recent) else excluded

            def compute(n: int) -> Recommendations:
                self._observe_candidates(model)
                return model.recommend(
                    np.array([user]),
                    n,
                    exclude_seen=query.exclude_seen,
                    timings=timings,
                    exclude_items=drop,
                    allowed=allowed,
                    diversity=query.diversity,
                )[0]

            # never past the candidate count on a miss: more would rank a different candidate list
            req = ListRequest(
                "recommend", "rec", query.user_id, query.k, query.cacheable, excluded, allowed,
                max_n=max(query.k, model.n_candidates),
            )  # fmt: skip
            rec, source = self.lists.get_or_compute(model.version, model.n_items, req, compute)
            answer = ListAnswer(rec, query.k, source, "personalized", model.seen(user), notes)
        elif len(recent):
            rec = model.recommend_items(
                recent, query.k, query.exclude_seen, excluded, allowed, query.diversity, timings
            )
            self._observe_candidates(model)
            answer = ListAnswer(rec, query.k, "computed", "recent_items", recent, notes)
        else:
            self._fallback(model, query.user_id, "user_id")
            rec = model.popular(query.k, excluded, allowed, query.diversity)
            answer = ListAnswer(rec, query.k, "computed", "popularity", notes=notes)
        self.metrics.observe_stages(timings)
        return loaded, answer

    # -- /recommend/batch --------------------------------------------------------------------
    def recommend_batch(self, query: BatchQuery) -> tuple[LoadedModel, list[ListAnswer]]:
        """All known users in one vectorised retrieval → ranking pass; unknown users share one
        popularity answer (the fallback does not depend on the user)."""
        loaded = self.loaded()
        model = loaded.model
        allowed = item_mask(model, query.item_filter)
        excluded = known_items(model, query.exclude_item_ids)
        index = [model.user_ids.get(u) for u in query.user_ids]
        known = [(r, u) for r, u in enumerate(index) if u is not None]
        personal: dict[int, Recommendations] = {}
        timings: dict[str, float] = {}
        if known:
            users = np.array([u for _, u in known], np.int64)
            recs = model.recommend(
                users,
                query.k,
                exclude_seen=query.exclude_seen,
                timings=timings,
                exclude_items=excluded,
                allowed=allowed,
                diversity=query.diversity,
            )
            personal = {r: rec for (r, _), rec in zip(known, recs, strict=True)}
            self._observe_candidates(model)
        popular: Recommendations | None = None
        answers = []
        for r, user_id in enumerate(query.user_ids):
            user = index[r]
            if user is not None:
                answers.append(ListAnswer(personal[r], query.k, "computed", "personalized", model.seen(user)))
                continue
            self._fallback(model, user_id, f"user_ids.{r}")
            if popular is None:
                popular = model.popular(query.k, excluded, allowed, query.diversity)
            answers.append(ListAnswer(popular, query.k, "computed", "popularity"))
        self.metrics.observe_stages(timings)
        return loaded, answers

    # -- /similar-items ----------------------------------------------------------------------
    def similar(self, query: SimilarQuery) -> tuple[LoadedModel, ListAnswer]:
        loaded = self.loaded()
        model = loaded.model
        item = model.item_ids.get(query.item_id)
        if item is None:
            raise UnknownItem(query.item_id, model.version)
        allowed = item_mask(model, query.item_filter)
        excluded = known_items(model, query.exclude_item_ids)
        timings: dict[str, float] = {}

        def compute(n: int) -> Recommendations:
            return model.similar(item, n, timings=timings, exclude_items=excluded, allowed=allowed)

        req = ListRequest("similar", "sim", query.item_id, query.k, True, excluded, allowed)
        rec, source = self.lists.get_or_compute(model.version, model.n_items, req, compute)
        self.metrics.observe_stages(timings)
        return loaded, ListAnswer(rec, query.k, source)
