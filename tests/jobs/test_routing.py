"""Routing by the dispatcher: the person's own channel, then ``[channels] order``; a permanent
failure moves the message on; nobody reachable anywhere lands on the EDI lead's list."""
from __future__ import annotations

import datetime as dt
from dataclasses import replace

from sqlalchemy import Engine, insert, select

from bot.channels.memory import Memory
from chaser.config import ChannelsConfig, parse_config
from storage.db import session_factory
from storage.models import Person
from tests.jobs.test_dispatch import T0, Refuses, dispatcher, outbox, queue

ORDER = ("slack", "email")


def config(order: tuple[str, ...] = ORDER, lead: str | None = "lead@c.example"):  # type: ignore[no-untyped-def]
    base = parse_config({"edi_lead": lead} if lead else {}, "test")
    return replace(base, channels=ChannelsConfig(order=order))


def people(engine: Engine, *rows: dict[str, str | None]) -> list[tuple[int, str]]:
    with session_factory(engine)() as session, session.begin():
        session.execute(insert(Person), list(rows))
        return [(p.id, p.email) for p in session.scalars(select(Person).order_by(Person.id))]


def channels() -> tuple[Memory, Memory]:
    return Memory(kind="slack", reaches="slack"), Memory(kind="email", reaches="email")


def test_a_message_goes_to_the_first_channel_in_the_order_that_reaches_its_recipient(engine: Engine) -> None:
    found = people(engine, {"name": "On Slack", "email": "s@c.example", "slack_id": "U1"},
                   {"name": "Email only", "email": "e@c.example", "slack_id": None})
    on_slack, by_email = queue(engine, found, 2, channel=None)
    slack, email = channels()

    result = dispatcher(engine, config(), T0, channels={"slack": slack, "email": email}).run_once()

    assert result.sent == 2
    assert slack.outbox_ids() == [on_slack] and email.outbox_ids() == [by_email]
    rows = outbox(engine)
    assert (rows[on_slack].channel, rows[on_slack].recipient) == ("slack", "U1")
    assert (rows[by_email].channel, rows[by_email].recipient) == ("email", "e@c.example")
    assert rows[on_slack].receipt["channel"] == "slack"


def test_a_persons_own_channel_comes_before_the_order(engine: Engine) -> None:
    found = people(engine, {"name": "Prefers email", "email": "p@c.example", "slack_id": "U2", "channel": "email"})
    [outbox_id] = queue(engine, found, 1, channel=None)
    slack, email = channels()

    dispatcher(engine, config(), T0, channels={"slack": slack, "email": email}).run_once()

    assert email.outbox_ids() == [outbox_id] and slack.sent == []


def test_a_permanent_failure_moves_the_message_to_the_next_channel_and_says_so(engine: Engine) -> None:
    found = people(engine, {"name": "Sam", "email": "sam@c.example", "slack_id": "U3"})
    [outbox_id] = queue(engine, found, 1, channel=None)
    slack = Memory(kind="slack", reaches="slack", permanent_failure=True)  # e.g. the bot was removed
    email = Memory(kind="email", reaches="email")
    chosen = {"slack": slack, "email": email}

    result = dispatcher(engine, config(), T0, channels=chosen).run_once()

    # Moved on at once: the same run sends it by email.
    assert (result.sent, result.rerouted, result.parked) == (1, 1, 0)
    assert email.outbox_ids() == [outbox_id] and slack.attempts == 1
    row = outbox(engine)[outbox_id]
    assert (row.state, row.channel, row.recipient, row.last_error) == ("sent", "email", "sam@c.example", None)
    assert [step["channel"] for step in row.route] == ["slack"] and "refuses" in row.route[0]["error"]
    assert dispatcher(engine, config(), T0 + dt.timedelta(days=1), channels=chosen).run_once().sent == 0


