"""Smoke test of ``python -m benchmarks.feedback_rollup`` on a few thousand events (SQLite and,
when it answers, PostgreSQL): it runs, folds every event once and reads the window by its index."""

from __future__ import annotations

import json

import pytest
from pg_support import pg_admin_url

from benchmarks.feedback_rollup import main


def test_the_rollup_benchmark_runs_and_reports_each_measure(capsys: pytest.CaptureFixture[str]) -> None:
    pg = pg_admin_url()
    args = ["--events", "3000", *(["--postgres", pg] if pg else [])]
    assert main(args) == 0
    rows = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    backends = {r["backend"] for r in rows}
    assert "sqlite" in backends
    for backend in backends:
        got = {r["measure"]: r for r in rows if r["backend"] == backend}
        assert set(got) == {"catch-up", "refresh", "refresh +1k", "scan", "window"}
        assert got["catch-up"]["calls"] == 1 and got["catch-up"]["events"] == 3000
        # half the loaded events are older than 48 h; the 5 x 1,000 appended ones are in the window
        assert 5000 < got["window"]["events_in_window"] < 5000 + 3000
        assert got["window"]["rollup_rows_read"] <= 48 * 5 * 5
        assert all(r.get("ms_median", 1) > 0 for r in got.values())
    sqlite_plan = next(r["plan"] for r in rows if r["backend"] == "sqlite" and r["measure"] == "window")
    assert "event_counts_hourly" in sqlite_plan and "SCAN" not in sqlite_plan  # an index search
