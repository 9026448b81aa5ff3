"""``recserve precompute --engine ray``: the local job's blocks, computed and written on a Ray cluster.

Ray Data's batch-inference pattern, one pipeline::

    from_items(block numbers) ─ map_batches(ListWorker, actor pool) ─ write_datasink(ListSink)

* :class:`ListWorker` is a stateful actor: its constructor opens the model store by URI and
  loads the version once (bundle + FAISS index, checksums verified), so a worker never receives
  the model through the object store and a 10M-user job loads it once per worker, not per batch.
  Each call computes whole :class:`~listcache.precompute.Block` s with
  :func:`~listcache.precompute.block_lists`, the local engine's own function (the service's
  strategies, the same batches), so both engines write byte-identical lists.
* :class:`ListSink` is a Ray Data ``Datasink``: write tasks send each block's lists through the
  list-cache backend (:meth:`~listcache.redis_backend.RedisBackend.set_many`, any Redis topology
  of :mod:`listcache.redis_client`). ``on_write_complete`` runs on the driver once every write
  task has succeeded; it checks that every block's every key was reported written and only then
  writes the ``ready`` marker. A failed or lost task, a dead node Ray could not recover from or a
  missing block means an exception and no marker: the version is never read, and a rerun
  (idempotent SETs) completes it.

Ray is the optional extra ``recserve[distributed]``; this module is imported only for
``--engine ray``.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import ray
from ray.data import ActorPoolStrategy, Datasink
from ray.data.block import BlockAccessor

from listcache.backend import WriteError
from listcache.codec import decode_list, encode_list
from listcache.precompute import (
    PrecomputeConfig,
    PrecomputeReport,
    block_lists,
    check_config,
    mark_ready,
    plan,
)
from listcache.redis_backend import RedisBackend
from listcache.redis_client import check_url

log = logging.getLogger("recserve.listcache.ray")

#: node IP of the ``local`` engine's one-node cluster: a loopback address Ray does not rewrite
#: to the machine's own (it does so with 127.0.0.1), so its traffic never leaves the host.
LOCAL_NODE_IP = "127.0.0.2"


class ListWorker:
    """A Ray actor computing whole blocks with the model it loaded once from the store."""

    def __init__(
        self,
        store_uri: str,
        version: str,
        config: PrecomputeConfig,
        n_users: int,
        n_items: int,
        n_candidates: int | None,
        threads: int,
    ) -> None:
        import faiss
        import torch

        from model_store import open_store

        torch.set_num_threads(threads)
        faiss.omp_set_num_threads(threads)
        self.model, _ = open_store(store_uri).load(version)
        if n_candidates is not None:  # as the service and the local engine override it
            self.model.n_candidates = n_candidates
        self.config = config
        self.blocks = plan(n_users, n_items, config)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        numbers, keys, values = [], [], []
        for number in batch["block"].tolist():
            for key, items, scores in block_lists(self.model, self.blocks[number], self.config):
                numbers.append(number)
                keys.append(key)
                values.append(encode_list(items, scores))
        return {
            "block": np.asarray(numbers, np.int64),
            "key": np.asarray(keys, dtype=object),
            "value": np.asarray(values, dtype=object),
        }


class ListSink(Datasink[dict[str, Any]]):
    """Writes rows ``(block, key, value)`` through the list-cache backend; the marker after all of them."""

    def __init__(
        self,
        redis_url: str,
        config: PrecomputeConfig,
        version: str,
        n_users: int,
        n_items: int,
        started: float,
    ) -> None:
        self.redis_url = redis_url
        self.config = config
        self.version = version
        self.n_users = n_users
        self.n_items = n_items
        self.started = started  # the driver's perf_counter at the job's start: the marker TTL counts from it
        self.written: PrecomputeReport | None = None

    def write(self, blocks: Iterable[Any], ctx: Any) -> dict[str, Any]:
        backend = RedisBackend.for_job(self.redis_url)
        counts: Counter[int] = Counter()
        size = 0
        try:
            for block in blocks:
                table = BlockAccessor.for_block(block).to_arrow()
                numbers = table.column("block").to_pylist()
                keys = table.column("key").to_pylist()
                values = table.column("value").to_pylist()
                step = self.config.batch_size
                for start in range(0, len(keys), step):
                    chunk = zip(keys[start : start + step], values[start : start + step], strict=True)
                    # decode is two zero-copy views; set_many re-encodes the same bytes
                    size += backend.set_many(((k, *decode_list(v)) for k, v in chunk), self.config.ttl_s)
                counts.update(numbers)
        finally:
            backend.close()
        return {"blocks": dict(counts), "bytes": size}

    def on_write_complete(self, write_result: Any) -> None:
        counts: Counter[int] = Counter()
        size = 0
        for result in write_result.write_returns:
            counts.update(result["blocks"])
            size += result["bytes"]
        blocks = plan(self.n_users, self.n_items, self.config)
        short = [i for i, b in enumerate(blocks) if counts.get(i, 0) != len(b)]
        if short or len(counts) != len(blocks):
            missing = sum(len(blocks[i]) - counts.get(i, 0) for i in short)
            raise WriteError(
                f"{len(short)} of {len(blocks)} blocks were not fully written ({missing} keys short): "
                "no ready marker written"
            )
        backend = RedisBackend.for_job(self.redis_url)
        try:
            elapsed = mark_ready(backend, self.config, self.version, self.n_users, self.n_items, self.started)
        finally:
            backend.close()
        self.written = PrecomputeReport(self.version, sum(counts.values()), size, elapsed)

    def on_write_failed(self, error: Exception) -> None:
        log.error("precompute on Ray failed, no ready marker written: %s", error)


class RayUnavailable(RuntimeError):
    """The Ray cluster's head cannot be reached (Ray itself would keep retrying for minutes)."""


