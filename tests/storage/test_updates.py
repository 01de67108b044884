"""record_update: who may change an action, what is checked, and state derived from history."""
from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from chaser.errors import InvalidValue, NotAllowed
from storage.dates import parse_when
from storage.importers.load import import_plan_file
from storage.models import Action, Person, Role, StatusUpdate
from storage.updates import current_state, record_update
from tests.importers.makers import write_csv

UTC = dt.timezone.utc


@pytest.fixture
def plan(engine: Engine, session: Session, tmp_path):  # type: ignore[no-untyped-def]
    path = write_csv(tmp_path / "plan.csv", [
        ["Ref", "Action", "Owner", "Deadline"],
        ["P1", "Publish pay gap", "HR Business Partner / Ali Khan Director of HR", "March 2024"],
    ])
    import_plan_file(engine, path, plan_name="Plan")
    role = session.scalars(select(Role).where(Role.key == "hr business partner")).one()
    deputy = Person(name="Deputy", email="deputy@c.example")
    owner = Person(name="Owner", email="owner@c.example", roles=[role], delegate=deputy)
    ali = Person(name="Ali Khan", email="ali@c.example")
    other = Person(name="Other", email="other@c.example")
    session.add_all([deputy, owner, ali, other])
    session.commit()
    return session.scalars(select(Action)).one()


def people(session: Session) -> dict[str, Person]:
    return {p.email.split("@")[0]: p for p in session.scalars(select(Person))}


def test_an_owner_a_named_owner_and_a_delegate_may_update(session: Session, plan: Action) -> None:
    who = people(session)
    for name in ("owner", "ali", "deputy"):
        record_update(session, plan, channel="cli", by=who[name], note=f"from {name}")
    session.commit()
    assert [u.by_text for u in session.scalars(select(StatusUpdate))] == [
        "owner@c.example", "ali@c.example", "deputy@c.example",
    ]


def test_where_every_owner_role_is_held_its_holders_their_delegates_and_cover_may_update(
        engine: Engine, session: Session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = write_csv(tmp_path / "plan.csv", [["Ref", "Action", "Owner", "Deadline"],
                                             ["P2", "Train managers", "HR Business Partner / Comms Lead", "May 2024"]])
    import_plan_file(engine, path, plan_name="Held")
    hr, comms = (session.scalars(select(Role).where(Role.key == key)).one() for key in ("hr business partner", "comms lead"))
    deputy, cover = Person(name="Deputy", email="deputy@c.example"), Person(name="Cover", email="cover@c.example")
    session.add_all([
        deputy, cover, Person(name="Other", email="other@c.example"),
        Person(name="Hr", email="hr@c.example", roles=[hr], delegate=deputy),
        Person(name="Comms", email="comms@c.example", roles=[comms], cover=cover),
    ])
    session.commit()
    action, who = session.scalars(select(Action)).one(), people(session)
    for name in ("hr", "comms", "deputy", "cover"):
        record_update(session, action, channel="web", by=who[name], note=f"from {name}")
    with pytest.raises(NotAllowed, match="other@c.example may not update P2"):
        record_update(session, action, channel="web", by=who["other"], note="from other")
    session.commit()
    assert [u.by_text.split("@")[0] for u in session.scalars(select(StatusUpdate))] == ["hr", "comms", "deputy", "cover"]


def test_someone_else_may_not_and_nothing_is_recorded(session: Session, plan: Action) -> None:
    with pytest.raises(NotAllowed, match="other@c.example may not update P1"):
        record_update(session, plan, channel="slack", by=people(session)["other"], status="green")
    session.commit()
    assert session.scalars(select(StatusUpdate)).all() == []


def test_the_edi_lead_may_update_any_action(session: Session, plan: Action) -> None:
    record_update(session, plan, channel="cli", by=people(session)["other"], status="red", edi_leads=["OTHER@c.example"])
    session.commit()
    assert current_state(session, plan).status == "red"


def test_history_is_appended_and_the_current_state_is_derived(session: Session, plan: Action) -> None:
    owner = people(session)["owner"]
    t0 = dt.datetime(2024, 1, 10, 9, 30, tzinfo=UTC)
    record_update(session, plan, channel="cli", by=owner, status="amber", note="Data late", at=t0)
    record_update(session, plan, channel="email", by=owner, due=parse_when("June 2024"), at=t0 + dt.timedelta(days=1))
    record_update(session, plan, channel="slack", by=owner, status="green", at=t0 + dt.timedelta(days=2))
    session.commit()
    state = current_state(session, plan)
    assert (state.status, state.note, state.due, state.due_precision) == ("green", "Data late", dt.date(2024, 6, 30), "month")
    assert state.updated_at == t0 + dt.timedelta(days=2) and state.updated_by == "owner@c.example"
    history = session.scalars(select(StatusUpdate).order_by(StatusUpdate.id)).all()
    assert [(h.old_status, h.new_status) for h in history] == [(None, "amber"), ("amber", None), ("amber", "green")]
    assert plan.due_date == dt.date(2024, 3, 31)  # the plan's own date is kept beside the revision


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"status": "purple"}, "status 'purple' is not one of"),
        ({"due": parse_when("December 202")}, "due date: could not read"),
        ({}, "nothing to record"),
    ],
)
def test_bad_updates_are_refused_with_a_reason(session: Session, plan: Action, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(InvalidValue, match=message):
        record_update(session, plan, channel="cli", by=people(session)["owner"], **kwargs)
    assert session.scalars(select(StatusUpdate)).all() == []


def test_a_channel_update_must_name_a_person(session: Session, plan: Action) -> None:
    with pytest.raises(NotAllowed, match="must say who"):
        record_update(session, plan, channel="teams", status="green")
