"""CPU per request of the app itself, in process: ``python -m benchmarks.asgi_cost``.

Calls the ASGI app directly (no socket, no HTTP parser, no load generator), one request at a
time, and reports CPU µs per request for each endpoint: what the framework and the serving code
cost (``time.process_time``). An A/B on the same code, in alternating rounds (medians): plain
ids, which the plain-GET fast path (``service/fastget.py``) parses, and every id
percent-encoded, which it leaves to FastAPI's parameter resolution (the same answers).
``--profile`` prints cProfile's cumulative top. Micro-batching is off here: one request at a
time has nothing to batch (the bench measures it under load).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from typing import Any

import numpy as np

from benchmarks.catalogue import DEFAULT_DIR, CatalogueSpec, ensure_catalogue
from service.app import create_app
from service.settings import Settings

ENDPOINTS = ("baseline", "recommend", "cache", "similar")


def _paths(endpoint: str, n_users: int, n_items: int, encoded: bool) -> list[tuple[str, str]]:
    def ident(text: str) -> str:
        return "".join(f"%{b:02X}" for b in text.encode()) if encoded else text

    if endpoint == "baseline":
        return [("/bench/baseline", "")]
    if endpoint == "similar":
        step = max(1, n_items // 2000)
        return [("/similar-items", f"item_id={ident(f'i{i}')}&k=10") for i in range(0, n_items, step)]
    return [("/recommend", f"user_id={ident(f'u{u}')}&k=10") for u in range(min(2000, n_users))]


async def _call(app: Any, path: str, query: str) -> int:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": query.encode(),
        "root_path": "", "headers": [(b"host", b"bench")], "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }  # fmt: skip
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


async def measure(
    store_root: str, endpoint: str, n: int, rounds: int, profile: bool, spec: CatalogueSpec
) -> tuple[float, float]:
    """Median CPU µs per request over ``rounds`` alternating rounds: (fast path, FastAPI's path)."""
    cache = 5000 if endpoint == "cache" else 0
    settings = Settings(
        store_uri=store_root, bench_endpoints=True, cache_size=cache, micro_batching=False, _env_file=None
    )
    app = create_app(settings)
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await inbox.put({"type": "lifespan.startup"})
    lifespan = asyncio.create_task(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, inbox.get, outbox.put)
    )
    await outbox.get()
    both = [_paths(endpoint, spec.n_users, spec.n_items, encoded) for encoded in (False, True)]
    for paths in both:  # warm: every list in the cache, every code path run
        for path, query in paths:
            assert await _call(app, path, query) == 200
    samples: list[list[float]] = [[], []]
    for r in range(rounds):
        for which, paths in enumerate(both):
            prof = cProfile.Profile() if profile and r == 0 else None
            start = time.process_time()
            if prof is not None:
                prof.enable()
            for i in range(n):
                await _call(app, *paths[i % len(paths)])
            if prof is not None:
                prof.disable()
                print(f"--- {endpoint}, {'FastAPI path' if which else 'fast path'}")
                pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
            samples[which].append((time.process_time() - start) / n * 1e6)
    await inbox.put({"type": "lifespan.shutdown"})
    await outbox.get()
    await lifespan
    fast, full = (float(np.median(s)) for s in samples)
    return fast, full


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=100_000)
    ap.add_argument("--requests", type=int, default=1000, help="per round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--endpoints", nargs="+", choices=ENDPOINTS, default=list(ENDPOINTS))
    ap.add_argument("--profile", action="store_true", help="cProfile the first round of each")
    ap.add_argument("--cache-dir", default=str(DEFAULT_DIR))
    args = ap.parse_args()
    spec = CatalogueSpec(n_items=args.items)
    cat = ensure_catalogue(spec, args.cache_dir)
    print(f"CPU µs per request, in process, {args.items} items, median of {args.rounds} alternating rounds")
    print("endpoint    fast path  FastAPI's parsing")
    for endpoint in args.endpoints:
        fast, full = asyncio.run(
            measure(str(cat.store_root), endpoint, args.requests, args.rounds, args.profile, spec)
        )
        print(f"{endpoint:10} {fast:10.0f} {full:18.0f}")


if __name__ == "__main__":
    main()
