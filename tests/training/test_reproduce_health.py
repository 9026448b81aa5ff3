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
