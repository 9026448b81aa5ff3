"""Negative sampling for the MF trainer without any users × items structure.

Memory is O(interactions) for the positive check plus O(batch × pool) per batch, whatever the
catalogue size: a million-item catalogue with 200k users would need 200 GB for the dense bool mask
this replaces (``users × items`` bytes), and 4 GB per batch for a ``(1024, n_items)`` score matrix.

* :class:`PositiveIndex` holds each user's training items as CSR (``indptr`` / sorted ``indices``)
  and answers "which of these candidate items are positives of these users" by gathering only the
  batch users' rows and locating them in the (sorted) candidate list with ``searchsorted``.
* :class:`PoolSampler` draws, per batch, the *pool* of items that gets scored: the whole catalogue
  when it is small (``exact``: each row then draws its own uniform negatives from it, as the dense
  trainer did), else ``pool_size`` uniform items shared by the batch (``sampled``: the scores are
  one ``(B, pool) = (B, dim) @ (dim, pool)`` matmul; with ``n_negatives == pool_size`` every row
  uses the whole pool). Sampled negatives that are really positives of the row's user are
  redrawn a few times, then flagged so the loss masks them out.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class PositiveIndex:
    """Each user's training items as CSR: ``indptr`` (n_users + 1) and ``indices`` (sorted per user).

    Built once from the interaction arrays: 8 bytes per interaction plus 8 per user.
    """

    def __init__(self, users: np.ndarray, items: np.ndarray, n_users: int) -> None:
        u = torch.as_tensor(np.asarray(users, dtype=np.int64))
        i = torch.as_tensor(np.asarray(items, dtype=np.int64))
        # one stable sort by user after one by item = rows grouped by user, items sorted inside
        order = torch.argsort(i, stable=True)
        order = order[torch.argsort(u[order], stable=True)]
        self.indices = i[order].contiguous()
        counts = torch.bincount(u, minlength=n_users)
        self.indptr = torch.zeros(n_users + 1, dtype=torch.int64)
        torch.cumsum(counts, 0, out=self.indptr[1:])
        self._span = int(self.indices.max()) + 1 if len(self.indices) else 1
        self._keys: Tensor | None = None  # user * span + item, sorted: built on the first heavy user

    @property
    def nbytes(self) -> int:
        keys = 0 if self._keys is None else 8 * self._keys.numel()
        return self.indices.element_size() * self.indices.numel() + 8 * self.indptr.numel() + keys

    def _global_keys(self) -> Tensor:
        if self._keys is None:
            owner = torch.repeat_interleave(torch.arange(len(self.indptr) - 1), torch.diff(self.indptr))
            self._keys = owner * self._span + self.indices  # sorted: rows by user, items sorted inside
        return self._keys

    def rows(self, users: Tensor) -> tuple[Tensor, Tensor]:
        """``(row, item)`` pairs: every training item of ``users[row]``, all rows at once (ragged gather)."""
        starts = self.indptr[users]
        counts = self.indptr[users + 1] - starts
        row = torch.repeat_interleave(torch.arange(len(users)), counts)
        first = torch.repeat_interleave(starts - (torch.cumsum(counts, 0) - counts), counts)
        return row, self.indices[first + torch.arange(len(row))]

    def mask(self, users: Tensor, columns: Tensor) -> Tensor:
        """``(B, C)`` bool: ``columns[c]`` is a training item of ``users[b]``. ``columns`` sorted ascending.

        Each *distinct* batch user is looked up once (batches are drawn from interactions, so a
        heavy user shows up in a batch many times; once per occurrence cost 0.4 s a batch on a
        power-law log), the cheaper way round: a user with at most C items has their row gathered
        and located in ``columns`` (O(degree · log C)); a heavier one has the C columns located
        in their row instead (O(C · log interactions), one search in the sorted ``user * span +
        item`` keys, 8 more bytes per interaction, built on first use). On the 200k-user power-law
        log of ``recserve bench --parts train`` a batch's distinct users hold ~1.3M items (expected
        value from ``PowerLawSpec``'s degrees), most of them the few heaviest users'.
        ``tests/training/test_sampling.py`` checks both ways against a dense mask.
        O(B · C) bool for the answer.
        """
        distinct, inverse = torch.unique(users, return_inverse=True)
        out = torch.zeros(len(distinct), len(columns), dtype=torch.bool)
        if len(columns) == 0:
            return out[inverse]
        degree = self.indptr[distinct + 1] - self.indptr[distinct]
        light = torch.nonzero(degree <= len(columns)).flatten()
        heavy = torch.nonzero(degree > len(columns)).flatten()
        if len(light):
            row, items = self.rows(distinct[light])
            pos = torch.searchsorted(columns, items).clamp_(max=len(columns) - 1)
            hit = columns[pos] == items
            out[light[row[hit]], pos[hit]] = True
        if len(heavy):
            keys = self._global_keys()
            query = distinct[heavy, None] * self._span + columns[None, :]
            # a column past every training item is nobody's positive (and must not alias the next user)
            query = torch.where(columns[None, :] < self._span, query, -1).reshape(-1)
            at = torch.searchsorted(keys, query).clamp_(max=len(keys) - 1)
            out[heavy] = (keys[at] == query).reshape(len(heavy), len(columns))
        return out[inverse]
        row, items = self.rows(distinct)
        pos = torch.searchsorted(columns, items).clamp_(max=len(columns) - 1)
        hit = columns[pos] == items
        out[row[hit], pos[hit]] = True
        return out[inverse]


class PoolSampler:
    """Per batch: the scored item pool, and each row's negatives as columns of that pool.

    ``exact`` (catalogue of at most ``exact_max_items``): pool = every item, per-row uniform
    negatives; identical draws to the former dense-mask trainer, so small-catalogue results hold.
    ``sampled``: pool = ``pool_size`` distinct uniform items per batch (``torch.unique`` of a uniform
    draw: a few duplicates are dropped, the pool stays uniform), and the rows use the whole pool when
    ``n_negatives >= pool_size``, else draw their own ``n_negatives`` columns of it.
    """

    def __init__(
        self,
        positives: PositiveIndex,
        n_items: int,
        generator: torch.Generator,
        exact: bool,
        pool_size: int,
        rounds: int = 8,
    ) -> None:
        self.positives = positives
        self.n_items = n_items
        self.generator = generator
        self.exact = exact
        self.pool_size = pool_size
        self.rounds = rounds
        self._all = torch.arange(n_items) if exact else None

    def pool(self) -> Tensor:
        """Sorted distinct item ids to score for this batch."""
        if self._all is not None:
            return self._all
        draw = torch.randint(0, self.n_items, (self.pool_size,), generator=self.generator)
        return torch.unique(draw)  # sorted

    def negatives(self, users: Tensor, pool: Tensor, n: int) -> tuple[Tensor | None, Tensor]:
        """``(columns (B, n) or None = the whole pool, still_positive (B, n or P) bool)``.

        Collisions with the user's positives are redrawn ``rounds`` times (per-row draws only);
        whatever still collides is flagged for the loss to mask with ``-inf``.
        """
        mask = self.positives.mask(users, pool)
        if not self.exact and n >= len(pool):
            return None, mask
        cols = torch.randint(0, len(pool), (len(users), n), generator=self.generator)
        bad = mask.gather(1, cols)
        for _ in range(self.rounds):
            n_bad = int(bad.sum())
            if n_bad == 0:
                break
            cols[bad] = torch.randint(0, len(pool), (n_bad,), generator=self.generator)
            bad = mask.gather(1, cols)
        return cols, bad
