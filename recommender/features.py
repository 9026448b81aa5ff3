"""Feature assembly: the one function that turns (user, candidates) into ranker input rows.

Training builds its rows with :meth:`FeatureAssembler.assemble` and so does the service, so a
ranker can never be served features laid out differently from the ones it learned on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from recommender.cooc import COOC_FEATURES, check_cooc_tables, cooc_pair_features, filled_slots
from recommender.history import GENRE_FEATURES, HIST_FEATURES, history_pair_features, inverse_norms

PAIR_FEATURES = ("retrieval_score", "retrieval_rank", "tag_affinity")
# Optional vector block: trailing user-feature columns named ``recent_vec_*`` and trailing
# item-feature columns named ``item_vec_*`` (same count) are not fed to the ranker as such; their
# dot product becomes one more pair feature.
USER_VEC_PREFIX = "recent_vec_"
ITEM_VEC_PREFIX = "item_vec_"
VECTOR_PAIR_FEATURE = "recent_similarity"


def recent_item_vectors(
    item_vectors: np.ndarray, indptr: np.ndarray, indices: np.ndarray, window: int | None = None
) -> np.ndarray:
    """(B, D) float32: row ``r`` is the mean vector of the last ``window`` items (all if None) of
    row ``r`` of a CSR item list held oldest first; zeros for an empty row.

    The one definition of the ``recent_vec_*`` block: training calls it with each user's
    training items sorted by time, serving with a cold-start user's recent items, so the two
    cannot drift apart. Sums in float64 (a user's vectors are added in list order).
    """
    indptr = np.asarray(indptr, np.int64)
    indices = np.asarray(indices, np.int64)
    if window is not None and window < 1:
        raise ValueError(f"window must be >= 1 or None, got {window}")
    b = len(indptr) - 1
    lengths = np.diff(indptr)
    rows = np.repeat(np.arange(b), lengths)
    if window is not None:
        # Position counted from the end of its row (0 = most recent) decides what is kept.
        from_end = np.repeat(indptr[1:], lengths) - 1 - np.arange(indptr[0], indptr[-1])
        keep = from_end < window
        rows, indices = rows[keep], indices[keep]
    out = np.zeros((b, item_vectors.shape[1]), np.float64)
    np.add.at(out, rows, item_vectors[indices])
    counts = np.bincount(rows, minlength=b)[:, None]
    return (out / np.maximum(counts, 1)).astype(np.float32)


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

    Vector block (optional): when the last D user-feature columns are named ``recent_vec_*`` and
    the last D item-feature columns ``item_vec_*`` (e.g. the mean embedding of the user's most
    recent items, and each item's embedding), those columns are left out of the row and their dot
    product is appended as ``recent_similarity`` — "how close is this candidate to what the user
    engaged with last", which a full-history retrieval score cannot express. Living inside the
    ordinary feature tables, the block is stored and served with no extra plumbing; a caller
    that builds a user row itself (cold start) fills it with :meth:`recent_block`.

    Co-occurrence group (optional, ``cooc_neighbours``/``cooc_weights``, see ``cooc.py``): three
    more pair features at the end of the row, from the candidate's top-M co-occurring items
    that the user has (``histories`` of :meth:`assemble`). Retrieval scores a candidate by one
    user vector; this says "people who had what you had also had this", item by item.

    History groups (optional, see ``history.py``), over the last ``history_window`` items of the
    same histories: ``hist_similarity`` (cosine of the candidate with those items: max, mean;
    reads ``item_vectors``, the model's item embeddings, which the bundle already stores) and
    ``genre_recency`` (how much of the candidate's tags the latest items carry). Appended after
    the co-occurrence group, in that order.
    """

    user_features: np.ndarray
    item_features: np.ndarray
    user_profile: np.ndarray
    item_tags: np.ndarray
    user_feature_names: list[str] = field(default_factory=list)
    item_feature_names: list[str] = field(default_factory=list)
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    cooc_neighbours: np.ndarray | None = None
    cooc_weights: np.ndarray | None = None
    history_window: int = 0
    hist_similarity: bool = False
    genre_recency: bool = False
    item_vectors: np.ndarray | None = None

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
        nu = sum(n.startswith(USER_VEC_PREFIX) for n in self.user_feature_names)
        ni = sum(n.startswith(ITEM_VEC_PREFIX) for n in self.item_feature_names)
        if nu != ni:
            raise ValueError(f"{nu} {USER_VEC_PREFIX}* user columns but {ni} {ITEM_VEC_PREFIX}* item columns")
        fu_all, fi_all = self.user_features.shape[1], self.item_features.shape[1]
        if nu and not (
            all(n.startswith(USER_VEC_PREFIX) for n in self.user_feature_names[fu_all - nu :])
            and all(n.startswith(ITEM_VEC_PREFIX) for n in self.item_feature_names[fi_all - ni :])
        ):
            raise ValueError("vector columns must be the last columns of the user and item features")
        self.n_vector = nu
        if (self.cooc_neighbours is None) != (self.cooc_weights is None):
            raise ValueError("co-occurrence neighbours and weights come together or not at all")
        if self.cooc_neighbours is not None and self.cooc_weights is not None:
            self.cooc_neighbours = np.ascontiguousarray(self.cooc_neighbours, dtype=np.int32)
            self.cooc_weights = np.ascontiguousarray(self.cooc_weights, dtype=np.float32)
            check_cooc_tables(self.cooc_neighbours, self.cooc_weights, self.item_features.shape[0])
            self._cooc_filled = filled_slots(self.cooc_neighbours)
        if (self.hist_similarity or self.genre_recency) and self.history_window < 1:
            raise ValueError("the history groups need history_window >= 1")
        if self.hist_similarity:
            if self.item_vectors is None or len(self.item_vectors) != self.item_features.shape[0]:
                raise ValueError("hist_similarity needs item_vectors, one row per item")
            self.item_vectors = np.asarray(self.item_vectors, np.float32)
            self._inv_norms = inverse_norms(self.item_vectors)
        n = self.n_features
        self.mean = np.zeros(n, np.float32) if self.mean is None else np.asarray(self.mean, np.float32)
        self.std = np.ones(n, np.float32) if self.std is None else np.asarray(self.std, np.float32)
        self._inv_std = (1.0 / self.std).astype(np.float32)

    @property
    def has_cooc(self) -> bool:
        """The bundle carries the co-occurrence group (bundles written before it do not)."""
        return self.cooc_neighbours is not None

    @property
    def pair_features(self) -> tuple[str, ...]:
        names = (*PAIR_FEATURES, VECTOR_PAIR_FEATURE) if self.n_vector else PAIR_FEATURES
        names = (*names, *COOC_FEATURES) if self.has_cooc else names
        names = (*names, *HIST_FEATURES) if self.hist_similarity else names
        return (*names, *GENRE_FEATURES) if self.genre_recency else names

    @property
    def n_features(self) -> int:
        fu, fi = self.user_features.shape[1], self.item_features.shape[1]
        return fu + fi - 2 * self.n_vector + len(self.pair_features)

    @property
    def feature_names(self) -> list[str]:
        fu = len(self.user_feature_names) - self.n_vector
        fi = len(self.item_feature_names) - self.n_vector
        return [*self.user_feature_names[:fu], *self.item_feature_names[:fi], *self.pair_features]

    def vector_from_items(self, item_idx: np.ndarray, window: int | None = None) -> np.ndarray:
        """The ``recent_vec_*`` block for one user known only by items (zeros if there is none)."""
        return self.recent_block([np.asarray(item_idx, np.int64)], window)[0]

    def recent_block(self, histories: Sequence[np.ndarray], window: int | None = None) -> np.ndarray:
        """(B, D) ``recent_vec_*`` blocks for users given by item lists (oldest first), D = 0 if
        the tables have no block.

        The same function training fills the block with for known users
        (:func:`recent_item_vectors`), over the ``item_vec_*`` columns, which hold the item
        embeddings: so a cold-start user with recent items gets the block a trained user with
        that history would have, instead of a population average.
        """
        d = self.n_vector
        if d == 0:
            return np.zeros((len(histories), 0), np.float32)
        indptr = np.r_[0, np.cumsum([len(h) for h in histories], dtype=np.int64)]
        parts = [np.asarray(h, np.int64) for h in histories]
        indices = np.concatenate(parts) if parts else np.zeros(0, np.int64)
        return recent_item_vectors(self.item_features[:, -d:], indptr, indices, window)

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
        histories: Sequence[np.ndarray] | None = None,
    ) -> np.ndarray:
        """Rows for a batch of users and their candidate lists.

        Shapes: ``user_feats`` (B, Fu), ``user_profile`` (B, G), ``candidates`` (B, C) item indices,
        ``retrieval_scores`` (B, C), candidates in retrieval order (best first).
        ``histories``: each user's items, read by the co-occurrence group only (``None``: no
        history known, the group's features are 0).
        Returns float32 (B, C, F). Fully vectorised: one gather per table, no Python loop.
        """
        candidates = np.asarray(candidates)
        b, c = candidates.shape
        d = self.n_vector
        user_feats = np.asarray(user_feats, np.float32)
        fu = self.user_features.shape[1] - d
        fi = self.item_features.shape[1] - d
        item_rows = self.item_features[candidates]
        out = np.empty((b, c, self.n_features), dtype=np.float32)
        out[:, :, :fu] = user_feats[:, None, :fu]
        out[:, :, fu : fu + fi] = item_rows[:, :, :fi]
        out[:, :, fu + fi] = retrieval_scores
        out[:, :, fu + fi + 1] = np.arange(c, dtype=np.float32) / max(c, 1)
        out[:, :, fu + fi + 2] = np.einsum(
            "bg,bcg->bc", np.asarray(user_profile, np.float32), self.item_tags[candidates]
        )
        if d:
            out[:, :, fu + fi + 3] = np.einsum("bd,bcd->bc", user_feats[:, fu:], item_rows[:, :, fi:])
        if self.cooc_neighbours is not None and self.cooc_weights is not None:
            start = fu + fi + (4 if d else 3)
            out[:, :, start : start + len(COOC_FEATURES)] = cooc_pair_features(
                self.cooc_neighbours, self.cooc_weights, histories, candidates, self._cooc_filled
            )
        if self.hist_similarity or self.genre_recency:
            n_hist = len(HIST_FEATURES) * self.hist_similarity + len(GENRE_FEATURES) * self.genre_recency
            out[:, :, out.shape[2] - n_hist :] = history_pair_features(
                histories,
                candidates,
                self.history_window,
                self.item_vectors if self.hist_similarity else None,
                self._inv_norms if self.hist_similarity else None,
                self.item_tags if self.genre_recency else None,
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
