"""The bench catalogue directory follows RECSERVE_BENCH_DIR, so checkouts can share one 1M build."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import bench_dir
from recserve.cli import build_parser


def test_bench_dir_defaults_to_var_bench(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSERVE_BENCH_DIR", raising=False)
    assert bench_dir() == Path("var/bench")


def test_bench_dir_follows_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECSERVE_BENCH_DIR", str(tmp_path))
    assert bench_dir() == tmp_path
    args = build_parser().parse_args(["bench", "--items", "1000"])
    assert args.cache_dir == tmp_path
