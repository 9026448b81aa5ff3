"""Train the whole two-stage model from an :class:`InteractionData` and publish it.

Order of work (why two MF fits): the ranker must learn on candidate lists whose labels the
retrieval model has *not* seen, or every positive would sit at the top of retrieval already and
the ranker would learn nothing useful. So each user's last ``ranker_holdout`` of training
interactions is held out; MF fitted on the rest produces candidate lists labelled by the held-out
items; the ranker trains on those. The served model then refits MF on all training data and
keeps the ranker (and its feature normalisation).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from model_store.manifest import new_version_id
from model_store.store import ModelStore
from recommender.features import ITEM_VEC_PREFIX, USER_VEC_PREFIX, FeatureAssembler, recent_item_vectors
from recommender.idmap import IdMap
from recommender.model import RECENT_WINDOW_KEY, RecommenderModel
from recommender.ranker import DeepFeatureRanking
from recommender.retrieval import HNSWParams, ItemIndex
from training.cooc import build_cooc
from training.data import InteractionData, history_csr, split_last_fraction, user_tag_profile
from training.evaluation import evaluate_model
from training.metrics import test_sets
from training.mf import MFConfig, MFResult, train_mf
from training.ranker_train import RankerConfig, normalisation, sample_label_users, train_ranker


@dataclass
class TrainConfig:
    # SL@K: on the synthetic default it beats SL (NDCG@20 0.139 vs 0.133, seed 0), as on Health.
    mf: MFConfig = field(
        default_factory=lambda: MFConfig(
            dim=32, epochs=20, tau=0.3, lr=3e-2, loss="slatk", tau_w=0.5, n_negatives=256
        )
    )
    ranker: RankerConfig = field(default_factory=RankerConfig)
    hnsw: HNSWParams = field(default_factory=HNSWParams)
    n_candidates: int = 200
    ranker_holdout: float = 0.2
    # With interaction times: the mean embedding of each user's last ``recent_items`` training
    # items is compared with every candidate (the ``recent_similarity`` pair feature). 0 = off.
    recent_items: int = 0
    # Feature group "cooc": each item's top ``cooc_neighbours`` co-occurring items are kept in
    # the bundle and the ranker sees how the candidate co-occurs with the user's history
    # (``recommender/cooc.py``). 0 = off; ``cooc_history`` bounds the pairs one user adds.
    cooc_neighbours: int = 0
    cooc_history: int = 50
    # Memory bounds at catalogue scale (200k users x 1M items): the ranker learns on the lists of
    # at most ``ranker_max_lists`` users (a seeded uniform sample; ML-100K and Health have fewer
    # users, so all), built ``list_chunk`` users at a time, so the ranker's rows take at most
    # ranker_max_lists x n_candidates x n_features x 4 bytes (50,000 x 200 x 6 x 4 = 240 MB with
    # no side files). ``eval_max_users``: test metrics on a seeded sample of that many test
    # users (None: all of them).
    ranker_max_lists: int | None = 50_000
    list_chunk: int = 1024
    eval_max_users: int | None = None
    # History groups (``recommender/history.py``), over each user's last ``history_window``
    # items: "hist" = cosine of the candidate with each (max, mean); "genre" = how much of the
    # candidate's tags the latest items carry. Off unless their switch is on.
    history_window: int = 20
    hist_similarity: bool = False
    genre_recency: bool = False
    # Feature group "trend" (needs times): each item's popularity over the latest
    # ``trend_fraction`` of the log's time span next to its overall popularity. 0 = off.
    trend_fraction: float = 0.0
    seed: int = 0
    # Small models train fastest single-threaded; more threads mostly add contention on 2 cores.
    threads: int = 1


def recent_vectors(
    users: np.ndarray, items: np.ndarray, times: np.ndarray, item_emb: np.ndarray, n_users: int, last: int
) -> np.ndarray:
    """(n_users, D): mean embedding of each user's ``last`` most recent items (zeros if none).

    Each user's items are put in time order (ties by row) and handed to
    :func:`~recommender.features.recent_item_vectors`, the function serving applies to a
    cold-start user's recent items, so both sides build the block the same way.
    """
    order = np.lexsort((np.arange(len(users)), times, users))
    indptr = np.r_[0, np.cumsum(np.bincount(users, minlength=n_users))]
    return recent_item_vectors(item_emb, indptr, items[order], last)


def popularity_trend(items: np.ndarray, times: np.ndarray, n_items: int, fraction: float) -> np.ndarray:
    """(n_items, 2): log1p of each item's interactions in the latest ``fraction`` of the log's
    time span, and the log ratio of that count to the share its overall count predicts
    (> 0: rising). A table of the bundle, computed once at training (as of the log's end)."""
    t = np.asarray(times, np.float64)
    cut = t.max(initial=0.0) - fraction * (t.max(initial=0.0) - t.min(initial=0.0))
    recent_mask = t >= cut
    recent = np.bincount(items[recent_mask], minlength=n_items).astype(np.float64)
    total = np.bincount(items, minlength=n_items).astype(np.float64)
    expected = total * recent_mask.mean() if len(t) else total
    return np.stack([np.log1p(recent), np.log((recent + 1) / (expected + 1))], axis=1).astype(np.float32)


def _item_features(
    data: InteractionData, items: np.ndarray, times: np.ndarray | None = None, trend: float = 0.0
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    pop = np.bincount(items, minlength=data.n_items).astype(np.float32)
    cols = [data.item_features, np.log1p(pop)[:, None]]
    names = [*data.item_feature_names, "log_popularity"]
    if times is not None and trend > 0:
        cols.append(popularity_trend(items, times, data.n_items, trend))
        names += ["log_recent_popularity", "popularity_trend"]
    return np.concatenate(cols, axis=1), pop, names


def assemble_model(
    data: InteractionData,
    users: np.ndarray,
    items: np.ndarray,
    user_emb: np.ndarray,
    item_emb: np.ndarray,
    config: TrainConfig,
    version: str,
    times: np.ndarray | None = None,
    ranker: DeepFeatureRanking | None = None,
) -> RecommenderModel:
    """A model over the given training interactions (seen items, features, index), ranked by
    ``ranker`` (None: by the retrieval score).

    With ``times`` and ``config.recent_items``, the recent-items vector block is added to the
    feature tables (see :class:`~recommender.features.FeatureAssembler`), and the window is
    recorded in the metadata so serving builds a cold-start user's block the same way.
    """
    item_feats, pop, item_names = _item_features(data, items, times, config.trend_fraction)
    user_feats, user_names = data.user_features, list(data.user_feature_names)
    metadata: dict[str, Any] = {"dataset": data.name}
    if times is not None and config.recent_items > 0:
        metadata[RECENT_WINDOW_KEY] = config.recent_items
        rec = recent_vectors(users, items, times, item_emb, data.n_users, config.recent_items)
        d = item_emb.shape[1]
        user_feats = np.concatenate([user_feats, rec], axis=1)
        user_names += [f"{USER_VEC_PREFIX}{j}" for j in range(d)]
        item_feats = np.concatenate([item_feats, item_emb], axis=1)
        item_names += [f"{ITEM_VEC_PREFIX}{j}" for j in range(d)]
    cooc: tuple[np.ndarray, np.ndarray] | tuple[None, None] = (None, None)
    if config.cooc_neighbours > 0:
        cooc = build_cooc(
            users, items, data.n_users, data.n_items, config.cooc_neighbours, config.cooc_history, times
        )
    features = FeatureAssembler(
        user_features=user_feats,
        item_features=item_feats,
        user_profile=user_tag_profile(users, items, data.item_tags, data.n_users),
        item_tags=data.item_tags,
        user_feature_names=user_names,
        item_feature_names=item_names,
        cooc_neighbours=cooc[0],
        cooc_weights=cooc[1],
        history_window=config.history_window,
        hist_similarity=config.hist_similarity,
        genre_recency=config.genre_recency,
        item_vectors=item_emb if config.hist_similarity else None,
    )
    indptr, indices = history_csr(users, items, data.n_users, times)  # oldest first with times
    return RecommenderModel(
        version=version,
        user_ids=IdMap(data.user_ids),
        item_ids=IdMap(data.item_ids),
        user_emb=user_emb,
        item_emb=item_emb,
        index=ItemIndex.build(item_emb, "hnsw", config.hnsw, progress=len(item_emb) >= 100_000),
        features=features,
        ranker=ranker,
        seen_indptr=indptr,
        seen_indices=indices,
        popularity=pop,
        n_candidates=config.n_candidates,
        item_attributes=data.item_attributes,
        metadata=metadata,
    )


def fill_cold_users(model: RecommenderModel, data: InteractionData, train_users: np.ndarray) -> list[int]:
    """Give users without training interactions their demographic segment's mean taste.

    MF leaves such users at their random initial vector, so retrieval for them is noise. When the
    data names a segment per user (e.g. age bucket × gender), each cold user's embedding becomes
    the mean embedding of the trained users of the same segment (all trained users
    if the segment has none), and their genre profile the segment's mean profile. This happens
    at training time and is written into the bundle, so serving needs no special path: the user
    is known and is answered by the ordinary retrieval → ranking pipeline. The indices of the
    users filled this way are listed in ``model.metadata["demographic_cold_users"]`` (external
    ids), so the service can say which strategy served them. Returns the internal indices.
    """
    counts = np.bincount(train_users, minlength=data.n_users)
    cold = np.flatnonzero(counts == 0)
    if data.user_segment is None or len(cold) == 0:
        return []
    warm = counts > 0
    seg = np.asarray(data.user_segment)
    profile = model.features.user_profile
    for u in cold.tolist():
        peers = warm & (seg == seg[u])
        if not peers.any():
            peers = warm
        # Mean direction at the peers' typical length (unit length for cosine MF).
        emb = model.user_emb[peers].mean(axis=0)
        norm = np.linalg.norm(emb)
        scale = np.linalg.norm(model.user_emb[peers], axis=1).mean()
        model.user_emb[u] = emb * (scale / norm) if norm > 0 else emb
        profile[u] = profile[peers].mean(axis=0)
        if d := model.features.n_vector:
            model.features.user_features[u, -d:] = model.features.user_features[peers, -d:].mean(axis=0)
    model.metadata["demographic_cold_users"] = model.user_ids.externals(cold)
    return cold.tolist()


def candidate_lists(
    model: RecommenderModel,
    label_users: np.ndarray,
    label_items: np.ndarray,
    chunk: int = 1024,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw feature rows (L, C, F), labels (L, C) and validity (L, C) for users with labels.

    The candidates are the ones serving ranks: the model's own query builder and retriever,
    each user's training items excluded, C = ``model.n_candidates``. Users are retrieved and
    assembled ``chunk`` at a time into the preallocated output, so the intermediate gathers
    (each candidate's embedding row: C x dim floats per user) never exist for every user at once.
    """
    labels_by_user = test_sets(label_users, label_items)
    users = np.array(sorted(labels_by_user), dtype=np.int64)
    stages = model.stages
    c = min(model.n_candidates, model.n_items)  # what the retriever returns per user
    rows = np.empty((len(users), c, model.features.n_features), np.float32)
    labels = np.zeros((len(users), c), np.float32)
    valid = np.zeros((len(users), c), bool)
    # Chunks of users with similar history lengths: a search fetches C + the longest history of
    # its chunk for every user in it, so one heavy user would slow a chunk of light ones.
    # Output order stays sorted by user (with one chunk, the rows are exactly the one-shot rows).
    degree = np.array([len(stages.queries.seen(int(u))) for u in users], dtype=np.int64)
    order = np.argsort(degree, kind="stable")
    bar = tqdm(total=len(users), desc="ranker lists", unit="user", disable=not progress, leave=False)
    for b in range(0, len(users), chunk):
        at = np.sort(order[b : b + chunk])
        part = users[at]
        emb, feats, profiles = stages.queries.known(part)
        histories = [stages.queries.seen(int(u)) for u in part]  # what PersonalizedStrategy passes
        cand, cscore, ok = stages.retriever.retrieve(emb, model.n_candidates, histories)
        for r, u in enumerate(part.tolist()):
            labels[at[r]] = np.isin(cand[r], list(labels_by_user[u]))
        valid[at] = ok
        rows[at] = model.features.assemble(
            feats, profiles, cand, cscore, normalise=False, histories=histories
        )
        bar.update(len(part))
    bar.close()
    return rows, labels, valid


@dataclass
class Retrieval:
    """Stage 1 fitted for one configuration's MF and seed: MF on the training data minus each
    user's ranker slice (``keep``/``held``, whose candidates the ranker learns from) and MF on
    all of it (the served model). Feature groups and the ranker do not change it, so an
    ablation fits it once per seed and trains only rankers on top (:func:`fit_ranker`)."""

    keep: np.ndarray
    held: np.ndarray
    slice_user_emb: np.ndarray
    slice_item_emb: np.ndarray
    user_emb: np.ndarray
    item_emb: np.ndarray
    seconds: float


def fit_retrieval(
    data: InteractionData, config: TrainConfig, progress: bool = True, final_mf: MFResult | None = None
) -> Retrieval:
    """MF on the slice and on all of train. ``final_mf``: the served MF, when the caller already
    trained it with ``config.mf`` on all of ``data``'s training interactions (the Health
    reproduction's SL@20 row), so it is not fitted twice."""
    started = time.perf_counter()
    torch.set_num_threads(config.threads)
    rng = np.random.default_rng(config.seed)
    # The ranker's labels are the *last* interactions of each user's training history when times
    # are known (the same shape of problem as the test split), a random slice otherwise.
    order = data.train_time if data.train_time is not None else rng.permutation(len(data.train_users))
    keep, held = split_last_fraction(data.train_users, data.train_items, order, config.ranker_holdout)
    ua, ia = data.train_users[keep], data.train_items[keep]
    mf_a = train_mf(ua, ia, data.n_users, data.n_items, config.mf, progress=progress)
    mf = (
        final_mf
        if final_mf is not None
        else train_mf(
            data.train_users, data.train_items, data.n_users, data.n_items, config.mf, progress=progress
        )
    )
    return Retrieval(
        keep, held, mf_a.user_emb, mf_a.item_emb, mf.user_emb, mf.item_emb, time.perf_counter() - started
    )


def fit_ranker(
    data: InteractionData, config: TrainConfig, retrieval: Retrieval, progress: bool = True
) -> tuple[RecommenderModel, dict[str, Any]]:
    """The ranker (and the served model) on top of a fitted :class:`Retrieval`."""
    started = time.perf_counter()
    torch.set_num_threads(config.threads)
    version = new_version_id()
    r, keep, held = retrieval, retrieval.keep, retrieval.held
    ua, ia = data.train_users[keep], data.train_items[keep]
    times = data.train_time
    stage1 = assemble_model(
        data,
        ua,
        ia,
        r.slice_user_emb,
        r.slice_item_emb,
        config,
        version,
        None if times is None else times[keep],
    )
    held_users, held_items = sample_label_users(
        data.train_users[held], data.train_items[held], config.ranker_max_lists, config.seed
    )
    rows, labels, valid = candidate_lists(stage1, held_users, held_items, config.list_chunk, progress)
    mean, std = normalisation(rows, valid, config.list_chunk)
    stage1.features.set_normalisation(mean, std)
    mean, std = stage1.features.mean, stage1.features.std  # as float32, as serving applies them
    del stage1  # its HNSW index and feature tables: the final model builds its own
    rows -= mean  # in place (float32, the same operations as serving's normalise)
    rows /= std
    ranker_history: list[float] = []
    ranker = train_ranker(rows, labels, valid, config.ranker, progress=progress, history=ranker_history)
    del rows

    # copies: fill_cold_users writes into the user table, and a Retrieval may serve many rankers
    model = assemble_model(
        data,
        data.train_users,
        data.train_items,
        r.user_emb.copy(),
        r.item_emb,
        config,
        version,
        times,
        ranker,
    )
    cold = fill_cold_users(model, data, data.train_users)
    model.features.set_normalisation(mean, std)
    metrics = evaluate_model(
        model, data, max_users=config.eval_max_users, seed=config.seed, progress=progress
    )
    metrics["candidate_recall"] = float((labels * valid).sum() / max(1, len(held_users)))
    metrics["ranker_lists"] = len(labels)
    metrics["ranker_val_ndcg@10"] = ranker_history
    metrics["demographic_cold_users"] = len(cold)
    metrics["train_seconds"] = round(time.perf_counter() - started + retrieval.seconds, 2)
    return model, metrics


def train_model(
    data: InteractionData, config: TrainConfig, progress: bool = True, final_mf: MFResult | None = None
) -> tuple[RecommenderModel, dict[str, Any]]:
    """Fit MF + ranker as described in the module docstring; return the model and its metrics.

    ``final_mf``: the served MF when the caller already has it (see :func:`fit_retrieval`)."""
    return fit_ranker(data, config, fit_retrieval(data, config, progress, final_mf), progress)


def train_and_publish(
    data: InteractionData, store: ModelStore, config: TrainConfig | None = None, progress: bool = True
) -> tuple[str, dict[str, Any]]:
    config = config or TrainConfig()
    model, metrics = train_model(data, config, progress)
    training_config = asdict(config)
    if data.source is not None:
        training_config["data"] = data.source
    version = store.publish(
        model, training_config=training_config, metrics=metrics, data_fingerprint=data.fingerprint()
    )
    return version, metrics
