"""The dispatcher sending through the Slack channel to the Slack fake, on both databases.

Time is injected: the dispatcher, the channel's limits and the fake all read one clock that the
test moves on to when the next retry is due. Nothing sleeps.
"""
from __future__ import annotations

import collections
import datetime as dt
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from pyrate_limiter import Duration, Rate
from sqlalchemy import Engine, func, insert, select, update

from bot.channels.base import Envelope, Recipient
from bot.channels.memory import Memory
from bot.channels.slack import SendLimits, Slack
from bot.slack_blocks import parse_button_value
from jobs.dispatch import Dispatcher
from storage.db import session_factory
from storage.models import Outbox, Person
from storage.people import import_directory
from tests.bot.slack_server import BOT_TOKEN, SlackFake, slack_server
from tests.importers.makers import write_csv
from tests.jobs.crash_helpers import SECRET
from tests.jobs.test_dispatch import make_config, outbox

UTC = dt.timezone.utc
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    """The one clock of a test: ``now`` moves only when the test moves it."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def seconds(self) -> float:
        return self.now.timestamp()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def slack(clock: Clock):
    with slack_server(SlackFake(clock=clock.seconds)) as fake:
        yield fake


def add_people(engine: Engine, people: list[dict[str, Any]]) -> list[int]:
    with session_factory(engine)() as session, session.begin():
        session.execute(insert(Person), people)
        return list(session.scalars(select(Person.id).order_by(Person.id)))


def queue(engine: Engine, person_ids: list[int], count: int, *, at: dt.datetime = T0, kind: str = "nudge") -> list[int]:
    """``count`` nudges round-robin over the people, one action each (action id = n + 1)."""
    with session_factory(engine)() as session, session.begin():
        people = {p.id: p.email for p in session.scalars(select(Person).where(Person.id.in_(person_ids)))}
        before = session.scalar(select(func.coalesce(func.max(Outbox.id), 0)))
        session.execute(insert(Outbox), [
            {"kind": kind, "person_id": person_ids[n % len(person_ids)], "recipient": people[person_ids[n % len(person_ids)]],
             "channel": None, "state": "queued", "attempts": 0, "created_at": at, "next_attempt_at": at, "route": [],
             "payload": {"items": [{"action_id": n + 1, "ref": f"HW {n + 1}", "title": "Publish the pay gap report",
                                    "plan": "Lambeth EDI Action Plan", "rule": "due", "reason": "Due today.",
                                    "key": f"k{n}", "due": None, "due_text": None, "status": None, "owner": None}],
                         "notes": []}}
            for n in range(count)])
        return list(session.scalars(select(Outbox.id).where(Outbox.id > before).order_by(Outbox.id)))


def slack_channel(fake: SlackFake, **changes: Any) -> Slack:
    values: dict[str, Any] = {"token": BOT_TOKEN, "api_url": fake.url, "limits": None}
    values.update(changes)
    return Slack(**values)


def dispatcher(engine: Engine, clock: Clock, channels: dict[str, Any], order: tuple[str, ...] = ("slack", "email"),
               **config: Any) -> Dispatcher:
    settings = make_config(order=order)
    if config:
        settings = replace(settings, **config)
    return Dispatcher(engine, settings, clock=clock, secret=SECRET, channels=channels)


def drain(run: Dispatcher, clock: Clock, engine: Engine, rounds: int = 60) -> int:
    """Dispatch until nothing is left to send, moving the clock to each next retry; the rounds it took."""
    for n in range(rounds):
        run.run_once()
        with session_factory(engine)() as session:
            due = session.scalar(select(func.min(Outbox.next_attempt_at))
                                 .where(Outbox.state.in_(("queued", "failed"))))
        if due is None:
            return n + 1
        clock.now = max(clock.now, due)
    raise AssertionError(f"still sending after {rounds} rounds")


def test_a_nudge_is_a_dm_with_buttons_for_the_right_owner(engine: Engine, slack: SlackFake, clock: Clock) -> None:
    slack.add_user("U0PRIYA01", "priya@c.example", "Priya Shah")
    slack.add_user("U0KWAME01", "kwame@c.example", "Kwame Mensah")
    priya, kwame = add_people(engine, [{"name": "Priya Shah", "email": "priya@c.example", "slack_id": "U0PRIYA01"},
                                       {"name": "Kwame Mensah", "email": "kwame@c.example", "slack_id": "U0KWAME01"}])
    first, second = queue(engine, [priya, kwame], 2)
    email = Memory(kind="email", reaches="email")
    result = dispatcher(engine, clock, {"slack": slack_channel(slack), "email": email}).run_once()
    assert (result.sent, email.sent) == (2, [])
    [to_priya] = slack.dms("U0PRIYA01")
    assert to_priya["metadata"]["event_payload"] == {"outbox_id": first}
    [actions] = [b for b in to_priya["blocks"] if b["type"] == "actions"]
    assert actions["block_id"] == "item-1" and parse_button_value(actions["elements"][1]["value"]) == (first, 1, "amber")
    assert [m["metadata"]["event_payload"]["outbox_id"] for m in slack.dms("U0KWAME01")] == [second]
    row = outbox(engine)[first]
    assert (row.state, row.channel, row.recipient) == ("sent", "slack", "U0PRIYA01")
    assert row.receipt["ref"] == {"channel": slack.dm_channel("U0PRIYA01"), "ts": to_priya["ts"], "outbox_id": str(first)}


def test_lookup_by_email_is_remembered_on_the_person_and_not_found_moves_on(engine: Engine, slack: SlackFake,
                                                                          clock: Clock) -> None:
    slack.add_user("U0KWAME01", "kwame@c.example", "Kwame Mensah")
    kwame, sam = add_people(engine, [{"name": "Kwame Mensah", "email": "kwame@c.example"},
                                     {"name": "Sam Jones", "email": "sam@c.example"}])
    email = Memory(kind="email", reaches="email")
    channels = {"slack": slack_channel(slack), "email": email}
    to_kwame, to_sam = queue(engine, [kwame, sam], 2)
    result = dispatcher(engine, clock, channels).run_once()
    assert (result.sent, result.rerouted) == (2, 1)  # Sam's went on to email in the same run
    with session_factory(engine)() as session:
        people = {p.email: p for p in session.scalars(select(Person))}
    assert (people["kwame@c.example"].slack_id, people["kwame@c.example"].slack_checked_at) == ("U0KWAME01", T0)
    assert (people["sam@c.example"].slack_id, people["sam@c.example"].slack_checked_at) == (None, T0)
    assert len(slack.dms("U0KWAME01")) == 1
    assert [e.outbox_id for e in email.sent] == [to_sam]
    row = outbox(engine)[to_sam]
    assert row.channel == "email" and "no Slack user has the email sam@c.example" in row.route[0]["error"]

    # The next day's nudges: Kwame by his remembered id, Sam straight to email, one look-up in all.
    clock.now = T0 + dt.timedelta(hours=2)
    fresh = {"slack": slack_channel(slack), "email": email}  # another process: nothing cached in memory
    queue(engine, [kwame, sam], 2, at=clock.now)
    result = dispatcher(engine, clock, fresh).run_once()
    assert (result.sent, result.rerouted) == (2, 0)
    assert len(slack.calls("users.lookupByEmail")) == 2 and len(slack.dms("U0KWAME01")) == 2
    assert len(email.sent) == 2 and to_kwame not in [e.outbox_id for e in email.sent]


def test_a_directory_import_keeps_a_looked_up_slack_id_unless_the_file_gives_one(engine: Engine, slack: SlackFake,
                                                                               clock: Clock, tmp_path: Path) -> None:
    slack.add_user("U0KWAME01", "kwame@c.example", "Kwame Mensah")
    header = ["name", "email", "roles", "manager", "slack_id"]
    directory = write_csv(tmp_path / "people.csv", [header, ["Kwame Mensah", "kwame@c.example", "", "", ""],
                                                    ["Sam Jones", "sam@c.example", "", "", ""]])
    with session_factory(engine)() as session, session.begin():
        import_directory(session, directory)
    with session_factory(engine)() as session:
        kwame = session.scalar(select(Person.id).where(Person.email == "kwame@c.example"))
    queue(engine, [kwame], 1)
    dispatcher(engine, clock, {"slack": slack_channel(slack), "email": Memory(kind="email", reaches="email")}).run_once()

    def slack_ids() -> dict[str, str | None]:
        with session_factory(engine)() as session:
            return {p.email: p.slack_id for p in session.scalars(select(Person))}

    assert slack_ids()["kwame@c.example"] == "U0KWAME01"
    with session_factory(engine)() as session, session.begin():
        import_directory(session, directory)  # the same file, still without his id
    assert slack_ids() == {"kwame@c.example": "U0KWAME01", "sam@c.example": None}
    write_csv(directory, [header, ["Kwame Mensah", "kwame@c.example", "", "", "U0KWAME99"]])
    with session_factory(engine)() as session, session.begin():
        import_directory(session, directory)
    assert slack_ids()["kwame@c.example"] == "U0KWAME99"  # the directory's own id wins


def test_nobody_reachable_but_on_slack_the_leads_list_names_them(engine: Engine, slack: SlackFake, clock: Clock) -> None:
    slack.add_user("U0LEAD001", "lead@c.example", "Esi Lead")
    sam, _ = add_people(engine, [{"name": "Sam Jones", "email": "sam@c.example"},
                                 {"name": "Esi Lead", "email": "lead@c.example", "slack_id": "U0LEAD001"}])
    [to_sam] = queue(engine, [sam], 1)
    channels = {"slack": slack_channel(slack)}
    run = dispatcher(engine, clock, channels, order=("slack",), edi_lead="lead@c.example")
    run.run_once()
    run.run_once()
    rows = outbox(engine)
    assert rows[to_sam].state == "parked"
    [lead_list] = [r for r in rows.values() if r.kind == "lead_list"]
    assert lead_list.state == "sent"
    [message] = slack.dms("U0LEAD001")
    shown = "\n".join(b["text"]["text"] for b in message["blocks"] if b["type"] == "section")
    assert "Sam Jones" in shown and "no Slack user has the email sam@c.example" in shown


def test_an_update_edits_the_message_in_place(engine: Engine, slack: SlackFake, clock: Clock) -> None:
    slack.add_user("U0PRIYA01", "priya@c.example", "Priya Shah")
    [priya] = add_people(engine, [{"name": "Priya Shah", "email": "priya@c.example", "slack_id": "U0PRIYA01"}])
    [sent] = queue(engine, [priya], 1)
    channels = {"slack": slack_channel(slack)}
    dispatcher(engine, clock, channels).run_once()
    with session_factory(engine)() as session, session.begin():
        session.add(Outbox(kind="update", target_id=sent, person_id=priya, recipient="U0PRIYA01", channel="slack",
                           payload={"items": []}, state="queued", attempts=0, created_at=T0, next_attempt_at=T0,
                           route=[]))
    assert dispatcher(engine, clock, channels).run_once().sent == 1
    [update_call] = slack.calls("chat.update")
    target = outbox(engine)[sent].receipt["ref"]
    assert (update_call.args["channel"], update_call.args["ts"]) == (target["channel"], target["ts"])
    [message] = slack.dms("U0PRIYA01")
    assert "edited" in message and len(slack.calls("chat.postMessage")) == 1
    [actions] = [b for b in message["blocks"] if b["type"] == "actions"]
    assert parse_button_value(actions["elements"][0]["value"])[0] == sent  # still names the message


def test_a_resend_after_a_lost_lease_finds_the_message_and_does_not_post_twice(engine: Engine, slack: SlackFake,
                                                                              clock: Clock) -> None:
    slack.add_user("U0PRIYA01", "priya@c.example", "Priya Shah")
    [priya] = add_people(engine, [{"name": "Priya Shah", "email": "priya@c.example", "slack_id": "U0PRIYA01"}])
    [lost, never] = queue(engine, [priya], 2)
    # A worker claimed both, posted the first, and died before recording anything.
    dead = slack_channel(slack)
    dead.send(Envelope(lost, "nudge", Recipient("Priya Shah", {"slack": "U0PRIYA01"}), (), T0, created_at=T0))
    with session_factory(engine)() as session, session.begin():
        session.execute(update(Outbox).values(state="sending", claimed_by="dead:1", attempts=1,
                                              lease_until=T0 + dt.timedelta(seconds=60)))
    clock.now = T0 + dt.timedelta(minutes=5)
    result = dispatcher(engine, clock, {"slack": slack_channel(slack)}).run_once()
    assert (result.sent, result.possible_duplicates) == (2, 0)
    posted = [m["metadata"]["event_payload"]["outbox_id"] for m in slack.dms("U0PRIYA01")]
    assert sorted(posted) == [lost, never]  # each once: the lost one was found, the other posted
    rows = outbox(engine)
    assert rows[lost].receipt["ref"]["ts"] == slack.dms("U0PRIYA01")[0]["ts"]
    assert not rows[lost].possible_duplicate and not rows[never].possible_duplicate
    assert len(slack.calls("conversations.history")) == 2


def test_a_429_storm_delivers_every_nudge_exactly_once_respecting_retry_after(engine: Engine, slack: SlackFake,
                                                                            clock: Clock) -> None:
    people = [{"name": f"Owner {n}", "email": f"owner{n}@c.example", "slack_id": f"U{n:08d}"} for n in range(200)]
    for person in people:
        slack.add_user(person["slack_id"], person["email"])
    ids = queue(engine, add_people(engine, people), 200)
    slack.ratelimit_every(3, "chat.postMessage", retry_after=2)
    # Slack's per-channel pacing as it is; the workspace tiers opened up so the storm is the 429s.
    roomy = [Rate(10_000, Duration.SECOND)]
    channel = slack_channel(slack, limits=SendLimits(clock, workspace=roomy, tier_3=roomy))
    rounds = drain(dispatcher(engine, clock, {"slack": channel}), clock, engine)
    assert rounds > 3  # it took several passes of 429s

    rows = outbox(engine)
    assert all(rows[i].state == "sent" and not rows[i].possible_duplicate for i in ids)
    delivered = collections.Counter(m["metadata"]["event_payload"]["outbox_id"] for m in slack.posted)
    assert delivered == collections.Counter(ids)  # every one, exactly once
    throttled = slack.calls("chat.postMessage", ok=False)
    assert len(throttled) >= 66 and all(r.status == 429 for r in throttled)
    assert all(rows[i].attempts == 1 for i in ids)  # a throttle is not an attempt
    posts = slack.calls("chat.postMessage")
    for n, refused in enumerate(posts):
        if refused.status != 429:
            continue
        later = next(p for p in posts[n + 1:] if p.args["channel"] == refused.args["channel"])
        assert later.at - refused.at >= 2, (refused.args["channel"], later.at - refused.at)


def test_the_per_channel_pace_holds_through_the_dispatcher(engine: Engine, slack: SlackFake, clock: Clock) -> None:
    slack.add_user("U0PRIYA01", "priya@c.example", "Priya Shah")
    [priya] = add_people(engine, [{"name": "Priya Shah", "email": "priya@c.example", "slack_id": "U0PRIYA01"}])
    ids = queue(engine, [priya], 9)
    channel = slack_channel(slack, limits=SendLimits(clock))  # Slack's tiers as they are
    drain(dispatcher(engine, clock, {"slack": channel}), clock, engine)
    times = [r.at for r in slack.calls("chat.postMessage")]
    assert len(times) == 9 and sorted(m["metadata"]["event_payload"]["outbox_id"] for m in slack.posted) == ids
    assert all(later - earlier >= 3 for earlier, later in zip(times, times[3:]))  # at most 3 in any 3 seconds
    assert times[2] == times[0]  # but a burst of three goes at once
