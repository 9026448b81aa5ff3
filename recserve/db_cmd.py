"""``recserve db upgrade|status``: the event store's schema, by migration (never on import)."""

from __future__ import annotations

import argparse

from recserve.commands import human_out, print_json_line


def add_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, help_text in (
        ("upgrade", "create or migrate the event schema to this build's version"),
        ("status", "print the event schema's version and the number of stored events"),
    ):
        a = actions.add_parser(name, help=help_text)
        a.add_argument(
            "--database-url", default=None, help="default: RECSERVE_DATABASE_URL (sqlite:///var/events.db)"
        )
        a.add_argument("--json", action="store_true", help="print the result as JSON (alone on stdout)")
        a.set_defaults(func=run)


def database_url(arg: str | None) -> str:
    if arg:
        return arg
    from service.settings import Settings

    return Settings().database_url


def run(args: argparse.Namespace) -> int:
    from eventstore import SCHEMA_VERSION, open_event_store

    store = open_event_store(database_url(args.database_url))
    out = human_out(args)
    try:
        if args.action == "upgrade":
            before, after = store.upgrade()
            result = {"database": store.url, "from": before, "to": after}
            change = "already at" if before == after else f"upgraded from {before} to"
            print(f"{store.url}: event schema {change} version {after}", file=out)
        else:
            version = store.schema_version()
            events = store.count() if version else 0
            watermark = store.watermark() if version else 0
            result = {"database": store.url, "version": version, "latest": SCHEMA_VERSION, "events": events}
            result["watermark"] = watermark
            print(
                f"{store.url}: event schema version {version} (this build: {SCHEMA_VERSION}), "
                f"{events} events, watermark {watermark}",
                file=out,
            )
    finally:
        store.close()
    if args.json:
        print_json_line(result)
    return 0
