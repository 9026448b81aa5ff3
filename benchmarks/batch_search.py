"""HNSW search per query, batched or not, on 1 or 2 OpenMP threads, with the other core idle or
busy: ``python -m benchmarks.batch_search --items 100000``.

Why: the micro-batcher's worker thread searches while the event loop runs Python on the other
core. Whether FAISS should spread a batch over both cores (OpenMP across the queries) then
depends on that core being free; ``busy`` runs a pure-Python loop in a second thread (as a busy
event loop does) during the measurement. And every GIL-releasing call (the search) must take
the GIL back from that thread afterwards, which takes up to ``sys.getswitchinterval()`` (5 ms by
default): ``--switch-interval`` compares values.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

import faiss
import numpy as np

from benchmarks.catalogue import DEFAULT_DIR, CatalogueSpec, ensure_catalogue
from model_store import LocalStore


def _spin(stop: threading.Event) -> None:
    x = 0
    while not stop.is_set():
        for i in range(1000):
            x += i


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--calls", type=int, default=60)
    ap.add_argument("--cache-dir", default=str(DEFAULT_DIR))
    ap.add_argument(
        "--switch-interval", type=float, nargs="+", default=[0.005, 0.0002],
        help="sys.setswitchinterval values (s): how long a thread may keep the GIL from a waiting one",
    )  # fmt: skip
    args = ap.parse_args()
    cat = ensure_catalogue(CatalogueSpec(n_items=args.items), args.cache_dir)
    model, _ = LocalStore(cat.store_root).load()
    index, queries = model.stages.retriever.index, model.stages.queries
    rng = np.random.default_rng(0)
    print(f"HNSW search of 220 per query, {args.items} items: wall µs per query")
    print("| other core | GIL switch interval | OpenMP threads | batch 1 | batch 8 |\n|---|---|---|---|---|")
    for busy, interval in [(False, args.switch_interval[0])] + [(True, i) for i in args.switch_interval]:
        sys.setswitchinterval(interval)
        stop = threading.Event()
        spinner = threading.Thread(target=_spin, args=(stop,), daemon=True) if busy else None
        if spinner is not None:
            spinner.start()
        for threads in (1, 2):
            faiss.omp_set_num_threads(threads)
            cells = []
            for batch in (1, 8):
                embs = [queries.known(rng.integers(0, cat.spec.n_users, batch))[0] for _ in range(args.calls)]
                index.search(embs[0], 220)
                wall = time.perf_counter()
                for e in embs:
                    index.search(e, 220)
                n = args.calls * batch
                wall_us = (time.perf_counter() - wall) / n * 1e6
                cells.append(f"{wall_us:.0f}")
            other = "busy (Python thread)" if busy else "idle"
            print(f"| {other} | {interval * 1e3:g} ms | {threads} | {cells[0]} | {cells[1]} |")
        stop.set()
        if spinner is not None:
            spinner.join()


if __name__ == "__main__":
    main()
