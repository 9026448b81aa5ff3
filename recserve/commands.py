"""Implementations of the ``recserve`` subcommands."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from typing import Any, TextIO


class CLIError(Exception):
    """A runtime failure the user can act on (a bad file, an unreachable server): printed as one
    line naming the file, path or value at fault, exit status 1, no traceback."""

    exit_code = 1


class UsageError(CLIError):
    """A bad option value or a missing option/setting found after parsing: exit status 2, the
    status argparse gives a usage error, so scripts tell "called wrong" from "failed"."""

    exit_code = 2


def human_out(args: argparse.Namespace) -> TextIO:
    """Where a command's human text goes: stderr under ``--json`` (stdout is the JSON alone, so
    ``recserve … --json | jq .`` works), stdout otherwise."""
    return sys.stderr if getattr(args, "json", False) else sys.stdout


def print_json_line(obj: object) -> None:
    """The one JSON document a ``--json`` command writes to stdout."""
    print(json.dumps(obj, sort_keys=True, default=float), flush=True)


def _store_uri(arg: str | None) -> str:
    if arg:
        return arg
    from service.settings import Settings

    return Settings().store_uri


def _format_metrics(metrics: dict[str, Any]) -> str:
    lines = [f"{'method':<12} {'recall@10':>10} {'ndcg@10':>10} {'recall@20':>10} {'ndcg@20':>10}"]
    for name in ("popularity", "retrieval", "two_stage"):
        m = metrics.get(name)
        if m:
            cells = " ".join(f"{m[c]:>10.4f}" for c in ("recall@10", "ndcg@10", "recall@20", "ndcg@20"))
            lines.append(f"{name:<12} {cells}")
    return "\n".join(lines)


def _pretty(body: dict[str, Any]) -> str:
    """JSON with one line per returned item: readable in a terminal, still valid JSON."""
    head = {k: v for k, v in body.items() if k != "items"}
    lines = [json.dumps(it) for it in body.get("items", [])]
    inner = ",\n  ".join(lines)
    return json.dumps(head)[:-1] + (', "items": [\n  ' + inner + "\n]}" if "items" in body else "}")


def train(args: argparse.Namespace) -> int:
    from model_store import open_store
    from training import datasets
    from training.pipeline import train_and_publish

    out = human_out(args)
    try:
        data, config = datasets.load(args.dataset, seed=args.seed, loss=args.loss, k=args.k)
    except (
        OSError,
        ValueError,
    ) as exc:  # missing folder (names RECSERVE_DATA_DIR), malformed row (file:line)
        raise CLIError(str(exc)) from exc
    uri = _store_uri(args.store)
    store = open_store(uri)
    print(
        f"training on {args.dataset}: {data.n_users} users, {data.n_items} items, MF loss {args.loss}",
        file=out,
    )
    version, metrics = train_and_publish(data, store, config)
    print(f"published {version} to {uri}", file=out)
    print(_format_metrics(metrics), file=out)
    if args.json:
        print_json_line({"version": version, "metrics": metrics})
    return 0


def serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.auth import KeyFileError, KeyRing
    from service.http_protocol import PROTOCOL
    from service.logs import logging_config
    from service.settings import Settings
    from service.tracing import TracingUnavailable, check_tracing

    given = {"host": args.host, "port": args.port, "store_uri": args.store}
    overrides = {k: v for k, v in given.items() if v is not None}  # --port 0 is a real choice
    settings = Settings(**overrides)
    try:  # a bad keys file is named here, not in a traceback from inside uvicorn
        KeyRing.from_settings(settings)
        check_tracing(settings)  # RECSERVE_OTEL_ENDPOINT without the otel extra, likewise
    except (KeyFileError, TracingUnavailable) as exc:
        raise CLIError(str(exc)) from exc
    # JSON lines with request ids for uvicorn's logs and ours (in every worker: uvicorn applies
    # log_config in each); the service writes its own access log (RECSERVE_ACCESS_LOG).
    log_config = logging_config(settings.log_level, settings.log_format)
    if args.workers > 1:
        from recserve.workers import shared_worker_env

        os.environ["RECSERVE_STORE_URI"] = settings.store_uri
        with shared_worker_env(args.workers):  # multiprocess /metrics, mapped bundle files
            from recserve.workers import serve_forked

            settings = Settings(**overrides)  # again: now with the mapped-bundle setting
            kwargs = {"http": PROTOCOL, "log_level": settings.log_level, "access_log": False}
            return serve_forked(settings, args.workers, {**kwargs, "log_config": log_config})
    else:
        from service.app import create_app  # here only: a --workers supervisor needs no torch

        uvicorn.run(
            create_app(settings),
            host=settings.host,
            port=settings.port,
            http=PROTOCOL,
            log_level=settings.log_level,
            access_log=False,
            log_config=log_config,
        )
    return 0


class _BackgroundServer:
    """uvicorn in a thread of this process, so ``demo`` can query it and stop it cleanly."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        import uvicorn

        from service.http_protocol import PROTOCOL

        config = uvicorn.Config(app, host=host, port=port, http=PROTOCOL, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 30.0) -> int:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive():
                raise CLIError("the HTTP server failed to start (is the port already in use? try --port 0)")
            if time.monotonic() > deadline:
                raise CLIError("the HTTP server did not start within 30 s")
            time.sleep(0.05)
        return int(self.server.servers[0].sockets[0].getsockname()[1])

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _demo_feedback(client: Any, user: str, answer: dict[str, Any]) -> None:
    """A click on the top item, then the same request: the item is gone from the next answer."""
    top = answer["items"][0]["item_id"]
    event = {"user_id": user, "item_id": top, "type": "click", "recomm_id": answer["recomm_id"]}
    resp = client.post("/feedback", json=event)
    print(f"\nPOST /feedback {json.dumps(event)} -> {resp.status_code}\n{resp.text}")
    if resp.status_code != 202:
        raise CLIError(f"/feedback answered {resp.status_code}: {resp.text}")
    again = client.get("/recommend", params={"user_id": user, "k": 5}).json()
    shown = ", ".join(i["item_id"] for i in again["items"])
    print(f"GET /recommend?user_id={user}&k=5 again: {shown} ({top} clicked, so left out)")


