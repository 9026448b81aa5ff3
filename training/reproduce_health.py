"""Reproduce the SL@K paper's MF rows (BPR, SL, SL@20) on Amazon2014-Health, with the two-stage row.

``python -m training.reproduce_health --seeds 3 [--json]`` trains every loss for each seed on the full
training split with the fixed hyper-parameters in :data:`CHOSEN`, evaluates on test, prints a table next to
the paper's figures, and writes ``docs/results/health.md`` and ``docs/results/health_ndcg.png``.

The constants in :data:`CHOSEN` (including the epoch counts) were picked on a validation slice cut from train
(``--tune`` reruns that search; see ``docs/training.md``). Test metrics are computed every epoch only to
draw the curve; they never feed back into any choice.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from training.health import load_health, split_validation

if TYPE_CHECKING:
    from training.mf import MFConfig

# torch (via training.mf and training.metrics) is imported where a run starts, not here: the
# `recserve` parser reads add_arguments from this module, and `recserve --help` must not pay for torch.
LOSSES = ("bpr", "sl", "slatk")  # training.mf.LOSSES, in the order the table lists them

PAPER: dict[str, tuple[float, float]] = {  # (Recall@20, NDCG@20), MF backbone, Table 2 of the paper
    "bpr": (0.1627, 0.1234),
    "sl": (0.1719, 0.1261),
    "slatk": (0.1823, 0.1390),
}
LABELS = {"bpr": "BPR", "sl": "SL", "slatk": "SL@20"}
PEER_LABELS = {
    "als": "implicit ALS (peer)",
    "bpr": "implicit BPR (peer)",
}  # training.peers, chosen on validation
TWO_STAGE_LABEL = "two-stage (SL@20 → HNSW → ranker)"  # training.health_two_stage

# Shared recipe (authors' run_nni.py): dim 64, batch 1024, Adam, no weight decay, 1000 negatives.
COMMON: dict[str, object] = {"dim": 64, "batch_size": 1024, "weight_decay": 0.0}

# Chosen on the validation slice (seed-0 split: 10% of each user's training items held out, model trained on
# the other 90%, validation NDCG@20 every 5 epochs); the runs are listed in docs/training.md.
CHOSEN: dict[str, dict[str, object]] = {
    "bpr": {"loss": "bpr", "cosine": False, "lr": 5e-3, "weight_decay": 1e-4, "n_negatives": 1, "epochs": 40},
    "sl": {"loss": "sl", "cosine": True, "lr": 1e-1, "n_negatives": 1000, "tau": 0.2, "epochs": 30},
    "slatk": {
        "loss": "slatk",
        "cosine": True,
        "lr": 1e-1,
        "n_negatives": 1000,
        "tau": 0.2,
        "tau_w": 0.5,
        "k": 20,
        "epochs": 30,
    },
}


def make_config(loss: str, seed: int, overrides: dict[str, object] | None = None) -> MFConfig:
    """The final-run config for ``loss``: common recipe + chosen constants (+ optional overrides)."""
    from training.mf import MFConfig

    params = {**COMMON, **CHOSEN[loss], **(overrides or {}), "seed": seed}
    return MFConfig(**params)  # type: ignore[arg-type]


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std (ddof=1, 0 for a single seed) of per-seed figures."""
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def run(
    seeds: int = 3,
    as_json: bool = False,
    out_dir: Path = Path("docs/results"),
    data_dir: Path | None = None,
    progress: bool = False,
    write: bool = True,
    peers: bool = True,
    two_stage: bool = True,
    workers: int = 1,
) -> dict:
    """Train every loss for ``seeds`` seeds on the full train split, evaluate on test, report and save.

    Losses are interleaved within each seed so that the SL@K / SL time-per-epoch ratio is measured under the
    same machine load. Returns the JSON-able summary; with ``as_json`` it is the only thing on stdout (the
    per-seed lines and the table go to stderr), so the output pipes into ``jq``.
    """
    from training.health_two_stage import run_seed

    human = sys.stderr if as_json else sys.stdout
    started = time.perf_counter()
    data = load_health(data_dir)

    per_seed: dict[str, list[dict[str, float]]] = {loss: [] for loss in (*LOSSES, "two_stage")}
    curves: dict[str, list[list[float]]] = {loss: [] for loss in LOSSES}
    jobs = [(seed, data_dir, progress and workers == 1, two_stage) for seed in range(seeds)]
    peer_rows: dict | None = None
    if workers > 1:  # each seed in its own process, one torch thread each: the same figures
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_seed, *job) for job in jobs]
            peer_rows = _peers(data, seeds, peers, human)  # meanwhile, in this process
            results = [f.result() for f in futures]
    else:
        results = [run_seed(*job) for job in jobs]
        peer_rows = _peers(data, seeds, peers, human)
    for seed, (rows, seed_curves) in enumerate(results):
        for name, final in rows.items():
            per_seed[name].append(final)
            label = LABELS.get(name, "two-stage")
            print(
                f"seed {seed} {label:9s} recall@20={final['recall@20']:.4f} ndcg@20={final['ndcg@20']:.4f}",
                file=human,
                flush=True,
            )
        for loss in LOSSES:
            curves[loss].append(seed_curves[loss])

    summary: dict = {}
    for loss in LOSSES:
        rows = per_seed[loss]
        r_mean, r_std = _mean_std([r["recall@20"] for r in rows])
        n_mean, n_std = _mean_std([r["ndcg@20"] for r in rows])
        summary[loss] = {
            "recall@20": r_mean,
            "ndcg@20": n_mean,
            "recall@20_std": r_std,
            "ndcg@20_std": n_std,
            "recall@20_per_seed": [r["recall@20"] for r in rows],
            "ndcg@20_per_seed": [r["ndcg@20"] for r in rows],
            "seconds_per_epoch": float(np.mean([r["seconds_per_epoch"] for r in rows])),
            "epochs": int(CHOSEN[loss]["epochs"]),  # type: ignore[call-overload]
            "paper_recall@20": PAPER[loss][0],
            "paper_ndcg@20": PAPER[loss][1],
            "other_metrics": {
                key: float(np.mean([r[key] for r in rows])) for key in rows[0] if key != "seconds_per_epoch"
            },
        }
    summary["slatk_time_ratio"] = summary["slatk"]["seconds_per_epoch"] / summary["sl"]["seconds_per_epoch"]
    summary["slatk_beats_sl_ndcg_every_seed"] = all(
        a > b
        for a, b in zip(summary["slatk"]["ndcg@20_per_seed"], summary["sl"]["ndcg@20_per_seed"], strict=True)
    )
    summary["seeds"] = seeds
    summary["workers"] = workers
    if per_seed["two_stage"]:
        summary["two_stage"] = _two_stage_summary(per_seed["two_stage"])
    if peer_rows is not None:
        summary["peers"] = peer_rows
    summary["total_seconds"] = time.perf_counter() - started

    table = format_table(summary)
    print(table, file=human)
    if write:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_markdown(out_dir / "health.md", summary, table, seeds)
        _write_plot(out_dir / "health_ndcg.png", curves)
    if as_json:
        print(json.dumps(summary))
    return summary


