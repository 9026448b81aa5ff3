"""A tiny hand-built model for the stage and strategy tests: no training, built in milliseconds.

It has what the real bundles have, small: an HNSW index, a ranker, categories to filter on, and
the ``recent_vec_*`` / ``item_vec_*`` feature block of the MovieLens-100K bundles, filled for
each user from their last ``WINDOW`` items by the same function training uses.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from recommender.features import ITEM_VEC_PREFIX, USER_VEC_PREFIX, FeatureAssembler, recent_item_vectors
from recommender.idmap import IdMap
from recommender.model import RECENT_WINDOW_KEY, RecommenderModel
from recommender.ranker import DeepFeatureRanking
from recommender.retrieval import HNSWParams, ItemIndex

N_USERS, N_ITEMS, DIM, N_TAGS, WINDOW = 40, 150, 8, 4, 3


def build_tiny_model(seed: int = 0, ranker: bool = True, vector_block: bool = True) -> RecommenderModel:
    """Random embeddings, 4 categories, 6–14 seen items per user (held oldest first)."""
    rng = np.random.default_rng(seed)
    user_emb = rng.normal(size=(N_USERS, DIM)).astype(np.float32)
    item_emb = rng.normal(size=(N_ITEMS, DIM)).astype(np.float32)
    category = rng.integers(0, N_TAGS, N_ITEMS)
    tags = np.eye(N_TAGS, dtype=np.float32)[category]
    lengths = rng.integers(6, 15, N_USERS)
    indptr = np.r_[0, np.cumsum(lengths)].astype(np.int64)
    seen = np.concatenate([rng.choice(N_ITEMS, n, replace=False) for n in lengths]).astype(np.int64)
    user_feats = rng.normal(size=(N_USERS, 2)).astype(np.float32)
    item_feats = rng.uniform(size=(N_ITEMS, 1)).astype(np.float32)
    user_names, item_names = ["age", "activity"], ["log_popularity"]
    metadata: dict[str, object] = {"dataset": "tiny"}
    if vector_block:
        recent = recent_item_vectors(item_emb, indptr, seen, WINDOW)
        user_feats = np.concatenate([user_feats, recent], axis=1)
        item_feats = np.concatenate([item_feats, item_emb], axis=1)
        user_names += [f"{USER_VEC_PREFIX}{j}" for j in range(DIM)]
        item_names += [f"{ITEM_VEC_PREFIX}{j}" for j in range(DIM)]
        metadata[RECENT_WINDOW_KEY] = WINDOW
    profile = np.stack([tags[seen[indptr[u] : indptr[u + 1]]].mean(axis=0) for u in range(N_USERS)])
    features = FeatureAssembler(user_feats, item_feats, profile, tags, user_names, item_names)
    tower = None
    if ranker:
        torch.manual_seed(seed)
        tower = DeepFeatureRanking(features.n_features, hidden_units=8).eval()
    return RecommenderModel(
        version="tiny",
        user_ids=IdMap(f"u{u}" for u in range(N_USERS)),
        item_ids=IdMap(f"i{i}" for i in range(N_ITEMS)),
        user_emb=user_emb,
        item_emb=item_emb,
        index=ItemIndex.build(item_emb, "hnsw", HNSWParams(m=8, ef_construction=40, ef_search=64)),
        features=features,
        ranker=tower,
        seen_indptr=indptr,
        seen_indices=seen,
        popularity=rng.integers(0, 50, N_ITEMS).astype(np.float32),
        n_candidates=30,
        item_attributes={"category": [[f"cat{c}"] for c in category.tolist()]},
        metadata=metadata,
        similar_ef_search=16,
    )


@pytest.fixture(scope="module")
def tiny() -> RecommenderModel:
    """Shared by a module's tests: treat as read-only."""
    return build_tiny_model()


@pytest.fixture
def make_tiny() -> Callable[..., RecommenderModel]:
    """:func:`build_tiny_model`, for a test that needs its own copy or a variant."""
    return build_tiny_model