def test_nobody_reachable_anywhere_parks_the_message_and_the_edi_lead_gets_the_list(engine: Engine) -> None:
    found = people(engine, {"name": "Dana Lead", "email": "lead@c.example", "slack_id": None},
                   {"name": "Chris Nowhere", "email": "chris@c.example", "slack_id": None})
    lead_id = found[0][0]
    [outbox_id] = queue(engine, found[1:], 1, channel=None)
    slack = Memory(kind="slack", reaches="slack")
    email = Refuses("chris@c.example", kind="email", reaches="email")  # the mailbox does not exist
    chosen = {"slack": slack, "email": email}

    first = dispatcher(engine, config(), T0, channels=chosen).run_once()

    assert first.parked == 1
    rows = outbox(engine)
    assert rows[outbox_id].state == "parked"
    assert rows[outbox_id].last_error == "email: chris@c.example refused: no such mailbox (permanent)"
    (notice,) = [row for row in rows.values() if row.id != outbox_id]
    assert (notice.kind, notice.person_id, notice.state) == ("lead_list", lead_id, "sent")
    assert notice.payload["items"][0]["owner"] == "Chris Nowhere"
    assert f"outbox {outbox_id}" in notice.payload["notes"][0]
    (sent,) = email.sent  # same run: the lead's notice went straight out by email
    assert sent.recipient.email == "lead@c.example" and sent.items[0].ref == "X0"


def test_a_recipient_with_no_address_on_any_channel_is_named_for_the_lead(engine: Engine) -> None:
    found = people(engine, {"name": "Dana Lead", "email": "lead@c.example", "slack_id": "UL"},
                   {"name": "Pat Offline", "email": "pat@c.example", "slack_id": None})
    [outbox_id] = queue(engine, found[1:], 1, channel=None)
    slack = Memory(kind="slack", reaches="slack")

    dispatcher(engine, config(order=("slack",)), T0, channels={"slack": slack}).run_once()

    row = outbox(engine)[outbox_id]
    assert row.state == "parked"
    assert row.last_error == "Pat Offline could not be reached on any channel (slack: no address)"
    (notice,) = slack.sent
    assert notice.kind == "lead_list" and notice.recipient.address("slack") == "UL"
    assert "Pat Offline could not be reached" in notice.notes[0]


def test_a_lead_who_cannot_be_reached_gets_no_notice_about_themselves(engine: Engine) -> None:
    found = people(engine, {"name": "Dana Lead", "email": "lead@c.example", "slack_id": None})
    [outbox_id] = queue(engine, found, 1, channel=None)

    dispatcher(engine, config(order=("slack",)), T0, channels={"slack": Memory(kind="slack", reaches="slack")}).run_once()

    rows = outbox(engine)
    assert list(rows) == [outbox_id] and rows[outbox_id].state == "parked"


def test_the_people_directory_sets_each_persons_channel_and_refuses_an_unknown_one(engine: Engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pytest

    from chaser.errors import ImportFileError
    from storage.people import import_directory
    from tests.importers.makers import write_csv

    write_csv(tmp_path / "people.csv", [["name", "email", "slack_id", "channel"],
                                        ["Sam", "sam@c.example", "U9", "Email"], ["Ali", "ali@c.example", "", ""]])
    with session_factory(engine)() as session, session.begin():
        import_directory(session, tmp_path / "people.csv", channels=("slack", "email"))
    with session_factory(engine)() as session:
        assert {p.email: p.channel for p in session.scalars(select(Person))} == {"sam@c.example": "email",
                                                                                 "ali@c.example": None}
    write_csv(tmp_path / "bad.csv", [["name", "email", "channel"], ["Sam", "sam@c.example", "pigeon"]])
    with pytest.raises(ImportFileError, match=r"row 2 \(channel\): 'pigeon' is not one of email, slack"):
        with session_factory(engine)() as session, session.begin():
            import_directory(session, tmp_path / "bad.csv", channels=("slack", "email"))
