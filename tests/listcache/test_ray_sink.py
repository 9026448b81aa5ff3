"""The Ray engine's two pieces, called directly (no cluster): the worker computes the local
engine's blocks, and the sink writes them and refuses to mark a version any block of which is
missing or short."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import redis
from redis_support import SHARED_REDIS_URL

from listcache import WriteError, encode_list, ready_key
from listcache.precompute import PrecomputeConfig, block_lists, plan
from model_store import LocalStore

pytest.importorskip("ray", reason="the extra recserve[distributed] is not installed")
from ray.data.datasource.datasink import WriteResult

from listcache.ray_engine import ListSink, ListWorker, RayUnavailable, check_reachable


@pytest.fixture
def job(published_store: Path, redis_prefix: str) -> tuple[ListWorker, ListSink, PrecomputeConfig]:
    store = LocalStore(published_store)
    version = store.current_version()
    config = PrecomputeConfig(n=20, prefix=redis_prefix, batch_size=64, ttl_s=600)
    worker = ListWorker(str(published_store), version, config, 300, 200, n_candidates=None, threads=1)
    sink = ListSink(SHARED_REDIS_URL, config, version, 300, 200, started=0.0)
    return worker, sink, config


def test_the_worker_computes_whole_blocks_as_the_local_engine_does(
    job: tuple[ListWorker, ListSink, PrecomputeConfig], published_store: Path
) -> None:
    worker, _, config = job
    blocks = plan(300, 200, config)
    assert [b.kind for b in blocks] == ["rec"] * 5 + ["sim"] * 4 and len(blocks[4]) == 300 - 4 * 64
    out = worker({"block": np.array([1, 6])})
    model, _ = LocalStore(published_store).load()
    want = block_lists(model, blocks[1], config) + block_lists(model, blocks[6], config)
    assert out["block"].tolist() == [1] * 64 + [6] * 64
    assert out["key"].tolist() == [key for key, _, _ in want]
    assert out["value"].tolist() == [encode_list(items, scores) for _, items, scores in want]


def test_the_sink_writes_every_row_and_marks_only_a_complete_version(
    job: tuple[ListWorker, ListSink, PrecomputeConfig], shared_redis: redis.Redis, redis_prefix: str
) -> None:
    worker, sink, config = job
    blocks = plan(300, 200, config)
    tables = [pa.table(worker({"block": np.array([i])})) for i in range(len(blocks))]
    results = [sink.write([t], ctx=None) for t in tables]
    assert [r["blocks"] for r in results] == [{i: len(b)} for i, b in enumerate(blocks)]
    first = tables[0].to_pydict()
    assert shared_redis.get(first["key"][0]) == first["value"][0]
    assert 0 < shared_redis.ttl(first["key"][0]) <= 600
    marker = ready_key(redis_prefix, sink.version)

    def result(returns: list[dict]) -> WriteResult:
        return WriteResult(num_rows=0, size_bytes=0, write_returns=returns)

    lost_block = results[:3] + results[4:]
    short_block = [*results[:-1], {"blocks": {len(blocks) - 1: len(blocks[-1]) - 1}, "bytes": 0}]
    for incomplete in (lost_block, short_block):
        with pytest.raises(WriteError, match="no ready marker written"):
            sink.on_write_complete(result(incomplete))
        assert not shared_redis.exists(marker)

    sink.on_write_complete(result(results))
    assert shared_redis.exists(marker)
    assert sink.written is not None and sink.written.keys == 500
    assert sink.written.bytes == sum(len(v) for t in tables for v in t.column("value").to_pylist())


@pytest.mark.parametrize("address", ["nohost", "127.0.0.2:notaport"])
def test_a_malformed_ray_address_is_named(address: str) -> None:
    with pytest.raises(RayUnavailable, match="HOST:PORT or local"):
        check_reachable(address)
