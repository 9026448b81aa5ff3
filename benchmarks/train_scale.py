"""Training at catalogue scale: a power-law log read like a user's file, one MF epoch, the HNSW build.

``recserve bench --parts train`` runs this module in a child process (``python -m
benchmarks.train_scale``) so that its peak RSS (``ru_maxrss``) is the training's alone, not the
CLI's or the log generator's. Steps, each with a progress bar on stderr:

1. the log: :func:`training.synthetic.power_law_log` written once as Parquet (string ids, epoch
   seconds) under ``--cache-dir`` and reused (generated in another child, for the same reason);
2. reading, collapsing duplicates and the per-user time split through the same ingest code as
   ``recserve train --interactions`` (:func:`training.ingest.build.load_pairs` / ``split_by_time``);
3. MF training (``training.mf.train_mf``, SL@K, 1,000 sampled negatives, SparseAdam), for
   ``--epochs`` epochs or ``--max-batches`` batches of one epoch; a capped run reports the
   seconds a full epoch would take at the measured batch rate (``epoch_seconds_extrapolated``);
4. the HNSW index of the trained item embeddings (every core, added in chunks).

Prints one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from benchmarks import bench_dir
from training.synthetic import PowerLawSpec


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes


def log_path(spec: PowerLawSpec, cache_dir: Path) -> Path:
    return Path(cache_dir) / (
        f"log-u{spec.n_users}-i{spec.n_items}-n{spec.n_interactions}-s{spec.seed}-"
        f"e{spec.item_exponent}-a{spec.user_alpha}.parquet"
    )


def write_log(spec: PowerLawSpec, path: Path) -> None:
    """Generate the log and write it as Parquet with string ids (as most exported logs have)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from training.synthetic import power_law_log

    users, items, times = power_law_log(spec)
    table = pa.table(
        {
            "user_id": pc.binary_join_element_wise("u", pc.cast(pa.array(users), pa.string()), ""),
            "item_id": pc.binary_join_element_wise("i", pc.cast(pa.array(items), pa.string()), ""),
            "timestamp": pa.array(times),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, row_group_size=1 << 20)
    tmp.rename(path)


def ensure_log(spec: PowerLawSpec, cache_dir: Path) -> Path:
    """The cached log file, generated in a child process first if missing."""
    path = log_path(spec, cache_dir)
    if not path.is_file():
        print(f"generating {path} (cached for later runs)…", file=sys.stderr, flush=True)
        code = (
            "from benchmarks.train_scale import *; "
            f"write_log(PowerLawSpec(**{asdict(spec)!r}), Path({str(path)!r}))"
        )
        subprocess.run([sys.executable, "-c", code], check=True)
    return path


def measure(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    import faiss
    import numpy as np
    import torch

    from recommender.retrieval import HNSWParams, ItemIndex
    from training.ingest.build import DataSpec, load_pairs
    from training.ingest.log import split_by_time
    from training.mf import MFConfig, train_mf

    torch.set_num_threads(args.threads)
    out: dict[str, Any] = {"log": str(path), "log_bytes": path.stat().st_size}
    t0 = time.perf_counter()
    pairs = load_pairs(DataSpec(interactions=str(path)), progress=True)
    out["read_seconds"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    test = split_by_time(pairs, 0.2, progress=True)
    out["split_seconds"] = time.perf_counter() - t0
    users, items = pairs.users[~test].astype(np.int64), pairs.items[~test].astype(np.int64)
    n_users, n_items = len(pairs.user_ids), len(pairs.item_ids)
    out.update(rows=int(pairs.report.get("rows", 0)) or None, pairs=len(pairs.users))
    out.update(users=n_users, items=n_items, train_interactions=len(users))
    del pairs, test
    out["peak_rss_mb_after_read"] = _peak_mb()

    bpr = args.loss == "bpr"
    cfg = MFConfig(
        loss=args.loss, dim=args.dim, epochs=args.epochs, n_negatives=args.negatives,
        pool_size=args.negatives, lr=5e-3 if bpr else 0.1, cosine=not bpr, tau_w=0.5,
        max_batches=args.max_batches,
    )  # fmt: skip
    t0 = time.perf_counter()
    res = train_mf(users, items, n_users, n_items, cfg, progress=True)
    out["train_seconds"] = time.perf_counter() - t0
    batches_full = -(-len(users) // cfg.batch_size)
    done = min(batches_full, args.max_batches or batches_full)
    epoch_s = [h["seconds"] for h in res.history]
    out.update(
        loss=args.loss, dim=args.dim, negatives=args.negatives, batch_size=cfg.batch_size,
        epochs=len(epoch_s), batches_per_epoch=batches_full, batches_run_per_epoch=done,
        threads=args.threads, seconds_per_batch=epoch_s[-1] / done,
        interactions_per_s=done * cfg.batch_size / epoch_s[-1],
        epoch_seconds_extrapolated=epoch_s[-1] / done * batches_full,
        loss_history=[h["loss"] for h in res.history],
        exact=bool(res.extra["exact"]), sparse_optimizer=bool(res.extra["sparse_optimizer"]),
    )  # fmt: skip
    out["peak_rss_mb_after_train"] = _peak_mb()
    if not args.no_index:
        t0 = time.perf_counter()
        ItemIndex.build(res.item_emb, "hnsw", HNSWParams(), progress=True)
        out["hnsw_build_seconds"] = time.perf_counter() - t0
        out["hnsw_threads"] = faiss.omp_get_max_threads()
    out["peak_rss_mb"] = _peak_mb()
    if args.profile_batches:
        del res
        out["profile"] = profile_batches(users, items, n_users, n_items, cfg, args.profile_batches)
    return out


def profile_batches(
    users: Any, items: Any, n_users: int, n_items: int, cfg: Any, n_batches: int, top: int = 14
) -> dict[str, Any]:
    """Where a batch's time goes: ``n_batches`` of a fresh run under cProfile, the functions with
    the most own time (torch's C functions are leaves, so the backward pass, the optimiser step, the
    matmuls and the sampler's sort/search show up by name). Runs after the peaks are recorded."""
    import cProfile
    import pstats
    from dataclasses import replace

    from training.mf import train_mf

    prof = cProfile.Profile()
    t0 = time.perf_counter()
    prof.enable()
    train_mf(users, items, n_users, n_items, replace(cfg, epochs=1, max_batches=n_batches), progress=False)
    prof.disable()
    wall = time.perf_counter() - t0
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    rows = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:top]
    return {
        "batches": n_batches,
        "seconds": wall,
        "functions": [
            {
                "function": f"{fn} ({Path(file).name}:{line})",
                "calls": st[1],
                "seconds": st[2],
                "share": st[2] / wall,
            }
            for (file, line, fn), st in rows
        ],
    }


def add_arguments(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    p = prefix
    parser.add_argument(f"--{p}users", type=int, default=200_000)
    parser.add_argument(f"--{p}items", type=int, default=1_000_000)
    parser.add_argument(f"--{p}interactions", type=int, default=10_000_000)
    parser.add_argument(f"--{p}loss", choices=("bpr", "sl", "slatk"), default="slatk")
    parser.add_argument(f"--{p}dim", type=int, default=64)
    parser.add_argument(f"--{p}negatives", type=int, default=1000)
    parser.add_argument(f"--{p}epochs", type=int, default=1)
    parser.add_argument(
        f"--{p}max-batches", type=int, default=None, help="cap each epoch at this many batches (extrapolated)"
    )
    parser.add_argument(f"--{p}threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument(f"--{p}no-index", action="store_true", help="skip the HNSW build")
    parser.add_argument(
        f"--{p}profile-batches", type=int, default=0,
        help="after the measured run, profile this many batches (where a batch's time goes)",
    )  # fmt: skip


def child_argv(args: argparse.Namespace, prefix: str = "") -> list[str]:
    """The argument list that reproduces ``args`` (read with ``prefix``) for this module's main."""
    argv = []
    for name in (
        "users",
        "items",
        "interactions",
        "loss",
        "dim",
        "negatives",
        "epochs",
        "max_batches",
        "threads",
        "profile_batches",
    ):
        value = getattr(args, prefix.replace("-", "_") + name)
        if value:  # None / 0: the default
            argv += [f"--{name.replace('_', '-')}", str(value)]
    if getattr(args, prefix.replace("-", "_") + "no_index"):
        argv.append("--no-index")
    return argv


def run_child(args: argparse.Namespace, cache_dir: Path, prefix: str = "") -> dict[str, Any]:
    """Generate (if needed) and measure in child processes; the child's JSON line."""
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.train_scale",
        "--cache-dir",
        str(cache_dir),
        *child_argv(args, prefix),
    ]
    done = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def train_table(r: dict[str, Any]) -> str:
    """The figures of one run as a markdown table."""
    capped = r["batches_run_per_epoch"] < r["batches_per_epoch"]
    log_mb = r["log_bytes"] / 2**20
    mf = f"{r['loss']}, dim {r['dim']}, {r['negatives']} negatives, batch {r['batch_size']}"
    batches = f"{r['batches_run_per_epoch']:,} / {r['batches_per_epoch']:,}" + (" (capped)" if capped else "")
    hnsw = "not run"
    if "hnsw_build_seconds" in r:
        hnsw = f"{r['hnsw_build_seconds']:.1f} ({r['hnsw_threads']} threads)"
    peaks = "/".join(
        f"{r[k]:,.0f}" for k in ("peak_rss_mb_after_read", "peak_rss_mb_after_train", "peak_rss_mb")
    )
    rows = [
        ("log", f"{r['rows']:,} rows, {r['users']:,} users, {r['items']:,} items ({log_mb:.0f} MB Parquet)"),
        ("distinct pairs / train split", f"{r['pairs']:,} / {r['train_interactions']:,}"),
        ("read + collapse (s)", f"{r['read_seconds']:.1f}"),
        ("time split (s)", f"{r['split_seconds']:.1f}"),
        ("MF", f"{mf}, {r['threads']} torch threads"),
        ("batches run / per epoch", batches),
        ("seconds per batch", f"{r['seconds_per_batch']:.4f}"),
        ("interactions / s", f"{r['interactions_per_s']:,.0f}"),
        (
            "seconds per epoch" + (" (extrapolated)" if capped else ""),
            f"{r['epoch_seconds_extrapolated']:,.0f}",
        ),
        ("HNSW build of the trained items (s)", hnsw),
        ("peak RSS after read / train / index (MB)", peaks),
    ]
    table = ["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    if "profile" in r:
        prof = r["profile"]
        table += [
            "",
            f"Where a batch's time goes ({prof['batches']} batches under cProfile, {prof['seconds']:.1f} s; "
            "own time per function):",
            "",
            "| function | calls | s | share |",
            "|---|---|---|---|",
            *(
                f"| `{f['function']}` | {f['calls']:,} | {f['seconds']:.2f} | {100 * f['share']:.1f}% |"
                for f in prof["functions"]
            ),
        ]
    return "\n".join(table)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    parser.add_argument("--cache-dir", type=Path, default=bench_dir())
    args = parser.parse_args(argv)
    spec = PowerLawSpec(n_users=args.users, n_items=args.items, n_interactions=args.interactions)
    path = ensure_log(spec, args.cache_dir)
    result = measure(path, args)
    result["spec"] = asdict(spec)
    print(train_table(result), file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
