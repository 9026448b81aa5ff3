"""``recserve`` — one console script, one subcommand per job.

Most heavy imports (faiss, fastapi, the service) happen inside each command, so a command only
loads what it needs; the ``reproduce health`` options come from a module that imports torch.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from recserve import bench_cmd, commands, data_cmd, precompute_cmd, store_cmd


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="recserve", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("demo", help="generate synthetic data, train, publish, serve and query it")
    p.add_argument(
        "--store", default=None, help="model store path (default: RECSERVE_STORE_URI or var/store)"
    )
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    p.add_argument("--once", action="store_true", help="exit after printing the answers")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=commands.demo)

    p = sub.add_parser("serve", help="run the HTTP service under uvicorn")
    p.add_argument("--host", default=None, help="default: RECSERVE_HOST")
    p.add_argument("--port", type=int, default=None, help="default: RECSERVE_PORT")
    p.add_argument("--store", default=None, help="default: RECSERVE_STORE_URI")
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=commands.serve)

    p = sub.add_parser("train", help="train a model and publish it to the store")
    p.add_argument(
        "--dataset", choices=["synthetic", "health", "ml100k"], default=None, help="default synthetic"
    )
    p.add_argument("--loss", choices=["bpr", "sl", "slatk"], default="slatk", help="MF loss (default SL@K)")
    p.add_argument("--k", type=int, default=20, help="K of SL@K (default 20)")
    p.add_argument("--store", default=None, help="default: RECSERVE_STORE_URI")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print the metrics as JSON on the last line")
    data_cmd.add_train_arguments(p)
    p.set_defaults(func=data_cmd.train)

    p = sub.add_parser("data", help="validate and profile your own interaction files")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    e = actions.add_parser("inspect", help="rows, ids, duplicates, time range, what training would drop")
    data_cmd.add_inspect_arguments(e)
    e.set_defaults(func=data_cmd.inspect)

    p = sub.add_parser("store", help="list, verify, promote, roll back and gc the model store")
    store_cmd.add_arguments(p)
    p.set_defaults(func=store_cmd.run)

    p = sub.add_parser("reproduce", help="re-run a documented experiment and write its results")
    experiments = p.add_subparsers(dest="experiment", required=True, metavar="EXPERIMENT")
    from training import (
        reproduce_health,
        reproduce_ml100k,  # light at import time: heavy imports live in run()
    )

    e = experiments.add_parser(
        "health", help="Amazon2014-Health: BPR vs SL vs SL@20 (the SL@K paper's MF rows)"
    )
    reproduce_health.add_arguments(e)
    e.set_defaults(func=reproduce_health.main)

    e = experiments.add_parser("ml100k", help="MovieLens-100K: popularity vs retrieval vs two-stage")
    reproduce_ml100k.add_arguments(e)
    e.set_defaults(func=reproduce_ml100k.main)

    p = sub.add_parser("precompute", help="write every user's and item's top-N list to Redis")
    precompute_cmd.add_arguments(p)
    p.set_defaults(func=precompute_cmd.run)

    p = sub.add_parser("bench", help="benchmark retrieval, the service under load, stages and memory")
    bench_cmd.add_arguments(p)
    p.set_defaults(func=bench_cmd.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("faiss", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except commands.CLIError as exc:
        print(f"recserve {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
