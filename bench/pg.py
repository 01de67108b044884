"""PostgreSQL schemas for the benchmarks: each runs in its own schema of the `test` database."""
from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlparse

from sqlalchemy import text

from storage.db import make_engine

PG_ADMIN_URL = "postgresql://127.0.0.1/test"


def pg_schema(url: str) -> str:
    """The schema a benchmark URL's ``?options=-csearch_path%3DNAME`` selects."""
    options = unquote(parse_qs(urlparse(url).query).get("options", [""])[0])
    if "search_path=" not in options:
        raise SystemExit("the PostgreSQL URL must set the schema: ?options=-csearch_path%3Dbench_NAME")
    return options.split("search_path=", 1)[1].split()[0]


def fresh_schema(schema: str, drop_only: bool = False) -> None:
    """Drop the schema and everything in it, then (unless ``drop_only``) create it empty."""
    admin = make_engine(PG_ADMIN_URL)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        if not drop_only:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    admin.dispose()


def fresh_database(database: str, sqlite_file: str, postgres_url: str) -> str:
    """A URL to an empty database: a new SQLite file path, or the URL's schema recreated."""
    if database == "sqlite":
        return f"sqlite:///{sqlite_file}"
    fresh_schema(pg_schema(postgres_url))
    return postgres_url
