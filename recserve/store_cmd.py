"""``recserve store``: list, show, verify, promote, rollback and gc a model store.

Every action takes ``--store URI`` (a path or ``s3://bucket/prefix``; default: the
``RECSERVE_STORE_URI`` setting) and ``--json`` (one JSON document alone on stdout). A store that
does not exist is an error, never an empty listing. Problems exit with status 1 and one line
naming the store, version or file at fault — ``verify`` names the bad file.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from recserve.commands import CLIError, human_out, print_json_line

STORE_HELP = "model store: a path or s3://bucket/prefix (default: RECSERVE_STORE_URI)"


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=None, help=STORE_HELP)
    sub = parser.add_subparsers(dest="store_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Also accepted after the action; SUPPRESS keeps an earlier --store when absent here.
        p.add_argument("--store", default=argparse.SUPPRESS, help=STORE_HELP)
        p.add_argument("--json", action="store_true", help="one JSON document (alone on stdout)")
        return p

    action("list", "published versions, oldest first (marks CURRENT and the rollback target)")
    p = action("show", "print a version's manifest")
    p.add_argument("version")
    p = action("verify", "check every file's size and sha256; non-zero exit names the bad file")
    p.add_argument("version", nargs="?", help="default: CURRENT")
    p.add_argument("--all", action="store_true", help="verify every version")
    p = action("promote", "verify a version and make it CURRENT")
    p.add_argument("version")
    action("rollback", "make the previously current version CURRENT again")
    p = action("gc", "delete old versions (never CURRENT or the previous one) and dead staging")
    p.add_argument("--keep", type=_count, required=True, help="how many newest versions to keep")


def _summary(manifest: dict[str, Any]) -> str:
    dims = manifest.get("dims") or {}
    two_stage = (manifest.get("metrics") or {}).get("two_stage") or {}
    recall = two_stage.get("recall@10")
    parts = [
        str(manifest.get("created_at", "?"))[:19],
        f"{dims.get('n_items', '?')} items",
        f"dim {dims.get('dim', '?')}",
    ]
    if isinstance(recall, int | float):
        parts.append(f"recall@10 {recall:.4f}")
    return "  ".join(parts)


def _list(store: Any, args: argparse.Namespace) -> dict[str, Any]:
    from model_store import BundleError, NoModelPublished

    versions = store.list_versions()  # first: a missing store fails here, naming itself
    try:
        current = store.current_version()
    except NoModelPublished:
        current = None
    previous = store.previous_version()
    rows = []
    for v in versions:
        try:
            detail = _summary(store.manifest(v))
        except BundleError as exc:
            detail = f"DAMAGED: {exc}"
        mark = "current" if v == current else "previous" if v == previous else ""
        rows.append({"version": v, "mark": mark, "detail": detail})
    out = human_out(args)
    if not rows:
        print(f"no versions in {store.uri}", file=out)
    for r in rows:
        print(f"{r['mark']:<9} {r['version']}  {r['detail']}", file=out)
    return {"store": store.uri, "current": current, "previous": previous, "versions": rows}


def _verify(store: Any, args: argparse.Namespace) -> dict[str, Any]:
    versions = store.list_versions() if args.all else [args.version or store.current_version()]
    checked = []
    for v in versions:
        manifest = store.verify(v)
        size = sum(int(e["size"]) for e in manifest["files"].values())
        print(f"{v}: ok ({len(manifest['files'])} files, {size / 1e6:.1f} MB)", file=human_out(args))
        checked.append({"version": v, "files": len(manifest["files"]), "bytes": size})
    return {"store": store.uri, "verified": checked}


def _act(store: Any, args: argparse.Namespace) -> dict[str, Any]:
    """Run the action; human text goes to ``human_out``, the return value is the ``--json`` body."""
    out = human_out(args)
    action = args.store_command
    if action == "list":
        return _list(store, args)
    if action == "show":
        manifest = store.manifest(args.version)
        if not args.json:
            print(json.dumps(manifest, indent=1, sort_keys=True), file=out)
        return manifest
    if action == "verify":
        return _verify(store, args)
    if action == "promote":
        store.promote(args.version)
        print(f"CURRENT is now {args.version}", file=out)
        return {"store": store.uri, "current": args.version}
    if action == "rollback":
        current = store.rollback()
        print(f"rolled back: CURRENT is now {current}", file=out)
        return {"store": store.uri, "current": current}
    removed = store.gc(args.keep)  # gc
    for v in removed:
        print(f"deleted {v}", file=out)
    left = store.list_versions()
    print(f"gc: deleted {len(removed)} version(s), {len(left)} left", file=out)
    return {"store": store.uri, "deleted": removed, "kept": left}


def run(args: argparse.Namespace) -> int:
    from model_store import open_store

    uri = args.store
    if not uri:
        from service.settings import Settings

        uri = Settings().store_uri
    try:
        body = _act(open_store(uri), args)
    except Exception as exc:
        # Network and credential errors of the S3 client: one line naming the store.
        if type(exc).__module__.split(".")[0] in ("botocore", "boto3", "s3transfer"):
            raise CLIError(f"{uri}: {exc}") from exc
        raise  # store errors name their store, version or file; the top-level handler prints them
    if args.json:
        print_json_line(body)
    return 0
