"""A bundle in memory, and the stages and strategies built from it.

:class:`RecommenderModel` holds what a bundle stores (``model_store/bundle.py`` reads and writes
exactly these fields) and wires the parts that do the work:

* :class:`~recommender.queries.QueryBuilder`: a known user's rows, or a user built from items;
* :class:`~recommender.candidates.CandidateRetriever`: stage 1, filtered FAISS search;
* a :class:`~recommender.ranking.RankingStage`: stage 2, the ranker (or the retrieval score);
* :class:`~recommender.two_stage.TwoStage`: retrieval → ranking → top-k / MMR;
* :class:`~recommender.strategies.Strategies`: personalized, recent items, popularity and
  similar items behind one ``recommend(subjects, k, ...)`` interface.

``model.strategies`` is what the service answers with; ``model.retrieval_strategies`` is the
same stages with ranking by retrieval score, which offline evaluation reports as "retrieval
only". The methods below (``recommend``, ``similar``, …) are thin delegates kept for callers
written before the split; new code should call a strategy.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from functools import cached_property
from typing import Any

import numpy as np

from recommender.candidates import CandidateRetriever
from recommender.diversity import most_similar
from recommender.features import FeatureAssembler
from recommender.filters import AttributeIndex, ItemFilter
from recommender.idmap import IdMap
from recommender.queries import QueryBuilder
from recommender.ranker import DeepFeatureRanking
from recommender.ranking import FeatureRanking, RankingStage, RetrievalScoreRanking
from recommender.retrieval import ItemIndex
from recommender.strategies import (
    PersonalizedStrategy,
    PopularityStrategy,
    RecentItemsStrategy,
    SimilarItemsStrategy,
    Strategies,
)
from recommender.two_stage import TwoStage
from recommender.types import Candidates, Queries, Recommendations, Timings

__all__ = ["Recommendations", "RecommenderModel", "Stages", "Timings"]

# metadata key: how many of a user's latest items training averaged into ``recent_vec_*``.
RECENT_WINDOW_KEY = "recent_vec_window"


@dataclass(frozen=True)
class Stages:
    """The parts built from one model's fields; rebuilt (cheaply, nothing is copied) when a
    field is reassigned."""

    queries: QueryBuilder
    retriever: CandidateRetriever
    ranking: RankingStage
    strategies: Strategies
    retrieval_strategies: Strategies


@dataclass
class RecommenderModel:
    """Everything a bundle holds, in memory.

    ``seen_indptr``/``seen_indices`` are a CSR matrix of each user's training items (excluded from
    their recommendations by default). ``popularity`` counts training interactions per item: the
    fallback when nothing is known about a user. ``item_attributes`` maps an attribute name
    (e.g. ``"category"``) to each item's list of values, for request-time filters.
    ``similar_ef_search`` is the HNSW beam for /similar-items (see :class:`CandidateRetriever`).
    """

    version: str
    user_ids: IdMap
    item_ids: IdMap
    user_emb: np.ndarray
    item_emb: np.ndarray
    index: ItemIndex
    features: FeatureAssembler
    ranker: DeepFeatureRanking | None
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    popularity: np.ndarray
    n_candidates: int = 200
    item_attributes: dict[str, list[list[str]]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    similar_ef_search: int = 64

    def __post_init__(self) -> None:
        n_items, dim = self.item_emb.shape
        if self.index.dim != dim:
            raise ValueError(f"index dimension {self.index.dim} does not match item embeddings ({dim})")
        if self.index.n_items != n_items:
            raise ValueError(f"index holds {self.index.n_items} items, embeddings {n_items}")
        if self.user_emb.shape[1] != dim:
            raise ValueError(f"user embedding dimension {self.user_emb.shape[1]} != item dimension {dim}")
        if len(self.item_ids) != n_items or len(self.user_ids) != self.user_emb.shape[0]:
            raise ValueError("id maps do not match the embedding tables")
        _ = self.stages  # build now: a ranker that does not fit the features fails the load

    def __setattr__(self, name: str, value: Any) -> None:
        """Fields stay assignable (the service sets ``n_candidates`` from its settings after
        loading); a reassigned field makes the stages be rebuilt on next use. In-place changes
        to arrays need nothing: the stages hold the same arrays."""
        old = self.__dict__.get(name, _MISSING)
        object.__setattr__(self, name, value)
        if name in _FIELDS and not (old is value or (isinstance(value, int) and old == value)):
            self.__dict__.pop("stages", None)
            if name == "item_attributes":
                self.__dict__.pop("attribute_index", None)

    @cached_property
    def stages(self) -> Stages:
        queries = QueryBuilder(
            self.user_emb,
            self.item_emb,
            self.features,
            self.seen_indptr,
            self.seen_indices,
            self.metadata.get(RECENT_WINDOW_KEY),
        )
        retriever = CandidateRetriever(self.item_emb, self.index, self.similar_ef_search)
        ranking: RankingStage = (
            RetrievalScoreRanking() if self.ranker is None else FeatureRanking(self.features, self.ranker)
        )
        popularity = PopularityStrategy(self.popularity, self.item_emb, self.n_candidates)
        similar = SimilarItemsStrategy(retriever, self.n_candidates)

        def strategies(stage: RankingStage) -> Strategies:
            pipeline = TwoStage(retriever, stage, self.n_candidates)
            return Strategies(
                PersonalizedStrategy(pipeline, queries),
                RecentItemsStrategy(pipeline, queries),
                popularity,
                similar,
            )

        return Stages(queries, retriever, ranking, strategies(ranking), strategies(RetrievalScoreRanking()))

    @property
    def strategies(self) -> Strategies:
        """What the service serves: the ranker when the bundle has one."""
        return self.stages.strategies

    @property
    def retrieval_strategies(self) -> Strategies:
        """The same stages ranked by the retrieval score alone (the "retrieval only" baseline)."""
        return self.stages.retrieval_strategies

    @property
    def n_users(self) -> int:
        return self.user_emb.shape[0]

    @property
    def n_items(self) -> int:
        return self.item_emb.shape[0]

    @cached_property
    def attribute_index(self) -> AttributeIndex:
        """Inverted ``item_attributes``, built on first use and kept for the model's lifetime."""
        return AttributeIndex(self.item_attributes, self.n_items)

    def filter_mask(self, item_filter: ItemFilter | None) -> np.ndarray | None:
        """Allowed items for ``item_filter`` (``None`` = all); :class:`UnknownAttribute` on a typo."""
        return self.attribute_index.mask(item_filter)

    def explain(self, items: np.ndarray, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each recommended item, the most similar ``history`` item (index, -1 if none) and
        the embedding cosine between them."""
        history = np.asarray(history, np.int64)
        pos, sims = most_similar(items, history, self.item_emb)
        idx = np.where(pos >= 0, history[np.maximum(pos, 0)] if len(history) else -1, -1)
        return idx.astype(np.int64), sims

    # -- delegates (signatures as before the split) ----------------------------------------------
    def seen(self, user: int) -> np.ndarray:
        return self.stages.queries.seen(user)

    def user_inputs(self, users: np.ndarray) -> Queries:
        """(embeddings, side features, tag profiles) for known users."""
        return self.stages.queries.known(users)

    def cold_start_inputs(self, items: np.ndarray) -> Queries:
        """(embedding, side features, tag profile), each (1, ·), for a user known only by items
        (see :meth:`QueryBuilder.from_items`)."""
        return self.stages.queries.from_items([np.asarray(items, np.int64)])

    def retrieve(
        self,
        queries: np.ndarray,
        n: int,
        exclude: list[np.ndarray] | None = None,
        allowed: np.ndarray | None = None,
        ef_search: int | None = None,
    ) -> Candidates:
        """Top-``n`` filtered candidates per query: :meth:`CandidateRetriever.retrieve`."""
        return self.stages.retriever.retrieve(queries, n, exclude, allowed, ef_search)

    def recommend(
        self,
        users: np.ndarray,
        k: int,
        exclude_seen: bool = True,
        n_candidates: int | None = None,
        timings: Timings | None = None,
        exclude_items: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        diversity: float = 0.0,
    ) -> list[Recommendations]:
        """Top-``k`` for a batch of known users: ``strategies.personalized``."""
        return self.strategies.personalized.recommend(
            users,
            k,
            exclude_seen=exclude_seen,
            exclude_items=exclude_items,
            allowed=allowed,
            diversity=diversity,
            n_candidates=n_candidates,
            timings=timings,
        )

    def recommend_vectors(
        self,
        emb: np.ndarray,
        feats: np.ndarray,
        profiles: np.ndarray,
        k: int,
        exclude: list[np.ndarray] | None = None,
        n_candidates: int | None = None,
        timings: Timings | None = None,
        allowed: np.ndarray | None = None,
        diversity: float = 0.0,
        histories: list[np.ndarray] | None = None,
    ) -> list[Recommendations]:
        """The two stages from query vectors the caller built: :meth:`TwoStage.recommend`."""
        return self.strategies.personalized.pipeline.recommend(
            Queries(emb, feats, profiles), k, exclude, allowed, diversity, n_candidates, timings, histories
        )

    def recommend_items(
        self,
        items: np.ndarray,
        k: int,
        exclude_seen: bool = True,
        exclude_items: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        diversity: float = 0.0,
        timings: Timings | None = None,
    ) -> Recommendations:
        """Cold start, one user described by recent items: ``strategies.recent_items``."""
        return self.strategies.recent_items.recommend(
            [np.asarray(items, np.int64)],
            k,
            exclude_seen=exclude_seen,
            exclude_items=exclude_items,
            allowed=allowed,
            diversity=diversity,
            timings=timings,
        )[0]

    def popular(
        self,
        k: int,
        exclude_items: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        diversity: float = 0.0,
        n_candidates: int | None = None,
    ) -> Recommendations:
        """The most popular items within ``allowed``, for a user we know nothing of:
        ``strategies.popularity`` with an empty history."""
        return self.strategies.popularity.recommend(
            [np.zeros(0, np.int64)],
            k,
            exclude_items=exclude_items,
            allowed=allowed,
            diversity=diversity,
            n_candidates=n_candidates,
        )[0]

    def similar(
        self,
        item: int,
        k: int,
        timings: Timings | None = None,
        exclude_items: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> Recommendations:
        """Items nearest to ``item``'s embedding, the item itself and ``exclude_items`` excluded."""
        return self.similar_items(np.array([item], np.int64), k, exclude_items, allowed, timings)[0]

    def similar_items(
        self,
        items: np.ndarray,
        n: int,
        exclude_items: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        timings: Timings | None = None,
    ) -> list[Recommendations]:
        """:meth:`similar` for a batch of items in one FAISS search (same lists row by row):
        ``strategies.similar_items``. For the precompute job."""
        return self.strategies.similar_items.recommend(
            items, n, exclude_items=exclude_items, allowed=allowed, timings=timings
        )


_MISSING = object()
_FIELDS = frozenset(f.name for f in fields(RecommenderModel))
