"""How long a hot swap takes for a large bundle: load + verify + warm, off the request path.

Builds a synthetic 100k-item model (random embeddings, a real HNSW index, a real ranker; no
training: the swap cost depends on sizes, not on what was learned), publishes it to a temporary
local store, then times what the service does on a new CURRENT (``ModelHolder.load_current``):
read and sha256-check every file, decode, run the warm-up queries. Prints figures; asserts
nothing.

    nice .venv/bin/python benchmarks/swap_time.py [--items 100000] [--users 50000] [--dim 32]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from model_store import LocalStore
from model_store.manifest import new_version_id
from recommender.features import FeatureAssembler
from recommender.idmap import IdMap
from recommender.model import RecommenderModel
from recommender.ranker import DeepFeatureRanking
from recommender.retrieval import HNSWParams, ItemIndex
from service.metrics import Metrics
from service.state import ModelHolder, warm_up


def synthetic_model(n_users: int, n_items: int, dim: int, seed: int = 0) -> RecommenderModel:
    rng = np.random.default_rng(seed)
    item_emb = rng.normal(size=(n_items, dim)).astype(np.float32) / np.sqrt(dim)
    user_emb = rng.normal(size=(n_users, dim)).astype(np.float32) / np.sqrt(dim)
    # Serving HNSW parameters except a cheaper efConstruction: the build is not what we time,
    # and m (which sets the index size) stays at the default.
    index = ItemIndex.build(item_emb, "hnsw", HNSWParams(ef_construction=40))
    n_tags = 8
    tags = np.eye(n_tags, dtype=np.float32)[rng.integers(0, n_tags, n_items)]
    features = FeatureAssembler(
        user_features=rng.normal(size=(n_users, 4)).astype(np.float32),
        item_features=rng.normal(size=(n_items, 5)).astype(np.float32),
        user_profile=rng.dirichlet(np.ones(n_tags), n_users).astype(np.float32),
        item_tags=tags,
    )
    seen_per_user = 20
    indptr = np.arange(0, (n_users + 1) * seen_per_user, seen_per_user, dtype=np.int64)
    indices = rng.integers(0, n_items, n_users * seen_per_user).astype(np.int64)
    return RecommenderModel(
        version=new_version_id(),
        user_ids=IdMap(f"u{i}" for i in range(n_users)),
        item_ids=IdMap(f"i{i}" for i in range(n_items)),
        user_emb=user_emb,
        item_emb=item_emb,
        index=index,
        features=features,
        ranker=DeepFeatureRanking(features.n_features, hidden_units=64, num_layers=2).eval(),
        seen_indptr=indptr,
        seen_indices=indices,
        popularity=np.bincount(indices, minlength=n_items).astype(np.float32),
        item_attributes={"category": [[f"c{int(t)}"] for t in tags.argmax(1)]},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup-queries", type=int, default=8)
    args = parser.parse_args()
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    model = synthetic_model(args.users, args.items, args.dim)
    print(
        f"built {args.items} items x {args.users} users, dim {args.dim} in {time.perf_counter() - t0:.1f} s"
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = LocalStore(Path(tmp) / "store")
        t0 = time.perf_counter()
        version = store.publish(model)
        publish_s = time.perf_counter() - t0
        files = store.manifest(version)["files"]
        size_mb = sum(e["size"] for e in files.values()) / 1e6
        print(f"bundle: {len(files)} files, {size_mb:.1f} MB; publish {publish_s:.2f} s")
        del model

        load, warm, total = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            loaded, _ = store.load(version)
            t1 = time.perf_counter()
            warm_up(loaded, args.warmup_queries)
            t2 = time.perf_counter()
            load.append(t1 - t0)
            warm.append(t2 - t1)
            del loaded
            holder = ModelHolder(str(store.root), Metrics(), warmup_queries=args.warmup_queries)
            result = holder.load_current()
            assert result.swapped, result
            total.append(result.seconds or 0.0)
            del holder
        _report("load + verify (sha256 of every file)", load)
        _report(f"warm-up ({args.warmup_queries} queries of each kind)", warm)
        _report("swap as the service does it (load+verify+warm)", total)


def _report(what: str, xs: list[float]) -> None:
    runs = ", ".join(f"{x:.3f}" for x in xs)
    print(f"{what:<48} median {statistics.median(xs):.3f} s  (runs: {runs})")


if __name__ == "__main__":
    main()
