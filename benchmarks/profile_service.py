"""Where a computed request's CPU goes, under load: ``python -m benchmarks.profile_service``.

Starts the service on a bench catalogue (caches off, as in ``recserve bench``), drives it with
``wrk`` at concurrency 8 and samples it with ``py-spy`` (a separate process reading the service's
memory: no instrumentation in the code being measured). Prints the share of the samples under each
part of the request path, inclusive (a frame counts once per sample however deep it recurses).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks.catalogue import DEFAULT_DIR, CatalogueSpec, ensure_catalogue
from benchmarks.service import ServerProcess, _warm, endpoint_paths, run_wrk

# (label, substrings of a py-spy frame "function (file:line)", any of them): the request path,
# outside in; with micro-batching the model runs in the worker thread (its own samples).
PARTS = [
    ("event loop: whole request (ASGI app)", ("Starlette.__call__",)),
    ("  endpoint function", ("run_endpoint_function", "fastget.py")),
    ("  FastAPI parameter parsing", ("solve_dependencies",)),
    ("  answer body (presenter)", ("recommend_body", "similar_body")),
    ("  response send (headers, write)", ("Response.__call__",)),
    ("worker thread: micro-batches", ("run_batch",)),
    ("  stored-list reads, fresh events", ("get_many", "plan_steps")),
    ("model: personalised strategy", ("PersonalizedStrategy.recommend",)),
    ("model: similar items", ("SimilarItemsStrategy.recommend",)),
    ("  HNSW search", ("IndexHNSW.search", "IndexHNSW_search")),
    ("  features + ranker", ("FeatureRanking.score",)),
    ("    ranker forward", ("FrozenRanker.__call__",)),
    ("  selection", ("select_top",)),
]


def profile(
    n_items: int,
    seconds: int,
    cache_dir: Path,
    endpoint: str = "recommend",
    env: dict[str, str] | None = None,
) -> dict[str, float]:
    if shutil.which("py-spy") is None:
        raise SystemExit("py-spy not found: pip install py-spy")
    cat = ensure_catalogue(CatalogueSpec(n_items=n_items), cache_dir, log=print)
    paths = endpoint_paths(cat)[endpoint]
    with ServerProcess(cat.store_root, None, extra_env={**(env or {}), "RECSERVE_CACHE_SIZE": "0"}) as server:
        _warm(server, paths)
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.txt"
            spy = subprocess.Popen(
                ["py-spy", "record", "-p", str(server.pid), "-d", str(seconds), "-r", "200", "-f", "raw",
                 "-o", str(raw), "--nonblocking"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            time.sleep(1)
            run = run_wrk(server, paths, 8, seconds + 2, Path(tmp))
            spy.wait()
            counts: collections.Counter[str] = collections.Counter()
            total = 0
            for line in raw.read_text().splitlines():
                stack, _, n = line.rpartition(" ")
                total += int(n)
                for label, needles in PARTS:
                    if any(needle in stack for needle in needles):
                        counts[label] += int(n)
    cpu = f"{run['cpu_us_per_req']:.0f} µs CPU/request"
    setup = env or "default settings"
    print(f"{endpoint} at {n_items} items, c=8, {setup}: {run['rps']:.0f} rps, {cpu}; {total} samples")
    shares = {label: counts[label] / max(total, 1) for label, _ in PARTS}
    for label, share in shares.items():  # of all samples, both threads (idle ones are not sampled)
        print(f"{share:6.1%}  {label}")
    return shares


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--seconds", type=int, default=15)
    ap.add_argument("--endpoint", choices=["recommend", "similar"], default="recommend")
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--env", action="append", default=[], metavar="RECSERVE_X=V", help="service setting")
    args = ap.parse_args()
    env = dict(v.split("=", 1) for v in args.env)
    profile(args.items, args.seconds, args.cache_dir, args.endpoint, env)


if __name__ == "__main__":
    main()
