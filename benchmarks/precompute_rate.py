"""Precompute rate (keys/s) and the size of one stored list, packed vs JSON.

    .venv/bin/python -m benchmarks.precompute_rate --store var/store        # a published model
    .venv/bin/python -m benchmarks.precompute_rate --users 100000 --items 10000

Without ``--store`` the model is built directly from random embeddings (no training): an HNSW
index over the items and an untrained ``DeepFeatureRanking`` of the default shape, so retrieval
and ranking cost what they cost for a trained model of that size. Writes into its own
redis-server on a free port, which it stops afterwards.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import orjson
import redis
import torch

from benchmarks.procs import RedisProcess
from listcache import encode_list
from listcache.precompute import PrecomputeConfig, precompute
from listcache.redis_backend import RedisBackend
from model_store import LocalStore
from recommender.features import FeatureAssembler
from recommender.idmap import IdMap
from recommender.model import RecommenderModel
from recommender.ranker import DeepFeatureRanking
from recommender.retrieval import ItemIndex
from service.settings import Settings


def random_model(n_users: int, n_items: int, dim: int, seed: int = 0) -> RecommenderModel:
    """A servable model of the requested size, from random embeddings and features."""
    rng = np.random.default_rng(seed)
    user_emb = rng.normal(size=(n_users, dim)).astype(np.float32) / np.sqrt(dim)
    item_emb = rng.normal(size=(n_items, dim)).astype(np.float32) / np.sqrt(dim)
    n_tags = 8
    tags = np.eye(n_tags, dtype=np.float32)[rng.integers(0, n_tags, n_items)]
    features = FeatureAssembler(
        user_features=rng.normal(size=(n_users, 5)).astype(np.float32),
        item_features=np.concatenate([tags, rng.uniform(size=(n_items, 2)).astype(np.float32)], axis=1),
        user_profile=rng.dirichlet(np.ones(n_tags), n_users).astype(np.float32),
        item_tags=tags,
    )
    seen_per_user = 20
    seen = np.sort(rng.integers(0, n_items, (n_users, seen_per_user)), axis=1)
    ranker = DeepFeatureRanking(features.n_features)
    return RecommenderModel(
        version="random",
        user_ids=IdMap(f"u{u}" for u in range(n_users)),
        item_ids=IdMap(f"i{i}" for i in range(n_items)),
        user_emb=user_emb,
        item_emb=item_emb,
        index=ItemIndex.build(item_emb, "hnsw"),
        features=features,
        ranker=ranker.eval(),
        seen_indptr=np.arange(0, n_users * seen_per_user + 1, seen_per_user, dtype=np.int64),
        seen_indices=seen.reshape(-1).astype(np.int64),
        popularity=rng.uniform(size=n_items).astype(np.float32),
    )


def encoding_sizes(model: RecommenderModel, n: int) -> dict[str, float]:
    """Mean bytes of one top-n list under each candidate encoding, over a sample of users."""
    users = np.arange(min(200, model.n_users))
    sizes: dict[str, list[int]] = {
        "packed int32+float32 (chosen)": [],
        "JSON [[ids],[scores]]": [],
        "JSON objects": [],
    }
    try:
        import msgpack  # optional: only for the comparison
    except ImportError:
        msgpack = None
    if msgpack is not None:
        sizes["msgpack [[ids],[scores]]"] = []
    for rec in model.recommend(users, n):
        ids = model.item_ids.externals(rec.items)
        scores = rec.scores.tolist()
        sizes["packed int32+float32 (chosen)"].append(len(encode_list(rec.items, rec.scores)))
        sizes["JSON [[ids],[scores]]"].append(len(orjson.dumps([ids, scores])))
        sizes["JSON objects"].append(
            len(orjson.dumps([{"item_id": i, "score": s} for i, s in zip(ids, scores, strict=True)]))
        )
        if msgpack is not None:
            sizes["msgpack [[ids],[scores]]"].append(len(msgpack.packb([ids, scores])))
    return {name: float(np.mean(v)) for name, v in sizes.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=None, help="use this store's CURRENT model")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=32)
    parser.add_argument("--n", type=int, default=100, help="list length N")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=1, help="torch/FAISS threads (the machine is shared)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)

    started = time.perf_counter()
    if args.store:
        model, _ = LocalStore(args.store).load()
        what = f"model {model.version} from {args.store}"
    else:
        model = random_model(args.users, args.items, args.dim)
        what = f"random-embedding model, dim {args.dim}"
    model.n_candidates = Settings(_env_file=None).n_candidates or model.n_candidates
    print(
        f"{what}: {model.n_users:,} users, {model.n_items:,} items, "
        f"{model.n_candidates} candidates (built in {time.perf_counter() - started:.1f} s)"
    )
    for name, size in encoding_sizes(model, args.n).items():
        print(f"  one top-{args.n} list as {name:<32} {size:8.0f} bytes")

    with tempfile.TemporaryDirectory(prefix="precompute-bench-") as tmp:
        server = RedisProcess.on_free_port(Path(tmp))
        try:
            client = redis.Redis.from_url(server.url, socket_timeout=60)
            config = PrecomputeConfig(n=args.n, prefix="bench", batch_size=args.batch_size)
            cpu = time.process_time()
            report = precompute(model, RedisBackend(client), config, progress=True)
            cpu = time.process_time() - cpu
            used = client.info("memory")["used_memory"]
            client.close()
        finally:
            server.kill()
    print(
        f"precompute: {report.keys:,} keys in {report.seconds:.1f} s = {report.keys_per_s:,.0f} keys/s "
        f"({args.threads} thread(s)); {report.keys / cpu:,.0f} keys per CPU-second of this process "
        f"(wall rate depends on the machine's load); {report.bytes / report.keys:.0f} bytes/list, "
        f"Redis used_memory {used / 2**20:.0f} MiB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
