"""Schema creation and upgrade, and the SQLite settings Chaser relies on."""
from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from storage.db import DatabaseError, current_revision, head_revision, make_engine, require_current_schema, upgrade
from storage.models import Plan, Workstream


def test_init_creates_the_schema_and_a_second_run_changes_nothing(db_url: str) -> None:
    engine = make_engine(db_url)
    with pytest.raises(DatabaseError, match="run 'chaser init' first"):
        require_current_schema(engine)
    assert upgrade(engine) == (None, head_revision(engine))
    assert upgrade(engine) == (head_revision(engine), head_revision(engine))
    require_current_schema(engine)
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys_enforced(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade(engine)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()


def test_a_workstream_cannot_point_at_a_missing_plan(engine: Engine) -> None:
    from storage.db import transaction

    with pytest.raises(IntegrityError):
        with transaction(engine) as session:
            session.add(Workstream(plan_id=999, key="x", name="x", metrics={}))


def test_deleting_a_plan_removes_its_workstreams(engine: Engine) -> None:
    from sqlalchemy import func, select

    from storage.db import transaction

    with transaction(engine) as session:
        plan = Plan(name="P")
        session.add(plan)
        session.flush()
        session.add(Workstream(plan_id=plan.id, key="w", name="W", metrics={}))
    with transaction(engine) as session:
        session.delete(session.scalars(select(Plan)).one())
    with transaction(engine) as session:
        assert session.scalar(select(func.count(Workstream.id))) == 0


def test_a_bad_url_is_a_clear_error() -> None:
    with pytest.raises(DatabaseError, match="not a valid SQLAlchemy URL"):
        make_engine("nonsense")


def test_current_revision_of_an_empty_database_is_none(db_url: str) -> None:
    engine = make_engine(db_url)
    assert current_revision(engine) is None
    engine.dispose()


def test_receipts_commit_on_their_own_without_waiting_for_the_disk(engine: Engine) -> None:
    from storage.db import receipts_engine

    receipts = receipts_engine(engine)
    assert receipts_engine(engine) is receipts  # one pool per engine
    if engine.dialect.name == "sqlite":
        assert receipts is engine  # already commits without an fsync (synchronous=NORMAL)
        return
    with receipts.connect() as conn:
        assert conn.execute(text("SHOW synchronous_commit")).scalar() == "off"
        conn.execute(text("INSERT INTO plans (name, timezone, created_at, paused) "
                          "VALUES ('Receipts', 'Europe/London', now(), false)"))
        conn.rollback()  # autocommit: the insert is already committed, nothing to undo
    with engine.connect() as conn:  # Chaser's other writes still wait for the disk
        assert conn.execute(text("SHOW synchronous_commit")).scalar() == "on"
        assert conn.execute(text("SELECT count(*) FROM plans WHERE name = 'Receipts'")).scalar() == 1
    engine.dispose()
    assert receipts.pool.checkedin() == 0  # disposed with its engine
