"""The one inbound path (bot.inbound.handle_reply) on SQLite and PostgreSQL: who may answer,
which message an answer belongs to, duplicates, and chat messages updated in place."""
from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.channels.memory import Memory
from bot.inbound import Reply, handle_reply
from bot.links import read_answer_token
from chaser.config import Config, parse_config
from jobs.dispatch import Dispatcher
from jobs.sweep import run_sweep
from storage.db import session_factory
from storage.importers.load import import_plan_file
from storage.models import Action, Outbox, Person, Reply as ReplyRow, StatusUpdate
from storage.people import import_directory
from storage.updates import current_states
from tests.importers.makers import write_csv

UTC = dt.timezone.utc
SENT = dt.datetime(2026, 12, 4, 9, 30, tzinfo=ZoneInfo("Europe/London")).astimezone(UTC)
LATER = SENT + dt.timedelta(hours=2)


@pytest.fixture
def config() -> Config:
    return parse_config({"edi_lead": "lead@c.example", "channels": {"default": "memory"}}, "test")


@pytest.fixture
def plan(engine: Engine, tmp_path: Path) -> Engine:
    write_csv(tmp_path / "plan.csv", [
        ["Ref", "Action", "Owner", "Deadline"],
        ["P1", "Publish pay gap report", "HR Business Partner", "18/12/2026"],
        ["P2", "Audit interview panels", "HR Business Partner", "18/12/2026"],
        ["P3", "Menopause policy", "Policy Lead", "18/12/2026"],
    ])
    import_plan_file(engine, tmp_path / "plan.csv", plan_name="Plan")
    write_csv(tmp_path / "people.csv", [
        ["name", "email", "roles", "slack_id"],
        ["Priya Shah", "priya@c.example", "HR Business Partner", "UPRIYA"],
        ["Pat Policy", "pat@c.example", "Policy Lead", ""],
        ["Sam Ade", "sam@c.example", "", ""],
        ["Lee Lead", "lead@c.example", "", ""],
    ])
    with session_factory(engine)() as session, session.begin():
        import_directory(session, tmp_path / "people.csv")
    return engine


def ids(session: Session) -> dict[str, int]:
    found = {a.ref: a.id for a in session.scalars(select(Action))}
    found.update({p.email: p.id for p in session.scalars(select(Person))})
    return found


def answer(engine: Engine, config: Config, reply: Reply):  # type: ignore[no-untyped-def]
    with session_factory(engine)() as session, session.begin():
        result = handle_reply(session, reply, config)
        return result.outcome, result.detail, result.reply_id


def replies(engine: Engine) -> list[ReplyRow]:
    with session_factory(engine)() as session:
        return list(session.scalars(select(ReplyRow).order_by(ReplyRow.id)))


def updates(engine: Engine) -> list[StatusUpdate]:
    with session_factory(engine)() as session:
        return list(session.scalars(select(StatusUpdate).where(StatusUpdate.channel != "import")))


def send_nudges(engine: Engine, config: Config, memory: Memory) -> int:
    """The sweep and dispatch of the morning; the id of Priya's message (about P1 and P2)."""
    run_sweep(engine, config, SENT)
    Dispatcher(engine, config, clock=lambda: SENT, secret="s" * 32, channels={"memory": memory}).run_once()
    (priya,) = [e.outbox_id for e in memory.sent if e.recipient.email == "priya@c.example"]
    return priya


def test_an_owners_answer_is_recorded_and_tied_to_the_message_it_answers(plan: Engine, config: Config) -> None:
    outbox_id = send_nudges(plan, config, Memory())
    with session_factory(plan)() as session:
        known = ids(session)
    outcome, detail, reply_id = answer(plan, config, Reply(
        via="web", sender="priya@c.example", received_at=LATER, person_id=known["priya@c.example"],
        action_ids=(known["P1"],), outbox_id=outbox_id, status="amber", note="Survey delayed", due_text="30/06/2027"))

    assert (outcome, detail) == ("applied", None)
    (update,) = updates(plan)
    assert (update.outbox_id, update.reply_id, update.new_status, update.note) == (outbox_id, reply_id, "amber", "Survey delayed")
    assert update.revised_due == dt.date(2027, 6, 30) and update.channel == "web"
    (row,) = replies(plan)
    assert (row.outcome, row.refs, row.person_id, row.outbox_id) == ("applied", ["P1"], known["priya@c.example"], outbox_id)


def test_the_same_event_twice_is_one_update_and_one_duplicate(plan: Engine, config: Config) -> None:
    reply = Reply(via="slack", sender="UPRIYA", received_at=LATER, refs=("P1",), status="green",
                  external_id="1733311111.000100")
    assert answer(plan, config, reply)[0] == "applied"
    outcome, detail, _ = answer(plan, config, reply)

    assert outcome == "duplicate" and "recorded once" in detail
    assert len(updates(plan)) == 1
    first, second = replies(plan)
    assert (first.outcome, second.outcome, second.duplicate_of, second.external_id) == ("applied", "duplicate", first.id, None)


def test_someone_who_is_not_an_owner_changes_nothing(plan: Engine, config: Config) -> None:
    outcome, detail, _ = answer(plan, config, Reply(via="email", sender="sam@c.example", received_at=LATER,
                                                    refs=("P1",), status="red"))
    assert outcome == "not_allowed" and "sam@c.example may not update P1: only its owners" in detail
    outcome, detail, _ = answer(plan, config, Reply(via="email", sender="stranger@elsewhere.example",
                                                    received_at=LATER, refs=("P1",), status="red"))
    assert outcome == "not_allowed" and "not in the people directory" in detail
    assert updates(plan) == []
    assert [r.outcome for r in replies(plan)] == ["not_allowed", "not_allowed"]


