"""``recserve bench`` end to end at a tiny size (slow: starts a real uvicorn and wrk)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from recserve.cli import main


def test_bad_items_is_a_cli_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--items", "0"])
    assert exc.value.code == 2 and "--items" in capsys.readouterr().err


def test_unknown_part_is_a_cli_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--parts", "retrieval,warp"])
    assert exc.value.code == 2 and "--parts" in capsys.readouterr().err


def test_cache_run_needs_redis(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSERVE_REDIS_URL", raising=False)
    assert main(["bench", "--items", "400", "--cache"]) == 2
    assert "--redis-url" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed (apt-get install -y wrk)")
def test_bench_runs_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = tmp_path / "performance.md"
    argv = [
        "bench", "--items", "400", "--users", "60", "--duration", "1", "--concurrency", "2",
        "--queries", "20", "--ef", "16", "--cache-dir", str(tmp_path / "cache"), "--doc", str(doc), "--json",
    ]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    results = json.loads(out)  # with --json, stdout is the JSON alone
    n = "400"
    assert set(results) >= {"retrieval", "service", "rss_mb", "stages", "targets"}
    assert 0 <= results["retrieval"][n]["recall@100"] <= 1 and results["retrieval"][n]["speedup"] > 0
    svc = results["service"][n]
    for ep in ("baseline", "recommend", "recommend_fresh", "similar"):
        run = svc[ep]["by_concurrency"]["2"]
        assert run["errors"] == 0 and run["requests"] > 0
        assert {"rps", "p50_ms", "p99_ms", "ratio_to_baseline"} <= set(svc[ep])
        assert svc[ep]["p50_ms"] <= svc[ep]["p99_ms"]
    assert svc["recommend"]["by_concurrency"]["2"]["cache_fraction"] == 0.0  # all computed
    assert svc["baseline"]["ratio_to_baseline"] == 1.0
    for ep in ("recommend", "similar"):  # the limit, measured in the same run
        assert 0 < svc[ep]["ratio_to_limit"] == pytest.approx(svc[ep]["rps"] / svc[ep]["limit_rps"])
        search_us = results["stages"][n][f"{ep}_us"]["retrieval"]
        base_us = svc["baseline"]["cpu_us_per_req"]
        assert svc[ep]["limit_rps"] == pytest.approx(1e6 / (base_us + search_us))
    loop = svc["recommend"]["open_loop"]  # constant rate at half the closed-loop maximum
    assert loop["rate"] == pytest.approx(0.5 * svc["recommend"]["rps"])
    assert loop["errors"] == 0 and loop["ok"] == loop["scheduled"] == loop["computed"] > 0
    assert 0 < svc["recommend"]["open_loop_p99_ms"] == loop["p99_ms"]
    assert results["rss_mb"][n] > 0
    text = doc.read_text()
    assert "recserve bench" in text and "| measure |" in text and "## Targets" in text
    assert "/recommend p99 with fresh feedback vs without" in text
    assert "open loop at 50% of max" in text
    assert "of limit" in text and "/recommend computed / limit" in text
    assert "| measure |" in err  # the table went to stderr
