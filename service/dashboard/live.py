"""Live figures read from the service's own Prometheus registry (no Prometheus server needed).

Counters and histogram buckets only ever grow, so a rate or a quantile needs two readings. The
:class:`LiveSampler` keeps a small ring buffer of readings taken when the page polls (at most one
per ``min_spacing_s``, the last ``keep_s`` seconds: 200 readings of a few endpoints at the page's
2 s poll, a few tens of KB) and answers with

* per API endpoint, over the newest ``window_s`` seconds: requests/s, p50/p99 of 2xx answers,
  4xx and 5xx ratios, plus the cumulative request count since the process started;
* the cache-hit ratio per cache label (hits / all lookups, as the Grafana panel computes it);
* a latency series, one point per pair of consecutive readings, for the page's plot.

Endpoints are the same set the Grafana dashboard shows: operational ones (``/metrics``,
``/healthz``, ``/readyz``, unmatched ``other``) and the dashboard's own polling are left out, so
opening the page does not inflate the request rate it shows. Quantiles are estimated from the
histogram buckets exactly like PromQL's ``histogram_quantile`` (linear within a bucket), so a
p99 here agrees with Grafana's for the same window; bucket edges (0.5 ms … 1 s) bound the accuracy.

All methods run on the event loop thread (the router's handlers are ``async``), so the ring buffer
needs no lock; reading collectors is thread-safe in prometheus-client.
"""

from __future__ import annotations

import itertools
import math
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from service.metrics import Metrics

OPS_ENDPOINTS = frozenset({"/metrics", "/healthz", "/readyz", "other"})
DASHBOARD_PREFIX = "/dashboard"


def is_api_endpoint(endpoint: str) -> bool:
    """True for endpoints a client calls (the ones the live table and totals count)."""
    return endpoint not in OPS_ENDPOINTS and not endpoint.startswith(DASHBOARD_PREFIX)


