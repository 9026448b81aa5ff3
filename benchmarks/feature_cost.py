"""What the ranker's feature groups cost per request: the features + ranking stages at C = 200.

``python -m benchmarks.feature_cost --items 100000`` builds the feature tables of a catalogue
shaped like ``recserve bench``'s (``benchmarks/catalogue.py``: 8 tags, the same user and item
feature columns, the default 2 × 64 ranker, ``seen_per_user`` = 20 history items) and times
:meth:`~recommender.ranking.FeatureRanking.score` (the serving code's stage 2, one request of
C candidates) with each feature group switched on, next to the same run's base. Variants are
interleaved request by request, so machine load hits them alike; figures are medians (µs) of
the two stage timers the service exports (``features``, ``ranking``), and each variant's extra
cost over base is the difference of the sums, same run. No index is built: retrieval is not
what changes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from recommender.features import FeatureAssembler
from recommender.ranker import DeepFeatureRanking
from recommender.ranking import FeatureRanking

N_TAGS, DIM = 8, 64
VARIANTS: dict[str, dict[str, bool]] = {
    "base": {},
    "cooc": {"cooc": True},
    "hist": {"hist": True},
    "genre": {"genre": True},
    "hist+genre": {"hist": True, "genre": True},
    "hist+genre+cooc": {"hist": True, "genre": True, "cooc": True},
}


def build(
    n_items: int, n_users: int, on: dict[str, bool], window: int, m: int, seed: int = 0
) -> FeatureRanking:
    rng = np.random.default_rng(seed)
    tags = np.eye(N_TAGS, dtype=np.float32)[rng.integers(0, N_TAGS, n_items)]
    pop = np.floor(rng.pareto(1.2, n_items) * 10).astype(np.float32)
    item_features = np.concatenate([tags, rng.uniform(0, 1, (n_items, 1)), np.log1p(pop)[:, None]], axis=1)
    user_features = np.concatenate(
        [np.eye(4, dtype=np.float32)[rng.integers(0, 4, n_users)], rng.uniform(0, 1, (n_users, 1))], axis=1
    )
    extra: dict = {}
    if on.get("cooc"):
        p = (pop + 1) / (pop + 1).sum()
        extra["cooc_neighbours"] = rng.choice(n_items, (n_items, m), p=p).astype(np.int32)
        extra["cooc_weights"] = np.sort(rng.uniform(0, 1, (n_items, m)), axis=1)[:, ::-1].astype(np.float32)
    if on.get("hist") or on.get("genre"):
        extra |= {"history_window": window, "hist_similarity": bool(on.get("hist"))}
        extra |= {"genre_recency": bool(on.get("genre"))}
        if on.get("hist"):
            extra["item_vectors"] = rng.normal(size=(n_items, DIM)).astype(np.float32)
    profile = rng.dirichlet(np.full(N_TAGS, 0.3), n_users).astype(np.float32)
    features = FeatureAssembler(user_features, item_features, profile, tags, **extra)
    torch.manual_seed(seed)
    return FeatureRanking(features, DeepFeatureRanking(features.n_features).eval())


def run(n_items: int, n_requests: int, history: int, window: int, m: int, c: int = 200) -> dict:
    torch.set_num_threads(1)
    n_users = 1000
    stages = {name: build(n_items, n_users, on, window, m) for name, on in VARIANTS.items()}
    rng = np.random.default_rng(4)
    times: dict[str, dict[str, list[float]]] = {n: {"features": [], "ranking": []} for n in VARIANTS}
    for i in range(n_requests + 20):  # the first 20 warm up
        u = int(rng.integers(0, n_users))
        cand = rng.choice(n_items, (1, c), replace=False)
        cscore = np.sort(rng.normal(size=(1, c)).astype(np.float32), axis=1)[:, ::-1].copy()
        hist = [rng.choice(n_items, history, replace=False)]
        order = list(VARIANTS)
        rng.shuffle(order)
        for name in order:
            st = stages[name]
            f = st.features
            timings: dict[str, float] = {}
            st.score(f.user_features[[u]], f.user_profile[[u]], cand, cscore, timings, hist)
            if i >= 20:
                for k in ("features", "ranking"):
                    times[name][k].append(timings[k])
    out: dict = {"items": n_items, "candidates": c, "history": history, "window": window, "cooc_m": m}
    base = None
    for name in VARIANTS:
        med = {k: float(np.median(v) * 1e6) for k, v in times[name].items()}
        total = med["features"] + med["ranking"]
        base = total if base is None else base
        out[name] = {**{f"{k}_us": round(v, 1) for k, v in med.items()}, "total_us": round(total, 1)}
        out[name]["extra_us"] = round(total - base, 1)
        out[name]["n_features"] = stages[name].features.n_features
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, default=100_000)
    p.add_argument("--requests", type=int, default=500)
    p.add_argument("--history", type=int, default=20, help="items in each request's history (default 20)")
    p.add_argument("--window", type=int, default=20, help="history groups' window (default 20)")
    p.add_argument("--cooc-neighbours", type=int, default=16)
    args = p.parse_args(argv)
    started = time.perf_counter()
    out = run(args.items, args.requests, args.history, args.window, args.cooc_neighbours)
    print("| variant | ranker inputs | features µs | ranking µs | features+ranking µs | extra over base µs |")
    print("|---|---|---|---|---|---|")
    for name in VARIANTS:
        r = out[name]
        print(
            f"| {name} | {r['n_features']} | {r['features_us']:.1f} | {r['ranking_us']:.1f} "
            f"| {r['total_us']:.1f} | {r['extra_us']:+.1f} |"
        )
    out["seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(out), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
