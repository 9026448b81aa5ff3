"""``recserve reproduce ml100k`` end to end on a tiny fabricated MovieLens-100K folder."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recserve.cli import main


def test_reproduce_prints_table_json_and_writes_report(
    tiny_ml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    argv = ["reproduce", "ml100k", "--seeds", "2", "--json", "--quiet", "--data-dir", str(tiny_ml)]
    assert main([*argv, "--out-dir", str(out), "--candidates", "30"]) == 0
    stdout, stderr = capsys.readouterr()
    result = json.loads(stdout)  # with --json, stdout is the JSON alone; the table went to stderr
    for method in ("popularity", "retrieval", "two_stage"):
        for key in ("recall@10", "ndcg@10", "recall@10_std", "ndcg@10_std"):
            assert 0.0 <= result[method][key] <= 1.0, (method, key)
        assert len(result[method]["ndcg@10_per_seed"]) == 2
    assert "candidate_recall@30" in result["two_stage"]
    assert result["retrieval"]["candidate_recall@30"] >= result["retrieval"]["recall@10"]
    ratios = result["two_stage"]["ndcg@10_vs_retrieval_per_seed"]
    per_seed = zip(
        result["two_stage"]["ndcg@10_per_seed"], result["retrieval"]["ndcg@10_per_seed"], strict=True
    )
    assert ratios == pytest.approx([t / r for t, r in per_seed])
    table = stderr.splitlines()[1:]  # after the data note
    assert table[0].split()[:3] == ["method", "Recall@10", "NDCG@10"]
    assert [line.split("  ")[0] for line in table[1:5]] == [
        "popularity",
        "MF retrieval (exact)",
        "MF retrieval (HNSW)",
        "two-stage (HNSW + ranker)",
    ]
    md = (out / "ml100k.md").read_text()
    assert f"{result['two_stage']['ndcg@10']:.4f} ± {result['two_stage']['ndcg@10_std']:.4f}" in md
    pytest.importorskip("matplotlib")
    assert (out / "ml100k_ndcg10.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_malformed_data_is_one_error_line(tiny_ml: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tiny_ml / "ml-100k" / "u.data"
    n = path.read_text().count("\n")
    path.write_text(path.read_text() + "1\t2\tx\t3\n")
    assert (
        main(["reproduce", "ml100k", "--seeds", "1", "--quiet", "--data-dir", str(tiny_ml), "--out-dir", ""])
        == 1
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"recserve reproduce ml100k: error: {path}:{n + 1}: rating must be an integer, got 'x'"


def test_missing_data_names_the_setting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["reproduce", "ml100k", "--quiet", "--data-dir", str(tmp_path), "--out-dir", ""]) == 1
    assert "RECSERVE_DATA_DIR" in capsys.readouterr().err
