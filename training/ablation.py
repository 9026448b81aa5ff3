"""Feature-group and ranker ablation: each group on/off, several seeds, one table.

``recserve reproduce ablation --dataset health|ml100k --seeds 3`` fits retrieval (both MF fits of
:func:`~training.pipeline.fit_retrieval`) once per seed with the dataset's configuration, then
trains one ranker per variant on top of it, so variants differ only in what the ranker sees.
Each row reports NDCG on test next to the ranker's own validation NDCG@10 (held-out lists
inside the training data, best epoch). Choices are made on that validation column only:

1. feature sets: none, each group alone (up to 3 groups), all, all but each group; the best by mean validation
   NDCG@10 over the seeds is the chosen set;
2. ranker variants (loss, depth, width) on the chosen set; the best by validation again.

The test columns are reported, never used. Rows are appended to a JSON-lines file as they are
measured and the retrieval fits are cached (``.npz``), so a run killed by a time limit resumes
where it stopped: rerun the same command.

Groups (``TrainConfig`` switches; "recent", "trend", "genre" need interaction times):

* ``recent``: similarity of the candidate to the mean embedding of the user's last items;
* ``trend``: the item's popularity over the latest 10% of the log against its overall share;
* ``genre``: how much of the candidate's tags (genres) the user's latest items carry;
* ``hist``: cosine of the candidate with each of the user's last items, max and mean;
* ``cooc``: co-occurrence of the candidate with the user's history.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from training.ablation_report import chosen, format_table, write_report

GROUPS = ("recent", "trend", "genre", "hist", "cooc")
COOC_DEFAULT = 16  # neighbours kept per item when the group is on (bundle: 8·M bytes per item)
RECENT_DEFAULT = 5
TREND_DEFAULT = 0.1
RANKERS: dict[str, dict[str, Any]] = {
    "softmax 64×2": {},
    "pairwise 64×2": {"loss": "pairwise"},
    "softmax 128×2": {"hidden_units": 128},
    "softmax 64×1": {"num_layers": 1},
    "softmax 64×3": {"num_layers": 3},
}
# Phase 2 also tries more co-occurrence neighbours when the chosen set has the group (with the
# default ranker): the bundle grows 8 bytes per item per neighbour.
COOC_WIDER = (32, 64)


def available_groups(has_times: bool, n_tags: int) -> list[str]:
    """The groups the data can feed: time-based ones need times, ``genre`` more than one tag."""
    return [
        g
        for g in GROUPS
        if (has_times or g not in ("recent", "trend", "genre")) and (g != "genre" or n_tags > 1)
    ]


def variants(groups: list[str]) -> list[tuple[str, dict[str, bool]]]:
    """(name, groups on): none, each alone (up to 3 groups; beyond, the lock's time budget
    keeps only the leave-one-out rows), all, all but each (duplicates dropped, in that order)."""
    singles = [{g} for g in groups] if len(groups) <= 3 else []
    sets = [set(), *singles, set(groups), *(set(groups) - {g} for g in groups)]
    out, seen = [], set()
    for on in sets:
        key = frozenset(on)
        if key in seen:
            continue
        seen.add(key)
        name = "+".join(g for g in groups if g in on) or "base"
        out.append((name, {g: g in on for g in groups}))
    return out


def configure(config: Any, on: dict[str, bool]) -> Any:
    """``config`` with the feature groups switched as ``on`` says (others untouched)."""
    return dataclasses.replace(
        config,
        recent_items=(config.recent_items or RECENT_DEFAULT) if on.get("recent") else 0,
        trend_fraction=(config.trend_fraction or TREND_DEFAULT) if on.get("trend") else 0.0,
        genre_recency=bool(on.get("genre")),
        hist_similarity=bool(on.get("hist")),
        cooc_neighbours=(config.cooc_neighbours or COOC_DEFAULT) if on.get("cooc") else 0,
    )


def _retrieval(data: Any, config: Any, cache: Path, seed: int, progress: bool) -> Any:
    """:func:`fit_retrieval` for ``seed``, read from ``cache`` when an earlier run saved it."""
    from training.pipeline import Retrieval, fit_retrieval

    path = cache / f"retrieval-seed{seed}.npz"
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            return Retrieval(**{k: z[k] for k in z.files if k != "seconds"}, seconds=float(z["seconds"]))
    r = fit_retrieval(data, config, progress)
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path.with_suffix(".tmp.npz"), **dataclasses.asdict(r))
    path.with_suffix(".tmp.npz").rename(path)
    return r


def _row(kind: str, name: str, seed: int, metrics: dict[str, Any], seconds: float) -> dict[str, Any]:
    row = {
        "kind": kind,
        "variant": name,
        "seed": seed,
        "val_ndcg@10": max(metrics["ranker_val_ndcg@10"] or [0.0]),
    }
    for k in (10, 20):
        row[f"retrieval_ndcg@{k}"] = metrics["retrieval"][f"ndcg@{k}"]
        row[f"two_stage_ndcg@{k}"] = metrics["two_stage"][f"ndcg@{k}"]
    row["seconds"] = round(seconds, 1)
    return row


def run(
    dataset: str,
    seeds: int,
    rows_path: Path,
    cache: Path,
    progress: bool = False,
    peers: bool = True,
    features_only: bool = False,
) -> list[dict[str, Any]]:
    """Every variant for seeds 0..seeds-1, appended to ``rows_path`` (rows already there are kept)."""
    from training import datasets
    from training.pipeline import fit_ranker

    rows = [json.loads(line) for line in rows_path.read_text().splitlines()] if rows_path.exists() else []
    done = {(r["kind"], r["variant"], r["seed"]) for r in rows}

    def measure(kind: str, name: str, seed: int, data: Any, config: Any, retrieval: Any) -> None:
        if (kind, name, seed) in done:
            return
        started = time.perf_counter()
        _, metrics = fit_ranker(data, config, retrieval, progress=progress)
        row = _row(kind, name, seed, metrics, time.perf_counter() - started)
        rows.append(row)
        with rows_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(json.dumps(row), file=sys.stderr, flush=True)

    loaded: dict[int, tuple[Any, Any, Any]] = {}

    def seed_state(seed: int) -> tuple[Any, Any, Any]:
        if seed not in loaded:
            data, config = datasets.load(dataset, seed)
            loaded[seed] = (data, config, _retrieval(data, config, cache, seed, progress))
        return loaded[seed]

    rows_path.parent.mkdir(parents=True, exist_ok=True)
    for seed in range(seeds):
        data, config = datasets.load(dataset, seed) if seed not in loaded else loaded[seed][:2]
        groups = available_groups(data.train_time is not None, data.item_tags.shape[1])
        for name, on in variants(groups):
            if ("features", name, seed) not in done:
                data, config, retrieval = seed_state(seed)
                measure("features", name, seed, data, configure(config, on), retrieval)
    if features_only:
        return rows
    chosen_set = dict(variants(groups))[chosen(rows, "features") or "base"]
    tuning: list[tuple[str, dict[str, Any], dict[str, Any]]] = [(n, o, {}) for n, o in RANKERS.items()]
    if chosen_set.get("cooc"):
        tuning += [(f"softmax 64×2, cooc M={m}", {}, {"cooc_neighbours": m}) for m in COOC_WIDER]
    for seed in range(seeds):
        for name, overrides, wider in tuning:
            if ("ranker", name, seed) not in done:
                data, config, retrieval = seed_state(seed)
                ranked = dataclasses.replace(config.ranker, **overrides)
                tuned = dataclasses.replace(configure(config, chosen_set), ranker=ranked, **wider)
                measure("ranker", name, seed, data, tuned, retrieval)
    if peers and not any(r["kind"] == "peer" for r in rows):
        rows += _peer_rows(dataset, seeds, rows_path)
    return rows


def _peer_rows(dataset: str, seeds: int, rows_path: Path) -> list[dict[str, Any]]:
    """implicit ALS/BPR on the same split, chosen on validation (``training/peers.py``), as rows."""
    from training import datasets
    from training import peers as peer_lib

    if not peer_lib.available():
        print("implicit not installed (pip install -e '.[peers]'): no peer rows", file=sys.stderr)
        return []
    data, _ = datasets.load(dataset, 0)
    if dataset == "health":  # the split reproduce_health.py chooses its peers on
        from training.health import split_validation

        split = split_validation(data.train_users, data.train_items, fraction=0.1, seed=0)
        train, test = (data.train_users, data.train_items), (data.test_users, data.test_items)
        found = peer_lib.evaluate(split, train, test, data.n_users, data.n_items, seeds, (10, 20))
    else:
        found = peer_lib.time_split_rows(data, seeds, (10, 20))
    out = []
    for peer, p in found.items():
        for seed in range(seeds):
            row = {"kind": "peer", "variant": peer_lib.LABELS[peer], "seed": seed, "params": p["params"]}
            row |= {f"ndcg@{k}": p[f"ndcg@{k}_per_seed"][seed] for k in (10, 20)}
            out.append(row)
    with rows_path.open("a") as f:
        f.writelines(json.dumps(r) + "\n" for r in out)
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", choices=["ml100k", "health", "synthetic"], default="ml100k")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 (default 3)")
    parser.add_argument(
        "--rows", type=Path, default=None, help="JSON-lines rows file (default: under --cache-dir)"
    )
    parser.add_argument("--cache-dir", type=Path, default=None, help="default /tmp/recserve-ablation/DATASET")
    parser.add_argument(
        "--out", type=Path, default=Path("docs/results"), help="where ablation-DATASET.md goes"
    )
    parser.add_argument("--no-write", action="store_true", help="print the tables, write no file")
    parser.add_argument("--no-peers", action="store_true", help="skip the implicit ALS/BPR peer rows")
    parser.add_argument(
        "--features-only",
        action="store_true",
        help="phase 1 only (feature sets); rerun without it for phase 2",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="train nothing: the tables from the rows measured so far"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON (alone on stdout)")
    parser.add_argument("--progress", action="store_true", help="show training progress bars")


def main(args: argparse.Namespace) -> int:
    """Entry point for ``recserve reproduce ablation``."""
    if args.seeds < 1:
        print(f"recserve reproduce ablation: error: --seeds must be >= 1, got {args.seeds}", file=sys.stderr)
        return 2
    cache = args.cache_dir or Path("/tmp/recserve-ablation") / args.dataset
    rows_path = args.rows or cache / "rows.jsonl"
    if args.report_only:
        rows = [json.loads(line) for line in rows_path.read_text().splitlines()] if rows_path.exists() else []
    else:
        rows = run(
            args.dataset, args.seeds, rows_path, cache, args.progress, not args.no_peers, args.features_only
        )
    rows = [r for r in rows if r["seed"] < args.seeds]
    table = format_table(rows)
    print(table, file=sys.stderr if args.json else sys.stdout)
    if not args.no_write:
        path = write_report(args.out, args.dataset, args.seeds, rows, table)
        print(f"wrote {path}", file=sys.stderr)
    if args.json:
        print(json.dumps(rows))
    return 0
