"""The ablation command's variants, switches and table (no training: rows are given)."""

from __future__ import annotations

from training.ablation import COOC_DEFAULT, configure, format_table, variants
from training.pipeline import TrainConfig


def test_every_on_off_combination_the_data_allows() -> None:
    assert [n for n, _ in variants(has_times=True)] == ["base", "recent", "cooc", "recent+cooc"]
    assert [n for n, _ in variants(has_times=False)] == ["base", "cooc"]  # no times: no recent group


def test_configure_switches_only_the_groups() -> None:
    base = TrainConfig(recent_items=5, n_candidates=77)
    off = configure(base, {"recent": False, "cooc": False}, 5)
    on = configure(base, {"recent": True, "cooc": True}, 5)
    assert (off.recent_items, off.cooc_neighbours) == (0, 0)
    assert (on.recent_items, on.cooc_neighbours) == (5, COOC_DEFAULT)
    assert on.n_candidates == off.n_candidates == 77


def test_table_has_a_line_per_variant_with_per_seed_ratios() -> None:
    rows = [
        {"variant": v, "seed": s, "val_ndcg@10": 0.2 + d, "retrieval_ndcg@10": 0.1, "retrieval_ndcg@20": 0.12,
         "two_stage_ndcg@10": 0.1 + d, "two_stage_ndcg@20": 0.13}
        for s in (0, 1) for v, d in (("base", 0.01), ("cooc", 0.03))
    ]  # fmt: skip
    table = format_table(rows).splitlines()
    assert table[2].startswith("| retrieval only | 2 |")
    assert table[3].startswith("| base | 2 | 0.2100 | 0.1100 |") and "(1.100, 1.100)" in table[3]
    assert table[4].startswith("| cooc | 2 | 0.2300 | 0.1300 |") and "1.300" in table[4]
