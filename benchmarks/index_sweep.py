"""Index parameter sweep: recall@100 and single-query speed per index kind and parameters.

``python -m benchmarks.index_sweep --items 100000 --configs hnsw-ip:m=32 hnsw:m=32 ivfpq:pq_m=32``

Builds each configuration over the same embeddings (the bench catalogue of ``--items`` items, or
a trained bundle's with ``--bundle``), with every core (``faiss`` OpenMP), then measures recall@100
against exact ``IndexFlatIP`` and queries/s per core (one query per call, one thread, CPU time:
see :mod:`benchmarks.retrieval`) at each beam (efSearch for HNSW, nprobe for IVF-PQ). The exact
search's queries/s is measured in the same run, so the speedups are same-run ratios. Built
indexes are cached under ``$RECSERVE_BENCH_DIR/sweep/`` (default ``var/bench``; a 1M graph takes
minutes to build). Prints a markdown table (docs/performance-notes.md quotes it) and, with
``--json``, the rows as JSON.

Config syntax: ``KIND:key=value,…`` with KIND ``hnsw`` (MIPS→L2 graph), ``hnsw-ip`` (the older
inner-product graph), ``ivfpq`` (spherical IVF, the default) or ``ivfpq-l2`` (MIPS→L2); ``bundle`` is the
index the bundle (``--bundle``/``--catalogue``) serves, ``bundle-sq8[:refine=R]`` the same graph
walked over 8-bit codes with an exact re-score (:class:`GraphOverSQ8`). Keys are the fields of
``HNSWParams`` / ``IVFPQParams`` (``m``, ``efc`` for ef_construction; ``nlist``, ``pq_m``, ``refine``).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from benchmarks.catalogue import DEFAULT_DIR, CatalogueSpec, embeddings, ensure_catalogue
from benchmarks.retrieval import K, _qps, recall_at
from model_store import LocalStore
from recommender.retrieval import HNSWParams, ItemIndex, IVFPQParams


def parse_config(text: str) -> tuple[str, HNSWParams | IVFPQParams | None]:
    kind, _, rest = text.partition(":")
    if kind in ("bundle", "bundle-sq8"):
        return kind, None
    values = {k: int(v) for k, v in (kv.split("=") for kv in rest.split(",") if kv)}
    if "efc" in values:
        values["ef_construction"] = values.pop("efc")
    if kind in ("hnsw", "hnsw-ip"):
        return "hnsw", HNSWParams(**values, mips_transform=kind == "hnsw")
    if kind in ("ivfpq", "ivfpq-l2"):
        return "ivfpq", IVFPQParams(**values, mips_transform=kind == "ivfpq-l2")
    raise SystemExit(f"unknown index kind in config {text!r}")


class GraphOverSQ8:
    """The bundle's HNSW graph walked over 8-bit scalar-quantised vectors (64 B per item instead
    of 256 B: a quarter of the memory traffic per distance), the ``refine``·k best re-scored
    exactly from the float embeddings. Same graph, so any recall difference is the codes'."""

    def __init__(self, hnsw_index: Any, item: np.ndarray, refine: int = 1) -> None:
        d = item.shape[1]
        self.sq = faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT)
        self.sq.train(item)
        self.sq.add(item)
        self.index = faiss.IndexHNSW(self.sq, hnsw_index.hnsw.nb_neighbors(1))
        self.index.hnsw = hnsw_index.hnsw  # a copy of the links
        self.index.ntotal = hnsw_index.ntotal
        self.item, self.refine, self.ef = item, refine, int(hnsw_index.hnsw.efSearch)

    def set_ef_search(self, ef: int) -> None:
        self.ef = ef

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        wide = k * self.refine
        params = faiss.SearchParametersHNSW(efSearch=max(self.ef, wide))
        _, idx = self.index.search(np.ascontiguousarray(q, np.float32), wide, params=params)
        scores = np.einsum("qkd,qd->qk", self.item[np.maximum(idx, 0)], q)
        scores[idx < 0] = -np.inf
        top = np.argsort(-scores, axis=1)[:, :k]
        return np.take_along_axis(scores, top, 1), np.take_along_axis(idx, top, 1)


def load_embeddings(args: argparse.Namespace) -> tuple[str, np.ndarray, np.ndarray]:
    """(label, queries, item embeddings): the bench catalogue's, or a trained bundle's."""
    if args.bundle is not None:
        user = np.load(args.bundle / "user_emb.npy")
        item = np.load(args.bundle / "item_emb.npy")
        return f"bundle-{args.bundle.name}", user, item
    spec = CatalogueSpec(n_items=args.items, seed=args.seed)
    user, item = embeddings(spec)
    return f"items-{args.items}-seed-{args.seed}", user, item


def built(kind: str, params: Any, item: np.ndarray, folder: Path, name: str) -> tuple[ItemIndex, float]:
    """The index for ``name`` from the cache folder, or built now (seconds of wall time, all cores)."""
    path = folder / f"{name}.faiss"
    meta = folder / f"{name}.json"
    if path.is_file() and meta.is_file():
        info = json.loads(meta.read_text())
        raw = faiss.read_index(str(path))
        index = ItemIndex(
            raw, kind, mips_transform=info["mips_transform"], vectors=item, refine=info.get("refine", 4)
        )
        return index, info["build_seconds"]
    faiss.omp_set_num_threads(args_threads or os.cpu_count() or 1)
    start = time.perf_counter()
    index = ItemIndex.build(item, kind, params)
    seconds = time.perf_counter() - start
    folder.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index.index, str(path))
    meta.write_text(json.dumps({"build_seconds": seconds, **index.params()}))
    return index, seconds


