"""``recserve bench``: retrieval, service, stage and memory figures at catalogue scale.

Prints one table (rows = measures, columns = catalogue sizes); with ``--json`` stdout holds one
JSON object alone and the table goes to stderr; ``--doc PATH`` writes the table with the machine
description and this command line (``docs/performance.md``). Built catalogues are cached under
``--cache-dir``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from recserve.commands import CLIError, UsageError, human_out, print_json_line


def _positive(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _parts(text: str) -> list[str]:
    from benchmarks.suite import PARTS

    known = (*PARTS, "train")
    parts = [p.strip() for p in text.split(",") if p.strip()]
    bad = [p for p in parts if p not in known]
    if bad or not parts:
        raise argparse.ArgumentTypeError(f"parts must be a comma list of {', '.join(known)}; got {text!r}")
    return parts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--items", type=_positive, nargs="+", default=[10_000, 100_000, 1_000_000], metavar="N",
        help="catalogue sizes (default: 10000 100000 1000000)",
    )  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the results as JSON (alone on stdout)")
    parser.add_argument(
        "--parts", type=_parts, default=["retrieval", "stages", "service"],
        help="comma list of retrieval,stages,service,train (default: retrieval,stages,service); train: "
        "MF + HNSW on a power-law log of --train-users x --train-items x --train-interactions",
    )  # fmt: skip
    parser.add_argument("--users", type=_positive, default=10_000, help="users per catalogue (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per wrk run (default 5)")
    parser.add_argument(
        "--concurrency", type=_positive, nargs="+", default=[1, 8], help="connections (default: 1 8)"
    )
    parser.add_argument(
        "--workers", type=_positive, default=1, help="uvicorn worker processes for the service (default 1)"
    )
    parser.add_argument(
        "--ef-construction", type=_positive, default=None,
        help="HNSW efConstruction of the built catalogues (default: the production default)",
    )  # fmt: skip
    parser.add_argument(
        "--hnsw-m", type=_positive, default=None, help="HNSW M (default: the production default)"
    )
    parser.add_argument(
        "--cooc-neighbours", type=int, default=0,
        help="give the catalogues' ranker the co-occurrence feature group with M neighbours per item "
        "(default 0: without it), to price the group in the stage table",
    )  # fmt: skip
    parser.add_argument("--queries", type=_positive, default=500, help="retrieval queries (default 500)")
    parser.add_argument(
        "--ef", type=_positive, nargs="+", default=[128, 256, 512, 1024], help="efSearch sweep values"
    )
    parser.add_argument(
        "--cache", action="store_true",
        help="also measure the /recommend cache-hit path (needs --redis-url or RECSERVE_REDIS_URL)",
    )  # fmt: skip
    parser.add_argument("--redis-url", default=None, help="Redis for the cache-hit run")
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(os.environ.get("RECSERVE_BENCH_DIR") or "var/bench"),
        help="built catalogues (default: $RECSERVE_BENCH_DIR, else var/bench)",
    )  # fmt: skip
    parser.add_argument(
        "--service-env", action="append", default=[], metavar="RECSERVE_X=V",
        help="a setting of the measured service, e.g. RECSERVE_MICRO_BATCHING=false (repeatable: A/B runs)",
    )  # fmt: skip
    parser.add_argument("--doc", type=Path, default=None, help="write the table here (docs/performance.md)")
    parser.add_argument("--note", default=None, help="machine-load note for the doc (default: load averages)")
    from benchmarks.train_scale import add_arguments as train_arguments

    train_arguments(parser, prefix="train-")


def _setting(text: str) -> tuple[str, str]:
    name, eq, value = text.partition("=")
    if not eq or not name.startswith("RECSERVE_"):
        raise UsageError(f"--service-env wants RECSERVE_NAME=VALUE, got {text!r}")
    return name, value


def run(args: argparse.Namespace) -> int:
    from benchmarks import report
    from benchmarks.service import BenchError, wrk_binary
    from benchmarks.suite import BenchOptions, run_suite

    redis_url = None
    if args.cache:
        redis_url = args.redis_url or os.environ.get("RECSERVE_REDIS_URL")
        if not redis_url:
            raise UsageError("--cache needs --redis-url or RECSERVE_REDIS_URL")
    if "service" in args.parts:
        try:
            wrk_binary()
        except BenchError as exc:
            raise CLIError(str(exc)) from exc
    if "train" in args.parts:
        return _run_train(args)
    opts = BenchOptions(
        sizes=sorted(set(args.items)),
        parts=args.parts,
        n_users=args.users,
        seed=args.seed,
        cache_dir=args.cache_dir,
        duration_s=args.duration,
        concurrencies=sorted(set(args.concurrency)),
        n_queries=args.queries,
        ef_sweep=args.ef,
        redis_url=redis_url,
        workers=args.workers,
        ef_construction=args.ef_construction,
        hnsw_m=args.hnsw_m,
        cooc_neighbours=args.cooc_neighbours,
        service_env=dict(_setting(v) for v in args.service_env),
    )

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    try:
        results = run_suite(opts, log=log)
    except BenchError as exc:
        raise CLIError(str(exc)) from exc
    out = human_out(args)
    print(report.table(results), file=out)
    print(file=out)
    print(report.targets_table(results["targets"]), file=out)
    if args.doc is not None:
        command = "recserve bench " + shlex.join(sys.argv[2:] if sys.argv[1:2] == ["bench"] else [])
        args.doc.parent.mkdir(parents=True, exist_ok=True)
        args.doc.write_text(report.document(results, command.strip(), args.note))
        log(f"wrote {args.doc}")
    if args.json:
        print_json_line(results)
    return 0


def _run_train(args: argparse.Namespace) -> int:
    """The training-at-scale part (alone: its peak RSS and timings must not share the process)."""
    import subprocess

    from benchmarks.train_scale import run_child, train_table

    if args.parts != ["train"]:
        raise UsageError("--parts train runs alone (its memory figure is a process's peak)")
    try:
        result = run_child(args, args.cache_dir, prefix="train-")
    except subprocess.CalledProcessError as exc:
        raise CLIError(
            f"the training benchmark failed (exit {exc.returncode}); see its output above"
        ) from exc
    print(train_table(result), file=human_out(args))
    if args.json:
        print_json_line(result)
    return 0
