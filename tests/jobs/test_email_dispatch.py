"""The dispatcher sending through the email channel to a real SMTP server on loopback."""
from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from bot.channels.base import Secrets
from chaser.config import parse_config
from tests.bot.smtp_server import Recorder, smtp_server
from tests.jobs.test_dispatch import T0, add_people, dispatcher, eml_ids, outbox, queue


def email_config(port: int, folder: Path, order: list[str]) -> Any:
    return parse_config({"channels": {
        "order": order,
        "email": {"enabled": True, "from": "Chaser <chaser@c.example>", "smtp_host": "127.0.0.1",
                  "smtp_port": port, "smtp_security": "none"},
        "outbox_folder": {"folder": str(folder)},
    }}, "test")


def test_run_once_sends_by_email_and_keeps_each_message_id(engine: Engine, tmp_path: Path) -> None:
    recorder = Recorder()
    ids = queue(engine, add_people(engine, 3), 3, channel=None)
    with smtp_server(recorder) as server:
        run = dispatcher(engine, email_config(server.port, tmp_path / "outbox", ["email"]), T0, secrets=Secrets({}))
        result = run.run_once()
        run.channel("email").close()  # type: ignore[attr-defined]
    assert result.sent == 3
    sent = {int(m["X-Chaser-Outbox-Id"]): m for m in
            (email.message_from_bytes(got.data, policy=email.policy.default) for got in recorder.received)}
    assert sorted(sent) == ids and len({got.peer for got in recorder.received}) == 1  # one connection
    for outbox_id, row in outbox(engine).items():
        assert (row.state, row.channel, row.recipient) == ("sent", "email", sent[outbox_id]["To"].addresses[0].addr_spec)
        assert row.receipt["ref"] == {"message_id": sent[outbox_id]["Message-ID"]}


def test_an_address_the_server_rejects_for_good_moves_to_the_outbox_folder(engine: Engine, tmp_path: Path) -> None:
    recorder = Recorder(refuse={"owner1@c.example": "550 5.1.1 <owner1@c.example>: Recipient address rejected"})
    ids = queue(engine, add_people(engine, 2), 2, channel=None)
    folder = tmp_path / "outbox"
    with smtp_server(recorder) as server:
        config = email_config(server.port, folder, ["email", "outbox_folder"])
        result = dispatcher(engine, config, T0, secrets=Secrets({})).run_once()
    assert (result.sent, result.rerouted, result.parked) == (2, 1, 0)
    assert [got.recipients for got in recorder.received] == [["owner0@c.example"]]
    rows = outbox(engine)
    assert rows[ids[0]].channel == "email"
    moved = rows[ids[1]]
    assert (moved.state, moved.channel) == ("sent", "outbox_folder") and eml_ids(folder) == [ids[1]]
    assert [step["channel"] for step in moved.route] == ["email"]
    assert "owner1@c.example" in moved.route[0]["error"] and "550 5.1.1" in moved.route[0]["error"]


def test_a_person_with_a_chat_id_who_chose_email_gets_email(engine: Engine, tmp_path: Path) -> None:
    """The people directory's channel column beats [channels] order: a chat channel that reaches
    everyone with a Slack id comes first in the order, yet the owner who chose email gets email."""
    from sqlalchemy import update

    from bot.channels.memory import Memory
    from storage.db import session_factory
    from storage.models import Person

    people = add_people(engine, 2)
    with session_factory(engine)() as session, session.begin():
        session.execute(update(Person).values(slack_id="U0"))
        session.execute(update(Person).where(Person.id == people[0][0]).values(channel="email"))
    ids = queue(engine, people, 2, channel=None)
    recorder, chat = Recorder(), Memory(reaches="slack")
    with smtp_server(recorder) as server:
        config = parse_config({"channels": {
            "order": ["memory", "email"],
            "memory": {"reaches": "slack"},
            "email": {"enabled": True, "from": "Chaser <chaser@c.example>", "smtp_host": "127.0.0.1",
                      "smtp_port": server.port, "smtp_security": "none"},
        }}, "test")
        run = dispatcher(engine, config, T0, secrets=Secrets({}), channels={"memory": chat})
        assert run.run_once().sent == 2
        run.close()
    rows = outbox(engine)
    assert (rows[ids[0]].channel, rows[ids[1]].channel) == ("email", "memory")
    assert [got.recipients for got in recorder.received] == [[people[0][1]]]
    assert [envelope.outbox_id for envelope in chat.sent] == [ids[1]]
