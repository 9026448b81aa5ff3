"""Stage 1, candidate generation: the best items by inner product, minus what must not come back.

FAISS alone answers "the n nearest items". A recommender also needs "… that the user has not
seen, that pass the request's filter, and, if fewer than n qualify, all that do". This module
adds those rules around :class:`~recommender.retrieval.ItemIndex`: over-fetch to survive the
filters, an exact scan when the filter leaves a small pool or the approximate answer comes up
short, and the HNSW beam width per kind of query.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommender.retrieval import ItemIndex
from recommender.types import Candidates


def _isin(values: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """``np.isin`` for a short exclusion list: one broadcast compare instead of sorting both sides.

    A user's seen list is usually tens of items against ~200 candidates; ``np.isin`` sorts and
    costs several times more there. Long lists fall back to it (the compare grows as n × m).
    """
    if len(excluded) > 64:
        return np.isin(values, excluded)
    return (values[:, None] == excluded[None, :]).any(axis=1)


def merge_exclusions(per_row: list[np.ndarray | None], shared: np.ndarray | None) -> list[np.ndarray] | None:
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


@dataclass
class CandidateRetriever:
    """Filtered top-n search over the item embeddings (``index`` is built from ``item_emb``).

    ``similar_ef_search``: HNSW beam for /similar-items. The bundle's efSearch is sized for
    ``n_candidates`` results; k≈10 neighbours of an item need far less (measured in
    docs/performance.md).
    """

    item_emb: np.ndarray
    index: ItemIndex
    similar_ef_search: int = 64

    @property
    def n_items(self) -> int:
        return self.item_emb.shape[0]

    def similar_ef(self, n: int) -> int | None:
        """Beam for ``n`` neighbours: ``max(similar_ef_search, 4n)``, never wider than the bundle's.

        ``None`` for an exact index (no beam). Never below ``n``: HNSW cannot return more results
        than its beam holds.
        """
        bundle_ef = self.index.ef_search
        if bundle_ef is None:
            return None
        return max(n, min(bundle_ef, max(self.similar_ef_search, 4 * n)))

    def exact_top(
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
    ) -> Candidates:
        """Top-``n`` candidates per query with excluded and filtered-out items removed.

        ``exclude`` holds one array of item indices per query; ``allowed`` is one bool mask over
        the catalogue shared by the batch (an item filter). HNSW cannot filter inside its graph
        walk cheaply, so it is asked for enough extra results to survive the filter; when that
        would be a large part of the catalogue, an exact scan of just the allowed items is both
        cheaper and exact. A row that still comes up short while more items qualify is redone
        exactly, so "fewer than n" always means "fewer than n items qualify". ``ef_search``
        overrides the bundle's HNSW beam for this call (see :meth:`similar_ef`).

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
            scores, idx = self.exact_top(queries, pool, n + extra)
        else:
            scores, idx = self.index.search(queries, min(fetch, self.n_items), ef_search)
        complete = exact or idx.shape[1] >= self.n_items
        cand = np.zeros((b, n), np.int64)
        cscore = np.zeros((b, n), np.float32)
        valid = np.zeros((b, n), bool)
        for r in range(b):
            excl = exclude[r] if exclude and len(exclude[r]) else None
            kept_idx, kept_sc = self._keep(idx[r], scores[r], excl, allowed, n)
            if len(kept_idx) < n and not complete:
                ex_sc, ex_idx = self.exact_top(
                    queries[r : r + 1], pool, n + (len(excl) if excl is not None else 0)
                )
                kept_idx, kept_sc = self._keep(ex_idx[0], ex_sc[0], excl, allowed, n)
            m = len(kept_idx)
            cand[r, :m], cscore[r, :m], valid[r, :m] = kept_idx, kept_sc, True
        return Candidates(cand, cscore, valid)

    @staticmethod
    def _keep(
        row_idx: np.ndarray, row_sc: np.ndarray, excl: np.ndarray | None, allowed: np.ndarray | None, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """The first ``n`` of one search row that are real (FAISS pads with -1), allowed, not excluded."""
        keep = row_idx >= 0
        if allowed is not None:
            keep &= allowed[np.where(keep, row_idx, 0)]
        if excl is not None:
            keep &= ~_isin(row_idx, excl)
        return row_idx[keep][:n], row_sc[keep][:n]
