"""benchmarks.workers_scaling on the tiny catalogue: both settings run, ratios come from the runs."""

from __future__ import annotations

import shutil

import pytest

from benchmarks.catalogue import Catalogue


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt-get install -y wrk)")
def test_workers_scaling_runs_one_and_two_workers(tiny_catalogue: Catalogue) -> None:
    from benchmarks.workers_scaling import measure

    out = measure(tiny_catalogue.spec, tiny_catalogue.store_root.parent.parent, [2], 1.0)
    assert {(r["workers"], r["endpoint"]) for r in out["runs"]} == {
        (w, ep) for w in (1, 2) for ep in ("baseline", "recommend")
    }
    for r in out["runs"]:
        assert r["errors"] == 0 and r["requests"] > 0 and r["cache_fraction"] in (None, 0.0)
    two = next(r for r in out["runs"] if r["workers"] == 2 and r["endpoint"] == "recommend")
    one = next(r for r in out["runs"] if r["workers"] == 1 and r["endpoint"] == "recommend")
    assert out["ratios"]["recommend_c2"] == pytest.approx(two["rps"] / one["rps"])
    assert out["memory"][2]["rss_mb"] > out["memory"][1]["rss_mb"]  # a supervisor and two workers
    assert 0 < out["memory"][2]["pss_mb"] <= out["memory"][2]["rss_mb"]
