"""Reasons through the outbox: the sweep stores them as data, and a row queued before that still goes."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from bot.channels.memory import Memory
from bot.render import render
from chaser.config import parse_config
from jobs.dispatch import Dispatcher
from jobs.sweep import run_sweep
from storage.importers.load import import_plan_file
from storage.models import Outbox, Person
from storage.people import import_directory
from storage.reasons import Why
from tests.importers.makers import write_csv

NOW = dt.datetime(2026, 12, 4, 9, 30, tzinfo=ZoneInfo("Europe/London"))


def test_the_sweep_stores_why_as_data_and_a_row_queued_before_the_upgrade_keeps_its_sentence(
        engine: Engine, session: Session, tmp_path: Path) -> None:
    write_csv(tmp_path / "plan.csv", [["Ref", "Action", "Owner", "Deadline"],
                                      ["P1", "Publish pay gap report", "HR Business Partner", "18/12/2026"]])
    import_plan_file(engine, tmp_path / "plan.csv", plan_name="Plan")
    write_csv(tmp_path / "people.csv", [["name", "email", "roles"], ["Priya Shah", "priya@c.example", "HR Business Partner"],
                                        ["Sam Ade", "sam@c.example", ""]])
    with session.begin():
        import_directory(session, tmp_path / "people.csv")
    config = parse_config({"channels": {"default": "memory"}}, "test")
    run_sweep(engine, config, NOW)
    with session.begin():
        (row,) = session.scalars(select(Outbox))
        (stored,) = row.payload["items"]
        assert stored["why"] == {"rule": "before_due", "due": "2026-12-18", "working_days": 10}
        assert "reason" not in stored
        # What an older sweep wrote: the same item with its sentence and no data.
        old_item = {key: value for key, value in stored.items() if key != "why"}
        old_item["reason"] = "Due in 10 working days (Fri 18 December 2026), as an older release wrote it."
        sam = session.scalars(select(Person).where(Person.email == "sam@c.example")).one()
        session.execute(insert(Outbox), [{
            "kind": "nudge", "person_id": sam.id, "recipient": sam.email, "channel": "memory",
            "payload": {"items": [old_item], "notes": []}, "state": "queued", "attempts": 0,
            "created_at": NOW, "next_attempt_at": NOW}])
    memory = Memory()
    Dispatcher(engine, config, clock=lambda: NOW, secret="s" * 32, channels={"memory": memory}).run_once()
    sent = {envelope.recipient.email: envelope for envelope in memory.sent}
    assert sent["priya@c.example"].items[0].why == Why("before_due", due=dt.date(2026, 12, 18), working_days=10)
    new = render(sent["priya@c.example"])
    assert new.subject == "Update needed: P1 due in 10 working days"
    assert "Why now: Due in 10 working days (Fri 18 December 2026).\n" in new.text
    old = render(sent["sam@c.example"])
    assert old.subject == "Update needed: P1 due soon"
    assert "Why now: Due in 10 working days (Fri 18 December 2026), as an older release wrote it." in old.text
