"""Top-K selection over score matrices: the last step of every recommendation."""

from __future__ import annotations

import numpy as np
import torch

ArrayLike = np.ndarray | torch.Tensor
# Up to this many items per row one stable sort of the whole batch beats argpartition plus a
# per-row tie-break loop: at the service's C=200 the cost is numpy call overhead, not n log n.
SORT_MAX_N = 2048


class TopKRecommendationSelector:
    """Return the ``k`` best (index, score) pairs of each row, best first.

    Why not ``argsort``: a full sort is O(n log n) per row, and the service calls this on every
    request. ``np.argpartition`` (numpy input) and ``torch.topk`` (tensor input) select in O(n)
    and only the k survivors are sorted.

    Rules, all of which the API relies on:

    * ``1 <= k <= n`` else :class:`ValueError` naming both ``k`` and ``n``.
    * Ties break deterministically: equal scores come out lower index first.
    * Items where ``mask`` is True (e.g. already seen) and NaN scores are never selected.
    * If a row has fewer than ``k`` valid items, only the valid ones are returned. For a 1-D input
      the result is simply shorter; for a 2-D batch the result has as many columns as the row
      with the most valid items (at most ``k``) and shorter rows are padded with index ``-1`` and
      score ``NaN``.

    Input type is preserved: numpy in, numpy out; tensor in, tensor out.
    """

    def __init__(self, k: int) -> None:
        if isinstance(k, bool) or not isinstance(k, int | np.integer):
            raise TypeError(f"k must be an int, got {type(k).__name__}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got k={k}")
        self.k = int(k)

    def __call__(self, scores: ArrayLike, mask: ArrayLike | None = None) -> tuple[ArrayLike, ArrayLike]:
        if isinstance(scores, torch.Tensor):
            mask_np = None
            if mask is not None:
                mask_np = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
            idx, val = self._select(scores.detach().cpu().numpy(), mask_np)
            return torch.from_numpy(idx), torch.from_numpy(val).to(scores.dtype)
        if isinstance(mask, torch.Tensor):
            mask = mask.detach().cpu().numpy()
        return self._select(np.asarray(scores), None if mask is None else np.asarray(mask))

    def _select(self, scores: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        squeeze = scores.ndim == 1
        if squeeze:
            scores = scores[None, :]
            mask = None if mask is None else mask[None, :]
        if scores.ndim != 2:
            raise ValueError(f"scores must have shape (n,) or (batch, n), got {scores.shape}")
        n = scores.shape[1]
        if self.k > n:
            raise ValueError(f"k must be <= number of items n: got k={self.k}, n={n}")
        if mask is not None and mask.shape != scores.shape:
            raise ValueError(f"mask shape {mask.shape} does not match scores shape {scores.shape}")
        k = self.k
        work = scores.astype(np.float64, copy=True)
        invalid = np.isnan(work)
        if mask is not None:
            invalid |= mask.astype(bool)
        work[invalid] = -np.inf
        if n <= SORT_MAX_N:
            return self._select_sorted(scores, work, invalid, squeeze)
        # Candidates: the k largest by value. argpartition is O(n); ties at the k-th value are
        # resolved below by taking every item equal to the threshold and ordering by index.
        if k < n:
            part = np.argpartition(-work, k - 1, axis=1)[:, :k]
            kth = np.take_along_axis(work, part, axis=1).min(axis=1, keepdims=True)
        else:
            kth = np.full((work.shape[0], 1), -np.inf)
        rows_idx = []
        rows_val = []
        for r in range(work.shape[0]):
            row = work[r]
            cand = np.flatnonzero(row >= kth[r, 0]) if k < n else np.arange(n)
            cand = cand[~invalid[r, cand]]
            # lexsort: primary key descending score, secondary ascending index (stable → index order)
            order = np.lexsort((cand, -row[cand]))
            chosen = cand[order][:k]
            rows_idx.append(chosen)
            rows_val.append(scores[r, chosen])
        width = max((len(c) for c in rows_idx), default=0)
        out_idx = np.full((len(rows_idx), width), -1, dtype=np.int64)
        out_val = np.full(
            (len(rows_idx), width), np.nan, dtype=scores.dtype if scores.dtype.kind == "f" else np.float64
        )
        for r, (ci, cv) in enumerate(zip(rows_idx, rows_val, strict=True)):
            out_idx[r, : len(ci)] = ci
            out_val[r, : len(cv)] = cv
        if squeeze:
            return out_idx[0], out_val[0]
        return out_idx, out_val

    def _select_sorted(
        self, scores: np.ndarray, work: np.ndarray, invalid: np.ndarray, squeeze: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        """The same rules for short rows, loop-free: one lexsort of (valid first, score desc, index).

        ``np.lexsort`` is stable, so equal scores keep ascending index order; invalid items sort
        after every valid one (even a valid ``-inf``), so each row's valid picks are a prefix.
        """
        order = np.lexsort((-work, invalid), axis=-1)[:, : self.k]
        chosen_valid = ~np.take_along_axis(invalid, order, axis=1)
        width = int(chosen_valid.sum(axis=1).max(initial=0))
        order, chosen_valid = order[:, :width], chosen_valid[:, :width]
        out_idx = np.where(chosen_valid, order, -1).astype(np.int64, copy=False)
        out_dtype = scores.dtype if scores.dtype.kind == "f" else np.float64
        out_val = np.where(chosen_valid, np.take_along_axis(scores, order, axis=1), np.nan).astype(
            out_dtype, copy=False
        )
        if squeeze:
            return out_idx[0], out_val[0]
        return out_idx, out_val
