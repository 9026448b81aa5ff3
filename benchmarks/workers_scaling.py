"""One worker against two, in one run: ``python -m benchmarks.workers_scaling --items 1000000``.

Issue 21's "every core" target: 2 workers give >= 1.7x one worker's ``/recommend`` rate, with
total memory <= 1.3x. For ``--workers 1`` and ``2`` in turn (``recserve serve --workers 2``
forks workers from a supervisor that loaded the bundle, memory-mapped), the same catalogue, the
same paths, every cache off: wrk at each concurrency on ``/bench/baseline`` and ``/recommend``,
then RSS and PSS of the whole process tree.

Two cores and wrk on the same machine: two workers can use at most ``cores - wrk's CPU - other
work`` cores, not 2. So besides the rate ratio the table gives each run's CPU (service and wrk,
in cores) and the rate per core of service CPU: if the per-core rate holds and the ratio does
not, the second worker is starved of CPU (by wrk or neighbours), not slower.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.catalogue import DEFAULT_DIR, CatalogueSpec, ensure_catalogue
from benchmarks.procs import proc_pss_mb, proc_rss_mb
from benchmarks.service import ServerProcess, _warm, endpoint_paths, run_wrk


def measure(
    spec: CatalogueSpec, cache_dir: Path, concurrencies: list[int], duration_s: float
) -> dict[str, Any]:
    cat = ensure_catalogue(spec, cache_dir, log=print)
    paths = endpoint_paths(cat)
    runs: list[dict[str, Any]] = []
    memory: dict[int, dict[str, float]] = {}
    load0 = os.getloadavg()[0]
    for workers in (1, 2):
        env = {"RECSERVE_CACHE_SIZE": "0", "RECSERVE_MMAP_BUNDLE": "true"}
        with ServerProcess(cat.store_root, None, extra_env=env, workers=workers) as server:
            for name in ("baseline", "recommend"):
                _warm(server, paths[name], limit=400)
            with tempfile.TemporaryDirectory() as tmp:
                for c in concurrencies:
                    for ep in ("baseline", "recommend"):
                        r = run_wrk(server, paths[ep], c, duration_s, Path(tmp))
                        runs.append({"workers": workers, "endpoint": ep, **r})
                        print(
                            f"workers={workers} {ep:<9} c={c:<3} {r['rps']:7.0f} rps  "
                            f"p99 {r['p99_ms']:6.2f} ms  service {r['server_cpu']:.2f} cores  "
                            f"wrk {r['wrk_cpu']:.2f}",
                            flush=True,
                        )
            rss, _ = proc_rss_mb(server.pid)
            memory[workers] = {"rss_mb": rss, "pss_mb": proc_pss_mb(server.pid)}
    out: dict[str, Any] = {"n_items": spec.n_items, "runs": runs, "memory": memory}
    out["load_before"], out["load_after"] = load0, os.getloadavg()[0]
    print(f"\n{spec.n_items} items, 1-min load {load0:.1f} before / {out['load_after']:.1f} after")
    print(
        "| endpoint | c | rps 1w | rps 2w | 2w/1w | service cores 1w / 2w | wrk cores 2w "
        "| rps per service core 1w / 2w |"
    )
    print("|---|---|---|---|---|---|---|---|")
    ratios = {}
    for ep in ("baseline", "recommend"):
        for c in concurrencies:
            one, two = (
                next(r for r in runs if r["workers"] == w and r["endpoint"] == ep and r["concurrency"] == c)
                for w in (1, 2)
            )
            ratio = two["rps"] / one["rps"]
            ratios[f"{ep}_c{c}"] = ratio
            print(
                f"| {ep} | {c} | {one['rps']:.0f} | {two['rps']:.0f} | {ratio:.2f}x | "
                f"{one['server_cpu']:.2f} / {two['server_cpu']:.2f} | {two['wrk_cpu']:.2f} | "
                f"{one['rps'] / one['server_cpu']:.0f} / {two['rps'] / two['server_cpu']:.0f} |"
            )
    out["ratios"] = ratios
    m1, m2 = memory[1], memory[2]
    out["rss_ratio"], out["pss_ratio"] = m2["rss_mb"] / m1["rss_mb"], m2["pss_mb"] / m1["pss_mb"]
    print(
        f"\nmemory, whole process tree: RSS {m1['rss_mb']:.0f} -> {m2['rss_mb']:.0f} MB "
        f"({out['rss_ratio']:.2f}x), PSS {m1['pss_mb']:.0f} -> {m2['pss_mb']:.0f} MB "
        f"({out['pss_ratio']:.2f}x)"
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8, 16])
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per wrk run")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = ap.parse_args()
    out = measure(CatalogueSpec(n_items=args.items), args.cache_dir, args.concurrency, args.duration)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
