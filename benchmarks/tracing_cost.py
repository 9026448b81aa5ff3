"""What request tracing costs: ``python -m benchmarks.tracing_cost [--items N] [--rounds R]``.

Runs the service on a bench catalogue (caches off: every answer computed, every stage traced)
with ``RECSERVE_OTEL_ENDPOINT`` unset (off), set (on), and set with 10% of traces sampled
(sampled), taking turns ``rounds`` times, and drives each with ``wrk`` at concurrency 8 on
``/recommend`` and ``/similar-items``. With tracing on, spans go over real OTLP/HTTP to
:class:`OTLPSink`, a stand-in collector on loopback that decodes and counts them (so the export,
not just the span objects, is in the cost).

The figure that matters is the service's CPU per request (``cpu_us_per_req``, its process tree's
CPU over the requests answered): on a shared machine it moves far less than throughput or
latency. The medians over the rounds are printed with the difference to off.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks.catalogue import DEFAULT_DIR, CatalogueSpec, ensure_catalogue
from benchmarks.service import ServerProcess, _warm, endpoint_paths, run_wrk


class OTLPSink:
    """A stand-in OTLP/HTTP trace collector: decodes each export and keeps, per span, its name,
    attributes and resource attributes (``keep=False``: only the spans per trace, by its root)."""

    def __init__(self, keep: bool = True) -> None:
        self.keep = keep
        self.spans: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        self.per_trace: dict[bytes, int] = {}
        self.roots: dict[bytes, str] = {}
        self.paths: set[str] = set()
        self.lock = threading.Lock()

    def receive(self, path: str, body: bytes) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

        request = ExportTraceServiceRequest.FromString(body)
        with self.lock:
            self.paths.add(path)
            for rs in request.resource_spans:
                resource = {a.key: _value(a.value) for a in rs.resource.attributes}
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        self.per_trace[span.trace_id] = self.per_trace.get(span.trace_id, 0) + 1
                        if not span.parent_span_id:
                            self.roots[span.trace_id] = span.name
                        if self.keep:
                            attrs = {a.key: _value(a.value) for a in span.attributes}
                            self.spans.append((span.name, attrs, resource))

    def spans_per_trace(self, root: str) -> float:
        """Mean spans per trace whose root span is called ``root`` (one trace = one request)."""
        with self.lock:
            counts = [self.per_trace[t] for t, name in self.roots.items() if name == root]
        return statistics.fmean(counts) if counts else 0.0

    def pids(self, name: str) -> set[int]:
        """The ``process.pid`` of every process that exported a span called ``name``."""
        with self.lock:
            return {int(r["process.pid"]) for n, _, r in self.spans if n == name}

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Listen on a free loopback port; yields the endpoint (``http://127.0.0.1:PORT``)."""
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

        sink = self
        reply = ExportTraceServiceResponse().SerializeToString()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                sink.receive(self.path, self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            server.shutdown()
            server.server_close()


def _value(v: Any) -> Any:
    return getattr(v, v.WhichOneof("value"))


# off: setting unset; on: every request traced; sampled: 10% of the traces kept (the SDK's sampler,
# from the standard variables), the others cost a non-recording span each.
MODES: dict[str, dict[str, str]] = {
    "off": {},
    "on": {},
    "sampled": {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
}


def measure(n_items: int, rounds: int, seconds: float, cache_dir: Path) -> dict[str, Any]:
    cat = ensure_catalogue(CatalogueSpec(n_items=n_items), cache_dir, log=print)
    paths = endpoint_paths(cat)
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {mode: {} for mode in MODES}
    sink = OTLPSink(keep=False)
    with sink.serving() as endpoint, tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for mode, mode_env in MODES.items():
                env = {"RECSERVE_CACHE_SIZE": "0", **mode_env}
                if mode != "off":
                    env["RECSERVE_OTEL_ENDPOINT"] = endpoint
                with ServerProcess(cat.store_root, None, extra_env=env) as server:
                    for name in ("recommend", "similar"):
                        _warm(server, paths[name])
                        runs[mode].setdefault(name, []).append(
                            run_wrk(server, paths[name], 8, seconds, Path(tmp))
                        )
                # stopped: its last spans are flushed
        roots = {"recommend": "GET /recommend", "similar": "GET /similar-items"}
        spans_per_request = {name: sink.spans_per_trace(root) for name, root in roots.items()}
    out: dict[str, Any] = {"items": n_items, "rounds": rounds, "seconds": seconds, "endpoints": {}}
    for name in ("recommend", "similar"):
        row = {}
        for mode in MODES:
            rs = runs[mode][name]
            row[mode] = {
                key: statistics.median(r[key] for r in rs)
                for key in ("cpu_us_per_req", "rps", "p50_ms", "p99_ms")
            }
        for mode in ("on", "sampled"):
            row[mode]["cpu_us_added"] = row[mode]["cpu_us_per_req"] - row["off"]["cpu_us_per_req"]
            row[mode]["cpu_ratio"] = row[mode]["cpu_us_per_req"] / row["off"]["cpu_us_per_req"]
        row["spans_per_request"] = spans_per_request.get(name)
        out["endpoints"][name] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--cache-dir", type=Path, default=DEFAULT_DIR)
    args = ap.parse_args()
    result = measure(args.items, args.rounds, args.seconds, args.cache_dir)
    for name, row in result["endpoints"].items():
        print(
            f"{name} ({args.items} items, c=8, median of {args.rounds}; "
            f"{row['spans_per_request']:.2f} spans exported per traced request):"
        )
        for mode in MODES:
            r = row[mode]
            added = f" (+{r['cpu_us_added']:.0f} µs, ×{r['cpu_ratio']:.3f})" if mode != "off" else ""
            print(
                f"  {mode:8} CPU/request {r['cpu_us_per_req']:5.0f} µs{added}; {r['rps']:.0f} rps; "
                f"p50 {r['p50_ms']:.2f} ms; p99 {r['p99_ms']:.2f} ms"
            )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
