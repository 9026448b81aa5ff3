"""History features: how a candidate relates to the user's latest items, item by item.

Two optional groups of pair features, both read from the user's history (oldest first when the
training log has times: the bundle's ``seen`` lists are kept in time order then) and bounded to
its last ``window`` items, so a request costs the same whatever the user's history length:

* ``hist`` (embedding): cosine of the candidate's embedding with each of those items, reduced
  to the max and the mean. Retrieval scores a candidate against one user vector, an average of
  everything; the max says "close to *one* thing you had", which an average blurs.
* ``genre`` (attribute recency, needs item tags): per history item, the share of the candidate's
  tags it carries; reduced to the mean over the window and an exponentially decayed mean (half
  life :data:`GENRE_HALF_LIFE` items, the latest item weighs most). Time is counted in items,
  not seconds: a request carries item ids, not the times they were seen, so offline and online
  measure the same thing.

:func:`history_pair_features` is the one implementation: the trainer's rows
(:meth:`~recommender.features.FeatureAssembler.assemble`) and every served request call it. Per
request it is one (C·D)×(D·n) product and one (C·G)×(G·n) product (C = 200, D = 64, n = 20:
~0.3 MFLOP), no Python loop over candidates. Nothing new is stored in the bundle: the item
embeddings and tags are already there; the window sizes go into ``model.json``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

HIST_FEATURES = ("hist_sim_max", "hist_sim_mean")
GENRE_FEATURES = ("genre_share", "genre_recent")
GENRE_HALF_LIFE = 3.0


def inverse_norms(vectors: np.ndarray) -> np.ndarray:
    """(n,) float32: 1 / the length of each row (0 for a zero row): cosines without a second,
    normalised copy of the embedding table (256 MB at 1M items, D = 64)."""
    norms = np.linalg.norm(np.asarray(vectors, np.float32), axis=1)
    return np.where(norms > 0, 1.0 / np.where(norms > 0, norms, 1.0), 0.0).astype(np.float32)


def history_pair_features(
    histories: Sequence[np.ndarray] | None,
    candidates: np.ndarray,
    window: int,
    item_vectors: np.ndarray | None = None,
    inv_norms: np.ndarray | None = None,
    item_tags: np.ndarray | None = None,
) -> np.ndarray:
    """(B, C, F) float32 history features of each candidate, F = 2 per group given.

    ``histories[r]``: row r's user's items, oldest first; only the last ``window`` count.
    ``item_vectors`` (n_items, D) with their :func:`inverse_norms`: the ``hist`` group;
    ``item_tags`` (n_items, G), 0/1 or weights: the ``genre`` group. An unknown (``None``) or
    empty history gives zeros. Groups come out in that order (``hist`` first).
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    candidates = np.asarray(candidates)
    b, c = candidates.shape
    use_vec = item_vectors is not None and inv_norms is not None
    n_out = 2 * (use_vec + (item_tags is not None))
    out = np.zeros((b, c, n_out), np.float32)
    if histories is None or b == 0 or n_out == 0:
        return out
    if len(histories) != b:
        raise ValueError(f"{len(histories)} histories for {b} candidate rows")
    # weight of the k-th latest item (k = 0 the latest) in ``genre_recent``
    decay = np.power(np.float32(0.5), np.arange(window - 1, -1, -1, dtype=np.float32) / GENRE_HALF_LIFE)
    for r in range(b):
        hist = np.asarray(histories[r], np.int64)[-window:]
        n = len(hist)
        if n == 0:
            continue
        cand = candidates[r]
        col = 0
        if item_vectors is not None and inv_norms is not None:
            # unit history rows and their mean, against the raw candidate rows: (n+1, D)·(D, C),
            # laid out so the max runs down contiguous rows; the candidate's norm divides once
            unit = item_vectors[hist] * inv_norms[hist, None]
            sims = np.vstack([unit, unit.mean(axis=0, keepdims=True)]) @ item_vectors[cand].T
            sims *= inv_norms[cand]
            out[r, :, 0] = np.maximum.reduce(sims[:n], axis=0)
            out[r, :, 1] = sims[n]
            col = 2
        if item_tags is not None:
            # share of the candidate's tags each history item carries, averaged flat and with a
            # decay: both are the candidate's tags against one tag vector of the history, so one
            # (C, G)·(G, 3) product (the third column: the candidate's tag total, a divisor)
            weights = np.empty((n, 3), np.float32)
            weights[:, 0] = 1.0 / n
            weights[:, 1] = decay[-n:] / decay[-n:].sum()
            weights[:, 2] = 0.0
            basis = (item_tags[hist] > 0).T.astype(np.float32) @ weights  # (G, 3)
            basis[:, 2] = 1.0
            prod = item_tags[cand] @ basis
            out[r, :, col : col + 2] = prod[:, :2] / np.maximum(prod[:, 2:], np.float32(1e-12))
    return out
