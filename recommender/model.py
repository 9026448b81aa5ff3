"""The two-stage recommender as one object: retrieval → ranking → selection.

Offline evaluation and the online service both call :meth:`RecommenderModel.recommend`, so the
numbers in the docs are the numbers the API produces.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import torch

from recommender.diversity import mmr_order, most_similar
from recommender.features import FeatureAssembler
from recommender.filters import AttributeIndex, ItemFilter
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

    @cached_property
    def attribute_index(self) -> AttributeIndex:
        """Inverted ``item_attributes``, built on first use and kept for the model's lifetime."""
        return AttributeIndex(self.item_attributes, self.n_items)

    def filter_mask(self, item_filter: ItemFilter | None) -> np.ndarray | None:
        """Allowed items for ``item_filter`` (``None`` = all); :class:`UnknownAttribute` on a typo."""
        return self.attribute_index.mask(item_filter)

    # -- stage 1 -------------------------------------------------------------------------------
    def _exact_top(
        self, queries: np.ndarray, pool: np.ndarray | None, count: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Brute-force inner-product top-``count`` over ``pool`` (all items if None), FAISS layout."""
        emb = self.item_emb if pool is None else self.item_emb[pool]
        ids = np.arange(self.n_items) if pool is None else pool
        b, m = queries.shape[0], emb.shape[0]
        count = max(1, count)
        out_s = np.full((b, count), -np.inf, np.float32)
        out_i = np.full((b, count), -1, np.int64)
        if m == 0:
            return out_s, out_i
        sc = np.asarray(queries, np.float32) @ emb.T
        take = min(count, m)
        part = np.argpartition(-sc, take - 1, axis=1)[:, :take] if take < m else np.tile(np.arange(m), (b, 1))
        part_sc = np.take_along_axis(sc, part, axis=1)
        order = np.argsort(-part_sc, axis=1, kind="stable")
        out_i[:, :take] = ids[np.take_along_axis(part, order, axis=1)]
        out_s[:, :take] = np.take_along_axis(part_sc, order, axis=1)
        return out_s, out_i

    def retrieve(
        self,
        queries: np.ndarray,
        n: int,
        exclude: list[np.ndarray] | None = None,
        allowed: np.ndarray | None = None,
        ef_search: int | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-``n`` candidates per query with excluded and filtered-out items removed.

        ``exclude`` holds one array of item indices per query; ``allowed`` is one bool mask over
        the catalogue shared by the batch (an item filter). HNSW cannot filter inside its graph
        walk cheaply, so it is asked for enough extra results to survive the filter; when that
        would be a large part of the catalogue, an exact scan of just the allowed items is both
        cheaper and exact. A row that still comes up short while more items qualify is redone
        exactly, so "fewer than n" always means "fewer than n items qualify".

        Returns ``(candidates (B, n), scores (B, n), valid (B, n) bool)``; rows short of ``n``
        valid items are padded (index 0, ``valid`` False).
        """
        queries = np.ascontiguousarray(queries, np.float32)
        b = queries.shape[0]
        n = min(n, self.n_items)
        extra = max((len(e) for e in exclude), default=0) if exclude else 0
        pool = None
        if allowed is not None:
            pool = np.flatnonzero(allowed)
            fetch = int(np.ceil((n + extra) * self.n_items / max(len(pool), 1) * 1.25))
        else:
            fetch = n + extra
        exact = allowed is not None and fetch * 2 >= self.n_items
        if exact:
            scores, idx = self._exact_top(queries, pool, n + extra)
        else:
            scores, idx = self.index.search(queries, min(fetch, self.n_items), ef_search)
        complete = exact or idx.shape[1] >= self.n_items
        cand = np.zeros((b, n), np.int64)
        cscore = np.zeros((b, n), np.float32)
        valid = np.zeros((b, n), bool)
        for r in range(b):
            row_idx, row_sc = idx[r], scores[r]
            excl = exclude[r] if exclude and len(exclude[r]) else None
            kept_idx, kept_sc = self._keep(row_idx, row_sc, excl, allowed, n)
            if len(kept_idx) < n and not complete:
                ex_sc, ex_idx = self._exact_top(
                    queries[r : r + 1], pool, n + (len(excl) if excl is not None else 0)
                )
                kept_idx, kept_sc = self._keep(ex_idx[0], ex_sc[0], excl, allowed, n)
            m = len(kept_idx)
            cand[r, :m], cscore[r, :m], valid[r, :m] = kept_idx, kept_sc, True
        return cand, cscore, valid

    @staticmethod
    def _keep(
        row_idx: np.ndarray, row_sc: np.ndarray, excl: np.ndarray | None, allowed: np.ndarray | None, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        keep = row_idx >= 0
        if allowed is not None:
            keep &= allowed[np.where(keep, row_idx, 0)]
        if excl is not None:
            keep &= ~_isin(row_idx, excl)
        return row_idx[keep][:n], row_sc[keep][:n]

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
        exclude_items: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        diversity: float = 0.0,
    ) -> list[Recommendations]:
        """Top-``k`` for a batch of known users (internal indices): retrieval → ranking → top-k.

        ``exclude_items`` (item indices) is left out for every user, on top of each user's own
        training items when ``exclude_seen``; ``allowed`` is an item-filter mask; ``diversity``
        turns on MMR re-ranking. The whole batch goes through one retrieval call, one feature
        assembly and one ranker forward pass.
        """
        users = np.asarray(users, dtype=np.int64)
        emb, feats, profiles = self.user_inputs(users)
        exclude = self._exclusions(
            [self.seen(int(u)) if exclude_seen else None for u in users], exclude_items
        )
        return self.recommend_vectors(
            emb, feats, profiles, k, exclude, n_candidates, timings, allowed=allowed, diversity=diversity
        )

    @staticmethod
    def _exclusions(per_row: list[np.ndarray | None], shared: np.ndarray | None) -> list[np.ndarray] | None:
        """Merge per-row exclusions (seen items) with request-wide ones; ``None`` when empty."""
        shared = None if shared is None or len(shared) == 0 else np.asarray(shared, np.int64)
        if shared is None and all(r is None for r in per_row):
            return None
        empty = np.zeros(0, np.int64)
        out = []
        for r in per_row:
            parts = [p for p in (r, shared) if p is not None and len(p)]
            out.append(np.concatenate(parts) if len(parts) > 1 else (parts[0] if parts else empty))
        return out

    def cold_start_inputs(self, items: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(embedding, side features, tag profile), each (1, ·), for a user known only by items.

        The embedding is the mean of the items' embeddings (in MF the user vector is what scores
        their items high, and the centroid does that), the tag profile is built from the items
        like a trained user's, and the side features are the *mean training user's*: zeros would
        be an impossible user (no age bucket at all) far outside what the ranker learned on.
        """
        items = np.asarray(items, dtype=np.int64)
        emb = self.item_emb[items].mean(axis=0, keepdims=True).astype(np.float32)
        feats = self.features.user_features.mean(axis=0, keepdims=True).astype(np.float32)
        profile = self.features.profile_from_items(items)[None, :]
        return emb, feats, profile

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
        """Cold start: top-``k`` for a user described only by recent items (the same two stages)."""
        items = np.asarray(items, dtype=np.int64)
        emb, feats, profile = self.cold_start_inputs(items)
        exclude = self._exclusions([items if exclude_seen else None], exclude_items)
        return self.recommend_vectors(
            emb, feats, profile, k, exclude, timings=timings, allowed=allowed, diversity=diversity
        )[0]

    def popular(
        self,
        k: int,
        exclude_items: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
        diversity: float = 0.0,
        n_candidates: int | None = None,
    ) -> Recommendations:
        """The most interacted-with items (within ``allowed``): the answer for a user we know nothing of.

        ``scores`` are the training interaction counts; there is no retrieval or ranker score
        (``retrieval_scores`` is NaN).
        """
        invalid = np.zeros(self.n_items, bool) if allowed is None else ~allowed
        if exclude_items is not None and len(exclude_items):
            invalid[np.asarray(exclude_items, np.int64)] = True
        width = min(self.n_items, max(k, n_candidates or self.n_candidates) if diversity > 0 else k)
        idx, _ = TopKRecommendationSelector(width)(self.popularity, mask=invalid)
        idx = np.asarray(idx, np.int64)
        if diversity > 0 and len(idx):
            idx = idx[mmr_order(self.popularity[idx], self.item_emb[idx], k, diversity)]
        idx = idx[:k]
        return Recommendations(
            idx, self.popularity[idx].astype(np.float32), np.full(len(idx), np.nan, np.float32)
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
    ) -> list[Recommendations]:
        """The pipeline from user vectors, so cold-start users (built from items) share it."""
        c = max(k, n_candidates or self.n_candidates)
        with _stage(timings, "retrieval"):
            cand, cscore, valid = self.retrieve(emb, c, exclude, allowed)
        scores = self.rank(feats, profiles, cand, cscore, timings)
        out = []
        if diversity > 0:
            with _stage(timings, "diversity"):
                for r in range(cand.shape[0]):
                    pos = np.flatnonzero(valid[r])
                    pos = pos[mmr_order(scores[r, pos], self.item_emb[cand[r, pos]], k, diversity)]
                    out.append(
                        Recommendations(cand[r, pos], scores[r, pos].astype(np.float32), cscore[r, pos])
                    )
            return out
        with _stage(timings, "selection"):
            sel_idx, sel_scores = TopKRecommendationSelector(min(k, cand.shape[1]))(scores, mask=~valid)
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

    def similar(
        self,
        item: int,
        k: int,
        timings: Timings | None = None,
        exclude_items: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> Recommendations:
        """Items nearest to ``item``'s embedding, the item itself and ``exclude_items`` excluded."""
        exclude = np.array([item], np.int64)
        if exclude_items is not None and len(exclude_items):
            exclude = np.concatenate([exclude, np.asarray(exclude_items, np.int64)])
        with _stage(timings, "retrieval"):
            cand, cscore, valid = self.retrieve(
                self.item_emb[item][None, :], k, [exclude], allowed, self._similar_ef(k + len(exclude))
            )
        m = int(valid[0].sum())
        return Recommendations(cand[0, :m], cscore[0, :m], cscore[0, :m])

    def explain(self, items: np.ndarray, history: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For each recommended item, the most similar ``history`` item (index, -1 if none) and
        the embedding cosine between them."""
        history = np.asarray(history, np.int64)
        pos, sims = most_similar(items, history, self.item_emb)
        idx = np.where(pos >= 0, history[np.maximum(pos, 0)] if len(history) else -1, -1)
        return idx.astype(np.int64), sims
