"""Slack answers over HTTP: requests signed exactly as Slack signs them, posted to
``/slack/events`` on the real web app (uvicorn on loopback), answered by the bolt app whose
calls back to Slack go to the loopback fake (tests/bot/slack_server.py)."""
from __future__ import annotations

import datetime as dt
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from bot.inbound import Policy
from bot.slack_app import build_app, events_route
from bot.slack_listeners import form_errors
from bot.web import create_app, start_web
from storage.db import session_factory
from storage.importers.load import import_plan_file
from storage.models import Action, StatusUpdate
from storage.models import Reply as ReplyRow
from storage.people import import_directory
from storage.updates import current_state
from tests.bot.slack_server import BOT_TOKEN, TEAM, SlackFake, sign, slack_server
from tests.importers.makers import write_csv

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = dt.datetime(2027, 3, 1, 10, 0, tzinfo=dt.timezone.utc)
PRIYA, OTHER, STRANGER = "U0PRIYA", "U0OTHER", "U0STRANGER"
# Tests that only read the tracker, or whose writes the PostgreSQL half of another test covers,
# run on SQLite alone: every test here starts a web server and a Slack fake.
sqlite_only = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def run_now(work: Callable[[], None]) -> None:
    """``after`` for tests: the calls back to Slack happen before the request is answered."""
    work()


