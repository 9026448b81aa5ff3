"""The reproduction CLI surface: arguments, fixed constants, and the table format (no training here)."""

import argparse

from training.reproduce_health import CHOSEN, PAPER, add_arguments, format_table, make_config


def test_arguments_defaults_and_flags() -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([])
    assert (args.seeds, args.json, args.tune) == (3, False, False)
    args = parser.parse_args(["--seeds", "1", "--json", "--tune"])
    assert (args.seeds, args.json, args.tune) == (1, True, True)


def test_constants_are_complete_configs() -> None:
    for loss in ("bpr", "sl", "slatk"):
        config = make_config(loss, seed=2)
        assert config.loss == loss and config.seed == 2 and config.epochs == CHOSEN[loss]["epochs"]
    assert make_config("slatk", 0).k == 20


def test_table_lists_ours_next_to_paper() -> None:
    row = {
        "recall@20": 0.1,
        "ndcg@20": 0.05,
        "recall@20_std": 0.0,
        "ndcg@20_std": 0.0,
        "seconds_per_epoch": 1.0,
    }
    summary = {loss: row for loss in PAPER}
    summary.update(slatk_time_ratio=1.1, slatk_beats_sl_ndcg_every_seed=False, seeds=1, total_seconds=60.0)
    table = format_table(summary)
    assert "| SL@20 | 0.1000 ± 0.0000 | 0.0500 ± 0.0000 | 0.1823 | 0.1390 | -45.1% / -64.0% |" in table
    assert "1.10x" in table


def test_losses_match_the_trainer() -> None:
    # reproduce_health restates the loss names so that importing it (for `recserve --help`) skips torch.
    from training import mf, reproduce_health

    assert reproduce_health.LOSSES == mf.LOSSES


def _row(recall: float, ndcg: float) -> dict:
    return {"recall@20": recall, "ndcg@20": ndcg, "recall@20_std": 0.0, "ndcg@20_std": 0.0}


def test_two_stage_row_and_where_recserve_stands() -> None:
    from training.reproduce_health import _standing, _two_stage_summary

    summary = {loss: {**_row(0.1, 0.05), "seconds_per_epoch": 1.0} for loss in PAPER}
    summary.update(slatk_time_ratio=1.1, slatk_beats_sl_ndcg_every_seed=True, seeds=2, total_seconds=6.0)
    per_seed = [
        {"recall@20": r, "ndcg@20": n, "retrieval_ndcg@20": 0.05, "candidate_recall": 0.5, "seconds": 1.0}
        for r, n in ((0.11, 0.054), (0.13, 0.056))
    ]
    summary["two_stage"] = _two_stage_summary(per_seed)
    assert summary["two_stage"]["ndcg@20"] == 0.055
    assert summary["two_stage"]["ndcg@20_per_seed"] == [0.054, 0.056]
    summary["peers"] = {"als": _row(0.08, 0.04)}
    table = format_table(summary)
    assert "| two-stage (SL@20 → HNSW → ranker) | 0.1200 ± 0.0141 | 0.0550 ± 0.0014 |" in table
    text = _standing(summary)
    assert "SL@20 0.0500; two-stage 0.0550" in text
    assert "implicit ALS (peer) 0.0400 (SL@20 +25.0%, two-stage +37.5%)" in text
    assert "by +10.0% on Health" in text


def test_seeds_in_parallel_processes_give_the_serial_figures(tmp_path) -> None:
    """``--workers 2`` runs seeds in spawned processes; every figure must equal the serial run's."""
    import numpy as np

    from training.reproduce_health import run

    rng = np.random.default_rng(0)
    for name, per_user in (("train.tsv", 8), ("test.tsv", 2)):
        lines = ["user_procid\titem_procid"]
        for u in range(40):
            lines += [f"{u}\t{i}" for i in rng.choice(30, per_user, replace=False)]
        (tmp_path / name).write_text("\n".join(lines) + "\n")
    args = {"seeds": 2, "data_dir": tmp_path, "write": False, "peers": False}
    serial = run(**args, workers=1)
    parallel = run(**args, workers=2)
    for name in ("bpr", "sl", "slatk", "two_stage"):
        for key in ("recall@20_per_seed", "ndcg@20_per_seed"):
            assert serial[name][key] == parallel[name][key], (name, key)
    assert len(serial["two_stage"]["ndcg@20_per_seed"]) == 2
    # 30 items < 200 candidates: padded slots must not count as found labels
    assert all(0 <= c <= 1 for c in serial["two_stage"]["candidate_recall_per_seed"])
