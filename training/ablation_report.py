"""The ablation's tables (Markdown) and its results file, from the rows ``ablation.py`` measured."""

from __future__ import annotations

import platform
import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HEADER = (
    "| variant | seeds | ranker val NDCG@10 | two-stage NDCG@10 | two-stage NDCG@20 (per seed) "
    "| × retrieval NDCG@10 (per seed) |\n|---|---|---|---|---|---|"
)


def _mean(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.fmean(r[key] for r in rows)


def _per_seed(values: list[float], fmt: str = ".4f") -> str:
    return ", ".join(f"{v:{fmt}}" for v in values)


def chosen(rows: list[dict[str, Any]], kind: str) -> str | None:
    """The ``kind`` variant with the best mean validation NDCG@10 (first listed on ties), among
    the variants measured on the most seeds (a partial run compares like with like)."""
    sel = [r for r in rows if r["kind"] == kind]
    counts = {n: sum(r["variant"] == n for r in sel) for n in dict.fromkeys(r["variant"] for r in sel)}
    if not counts:
        return None
    names = [n for n, c in counts.items() if c == max(counts.values())]
    return max(
        names,
        key=lambda n: _mean([r for r in rows if r["kind"] == kind and r["variant"] == n], "val_ndcg@10"),
    )


def _lines(rows: list[dict[str, Any]], kind: str) -> list[str]:
    sel_kind = [r for r in rows if r["kind"] == kind]
    pick = chosen(rows, kind)
    out = []
    for name in dict.fromkeys(r["variant"] for r in sel_kind):
        sel = sorted((r for r in sel_kind if r["variant"] == name), key=lambda r: r["seed"])
        ratios = [r["two_stage_ndcg@10"] / r["retrieval_ndcg@10"] for r in sel]
        mark = " **(chosen on val)**" if name == pick else ""
        out.append(
            f"| {name}{mark} | {len(sel)} | {_mean(sel, 'val_ndcg@10'):.4f} "
            f"| {_mean(sel, 'two_stage_ndcg@10'):.4f} "
            f"| {_mean(sel, 'two_stage_ndcg@20'):.4f} ({_per_seed([r['two_stage_ndcg@20'] for r in sel])}) "
            f"| {statistics.fmean(ratios):.3f} ({_per_seed(ratios, '.3f')}) |"
        )
    return out


def format_table(rows: list[dict[str, Any]]) -> str:
    """Two tables: feature sets (default ranker), then ranker variants on the chosen set; the
    retrieval-only and peer rows in the first for reference."""
    feats = [r for r in rows if r["kind"] == "features"]
    parts = ["Feature groups (ranker: the dataset's default):", "", HEADER]
    if feats:
        first = feats[0]["variant"]
        sel = sorted((r for r in feats if r["variant"] == first), key=lambda r: r["seed"])
        parts.append(
            f"| retrieval only | {len(sel)} | – | {_mean(sel, 'retrieval_ndcg@10'):.4f} "
            f"| {_mean(sel, 'retrieval_ndcg@20'):.4f} "
            f"({_per_seed([r['retrieval_ndcg@20'] for r in sel])}) | 1.000 |"
        )
    for name in dict.fromkeys(r["variant"] for r in rows if r["kind"] == "peer"):
        sel = sorted(
            (r for r in rows if r["kind"] == "peer" and r["variant"] == name), key=lambda r: r["seed"]
        )
        parts.append(
            f"| {name} (peer, exact, same run) | {len(sel)} | – | {_mean(sel, 'ndcg@10'):.4f} "
            f"| {_mean(sel, 'ndcg@20'):.4f} ({_per_seed([r['ndcg@20'] for r in sel])}) | – |"
        )
    parts += _lines(rows, "features")
    if any(r["kind"] == "ranker" for r in rows):
        parts += ["", f"Ranker variants on the chosen feature set ({chosen(rows, 'features')}):", "", HEADER]
        parts += _lines(rows, "ranker")
    return "\n".join(parts)


def write_report(out_dir: Path, dataset: str, seeds: int, rows: list[dict[str, Any]], table: str) -> Path:
    """``out_dir/ablation-DATASET.md``: the command, the machine, the tables."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"ablation-{dataset}.md"
    seconds = sum(r.get("seconds", 0.0) for r in rows)
    if not any(r["kind"] == "peer" for r in rows):
        table += (
            f"\n\nNo peer rows in this run (they are measured after phase 2, which this run has not"
            f" reached): the implicit ALS/BPR rows of `recserve reproduce {dataset} --seeds 3` are in"
            f" `docs/results/{dataset}.md`, same split and test metric."
        )
    if not any(r["kind"] == "ranker" for r in rows):
        table += (
            "\n\nPhase 2 (ranker variants) not run yet: the ranker is the dataset's default"
            " (listwise softmax, 2 × 64)."
        )
    text = f"""# Ranker ablation on {dataset}: feature groups and ranker variants, {seeds} seeds

Command: `recserve reproduce ablation --dataset {dataset} --seeds {seeds}` (resumable: rows are
appended to a JSON-lines file and the retrieval fits cached, so a run cut by the heavy-job lock's
time limit is continued by running it again). Written {datetime.now(UTC):%Y-%m-%d %H:%M} UTC,
Python {platform.python_version()}, 2 shared cores; ranker time summed over rows: {seconds / 60:.1f} min.

Retrieval (both MF fits) is trained once per seed with the dataset's configuration; every row
trains only the ranker on top, so rows differ only in what the ranker sees or how it learns.
"ranker val NDCG@10" is the ranker's own validation (held-out users' candidate lists inside
the training data, best epoch): **every choice is made on that column**; the test columns
(NDCG@10/20 on the test split, training items excluded, through the serving code) are only
reported. Peer rows: `implicit` ALS/BPR (`training/peers.py`), chosen on their validation
slice, fitted per seed in the same run (when it reaches them), scored by exact full ranking.

{table}
"""
    path.write_text(text)
    return path
