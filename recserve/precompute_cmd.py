"""``recserve precompute``: write every top-N list of the current model to Redis, marker last.

Defaults come from the service settings (``RECSERVE_REDIS_URL``, ``RECSERVE_REDIS_PREFIX``,
``RECSERVE_REDIS_TTL_S``, ``RECSERVE_CACHE_LIST_SIZE``), whose own defaults are
``listcache.DEFAULTS``, so the job and the service it feeds agree on keys and list length
without repeating them. The job itself is :func:`listcache.precompute.precompute`, writing
through :class:`listcache.redis_backend.RedisBackend`. Meant to run after each publish or on a
schedule next to the service.
"""

from __future__ import annotations

import argparse

from recserve.commands import CLIError, UsageError, _store_uri, human_out, print_json_line


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, help="model store (default: RECSERVE_STORE_URI)")
    p.add_argument("--version", default=None, help="model version (default: the store's CURRENT)")
    p.add_argument("--redis-url", default=None, help="default: RECSERVE_REDIS_URL")
    p.add_argument("--prefix", default=None, help="key prefix (default: RECSERVE_REDIS_PREFIX)")
    p.add_argument("--n", type=int, default=None, help="list length N (default: RECSERVE_CACHE_LIST_SIZE)")
    p.add_argument("--ttl", type=int, default=None, help="seconds lists live (default: RECSERVE_REDIS_TTL_S)")
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="users/items per compute call and Redis pipeline (default: listcache DEFAULTS.batch_size)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch and FAISS threads")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--json", action="store_true", help="print only the report, as JSON, on stdout (human text to stderr)"
    )


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise UsageError(f"--{name} must be >= 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    import faiss
    import redis
    import torch
    from pydantic import ValidationError

    from listcache import DEFAULTS, WriteError
    from listcache.precompute import PrecomputeConfig, precompute
    from listcache.redis_backend import RedisBackend
    from model_store import StoreError, open_store
    from service.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        raise UsageError(
            f"invalid RECSERVE_* setting: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}"
        ) from exc
    url = args.redis_url or settings.redis_url
    if not url:
        raise UsageError("no Redis to write to: pass --redis-url or set RECSERVE_REDIS_URL")
    config = PrecomputeConfig(
        n=_positive("n", args.n if args.n is not None else settings.cache_list_size),
        ttl_s=_positive("ttl", args.ttl if args.ttl is not None else settings.redis_ttl_s),
        prefix=args.prefix or settings.redis_prefix,
        batch_size=_positive(
            "batch-size", args.batch_size if args.batch_size is not None else DEFAULTS.batch_size
        ),
    )
    torch.set_num_threads(_positive("threads", args.threads))
    faiss.omp_set_num_threads(args.threads)

    store = open_store(_store_uri(args.store))
    try:
        model, _ = store.load(args.version)
    except StoreError as exc:
        raise CLIError(str(exc)) from exc
    if settings.n_candidates is not None:  # the service overrides the bundle's value the same way
        model.n_candidates = settings.n_candidates

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
        client.ping()
    except (redis.RedisError, ValueError) as exc:
        raise CLIError(f"cannot reach Redis at {url}: {exc}") from exc
    try:
        report = precompute(model, RedisBackend(client), config, progress=not args.no_progress)
    except WriteError as exc:
        raise CLIError(f"writing to Redis at {url} failed (no ready marker written): {exc}") from exc
    finally:
        client.close()
    print(
        f"wrote {report.keys} lists of model {report.version} to {url} under '{config.prefix}' "
        f"in {report.seconds:.1f} s: {report.keys_per_s:,.0f} keys/s, "
        f"{report.bytes / max(report.keys, 1):.0f} bytes/list",
        file=human_out(args),
    )
    if args.json:
        print_json_line(report.as_dict())
    return 0