def demo(args: argparse.Namespace) -> int:
    import httpx

    from model_store import open_store
    from service.app import create_app
    from service.settings import Settings
    from training.pipeline import TrainConfig, train_and_publish
    from training.synthetic import SyntheticConfig, generate

    started = time.perf_counter()
    store_uri = _store_uri(args.store)
    print(f"[1/4] generating synthetic data (seed {args.seed})")
    data = generate(SyntheticConfig(seed=args.seed))
    print(
        f"      {data.n_users} users, {data.n_items} items, "
        f"{len(data.train_users)} train / {len(data.test_users)} test interactions"
    )
    print("[2/4] training MF retrieval + DeepFeatureRanking ranker")
    version, metrics = train_and_publish(data, open_store(store_uri), TrainConfig(seed=args.seed))
    print(f"[3/4] published {version} to {store_uri}; offline test metrics (train items masked):")
    print(_format_metrics(metrics))
    settings = Settings(store_uri=store_uri, host=args.host, port=args.port)
    # The demo migrates its own event store (serve does not: `recserve db upgrade` is a deploy step).
    from eventstore import open_event_store

    events = open_event_store(settings.database_url)
    try:
        events.upgrade()
    finally:
        events.close()
    server = _BackgroundServer(create_app(settings), args.host, args.port)
    port = server.start()
    base = f"http://{args.host}:{port}"
    print(f"[4/4] serving on {base} (docs: {base}/docs)")
    user, item = data.user_ids[0], data.item_ids[0]
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            answers = []
            for path, params in (
                ("/recommend", {"user_id": user, "k": 5}),
                ("/similar-items", {"item_id": item, "k": 5}),
            ):
                resp = client.get(path, params=params)
                query = "&".join(f"{k}={v}" for k, v in params.items())
                print(f"\nGET {path}?{query} -> {resp.status_code}")
                print(_pretty(resp.json()))
                if resp.status_code != 200:
                    raise CLIError(f"{path} answered {resp.status_code}")
                answers.append(resp.json())
            _demo_feedback(client, user, answers[0])
        print(f"\ndemo ready in {time.perf_counter() - started:.1f} s")
        if args.once:
            return 0
        print(f"serving on {base} until Ctrl-C; try: curl '{base}/recommend?user_id={user}&k=10'")
        while server.thread.is_alive():
            server.thread.join(timeout=0.5)
        return 0
    finally:
        server.stop()
