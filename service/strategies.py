"""Which strategy answers a query, on the model current when the request started.

Personalised for a known user, built from recent items for an unknown user who sent some, the
popularity fallback otherwise (or ``UnknownUser`` with ``cold_start_fallback=error``). Each call
reads ``holder.current`` once and uses that model to the end, so a hot swap in the middle of a
request cannot mix two models in one answer. Cache rules live in ``service/lists.py``,
response bodies in ``service/presenter.py``.

Fresh feedback (``service/fresh.py``: the user's events newer than the model's watermark) counts
at once: every fresh item is one of the user's own (left out with ``exclude_seen``, from cached
lists too, by post-filtering); fresh *positive* items (``feedback_positive_types``) slide a
known user's recent-items feature where the model has one (then the answer is computed, since
the ranking itself changed) and are an unknown user's recent items (cold start).
"""

from __future__ import annotations

import faiss
import numpy as np
import torch

from recommender.filters import ItemFilter, UnknownAttribute
from recommender.model import Recommendations, RecommenderModel
from service.answers import ListAnswer
from service.batching import MicroBatcher, Need, Steps, run_alone, run_batch
from service.exceptions import NoModel, UnknownFilterAttribute, UnknownItem, UnknownUser
from service.fresh import FreshItem, FreshStore
from service.lists import CachedLists, ListRequest
from service.metrics import Metrics
from service.queries import BatchQuery, RecommendQuery, SimilarQuery
from service.settings import Settings
from service.state import LoadedModel, ModelHolder
from service.tracing import Tracing


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


EMPTY = np.zeros(0, np.int64)


class Fresh:
    """A user's fresh events on one model: ``seen`` every item, ``positive`` the interactions;
    internal indices, oldest first."""

    __slots__ = ("positive", "seen")

    def __init__(self, seen: np.ndarray = EMPTY, positive: np.ndarray = EMPTY) -> None:
        self.seen = seen
        self.positive = positive

    def __bool__(self) -> bool:
        return len(self.seen) > 0


def _cat(*parts: np.ndarray) -> np.ndarray:
    parts = tuple(p for p in parts if len(p))
    return np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else EMPTY)


def _worker_threads(torch_threads: int) -> None:
    """The batch worker's thread settings (both are per thread): the ranker's intra-op threads,
    and one OpenMP thread for FAISS, whose second one would fight the event loop for the other
    core (``python -m benchmarks.batch_search``: a batch of 8 is slower on 2 threads than on 1
    whenever that core is busy)."""
    torch.set_num_threads(torch_threads)
    faiss.omp_set_num_threads(1)


