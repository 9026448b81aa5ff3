"""A Redis full past its ``maxmemory`` keeps answering correctly: lists are evicted, the ``ready``
marker never is (the compose file's eviction policy + a marker without TTL, training/precompute.py).

A private ``redis-server`` runs with the eviction policy docker-compose.yml gives the ``redis``
service and a ``maxmemory`` far below what one precompute writes. The precompute must succeed
(evicting its own earlier lists as it goes), and every /recommend and /similar-items answer of a
service reading that Redis must equal the answer of a service without any cache.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import yaml
from fastapi.testclient import TestClient

from benchmarks.procs import RedisProcess
from deploy.helpers import COMPOSE
from listcache import ready_key
from listcache.precompute import PrecomputeConfig, precompute
from listcache.redis_backend import RedisBackend
from model_store import LocalStore
from service.app import create_app
from service.settings import Settings

PREFIX = "evict"
# About half of the ~280 kB of lists the small model's precompute writes.
BUDGET_BYTES = 140_000


def compose_redis_flags() -> dict[str, str]:
    """``--flag value`` pairs of the compose file's redis command (as written, before interpolation)."""
    command = yaml.safe_load(COMPOSE.read_text())["services"]["redis"]["command"]
    return {command[i]: command[i + 1] for i in range(1, len(command) - 1) if command[i].startswith("--")}


def test_compose_redis_has_a_memory_limit_and_evicts_only_keys_with_a_ttl() -> None:
    flags = compose_redis_flags()
    assert flags["--maxmemory"]  # e.g. ${REDIS_MAXMEMORY:-256mb}
    assert flags["--maxmemory-policy"].startswith("volatile-"), flags


@pytest.fixture
def redis_with_compose_policy(tmp_path: Path) -> Iterator[redis.Redis]:
    """A private redis-server evicting like the compose one; ``maxmemory`` is set by the test."""
    server = RedisProcess.on_free_port(tmp_path)
    client = redis.Redis(port=server.port, socket_timeout=10)
    try:
        client.config_set("maxmemory-policy", compose_redis_flags()["--maxmemory-policy"])
        yield client
    finally:
        client.close()
        server.kill()


def _answers(client: TestClient, path: str, param: str, ids: list[str]) -> dict[str, dict]:
    out = {}
    for i in ids:
        resp = client.get(path, params={param: i, "k": 10})
        assert resp.status_code == 200, resp.text
        out[i] = resp.json()
    return out


def test_a_full_redis_evicts_lists_not_the_marker_and_every_answer_stays_right(
    published_store: Path, redis_with_compose_policy: redis.Redis
) -> None:
    r = redis_with_compose_policy
    model, _ = LocalStore(published_store).load()
    users = list(model.user_ids.externals(list(range(model.n_users))))
    items = list(model.item_ids.externals(list(range(model.n_items))))
    settings = Settings(store_uri=str(published_store), _env_file=None)
    cached_settings = settings.model_copy(
        update={
            "redis_url": f"redis://127.0.0.1:{r.connection_pool.connection_kwargs['port']}/0",
            "redis_prefix": PREFIX,
            "redis_socket_timeout_s": 1.0,
            "redis_ready_check_s": 0.0,  # see the marker as soon as the precompute wrote it
        }
    )
    without_cache = settings.model_copy(update={"cache_size": 0})
    with TestClient(create_app(cached_settings)) as cached, TestClient(create_app(without_cache)) as plain:
        expected = _answers(plain, "/recommend", "user_id", users)
        expected_sim = _answers(plain, "/similar-items", "item_id", items)
        assert {b["source"] for b in expected.values()} == {"computed"}
        _answers(cached, "/recommend", "user_id", users[:1])  # the service's connection exists now
        # The limit: what Redis uses now (clients included) plus far less than the precompute writes.
        r.config_set("maxmemory", int(r.info("memory")["used_memory"]) + BUDGET_BYTES)
        report = precompute(
            model,
            RedisBackend(r),
            PrecomputeConfig(n=settings.cache_list_size, prefix=PREFIX),
            progress=False,
        )
        evicted = int(r.info("stats")["evicted_keys"])
        assert report.bytes > 2 * BUDGET_BYTES and evicted > 0, (report, evicted)
        assert r.exists(ready_key(PREFIX, model.version))
        assert 1 < r.dbsize() < report.keys  # some lists survived, others must be computed

        sources: Counter[str] = Counter()
        # Twice: the first pass writes computed lists back into the full Redis (more evictions).
        for _ in range(2):
            # Newest lists first (the precompute wrote users, then items): the survivors are read
            # before the write-backs of computed answers evict them in turn.
            got_sim = _answers(cached, "/similar-items", "item_id", items[::-1])
            got = _answers(cached, "/recommend", "user_id", users[::-1])
            for answers, want in ((got, expected), (got_sim, expected_sim)):
                for key, body in answers.items():
                    sources[body["source"]] += 1
                    assert [x["item_id"] for x in body["items"]] == [x["item_id"] for x in want[key]["items"]]
                    assert [x["score"] for x in body["items"]] == pytest.approx(
                        [x["score"] for x in want[key]["items"]]
                    ), key
        errors = [
            line
            for line in cached.get("/metrics").text.splitlines()
            if line.startswith("recserve_redis_errors")
        ]
    print(f"\nevicted {int(r.info('stats')['evicted_keys'])} keys; answers by source {dict(sources)}")
    assert not errors, errors  # eviction is not an error: no OOM refusals, no timeouts
    assert sources["cache"] > 0 and sources["computed"] > 0, sources
    assert r.exists(ready_key(PREFIX, model.version))
    assert int(r.info("stats")["evicted_keys"]) > evicted  # write-backs kept evicting