@dataclass
class Slack:
    fake: SlackFake
    url: str  # the web app
    engine: Engine

    def post(self, body: str, content_type: str, *, secret: str | None = SIGNING_SECRET,
             timestamp: float | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
        signed = sign(body, secret, time.time() if timestamp is None else timestamp) if secret else {}
        request = urllib.request.Request(f"{self.url}/slack/events", data=body.encode(), method="POST",
                                         headers={"Content-Type": content_type, **signed, **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def interact(self, payload: dict[str, Any], **kwargs: Any) -> tuple[int, str]:
        body = urllib.parse.urlencode({"payload": json.dumps(payload)})
        return self.post(body, "application/x-www-form-urlencoded", **kwargs)

    def command(self, user: str, **kwargs: Any) -> tuple[int, str]:
        body = urllib.parse.urlencode({"token": "x", "team_id": TEAM, "user_id": user, "command": "/chaser",
                                       "text": "", "trigger_id": "1.2.cmd", "channel_id": f"D{user[1:]}",
                                       "response_url": "https://hooks.slack.invalid/commands/1"})
        return self.post(body, "application/x-www-form-urlencoded", **kwargs)

    def event(self, event: dict[str, Any], **kwargs: Any) -> tuple[int, str]:
        body = json.dumps({"type": "event_callback", "team_id": TEAM, "api_app_id": "ACHASER", "event": event,
                           "event_id": f"Ev{time.monotonic_ns()}", "event_time": int(time.time())})
        return self.post(body, "application/json", **kwargs)


@pytest.fixture
def slack(engine: Engine, session: Session, tmp_path: Path) -> Iterator[Slack]:
    write_csv(tmp_path / "plan.csv", [["Ref", "Action", "Owner", "Deadline"],
                                      ["HW 3", "Publish the <b>pay</b> gap report", "HR Business Partner", "March 2027"],
                                      ["HW 4", "Review recruitment panels", "HR Business Partner", "May 2027"]])
    import_plan_file(engine, tmp_path / "plan.csv", plan_name="Plan")
    write_csv(tmp_path / "people.csv", [["name", "email", "roles", "manager", "slack_id"],
                                        ["Priya Shah", "priya@c.example", "HR Business Partner", "", PRIYA],
                                        ["Other Person", "other@c.example", "", "", OTHER]])
    with session.begin():
        import_directory(session, tmp_path / "people.csv")
    with slack_server() as fake:
        for user, email in ((PRIYA, "priya@c.example"), (OTHER, "other@c.example"), (STRANGER, "x@c.example")):
            fake.add_user(user, email)
            fake.add_channel(fake.dm_channel(user))
        app = build_app(engine, Policy(updatable=("slack",)), token=BOT_TOKEN, signing_secret=SIGNING_SECRET,
                        clock=lambda: NOW, base_url=fake.url, after=run_now)
        web = start_web(create_app(engine, secret="s" * 32, routes=[events_route(app)]), "127.0.0.1", 0)
        try:
            yield Slack(fake, web.url, engine)
        finally:
            web.stop()


def action(engine: Engine, ref: str = "HW 3") -> Action:
    with session_factory(engine)() as session:
        return session.scalars(select(Action).where(Action.ref == ref)).one()


def state(engine: Engine, ref: str = "HW 3") -> Any:
    with session_factory(engine)() as session:
        return current_state(session, session.scalars(select(Action).where(Action.ref == ref)).one())


def counts(engine: Engine) -> tuple[int, int]:
    """(status updates, replies): what any answer adds to."""
    with session_factory(engine)() as session:
        return (session.scalar(select(func.count()).select_from(StatusUpdate)) or 0,
                session.scalar(select(func.count()).select_from(ReplyRow)) or 0)


def click(user: str, action_id: int, status: str = "amber", *, outbox_id: int | None = None,
          action_ts: str = "1772359200.000100", channel: str | None = None) -> dict[str, Any]:
    """A block_actions payload as Slack sends it for one button of a nudge."""
    channel = channel or f"D{user[1:]}"
    kind = f"chaser_status_{status}" if status in ("green", "amber", "red", "complete") else status
    return {
        "type": "block_actions", "api_app_id": "ACHASER", "token": "legacy-ignored",
        "user": {"id": user, "username": user.lower(), "team_id": TEAM}, "team": {"id": TEAM, "domain": "lambeth"},
        "container": {"type": "message", "message_ts": "1772359100.000200", "channel_id": channel,
                      "is_ephemeral": False},
        "channel": {"id": channel, "name": "directmessage"}, "trigger_id": f"{action_ts}.trigger",
        "response_url": "https://hooks.slack.invalid/actions/1",
        "actions": [{"type": "button", "action_id": kind, "block_id": f"item-{action_id}",
                     "text": {"type": "plain_text", "text": "At risk"}, "action_ts": action_ts,
                     "value": json.dumps({"o": outbox_id, "a": action_id, "s": status if kind != status else None})}],
    }


def submission(user: str, action_id: int, *, status: str = "none", note: str | None = None,
               due: str | None = None, view_id: str = "V0MODAL1", outbox_id: int | None = None) -> dict[str, Any]:
    """A view_submission payload as Slack sends it for the Update… modal."""
    return {
        "type": "view_submission", "api_app_id": "ACHASER", "team": {"id": TEAM, "domain": "lambeth"},
        "user": {"id": user, "username": user.lower(), "team_id": TEAM}, "trigger_id": "5.6.submit",
        "view": {"id": view_id, "type": "modal", "callback_id": "chaser_update", "team_id": TEAM, "hash": "1.a",
                 "private_metadata": json.dumps({"o": outbox_id, "a": action_id}),
                 "state": {"values": {
                     "status": {"value": {"type": "radio_buttons", "selected_option": {"value": status}}},
                     "note": {"value": {"type": "plain_text_input", "value": note}},
                     "due": {"value": {"type": "plain_text_input", "value": due}}}}},
    }


# -- signatures --------------------------------------------------------------------------

def test_only_requests_signed_by_slack_within_5_minutes_change_anything(slack: Slack) -> None:
    hw3 = action(slack.engine)
    before = counts(slack.engine)
    forged: list[dict[str, Any]] = [
        {"secret": "not-the-signing-secret"},  # signed with another secret
        {"secret": None},  # not signed at all
        {"timestamp": time.time() - 5 * 60 - 30},  # stale: a replay from over 5 minutes ago
        {"timestamp": time.time() + 5 * 60 + 30},  # from the future
    ]
    for kwargs in forged:
        status, body = slack.interact(click(PRIYA, hw3.id, "red"), **kwargs)
        assert status == 401, kwargs
        assert "Traceback" not in body
    # Signed, and then changed on the way (someone else's click passed off as Priya's).
    body = urllib.parse.urlencode({"payload": json.dumps(click(OTHER, hw3.id, "red"))})
    signed = sign(body, SIGNING_SECRET, time.time())
    assert slack.post(body.replace(OTHER, PRIYA), "application/x-www-form-urlencoded", secret=None,
                      headers=signed)[0] == 401
    assert counts(slack.engine) == before
    assert state(slack.engine).status is None
    # The same click signed as Slack signs it is recorded, via Slack, as Priya's.
    status, body = slack.interact(click(PRIYA, hw3.id, "amber"))
    assert (status, body) == (200, "")
    now = state(slack.engine)
    assert (now.status, now.updated_by) == ("amber", "priya@c.example")
    with session_factory(slack.engine)() as session:
        assert session.scalars(select(StatusUpdate.channel).where(StatusUpdate.action_id == hw3.id)
                               .order_by(StatusUpdate.id.desc())).first() == "slack"
    assert not slack.fake.calls("chat.postEphemeral")  # an owner's click needs no word


@sqlite_only
def test_slacks_url_check_is_answered_and_a_failing_listener_shows_slack_no_trace(
        slack: Slack, caplog: pytest.LogCaptureFixture) -> None:
    status, body = slack.post(json.dumps({"type": "url_verification", "token": "x", "challenge": "c4ll3ng3"}),
                              "application/json")
    assert (status, json.loads(body)) == (200, {"challenge": "c4ll3ng3"})
    hw3 = action(slack.engine)
    with slack.engine.connect() as conn:  # the tracker has lost a table under the listener
        conn.exec_driver_sql("DROP TABLE replies")
        conn.commit()
    status, body = slack.interact(click(PRIYA, hw3.id, "green", action_ts="1772359200.000700"))
    assert status == 500
    assert "Traceback" not in body and "replies" not in body
    assert any("slack: block_actions failed" in r.getMessage() for r in caplog.records)


# -- who may answer, and answering twice --------------------------------------------------

def test_someone_else_changes_nothing_and_is_told_alone_and_a_replay_is_recorded_once(slack: Slack) -> None:
    hw3 = action(slack.engine)
    before = state(slack.engine)
    assert slack.interact(click(OTHER, hw3.id, "complete", action_ts="1772359200.000300"))[0] == 200
    assert state(slack.engine) == before
    [told] = slack.fake.calls("chat.postEphemeral", ok=True)
    assert told.args["user"] == OTHER and told.args["channel"] == slack.fake.dm_channel(OTHER)
    assert "You are not an owner of HW 3" in told.args["text"]
    # Someone Slack knows and the directory does not: told why, nothing changes.
    slack.interact(click(STRANGER, hw3.id, "green", action_ts="1772359200.000350"))
    assert state(slack.engine) == before
    assert "not in Chaser's people directory" in slack.fake.calls("chat.postEphemeral")[-1].args["text"]
    with session_factory(slack.engine)() as session:
        assert session.scalars(select(ReplyRow.outcome)).all() == ["not_allowed", "not_allowed"]

    payload = click(PRIYA, hw3.id, "amber", action_ts="1772359200.000400")
    assert slack.interact(payload)[0] == 200
    after_first = counts(slack.engine)
    # Slack's own retry (the same body, X-Slack-Retry-Num) and a replay of the same signed click.
    assert slack.interact(payload, headers={"X-Slack-Retry-Num": "1", "X-Slack-Retry-Reason": "http_timeout"})[0] == 200
    assert slack.interact(payload)[0] == 200
    assert counts(slack.engine)[0] == after_first[0]
    with session_factory(slack.engine)() as session:
        assert sorted(session.scalars(select(ReplyRow.outcome))) == [
            "applied", "duplicate", "duplicate", "not_allowed", "not_allowed"]
    assert len(slack.fake.calls("chat.postEphemeral")) == 2  # nothing said to Priya


# -- the Update… modal --------------------------------------------------------------------

def test_the_modal_opens_records_a_note_and_a_revised_date_and_refuses_what_it_cannot_use(slack: Slack) -> None:
    hw3 = action(slack.engine)
    assert slack.interact(click(PRIYA, hw3.id, "chaser_update"))[0] == 200
    [opened] = slack.fake.calls("views.open", ok=True)
    view = slack.fake.views[-1]
    assert opened.args["trigger_id"].endswith(".trigger")
    assert view["callback_id"] == "chaser_update"
    assert json.loads(view["private_metadata"]) == {"o": None, "a": hw3.id}
    assert [b.get("block_id") for b in view["blocks"] if b["type"] == "input"] == ["status", "note", "due"]
    assert "&lt;b&gt;pay&lt;/b&gt;" in view["blocks"][0]["text"]["text"]  # the title is escaped
    choices = [o["text"]["text"] for o in view["blocks"][1]["element"]["options"]]
    assert choices == ["On track", "At risk", "Off track", "Done", "No change"]

    # An unreadable date: an error beside the field, the modal stays open, nothing recorded.
    before = counts(slack.engine)
    status, body = slack.interact(submission(PRIYA, hw3.id, status="amber", note="Slipping", due="when pigs fly"))
    answer = json.loads(body)
    assert status == 200 and answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"due"} and "June 2027" in answer["errors"]["due"]
    # Someone who is not an owner: an error on the form, not a change.
    answer = json.loads(slack.interact(submission(OTHER, hw3.id, status="complete", view_id="V0OTHER"))[1])
    assert answer["response_action"] == "errors" and "You are not an owner of HW 3" in answer["errors"]["status"]
    assert counts(slack.engine)[0] == before[0]

    # A note and a revised date ("No change" to the status): both recorded; the modal closes.
    status, body = slack.interact(submission(PRIYA, hw3.id, note="Draft with the board", due="June 2027"))
    assert (status, body) == (200, "")
    now = state(slack.engine)
    assert (now.status, now.note, now.due) == (None, "Draft with the board", dt.date(2027, 6, 30))
    assert slack.interact(submission(PRIYA, hw3.id, status="red", due="30/06/2027", view_id="V0MODAL2"))[0] == 200
    assert (state(slack.engine).status, state(slack.engine).due) == ("red", dt.date(2027, 6, 30))


def test_form_errors_ask_for_something_to_record() -> None:
    assert "status" in form_errors(None, None, None)
    assert form_errors("green", None, None) == {}
    assert "due" in form_errors(None, "note", "x" * 200)
    assert "note" in form_errors(None, "x" * 6000, None)


# -- snooze, /chaser, the Home tab --------------------------------------------------------

def test_snooze_a_week_for_an_owner_only(slack: Slack) -> None:
    hw3 = action(slack.engine)
    slack.interact(click(OTHER, hw3.id, "chaser_snooze"))
    assert action(slack.engine).snoozed_until is None
    assert "not an owner of HW 3" in slack.fake.calls("chat.postEphemeral")[-1].args["text"]
    slack.interact(click(PRIYA, hw3.id, "chaser_snooze"))
    assert action(slack.engine).snoozed_until == NOW.date() + dt.timedelta(days=7)
    assert "Mon 8 March 2027" in slack.fake.calls("chat.postEphemeral")[-1].args["text"]


@sqlite_only
def test_slash_chaser_and_the_home_tab_list_my_open_actions_with_update_buttons(slack: Slack) -> None:
    status, body = slack.command(PRIYA)
    assert status == 200
    answer = json.loads(body)
    assert answer["response_type"] == "ephemeral"
    listed = [b for b in answer["blocks"] if "accessory" in b]
    assert [b["text"]["text"].split("*")[1] for b in listed] == ["HW 3", "HW 4"]
    assert {b["accessory"]["action_id"] for b in listed} == {"chaser_update"}
    assert json.loads(listed[0]["accessory"]["value"])["a"] == action(slack.engine).id
    # Someone with no actions is told so; someone unknown is told why nothing is listed.
    assert "no open actions" in json.loads(slack.command(OTHER)[1])["text"]
    assert "people directory" in json.loads(slack.command(STRANGER)[1])["text"]

    # Done, HW 3 leaves the list; the Home tab shows the same list.
    slack.interact(click(PRIYA, action(slack.engine).id, "complete"))
    listed = [b for b in json.loads(slack.command(PRIYA)[1])["blocks"] if "accessory" in b]
    assert [b["text"]["text"].split("*")[1] for b in listed] == ["HW 4"]
    status, _ = slack.event({"type": "app_home_opened", "user": PRIYA, "channel": "D0PRIYA", "tab": "home",
                             "event_ts": "1772359200.000500"})
    assert status == 200
    [published] = slack.fake.calls("views.publish", ok=True)
    view = slack.fake.views[-1]
    assert published.args["user_id"] == PRIYA and view["type"] == "home"
    assert [b["text"]["text"].split("*")[1] for b in view["blocks"] if "accessory" in b] == ["HW 4"]
    slack.event({"type": "app_home_opened", "user": PRIYA, "channel": "D0PRIYA", "tab": "messages",
                 "event_ts": "1772359200.000600"})
    assert len(slack.fake.calls("views.publish")) == 1  # the Messages tab needs no view
