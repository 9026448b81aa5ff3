"""``recserve precompute``: write every top-N list of the current model to Redis, marker last.

Defaults come from the service settings (``RECSERVE_REDIS_URL``, ``RECSERVE_REDIS_PREFIX``,
``RECSERVE_REDIS_TTL_S``, ``RECSERVE_CACHE_LIST_SIZE``), whose own defaults are
``listcache.DEFAULTS``, so the job and the service it feeds agree on keys and list length
without repeating them. The job itself is :func:`listcache.precompute.precompute` (``--engine
local``: this process) or :func:`listcache.ray_engine.precompute_ray` (``--engine ray``: the same
blocks on a Ray cluster, extra ``recserve[distributed]``), writing through
:class:`listcache.redis_backend.RedisBackend` to one Redis, a Redis Cluster or a Sentinel group.
Meant to run after each publish or on a schedule next to the service.
"""

from __future__ import annotations

import argparse
from typing import Any

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
    p.add_argument(
        "--engine",
        choices=("local", "ray"),
        default="local",
        help="local: this process; ray: a Ray Data job (needs the extra recserve[distributed])",
    )
    p.add_argument(
        "--ray-address",
        default="local",
        help="with --engine ray: HOST:PORT of the cluster's head (default: local, a one-node cluster here)",
    )
    p.add_argument(
        "--ray-workers",
        type=int,
        default=None,
        help="with --engine ray: model-holding actors (default: the cluster's CPUs / --threads)",
    )
    p.add_argument("--threads", type=int, default=1, help="torch and FAISS threads (per Ray worker)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--json", action="store_true", help="print only the report, as JSON, on stdout (human text to stderr)"
    )


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise UsageError(f"--{name} must be >= 1, got {value}")
    return value


def run(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from listcache import DEFAULTS
    from listcache.precompute import PrecomputeConfig
    from listcache.redis_client import RedisURLError, check_url
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
    try:
        check_url(url)
    except RedisURLError as exc:
        raise UsageError(f"--redis-url {exc}") from exc
    config = PrecomputeConfig(
        n=_positive("n", args.n if args.n is not None else settings.cache_list_size),
        ttl_s=_positive("ttl", args.ttl if args.ttl is not None else settings.redis_ttl_s),
        prefix=args.prefix or settings.redis_prefix,
        batch_size=_positive(
            "batch-size", args.batch_size if args.batch_size is not None else DEFAULTS.batch_size
        ),
    )
    _positive("threads", args.threads)
    if args.ray_workers is not None:
        _positive("ray-workers", args.ray_workers)
    _reachable(url)
    report = (
        _run_ray(args, url, config, settings)
        if args.engine == "ray"
        else _run_local(args, url, config, settings)
    )
    print(
        f"wrote {report.keys} lists of model {report.version} to {url} under '{config.prefix}' "
        f"in {report.seconds:.1f} s ({args.engine} engine): {report.keys_per_s:,.0f} keys/s, "
        f"{report.bytes / max(report.keys, 1):.0f} bytes/list",
        file=human_out(args),
    )
    if args.json:
        print_json_line({**report.as_dict(), "engine": args.engine})
    return 0


def _reachable(url: str) -> None:
    """Fail before any work if Redis cannot be reached (a cluster client connects when made)."""
    import redis
    from redis.exceptions import RedisClusterException

    from listcache.redis_backend import RedisBackend

    try:
        backend = RedisBackend.for_job(url)
        try:
            backend.client.ping()
        finally:
            backend.close()
    except (redis.RedisError, RedisClusterException, OSError) as exc:
        raise CLIError(f"cannot reach Redis at {url}: {exc}") from exc


def _run_local(args: argparse.Namespace, url: str, config: Any, settings: Any) -> Any:
    import faiss
    import torch

    from listcache import WriteError
    from listcache.precompute import precompute
    from listcache.redis_backend import RedisBackend
    from model_store import StoreError, open_store

    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    store = open_store(_store_uri(args.store))
    try:
        model, _ = store.load(args.version)
    except StoreError as exc:
        raise CLIError(str(exc)) from exc
    if settings.n_candidates is not None:  # the service overrides the bundle's value the same way
        model.n_candidates = settings.n_candidates
    backend = RedisBackend.for_job(url)
    try:
        return precompute(model, backend, config, progress=not args.no_progress)
    except WriteError as exc:
        raise CLIError(f"writing to Redis at {url} failed (no ready marker written): {exc}") from exc
    finally:
        backend.close()


def _run_ray(args: argparse.Namespace, url: str, config: Any, settings: Any) -> Any:
    try:
        from listcache.ray_engine import RayUnavailable, precompute_ray
    except ImportError as exc:
        raise CLIError(f"--engine ray needs Ray: pip install 'recserve[distributed]' ({exc})") from exc
    from listcache import WriteError
    from model_store import StoreError

    try:
        return precompute_ray(
            _store_uri(args.store),
            url,
            config,
            version=args.version,
            address=args.ray_address,
            workers=args.ray_workers,
            threads=args.threads,
            n_candidates=settings.n_candidates,
            progress=not args.no_progress,
        )
    except (StoreError, RayUnavailable) as exc:
        raise CLIError(str(exc)) from exc
    except WriteError as exc:
        raise CLIError(f"precompute on Ray into {url} failed: {exc}") from exc
