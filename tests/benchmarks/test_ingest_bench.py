"""``benchmarks.ingest`` on a tiny log: every format is written, read back to the same rows by each
step in its own process, and the table has a row per format (the figures in docs/data.md come
from the same code at 10M rows)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.ingest import write_log
from training.ingest.build import DataSpec
from training.ingest.log import read_log

ROOT = Path(__file__).resolve().parents[2]


def test_the_formats_written_hold_the_same_rows(tmp_path: Path) -> None:
    paths = write_log(tmp_path, rows=500, users=40, items=90)
    spec = DataSpec(str(paths["csv"]))
    logs = {fmt: read_log(path, spec.columns, False, progress=False) for fmt, path in paths.items()}
    first = logs["csv"]
    for fmt, log in logs.items():
        assert log.n_rows == 500, fmt
        assert [log.user_ids[u] for u in log.users] == [first.user_ids[u] for u in first.users], fmt
        assert [log.item_ids[i] for i in log.items] == [first.item_ids[i] for i in first.items], fmt
        assert (log.times == first.times).all(), fmt


def test_the_benchmark_prints_a_row_per_format_and_step() -> None:
    cmd = [sys.executable, "-m", "benchmarks.ingest", "--rows", "3000", "--users", "100", "--items", "300"]
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, timeout=300).stdout
    results = json.loads(out.strip().splitlines()[-1])
    assert {(r["format"], r["step"]) for r in results} == {
        (f, s) for f in ("csv", "csv.gz", "parquet", "jsonl") for s in ("read", "inspect", "load")
    }
    assert all(r["rows"] == 3000 and r["seconds"] > 0 and r["peak_rss_mb"] > 0 for r in results)
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 4 and table[1].startswith("| csv |")
