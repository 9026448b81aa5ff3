"""Who a list is for, as the stages read it: a known user's row, or a user built from items.

Both kinds of user end as the same :class:`~recommender.types.Queries` (an embedding to search
with, side features and a tag profile for the ranker), so everything after this point runs the
same code for a trained user and for a cold-start visitor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from recommender.features import FeatureAssembler
from recommender.types import Queries


@dataclass
class QueryBuilder:
    """Builds :class:`Queries` from the bundle's user tables.

    ``seen_indptr``/``seen_indices`` are a CSR matrix of each user's training items (what
    "exclude seen" leaves out). ``recent_window`` is how many of a user's latest items training
    averaged into the ``recent_vec_*`` feature block (``None``: all the items given).
    """

    user_emb: np.ndarray
    item_emb: np.ndarray
    features: FeatureAssembler
    seen_indptr: np.ndarray
    seen_indices: np.ndarray
    recent_window: int | None = None

    def seen(self, user: int) -> np.ndarray:
        """The training items of ``user`` (internal indices)."""
        return self.seen_indices[self.seen_indptr[user] : self.seen_indptr[user + 1]]

    def known(self, users: np.ndarray) -> Queries:
        """(embeddings, side features, tag profiles) for known users: rows of the bundle's tables."""
        f = self.features
        return Queries(self.user_emb[users], f.user_features[users], f.user_profile[users])

    def known_with_recent(self, users: np.ndarray, recent: Sequence[np.ndarray]) -> Queries:
        """Known users whose latest items arrived after training (``recent[r]``, oldest first,
        possibly empty): :meth:`known`, with the ``recent_vec_*`` block slid forward.

        The block is the mean item vector of the user's last ``w = recent_window`` items (all of
        them when None). With ``m`` new items it becomes the mean of the last ``min(m, w)`` new
        ones and the ``keep = min(n, w - min(m, w))`` most recent training items, ``n`` the
        user's training items. The bundle stores the old block (a mean), not which items it
        averaged, so those ``keep`` items are taken at the old block's mean:
        ``(keep * old + m' * new) / (keep + m')``. Exact when ``m >= w``, or when the training
        items all lie in the window. Embedding and tag profile stay as trained; a model
        without the block (``n_vector == 0``) gets :meth:`known` unchanged.
        """
        users = np.asarray(users, np.int64).reshape(-1)
        q = self.known(users)
        f = self.features
        d = f.n_vector
        if not d or not any(len(h) for h in recent):
            return q
        feats = np.array(q.feats, np.float32, copy=True)
        w = self.recent_window
        for r, history in enumerate(recent):
            m = len(history)
            if m == 0:
                continue
            used = min(m, w) if w else m
            n = len(self.seen(int(users[r])))
            keep = max(0, min(n, w - used)) if w else n
            new = f.recent_block([np.asarray(history, np.int64)], w)[0]
            feats[r, -d:] = (keep * feats[r, -d:] + used * new) / (keep + used)
        return Queries(q.emb, feats, q.profiles)

    def from_items(self, histories: Sequence[np.ndarray]) -> Queries:
        """One row per user known only by items (each list non-empty, oldest first).

        * embedding: the mean of the items' embeddings (in MF the user vector is what scores
          their items high, and the centroid does that);
        * tag profile: built from the items like a trained user's;
        * side features: the *mean training user's* (zeros would be an impossible user, no age
          bucket at all, far outside what the ranker learned on), except the ``recent_vec_*``
          block, which is built from the items by the function training uses for known users
          (their last ``recent_window`` items), since here the recent items are known.
        """
        lists = [np.asarray(h, np.int64) for h in histories]
        if any(len(h) == 0 for h in lists):
            raise ValueError("a user built from items needs at least one item")
        f = self.features
        if not lists:
            dim = self.item_emb.shape[1]
            return Queries(
                np.zeros((0, dim), np.float32),
                np.zeros((0, f.user_features.shape[1]), np.float32),
                np.zeros((0, f.user_profile.shape[1]), np.float32),
            )
        emb = np.stack([self.item_emb[h].mean(axis=0) for h in lists]).astype(np.float32)
        feats = np.repeat(f.user_features.mean(axis=0, keepdims=True), len(lists), axis=0).astype(np.float32)
        if d := f.n_vector:
            feats[:, -d:] = f.recent_block(lists, self.recent_window)
        profiles = np.stack([f.profile_from_items(h) for h in lists])
        return Queries(emb, feats, profiles)
