"""``recserve retrain``: base data + events up to a watermark → train → publish → precompute →
promote (``training/retrain.py`` has the steps and what a crash at each leaves)."""

from __future__ import annotations

import argparse
from typing import Any

from recserve.commands import CLIError, _store_uri, human_out, print_json_line


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", default=None, help="model store (default: RECSERVE_STORE_URI)")
    p.add_argument("--database-url", default=None, help="event store (default: RECSERVE_DATABASE_URL)")
    p.add_argument(
        "--redis-url",
        default=None,
        help="precompute the new model's lists here (default: RECSERVE_REDIS_URL)",
    )
    p.add_argument(
        "--min-new-events", type=int, default=1,
        help="skip (exit 0) unless this many events arrived since the current model's watermark (default 1)",
    )  # fmt: skip
    p.add_argument("--threads", type=int, default=1, help="torch and FAISS threads")
    p.add_argument("--json", action="store_true", help="print the report as JSON (alone on stdout)")


def _precompute(url: str, settings: Any, threads: int) -> Any:
    """The precompute step: the new model's lists into Redis, ready marker last."""
    import redis

    from listcache.precompute import PrecomputeConfig, precompute
    from listcache.redis_backend import RedisBackend

    config = PrecomputeConfig(
        n=settings.cache_list_size, ttl_s=settings.redis_ttl_s, prefix=settings.redis_prefix
    )

    def run(model: Any) -> None:
        if settings.n_candidates is not None:  # the service overrides the bundle's value the same way
            model.n_candidates = settings.n_candidates
        client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
        try:
            precompute(model, RedisBackend(client), config, progress=False)
        finally:
            client.close()

    return run


def run(args: argparse.Namespace) -> int:
    import faiss
    import torch
    from pydantic import ValidationError

    from eventstore import LockHeld, check_schema, open_event_store
    from model_store import open_store
    from service.settings import Settings
    from training.retrain import retrain

    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        raise CLIError(
            f"invalid RECSERVE_* setting: {first['loc'][0] if first['loc'] else ''}: {first['msg']}"
        ) from exc
    if args.min_new_events < 0 or args.threads < 1:
        raise CLIError("--min-new-events must be >= 0 and --threads >= 1")
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    out = human_out(args)
    events = open_event_store(args.database_url or settings.database_url)
    redis_url = args.redis_url or settings.redis_url
    try:
        check_schema(events)
        store = open_store(_store_uri(args.store))
        try:
            report = retrain(
                store,
                events,
                settings.feedback_positive_types,
                _precompute(redis_url, settings, args.threads) if redis_url else None,
                min_new_events=args.min_new_events,
            )
        except LockHeld as exc:
            raise CLIError(f"another retrain is running: {exc}") from exc
    finally:
        events.close()
    if report.version is None:
        print(
            f"nothing to do: fewer than {args.min_new_events} new events since {report.base_version} "
            f"(watermark {report.previous_watermark} -> {report.watermark})",
            file=out,
        )
    else:
        stats = report.events
        assert stats is not None
        print(
            f"published {report.version} (base {report.base_version}): {stats.read} events up to "
            f"watermark {report.watermark}, {stats.used} trained on, {stats.new_users} new users, "
            f"{stats.new_items} new items; lists precomputed: {'yes' if report.precomputed else 'no'}; "
            f"{report.seconds:.1f} s",
            file=out,
        )
    if args.json:
        print_json_line(report.as_dict())
    return 0
