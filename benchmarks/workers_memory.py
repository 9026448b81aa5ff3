"""Memory of `--workers 1` vs `2`, bundle copied vs mapped: ``python -m benchmarks.workers_memory``.

``recserve serve --workers N`` loads the model in its supervisor and forks the workers, so the
model, the id maps and the interpreter's heap are shared copy-on-write (``recserve/workers.py``);
RSS counts those pages once per process (supervisor included), PSS once in total.

For each setting, starts the service on a bench catalogue, answers 200 ``/recommend`` and 200
``/similar-items`` requests (so the pages a request path touches are in), then reads the process
tree's RSS and PSS (``benchmarks.procs``). PSS splits a page shared by two workers between them,
so its total is the memory really held; RSS counts a shared page once per worker. Memory does not
depend on the machine's load, unlike the request rates.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.catalogue import DEFAULT_DIR, CatalogueSpec, ensure_catalogue
from benchmarks.procs import proc_pss_mb, proc_rss_mb
from benchmarks.service import ServerProcess, _warm, endpoint_paths


def measure(spec: CatalogueSpec, cache_dir: Path) -> list[dict[str, float | int | bool]]:
    n_items = spec.n_items
    cat = ensure_catalogue(spec, cache_dir, log=print)
    paths = endpoint_paths(cat)
    rows: list[dict[str, float | int | bool]] = []
    for workers, mmap in ((1, False), (1, True), (2, False), (2, True)):
        env = {"RECSERVE_CACHE_SIZE": "0", "RECSERVE_MMAP_BUNDLE": str(mmap).lower()}
        with ServerProcess(cat.store_root, None, extra_env=env, workers=workers) as server:
            for name in ("recommend", "similar"):
                _warm(server, paths[name], limit=200)
            rss, _ = proc_rss_mb(server.pid)
            rows.append({"workers": workers, "mmap": mmap, "rss_mb": rss, "pss_mb": proc_pss_mb(server.pid)})
    raw = (cat.embedding_bytes + cat.index_bytes) / 2**20
    print(f"{n_items} items; embeddings + index files {raw:.0f} MB")
    print("| workers | bundle | RSS MB (all processes) | PSS MB (all processes) |\n|---|---|---|---|")
    for r in rows:
        kind = "memory-mapped" if r["mmap"] else "copied"
        print(f"| {r['workers']} | {kind} | {r['rss_mb']:.0f} | {r['pss_mb']:.0f} |")
    for mmap in (False, True):
        one, two = (next(r for r in rows if r["workers"] == w and r["mmap"] == mmap) for w in (1, 2))
        kind = "memory-mapped" if mmap else "copied"
        ratio = two["pss_mb"] / one["pss_mb"]
        print(f"2 workers / 1 worker, bundle {kind}: PSS {ratio:.2f}x (target <= 1.3x)")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_DIR)
    args = ap.parse_args()
    measure(CatalogueSpec(n_items=args.items), args.cache_dir)


if __name__ == "__main__":
    main()
