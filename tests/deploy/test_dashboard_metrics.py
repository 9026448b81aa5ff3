"""Every metric (and label) the Grafana dashboard queries is in the service's ``/metrics`` output."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from deploy.helpers import dashboard_queries, grouping_labels, metric_names, selectors
from service.app import create_app
from service.settings import Settings
from training.data import InteractionData

HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")
# Series only created by events the in-process test app cannot cause on its own (a cache lookup,
# a Redis failure) or that need Redis (the breaker): for these the family must be declared
# (# TYPE), samples are not required.
EVENT_ONLY = {"recserve_redis_errors_total", "recserve_redis_breaker_state"}
# Prometheus adds these to every scrape, or makes them by evaluating the alerting rules; they are
# not the service's to expose.
SCRAPE_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "ALERTS", "ALERTS_FOR_STATE"}

_SAMPLE = re.compile(r"^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{(.*)\})?\s")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Exposition:
    """The parts of a text exposition these tests need: declared families and samples with labels."""

    def __init__(self, text: str) -> None:
        self.types: dict[str, str] = {}
        self.samples: dict[str, list[dict[str, str]]] = {}
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                _, _, name, kind = line.split(maxsplit=3)
                self.types[name] = kind
            elif line and not line.startswith("#"):
                m = _SAMPLE.match(line)
                assert m, line
                self.samples.setdefault(m.group(1), []).append(dict(_LABEL.findall(m.group(2) or "")))

    def declared(self, name: str) -> bool:
        if name in self.types:
            return True
        base = next((name[: -len(s)] for s in HISTOGRAM_SUFFIXES if name.endswith(s)), None)
        return base is not None and self.types.get(base) in ("histogram", "summary")


def _send_traffic(client: TestClient, data: InteractionData, monkeypatch: pytest.MonkeyPatch) -> None:
    for user in data.user_ids[:5]:
        assert client.get("/recommend", params={"user_id": user, "k": 5}).status_code == 200
    # the same request again: answered from the in-process cache (a hit for the hit-ratio panel)
    again = client.get("/recommend", params={"user_id": data.user_ids[0], "k": 5})
    assert again.status_code == 200 and again.json()["source"] == "cache"
    assert client.post("/recommend", json={"user_id": data.user_ids[5], "k": 3}).status_code == 200
    assert client.get("/similar-items", params={"item_id": data.item_ids[0], "k": 5}).status_code == 200
    assert client.get("/similar-items", params={"item_id": "no-such-item"}).status_code == 404
    assert client.get("/recommend", params={"user_id": data.user_ids[0], "k": 0}).status_code == 422
    # A crash inside serving must still be counted, as a 5xx, for the error-ratio panels.
    with monkeypatch.context() as m:
        m.setattr(client.app.state.serving, "recommend", _crash)
        m.setattr(client.app.state.serving, "recommend_steps", _crash)  # a micro-batch's entry
        with pytest.raises(RuntimeError, match="injected"):
            client.get("/recommend", params={"user_id": data.user_ids[0]})


def _crash(*args: object, **kwargs: object) -> None:
    raise RuntimeError("injected failure")


@pytest.fixture
def exposition(
    client: TestClient, small_data: InteractionData, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Exposition:
    """/metrics after real traffic, plus the load-failure series of an instance with an empty store."""
    _send_traffic(client, small_data, monkeypatch)
    text = client.get("/metrics").text
    broken = create_app(Settings(store_uri=str(tmp_path / "empty-store"), _env_file=None))
    with TestClient(broken) as c:
        assert c.get("/readyz").status_code == 503
        failures = [line for line in c.get("/metrics").text.splitlines() if "model_load_failures" in line]
    return Exposition(text + "\n" + "\n".join(failures) + "\n")


def _queried_metrics() -> set[str]:
    names = set().union(*(metric_names(expr) for _, expr in dashboard_queries()))
    return names - SCRAPE_SYNTHETIC


def test_dashboard_queries_something() -> None:
    assert len(dashboard_queries()) >= 10
    assert {n for n in _queried_metrics() if n.startswith("recserve_")} >= {
        "recserve_requests_total",
        "recserve_request_latency_seconds_bucket",
        "recserve_stage_latency_seconds_bucket",
        "recserve_cache_requests_total",
        "recserve_candidates_bucket",
        "recserve_model_info",
        "recserve_model_load_failures_total",
        "recserve_redis_errors_total",
    }


def test_every_dashboard_metric_is_exposed(exposition: Exposition) -> None:
    missing = sorted(n for n in _queried_metrics() if not exposition.declared(n))
    assert not missing, f"dashboard queries metrics /metrics does not declare: {missing}"
    no_samples = sorted(n for n in _queried_metrics() - EVENT_ONLY if n not in exposition.samples)
    assert not no_samples, f"no samples after traffic for: {no_samples}"


def test_dashboard_label_matchers_match_real_series(exposition: Exposition) -> None:
    """``endpoint="/recommend"`` style matchers must select something (a typo would show "No data")."""
    checked = 0
    for title, expr in dashboard_queries():
        for metric, matchers in selectors(expr):
            series = exposition.samples.get(metric)
            if not series:
                continue
            for label, op, value in matchers:
                if label in ("job", "instance"):  # added by Prometheus at scrape time
                    continue
                assert any(label in s for s in series), f"{title}: {metric} has no label {label!r}"
                if op in ("=", "=~"):
                    rx = re.compile(value if op == "=~" else re.escape(value))
                    assert any(rx.fullmatch(s.get(label, "")) for s in series), (
                        f"{title}: no {metric} series with {label}{op}{value!r}"
                    )
                checked += 1
    assert checked > 0


def test_dashboard_groups_by_labels_the_metrics_have(exposition: Exposition) -> None:
    for title, expr in dashboard_queries():
        names = metric_names(expr) - SCRAPE_SYNTHETIC
        labels_seen = {k for n in names for s in exposition.samples.get(n, []) for k in s}
        if not labels_seen:
            continue  # only event-only families in this query: no samples to compare with
        for label in grouping_labels(expr):
            declared_only = any(n in EVENT_ONLY for n in names)
            assert label in labels_seen or declared_only, f"{title}: groups by {label!r}, no metric has it"


def test_stage_breakdown_covers_the_model_stages(exposition: Exposition) -> None:
    stages = {s["stage"] for s in exposition.samples["recserve_stage_latency_seconds_count"]}
    assert {"retrieval", "features", "ranking", "selection"} <= stages


def test_latency_is_split_by_status(exposition: Exposition) -> None:
    """Fast 404s must not dilute the latency of answers: the histogram carries the status."""

    def statuses(endpoint: str) -> set[str]:
        samples = exposition.samples["recserve_request_latency_seconds_count"]
        return {s["status"] for s in samples if s["endpoint"] == endpoint}

    assert {"200", "422", "500"} <= statuses("/recommend")
    assert {"200", "404"} <= statuses("/similar-items")
