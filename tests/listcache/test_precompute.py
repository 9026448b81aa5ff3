"""The precompute job and ``recserve precompute``: what lands in Redis, and how failures read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import redis
from redis_support import SHARED_REDIS_URL, free_port

from listcache import MemoryBackend, WriteError, decode_list, list_key, ready_key
from listcache.precompute import PrecomputeConfig, precompute, similar_lists
from listcache.redis_backend import RedisBackend
from model_store import LocalStore
from recommender.model import RecommenderModel
from recserve.cli import main


@pytest.fixture
def model(published_store: Path) -> RecommenderModel:
    m, _ = LocalStore(published_store).load()
    m.n_candidates = 200
    return m


def test_every_list_is_written_with_a_ttl_and_the_marker_last_without_one(
    model: RecommenderModel, shared_redis: redis.Redis, redis_prefix: str
) -> None:
    report = precompute(
        model,
        RedisBackend(shared_redis),
        PrecomputeConfig(n=30, ttl_s=900, prefix=redis_prefix, batch_size=64),
        progress=False,
    )
    v = model.version
    assert report.keys == model.n_users + model.n_items
    assert report.keys_per_s > 0 and report.bytes == sum(
        shared_redis.strlen(k)
        for k in shared_redis.scan_iter(f"{redis_prefix}:{v}:*:*")
        if not k.endswith(b":ready")
    )
    assert len(list(shared_redis.scan_iter(f"{redis_prefix}:{v}:rec:*", count=1000))) == model.n_users
    assert len(list(shared_redis.scan_iter(f"{redis_prefix}:{v}:sim:*", count=1000))) == model.n_items
    marker = json.loads(shared_redis.get(ready_key(redis_prefix, v)))
    assert marker["n"] == 30 and marker["users"] == model.n_users and marker["items"] == model.n_items
    assert 0 < shared_redis.ttl(list_key(redis_prefix, v, "rec", "u0")) <= 900
    # No TTL on the marker: under a volatile-* eviction policy it can never be evicted before its lists.
    assert shared_redis.ttl(ready_key(redis_prefix, v)) == -1


def test_stored_lists_are_what_the_model_computes(
    model: RecommenderModel, shared_redis: redis.Redis, redis_prefix: str
) -> None:
    precompute(
        model,
        RedisBackend(shared_redis),
        PrecomputeConfig(n=20, prefix=redis_prefix, batch_size=50),
        progress=False,
    )
    for user in (0, 57, 299):
        items, scores = decode_list(
            shared_redis.get(list_key(redis_prefix, model.version, "rec", model.user_ids.external(user))),
            model.n_items,
        )
        want = model.recommend(np.array([user]), 20)[0]
        np.testing.assert_array_equal(items, want.items)
        np.testing.assert_allclose(scores, want.scores, rtol=1e-5)
        assert not set(items.tolist()) & set(model.seen(user).tolist())
    for item in (0, 99, 199):
        items, scores = decode_list(
            shared_redis.get(list_key(redis_prefix, model.version, "sim", model.item_ids.external(item))),
            model.n_items,
        )
        want = model.similar(item, 20)
        np.testing.assert_array_equal(items, want.items)
        np.testing.assert_allclose(scores, want.scores, rtol=1e-6)
        assert item not in items


def test_batched_similar_lists_equal_one_call_per_item(model: RecommenderModel) -> None:
    batch = np.arange(0, 200, 7)
    for item, (items, _) in zip(batch.tolist(), similar_lists(model, batch, 15), strict=True):
        np.testing.assert_array_equal(items, model.similar(item, 15).items)


def test_a_failing_redis_leaves_no_ready_marker(model: RecommenderModel) -> None:
    class Broken:
        """A client whose second pipeline fails, as when Redis dies mid-job."""

        def __init__(self) -> None:
            self.executed = 0
            self.marker_written = False

        def pipeline(self, transaction: bool = False) -> Broken:
            return self

        def set(self, key: str, *args: object, **kw: object) -> None:
            self.marker_written |= key.endswith(":ready")

        def execute(self) -> None:
            self.executed += 1
            if self.executed == 2:
                raise redis.ConnectionError("gone")

    client = Broken()
    with pytest.raises(WriteError, match="gone"):
        precompute(model, RedisBackend(client), PrecomputeConfig(n=5, batch_size=100), progress=False)
    assert not client.marker_written


def test_the_writer_writes_through_any_backend(model: RecommenderModel) -> None:
    """The in-process backend takes the same job: what a reader finds equals the model's answer."""
    memory = MemoryBackend(maxsize=1000)
    report = precompute(model, memory, PrecomputeConfig(n=10, prefix="p", batch_size=128), progress=False)
    assert report.keys == model.n_users + model.n_items == len(memory)
    assert report.bytes == report.keys * (8 + 8 * 10)
    marker = json.loads(memory.marker(ready_key("p", model.version)))
    assert marker["n"] == 10 and marker["users"] == model.n_users
    items, _ = memory.get(list_key("p", model.version, "rec", model.user_ids.external(7)), model.n_items)
    np.testing.assert_array_equal(items, model.recommend(np.array([7]), 10)[0].items)


def test_cli_precompute_writes_and_reports_keys_per_second(
    published_store: Path, shared_redis: redis.Redis, redis_prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = [
        "precompute",
        "--store",
        str(published_store),
        "--redis-url",
        SHARED_REDIS_URL,
        "--prefix",
        redis_prefix,
        "--n",
        "10",
        "--ttl",
        "600",
        "--no-progress",
        "--json",
    ]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "keys/s" in captured.err  # human text on stderr: stdout is the JSON alone
    report = json.loads(captured.out)
    version = LocalStore(published_store).current_version()
    assert report["version"] == version and report["keys"] == 500 and report["keys_per_s"] > 0
    assert shared_redis.exists(ready_key(redis_prefix, version))


@pytest.mark.parametrize(
    ("extra", "message", "status"),
    [  # 1: a runtime failure; 2: called wrong (a bad option value or a missing setting)
        (["--redis-url", "redis://127.0.0.1:{port}/0"], "cannot reach Redis at redis://127.0.0.1:", 1),
        (["--redis-url", "not-a-url"], "--redis-url must start with redis://", 2),
        (["--redis-url", "redis+cluster://nohost"], "expected host:port", 2),
        (["--redis-url", SHARED_REDIS_URL, "--n", "0"], "--n must be >= 1", 2),
        (["--redis-url", SHARED_REDIS_URL, "--version", "nope"], "version nope not found", 1),
        ([], "no Redis to write to", 2),
    ],
)
def test_cli_errors_are_one_line_naming_the_problem(
    published_store: Path,
    extra: list[str],
    message: str,
    status: int,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("RECSERVE_REDIS_URL", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env file
    extra = [a.format(port=free_port()) for a in extra]
    assert main(["precompute", "--store", str(published_store), "--no-progress", *extra]) == status
    err = capsys.readouterr().err
    assert err.startswith("recserve precompute: error: ") and message in err
    assert "Traceback" not in err


def test_cli_without_a_published_model_names_the_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").mkdir()
    assert main(["precompute", "--store", str(tmp_path / "empty"), "--redis-url", SHARED_REDIS_URL]) == 1
    assert "no model published in store" in capsys.readouterr().err


def test_cli_names_a_malformed_setting(
    published_store: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RECSERVE_REDIS_URL", "localhost:6379")
    assert main(["precompute", "--store", str(published_store)]) == 2
    err = capsys.readouterr().err
    assert "invalid RECSERVE_* setting: redis_url" in err and "Traceback" not in err
