"""Cache hit vs online computation, through the real service over HTTP.

Three service processes answer the same requests: Redis-backed (lists from ``recserve
precompute``), the embedded in-process LRU (warmed first), and no cache at all (every answer
computed). Each is a separate uvicorn process with its own port, queried sequentially over one
keep-alive connection, so the figures are per-request latencies, not throughput.

    .venv/bin/python -m benchmarks.cache_latency             # trains the default synthetic model
    .venv/bin/python -m benchmarks.cache_latency --store var/store --requests 3000

Also prints the precompute rate (keys/s) for the model used. Starts its own redis-server on a
free port (never touches a shared one) and stops everything it started.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx
import redis

from benchmarks.procs import RedisProcess, ServiceProcess
from listcache.precompute import PrecomputeConfig, precompute
from listcache.redis_backend import RedisBackend
from model_store import LocalStore, NoModelPublished
from service.settings import Settings


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def ensure_model(store: Path, small: bool) -> None:
    try:
        LocalStore(store).current_version()
        return
    except NoModelPublished:
        pass
    from training.mf import MFConfig
    from training.pipeline import TrainConfig, train_and_publish
    from training.ranker_train import RankerConfig
    from training.synthetic import SyntheticConfig, generate

    if small:
        data = generate(SyntheticConfig(n_users=300, n_items=200, min_interactions=8, max_interactions=20))
        config = TrainConfig(mf=MFConfig(dim=16, epochs=8), ranker=RankerConfig(hidden_units=16, epochs=2))
    else:
        data, config = generate(), TrainConfig()
    print(f"training {'small' if small else 'default'} synthetic model into {store} …")
    train_and_publish(data, LocalStore(store), config, progress=False)


def run_requests(url: str, requests: list[tuple[str, dict]]) -> tuple[list[float], Counter[str]]:
    latencies: list[float] = []
    sources: Counter[str] = Counter()
    with httpx.Client(base_url=url, timeout=30) as http:
        for path, params in requests:
            start = time.perf_counter()
            resp = http.get(path, params=params)
            latencies.append(time.perf_counter() - start)
            resp.raise_for_status()
            sources[resp.json()["source"]] += 1
    return latencies, sources


def stage_means(url: str) -> dict[str, float]:
    """Mean seconds per pipeline stage inside the service (from its /metrics), without HTTP."""
    text = httpx.get(f"{url}/metrics").text
    sums = dict(re.findall(r'recserve_stage_latency_seconds_sum\{stage="(\w+)"\} (\S+)', text))
    counts = dict(re.findall(r'recserve_stage_latency_seconds_count\{stage="(\w+)"\} (\S+)', text))
    return {stage: float(sums[stage]) / float(n) for stage, n in counts.items() if float(n) > 0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=None, help="use this store's CURRENT model")
    parser.add_argument("--small", action="store_true", help="train the tiny test model (quick check)")
    parser.add_argument("--requests", type=int, default=2000, help="measured requests per endpoint")
    parser.add_argument("--keys", type=int, default=500, help="distinct users/items requested")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="cache-bench-") as tmp:
        tmpdir = Path(tmp)
        store = (args.store or tmpdir / "store").resolve()  # services run in another cwd
        ensure_model(store, args.small)
        model, _ = LocalStore(store).load()
        model.n_candidates = Settings(_env_file=None).n_candidates or model.n_candidates
        redis_proc = RedisProcess.on_free_port(tmpdir)
        services: dict[str, ServiceProcess] = {}
        try:
            client = redis.Redis.from_url(redis_proc.url)
            report = precompute(model, RedisBackend(client), PrecomputeConfig(prefix="bench"), progress=False)
            client.close()
            print(
                f"precompute: {report.keys} keys ({model.n_users} users + {model.n_items} items) in "
                f"{report.seconds:.2f} s = {report.keys_per_s:,.0f} keys/s, "
                f"{report.bytes / report.keys:.0f} bytes/list"
            )
            base = {k: v for k, v in os.environ.items() if not k.startswith("RECSERVE_")}
            base["RECSERVE_STORE_URI"] = str(store)
            envs = {
                "redis hit": {"RECSERVE_REDIS_URL": redis_proc.url, "RECSERVE_REDIS_PREFIX": "bench"},
                "LRU hit": {},
                "computed": {"RECSERVE_CACHE_SIZE": "0"},
            }
            for name, extra in envs.items():
                services[name] = ServiceProcess({**base, **extra}, tmpdir)

            rng = random.Random(0)
            users = rng.sample(model.user_ids.ids, min(args.keys, model.n_users))
            items = rng.sample(model.item_ids.ids, min(args.keys, model.n_items))
            plan = {
                path: [(path, {key: rng.choice(ids), "k": args.k}) for _ in range(args.requests)]
                for path, key, ids in (("/recommend", "user_id", users), ("/similar-items", "item_id", items))
            }
            warm = [("/recommend", {"user_id": u, "k": args.k}) for u in users]
            warm += [("/similar-items", {"item_id": i, "k": args.k}) for i in items]
            print(f"\n{len(warm)} warm-up requests per service, then {args.requests} measured per endpoint")
            print(f"{'endpoint':<15} {'service':<10} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8}  sources")
            for svc in services.values():
                run_requests(svc.url, warm)  # fills the LRU; warms every process the same way
            for path, reqs in plan.items():
                results = {name: ([], Counter()) for name in services}
                # Interleave services in chunks so load from other processes hits all of them alike.
                for start in range(0, len(reqs), 100):
                    for name, svc in services.items():
                        lat, sources = run_requests(svc.url, reqs[start : start + 100])
                        results[name][0].extend(lat)
                        results[name][1].update(sources)
                for name, (lat, sources) in results.items():
                    p50, p99, mean = (percentile(lat, 0.5), percentile(lat, 0.99), statistics.fmean(lat))
                    print(
                        f"{path:<15} {name:<10} {p50 * 1e3:8.2f} {p99 * 1e3:8.2f} {mean * 1e3:8.2f}  "
                        f"{dict(sources)}"
                    )
            print("\nmean in-process stage time (both endpoints, warm-up included), µs:")
            for name, svc in services.items():
                means = stage_means(svc.url)
                print(f"  {name:<10} " + ", ".join(f"{k} {v * 1e6:.0f}" for k, v in sorted(means.items())))
        finally:
            for svc in services.values():
                svc.stop()
            redis_proc.kill()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
