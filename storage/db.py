"""Engine, sessions and schema upgrades for SQLite and PostgreSQL."""
from __future__ import annotations

import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import ARRAY, Engine, Integer, any_, bindparam, create_engine, event, literal
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from chaser.errors import ChaserError

MIGRATIONS = Path(__file__).with_name("migrations")


class DatabaseError(ChaserError):
    """The database cannot be reached or its schema is not the one this Chaser expects."""


# How long a statement waits for another process's lock before it gives up: SQLite's
# busy_timeout, PostgreSQL's lock_timeout. Then the command says the database is busy.
LOCK_WAIT_SECONDS = 10.0


class DatabaseBusy(DatabaseError):
    """Another process held a lock for longer than LOCK_WAIT_SECONDS; nothing was changed."""


def explain(exc: OperationalError) -> DatabaseError:
    """A sentence for the person at the keyboard about a database that refused to work."""
    text = str(exc.orig)
    code = getattr(exc.orig, "sqlstate", None)
    if "database is locked" in text or code == "55P03":  # 55P03: lock_not_available (lock_timeout)
        return DatabaseBusy(f"the database is busy: another process has held a lock for over {LOCK_WAIT_SECONDS:g} s; "
                            "nothing was changed, try again in a minute")
    if "readonly database" in text or code == "25006":  # 25006: read_only_sql_transaction
        return DatabaseError(f"the database cannot be written ({text.strip()}): check the permissions of the "
                             "database file and its folder, or the server's settings; nothing was changed")
    return DatabaseError(f"the database failed: {text.strip()}")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers work while one writer holds the lock; foreign keys are off by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # In WAL mode NORMAL never corrupts the database and survives a crash of the process; it
    # only lets a power cut lose the last commits, and saves an fsync on every one of them.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={int(LOCK_WAIT_SECONDS * 1000)}")
    cursor.close()


def _postgresql_lock_timeout(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute(f"SET lock_timeout = {int(LOCK_WAIT_SECONDS * 1000)}")
    dbapi_connection.commit()


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine with the settings Chaser relies on (psycopg 3 for ``postgresql://``)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"database url {url!r} is not a valid SQLAlchemy URL") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(parsed, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    elif engine.dialect.name == "postgresql":
        event.listen(engine, "connect", _postgresql_lock_timeout)
    return engine


def _no_commit_wait(dbapi_connection: Any, _record: Any) -> None:
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit = off")
    dbapi_connection.commit()


_RECEIPTS: weakref.WeakKeyDictionary[Engine, Engine] = weakref.WeakKeyDictionary()
_RECEIPTS_LOCK = threading.Lock()


def receipts_engine(engine: Engine) -> Engine:
    """An engine for writes whose loss in a database crash is already safe, one round trip each.

    On PostgreSQL: a small pool of its own (one per ``engine``, disposed with it), in
    autocommit, with ``synchronous_commit = off``: a commit does not wait for its WAL to reach
    the disk, so a server crash may lose the last ~0.6 s of such commits (it never corrupts
    anything). Chaser's other writes are unaffected. On SQLite, which already commits without
    an fsync (``synchronous=NORMAL``): ``engine`` itself.
    """
    if engine.dialect.name != "postgresql":
        return engine
    with _RECEIPTS_LOCK:
        receipts = _RECEIPTS.get(engine)
        if receipts is None:
            # Connections are opened as needed: one when sending in order, up to one per send
            # thread ([scheduler] send_workers, at most 32) without waiting for the pool.
            receipts = create_engine(engine.url, isolation_level="AUTOCOMMIT", pool_size=5, max_overflow=32)
            event.listen(receipts, "connect", _no_commit_wait)
            event.listen(engine, "engine_disposed", lambda _engine, pool=receipts: pool.dispose())
            _RECEIPTS[engine] = receipts
        return receipts


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Create or upgrade the schema; returns (revision before, revision after)."""
    before = current_revision(engine)
    command.upgrade(alembic_config(engine), "head")
    return before, current_revision(engine) or ""


def current_revision(engine: Engine) -> str | None:
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except OperationalError as exc:
        raise DatabaseError(f"cannot open database: {exc.orig}") from None


def head_revision(engine: Engine) -> str:
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    assert head is not None
    return head


def require_current_schema(engine: Engine) -> None:
    current = current_revision(engine)
    if current is None:
        raise DatabaseError("the database has no Chaser tables yet: run 'chaser init' first")
    if current != head_revision(engine):
        raise DatabaseError(
            f"the database schema is at revision {current}, this Chaser needs "
            f"{head_revision(engine)}: run 'chaser init' to upgrade"
        )


ID_CHUNK = 5000  # ids per query, under SQLite's and psycopg's parameter limits


def id_in(session: Session, column: Any, ids: Sequence[int]) -> Any:
    """``column IN ids``; on PostgreSQL ``= ANY(array)``, one parameter instead of thousands.

    psycopg re-parses every statement longer than 4 KB for placeholders, and a 5,000-id IN
    list spent more time there than in the server.
    """
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(literal(list(ids), ARRAY(Integer)))
    # One expanding parameter: ``in_(ids)`` would coerce every id into an SQL element on each
    # call (2 ms for the 500 actions a person may hold, on every click they make).
    return column.in_(bindparam(None, list(ids), type_=Integer, expanding=True))


def id_chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), ID_CHUNK):
        yield ids[start:start + ID_CHUNK]


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll everything back on any error."""
    with session_factory(engine)() as session, session.begin():
        yield session