args_threads: int | None = None


def sweep(args: argparse.Namespace) -> list[dict[str, Any]]:
    label, user, item = load_embeddings(args)
    if args.catalogue:  # the cached bench catalogue built with the production defaults
        cat = ensure_catalogue(CatalogueSpec(n_items=args.items, seed=args.seed), args.cache_dir)
        store = LocalStore(cat.store_root)
        args.bundle = store.bundle_path(store.current_version())
    rng = np.random.default_rng(args.seed + 2)
    queries = np.ascontiguousarray(user[rng.choice(len(user), min(args.queries, len(user)), replace=False)])
    exact = ItemIndex.build(item, "flat")
    faiss.omp_set_num_threads(os.cpu_count() or 1)
    _, truth = exact.search(queries, K)
    faiss.omp_set_num_threads(1)
    flat_qps = _qps(lambda q: exact.search(q, args.k), queries, args.budget)
    rows: list[dict[str, Any]] = []
    print(f"{label}: {item.shape[0]} items × {item.shape[1]}; exact IndexFlatIP {flat_qps:.0f} q/s per core")
    for text in args.configs:
        kind, params = parse_config(text)
        if kind == "bundle-sq8":  # the bundle's graph over 8-bit codes (see GraphOverSQ8)
            if args.bundle is None:
                raise SystemExit("config 'bundle-sq8' needs --bundle or --catalogue")
            raw = faiss.read_index(str(args.bundle / "index.faiss"))
            start = time.perf_counter()
            index = GraphOverSQ8(raw, item, refine=int(text.partition("refine=")[2] or 1))
            seconds, kind = time.perf_counter() - start, "hnsw"
            del raw
        elif kind == "bundle":  # the index the bundle serves, as published
            if args.bundle is None:
                raise SystemExit("config 'bundle' needs --bundle or --catalogue")
            meta = json.loads((args.bundle / "model.json").read_text())
            kind = meta["index_kind"]
            index = ItemIndex(faiss.read_index(str(args.bundle / "index.faiss")), kind, vectors=item)
            seconds = float(json.loads((args.bundle / "manifest.json").read_text())["metrics"].get(
                "hnsw_build_seconds", float("nan")))  # fmt: skip
            text = f"bundle ({kind}, M={index.index.hnsw.nb_neighbors(1)})" if kind == "hnsw" else "bundle"
        else:
            folder = args.cache_dir / "sweep" / label
            index, seconds = built(kind, params, item, folder, text.replace(":", "_"))
        faiss.omp_set_num_threads(1)
        nbytes = faiss.serialize_index(index.index).nbytes
        beams = args.ef if kind == "hnsw" else args.nprobe
        for beam in beams:
            if kind == "hnsw":
                index.set_ef_search(beam)
            else:
                index.set_nprobe(beam)
            _, approx = index.search(queries, args.k)  # recall of the exact top 100 among k
            qps = _qps(lambda q, index=index: index.search(q, args.k), queries, args.budget)
            row = {
                "source": label, "config": text, "beam": beam, "k": args.k,
                "recall@100": recall_at(approx, truth),
                "qps": qps, "speedup": qps / flat_qps, "build_s": seconds,
                "bytes_per_item": nbytes / item.shape[0],
            }  # fmt: skip
            rows.append(row)
            print(
                f"| {text} | {'ef' if kind == 'hnsw' else 'nprobe'}={beam} | {row['recall@100']:.3f} | "
                f"{qps:.0f} | {row['speedup']:.1f}× | {seconds:.0f} | {row['bytes_per_item']:.0f} |",
                flush=True,
            )
    return rows


def main() -> None:
    global args_threads
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bundle", type=Path, default=None, help="a bundle directory: its trained embeddings")
    ap.add_argument(
        "--catalogue", action="store_true",
        help="the cached bench catalogue of --items (production defaults; built if missing) as --bundle",
    )  # fmt: skip
    ap.add_argument("--configs", nargs="+", default=["hnsw-ip:m=32", "hnsw:m=32", "ivfpq:pq_m=32"])
    ap.add_argument("--ef", type=int, nargs="+", default=[128, 256, 512])
    ap.add_argument("--nprobe", type=int, nargs="+", default=[32, 64, 128])
    ap.add_argument(
        "--k", type=int, default=K,
        help="results per search (default 100); recall is of the exact top 100 among them: "
        "/recommend asks for C + seen ≈ 220, and HNSW's beam is never below k",
    )  # fmt: skip
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--budget", type=float, default=1.5, help="CPU seconds per q/s measurement")
    ap.add_argument("--threads", type=int, default=None, help="build threads (default: every core)")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    args_threads = args.threads
    print("| config | beam | recall@100 | q/s per core | vs exact | build s | bytes/item |")
    print("|---|---|---|---|---|---|---|")
    rows = sweep(args)
    if args.json:
        print(json.dumps(rows))


if __name__ == "__main__":
    main()
