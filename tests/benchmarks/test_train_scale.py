"""``recserve bench --parts train`` at a tiny size: the log is generated once, figures come back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recserve.cli import main

TINY = ["--train-users", "300", "--train-items", "12000", "--train-interactions", "6000"]


def test_train_part_runs_alone(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--parts", "train,retrieval"]) == 2
    assert "--parts train runs alone" in capsys.readouterr().err


def test_train_part_end_to_end_and_log_cached(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["bench", "--parts", "train", *TINY, "--train-max-batches", "3", "--train-threads", "1"]
    assert main([*argv, "--cache-dir", str(tmp_path), "--json"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    logs = list(tmp_path.glob("log-*.parquet"))
    assert len(logs) == 1 and result["log"] == str(logs[0])
    assert result["rows"] == 6000 and result["items"] <= 12000 and result["users"] <= 300
    assert result["exact"] == (result["items"] <= 8192) and result["batches_run_per_epoch"] == min(
        3, result["batches_per_epoch"]
    )
    assert result["peak_rss_mb"] >= result["peak_rss_mb_after_train"] >= result["peak_rss_mb_after_read"] > 0
    assert result["hnsw_build_seconds"] > 0 and result["interactions_per_s"] > 0
    stamp = logs[0].stat().st_mtime_ns
    assert main([*argv, "--cache-dir", str(tmp_path), "--train-no-index"]) == 0
    assert logs[0].stat().st_mtime_ns == stamp  # reused, not regenerated
    assert "| HNSW build of the trained items (s) | not run |" in capsys.readouterr().out
