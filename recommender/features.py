"""Feature assembly: the one function that turns (user, candidates) into ranker input rows.

Training builds its rows with :meth:`FeatureAssembler.assemble` and so does the service, so a
ranker can never be served features laid out differently from the ones it learned on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PAIR_FEATURES = ("retrieval_score", "retrieval_rank", "tag_affinity")


@dataclass
class FeatureAssembler:
    """Feature tables plus the layout and normalisation of the assembled rows.

    * ``user_features`` (n_users, Fu): per-user side features (demographics, activity, …).
    * ``item_features`` (n_items, Fi): per-item side features (categories, popularity, …).
    * ``user_profile`` (n_users, G) and ``item_tags`` (n_items, G): a user's distribution over item
      tags (genres, categories) from their history, and each item's tags; their dot product is the
      ``tag_affinity`` pair feature ("how much this user likes this kind of item").
    * ``mean`` / ``std`` (F,): standardisation fitted on training rows (identity until fitted).

    Row layout: ``[user_features | item_features | retrieval_score, retrieval_rank, tag_affinity]``;
    ``retrieval_rank`` is the candidate's position in the retrieval list divided by its length.
    """

    user_features: np.ndarray
    item_features: np.ndarray
    user_profile: np.ndarray
    item_tags: np.ndarray
    user_feature_names: list[str] = field(default_factory=list)
    item_feature_names: list[str] = field(default_factory=list)
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.user_features = np.ascontiguousarray(self.user_features, dtype=np.float32)
        self.item_features = np.ascontiguousarray(self.item_features, dtype=np.float32)
        self.user_profile = np.ascontiguousarray(self.user_profile, dtype=np.float32)
        self.item_tags = np.ascontiguousarray(self.item_tags, dtype=np.float32)
        if self.user_features.shape[0] != self.user_profile.shape[0]:
            raise ValueError("user_features and user_profile must have one row per user")
        if self.item_features.shape[0] != self.item_tags.shape[0]:
            raise ValueError("item_features and item_tags must have one row per item")
        if self.user_profile.shape[1] != self.item_tags.shape[1]:
            raise ValueError("user_profile and item_tags must have the same number of tags")
        if not self.user_feature_names:
            self.user_feature_names = [f"user_{i}" for i in range(self.user_features.shape[1])]
        if not self.item_feature_names:
            self.item_feature_names = [f"item_{i}" for i in range(self.item_features.shape[1])]
        n = self.n_features
        self.mean = np.zeros(n, np.float32) if self.mean is None else np.asarray(self.mean, np.float32)
        self.std = np.ones(n, np.float32) if self.std is None else np.asarray(self.std, np.float32)
        self._inv_std = (1.0 / self.std).astype(np.float32)

    @property
    def n_features(self) -> int:
        return self.user_features.shape[1] + self.item_features.shape[1] + len(PAIR_FEATURES)

    @property
    def feature_names(self) -> list[str]:
        return [*self.user_feature_names, *self.item_feature_names, *PAIR_FEATURES]

    def profile_from_items(self, item_idx: np.ndarray) -> np.ndarray:
        """A tag profile built from a list of items: how a cold-start user's taste is estimated."""
        if len(item_idx) == 0:
            return np.zeros(self.item_tags.shape[1], np.float32)
        tags = self.item_tags[np.asarray(item_idx)].sum(axis=0)
        total = tags.sum()
        return (tags / total if total > 0 else tags).astype(np.float32)

    def assemble(
        self,
        user_feats: np.ndarray,
        user_profile: np.ndarray,
        candidates: np.ndarray,
        retrieval_scores: np.ndarray,
        normalise: bool = True,
    ) -> np.ndarray:
        """Rows for a batch of users and their candidate lists.

        Shapes: ``user_feats`` (B, Fu), ``user_profile`` (B, G), ``candidates`` (B, C) item indices,
        ``retrieval_scores`` (B, C), candidates in retrieval order (best first).
        Returns float32 (B, C, F). Fully vectorised: one gather per table, no Python loop.
        """
        candidates = np.asarray(candidates)
        b, c = candidates.shape
        fu = self.user_features.shape[1]
        fi = self.item_features.shape[1]
        out = np.empty((b, c, self.n_features), dtype=np.float32)
        out[:, :, :fu] = np.asarray(user_feats, np.float32)[:, None, :]
        out[:, :, fu : fu + fi] = self.item_features[candidates]
        out[:, :, fu + fi] = retrieval_scores
        out[:, :, fu + fi + 1] = np.arange(c, dtype=np.float32) / max(c, 1)
        out[:, :, fu + fi + 2] = np.einsum(
            "bg,bcg->bc", np.asarray(user_profile, np.float32), self.item_tags[candidates]
        )
        if normalise:
            out -= self.mean
            out *= self._inv_std
        return out

    def fit_normalisation(self, rows: np.ndarray) -> None:
        """Fit mean/std on raw (un-normalised) training rows of shape (..., F)."""
        flat = rows.reshape(-1, self.n_features).astype(np.float64)
        std = flat.std(axis=0)
        self.set_normalisation(flat.mean(axis=0), np.where(std > 1e-6, std, 1.0))

    def set_normalisation(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Use a normalisation fitted elsewhere (e.g. on the ranker's training rows)."""
        if len(mean) != self.n_features or len(std) != self.n_features:
            raise ValueError(f"normalisation must have {self.n_features} entries")
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self._inv_std = (1.0 / self.std).astype(np.float32)
