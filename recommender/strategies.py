"""The four ways to answer "what should this subject see?", behind one interface.

In the spirit of the ``implicit`` library's ``recommend(...)`` / ``similar_items(...)``: every
strategy takes a batch of *subjects* and returns one best-first list per subject, with the same
options and the same guarantees (the contract ``tests/recommender/test_strategy_contract.py``
runs against each). What a subject is depends on the strategy:

============================  ==============================  ===================================
strategy (``name``)           a subject is                    "its own items" (``exclude_seen``)
============================  ==============================  ===================================
:class:`PersonalizedStrategy`  a known user's index            their training items
:class:`RecentItemsStrategy`   a list of item indices (≥ 1)    those items
:class:`PopularityStrategy`    a list of item indices (≥ 0)    those items
:class:`SimilarItemsStrategy`  an item index                   the item itself
============================  ==============================  ===================================

The service, the precompute job and offline evaluation pick a strategy and call it; nothing
switches a model's parts on and off to change what it does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np

from recommender.candidates import CandidateRetriever, merge_exclusions
from recommender.diversity import mmr_order
from recommender.queries import QueryBuilder
from recommender.selector import TopKRecommendationSelector
from recommender.two_stage import TwoStage, check_k, diversify
from recommender.types import Recommendations, Timings, timed


class Strategy(Protocol):
    """One list per subject, best first, at most ``k`` items, never an excluded or filtered-out one.

    * ``exclude_seen``: leave out the subject's own items (see the table above);
    * ``exclude_items``: item indices left out for every subject;
    * ``allowed``: bool mask over the catalogue (an item filter), ``None`` = every item;
    * ``diversity``: 0..1, MMR re-ranking over a wider list (0 = plain relevance order);
    * ``n_candidates``: how wide that list is (default: the bundle's C);
    * ``timings``: per-stage seconds are added to it when given.

    Fewer than ``k`` items come back only when fewer than ``k`` qualify; ``k < 1`` is a
    :class:`ValueError`.
    """

    name: ClassVar[str]

    def recommend(
        self,
        subjects: Any,
        k: int,
        *,
        exclude_seen: bool = True,
        exclude_items: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        diversity: float = 0.0,
        n_candidates: int | None = None,
        timings: Timings | None = None,
    ) -> list[Recommendations]: ...


def _join(first: np.ndarray | None, extra: np.ndarray) -> np.ndarray | None:
    if first is None or len(first) == 0:
        return extra if len(extra) else first
    return np.concatenate([first, np.asarray(extra, np.int64)]) if len(extra) else first


@dataclass
class PersonalizedStrategy:
    """Known users (internal indices), batched: their bundle rows through the two stages."""

    pipeline: TwoStage
    queries: QueryBuilder
    name: ClassVar[str] = "personalized"

    def recommend(
        self,
        subjects: np.ndarray,
        k: int,
        *,
        exclude_seen: bool = True,
        exclude_items: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        diversity: float = 0.0,
        n_candidates: int | None = None,
        timings: Timings | None = None,
        exclude_rows: Sequence[np.ndarray] | None = None,
    ) -> list[Recommendations]:
        """``exclude_rows``: item indices left out for one subject each (beside ``exclude_items``),
        so requests with their own exclusions can share one batch (the service's micro-batching)."""
        users = np.asarray(subjects, dtype=np.int64).reshape(-1)
        histories = [self.queries.seen(int(u)) for u in users]
        own = [h if exclude_seen else None for h in histories]
        if exclude_rows is not None:
            own = [_join(h, extra) for h, extra in zip(own, exclude_rows, strict=True)]
        exclude = merge_exclusions(own, exclude_items)
        return self.pipeline.recommend(
            self.queries.known(users), k, exclude, allowed, diversity, n_candidates, timings, histories
        )

    def recommend_fresh(
        self,
        subjects: np.ndarray,
        seen: Sequence[np.ndarray],
        recent: Sequence[np.ndarray],
        k: int,
        *,
        exclude_seen: bool = True,
        exclude_items: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        diversity: float = 0.0,
        n_candidates: int | None = None,
        timings: Timings | None = None,
    ) -> list[Recommendations]:
        """:meth:`recommend` for known users with interactions newer than the model: ``seen[r]``
        joins user r's own items (left out with ``exclude_seen``) and ``recent[r]`` (oldest
        first) slides the recent-items feature (:meth:`QueryBuilder.known_with_recent`). With
        empty lists, the same answer as :meth:`recommend`."""
        users = np.asarray(subjects, dtype=np.int64).reshape(-1)
        histories = [
            np.concatenate([self.queries.seen(int(u)), np.asarray(extra, np.int64)])
            for u, extra in zip(users.tolist(), seen, strict=True)
        ]
        exclude = merge_exclusions([h if exclude_seen else None for h in histories], exclude_items)
        queries = self.queries.known_with_recent(users, recent)
        return self.pipeline.recommend(
            queries, k, exclude, allowed, diversity, n_candidates, timings, histories
        )


@dataclass
class RecentItemsStrategy:
    """Cold start from items: users the model does not know, each described by recent items
    (oldest first); a user vector is built from them and the same two stages run."""

    pipeline: TwoStage
    queries: QueryBuilder
    name: ClassVar[str] = "recent_items"

    def recommend(
        self,
        subjects: Sequence[np.ndarray],
        k: int,
        *,
        exclude_seen: bool = True,
        exclude_items: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        diversity: float = 0.0,
        n_candidates: int | None = None,
        timings: Timings | None = None,
    ) -> list[Recommendations]:
        lists = [np.asarray(h, np.int64) for h in subjects]
        exclude = merge_exclusions([h if exclude_seen else None for h in lists], exclude_items)
        return self.pipeline.recommend(
            self.queries.from_items(lists), k, exclude, allowed, diversity, n_candidates, timings, lists
        )


@dataclass
class PopularityStrategy:
    """The most interacted-with training items: the answer for a user we know nothing of, and
    the popularity baseline offline (subject = the user's training items, left out).

    ``scores`` are the training interaction counts; there is no retrieval or ranker score
    (``retrieval_scores`` is NaN). With ``diversity`` the top ``n_candidates`` are MMR re-picked.
    """

    popularity: np.ndarray
    item_emb: np.ndarray
    n_candidates: int = 200
    name: ClassVar[str] = "popularity"

    def recommend(
        self,
        subjects: Sequence[np.ndarray],
        k: int,
        *,
        exclude_seen: bool = True,
        exclude_items: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        diversity: float = 0.0,
        n_candidates: int | None = None,
        timings: Timings | None = None,
    ) -> list[Recommendations]:
        check_k(k)
        n_items = len(self.popularity)
        invalid = np.zeros(n_items, bool) if allowed is None else ~allowed
        if exclude_items is not None and len(exclude_items):
            invalid[np.asarray(exclude_items, np.int64)] = True
        width = min(n_items, max(k, n_candidates or self.n_candidates) if diversity > 0 else k)
        own = [np.asarray(s, np.int64) if exclude_seen else np.zeros(0, np.int64) for s in subjects]
        out: list[Recommendations | None] = [None] * len(own)
        # Subjects without items of their own all get the same list: compute it once.
        shared = [r for r, s in enumerate(own) if len(s) == 0]
        rows = [r for r, s in enumerate(own) if len(s)]
        with timed(timings, "selection"):
            if shared:
                idx, _ = TopKRecommendationSelector(width)(self.popularity, mask=invalid)
                rec = self._finish(np.asarray(idx, np.int64), k, diversity)
                for r in shared:
                    out[r] = rec
            if rows:
                masks = np.repeat(invalid[None, :], len(rows), axis=0)
                for j, r in enumerate(rows):
                    masks[j, own[r]] = True
                scores = np.broadcast_to(self.popularity, masks.shape)
                idx, _ = TopKRecommendationSelector(width)(scores, mask=masks)
                for j, r in enumerate(rows):
                    out[r] = self._finish(idx[j][idx[j] >= 0], k, diversity)
        return [r for r in out if r is not None]

    def _finish(self, idx: np.ndarray, k: int, diversity: float) -> Recommendations:
        if diversity > 0 and len(idx):
            idx = idx[mmr_order(self.popularity[idx], self.item_emb[idx], k, diversity)]
        idx = idx[:k]
        return Recommendations(
            idx, self.popularity[idx].astype(np.float32), np.full(len(idx), np.nan, np.float32)
        )


@dataclass
class SimilarItemsStrategy:
    """Items nearest to each subject item's embedding, batched (one FAISS search per batch).

    The beam is the narrower /similar-items one (:meth:`CandidateRetriever.similar_ef`), and
    the list is the retrieval itself (score = embedding inner product): no ranker, whose
    features describe a user, not an item.
    """

    retriever: CandidateRetriever
    n_candidates: int = 200
    name: ClassVar[str] = "similar_items"

    def recommend(
        self,
        subjects: np.ndarray,
        k: int,
        *,
        exclude_seen: bool = True,
        exclude_items: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        diversity: float = 0.0,
        n_candidates: int | None = None,
        timings: Timings | None = None,
    ) -> list[Recommendations]:
        check_k(k)
        items = np.asarray(subjects, dtype=np.int64).reshape(-1)
        if len(items) == 0:
            return []
        own = [np.array([i], np.int64) if exclude_seen else None for i in items.tolist()]
        exclude = merge_exclusions(own, exclude_items)
        n = max(k, n_candidates or self.n_candidates) if diversity > 0 else k
        extra = max(len(e) for e in exclude) if exclude else 0
        with timed(timings, "retrieval"):
            cand, cscore, valid = self.retriever.retrieve(
                self.retriever.item_emb[items], n, exclude, allowed, self.retriever.similar_ef(n + extra)
            )
        if diversity > 0:
            with timed(timings, "diversity"):
                return diversify(cand, cscore, cscore, valid, self.retriever.item_emb, k, diversity)
        out = []
        for r in range(len(items)):
            m = int(valid[r].sum())  # retrieval rows are best first with the valid slots leading
            out.append(Recommendations(cand[r, :m], cscore[r, :m], cscore[r, :m]))
        return out


@dataclass(frozen=True)
class Strategies:
    """The four strategies of one model, built from the same stages."""

    personalized: PersonalizedStrategy
    recent_items: RecentItemsStrategy
    popularity: PopularityStrategy
    similar_items: SimilarItemsStrategy

    def all(self) -> tuple[Strategy, ...]:
        return (self.personalized, self.recent_items, self.popularity, self.similar_items)
