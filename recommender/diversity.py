"""Maximal Marginal Relevance (Carbonell & Goldstein, 1998): trade relevance for variety.

A ranker happily returns ten near-identical items; MMR re-picks the list greedily, each step
taking the candidate with the best ``(1 - diversity) * relevance - diversity * max_similarity``
to what is already picked. Relevance is min-max scaled to [0, 1] per list so that one
``diversity`` knob means the same thing whatever the scale of the ranker's scores; similarity is
the cosine of item embeddings (the same space retrieval searches).
"""

from __future__ import annotations

import numpy as np


def mmr_order(relevance: np.ndarray, embeddings: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Positions (into ``relevance``) of the ``k`` items MMR picks, in pick order.

    ``diversity = 0`` is plain relevance order (ties: lower position first, like the top-k
    selector); ``1`` ignores relevance after the first pick, which is always the most relevant.
    Returns ``min(k, len(relevance))`` positions.
    """
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be in [0, 1], got {diversity}")
    rel = np.asarray(relevance, dtype=np.float64)
    n = rel.shape[0]
    k = min(int(k), n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if diversity == 0.0:
        return np.lexsort((np.arange(n), -rel))[:k].astype(np.int64)
    span = rel.max() - rel.min()
    rel01 = (rel - rel.min()) / span if span > 0 else np.zeros(n)
    emb = np.asarray(embeddings, dtype=np.float64)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    unit = emb / np.where(norms > 0, norms, 1.0)
    sim = unit @ unit.T
    # A tiny relevance term breaks exact MMR ties (e.g. diversity = 1) towards the better item.
    base = (1.0 - diversity) * rel01 + 1e-9 * rel01
    picked = np.empty(k, dtype=np.int64)
    taken = np.zeros(n, dtype=bool)
    max_sim = np.full(n, -np.inf)
    first = int(np.lexsort((np.arange(n), -rel))[0])
    picked[0], taken[first] = first, True
    max_sim = np.maximum(max_sim, sim[first])
    for step in range(1, k):
        score = base - diversity * max_sim
        score[taken] = -np.inf
        nxt = int(np.argmax(score))
        picked[step], taken[nxt] = nxt, True
        max_sim = np.maximum(max_sim, sim[nxt])
    return picked


def most_similar(
    items: np.ndarray, history: np.ndarray, embeddings: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each of ``items``, the ``history`` item with the highest embedding cosine (itself
    excluded) and that cosine: the "because you liked X" of an explanation.

    Returns ``(positions into history (len(items),), similarities)``; position ``-1`` and
    similarity ``nan`` where the history holds nothing but the item itself (or nothing at all).
    """
    items = np.asarray(items, dtype=np.int64)
    history = np.asarray(history, dtype=np.int64)
    pos = np.full(len(items), -1, dtype=np.int64)
    sims = np.full(len(items), np.nan, dtype=np.float64)
    if len(items) == 0 or len(history) == 0:
        return pos, sims
    emb = np.asarray(embeddings, dtype=np.float64)
    a, b = emb[items], emb[history]
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    sim = a @ b.T
    sim[items[:, None] == history[None, :]] = -np.inf
    best = np.argmax(sim, axis=1)
    val = sim[np.arange(len(items)), best]
    ok = np.isfinite(val)
    pos[ok], sims[ok] = best[ok], val[ok]
    return pos, sims
