"""Shared fixtures: real SQLite files and a real PostgreSQL schema per test.

PostgreSQL is the server at 127.0.0.1:5432 (override with CHASER_TEST_POSTGRES_URL). It is
required: `.ci/run` starts it. Set CHASER_TEST_SKIP_POSTGRES=1 to run only the SQLite half
on a machine without it.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from storage.db import make_engine, session_factory, upgrade

# The real IMAP server (dovecot) is one per session, shared by tests/bot and tests/cli.
pytest_plugins = ("tests.bot.imap_server",)

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
LAMBETH = SAMPLES / "lambeth-childrens-services-edi-action-plan.docx"
TOWER_HAMLETS = SAMPLES / "tower-hamlets-commission-action-plan.xlsx"
PG_URL = os.environ.get("CHASER_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test")
SKIP_PG = os.environ.get("CHASER_TEST_SKIP_POSTGRES") == "1"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No CHASER_* setting from the developer's shell leaks into a test; no stray chaser.toml."""
    for name in list(os.environ):
        if name.startswith("CHASER_") and not name.startswith("CHASER_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL to an empty database: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'chaser.db'}"
        return
    if SKIP_PG:
        pytest.skip("CHASER_TEST_SKIP_POSTGRES=1")
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:  # pragma: no cover - a machine without the server
        pytest.fail(f"PostgreSQL at {PG_URL} is not reachable ({exc.orig}); start it or set CHASER_TEST_SKIP_POSTGRES=1")
    try:
        yield f"{PG_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with session_factory(engine)() as s:
        yield s


Chaser = Callable[..., Result]


def cli(env: dict[str, str]) -> Chaser:
    """``invoke(*args, expect=0)``: the ``chaser`` command with ``env``, checking its exit status."""
    from chaser.cli import main

    runner = CliRunner()

    def invoke(*args: str, expect: int = 0) -> Result:
        result = runner.invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == expect, (result.output, result.stderr)
        return result

    return invoke


@pytest.fixture
def chaser(db_url: str) -> Chaser:
    """``chaser(*args, expect=0)`` runs the command against a fresh, initialised database."""
    invoke = cli({"CHASER_DATABASE_URL": db_url, "CHASER_SECRET_KEY": "k" * 32})
    invoke("init")
    return invoke


@contextmanager
def another_process_writing(url: str, tables: str = "status_updates") -> Iterator[None]:
    """Hold the write lock as another process in the middle of a long write would: SQLite's one
    writer lock, or PostgreSQL ACCESS EXCLUSIVE locks on ``tables`` (comma-separated)."""
    holder = make_engine(url)
    try:
        with holder.connect() as other:
            if holder.dialect.name == "sqlite":
                other.exec_driver_sql("BEGIN IMMEDIATE")
                other.exec_driver_sql("UPDATE plans SET paused = paused")
            else:
                other.execute(text(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE"))
            yield
            other.rollback()
    finally:
        holder.dispose()


@pytest.fixture
def umask() -> Iterator[None]:
    """Tests set the process umask as a service's unit file would; it is put back afterwards."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    os.umask(before)
