"""``recserve store``: list, show, verify, promote, rollback and gc a model store.

Every action takes ``--store URI`` (a path or ``s3://bucket/prefix``; default: the
``RECSERVE_STORE_URI`` setting). Problems exit with status 2 and one line naming the store,
version or file at fault — ``verify`` names the bad file.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from recserve.commands import CLIError, print_json_line

STORE_HELP = "model store: a path or s3://bucket/prefix (default: RECSERVE_STORE_URI)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", default=None, help=STORE_HELP)
    sub = parser.add_subparsers(dest="store_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text)
        # Also accepted after the action; SUPPRESS keeps an earlier --store when absent here.
        p.add_argument("--store", default=argparse.SUPPRESS, help=STORE_HELP)
        return p

    p = action("list", "published versions, oldest first (marks CURRENT and the rollback target)")
    p.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    p = action("show", "print a version's manifest")
    p.add_argument("version")
    p = action("verify", "check every file's size and sha256; non-zero exit names the bad file")
    p.add_argument("version", nargs="?", help="default: CURRENT")
    p.add_argument("--all", action="store_true", help="verify every version")
    p = action("promote", "verify a version and make it CURRENT")
    p.add_argument("version")
    action("rollback", "make the previously current version CURRENT again")
    p = action("gc", "delete old versions (never CURRENT or the previous one) and dead staging")
    p.add_argument("--keep", type=int, required=True, help="how many newest versions to keep")


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


def _list(store: Any, as_json: bool) -> None:
    from model_store import BundleError, NoModelPublished

    try:
        current = store.current_version()
    except NoModelPublished:
        current = None
    previous = store.previous_version()
    rows = []
    for v in store.list_versions():
        try:
            detail = _summary(store.manifest(v))
        except BundleError as exc:
            detail = f"DAMAGED: {exc}"
        mark = "current" if v == current else "previous" if v == previous else ""
        rows.append({"version": v, "mark": mark, "detail": detail})
    if as_json:
        print_json_line({"current": current, "previous": previous, "versions": rows})
        return
    if not rows:
        print(f"no versions in {store.uri}")
    for r in rows:
        print(f"{r['mark']:<9} {r['version']}  {r['detail']}")


def run(args: argparse.Namespace) -> int:
    from model_store import BundleError, StoreError, open_store

    uri = args.store
    if not uri:
        from service.settings import Settings

        uri = Settings().store_uri
    try:
        store = open_store(uri)
        action = args.store_command
        if action == "list":
            _list(store, args.json)
        elif action == "show":
            print(json.dumps(store.manifest(args.version), indent=1, sort_keys=True))
        elif action == "verify":
            versions = store.list_versions() if args.all else [args.version or store.current_version()]
            for v in versions:
                manifest = store.verify(v)
                size = sum(int(e["size"]) for e in manifest["files"].values())
                print(f"{v}: ok ({len(manifest['files'])} files, {size / 1e6:.1f} MB)")
        elif action == "promote":
            store.promote(args.version)
            print(f"CURRENT is now {args.version}")
        elif action == "rollback":
            print(f"rolled back: CURRENT is now {store.rollback()}")
        elif action == "gc":
            removed = store.gc(args.keep)
            for v in removed:
                print(f"deleted {v}")
            print(f"gc: deleted {len(removed)} version(s), {len(store.list_versions())} left")
    except BundleError as exc:
        raise CLIError(str(exc)) from exc
    except StoreError as exc:
        raise CLIError(str(exc)) from exc
    except Exception as exc:
        # Network and credential errors of the S3 client: one line, not a traceback.
        if type(exc).__module__.split(".")[0] in ("botocore", "boto3", "s3transfer"):
            raise CLIError(f"{uri}: {exc}") from exc
        raise
    return 0