class Serving:
    def __init__(
        self,
        holder: ModelHolder,
        settings: Settings,
        metrics: Metrics,
        lists: CachedLists,
        fresh: FreshStore | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.holder = holder
        self.settings = settings
        self.metrics = metrics
        self.lists = lists
        self.fresh = fresh
        self.positive_types = frozenset(settings.feedback_positive_types)
        self.tracing = tracing or Tracing(None)
        # traced requests are not batched: each stage span belongs to one request
        self.batcher: MicroBatcher | None = None
        if settings.micro_batching and not self.tracing.enabled:
            self.batcher = MicroBatcher(
                lambda jobs: run_batch(self, jobs),
                settings.max_micro_batch,
                initializer=lambda: _worker_threads(settings.torch_threads),
            )

    async def recommend_async(self, query: RecommendQuery) -> tuple[LoadedModel, ListAnswer]:
        """:meth:`recommend`, in the next micro-batch when batching is on."""
        if self.batcher is None:
            return self.recommend(query)
        return await self.batcher.submit("rec", query)  # type: ignore[no-any-return]

    async def similar_async(self, query: SimilarQuery) -> tuple[LoadedModel, ListAnswer]:
        """:meth:`similar`, in the next micro-batch when batching is on."""
        if self.batcher is None:
            return self.similar(query)
        return await self.batcher.submit("sim", query)  # type: ignore[no-any-return]

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()

    def _fresh(self, loaded: LoadedModel, user_ids: tuple[str, ...]) -> list[Fresh]:
        """Each user's events newer than the model, on its item indices (unknown items dropped)."""
        if self.fresh is None:
            return [Fresh() for _ in user_ids]
        with self.tracing.stage("fresh"):
            raw = [self.fresh.get(user_ids[0])] if len(user_ids) == 1 else self.fresh.get_many(user_ids)
        return [self._on_model(loaded, items) for items in raw]

    def _on_model(self, loaded: LoadedModel, items: list[FreshItem]) -> Fresh:
        if not items:
            return Fresh()
        watermark, ids = loaded.events_watermark, loaded.model.item_ids
        seen, positive = [], []
        for f in items:
            idx = ids.get(f.item_id) if f.seq > watermark else None
            if idx is not None:
                seen.append(idx)
                if f.type in self.positive_types:
                    positive.append(idx)
        return Fresh(np.array(seen, np.int64), np.array(positive, np.int64))

    def _served(self, model: RecommenderModel, strategy: str) -> None:
        self.metrics.lists_served.labels(model.version, strategy).inc()

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
        return run_alone(self.recommend_steps(query), self.lists)

    def recommend_steps(self, query: RecommendQuery, raw_fresh: list[FreshItem] | None = None) -> Steps:
        """:meth:`recommend` as a generator that yields the one list it must compute (a
        :class:`Need`) and receives it; ``raw_fresh``: the user's fresh events, read already."""
        loaded = self.loaded()
        model = loaded.model
        allowed = item_mask(model, query.item_filter)
        excluded = known_items(model, query.exclude_item_ids)
        recent = known_items(model, query.recent_item_ids)
        notes = _unknown_recent(model, query.recent_item_ids)
        if raw_fresh is None:
            fresh = self._fresh(loaded, (query.user_id,))[0]
        else:
            fresh = self._on_model(loaded, raw_fresh)
        own_fresh = fresh.seen if query.exclude_seen else EMPTY
        timings = self.tracing.timings()
        user = model.user_ids.get(query.user_id)
        if user is not None:
            drop = _cat(excluded, recent if query.exclude_seen else EMPTY, own_fresh)
            slide = len(fresh.positive) > 0 and model.features.n_vector > 0

            def compute(n: int) -> Recommendations:
                options = {"exclude_seen": query.exclude_seen, "exclude_items": drop, "allowed": allowed}
                users = np.array([user])
                if slide:
                    strategy = model.strategies.personalized
                    return strategy.recommend_fresh(
                        users,
                        [EMPTY],
                        [fresh.positive],
                        n,
                        diversity=query.diversity,
                        timings=timings,
                        **options,
                    )[0]
                return model.recommend(users, n, timings=timings, diversity=query.diversity, **options)[0]

            # never past the candidate count on a miss: more would rank a different candidate list;
            # fresh items are request exclusions to a stored list (post-filtered, never written back)
            req = ListRequest(
                "recommend", "rec", query.user_id, query.k, query.cacheable and not slide,
                _cat(excluded, own_fresh), allowed, max_n=max(query.k, model.n_candidates),
            )  # fmt: skip
            plan = yield from self.lists.plan_steps(model.version, model.n_items, req)
            if plan.answer is not None:
                rec, source = plan.answer, "cache"
            else:
                plain = not slide and allowed is None and query.diversity == 0
                own = len(model.seen(user)) if query.exclude_seen else 0
                need = Need(model, "rec", user, plan.n, compute, plain, query.exclude_seen, drop, own)
                rec, source = self.lists.finish(model.version, req, plan, (yield need))
                self._observe_candidates(model)
            history = _cat(model.seen(user), fresh.positive)
            answer = ListAnswer(rec, query.k, source, "personalized", history, notes)
        elif len(recent) or len(fresh.positive):
            recent = _cat(fresh.positive, recent)  # stored events first: the request's are newer
            rec = model.recommend_items(
                recent,
                query.k,
                query.exclude_seen,
                _cat(excluded, own_fresh),
                allowed,
                query.diversity,
                timings,
            )
            self._observe_candidates(model)
            answer = ListAnswer(rec, query.k, "computed", "recent_items", recent, notes)
        else:
            self._fallback(model, query.user_id, "user_id")
            rec = model.popular(query.k, _cat(excluded, own_fresh), allowed, query.diversity)
            answer = ListAnswer(rec, query.k, "computed", "popularity", notes=notes)
        self.metrics.observe_stages(timings)
        self._served(model, answer.strategy or "personalized")
        return loaded, answer

    # -- /recommend/batch --------------------------------------------------------------------
    def recommend_batch(self, query: BatchQuery) -> tuple[LoadedModel, list[ListAnswer]]:
        """All known users in one vectorised retrieval → ranking pass; unknown users without
        fresh events share one popularity answer (the fallback does not depend on the user)."""
        loaded = self.loaded()
        model = loaded.model
        allowed = item_mask(model, query.item_filter)
        excluded = known_items(model, query.exclude_item_ids)
        index = [model.user_ids.get(u) for u in query.user_ids]
        fresh = self._fresh(loaded, query.user_ids)
        known = [(r, u) for r, u in enumerate(index) if u is not None]
        personal: dict[int, Recommendations] = {}
        timings = self.tracing.timings()
        options = {
            "exclude_seen": query.exclude_seen,
            "exclude_items": excluded,
            "allowed": allowed,
            "diversity": query.diversity,
            "timings": timings,
        }
        if known:
            users = np.array([u for _, u in known], np.int64)
            if any(fresh[r] for r, _ in known):
                recs = model.strategies.personalized.recommend_fresh(
                    users, [fresh[r].seen for r, _ in known], [fresh[r].positive for r, _ in known], query.k,
                    **options,
                )  # fmt: skip
            else:
                recs = model.recommend(users, query.k, **options)
            personal = {r: rec for (r, _), rec in zip(known, recs, strict=True)}
            self._observe_candidates(model)
        popular: Recommendations | None = None
        answers = []
        for r, user_id in enumerate(query.user_ids):
            user, mine = index[r], fresh[r]
            if user is not None:
                history = _cat(model.seen(user), mine.positive)
                answers.append(ListAnswer(personal[r], query.k, "computed", "personalized", history))
            elif len(mine.positive):
                own = _cat(excluded, mine.seen if query.exclude_seen else EMPTY)
                rec = model.recommend_items(
                    mine.positive, query.k, query.exclude_seen, own, allowed, query.diversity, timings
                )
                answers.append(ListAnswer(rec, query.k, "computed", "recent_items", mine.positive))
            else:
                self._fallback(model, user_id, f"user_ids.{r}")
                if mine and query.exclude_seen:
                    rec = model.popular(query.k, _cat(excluded, mine.seen), allowed, query.diversity)
                else:
                    if popular is None:
                        popular = model.popular(query.k, excluded, allowed, query.diversity)
                    rec = popular
                answers.append(ListAnswer(rec, query.k, "computed", "popularity"))
        self.metrics.observe_stages(timings)
        for answer in answers:
            self._served(model, answer.strategy or "personalized")
        return loaded, answers

    # -- /similar-items ----------------------------------------------------------------------
    def similar(self, query: SimilarQuery) -> tuple[LoadedModel, ListAnswer]:
        return run_alone(self.similar_steps(query), self.lists)

    def similar_steps(self, query: SimilarQuery) -> Steps:
        """:meth:`similar` as a generator (see :meth:`recommend_steps`)."""
        loaded = self.loaded()
        model = loaded.model
        item = model.item_ids.get(query.item_id)
        if item is None:
            raise UnknownItem(query.item_id, model.version)
        allowed = item_mask(model, query.item_filter)
        excluded = known_items(model, query.exclude_item_ids)
        timings = self.tracing.timings()

        def compute(n: int) -> Recommendations:
            return model.similar(item, n, timings=timings, exclude_items=excluded, allowed=allowed)

        req = ListRequest("similar", "sim", query.item_id, query.k, True, excluded, allowed)
        plan = yield from self.lists.plan_steps(model.version, model.n_items, req)
        if plan.answer is not None:
            rec, source = plan.answer, "cache"
        else:
            plain = len(excluded) == 0 and allowed is None
            need = Need(model, "sim", item, plan.n, compute, plain)
            rec, source = self.lists.finish(model.version, req, plan, (yield need))
        self.metrics.observe_stages(timings)
        self._served(model, "similar_items")
        return loaded, ListAnswer(rec, query.k, source)
