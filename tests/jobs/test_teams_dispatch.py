"""The dispatcher sending through the Teams channel to the loopback Bot Connector, on both
databases: cards into the chats the bot has, 429s rescheduled (never slept on), a person who
blocked the bot moved on to the next channel and listed, cards updated in place.

Time is injected: the dispatcher and the channel's limits read one clock that the test moves
on to when the next retry is due.
"""
from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from sqlalchemy import Engine, select

from bot.channels.base import Receipt
from bot.channels.memory import Memory
from bot.channels.teams import Teams, TeamsLimits, teams_settings
from storage.db import session_factory
from storage.models import Outbox, Person
from tests.bot.cards import datas_of
from tests.bot.teams_server import TeamsFake, teams_server
from tests.jobs.test_dispatch import outbox
from tests.jobs.test_slack_dispatch import Clock, add_people, dispatcher, drain, queue


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def fake(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TeamsFake]:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(path))
    with teams_server(TeamsFake(), ca) as served:
        yield served


def teams(fake: TeamsFake, clock: Clock, **table: Any) -> Teams:
    settings = teams_settings({"enabled": True, "app_id": fake.app_id, "tenant_id": fake.tenant,
                               "token_url": fake.token_url, "openid_url": fake.openid_url, **table})
    return Teams(settings, credential=fake.client_secret, limits=TeamsLimits(clock), clock=clock)


def chat(fake: TeamsFake, n: int) -> dict[str, str]:
    return {"service_url": fake.service_url, "conversation_id": f"a:chat-{n}", "tenant_id": fake.tenant,
            "user_id": f"29:user-{n}"}


def people(fake: TeamsFake, count: int, **extra: Any) -> list[dict[str, Any]]:
    return [{"name": f"Owner {n}", "email": f"owner{n}@c.example", "teams_id": f"aad-{n}",
             "teams_conversation": chat(fake, n), **extra} for n in range(count)]


def outbox_of(card: dict[str, Any]) -> int:
    """The outbox id a card's buttons name (every button of a card names the same message)."""
    [outbox_id] = {data["o"] for data in datas_of(card) if "o" in data}
    return outbox_id


def test_a_nudge_is_a_card_in_the_owners_chat_and_the_receipt_names_it(engine: Engine, fake: TeamsFake,
                                                                       clock: Clock) -> None:
    [priya] = add_people(engine, people(fake, 1))
    [sent] = queue(engine, [priya], 1)
    result = dispatcher(engine, clock, {"teams": teams(fake, clock)}, order=("teams",)).run_once()
    assert result.sent == 1
    [card] = fake.cards("a:chat-0")
    assert card["version"] == "1.5"
    [activity] = fake.activities("a:chat-0")
    assert "needs your update" in activity["summary"]  # what the notification says
    row = outbox(engine)[sent]
    assert (row.state, row.channel, row.recipient) == ("sent", "teams", "a:chat-0")
    assert row.receipt["ref"] == {"conversation": "a:chat-0", "activity": activity["id"],
                                  "service_url": fake.service_url, "outbox_id": str(sent)}


def test_200_nudges_with_every_third_call_throttled_all_arrive_exactly_once(engine: Engine, fake: TeamsFake,
                                                                           clock: Clock) -> None:
    ids = queue(engine, add_people(engine, people(fake, 200)), 200)
    fake.throttle_every(3, retry_after="2")
    rounds = drain(dispatcher(engine, clock, {"teams": teams(fake, clock)}, order=("teams",)), clock, engine)
    assert rounds > 2
    rows = outbox(engine)
    assert all(rows[i].state == "sent" for i in ids)
    assert all(rows[i].attempts == 1 for i in ids)  # a throttle is not an attempt: nothing parked
    delivered = collections.Counter(outbox_of(card) for cid in fake.conversations for card in fake.cards(cid))
    assert delivered == collections.Counter(ids)  # every one, exactly once
    assert len([r for r in fake.requests if r.method == "POST" and r.path.endswith("/activities")]) >= 290


def test_the_per_conversation_pace_holds(engine: Engine, fake: TeamsFake, clock: Clock) -> None:
    [priya] = add_people(engine, people(fake, 1))
    ids = queue(engine, [priya], 10)
    drain(dispatcher(engine, clock, {"teams": teams(fake, clock)}, order=("teams",)), clock, engine)
    assert len(fake.activities("a:chat-0")) == 10 and all(outbox(engine)[i].state == "sent" for i in ids)
    firsts = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/activities")]
    assert len(firsts) == 10  # paced by Chaser itself: Teams never had to answer 429


