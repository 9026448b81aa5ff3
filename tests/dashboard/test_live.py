"""The live section's arithmetic: quantiles from buckets, rates from counter deltas, the ring buffer."""

from __future__ import annotations

import numpy as np
import pytest

from service.dashboard.live import ALL, LiveSampler, histogram_quantile, read_metrics
from service.metrics import LATENCY_BUCKETS, Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def serve(metrics: Metrics, endpoint: str, status: int, seconds: float, n: int = 1) -> None:
    """Count ``n`` answers the way MetricsMiddleware does."""
    labels = (endpoint, "GET", str(status))
    for _ in range(n):
        metrics.requests.labels(*labels).inc()
        metrics.latency.labels(*labels).observe(seconds)


def test_quantile_interpolates_inside_the_bucket_like_promql() -> None:
    # 100 answers, all in (1 ms, 2 ms]: rank 50 is half-way through that bucket, rank 99 at 99%.
    buckets = [(0.001, 0.0), (0.002, 100.0), (float("inf"), 100.0)]
    assert histogram_quantile(0.5, buckets) == pytest.approx(0.0015)
    assert histogram_quantile(0.99, buckets) == pytest.approx(0.001 + 0.001 * 0.99)
    # a rank in the +Inf bucket answers the largest finite bound; nothing observed answers None
    assert histogram_quantile(0.99, [(0.5, 90.0), (1.0, 95.0), (float("inf"), 100.0)]) == 1.0
    assert histogram_quantile(0.5, [(0.5, 0.0), (float("inf"), 0.0)]) is None


def test_quantile_of_a_real_histogram_lands_in_the_bucket_of_the_true_quantile() -> None:
    rng = np.random.default_rng(3)
    observed = rng.lognormal(mean=np.log(0.004), sigma=0.6, size=2000)
    metrics = Metrics()
    for s in observed:
        serve(metrics, "/recommend", 200, float(s))
    buckets = read_metrics(metrics, 0.0, 0.0).endpoints["/recommend"].buckets.items()
    edges = (0.0, *LATENCY_BUCKETS)
    for q in (0.5, 0.99):
        truth = float(np.quantile(observed, q))
        estimate = histogram_quantile(q, buckets)
        i = int(np.searchsorted(LATENCY_BUCKETS, truth))
        assert edges[i] <= estimate <= LATENCY_BUCKETS[i], (q, truth, estimate)


def test_rates_ratios_and_quantiles_over_the_window() -> None:
    metrics, clock = Metrics(), Clock()
    sampler = LiveSampler(metrics, window_s=30, clock=clock, wall_clock=clock)
    serve(metrics, "/recommend", 200, 0.0015, n=10)  # before the first poll: counted in totals only
    first = sampler.poll()
    assert first["window_seconds"] is None
    rec = next(r for r in first["endpoints"] if r["endpoint"] == "/recommend")
    assert rec["requests_total"] == 10 and rec["rate"] is None

    serve(metrics, "/recommend", 200, 0.0015, n=36)
    serve(metrics, "/recommend", 404, 0.0002, n=3)
    serve(metrics, "/recommend", 500, 0.0002, n=1)
    serve(metrics, "/similar-items", 200, 0.004, n=20)
    serve(metrics, "/healthz", 200, 0.0001, n=50)  # ops endpoints and the page's own polling
    serve(metrics, "/dashboard/api/live", 200, 0.0001, n=50)  # are not counted
    metrics.cache.labels("recommend", "hit").inc(30)
    metrics.cache.labels("recommend", "miss").inc(10)
    clock.now += 4.0
    out = sampler.poll()

    assert out["window_seconds"] == pytest.approx(4.0)
    rows = {r["endpoint"]: r for r in out["endpoints"]}
    assert set(rows) == {"/recommend", "/similar-items", ALL}
    rec = rows["/recommend"]
    assert rec["requests_total"] == 50
    assert rec["rate"] == pytest.approx(40 / 4.0)
    assert rec["error_ratio"] == pytest.approx(1 / 40)
    assert rec["client_error_ratio"] == pytest.approx(3 / 40)
    # quantiles use 2xx answers only: the 404s/500 at 0.2 ms do not pull p50 below 1 ms
    assert 1.0 < rec["p50_ms"] <= 2.0
    total = rows[ALL]
    assert total["requests_total"] == 70
    assert total["rate"] == pytest.approx(60 / 4.0)
    assert rows["/similar-items"]["p99_ms"] > rec["p99_ms"]
    (cache,) = out["cache"]
    assert cache["hit_ratio"] == pytest.approx(0.75) and cache["window_lookups"] == 40


def test_ring_buffer_spacing_trimming_and_series() -> None:
    metrics, clock = Metrics(), Clock()
    sampler = LiveSampler(metrics, window_s=10, keep_s=20, min_spacing_s=1.5, clock=clock, wall_clock=clock)
    sampler.poll()
    clock.now += 0.5
    sampler.poll()  # too soon: no new reading
    assert len(sampler.readings) == 1
    for step in range(12):
        serve(metrics, "/recommend", 200, 0.002, n=step)
        clock.now += 2.0
        out = sampler.poll()
    # readings older than keep_s are dropped; one series point per consecutive pair
    assert all(clock.now - r.at <= 20 for r in sampler.readings)
    assert len(out["series"]) == len(sampler.readings) - 1
    last = out["series"][-1]
    assert last["t"] == clock.now
    rate, p50, p99 = last["endpoints"]["/recommend"]
    assert rate == pytest.approx(11 / 2.0) and 1.0 < p50 <= p99 <= 2.0
    # an interval without answers has no point for the endpoint (a gap in the plot)
    clock.now += 2.0
    assert "/recommend" not in sampler.poll()["series"][-1]["endpoints"]
    # the window is the oldest reading at most window_s old
    assert out["window_seconds"] == pytest.approx(10.0)
