"""The app layer every front end calls: finding, listing and showing actions; the outbox and retries."""
from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from chaser.errors import InvalidValue, NotFound
from storage.dates import parse_when
from storage.importers.load import import_plan_file
from storage.models import Outbox, Person
from storage.people import import_directory
from storage.tracker import (
    UNKNOWN,
    action_detail,
    find_action,
    find_plan,
    list_actions,
    list_outbox,
    retry_message,
)
from storage.updates import record_update
from tests.importers.makers import write_csv

UTC = dt.UTC
T0 = dt.datetime(2026, 12, 1, 9, 30, tzinfo=UTC)


@pytest.fixture
def plans(engine: Engine, session: Session, tmp_path: Path) -> Session:
    write_csv(tmp_path / "pay.csv", [
        ["Ref", "Action", "Owner", "Deadline"],
        ["HW 3", "Publish pay gap report", "HR Business Partner", "March 2027"],
        ["HW 4", "Audit interview panels", "Network Chair", "On-going"],
    ])
    write_csv(tmp_path / "other.csv", [["Ref", "Action", "Owner", "Deadline"], ["HW 3", "Another plan's HW 3", "Chair", ""]])
    import_plan_file(engine, tmp_path / "pay.csv", plan_name="Pay")
    import_plan_file(engine, tmp_path / "other.csv", plan_name="Other")
    write_csv(tmp_path / "people.csv", [["name", "email", "roles"], ["Priya Shah", "priya@c.example", "HR Business Partner"]])
    with session.begin():
        import_directory(session, tmp_path / "people.csv")
    return session


def test_a_ref_is_found_ignoring_case_and_spaces_within_a_plan(plans: Session) -> None:
    assert find_action(plans, "hw3", "Pay").title == "Publish pay gap report"
    with pytest.raises(NotFound, match=r"ref 'hw3' is in several plans \('Pay', 'Other'\): add --plan NAME"):
        find_action(plans, "hw3")
    with pytest.raises(NotFound, match="no action with ref 'HW 9' in plan 'Pay'"):
        find_action(plans, "HW 9", "Pay")
    with pytest.raises(NotFound, match=r"no plan named 'Nope' \(plans: 'Other', 'Pay'\)"):
        find_plan(plans, "Nope")


def test_actions_are_listed_as_plain_data_with_their_current_state_and_people(plans: Session) -> None:
    with plans.begin():
        hw3 = find_action(plans, "HW 3", "Pay")
        priya = plans.scalars(select(Person)).one()
        record_update(plans, hw3, channel="cli", by=priya, status="amber", note="Data late", due=parse_when("June 2027"),
                      at=T0)
    with plans.begin():
        listed = list_actions(plans, find_plan(plans, "Pay"))
    assert [(a.ref, a.status, a.due, a.people) for a in listed] == [
        ("HW 3", "amber", dt.date(2027, 6, 30), ["priya@c.example"]),  # the revised date wins
        ("HW 4", None, None, []),
    ]
    assert listed[0].as_json() == {
        "ref": "HW 3", "title": "Publish pay gap report", "plan": "Pay", "workstream": None, "group": None,
        "owners": ["HR Business Partner"], "people": ["priya@c.example"], "start": None, "due": "2027-06-30",
        "due_text": "June 2027", "due_precision": "month", "recurring": False, "recurrence": None, "key_dates": [],
        "status": "amber", "note": "Data late", "updated_at": "2026-12-01T09:30:00+00:00",
    }
    with plans.begin():
        assert [a.ref for a in list_actions(plans, None, "amber")] == ["HW 3"]
        assert [(a.plan, a.ref) for a in list_actions(plans, None, UNKNOWN)] == [("Pay", "HW 4"), ("Other", "HW 3")]


def test_an_actions_detail_has_its_plan_dates_and_its_history_oldest_first(plans: Session) -> None:
    with plans.begin():
        hw3 = find_action(plans, "HW 3", "Pay")
        priya = plans.scalars(select(Person)).one()
        record_update(plans, hw3, channel="cli", by=priya, status="red", at=T0)
        record_update(plans, hw3, channel="web", by=priya, status="green", note="Published", at=T0 + dt.timedelta(days=1))
    with plans.begin():
        detail = action_detail(plans, find_action(plans, "HW 3", "Pay"))
    assert (detail.status, detail.plan_due, detail.plan_due_text) == ("green", dt.date(2027, 3, 31), "March 2027")
    assert [(h.channel, h.old_status, h.new_status, h.note) for h in detail.history] == [
        ("cli", None, "red", None), ("web", "red", "green", "Published"),
    ]
    shown = detail.as_json()
    assert list(shown)[-1] == "history" and shown["history"][1]["at"] == "2026-12-02T09:30:00+00:00"


def queue(session: Session, state: str, *, person: Person | None = None) -> int:
    row = Outbox(kind="nudge", person_id=person.id if person else None, recipient="gone@c.example", channel="memory",
                 payload={"items": [{"key": "due:1:1:2026-12-01", "ref": "HW 3"}]}, state=state, attempts=6,
                 last_error="service down" if state != "sent" else None, created_at=T0, next_attempt_at=T0)
    session.add(row)
    session.flush()
    return row.id


def test_a_parked_message_is_queued_again_at_the_time_given(plans: Session) -> None:
    with plans.begin():
        parked = queue(plans, "parked", person=plans.scalars(select(Person)).one())
    later = T0 + dt.timedelta(hours=3)
    with plans.begin():
        entry = retry_message(plans, parked, later)
    assert (entry.id, entry.state, entry.attempts, entry.last_error) == (parked, "queued", 0, None)
    assert (entry.person, entry.keys, entry.refs) == ("priya@c.example", ["due:1:1:2026-12-01"], ["HW 3"])
    with plans.begin():
        (listed,) = list_outbox(plans, "queued")
    assert (listed.id, listed.next_attempt_at) == (parked, later)


def test_only_parked_or_failed_messages_are_retried(plans: Session) -> None:
    with plans.begin():
        failed, sent = queue(plans, "failed"), queue(plans, "sent")
    with plans.begin():
        assert retry_message(plans, failed, T0).person == "gone@c.example"  # left the directory: the planned address
    with plans.begin(), pytest.raises(InvalidValue, match=f"outbox message {sent} is sent; only parked or failed"):
        retry_message(plans, sent, T0)
    for missing in (sent + 1, 0, 2**31):  # 2**31 would overflow PostgreSQL's integer: nothing has that id
        with plans.begin(), pytest.raises(NotFound, match=f"no outbox message {missing}"):
            retry_message(plans, missing, T0)
    with plans.begin():
        assert [(e.id, e.state) for e in list_outbox(plans)] == [(failed, "queued"), (sent, "sent")]
