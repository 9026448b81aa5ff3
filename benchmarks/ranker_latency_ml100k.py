"""How many milliseconds the ranker adds to one ``/recommend`` answer at C = 200 (MovieLens-100K).

Trains the ml100k model (the reproduce configuration, fewer epochs: latency depends on the
ranker's shape and C, not on how well it was fitted), then answers single-user requests through
the model's personalized strategy exactly as the service does (one torch thread, the service
default) and reports, per request:

* ``ranker added``: the ``features`` + ``ranking`` stage timings (what the ranker costs);
* end-to-end time of the personalized strategy the service serves (``model.strategies``) and of
  the same stages ranked by retrieval score alone (``model.retrieval_strategies``).

Run: ``nice .venv/bin/python benchmarks/ranker_latency_ml100k.py [--requests 1000]``.
Figures only; nothing is asserted (the machine is shared, timings vary).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch


def _pct(xs: list[float]) -> str:
    a = np.array(xs) * 1e3
    return f"p50 {np.percentile(a, 50):.3f} ms  p99 {np.percentile(a, 99):.3f} ms  mean {a.mean():.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--candidates", type=int, default=200)
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    from training.movielens import load_ml100k
    from training.pipeline import train_model
    from training.reproduce_ml100k import ml100k_config

    data = load_ml100k()
    cfg = ml100k_config(0, args.candidates)
    cfg = replace(cfg, mf=replace(cfg.mf, epochs=5), ranker=replace(cfg.ranker, epochs=3))
    model, _ = train_model(data, cfg, progress=False)
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    users = rng.integers(0, model.n_users, size=args.requests)
    ranker = model.ranker
    assert ranker is not None, "the ml100k configuration trains a ranker"
    served, retrieval_only = model.strategies.personalized, model.retrieval_strategies.personalized
    print(
        f"ranker {ranker.config()}; {model.features.n_features} features; C={args.candidates}; "
        f"k={args.k}; {args.requests} single-user requests; torch threads=1"
    )
    for u in users[:50]:  # warm-up
        served.recommend(np.array([u]), args.k)
        retrieval_only.recommend(np.array([u]), args.k)

    added: list[float] = []
    with_ranker: list[float] = []
    for u in users:
        t: dict[str, float] = {}
        start = time.perf_counter()
        served.recommend(np.array([u]), args.k, timings=t)
        with_ranker.append(time.perf_counter() - start)
        added.append(t["features"] + t["ranking"])
    without: list[float] = []
    for u in users:
        start = time.perf_counter()
        retrieval_only.recommend(np.array([u]), args.k)
        without.append(time.perf_counter() - start)
    print(f"ranker added (features + ranking): {_pct(added)}")
    print(f"recommend with ranker:             {_pct(with_ranker)}")
    print(f"recommend retrieval only:          {_pct(without)}")


if __name__ == "__main__":
    main()
