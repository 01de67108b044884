"""Values every process sharing the database must agree on (the ``settings`` table).

The first process to need one creates it; a second process racing it loses the insert
(ON CONFLICT DO NOTHING) and reads the winner's value, so two instances on one PostgreSQL
always agree.
"""
from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from storage.models import Setting, utcnow

LINK_KEY = "link_key"  # signs the one-click answer links (bot.links)


def get_setting(engine: Engine, name: str) -> str | None:
    with engine.connect() as conn:
        return conn.scalar(select(Setting.value).where(Setting.name == name))


def get_or_create_setting(engine: Engine, name: str, make: Callable[[], str]) -> tuple[str, bool]:
    """The stored value of ``name``, storing ``make()`` first if there is none; and whether we stored it."""
    found = get_setting(engine, name)
    if found is not None:
        return found, False
    dialect = postgresql if engine.dialect.name == "postgresql" else sqlite
    with engine.begin() as conn:
        inserted = conn.execute(
            dialect.insert(Setting.__table__).values(name=name, value=make(), created_at=utcnow())
            .on_conflict_do_nothing(index_elements=["name"]).returning(Setting.__table__.c.name)
        ).first()
        value = conn.scalar(select(Setting.value).where(Setting.name == name))
    assert value is not None
    return value, inserted is not None
