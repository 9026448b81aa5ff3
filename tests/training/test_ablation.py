"""The ablation command's variants, switches, resumable rows and table (tiny data for the run)."""

from __future__ import annotations

import json
from pathlib import Path

from training import ablation
from training.ablation import COOC_DEFAULT, available_groups, configure, variants
from training.ablation_report import chosen, format_table, write_report
from training.pipeline import TrainConfig


def test_groups_follow_what_the_data_has() -> None:
    assert available_groups(has_times=True, n_tags=19) == ["recent", "trend", "genre", "hist", "cooc"]
    assert available_groups(has_times=False, n_tags=1) == ["hist", "cooc"]  # Health: no times, one tag
    assert available_groups(has_times=True, n_tags=1) == ["recent", "trend", "hist", "cooc"]


def test_variants_none_each_all_and_all_but_each_without_duplicates() -> None:
    names = [n for n, _ in variants(["hist", "cooc"])]
    assert names == ["base", "hist", "cooc", "hist+cooc"]
    names = [n for n, _ in variants(["a", "b", "c"])]
    assert names == ["base", "a", "b", "c", "a+b+c", "b+c", "a+c", "a+b"]
    names = [n for n, _ in variants(["a", "b", "c", "d"])]  # more groups: leave-one-out only
    assert names == ["base", "a+b+c+d", "b+c+d", "a+c+d", "a+b+d", "a+b+c"]


def test_configure_switches_only_the_groups() -> None:
    base = TrainConfig(recent_items=5, n_candidates=77)
    off = configure(base, dict.fromkeys(ablation.GROUPS, False))
    on = configure(base, dict.fromkeys(ablation.GROUPS, True))
    assert (off.recent_items, off.cooc_neighbours, off.trend_fraction) == (0, 0, 0.0)
    assert not off.hist_similarity and not off.genre_recency
    assert (on.recent_items, on.cooc_neighbours, on.hist_similarity, on.genre_recency) == (
        5,
        COOC_DEFAULT,
        True,
        True,
    )
    assert on.trend_fraction > 0 and on.n_candidates == off.n_candidates == 77


def _rows() -> list[dict]:
    return [
        {
            "kind": k,
            "variant": v,
            "seed": s,
            "val_ndcg@10": 0.2 + d,
            "retrieval_ndcg@10": 0.1,
            "retrieval_ndcg@20": 0.12,
            "two_stage_ndcg@10": 0.1 + d,
            "two_stage_ndcg@20": 0.13,
        }
        for s in (0, 1)
        for k, v, d in (
            ("features", "base", 0.01),
            ("features", "cooc", 0.03),
            ("ranker", "softmax 64×2", 0.0),
            ("ranker", "pairwise 64×2", 0.02),
        )
    ] + [
        {"kind": "peer", "variant": "implicit ALS", "seed": s, "ndcg@10": 0.09, "ndcg@20": 0.1}
        for s in (0, 1)
    ]


def test_table_marks_the_validation_choice_and_keeps_peers(tmp_path: Path) -> None:
    rows = _rows()
    assert chosen(rows, "features") == "cooc" and chosen(rows, "ranker") == "pairwise 64×2"
    table = format_table(rows)
    lines = table.splitlines()
    assert any(line.startswith("| retrieval only | 2 | – | 0.1000 | 0.1200") for line in lines)
    assert any(line.startswith("| implicit ALS (peer") and "0.1000" in line for line in lines)
    assert any(line.startswith("| cooc **(chosen on val)** | 2 | 0.2300 | 0.1300 |") for line in lines)
    assert any("(1.100, 1.100)" in line for line in lines if line.startswith("| base |"))
    assert "Ranker variants on the chosen feature set (cooc)" in table
    path = write_report(tmp_path, "health", 2, rows, table)
    assert path.name == "ablation-health.md" and table in path.read_text()


def test_run_resumes_from_its_rows_file(tmp_path: Path, monkeypatch) -> None:
    """Rows already in the file are not measured again (a run cut by the lock's time limit)."""
    rows_path = tmp_path / "rows.jsonl"
    rows_path.write_text("".join(json.dumps(r) + "\n" for r in _rows() if r["kind"] != "ranker"))
    calls: list[str] = []

    def fake_fit_ranker(data, config, retrieval, progress=False):
        calls.append(config.ranker.loss)
        return None, {"ranker_val_ndcg@10": [0.3], "retrieval": {"ndcg@10": 0.1, "ndcg@20": 0.1},
                      "two_stage": {"ndcg@10": 0.2, "ndcg@20": 0.2}}  # fmt: skip

    import training.pipeline

    monkeypatch.setattr(training.pipeline, "fit_ranker", fake_fit_ranker)
    monkeypatch.setattr(ablation, "_retrieval", lambda *a, **k: None)
    monkeypatch.setattr(ablation, "variants", lambda groups: [("base", {}), ("cooc", {"cooc": True})])
    rows = ablation.run("synthetic", 2, rows_path, tmp_path, peers=False)
    # only the phase-2 rows were missing: rankers, and wider co-occurrence (the chosen set has it)
    n_tuning = len(ablation.RANKERS) + len(ablation.COOC_WIDER)
    assert len(calls) == 2 * n_tuning
    assert len(rows_path.read_text().splitlines()) == len(rows) == 4 + 2 + 2 * n_tuning
