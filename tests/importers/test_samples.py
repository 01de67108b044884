"""The two real council plans in samples/ import as their README describes, on both databases."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from storage.importers.load import import_plan_file
from storage.models import Action, ActionGroup, Person, Plan, StatusUpdate, Workstream
from storage.updates import current_states, record_update
from tests.conftest import LAMBETH, TOWER_HAMLETS


def by_ref(session: Session, ref_key: str) -> Action:
    return session.scalars(select(Action).where(Action.ref_key == ref_key)).one()


def test_lambeth_gives_30_actions_in_6_objectives_with_sponsors(engine: Engine, session: Session) -> None:
    result = import_plan_file(engine, LAMBETH)
    assert (result.actions, result.workstreams, result.created) == (30, 6, 30)
    workstreams = session.scalars(select(Workstream).order_by(Workstream.position)).all()
    assert [w.label for w in workstreams] == [f"Objective {n}" for n in range(1, 7)]
    assert all(w.lead_sponsor for w in workstreams)
    assert workstreams[0].name == "Career Progression"
    assert workstreams[0].lead_sponsor == "Director Children's Social Care"
    # Two objectives share a theme and stay two workstreams.
    assert [w.name for w in workstreams].count("Healing and Resilience") == 2
    counts = dict(session.execute(select(Workstream.label, func.count(Action.id)).join(Action).group_by(Workstream.label)).all())
    assert sum(counts.values()) == 30


def test_lambeth_continuation_rows_join_the_action_above(engine: Engine, session: Session) -> None:
    import_plan_file(engine, LAMBETH)
    hw12 = by_ref(session, "HW12")
    assert "Inclusive leadership" in f"{hw12.title}\n{hw12.description}"
    sa2 = by_ref(session, "SA2")
    assert sa2.success_measures is not None
    assert "Increased transparency around EDI priorities" in sa2.success_measures
    assert "models positive culture around EDI" in sa2.success_measures
    # The continuation rows did not become actions of their own.
    assert session.scalar(select(func.count(Action.id))) == 30


def test_lambeth_dates_owners_and_refs(engine: Engine, session: Session) -> None:
    import_plan_file(engine, LAMBETH)
    cp1 = by_ref(session, "CP1")
    assert (cp1.due_date, cp1.due_precision, cp1.due_text) == (dt.date(2023, 4, 30), "month", "April 2023")
    sa3 = by_ref(session, "SA3")
    assert (sa3.due_date, sa3.due_text) == (dt.date(2022, 12, 31), "December 22")
    sa1 = by_ref(session, "SA1")
    assert sa1.due_date == dt.date(2023, 11, 30)
    assert sa1.key_dates == [{"date": "2024-03-31", "text": "March 2024"}]
    hw3 = by_ref(session, "HW3")
    assert hw3.ref == "HW 3"
    hw1 = by_ref(session, "HW1")
    assert [o.role.name for o in hw1.owners] == ["AD HR EDI", "AD EDI", "CS EDI Lead"]
    sa2 = by_ref(session, "SA2")
    assert [o.role.name for o in sa2.owners] == ["Robert Thatcher", "Ndunge Ki-vuitu", "Paula Royal"]
    plan = session.scalars(select(Plan)).one()
    assert plan.name == "Children's Services EDI Strategy and Action Plan 2022–25"
    assert plan.description is not None and "reviewed quarterly by the EDI Board" in plan.description


def test_tower_hamlets_gives_79_actions_under_27_recommendations_in_4_sections(engine: Engine, session: Session) -> None:
    result = import_plan_file(engine, TOWER_HAMLETS)
    # The counts are what was stored: R.15 has no actions in the sheet, so it is a warning.
    assert (result.actions, result.groups, result.workstreams) == (79, 27, 4)
    assert session.scalar(select(func.count(ActionGroup.id))) == 27
    assert [w.message for w in result.warnings if w.message.startswith("R.15")] == [
        "R.15 'Engage Canary Wharf & City of London' has no actions under it; not stored"]
    names = session.scalars(select(Workstream.name).order_by(Workstream.position)).all()
    assert names == ["Anti-Racist Borough", "Community Leadership", "Health", "Education and Employment"]
    first_ws = session.scalars(select(Workstream).order_by(Workstream.position)).first()
    assert first_ws is not None and first_ws.objective is not None and first_ws.objective.startswith("Outcomes:")
    r1a = session.scalars(select(ActionGroup).where(ActionGroup.ref_key == "R1.A")).one()
    assert r1a.title == "Race Equality Pledge"
    assert r1a.description is not None and r1a.description.startswith("Organisations in Tower Hamlets")
    r10 = session.scalars(select(ActionGroup).where(ActionGroup.ref == "R.10")).one()
    assert r10.title == "Representation"


def test_tower_hamlets_first_action_is_due_at_the_end_of_an_excel_month_cell(engine: Engine, session: Session) -> None:
    import_plan_file(engine, TOWER_HAMLETS)
    first = session.scalars(select(Action).order_by(Action.position)).first()
    assert first is not None
    assert first.ref == "R1.A-1"
    assert first.title.startswith("Develop the Tower Hamlets Anti Racist Pledge")
    assert (first.due_date, first.due_precision) == (dt.date(2021, 7, 31), "month")
    assert first.start_date == dt.date(2021, 5, 1)


def test_tower_hamlets_ongoing_actions_are_recurring_with_no_due_date(engine: Engine, session: Session) -> None:
    import_plan_file(engine, TOWER_HAMLETS)
    ongoing = session.scalars(select(Action).where(Action.due_text.in_(["On-going", "Ongoing"]))).all()
    assert len(ongoing) > 10
    assert all(a.recurring and a.due_date is None and a.due_precision is None for a in ongoing)


def test_tower_hamlets_reports_the_quarter_typo_instead_of_dropping_it(engine: Engine, session: Session) -> None:
    result = import_plan_file(engine, TOWER_HAMLETS)
    typo = session.scalars(select(Action).where(Action.due_text == "Q3 21/21")).one()
    assert typo.due_date == dt.date(2021, 12, 31)
    assert any("Q3 21/21" in w.message for w in result.warnings)


def test_importing_the_same_file_twice_creates_nothing_the_second_time(engine: Engine, session: Session) -> None:
    for path, total in ((LAMBETH, 30), (TOWER_HAMLETS, 79)):
        first = import_plan_file(engine, path)
        second = import_plan_file(engine, path)
        assert first.created == total
        assert (second.created, second.updated, second.unchanged) == (0, 0, total)
    assert session.scalar(select(func.count(StatusUpdate.id))) == 0


def test_a_recorded_status_survives_a_reimport(engine: Engine, session: Session) -> None:
    import_plan_file(engine, LAMBETH)
    with session.begin():
        lead = Person(name="EDI Lead", email="lead@lambeth.example")
        session.add(lead)
        session.flush()
        record_update(session, by_ref(session, "CP1"), channel="cli", by=lead, status="amber",
                      note="Guidance drafted", edi_leads=["lead@lambeth.example"])
    again = import_plan_file(engine, LAMBETH)
    assert again.created == 0 and again.updated == 0
    session.expire_all()
    state = current_states(session, [by_ref(session, "CP1")])
    assert [(s.status, s.note) for s in state.values()] == [("amber", "Guidance drafted")]
