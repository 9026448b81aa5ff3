"""Feature-group ablation of the ranker: each group on/off, several seeds, one table.

``recserve reproduce ablation --dataset ml100k --seeds 3`` trains the two-stage model once per
(variant, seed) with the dataset's documented configuration, switching only the ranker's feature
groups, and prints NDCG on test next to the ranker's own validation NDCG@10 (its held-out
lists inside the training data, best epoch). Defaults are chosen on that validation column; the
test columns are only reported.

Groups:

* ``recent``: similarity of the candidate to the mean embedding of the user's last items
  (``TrainConfig.recent_items``; needs interaction times, so absent on Health);
* ``cooc``: co-occurrence of the candidate with the user's history (``TrainConfig.cooc_neighbours``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from typing import Any

GROUPS = ("recent", "cooc")
COOC_DEFAULT = 16  # neighbours kept per item when the group is on (bundle: 8·M bytes per item)


def variants(has_times: bool) -> list[tuple[str, dict[str, bool]]]:
    """(name, groups on) for every on/off combination that the data allows."""
    groups = [g for g in GROUPS if has_times or g != "recent"]
    out = []
    for mask in range(2 ** len(groups)):
        on = {g: bool(mask >> j & 1) for j, g in enumerate(groups)}
        name = "+".join(g for g in groups if on[g]) or "base"
        out.append((name, on))
    return out


def configure(config: Any, on: dict[str, bool], recent_default: int) -> Any:
    """``config`` with the feature groups switched as ``on`` says (others untouched)."""
    return dataclasses.replace(
        config,
        recent_items=recent_default if on.get("recent") else 0,
        cooc_neighbours=COOC_DEFAULT if on.get("cooc") else 0,
    )


def run(dataset: str, seeds: int, progress: bool = False) -> list[dict[str, Any]]:
    """Train every variant for seeds 0..seeds-1; returns one row per (variant, seed)."""
    from training import datasets
    from training.pipeline import train_model

    rows: list[dict[str, Any]] = []
    for seed in range(seeds):
        data, config = datasets.load(dataset, seed)
        recent_default = config.recent_items or 5
        for name, on in variants(data.train_time is not None):
            started = time.perf_counter()
            _, metrics = train_model(data, configure(config, on, recent_default), progress=progress)
            row = {"variant": name, "seed": seed, "val_ndcg@10": max(metrics["ranker_val_ndcg@10"] or [0.0])}
            for k in (10, 20):
                row[f"retrieval_ndcg@{k}"] = metrics["retrieval"][f"ndcg@{k}"]
                row[f"two_stage_ndcg@{k}"] = metrics["two_stage"][f"ndcg@{k}"]
            row["seconds"] = round(time.perf_counter() - started, 1)
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """Markdown: one line per variant, mean over seeds (per-seed two-stage/retrieval ratios)."""
    lines = [
        "| variant | seeds | ranker val NDCG@10 | two-stage NDCG@10 | two-stage NDCG@20 "
        "| × retrieval NDCG@10 (per seed) |",
        "|---|---|---|---|---|---|",
    ]
    names = list(dict.fromkeys(r["variant"] for r in rows))
    for name in ["retrieval only", *names]:
        sel = [r for r in rows if r["variant"] == (name if name != "retrieval only" else names[0])]

        def mean(key: str, sel: list[dict[str, Any]] = sel) -> float:
            return statistics.fmean(r[key] for r in sel)

        if name == "retrieval only":
            lines.append(
                f"| retrieval only | {len(sel)} | – | {mean('retrieval_ndcg@10'):.4f} "
                f"| {mean('retrieval_ndcg@20'):.4f} | 1.000 |"
            )
            continue
        ratios = [r["two_stage_ndcg@10"] / r["retrieval_ndcg@10"] for r in sel]
        lines.append(
            f"| {name} | {len(sel)} | {mean('val_ndcg@10'):.4f} | {mean('two_stage_ndcg@10'):.4f} "
            f"| {mean('two_stage_ndcg@20'):.4f} | {statistics.fmean(ratios):.3f} "
            f"({', '.join(f'{x:.3f}' for x in ratios)}) |"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=["ml100k", "health", "synthetic"], default="ml100k")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON (alone on stdout)")
    parser.add_argument("--progress", action="store_true", help="show training progress bars")


def main(args: argparse.Namespace) -> int:
    """Entry point for ``recserve reproduce ablation``."""
    if args.seeds < 1:
        print(f"recserve reproduce ablation: error: --seeds must be >= 1, got {args.seeds}", file=sys.stderr)
        return 2
    rows = run(args.dataset, args.seeds, args.progress)
    table = format_table(rows)
    print(table, file=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(rows))
    return 0
