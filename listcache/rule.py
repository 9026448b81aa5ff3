"""The one rule for "can this stored list answer this request?", on internal indices, pure."""

from __future__ import annotations

import numpy as np


def _isin(values: np.ndarray, excluded: np.ndarray) -> np.ndarray:
    """``np.isin`` for a short exclusion list: one broadcast compare instead of sorting both sides
    (a request excludes a handful of items against a list of ~100)."""
    if len(excluded) > 64:
        return np.isin(values, excluded)
    return (values[:, None] == excluded[None, :]).any(axis=1)


def answer_from_cached(
    items: np.ndarray,
    scores: np.ndarray,
    k: int,
    excluded: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray] | None:
    """The top ``k`` of a stored best-first list after request-time exclusions and filters, or None.

    ``items`` are internal item indices (best first) and ``scores`` their scores; ``excluded``
    holds the request's excluded item indices and ``allowed`` is its item-filter mask over the
    catalogue (None = every item). Entries excluded or not allowed are dropped; if at least ``k``
    survive, the first ``k`` are the answer, else None (compute online).

    Why this is exact rather than a guess: the stored list is the top N of the full ranking. If
    ``k`` entries survive the filter inside it, every item outside it scores below all of them, so
    they are also the top ``k`` survivors of the full ranking. When fewer survive, items beyond
    position N could belong in the answer and only an online computation can find them.
    "Full ranking" means the one computed *without* the exclusions: an online computation that
    removes items before ranking shifts the ranker's ``retrieval_rank`` feature and can order the
    rest differently (on the synthetic default, 78 of 100 users got the identical top 10 with 5
    exclusions; docs/cache.md). Options that change the ranking itself (``exclude_seen=false``,
    recent items, diversity) must not come here at all: the caller bypasses the cache for them.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    keep: np.ndarray | None = None
    if allowed is not None:
        keep = allowed[items]
    if excluded is not None and len(excluded):
        dropped = _isin(items, np.asarray(excluded))
        keep = ~dropped if keep is None else keep & ~dropped
    if keep is None:
        return (items[:k], scores[:k]) if len(items) >= k else None
    positions = np.flatnonzero(keep)[:k]
    if len(positions) < k:
        return None
    return items[positions], scores[positions]