def _peers(data: Any, seeds: int, peers: bool, human: Any) -> dict | None:
    """The implicit ALS/BPR rows: same split and metric; choices on the seed-0 validation slice."""
    from training import peers as peer_lib

    if not peers:
        return None
    if not peer_lib.available():
        print("implicit not installed (pip install -e '.[peers]'): no peer rows", file=human)
        return None
    split = split_validation(data.train_users, data.train_items, fraction=0.1, seed=0)
    train, test = (data.train_users, data.train_items), (data.test_users, data.test_items)
    log = lambda msg: print(msg, file=human, flush=True)  # noqa: E731
    return peer_lib.evaluate(split, train, test, data.n_users, data.n_items, seeds, (20,), log)


def _two_stage_summary(rows: list[dict[str, float]]) -> dict:
    """Mean, sample std and per-seed values of every two-stage figure."""
    out: dict = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        out[key], out[f"{key}_std"] = _mean_std(values)
        out[f"{key}_per_seed"] = values
    return out


def format_table(summary: dict) -> str:
    """Markdown table: ours (mean ± std over seeds) next to the paper's MF figures."""
    lines = [
        "| Loss | Recall@20 (ours) | NDCG@20 (ours) | Recall@20 (paper) | NDCG@20 (paper) | vs paper R / N |"
        " s/epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for loss in LOSSES:
        s = summary[loss]
        gap_r = 100 * (s["recall@20"] / PAPER[loss][0] - 1)
        gap_n = 100 * (s["ndcg@20"] / PAPER[loss][1] - 1)
        lines.append(
            f"| {LABELS[loss]} | {s['recall@20']:.4f} ± {s['recall@20_std']:.4f} | "
            f"{s['ndcg@20']:.4f} ± {s['ndcg@20_std']:.4f} | {PAPER[loss][0]:.4f} | {PAPER[loss][1]:.4f} | "
            f"{gap_r:+.1f}% / {gap_n:+.1f}% | "
            f"{s['seconds_per_epoch']:.2f} |"
        )
    if "two_stage" in summary:
        t = summary["two_stage"]
        lines.append(
            f"| {TWO_STAGE_LABEL} | {t['recall@20']:.4f} ± {t['recall@20_std']:.4f} | "
            f"{t['ndcg@20']:.4f} ± {t['ndcg@20_std']:.4f} | – | – | – | – |"
        )
    for peer, p in summary.get("peers", {}).items():
        lines.append(
            f"| {PEER_LABELS[peer]} | {p['recall@20']:.4f} ± {p['recall@20_std']:.4f} | "
            f"{p['ndcg@20']:.4f} ± {p['ndcg@20_std']:.4f} | – | – | – | – |"
        )
    lines.append("")
    lines.append(
        f"SL@K / SL time per epoch: {summary['slatk_time_ratio']:.2f}x; "
        f"SL@20 beats SL on NDCG@20 in every seed: {summary['slatk_beats_sl_ndcg_every_seed']}; "
        f"seeds: {summary['seeds']}; total {summary['total_seconds'] / 60:.1f} min"
    )
    return "\n".join(lines)


NOTES = """## Reading the gaps

* SL here is much stronger than the paper's SL row (cosine scores, 1000 negatives, tau 0.2, lr 0.1), so
  SL@20's margin over SL is about +2% NDCG@20 rather than the paper's +10%, even though SL@20's absolute
  figures land within about 1% of the paper's.
* Where a figure is below the paper's floor, the search that chose the constants was small (shared 2-core
  machine): the authors tuned lr x weight decay x tau x tau_w x K x quantile interval per dataset with 200
  epochs and best-checkpoint selection. See `docs/training.md` for the validation runs and the deviations
  from the authors' code (beta from 256 sampled negatives per batch, detached weight)."""


def _standing(summary: dict) -> str:
    """Where SL@20 and the two-stage model stand against each peer row, from the same run's means."""
    rows = [("SL@20", summary["slatk"]["ndcg@20"])]
    if "two_stage" in summary:
        rows.append(("two-stage", summary["two_stage"]["ndcg@20"]))
    parts = [
        f"{PEER_LABELS[peer]} {p['ndcg@20']:.4f} ("
        + ", ".join(f"{name} {100 * (ours / p['ndcg@20'] - 1):+.1f}%" for name, ours in rows)
        + ")"
        for peer, p in summary.get("peers", {}).items()
    ]
    ours = "; ".join(f"{name} {value:.4f}" for name, value in rows)
    text = f"Where recserve stands (NDCG@20): {ours}"
    if parts:
        text += f", against {'; '.join(parts)}"
    if "two_stage" in summary:
        t = summary["two_stage"]
        gain = 100 * (t["ndcg@20"] / summary["slatk"]["ndcg@20"] - 1)
        text += (
            f". The ranker moves SL@20's NDCG@20 by {gain:+.1f}% on Health (its retrieval alone, through "
            f"the same serving code with the HNSW index: {t['retrieval_ndcg@20']:.4f})"
        )
    return text + ".\n\n"


def _write_markdown(path: Path, summary: dict, table: str, seeds: int) -> None:
    import torch

    per_seed = []
    for loss in LOSSES:
        s = summary[loss]
        pairs = ", ".join(
            f"{r:.4f}/{n:.4f}" for r, n in zip(s["recall@20_per_seed"], s["ndcg@20_per_seed"], strict=True)
        )
        per_seed.append(f"- {LABELS[loss]} ({s['epochs']} epochs), Recall@20/NDCG@20 per seed: {pairs}")
    for peer, p in summary.get("peers", {}).items():
        pairs = ", ".join(
            f"{r:.4f}/{n:.4f}" for r, n in zip(p["recall@20_per_seed"], p["ndcg@20_per_seed"], strict=True)
        )
        per_seed.append(
            f"- {PEER_LABELS[peer]}, chosen on validation NDCG@20 from `training/peers.py::GRID` "
            f"({len(p['validation'])} configs): {p['params']}; Recall@20/NDCG@20 per seed: {pairs}"
        )
    if "two_stage" in summary:
        t = summary["two_stage"]
        pairs = ", ".join(
            f"{r:.4f}/{n:.4f}" for r, n in zip(t["recall@20_per_seed"], t["ndcg@20_per_seed"], strict=True)
        )
        per_seed.append(
            f"- {TWO_STAGE_LABEL}: the SL@20 row's model of the same seed, ranked by the ranker trained "
            f"as `training/health_two_stage.py` says (candidate recall@200 on its lists "
            f"{t['candidate_recall']:.3f}, {t['seconds']:.0f} s per seed); "
            f"Recall@20/NDCG@20 per seed: {pairs}"
        )
    cmd = f"nice python -m training.reproduce_health --seeds {seeds} --workers {summary['workers']}"
    text = f"""# Amazon2014-Health, MF backbone: BPR vs SL vs SL@20, the two-stage model, peers

Command: `{cmd}` (wired as `recserve reproduce health`).
Machine: {os.cpu_count()} cores shared with other jobs, torch {torch.__version__} CPU, 1 torch thread,
Python {platform.python_version()}. Training uses the full `train.tsv`; metrics are full-ranking on
`test.tsv` with each user's training items masked, mean over the 1,974 users.
Hyper-parameters and epoch counts are fixed constants chosen on a validation slice of train
(see `docs/training.md`); test was never used for a choice.

{table}

{chr(10).join(per_seed)}

{_standing(summary)}NDCG@20 on test per epoch (mean over seeds, for illustration only): `health_ndcg.png`.

{NOTES}
"""
    path.write_text(text, encoding="utf-8")


def _write_plot(path: Path, curves: dict[str, list[list[float]]]) -> None:
    """NDCG@20 per epoch per loss (mean over seeds). Skipped with a note if matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - optional plotting dependency
        print("matplotlib not installed: skipping", path, file=sys.stderr)
        return
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for loss in LOSSES:
        arr = np.asarray(curves[loss])
        epochs = np.arange(1, arr.shape[1] + 1)
        ax.plot(epochs, arr.mean(axis=0), label=LABELS[loss])
        ax.axhline(PAPER[loss][1], linestyle=":", linewidth=0.8, color=ax.lines[-1].get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel("test NDCG@20")
    ax.set_title("Amazon2014-Health, MF (dotted: paper)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``recserve reproduce health``."""
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds per loss (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON summary (alone on stdout)")
    parser.add_argument("--out-dir", type=Path, default=Path("docs/results"), help="where health.md/png go")
    parser.add_argument("--data-dir", type=Path, default=None, help="data root (default: $RECSERVE_DATA_DIR)")
    parser.add_argument("--tune", action="store_true", help="rerun the validation hyper-parameter search")
    parser.add_argument(
        "--tune-extra",
        action="store_true",
        help="validation runs of the issue-15 SL@20 variants (TUNE_EXTRA)",
    )
    parser.add_argument("--no-peers", action="store_true", help="skip the implicit ALS/BPR peer rows")
    parser.add_argument("--no-two-stage", action="store_true", help="skip the two-stage row")
    parser.add_argument(
        "--workers", type=int, default=1, help="seeds run in this many processes at once (default 1)"
    )
    parser.add_argument("--progress", action="store_true", help="show tqdm progress bars on stderr")


def main(args: argparse.Namespace) -> int:
    """Entry point for the CLI; returns the process exit code."""
    if args.tune or args.tune_extra:
        from training.tune_health import TUNE_EXTRA, tune

        grid = {"slatk": TUNE_EXTRA} if args.tune_extra else None
        tune(load_health(args.data_dir), progress=args.progress, grid=grid)
        return 0
    run(
        seeds=args.seeds,
        as_json=args.json,
        out_dir=args.out_dir,
        data_dir=args.data_dir,
        progress=args.progress,
        peers=not args.no_peers,
        two_stage=not args.no_two_stage,
        workers=max(1, args.workers),
    )
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m training.reproduce_health", description=__doc__)
    add_arguments(_parser)
    raise SystemExit(main(_parser.parse_args()))
