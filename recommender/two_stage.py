"""Retrieval → ranking → selection for a batch of queries: the path every personalised list takes.

A known user and a cold-start user built from items differ only in how their
:class:`~recommender.types.Queries` and exclusions are made (see ``strategies.py``); from there
on they share this code, so a cold-start answer is ranked exactly like a trained user's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommender.candidates import CandidateRetriever
from recommender.diversity import mmr_order
from recommender.ranking import RankingStage
from recommender.selector import TopKRecommendationSelector
from recommender.types import Queries, Recommendations, Timings, timed


def check_k(k: int) -> None:
    """Every strategy refuses ``k < 1`` the same way (a bigger ``k`` just returns what there is)."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")


def select_top(
    cand: np.ndarray, scores: np.ndarray, cscore: np.ndarray, valid: np.ndarray, k: int
) -> list[Recommendations]:
    """The ``k`` best valid candidates of each row by ``scores``, best first (ties: earlier
    candidate first), with their retrieval scores alongside."""
    out = []
    sel_idx, sel_scores = TopKRecommendationSelector(min(k, cand.shape[1]))(scores, mask=~valid)
    for r in range(cand.shape[0]):
        pos = sel_idx[r][sel_idx[r] >= 0]
        out.append(
            Recommendations(cand[r, pos], sel_scores[r][: len(pos)].astype(np.float32), cscore[r, pos])
        )
    return out


def diversify(
    cand: np.ndarray,
    scores: np.ndarray,
    cscore: np.ndarray,
    valid: np.ndarray,
    item_emb: np.ndarray,
    k: int,
    diversity: float,
) -> list[Recommendations]:
    """Maximal Marginal Relevance over each row's valid candidates (see ``diversity.py``): ``k``
    items in pick order, relevance = ``scores``, similarity = item-embedding cosine."""
    out = []
    for r in range(cand.shape[0]):
        pos = np.flatnonzero(valid[r])
        pos = pos[mmr_order(scores[r, pos], item_emb[cand[r, pos]], k, diversity)]
        out.append(Recommendations(cand[r, pos], scores[r, pos].astype(np.float32), cscore[r, pos]))
    return out


@dataclass
class TwoStage:
    """``retriever`` → ``ranking`` → top-k (or MMR), for any batch of queries.

    ``n_candidates`` is how many items retrieval hands the ranker per query (C): the ranker can
    only reorder what is in that list, and its cost grows with it (C=200 by default).
    """

    retriever: CandidateRetriever
    ranking: RankingStage
    n_candidates: int = 200

    def recommend(
        self,
        queries: Queries,
        k: int,
        exclude: list[np.ndarray] | None = None,
        allowed: np.ndarray | None = None,
        diversity: float = 0.0,
        n_candidates: int | None = None,
        timings: Timings | None = None,
        histories: list[np.ndarray] | None = None,
    ) -> list[Recommendations]:
        """Top-``k`` per query row. ``exclude``: one array of item indices per row (or None);
        ``allowed``: an item-filter mask shared by the batch; ``histories``: each row's user's
        items, for the ranker's history features (None: unknown). The whole batch goes through
        one retrieval call, one feature assembly and one ranker forward pass."""
        check_k(k)
        if queries.emb.shape[0] == 0:
            return []
        c = max(k, n_candidates or self.n_candidates)
        with timed(timings, "retrieval"):
            cand, cscore, valid = self.retriever.retrieve(queries.emb, c, exclude, allowed)
        scores = self.ranking.score(queries.feats, queries.profiles, cand, cscore, timings, histories)
        if diversity > 0:
            with timed(timings, "diversity"):
                return diversify(cand, scores, cscore, valid, self.retriever.item_emb, k, diversity)
        with timed(timings, "selection"):
            return select_top(cand, scores, cscore, valid, k)