def check_reachable(address: str, timeout_s: float = 5.0) -> None:
    """Fail fast, naming the address, when nothing listens at a ``HOST:PORT`` head address."""
    if address == "local" or "://" in address:
        return
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise RayUnavailable(f"--ray-address must be HOST:PORT or local, got {address!r}")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except OSError as exc:
        raise RayUnavailable(f"cannot reach the Ray cluster at {address}: {exc}") from exc


def _init_ray(address: str, progress: bool) -> None:
    """Connect to ``address`` (``local``: start a one-node cluster in this process's session).

    Workers get this checkout first on their ``PYTHONPATH`` so that, on nodes sharing the
    filesystem (one machine, or an image built from the same tree), they run the driver's code.
    """
    root = str(Path(__file__).resolve().parents[1])
    pythonpath = os.pathsep.join([root, *filter(None, [os.environ.get("PYTHONPATH")])])
    common: dict[str, Any] = {
        "runtime_env": {"env_vars": {"PYTHONPATH": pythonpath}},
        "log_to_driver": progress,
        "logging_level": logging.INFO if progress else logging.WARNING,
    }
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not progress:  # Ray Data logs every dataset's plan and end at INFO
        logging.getLogger("ray.data").setLevel(logging.WARNING)
    if address == "local":
        ray.init(address="local", include_dashboard=False, _node_ip_address=LOCAL_NODE_IP, **common)
        return
    host = address.rpartition(":")[0]
    # A driver on a loopback node must say which node it is on (Ray would guess the host's IP).
    node_ip = host if host.startswith("127.") else None
    ray.init(address=address, _node_ip_address=node_ip, **common)


def precompute_ray(
    store_uri: str,
    redis_url: str,
    config: PrecomputeConfig,
    *,
    version: str | None = None,
    address: str = "local",
    workers: int | None = None,
    threads: int = 1,
    n_candidates: int | None = None,
    progress: bool = True,
) -> PrecomputeReport:
    """Run the precompute job on the Ray cluster at ``address``; raises WriteError on any failure.

    ``workers`` actors (default: the cluster's CPUs divided by ``threads``) each hold one model.
    Write tasks take no CPU slot (they wait on Redis), at most ``workers`` at a time.
    """
    from model_store import open_store

    started = time.perf_counter()
    check_config(config)
    check_url(redis_url)
    store = open_store(store_uri)
    version = version or store.current_version()
    dims = store.manifest(version)["dims"]
    n_users, n_items = int(dims["n_users"]), int(dims["n_items"])
    blocks = plan(n_users, n_items, config)
    check_reachable(address)
    _init_ray(address, progress)
    try:
        ray.data.DataContext.get_current().enable_progress_bars = progress
        if workers is None:
            workers = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
        # a few Ray Data tasks per worker, and never more than 16 blocks of work in one task
        per_task = max(1, min(16, len(blocks) // (4 * workers)))
        rows = [{"block": i} for i in range(len(blocks))]
        ds = ray.data.from_items(rows, override_num_blocks=max(1, -(-len(rows) // per_task)))
        ds = ds.map_batches(
            ListWorker,
            batch_size=1,
            compute=ActorPoolStrategy(size=workers),
            num_cpus=threads,
            fn_constructor_kwargs={
                "store_uri": str(store_uri),
                "version": version,
                "config": config,
                "n_users": n_users,
                "n_items": n_items,
                "n_candidates": n_candidates,
                "threads": threads,
            },
        )
        sink = ListSink(redis_url, config, version, n_users, n_items, started)
        ds.write_datasink(sink, ray_remote_args={"num_cpus": 0}, concurrency=workers)
    except WriteError:
        raise
    except Exception as exc:  # a task, actor or node failure Ray could not recover from
        raise WriteError(f"the Ray job failed, no ready marker written: {type(exc).__name__}: {exc}") from exc
    finally:
        ray.shutdown()
    assert sink.written is not None
    return sink.written
