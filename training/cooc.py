"""Build the bounded item–item co-occurrence tables the ranker's ``cooc_*`` features read.

Two items co-occur when one user has both. Weight = cosine of their user sets,
``n(i, j) / sqrt(n(i) n(j))``, so a blockbuster does not neighbour everything. Each item keeps
its ``n_neighbours`` heaviest partners (ties: lower index first): a dense (n_items, M) table, 8·M
bytes per item, 128 MB at 1M items with M = 16, whatever the log size.

Building cost is bounded too: only each user's last ``max_history`` items (by time when times
are known) form pairs, so one user adds at most ``max_history²`` pairs (2 500 at the default
50); pairs are counted per chunk of users and merged, so memory follows the number of distinct
pairs, not the log.
"""

from __future__ import annotations

import numpy as np


def _last_items(
    users: np.ndarray, items: np.ndarray, times: np.ndarray | None, n_users: int, max_history: int
) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, items) of each user's distinct items, at most the ``max_history`` latest."""
    order = np.lexsort((np.arange(len(users)), times if times is not None else np.zeros(len(users)), users))
    u, i = users[order].astype(np.int64), items[order].astype(np.int64)
    # keep the last occurrence of each (user, item): walk backwards and drop repeats
    rev_keys = (u * (int(i.max(initial=0)) + 1) + i)[::-1]
    _, first_rev = np.unique(rev_keys, return_index=True)
    keep = np.zeros(len(u), bool)
    keep[len(u) - 1 - first_rev] = True
    u, i = u[keep], i[keep]
    counts = np.bincount(u, minlength=n_users)
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    from_end = np.repeat(starts + counts, counts) - 1 - np.arange(len(u))
    recent = from_end < max_history
    u, i = u[recent], i[recent]
    return np.r_[0, np.cumsum(np.bincount(u, minlength=n_users))], i


def build_cooc(
    users: np.ndarray,
    items: np.ndarray,
    n_users: int,
    n_items: int,
    n_neighbours: int = 16,
    max_history: int = 50,
    times: np.ndarray | None = None,
    chunk_pairs: int = 20_000_000,
) -> tuple[np.ndarray, np.ndarray]:
    """(neighbours int32 (n_items, M), weights float32 (n_items, M)); empty slots are -1 / 0."""
    if n_neighbours < 1 or max_history < 2:
        raise ValueError(f"n_neighbours must be >= 1 and max_history >= 2, got {n_neighbours}, {max_history}")
    indptr, hist = _last_items(np.asarray(users), np.asarray(items), times, n_users, max_history)
    n_of = np.bincount(hist, minlength=n_items).astype(np.float64)  # users per item
    keys_parts: list[np.ndarray] = []
    count_parts: list[np.ndarray] = []
    pending: list[np.ndarray] = []
    size = 0

    def flush() -> None:
        nonlocal size
        if pending:
            k, c = np.unique(np.concatenate(pending), return_counts=True)
            keys_parts.append(k)
            count_parts.append(c)
            pending.clear()
            size = 0

    for u in range(n_users):
        h = hist[indptr[u] : indptr[u + 1]]
        if len(h) < 2:
            continue
        a, b = np.meshgrid(h, h, indexing="ij")
        off = a != b
        pending.append(a[off] * n_items + b[off])
        size += len(h) * (len(h) - 1)
        if size >= chunk_pairs:
            flush()
    flush()
    neighbours = np.full((n_items, n_neighbours), -1, np.int32)
    weights = np.zeros((n_items, n_neighbours), np.float32)
    if not keys_parts:
        return neighbours, weights
    keys = np.concatenate(keys_parts)
    counts = np.concatenate(count_parts)
    if len(keys_parts) > 1:  # merge the chunks' counts of the same pair
        keys, inverse = np.unique(keys, return_inverse=True)
        counts = np.bincount(inverse, weights=counts)
    left, right = keys // n_items, keys % n_items
    w = counts / np.sqrt(n_of[left] * n_of[right])
    order = np.lexsort((right, -w, left))
    left, right, w = left[order], right[order], w[order]
    starts = np.r_[0, np.cumsum(np.bincount(left, minlength=n_items))[:-1]]
    slot = np.arange(len(left)) - starts[left]
    kept = slot < n_neighbours
    neighbours[left[kept], slot[kept]] = right[kept]
    weights[left[kept], slot[kept]] = w[kept]
    return neighbours, weights
