"""Benchmarks: scripts that print figures (never assertions on speed).

``recserve bench``: how fast the service is at catalogue scale, measured against its limits.

Four parts, each a module with one ``run_*`` entry point returning plain dicts:

* :mod:`benchmarks.catalogue` — synthetic catalogues (10k … 1M items) built once and cached
  under ``$RECSERVE_BENCH_DIR`` (default ``var/bench/``) as ordinary model-store bundles, so the
  service loads them like any model.
* :mod:`benchmarks.retrieval` — HNSW recall@100 against exact ``IndexFlatIP`` over an efSearch
  sweep, queries/s of both, build time and bytes per item.
* :mod:`benchmarks.service` — a real uvicorn process under ``wrk`` load: requests/s and latency
  percentiles per endpoint, as a ratio of a trivial endpoint of the same app; service RSS.
* :mod:`benchmarks.stages` — the time of each stage of one request, so the slowest is named.

:mod:`benchmarks.report` turns the results into the table (stdout, ``docs/performance.md``).
Every ratio is taken between figures measured in the same run: the machine is shared and
absolute times drift from run to run.
"""

import os
from pathlib import Path


def bench_dir() -> Path:
    """Where built catalogues are cached: ``$RECSERVE_BENCH_DIR``, else ``var/bench``.

    One shared directory (e.g. ``RECSERVE_BENCH_DIR=/work/cache/bench``) lets several checkouts
    reuse one 1M build instead of each paying for it.
    """
    return Path(os.environ.get("RECSERVE_BENCH_DIR") or "var/bench")
