"""The machine's PostgreSQL (127.0.0.1:5432, database ``test``, trust auth) for tests: which user
answers, and private schemas that are dropped afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import quote

PG_USERS = ("root", "postgres")


def pg_admin_url() -> str | None:
    """A URL that connects, or None when no server answers (any user of :data:`PG_USERS`)."""
    import psycopg

    for user in PG_USERS:
        url = f"postgresql://{user}@127.0.0.1:5432/test"
        try:
            with psycopg.connect(url, connect_timeout=3):
                return url
        except psycopg.Error:
            continue
    return None


@contextlib.contextmanager
def private_schema_url(admin_url: str, schema: str) -> Iterator[str]:
    """``admin_url`` with ``search_path`` set to a new ``schema``; the schema is dropped on exit."""
    import psycopg

    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield f"{admin_url}?options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
