"""Peer baselines (implicit ALS / BPR): chosen on validation, evaluated on test, shown in the tables."""

import numpy as np
import pytest

from training import peers
from training.reproduce_health import format_table as health_table
from training.reproduce_ml100k import format_table as ml100k_table


def _clustered(seed: int = 0) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """60 users / 40 items in 4 clusters; users interact only within their cluster."""
    rng = np.random.default_rng(seed)
    tr_u, tr_i, te_u, te_i = [], [], [], []
    for u in range(60):
        own = rng.permutation(np.flatnonzero(np.arange(40) % 4 == u % 4))[:8]
        tr_u += [u] * 6
        tr_i += own[:6].tolist()
        te_u += [u] * 2
        te_i += own[6:].tolist()
    return 60, 40, *(np.array(a, dtype=np.int64) for a in (tr_u, tr_i, te_u, te_i))


def test_peers_learn_and_choose_on_validation_only(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("implicit")
    monkeypatch.setitem(peers.GRID, "als", peers.GRID["als"][:2])
    monkeypatch.setitem(peers.GRID, "bpr", peers.GRID["bpr"][:2])
    n_users, n_items, tr_u, tr_i, te_u, te_i = _clustered()
    fit_mask = np.arange(len(tr_u)) % 6 != 0  # one training item per user is the validation slice
    split = (tr_u[fit_mask], tr_i[fit_mask], tr_u[~fit_mask], tr_i[~fit_mask])
    rows = peers.evaluate(split, (tr_u, tr_i), (te_u, te_i), n_users, n_items, seeds=2, ks=(5,))
    assert set(rows) == {"als", "bpr"}
    for row in rows.values():
        assert row["params"] in [t["params"] for t in row["validation"]] and len(row["validation"]) == 2
        best = max(row["validation"], key=lambda t: t["ndcg@5"])
        assert row["params"] == best["params"]
        assert len(row["ndcg@5_per_seed"]) == 2
    # random recall@5 is ~5/34 ~ 0.15; cluster structure is easy for ALS
    assert rows["als"]["recall@5"] > 0.45


def _row(value: float, keys: tuple[str, ...]) -> dict[str, object]:
    row: dict[str, object] = {}
    for k in keys:
        row.update({k: value, f"{k}_std": 0.0, f"{k}_per_seed": [value]})
    return row


def test_tables_show_peer_rows_when_present() -> None:
    base = {"seconds_per_epoch": 1.0, **_row(0.1, ("recall@20", "ndcg@20"))}
    summary: dict = {loss: base for loss in ("bpr", "sl", "slatk")}
    summary.update(slatk_time_ratio=1.0, slatk_beats_sl_ndcg_every_seed=True, seeds=1, total_seconds=1.0)
    assert "implicit ALS" not in health_table(summary)
    summary["peers"] = {
        "als": _row(0.1234, ("recall@20", "ndcg@20")),
        "bpr": _row(0.05, ("recall@20", "ndcg@20")),
    }
    table = health_table(summary)
    assert "| implicit ALS (peer) | 0.1234 ± 0.0000 | 0.1234 ± 0.0000 |" in table and "implicit BPR" in table

    ml = {
        m: _row(0.1, ("recall@10", "ndcg@10"))
        for m in ("popularity", "retrieval_exact", "retrieval", "two_stage")
    }
    assert "implicit" not in ml100k_table(ml, 200, markdown=True)
    ml["implicit_als"] = _row(0.1357, ("recall@10", "ndcg@10"))
    assert "| implicit ALS (peer, exact) | 0.1357 ± 0.0000 | 0.1357 ± 0.0000 | — |" in ml100k_table(
        ml, 200, True
    )


def test_ml100k_report_states_where_we_stand_and_plot_matches_table(tmp_path) -> None:
    from training.reproduce_ml100k import write_report

    keys = ("recall@10", "ndcg@10")
    ml = {m: _row(v, keys) for m, v in (("popularity", 0.08), ("retrieval_exact", 0.14), ("retrieval", 0.14))}
    ml["two_stage"] = {
        **_row(0.16, keys),
        "ndcg@10_vs_retrieval": 1.14,
        "ndcg@10_vs_retrieval_per_seed": [1.14],
    }
    ml["implicit_als"] = {**_row(0.15, keys), "params": {"factors": 64}}
    written = write_report(ml, 1, 200, tmp_path, 1.0, "note")
    md = (tmp_path / "ml100k.md").read_text()
    assert "Where recserve stands (NDCG@10): implicit ALS (peer, exact) 0.1500 (two-stage" in md
    assert "+6.7%" in md and "{'factors': 64}" in md
    assert written[0] == tmp_path / "ml100k.md"
