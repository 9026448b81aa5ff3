"""``recserve`` — one console script, one subcommand per job.

Heavy imports (torch, faiss, fastapi, the service) happen inside each command, so ``--help`` and
usage errors answer at once (a test keeps torch out of ``recserve --help``). Exit status: 0 done,
1 the command failed (a store, file, server or data problem), 2 it was called wrong (argparse's
usage errors and :class:`~recserve.commands.UsageError`), 130 interrupted. Failures print one line
``recserve COMMAND: error: …`` on stderr naming the file, path or value; never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from recserve import bench_cmd, commands, data_cmd, db_cmd, precompute_cmd, retrain_cmd, store_cmd

# Expected failures from the layers below, by (module, class name): the classes are looked up in
# sys.modules when an error happens, so naming them here imports nothing (model_store pulls torch).
_EXPECTED = (
    ("model_store.errors", "StoreError"),  # missing store, version, damaged bundle …
    ("eventstore.events", "EventStoreError"),  # database unreachable, schema missing, lock held
    ("training.feedback_data", "RetrainError"),  # base data the manifest names cannot be rebuilt
    ("redis.exceptions", "RedisError"),
    ("botocore.exceptions", "BotoCoreError"),  # S3 endpoint unreachable, no credentials
    ("botocore.exceptions", "ClientError"),  # S3 access denied …
)


def positive_int(text: str) -> int:
    """An argparse type: a usage error (exit 2) names the option and the value."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


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
    p.add_argument("--k", type=positive_int, default=20, help="K of SL@K (default 20)")
    p.add_argument("--store", default=None, help="default: RECSERVE_STORE_URI")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="print version and metrics as JSON (alone on stdout)")
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
    from training import ablation, reproduce_health, reproduce_ml100k  # light: torch is imported by run()

    e = experiments.add_parser(
        "health", help="Amazon2014-Health: BPR vs SL vs SL@20 (the SL@K paper's MF rows)"
    )
    reproduce_health.add_arguments(e)
    e.set_defaults(func=reproduce_health.main)

    e = experiments.add_parser("ml100k", help="MovieLens-100K: popularity vs retrieval vs two-stage")
    reproduce_ml100k.add_arguments(e)
    e.set_defaults(func=reproduce_ml100k.main)

    e = experiments.add_parser("ablation", help="the ranker's feature groups on/off, per seed (issue 22)")
    ablation.add_arguments(e)
    e.set_defaults(func=ablation.main)

    p = sub.add_parser("precompute", help="write every user's and item's top-N list to Redis")
    precompute_cmd.add_arguments(p)
    p.set_defaults(func=precompute_cmd.run)

    p = sub.add_parser("db", help="the feedback event store's schema: upgrade (migrate) or status")
    db_cmd.add_arguments(p)

    p = sub.add_parser("retrain", help="base data + feedback events -> train, publish, precompute, promote")
    retrain_cmd.add_arguments(p)
    p.set_defaults(func=retrain_cmd.run)

    p = sub.add_parser("bench", help="benchmark retrieval, the service under load, stages and memory")
    bench_cmd.add_arguments(p)
    p.set_defaults(func=bench_cmd.run)
    return parser


def _exit_code(exc: BaseException) -> int | None:
    """1 or 2 for a failure the user can act on, None for a bug (which keeps its traceback)."""
    if isinstance(exc, commands.CLIError):
        return exc.exit_code
    if isinstance(exc, OSError | ValueError):  # a missing file, a malformed value in a data file
        return 1
    for module, name in _EXPECTED:
        cls = getattr(sys.modules.get(module), name, None)
        if isinstance(cls, type) and isinstance(exc, cls):
            return 1
    return None


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"  # not "[Errno 2] No such file …: 'x'"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    # Logs go to stderr (basicConfig's default), like progress bars: stdout stays for results.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("faiss", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    args = build_parser().parse_args(argv)
    name = " ".join(
        str(p) for p in (args.command, getattr(args, "experiment", None), getattr(args, "action", None)) if p
    )
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        code = _exit_code(exc)
        if code is None:
            raise
        print(f"recserve {name}: error: {_one_line(exc)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    raise SystemExit(main())