def test_an_answer_about_several_actions_is_all_or_nothing(plan: Engine, config: Config) -> None:
    outcome, detail, _ = answer(plan, config, Reply(via="email", sender="priya@c.example", received_at=LATER,
                                                    refs=("P1", "P3"), status="complete"))
    assert outcome == "not_allowed" and detail.startswith("priya@c.example may not update P3:")
    assert updates(plan) == []


def test_the_edi_lead_and_a_cover_may_answer(plan: Engine, config: Config) -> None:
    with session_factory(plan)() as session, session.begin():
        pat = session.scalar(select(Person).where(Person.email == "pat@c.example"))
        pat.cover_id = session.scalar(select(Person.id).where(Person.email == "sam@c.example"))
    assert answer(plan, config, Reply(via="cli", sender="lead@c.example", received_at=LATER, refs=("P1",),
                                      status="green"))[0] == "applied"
    assert answer(plan, config, Reply(via="email", sender="sam@c.example", received_at=LATER, refs=("P3",),
                                      note="Pat is away; draft with legal"))[0] == "applied"


@pytest.mark.parametrize(("changes", "expected"), [
    ({"due_text": "31/12/9999"}, "not a deadline"),
    ({"due_text": "x" * 101}, "longer than 100 characters"),
    ({"status": "purple"}, "'purple' is not a status"),
    ({"status": None, "note": "   "}, "nothing to record"),
    ({"refs": ("P9",)}, "there is no action P9"),
    ({"refs": ()}, "does not say which action"),
])
def test_an_answer_that_cannot_be_read_is_kept_as_unclear(plan: Engine, config: Config, changes: dict, expected: str) -> None:  # type: ignore[type-arg]
    values = {"via": "email", "sender": "priya@c.example", "received_at": LATER, "refs": ("P1",), "status": "amber",
              "raw": "Amber — new date 31/12/9999", **changes}
    outcome, detail, _ = answer(plan, config, Reply(**values))
    assert outcome == "unclear" and expected in detail
    assert updates(plan) == []
    (row,) = replies(plan)
    assert row.outcome == "unclear" and row.raw == values["raw"]


def test_an_answer_to_a_message_about_several_actions_must_say_which(plan: Engine, config: Config) -> None:
    outbox_id = send_nudges(plan, config, Memory())  # Priya's message lists P1 and P2
    outcome, detail, _ = answer(plan, config, Reply(via="email", sender="priya@c.example", received_at=LATER,
                                                    outbox_id=outbox_id, status="green"))
    assert outcome == "unclear" and "about 2 actions (P1, P2)" in detail


def test_an_out_of_office_changes_nothing(plan: Engine, config: Config) -> None:
    outcome, _, _ = answer(plan, config, Reply(via="email", sender="priya@c.example", received_at=LATER,
                                               refs=("P1",), status="green", auto_reply=True))
    assert outcome == "auto_reply" and updates(plan) == []


def test_an_answer_updates_the_open_chat_message_in_place(plan: Engine, config: Config) -> None:
    memory = Memory()
    outbox_id = send_nudges(plan, config, memory)
    with session_factory(plan)() as session:
        known = ids(session)
    answer(plan, config, Reply(via="email", sender="priya@c.example", received_at=LATER, refs=("P2",),
                               status="complete", note="Panels audited"))
    with session_factory(plan)() as session:
        (refresh,) = session.scalars(select(Outbox).where(Outbox.kind == "update"))
        assert (refresh.target_id, refresh.state, refresh.channel) == (outbox_id, "queued", "memory")
    # A second answer before it is sent adds no second update: the one waiting shows both.
    answer(plan, config, Reply(via="email", sender="priya@c.example", received_at=LATER, refs=("P1",), status="amber"))

    result = Dispatcher(plan, config, clock=lambda: LATER, secret="s" * 32, channels={"memory": memory}).run_once()

    assert result.sent == 1
    ((receipt_id, updated),) = memory.updates
    assert memory.messages[receipt_id] is updated and len(memory.sent) == 2  # Priya's and Pat's nudges
    p1, p2 = updated.items
    assert (p2.recorded.status, p2.recorded.note, p2.recorded.by, p2.recorded.via) == ("complete", "Panels audited", "Priya Shah", "email")
    assert p1.recorded.status == "amber"
    (original,) = [e for e in memory.sent if e.outbox_id == outbox_id]

    def answers(links):  # type: ignore[no-untyped-def]
        # Signed afresh (a later date), but for the same action, person and message, and the same answers.
        return [(link.label, link.status, read_answer_token("s" * 32, link.url.split("/answer/")[1].split("?")[0],
                                                            86400 * 60)) for link in links]

    assert answers(p1.links) == answers(original.items[0].links)
    with session_factory(plan)() as session:
        assert session.get(Outbox, result.outbox_ids[0]).receipt["ref"] == {"id": receipt_id}
        states = current_states(session, [session.get(Action, known["P2"])])
        assert states[known["P2"]].status == "complete"


def test_an_update_that_fails_is_retried_and_parked_like_a_send(plan: Engine, config: Config) -> None:
    memory = Memory()
    send_nudges(plan, config, memory)
    answer(plan, config, Reply(via="email", sender="priya@c.example", received_at=LATER, refs=("P1",), status="red"))
    memory.permanent_failure = True

    result = Dispatcher(plan, config, clock=lambda: LATER, secret="s" * 32, channels={"memory": memory}).run_once()

    assert (result.sent, result.parked) == (0, 1)
    with session_factory(plan)() as session:
        (refresh,) = session.scalars(select(Outbox).where(Outbox.kind == "update"))
        assert refresh.state == "parked" and "refuses" in refresh.last_error
        assert session.scalars(select(Outbox).where(Outbox.kind == "lead_list")).all() == []  # no notice for an edit
