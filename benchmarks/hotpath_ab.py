"""A/B of each hot-path change, in CPU µs per call: ``python -m benchmarks.hotpath_ab [--items N]``.

Each change is timed against the code it replaced (re-created here: the module ranker, the
argpartition selector path, ``np.isin``, the bundle's HNSW beam),
alternating A and B several times and keeping the median. CPU time (``time.process_time``) rather
than wall time, because the machine is shared and wall time mostly measures the neighbours.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np
import torch

import recommender.selector as selector_mod
from benchmarks.catalogue import CatalogueSpec, ensure_catalogue
from model_store import LocalStore
from recommender.candidates import _isin
from recommender.ranking import FeatureRanking
from recommender.selector import TopKRecommendationSelector


def cpu_us(fn: Callable[[int], Any], n: int = 300, rounds: int = 5) -> float:
    fn(0)
    samples = []
    for _ in range(rounds):
        t = time.process_time()
        for i in range(n):
            fn(i)
        samples.append((time.process_time() - t) / n * 1e6)
    return float(np.median(samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--ef-construction", type=int, default=200)
    args = parser.parse_args()
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    cat = ensure_catalogue(CatalogueSpec(n_items=args.items, hnsw_ef_construction=args.ef_construction))
    model, _ = LocalStore(cat.store_root).load()
    u = 5
    stages = model.stages  # the service's own stage objects
    emb, feats, prof = stages.queries.known(np.array([u]))
    cand, cscore, valid = stages.retriever.retrieve(emb, 200, [stages.queries.seen(u)])
    rows = model.features.assemble(feats, prof, cand, cscore)
    x = torch.from_numpy(rows)
    scores = stages.ranking.score(feats, prof, cand, cscore)
    ranking = stages.ranking
    assert isinstance(ranking, FeatureRanking), "the catalogue bundle has a ranker"
    rows_out: list[tuple[str, float, float]] = []

    def ranker_module(_: int) -> Any:
        with torch.inference_mode():
            return model.ranker(x)

    def ranker_frozen(_: int) -> Any:
        with torch.inference_mode():
            return ranking.scorer()(x)

    rows_out.append(
        ("ranking (C=200): module → BatchNorm folded", cpu_us(ranker_module), cpu_us(ranker_frozen))
    )

    def select(_: int) -> Any:
        return TopKRecommendationSelector(10)(scores, mask=~valid)

    saved = selector_mod.SORT_MAX_N
    selector_mod.SORT_MAX_N = 0
    old = cpu_us(select)
    selector_mod.SORT_MAX_N = saved
    rows_out.append(("selection (k=10 of 200): argpartition+loop → one lexsort", old, cpu_us(select)))

    raw_idx = model.index.search(emb, 220)[1][0]
    seen = stages.queries.seen(u)
    rows_out.append(
        (
            "seen-item exclusion (220 vs 20): np.isin → broadcast",
            cpu_us(lambda _: np.isin(raw_idx, seen), n=2000),
            cpu_us(lambda _: _isin(raw_idx, seen), n=2000),
        )
    )

    items = np.random.default_rng(0).integers(0, model.n_items, 300)
    q = model.item_emb[items]
    bundle_ef = model.index.ef_search
    similar_ef = stages.retriever.similar_ef(11)
    rows_out.append(
        (
            f"/similar-items search (k=10): efSearch {bundle_ef} → {similar_ef}",
            cpu_us(lambda i: model.index.search(q[i : i + 1], 11)),
            cpu_us(lambda i: model.index.search(q[i : i + 1], 11, similar_ef)),
        )
    )

    print(f"CPU µs per call, {args.items} items (median of 5 rounds)")
    print("| change | before µs | after µs | saved |\n|---|---|---|---|")
    for label, before, after in rows_out:
        print(f"| {label} | {before:.0f} | {after:.0f} | {1 - after / before:.0%} |")


if __name__ == "__main__":
    main()
