"""The two-stage recommender as one object: retrieval → ranking → selection.

Offline evaluation and the online service both call :meth:`RecommenderModel.recommend`, so the
numbers in the docs are the numbers the API produces.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recommender.features import FeatureAssembler
from recommender.idmap import IdMap
from recommender.ranker import DeepFeatureRanking, FrozenRanker
from recommender.retrieval import ItemIndex
from recommender.selector import TopKRecommendationSelector

Timings = dict[str, float]


@contextmanager
def _stage(timings: Timings | None, name: str) -> Iterator[None]:
    if timings is None:
        yield
        return
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def _isin(values: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """``np.isin`` for a short exclusion list: one broadcast compare instead of sorting both sides.

    A user's seen list is usually tens of items against ~200 candidates; ``np.isin`` sorts and
    costs several times more there. Long lists fall back to it (the compare grows as n × m).
    """
    if len(excluded) > 64:
        return np.isin(values, excluded)
    return (values[:, None] == excluded[None, :]).any(axis=1)


@dataclass
class Recommendations:
    """One list: internal item indices best first, the final score, and the stage-1 score."""

    items: np.ndarray
    scores: np.ndarray
    retrieval_scores: np.ndarray


@dataclass
class RecommenderModel:
    """Everything a bundle holds, in memory, with the serving logic on top.

    ``seen_indptr``/``seen_indices`` are a CSR matrix of each user's training items (excluded from
    their recommendations by default). ``popularity`` counts training interactions per item: the
    fallback when nothing is known about a user. ``item_attributes`` maps an attribute name
    (e.g. ``"category"``) to each item's list of values, for request-time filters.
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
    # HNSW beam for /similar-items: the bundle's efSearch is sized for ``n_candidates`` results;
    # k≈10 neighbours of an item need far less (measured in docs/performance.md).
    similar_ef_search: int = 64
    _frozen: FrozenRanker | None = field(default=None, init=False, repr=False, compare=False)

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
        if self.ranker is not None:
            if self.ranker.input_dim != self.features.n_features:
                raise ValueError(
                    f"ranker expects {self.ranker.input_dim} features, "
                    f"assembler builds {self.features.n_features}"
                )
            self.ranker.eval()

    @property
    def n_users(self) -> int:
        return self.user_emb.shape[0]

    @property
    def n_items(self) -> int:
        return self.item_emb.shape[0]

    def seen(self, user: int) -> np.ndarray:
        return self.seen_indices[self.seen_indptr[user] : self.seen_indptr[user + 1]]

    # -- stage 1 -------------------------------------------------------------------------------
    def retrieve(
        self,
        queries: np.ndarray,
        n: int,
        exclude: list[np.ndarray] | None = None,
        ef_search: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-``n`` candidates per query with excluded items removed.

        Returns ``(candidates (B, n), scores (B, n), valid (B, n) bool)``; rows short of ``n``
        valid items are padded (index 0, ``valid`` False).
        """
        b = queries.shape[0]
        n = min(n, self.n_items)
        extra = max((len(e) for e in exclude), default=0) if exclude else 0
        scores, idx = self.index.search(queries, min(n + extra, self.n_items), ef_search)
        cand = np.zeros((b, n), np.int64)
        cscore = np.zeros((b, n), np.float32)
        valid = np.zeros((b, n), bool)
        for r in range(b):
            row_idx, row_sc = idx[r], scores[r]
            keep = row_idx >= 0
            if exclude and len(exclude[r]):
                keep &= ~_isin(row_idx, exclude[r])
            row_idx, row_sc = row_idx[keep][:n], row_sc[keep][:n]
            m = len(row_idx)
            cand[r, :m], cscore[r, :m], valid[r, :m] = row_idx, row_sc, True
        return cand, cscore, valid

    # -- stage 2 -------------------------------------------------------------------------------
    def rank(
        self,
        user_feats: np.ndarray,
        profiles: np.ndarray,
        cand: np.ndarray,
        cscore: np.ndarray,
        timings: Timings | None = None,
    ) -> np.ndarray:
        """Ranker scores (B, C); the retrieval score itself when the bundle has no ranker."""
        if self.ranker is None:
            return cscore
        with _stage(timings, "features"):
            rows = self.features.assemble(user_feats, profiles, cand, cscore)
        with _stage(timings, "ranking"), torch.inference_mode():
            out = self._scorer()(torch.from_numpy(rows))
        return out[..., 0].numpy()

    def _scorer(self) -> FrozenRanker | DeepFeatureRanking:
        """The ranker with BatchNorm folded in (rebuilt whenever the ranker or its weights change)."""
        assert self.ranker is not None
        if self.ranker.training:
            return self.ranker
        if self._frozen is None or not self._frozen.is_current(self.ranker):
            self._frozen = FrozenRanker(self.ranker)
        return self._frozen

    def user_inputs(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(embeddings, side features, tag profiles) for known users."""
        return self.user_emb[users], self.features.user_features[users], self.features.user_profile[users]

    def recommend(
        self,
        users: np.ndarray,
        k: int,
        exclude_seen: bool = True,
        n_candidates: int | None = None,
        timings: Timings | None = None,
    ) -> list[Recommendations]:
        """Top-``k`` for a batch of known users (internal indices): retrieval → ranking → top-k."""
        users = np.asarray(users, dtype=np.int64)
        emb, feats, profiles = self.user_inputs(users)
        exclude = [self.seen(int(u)) for u in users] if exclude_seen else None
        return self.recommend_vectors(emb, feats, profiles, k, exclude, n_candidates, timings)

    def recommend_vectors(
        self,
        emb: np.ndarray,
        feats: np.ndarray,
        profiles: np.ndarray,
        k: int,
        exclude: list[np.ndarray] | None = None,
        n_candidates: int | None = None,
        timings: Timings | None = None,
    ) -> list[Recommendations]:
        """The pipeline from user vectors, so cold-start users (built from items) share it."""
        c = max(k, n_candidates or self.n_candidates)
        with _stage(timings, "retrieval"):
            cand, cscore, valid = self.retrieve(emb, c, exclude)
        scores = self.rank(feats, profiles, cand, cscore, timings)
        with _stage(timings, "selection"):
            sel_idx, sel_scores = TopKRecommendationSelector(min(k, cand.shape[1]))(scores, mask=~valid)
        out = []
        for r in range(cand.shape[0]):
            pos = sel_idx[r][sel_idx[r] >= 0]
            out.append(
                Recommendations(cand[r, pos], sel_scores[r][: len(pos)].astype(np.float32), cscore[r, pos])
            )
        return out

    def _similar_ef(self, n: int) -> int | None:
        """Beam for ``n`` neighbours: ``max(similar_ef_search, 4n)``, never wider than the bundle's."""
        bundle_ef = self.index.ef_search
        if bundle_ef is None:
            return None
        return max(n, min(bundle_ef, max(self.similar_ef_search, 4 * n)))

    def similar(self, item: int, k: int, timings: Timings | None = None) -> Recommendations:
        """Items nearest to ``item``'s embedding, the item itself excluded."""
        with _stage(timings, "retrieval"):
            cand, cscore, valid = self.retrieve(
                self.item_emb[item][None, :], k, [np.array([item])], self._similar_ef(k + 1)
            )
        m = int(valid[0].sum())
        return Recommendations(cand[0, :m], cscore[0, :m], cscore[0, :m])