def histogram_quantile(q: float, buckets: Iterable[tuple[float, float]]) -> float | None:
    """The q-quantile of cumulative ``(upper_bound, count)`` buckets, as PromQL computes it.

    Linear interpolation inside the bucket holding rank ``q * total`` (lower edge 0 for the first
    bucket); a rank in the ``+Inf`` bucket returns the largest finite bound. ``None`` when empty.
    """
    pairs = sorted(buckets)
    if not pairs or pairs[-1][1] <= 0:
        return None
    total = pairs[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, cumulative in pairs:
        if cumulative >= rank and cumulative > below:
            if math.isinf(upper):
                return lower
            return lower + (upper - lower) * (rank - below) / (cumulative - below)
        lower, below = upper, cumulative
    return lower


@dataclass(frozen=True)
class EndpointReading:
    """Cumulative counts of one endpoint at one moment (all methods summed)."""

    total: float = 0.0
    client_errors: float = 0.0
    server_errors: float = 0.0
    # upper bound (seconds, inf last) -> cumulative count of 2xx answers at most that slow
    buckets: dict[float, float] = field(default_factory=dict)

    def minus(self, older: EndpointReading) -> EndpointReading:
        return EndpointReading(
            self.total - older.total,
            self.client_errors - older.client_errors,
            self.server_errors - older.server_errors,
            {le: c - older.buckets.get(le, 0.0) for le, c in self.buckets.items()},
        )

    def plus(self, other: EndpointReading) -> EndpointReading:
        edges = set(self.buckets) | set(other.buckets)
        return EndpointReading(
            self.total + other.total,
            self.client_errors + other.client_errors,
            self.server_errors + other.server_errors,
            {le: self.buckets.get(le, 0.0) + other.buckets.get(le, 0.0) for le in edges},
        )


@dataclass(frozen=True)
class Reading:
    at: float  # monotonic seconds (for intervals)
    wall: float  # unix seconds (for the plot's time axis)
    endpoints: dict[str, EndpointReading]
    cache: dict[str, dict[str, float]]  # cache label -> result (hit/miss/…) -> count


def _counter_samples(collector: Any) -> list[Any]:
    return [s for metric in collector.collect() for s in metric.samples if s.name.endswith("_total")]


def read_metrics(metrics: Metrics, at: float, wall: float) -> Reading:
    """One reading of the request, latency and cache collectors of ``metrics``."""
    counts: dict[str, list[float]] = {}
    for s in _counter_samples(metrics.requests):
        endpoint, status = s.labels["endpoint"], s.labels["status"]
        row = counts.setdefault(endpoint, [0.0, 0.0, 0.0])
        row[0] += s.value
        row[1] += s.value if status.startswith("4") else 0.0
        row[2] += s.value if status.startswith("5") else 0.0
    buckets: dict[str, dict[float, float]] = {}
    for metric in metrics.latency.collect():
        for s in metric.samples:
            if s.name.endswith("_bucket") and s.labels["status"].startswith("2"):
                per = buckets.setdefault(s.labels["endpoint"], {})
                le = float(s.labels["le"])
                per[le] = per.get(le, 0.0) + s.value
    endpoints = {
        ep: EndpointReading(row[0], row[1], row[2], buckets.get(ep, {})) for ep, row in counts.items()
    }
    cache: dict[str, dict[str, float]] = {}
    for s in _counter_samples(metrics.cache):
        per_result = cache.setdefault(s.labels["endpoint"], {})
        per_result[s.labels["result"]] = per_result.get(s.labels["result"], 0.0) + s.value
    return Reading(at, wall, endpoints, cache)


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


def _ratio(part: float, whole: float) -> float | None:
    return part / whole if whole > 0 else None


def _row(delta: EndpointReading, seconds: float) -> dict[str, Any]:
    pairs = list(delta.buckets.items())
    return {
        "rate": delta.total / seconds if seconds > 0 else None,
        "p50_ms": _ms(histogram_quantile(0.50, pairs)),
        "p99_ms": _ms(histogram_quantile(0.99, pairs)),
        "error_ratio": _ratio(delta.server_errors, delta.total),
        "client_error_ratio": _ratio(delta.client_errors, delta.total),
        "window_requests": delta.total,
    }


ALL = "all API endpoints"


def _api(reading: Reading) -> dict[str, EndpointReading]:
    return {ep: r for ep, r in reading.endpoints.items() if is_api_endpoint(ep)}


def _with_total(per_endpoint: dict[str, EndpointReading]) -> dict[str, EndpointReading]:
    total = EndpointReading()
    for r in per_endpoint.values():
        total = total.plus(r)
    return {**per_endpoint, ALL: total}


def window_stats(old: Reading | None, new: Reading) -> dict[str, Any]:
    """Rows per API endpoint (and their total) over ``old`` → ``new``; rates are ``None`` without
    an ``old`` reading (the first poll), cumulative counts are always there."""
    seconds = new.at - old.at if old is not None else 0.0
    now = _with_total(_api(new))
    before = _with_total(_api(old)) if old is not None else {}
    rows = []
    for endpoint, reading in now.items():
        row = {"endpoint": endpoint, "requests_total": reading.total}
        if old is not None and seconds > 0:
            row.update(_row(reading.minus(before.get(endpoint, EndpointReading())), seconds))
        else:
            row.update(dict.fromkeys(("rate", "p50_ms", "p99_ms", "error_ratio", "client_error_ratio")))
            row["window_requests"] = None
        rows.append(row)
    rows.sort(key=lambda r: (r["endpoint"] == ALL, r["endpoint"]))
    cache = []
    for label, results in sorted(new.cache.items()):
        earlier = old.cache.get(label, {}) if old is not None else {}
        lookups = sum(results.values()) - sum(earlier.values())
        hits = results.get("hit", 0.0) - earlier.get("hit", 0.0)
        cache.append(
            {
                "endpoint": label,
                "hit_ratio": _ratio(hits, lookups) if old is not None else None,
                "window_lookups": lookups if old is not None else None,
                "hit_ratio_total": _ratio(results.get("hit", 0.0), sum(results.values())),
                "lookups_total": sum(results.values()),
            }
        )
    return {"window_seconds": seconds if old is not None else None, "endpoints": rows, "cache": cache}


class LiveSampler:
    """Ring buffer of :class:`Reading` s, filled by :meth:`poll` (one call per page refresh)."""

    def __init__(
        self,
        metrics: Metrics,
        window_s: float = 30.0,
        keep_s: float = 300.0,
        min_spacing_s: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.metrics = metrics
        self.window_s = window_s
        self.keep_s = keep_s
        self.min_spacing_s = min_spacing_s
        self.clock = clock
        self.wall_clock = wall_clock
        self.readings: deque[Reading] = deque()

    def poll(self) -> dict[str, Any]:
        """Summarise a fresh reading against the buffer; keep it only if the last kept reading is
        at least ``min_spacing_s`` old (so two open pages do not halve the plot's time span)."""
        now = self.clock()
        fresh = read_metrics(self.metrics, now, self.wall_clock())
        if not self.readings or now - self.readings[-1].at >= self.min_spacing_s:
            self.readings.append(fresh)
        while len(self.readings) > 1 and now - self.readings[0].at > self.keep_s:
            self.readings.popleft()
        older = [r for r in self.readings if r is not fresh]
        # the oldest reading inside the window; polls further apart than the window use the last one
        old = next((r for r in older if now - r.at <= self.window_s), older[-1] if older else None)
        return {"at": fresh.wall, **window_stats(old, fresh), "series": self.series()}

    def series(self) -> list[dict[str, Any]]:
        """One point per consecutive pair of readings: unix time and, per endpoint with answers in
        that interval, ``[requests/s, p50 ms, p99 ms]``."""
        points = []
        readings = list(self.readings)
        for old, new in itertools.pairwise(readings):
            seconds = new.at - old.at
            before = _with_total(_api(old))
            values = {}
            for endpoint, reading in _with_total(_api(new)).items():
                delta = reading.minus(before.get(endpoint, EndpointReading()))
                if delta.total > 0:
                    row = _row(delta, seconds)
                    values[endpoint] = [row["rate"], row["p50_ms"], row["p99_ms"]]
            points.append({"t": new.wall, "endpoints": values})
        return points