def test_a_person_who_blocked_the_bot_gets_email_instead_and_is_listed(engine: Engine, fake: TeamsFake,
                                                                      clock: Clock) -> None:
    priya, kwame = add_people(engine, people(fake, 2))
    fake.blocked.add("a:chat-0")
    first, second = queue(engine, [priya, kwame], 2)
    email = Memory(kind="email", reaches="email")
    run = dispatcher(engine, clock, {"teams": teams(fake, clock), "email": email}, order=("teams", "email"))
    drain(run, clock, engine)
    rows = outbox(engine)
    assert (rows[first].channel, rows[first].state) == ("email", "sent")  # rerouted, not lost
    assert [e.outbox_id for e in email.sent] == [first]
    assert rows[second].channel == "teams"
    with session_factory(engine)() as session:
        blocked = session.scalars(select(Person).where(Person.id == priya)).one()
        assert blocked.teams_blocked_at == clock.now
    # The next message to her goes straight to email: Teams is not asked again.
    posts = len(fake.calls("POST", "a:chat-0"))
    [third] = queue(engine, [priya], 1)
    drain(run, clock, engine)
    assert outbox(engine)[third].channel == "email" and len(fake.calls("POST", "a:chat-0")) == posts


def test_an_update_replaces_the_card_in_place(engine: Engine, fake: TeamsFake, clock: Clock) -> None:
    [priya] = add_people(engine, people(fake, 1))
    [sent] = queue(engine, [priya], 1)
    run = dispatcher(engine, clock, {"teams": teams(fake, clock)}, order=("teams",))
    run.run_once()
    with session_factory(engine)() as session, session.begin():
        row = session.get(Outbox, sent)
        session.add(Outbox(kind="update", target_id=sent, person_id=priya, recipient=row.recipient, channel="teams",
                           payload={"items": []}, state="queued", attempts=0, created_at=clock.now,
                           next_attempt_at=clock.now, route=[]))
    assert run.run_once().sent == 1
    [put] = fake.calls("PUT", r"/activities/")
    receipt = Receipt.from_json(outbox(engine)[sent].receipt)
    assert put.path.endswith(receipt.ref["activity"])
    assert len(fake.activities("a:chat-0")) == 1  # replaced, not a second message


def test_the_leads_list_goes_to_the_teams_channel_when_one_is_set(engine: Engine, fake: TeamsFake,
                                                                  clock: Clock) -> None:
    # The lead has no chat with the bot at all: the list goes to the channel all the same.
    [lead] = add_people(engine, [{"name": "Lee Lead", "email": "lead@c.example"}])
    [sent] = queue(engine, [lead], 1, kind="lead_list")
    channel = teams(fake, clock, digest_channel="19:edi-leads@thread.tacv2", service_url=fake.service_url)
    email = Memory(kind="email", reaches="email")
    run = dispatcher(engine, clock, {"teams": channel, "email": email}, order=("teams", "email"))
    assert run.run_once().sent == 1
    row = outbox(engine)[sent]
    assert (row.channel, row.recipient) == ("teams", "19:edi-leads@thread.tacv2") and email.sent == []
    [card] = fake.cards("19:edi-leads@thread.tacv2")
    assert "no answer from the owner yet" in json.dumps(card)
    # The bot removed from that team: nobody is marked unreachable, the list goes by email.
    fake.blocked.add("19:edi-leads@thread.tacv2")
    [again] = queue(engine, [lead], 1, kind="lead_list")
    drain(run, clock, engine)
    assert outbox(engine)[again].channel == "email"
    with session_factory(engine)() as session:
        assert session.get(Person, lead).teams_blocked_at is None


def test_a_bot_connector_that_cannot_be_reached_is_retried_and_the_proxy_comes_from_the_environment(
        engine: Engine, fake: TeamsFake, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    [priya] = add_people(engine, [{**people(fake, 1)[0], "teams_conversation": {
        **chat(fake, 0), "service_url": f"https://127.0.0.1:{port}/teams/"}}])
    [sent] = queue(engine, [priya], 1)
    result = dispatcher(engine, clock, {"teams": teams(fake, clock)}, order=("teams",)).run_once()
    assert result.sent == 0
    row = outbox(engine)[sent]
    assert row.state == "failed" and "could not reach Teams" in row.last_error  # to be retried, not parked
    assert row.attempts == 1 and row.next_attempt_at is not None

    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.council.example:8080")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    channel = teams(fake, clock)
    proxied = channel.pools.for_url("https://smba.trafficmanager.net/teams/v3/conversations/a:1/activities")
    assert proxied.proxy is not None and proxied.proxy.host == "proxy.council.example"
    assert getattr(channel.pools.for_url(f"{fake.service_url}v3/conversations"), "proxy", None) is None
