"""Run the parts of the benchmark for each catalogue size and gather one results dict."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.catalogue import DEFAULT_DIR, CatalogueSpec, ensure_catalogue
from recommender.retrieval import HNSWParams

PARTS = ("retrieval", "service", "stages")


@dataclass
class BenchOptions:
    sizes: Sequence[int] = (10_000, 100_000, 1_000_000)
    parts: Sequence[str] = PARTS
    n_users: int = 10_000
    seed: int = 0
    cache_dir: Path = DEFAULT_DIR
    duration_s: float = 5.0
    concurrencies: Sequence[int] = (1, 8)
    n_queries: int = 500
    ef_sweep: Sequence[int] = field(default_factory=lambda: (128, 256, 512, 1024))
    redis_url: str | None = None
    workers: int = 1
    ef_construction: int | None = None  # None: the production default (HNSWParams)
    hnsw_m: int | None = None
    cooc_neighbours: int = 0
    service_env: dict[str, str] = field(default_factory=dict)  # settings of the measured service


def _service_summary(raw: dict[str, Any], concurrencies: Sequence[int]) -> dict[str, Any]:
    """Per endpoint: the headline figures at the highest concurrency, plus every concurrency."""
    top = str(max(concurrencies))
    out: dict[str, Any] = {"load_seconds": raw["load_seconds"]}
    wrk, server = [], []
    for ep, runs in raw["endpoints"].items():
        head = runs[top]
        out[ep] = {
            "rps": head["rps"],
            "p50_ms": head["p50_ms"],
            "p95_ms": head["p95_ms"],
            "p99_ms": head["p99_ms"],
            "ratio_to_baseline": head["ratio_to_baseline"],
            "cpu_us_per_req": head["cpu_us_per_req"],
            "by_concurrency": runs,
        }
        wrk += [r["wrk_cpu"] for r in runs.values()]
        server += [r["server_cpu"] for r in runs.values()]
    out["max_wrk_cpu"] = max(wrk, default=None)
    out["max_server_cpu"] = max(server, default=None)
    if "open_loop" in raw and "recommend" in out:  # constant rate at 50% of the closed-loop max
        out["recommend"]["open_loop"] = raw["open_loop"]
        out["recommend"]["open_loop_p99_ms"] = raw["open_loop"]["p99_ms"]
    if "cache_skipped" in raw:
        out["cache_skipped"] = raw["cache_skipped"]
    return out


def add_limits(summary: dict[str, Any], stages: dict[str, Any] | None, cores: int) -> None:
    """``limit_rps`` and ``ratio_to_limit`` for /recommend and /similar-items, in place.

    The limit is what a service would do whose only work is the framework's floor (the baseline's
    CPU per request, same run) plus the HNSW search of that endpoint (the stage timer's median,
    same run): ``1 / (baseline CPU + retrieval)``, times the cores the service's processes can
    use (``cores``: 1 for one worker). It says how much of the gap is ours to close: 1.0 would be
    a request path that costs nothing beyond the search.
    """
    base_us = (summary.get("baseline") or {}).get("cpu_us_per_req")
    for ep, stage in (("recommend", "recommend_us"), ("similar", "similar_us")):
        search_us = ((stages or {}).get(stage) or {}).get("retrieval")
        if ep not in summary or base_us is None or search_us is None:
            continue
        limit = cores * 1e6 / (base_us + search_us)
        summary[ep]["retrieval_us"] = search_us
        summary[ep]["limit_rps"] = limit
        summary[ep]["ratio_to_limit"] = summary[ep]["rps"] / limit


def run_suite(opts: BenchOptions, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every requested part at every size; the smaller sizes first (they fail fast)."""
    from benchmarks.retrieval import run_retrieval
    from benchmarks.service import run_service
    from benchmarks.stages import run_stages

    results: dict[str, Any] = {
        "sizes": sorted(opts.sizes),
        "concurrencies": list(opts.concurrencies),
        "workers": opts.workers,
        "ef_construction": opts.ef_construction or HNSWParams.ef_construction,
        "hnsw_m": opts.hnsw_m or HNSWParams.m,
        "ef_search": HNSWParams.ef_search,
        "cooc_neighbours": opts.cooc_neighbours,
        "service_env": opts.service_env,
        "machine": report.machine(),
        "retrieval": {},
        "service": {},
        "stages": {},
        "rss_mb": {},
        "pss_mb": {},
        "raw_mb": {},
    }
    for n in sorted(opts.sizes):
        spec = CatalogueSpec(
            n_items=n,
            n_users=opts.n_users,
            seed=opts.seed,
            hnsw_ef_construction=opts.ef_construction or HNSWParams.ef_construction,
            hnsw_m=opts.hnsw_m or HNSWParams.m,
            cooc_neighbours=opts.cooc_neighbours,
        )
        cat = ensure_catalogue(spec, opts.cache_dir, log=log)
        key = str(n)
        results["raw_mb"][key] = (cat.embedding_bytes + cat.index_bytes) / 2**20
        if "retrieval" in opts.parts:
            log(f"[{report.size_label(n)}] retrieval: recall and q/s, efSearch {list(opts.ef_sweep)}")
            results["retrieval"][key] = run_retrieval(cat, opts.n_queries, opts.ef_sweep)
        if "stages" in opts.parts or "service" in opts.parts:  # the service's limit needs the search time
            log(f"[{report.size_label(n)}] stages of one request")
            results["stages"][key] = run_stages(cat)
        if "service" in opts.parts:
            log(f"[{report.size_label(n)}] service under wrk load")
            raw = run_service(
                cat, opts.concurrencies, opts.duration_s, opts.redis_url, log, opts.workers, opts.service_env
            )
            results["service"][key] = _service_summary(raw, opts.concurrencies)
            cores = min(opts.workers, os.cpu_count() or 1)
            add_limits(results["service"][key], results["stages"].get(key), cores)
            results["rss_mb"][key] = raw["rss_mb"]
            results["pss_mb"][key] = raw["pss_mb_after"]
    results["machine"]["load_after"] = os.getloadavg()[0]
    results["targets"] = report.targets(results)
    return results
