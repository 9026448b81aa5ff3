"""Synthetic catalogues at benchmark scale, published as ordinary bundles and cached on disk.

Why not the training pipeline: training MF on a million items is neither needed nor affordable
here; what the serving path's speed depends on is the *shape* of the data (embedding dimension
and norm distribution, candidate count, ranker size), not what the model learned. So embeddings
are drawn directly with a realistic structure: directions clustered around topic centres (MF
embeddings cluster by genre/category), a decaying spectrum (trained embeddings use some directions
far more than others; see ``spectrum_decay``) and log-normal norms (popular items get long vectors
under inner-product MF). Approximate search quality depends on all three: an isotropic cloud is
the hardest case for HNSW and a single-norm one hides the inner-product skew.

Building the HNSW graph for 1M × 64 takes minutes on two cores, so every built catalogue is kept
under ``var/bench/items-<N>-seed-<S>/`` (a :class:`~model_store.LocalStore` plus ``bench.json``)
and reused by later runs with the same size, seed and HNSW parameters.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import torch

from model_store import LocalStore
from model_store.manifest import new_version_id
from recommender.features import FeatureAssembler
from recommender.idmap import IdMap
from recommender.model import RecommenderModel
from recommender.ranker import DeepFeatureRanking
from recommender.retrieval import HNSWParams, ItemIndex

DEFAULT_DIR = Path(os.environ.get("RECSERVE_BENCH_DIR", "var/bench"))  # shared cache: set it to one folder
DIM = 64
N_TAGS = 8


@dataclass(frozen=True)
class CatalogueSpec:
    """What a cached catalogue is keyed by: anything that changes its bytes belongs here."""

    n_items: int
    n_users: int = 10_000
    dim: int = DIM
    n_clusters: int = 256
    # Singular values of the embedding matrix fall off as (i+1)^-decay (in a random basis): 0.3
    # gives ~38 effective dimensions of 64, like this project's trained 64-d MF embeddings (36);
    # 0 is the isotropic worst case, which no trained embedding resembles.
    spectrum_decay: float = 0.3
    seen_per_user: int = 20
    n_candidates: int = 200
    seed: int = 0
    hnsw_m: int = HNSWParams.m  # the production defaults (recommender/retrieval.py)
    hnsw_ef_construction: int = HNSWParams.ef_construction
    hnsw_ef_search: int = HNSWParams.ef_search
    # > 0: the ranker also reads the co-occurrence group (recommender/cooc.py), M neighbours per
    # item drawn by popularity, so the stage table prices the group.
    cooc_neighbours: int = 0

    @property
    def hnsw(self) -> HNSWParams:
        return HNSWParams(
            m=self.hnsw_m, ef_construction=self.hnsw_ef_construction, ef_search=self.hnsw_ef_search
        )

    def key(self) -> str:
        """Folder name: size and seed, plus a digest of any other field that is not the default."""
        base = f"items-{self.n_items}-seed-{self.seed}"
        rest = {k: v for k, v in asdict(self).items() if k not in ("n_items", "seed")}
        default = {k: v for k, v in asdict(CatalogueSpec(0)).items() if k not in ("n_items", "seed")}
        if rest == default:
            return base
        return f"{base}-{hashlib.sha1(json.dumps(rest, sort_keys=True).encode()).hexdigest()[:8]}"


@dataclass
class Catalogue:
    """A built (or reloaded) catalogue: its store and what building it cost."""

    spec: CatalogueSpec
    store_root: Path
    build_seconds: float
    index_bytes: int
    embedding_bytes: int

    @property
    def item_ids(self) -> list[str]:
        return item_ids(self.spec.n_items)

    @property
    def user_ids(self) -> list[str]:
        return [f"u{u}" for u in range(self.spec.n_users)]


def item_ids(n: int) -> list[str]:
    return [f"i{i}" for i in range(n)]


def embeddings(spec: CatalogueSpec) -> tuple[np.ndarray, np.ndarray]:
    """(user_emb, item_emb) float32: clustered directions, log-normal norms (see module doc)."""
    rng = np.random.default_rng(spec.seed)
    d = spec.dim
    centres = rng.standard_normal((spec.n_clusters, d)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis, _ = np.linalg.qr(rng.standard_normal((d, d)))
    shape = ((np.arange(d) + 1.0) ** -spec.spectrum_decay)[:, None] * basis.T  # scale, then rotate
    shape = shape.astype(np.float32)

    def draw(n: int, spread: float, norm_sigma: float) -> np.ndarray:
        out = np.empty((n, d), np.float32)
        step = 1 << 17  # chunks keep the float64 temporaries small at 1M rows
        for lo in range(0, n, step):
            m = min(step, n - lo)
            x = centres[rng.integers(0, spec.n_clusters, m)]
            x = x + spread * rng.standard_normal((m, d)).astype(np.float32) / np.sqrt(d)
            x = x @ shape
            x /= np.linalg.norm(x, axis=1, keepdims=True)
            x *= rng.lognormal(0.0, norm_sigma, (m, 1)).astype(np.float32)
            out[lo : lo + m] = x
        return out

    item_emb = draw(spec.n_items, spread=0.8, norm_sigma=0.35)
    user_emb = draw(spec.n_users, spread=1.0, norm_sigma=0.25)
    return user_emb, item_emb


class BuildUnfinished(Exception):
    """The HNSW build stopped at its time budget; its progress is on disk for the next run."""


CHUNK = 50_000


def build_index(
    spec: CatalogueSpec, item_emb: np.ndarray, folder: Path, budget_s: float | None = None, log: Any = print
) -> tuple[ItemIndex, float]:
    """The HNSW index for ``spec``, with every core, resumable: (index, build seconds in total).

    Items are added in chunks of 50k (faiss inserts each chunk in parallel; the graph is the
    same as one ``add`` of everything). With ``budget_s``, the partial graph is written to
    ``folder/partial.faiss`` once the budget is spent and :class:`BuildUnfinished` is raised; the
    next call resumes from it. That is how a 1M build that takes longer than one turn of the
    shared machine's heavy-job lock is split into turns.
    """
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    partial, meta_path = folder / "partial.faiss", folder / "partial.json"
    spent = 0.0
    done = json.loads(meta_path.read_text()) if meta_path.is_file() and partial.is_file() else {}
    if done.get("spec") == asdict(spec):
        index = ItemIndex(faiss.read_index(str(partial)), "hnsw")
        spent = done["build_seconds"]
        log(f"  resuming the build at {index.n_items} of {spec.n_items} items ({spent:.0f} s spent)")
    else:
        index = ItemIndex.build(item_emb[:1], "hnsw", spec.hnsw)
    start = time.perf_counter()
    while index.n_items < spec.n_items:
        lo = index.n_items
        index.index.add(np.ascontiguousarray(item_emb[lo : lo + CHUNK], np.float32))
        elapsed = time.perf_counter() - start
        if budget_s is not None and elapsed > budget_s and index.n_items < spec.n_items:
            folder.mkdir(parents=True, exist_ok=True)
            faiss.write_index(index.index, str(partial))
            meta_path.write_text(json.dumps({"spec": asdict(spec), "build_seconds": spent + elapsed}))
            raise BuildUnfinished(f"{index.n_items} of {spec.n_items} items in the graph ({elapsed:.0f} s)")
    seconds = spent + time.perf_counter() - start
    if budget_s is not None and partial.is_file():  # finished: keep it until the bundle is published
        faiss.write_index(index.index, str(partial))
        meta_path.write_text(json.dumps({"spec": asdict(spec), "build_seconds": seconds}))
    return index, seconds


def build_model(
    spec: CatalogueSpec, folder: Path, budget_s: float | None = None, log: Any = print
) -> tuple[RecommenderModel, float]:
    """The model for ``spec`` and the seconds its HNSW build took (random feature tables and ranker)."""
    rng = np.random.default_rng(spec.seed + 1)
    user_emb, item_emb = embeddings(spec)
    index, build_seconds = build_index(spec, item_emb, folder, budget_s, log)

    cat = rng.integers(0, N_TAGS, spec.n_items)
    item_tags = np.eye(N_TAGS, dtype=np.float32)[cat]
    popularity = np.floor(rng.pareto(1.2, spec.n_items) * 10).astype(np.float32)
    item_features = np.concatenate(
        [item_tags, rng.uniform(0, 1, (spec.n_items, 1)), np.log1p(popularity)[:, None]], axis=1
    )
    user_features = np.concatenate(
        [np.eye(4, dtype=np.float32)[rng.integers(0, 4, spec.n_users)], rng.uniform(0, 1, (spec.n_users, 1))],
        axis=1,
    )
    user_profile = rng.dirichlet(np.full(N_TAGS, 0.3), spec.n_users).astype(np.float32)
    cooc: dict[str, np.ndarray] = {}
    if m := spec.cooc_neighbours:
        crng = np.random.default_rng(spec.seed + 7)  # own stream: users and seen items stay as without
        p = (popularity + 1) / (popularity + 1).sum()
        cooc["cooc_neighbours"] = crng.choice(spec.n_items, (spec.n_items, m), p=p).astype(np.int32)
        weights = np.sort(crng.uniform(0, 1, (spec.n_items, m)), axis=1)[:, ::-1]
        cooc["cooc_weights"] = weights.astype(np.float32)
    features = FeatureAssembler(user_features, item_features, user_profile, item_tags, **cooc)

    torch.manual_seed(spec.seed)
    ranker = DeepFeatureRanking(features.n_features)  # the default size: 2 × 64 hidden units
    ranker.eval()

    seen = rng.integers(0, spec.n_items, (spec.n_users, spec.seen_per_user))
    seen.sort(axis=1)
    indptr = np.arange(0, spec.n_users * spec.seen_per_user + 1, spec.seen_per_user, dtype=np.int64)
    model = RecommenderModel(
        version=new_version_id(),
        user_ids=IdMap(f"u{u}" for u in range(spec.n_users)),
        item_ids=IdMap(item_ids(spec.n_items)),
        user_emb=user_emb,
        item_emb=item_emb,
        index=index,
        features=features,
        ranker=ranker,
        seen_indptr=indptr,
        seen_indices=seen.reshape(-1).astype(np.int64),
        popularity=popularity,
        n_candidates=spec.n_candidates,
        metadata={"dataset": f"bench-{spec.key()}"},
    )
    return model, build_seconds


def ensure_catalogue(
    spec: CatalogueSpec, root: Path = DEFAULT_DIR, budget_s: float | None = None, log: Any = print
) -> Catalogue:
    """The cached catalogue for ``spec``, building and publishing it first if it is missing or stale.

    ``budget_s``: stop the HNSW build after this many seconds (:class:`BuildUnfinished`); a
    later call resumes it (see :func:`build_index`).
    """
    folder = Path(root) / spec.key()
    meta_path = folder / "bench.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("spec") == asdict(spec) and (folder / "store" / "CURRENT").is_file():
            return Catalogue(
                spec, folder / "store", meta["build_seconds"], meta["index_bytes"], meta["embedding_bytes"]
            )
    log(
        f"building catalogue {spec.key()} (HNSW m={spec.hnsw_m}, efConstruction={spec.hnsw_ef_construction})…"
    )
    model, build_seconds = build_model(spec, folder, budget_s, log)
    store = LocalStore(folder / "store")
    version = store.publish(model, metrics={"hnsw_build_seconds": build_seconds})
    bundle = store.bundle_path(version)
    cat = Catalogue(
        spec,
        folder / "store",
        build_seconds,
        index_bytes=(bundle / "index.faiss").stat().st_size,
        embedding_bytes=(bundle / "item_emb.npy").stat().st_size + (bundle / "user_emb.npy").stat().st_size,
    )
    meta_path.write_text(
        json.dumps(
            {
                "spec": asdict(spec),
                "build_seconds": build_seconds,
                "index_bytes": cat.index_bytes,
                "embedding_bytes": cat.embedding_bytes,
            },
            indent=1,
        )
    )
    (folder / "partial.faiss").unlink(missing_ok=True)  # a resumed build's progress: now published
    (folder / "partial.json").unlink(missing_ok=True)
    log(f"  built in {build_seconds:.1f} s, published {version}")
    return cat


def _current(cat: Catalogue) -> str:
    return (cat.store_root / "CURRENT").read_text().strip()


def main() -> None:
    """``python -m benchmarks.catalogue --items 1000000 --budget 540``: build (or resume) and cache.

    Exit status 3 when the budget ran out before the end (rerun the same command to continue).
    """
    import argparse
    import sys

    ap = argparse.ArgumentParser(description="build and cache a bench catalogue (resumable)")
    ap.add_argument("--items", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--budget", type=float, default=None, help="seconds of building before stopping")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--compressed", action="store_true", help="also build the IVF-PQ option beside it")
    args = ap.parse_args()
    try:
        cat = ensure_catalogue(CatalogueSpec(n_items=args.items, seed=args.seed), args.cache_dir, args.budget)
    except BuildUnfinished as exc:
        print(f"unfinished: {exc}; run again to continue", file=sys.stderr)
        sys.exit(3)
    if args.compressed:
        from benchmarks.retrieval import compressed_index

        _, seconds = compressed_index(
            cat, np.load(cat.store_root / "versions" / _current(cat) / "item_emb.npy")
        )
        print(f"IVF-PQ option built in {seconds:.0f} s")
    per_item = cat.index_bytes / cat.spec.n_items
    print(f"{cat.store_root}: built in {cat.build_seconds:.0f} s, {per_item:.0f} index bytes per item")


if __name__ == "__main__":
    main()
