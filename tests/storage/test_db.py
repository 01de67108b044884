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


def test_the_migrations_build_exactly_the_schema_the_models_describe(engine: Engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from storage.models import Base

    with engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []


def test_an_upgrade_keeps_the_receipts_of_messages_already_sent(db_url: str) -> None:
    from alembic import command

    from storage.db import alembic_config, session_factory
    from storage.models import Outbox

    engine = make_engine(db_url)
    command.upgrade(alembic_config(engine), "0003")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO people (id, name, email) VALUES (1, 'Sam', 'sam@c.example')"))
        conn.execute(text(
            "INSERT INTO outbox (kind, person_id, recipient, channel, payload, state, attempts, created_at, "
            "next_attempt_at, receipt, possible_duplicate) VALUES ('nudge', 1, 'sam@c.example', 'outbox_folder', "
            "'{\"items\": []}', 'sent', 1, '2026-11-30 09:30:00', '2026-11-30 09:30:00', '<abc@c.example>', false)"))
    upgrade(engine)
    with session_factory(engine)() as session:
        (row,) = session.query(Outbox).all()
        assert row.receipt == {"channel": "outbox_folder", "ref": {"id": "<abc@c.example>"}, "possible_duplicate": False}
        assert row.route == [] and row.channel == "outbox_folder"
    engine.dispose()


def test_an_upgrade_indexes_the_message_ids_of_emails_already_sent(db_url: str) -> None:
    """0005: a reply to an email sent before the upgrade still finds its message (by the index)."""
    from alembic import command

    from storage.db import alembic_config, session_factory
    from storage.models import Outbox, Person
    from storage.tracker import outbox_for_message_ids

    engine = make_engine(db_url)
    command.upgrade(alembic_config(engine), "0004")
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO people (id, name, email) VALUES (1, 'Sam', 'sam@c.example')"))
        conn.execute(text(
            "INSERT INTO outbox (kind, person_id, recipient, channel, payload, state, attempts, created_at, "
            "next_attempt_at, receipt, possible_duplicate, route) VALUES ('nudge', 1, 'sam@c.example', 'email', "
            "'{\"items\": []}', 'sent', 1, '2026-11-30 09:30:00', '2026-11-30 09:30:00', "
            "'{\"channel\": \"email\", \"ref\": {\"message_id\": \"<abc@c.example>\"}}', false, '[]')"))
    upgrade(engine)
    with session_factory(engine)() as session:
        (row,) = session.query(Outbox).all()
        assert row.message_id == "abc@c.example"
        assert outbox_for_message_ids(session, ["<abc@c.example>"]) == row.id
        assert session.get(Person, 1).cadence == "each"  # everyone keeps hearing of each reminder
    engine.dispose()
