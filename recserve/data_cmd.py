"""``recserve data inspect`` and ``recserve train --interactions``: your own interaction files.

Bad input (a missing column, an unparseable row, an empty id, a filter that leaves nothing) is
reported as one line naming the file and line, with exit status 1 and no traceback. Imports of
pyarrow and torch happen inside the commands, so ``--help`` stays quick.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from recserve.commands import UsageError

FILE_ONLY = ("items", "users", "weight_col", "min_weight", "k_core", "list_sep", "item_id_col", "user_id_col")


def _columns(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user-col", default="user_id", help="user id column (default user_id)")
    p.add_argument("--item-col", default="item_id", help="item id column (default item_id)")
    p.add_argument(
        "--time-col",
        default=None,
        help="time column, epoch seconds or ISO 8601 (default timestamp; without one, file order is time)",
    )
    p.add_argument("--weight-col", default=None, help="duplicates sum this column instead of counting rows")
    p.add_argument(
        "--min-weight", type=float, default=None, help="drop (user, item) pairs whose weight is below"
    )
    p.add_argument("--k-core", type=int, default=0, help="keep only users and items with >= N interactions")


def add_inspect_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", help="interaction file: .csv .tsv .parquet .jsonl, each optionally .gz")
    _columns(p)
    p.add_argument("--json", action="store_true", help="print the profile as one JSON object")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    """The file options of ``recserve train`` (``--interactions`` and friends)."""
    g = p.add_argument_group("your own data (see docs/data.md)")
    g.add_argument("--interactions", default=None, metavar="PATH", help="train on this interaction file")
    _columns(g)  # type: ignore[arg-type]
    g.add_argument(
        "--test-fraction", type=float, default=0.2, help="per user, last share by time (default 0.2)"
    )
    g.add_argument("--items", default=None, metavar="PATH", help="items file: attributes and features")
    g.add_argument("--item-id-col", default=None, help="its id column (default: --item-col)")
    g.add_argument("--users", default=None, metavar="PATH", help="users file: ranker features")
    g.add_argument("--user-id-col", default=None, help="its id column (default: --user-col)")
    g.add_argument(
        "--list-sep", default=None, help="split text values of items/users files on this (e.g. '|')"
    )
    g.add_argument("--epochs", type=int, default=20, help="MF epochs (default 20)")
    g.add_argument("--dim", type=int, default=64, help="embedding dimension (default 64)")
    g.add_argument("--ranker-epochs", type=int, default=20, help="at most (early-stopped; default 20)")
    g.add_argument(
        "--ranker-lists", type=int, default=50_000,
        help="the ranker learns on the candidate lists of at most this many users (a seeded sample; "
        "default 50000): its rows take N x candidates x features x 4 bytes",
    )  # fmt: skip
    g.add_argument(
        "--eval-users", type=int, default=50_000,
        help="test metrics on a seeded sample of at most this many test users (default 50000)",
    )  # fmt: skip
    g.add_argument(
        "--max-batches", type=int, default=None,
        help="stop each MF epoch after N batches (memory and smoke runs at scale; not for a real model)",
    )  # fmt: skip
    g.add_argument(
        "--ef-construction", type=int, default=None,
        help="HNSW build beam (default: the production default; lower builds faster, same memory)",
    )  # fmt: skip


def _spec(args: argparse.Namespace, path: str) -> Any:
    from training.ingest.build import DataSpec
    from training.ingest.log import LogColumns, LogFilters
    from training.ingest.reader import DataError

    if args.k_core < 0:
        raise DataError(f"--k-core must be >= 0, got {args.k_core}")
    return DataSpec(
        interactions=path,
        columns=LogColumns(args.user_col, args.item_col, args.time_col or "timestamp", args.weight_col),
        time_required=args.time_col is not None,
        filters=LogFilters(args.min_weight, args.k_core),
        test_fraction=getattr(args, "test_fraction", 0.2),
        items=getattr(args, "items", None),
        item_id_col=getattr(args, "item_id_col", None),
        users=getattr(args, "users", None),
        user_id_col=getattr(args, "user_id_col", None),
        list_sep=getattr(args, "list_sep", None),
    )


def _fail(command: str, exc: Exception) -> int:
    print(f"recserve {command}: error: {exc}", file=sys.stderr)
    return 1


def inspect(args: argparse.Namespace) -> int:
    from recserve.commands import print_json_line
    from training.ingest.profile import format_profile, inspect_file
    from training.ingest.reader import DataError

    try:
        profile = inspect_file(_spec(args, args.path))
    except DataError as exc:
        return _fail("data inspect", exc)
    if args.json:
        print_json_line(profile)
    else:
        print(format_profile(profile))
    return 0


def train(args: argparse.Namespace) -> int:
    """``recserve train``: from a file with ``--interactions``, else the named ``--dataset``."""
    from recserve import commands

    if args.interactions is None:
        given = [f"--{k.replace('_', '-')}" for k in FILE_ONLY if getattr(args, k) not in (None, 0)]
        if given:
            raise UsageError(f"{', '.join(given)} need(s) --interactions PATH")
        args.dataset = args.dataset or "synthetic"
        return commands.train(args)
    if args.dataset is not None:
        raise UsageError("give either --dataset or --interactions, not both")
    return _train_file(args)


def format_report(r: dict[str, Any]) -> str:
    """The ingest report as text: rows read, every dropped row by reason, what was kept, side files."""
    lines = [f"read {r['rows']:,} rows from {r['file']} ({r['format']})"]
    for reason, n in r["dropped"].items():
        lines.append(f"  dropped {n:>10,}  {reason}")
    lines.append(f"kept {r['interactions']:,} interactions: {r['users']:,} users x {r['items']:,} items")
    s = r["split"]
    lines.append(
        f"split by time: {s['train']:,} train / {s['test']:,} test ({s['test_users']:,} users in test)"
    )
    for key in ("items_file", "users_file"):
        if key in r:
            f = r[key]
            shown = ", ".join(map(repr, f["unknown_examples"]))
            examples = f" (e.g. {shown})" if shown else ""
            lines.append(
                f"{key.replace('_', ' ')} {f['file']}: {f['matched']:,} rows matched; "
                f"{f['unknown_ids']:,} unknown id(s) ignored{examples}; "
                f"{f['without_row']:,} {key[:-6]}(s) without a row"
            )
            onehot = [f"{c} ({n} values)" for c, n in f["categorical"].items()]
            lines.append(f"  ranker features: {', '.join([*f['numeric'], *onehot]) or '(none)'}")
            if key == "items_file":
                attrs = [*f["categorical"], *(f"{c} ({why})" for c, why in f["attribute_only"].items())]
                lines.append(f"  filterable attributes: {', '.join(attrs) or '(none)'}")
            lines += [f"  column {c!r} not used: {why}" for c, why in f["skipped"].items()]
    return "\n".join(lines)


def _train_file(args: argparse.Namespace) -> int:
    from training.ingest.reader import DataError

    sizes = (args.k, args.epochs, args.dim, args.ranker_epochs, args.ranker_lists, args.eval_users)
    if min(sizes) < 1 or min(args.max_batches or 1, args.ef_construction or 1) < 1:
        raise UsageError(
            "--k, --epochs, --dim, --ranker-epochs, --ranker-lists, --eval-users, --max-batches "
            "and --ef-construction must be >= 1"
        )
    try:
        from training.ingest.build import check_trainable, file_train_config, load_interactions

        data, report = load_interactions(_spec(args, args.interactions))
        check_trainable(data)
    except DataError as exc:
        return _fail("train", exc)
    from model_store import open_store
    from recserve.commands import _format_metrics, _store_uri, human_out, print_json_line
    from training.pipeline import train_and_publish

    out = human_out(args)  # under --json, stdout is the JSON alone
    print(format_report(report), file=out)
    config = file_train_config(args.seed, args.loss, args.k, args.epochs, args.dim, args.ranker_epochs)
    config.ranker_max_lists, config.eval_max_users = args.ranker_lists, args.eval_users
    config.mf.max_batches = args.max_batches
    if args.ef_construction is not None:
        from dataclasses import replace

        config.hnsw = replace(config.hnsw, ef_construction=args.ef_construction)
    uri = _store_uri(args.store)
    print(
        f"training: {data.n_users} users, {data.n_items} items, MF loss {args.loss}, {args.epochs} epochs",
        file=out,
    )
    version, metrics = train_and_publish(data, open_store(uri), config)
    print(f"published {version} to {uri}", file=out)
    print(_format_metrics(metrics), file=out)
    if args.json:
        print_json_line({"version": version, "metrics": metrics, "data": report})
    return 0
