"""The whole Slack loop as an EDI lead runs it: import the Lambeth plan and the directory, run
the engine at a chosen time, the owner's DM arrives at the loopback Slack fake with buttons, a
click signed as Slack signs it reaches ``/slack/events`` on the web app of ``chaser run``
(HTTP mode), and the tracker, the message and the next sweep all show the answer."""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.web import start_web
from chaser.config import load_config
from chaser.runtime import build_runtime
from storage.db import make_engine, session_factory
from storage.models import Action, Outbox, StatusUpdate
from storage.updates import current_state
from tests.bot.slack_server import (
    APP_TOKEN,
    BOT_TOKEN,
    TEAM,
    SlackFake,
    sign,
    slack_server,
)
from tests.conftest import LAMBETH, Chaser
from tests.importers.makers import write_csv

SIGNING_SECRET = "e3b0c44298fc1c149afbf4c8996fb924"
PRIYA = "U024BE7LH"


def write_config(fake: SlackFake, mode: str) -> None:
    Path("chaser.toml").write_text(
        'edi_lead = "lead@lambeth.example"\n[channels]\norder = ["slack", "outbox_folder"]\n'
        f'[channels.slack]\nenabled = true\nmode = "{mode}"\napi_url = "{fake.url}"\n'
        '[channels.outbox_folder]\nfolder = "out"\n')


@pytest.fixture
def fake(chaser: Chaser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SlackFake]:
    with slack_server() as fake:
        fake.add_user(PRIYA, "priya@lambeth.example", "Priya Shah")
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
        write_config(fake, "http")
        chaser("import", str(LAMBETH))
        people = write_csv(tmp_path / "people.csv", [
            ["name", "email", "roles", "manager", "slack_id"],
            ["Priya Shah", "priya@lambeth.example", "HR Business Partner", "dana@lambeth.example", PRIYA],
            ["Dana Cole", "dana@lambeth.example", "", "", ""],
            ["Lee Lead", "lead@lambeth.example", "", "", ""],
        ])
        chaser("people", "import", str(people))
        yield fake


def post_signed(url: str, payload: dict[str, Any]) -> tuple[int, str]:
    body = urllib.parse.urlencode({"payload": json.dumps(payload)})
    request = urllib.request.Request(f"{url}/slack/events", data=body.encode(), method="POST", headers={
        "Content-Type": "application/x-www-form-urlencoded", **sign(body, SIGNING_SECRET, time.time())})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def button(message: dict[str, Any], action_id: int, kind: str) -> dict[str, Any]:
    [block] = [b for b in message["blocks"] if b.get("block_id") == f"item-{action_id}"]
    return next(e for e in block["elements"] if e["action_id"] == kind)


def test_a_dm_an_at_risk_click_the_message_updated_and_no_second_nudge(
        fake: SlackFake, chaser: Chaser, db_url: str) -> None:
    out = chaser("run", "--once", "--at", "2023-04-17T10:00").stdout
    assert "failed 0" in out
    engine = make_engine(db_url)
    with session_factory(engine)() as session:
        cp1 = session.scalars(select(Action).where(Action.ref == "CP1")).one()
        before = current_state(session, cp1)
    # The right owner got a DM with the contract's buttons for CP1, and nobody else got one.
    [dm] = fake.dms(PRIYA)
    assert {c for c in fake.channels if fake.messages(c)} == {fake.dm_channel(PRIYA)}
    at_risk = button(dm, cp1.id, "chaser_status_amber")
    assert at_risk["text"]["text"] == "At risk"
    outbox_id = dm["metadata"]["event_payload"]["outbox_id"]
    assert json.loads(at_risk["value"]) == {"o": outbox_id, "a": cp1.id, "s": "amber"}

    # The web app of `chaser run` in HTTP mode, on the configuration the command used.
    env = {"CHASER_DATABASE_URL": db_url, "CHASER_SECRET_KEY": "k" * 32, "SLACK_BOT_TOKEN": BOT_TOKEN,
           "SLACK_SIGNING_SECRET": SIGNING_SECRET}
    clicked_at = dt.datetime(2023, 4, 17, 9, 1, tzinfo=dt.timezone.utc)  # 10:01 in London
    runtime = build_runtime(load_config("chaser.toml", env), environ=env, engine=engine, clock=lambda: clicked_at)
    web = start_web(runtime.web_app(), "127.0.0.1", 0)
    try:
        click = {
            "type": "block_actions", "api_app_id": "ACHASER", "user": {"id": PRIYA, "team_id": TEAM},
            "team": {"id": TEAM}, "trigger_id": "1.2.3",
            "container": {"type": "message", "channel_id": fake.dm_channel(PRIYA), "message_ts": dm["ts"]},
            "channel": {"id": fake.dm_channel(PRIYA)}, "message": dm,
            "actions": [{**at_risk, "block_id": f"item-{cp1.id}", "action_ts": "1681722000.123456"}],
        }
        assert post_signed(web.url, click)[0] == 200
        # The clicked message is updated right after the answer is acknowledged (on the
        # listener's thread pool): the fake is a real server, so wait for it with a deadline.
        deadline = time.monotonic() + 10
        while not fake.calls("chat.update") and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        web.stop()
        runtime.close()
    with session_factory(engine)() as session:
        now = current_state(session, cp1)
        [via] = session.scalars(select(StatusUpdate.channel).where(StatusUpdate.action_id == cp1.id,
                                                                   StatusUpdate.channel != "import")).all()
        updates = session.scalars(select(Outbox).where(Outbox.kind == "update")).all()
    assert before.status != "amber" and now.status == "amber" and via == "slack" and now.updated_by == "priya@lambeth.example"
    [updated] = fake.calls("chat.update", ok=True)
    assert (updated.args["channel"], updated.args["ts"]) == (fake.dm_channel(PRIYA), dm["ts"])
    shown = fake.dms(PRIYA)[0]
    assert not [b for b in shown["blocks"] if b.get("block_id") == f"item-{cp1.id}"]  # no buttons left for CP1
    assert "Priya Shah" in json.dumps(shown["blocks"]) and "Slack" in json.dumps(shown["blocks"])
    # The update queued for the dispatcher was the one just sent: it is not sent a second time.
    assert [u.state for u in updates] == ["sent"]
    chaser("run", "--once", "--at", "2023-04-17T10:05")
    assert len(fake.calls("chat.update")) == 1

    # The next sweeps do not chase CP1 again for the rule it was nudged for.
    chaser("run", "--once", "--at", "2023-04-18T10:00")
    sent = json.loads(chaser("outbox", "--format", "json").stdout)
    cp1_nudges = [m for m in sent if m["person"] == "priya@lambeth.example" and "CP1" in m["refs"]
                  and m.get("kind", "nudge") == "nudge"]
    assert len(cp1_nudges) == 1
    assert len(fake.dms(PRIYA)) == len({m["id"] for m in sent if m["channel"] == "slack" and m.get("kind") != "update"})
    engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_socket_mode_connects_with_the_app_token_at_the_api_url_and_keeps_trying(
        chaser: Chaser, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    # Slack failing apps.connections.open: the handler asked the configured api_url with the
    # app-level token, and a Slack it cannot connect to is logged and tried again rather than
    # stopping `chaser run`. (Connecting, clicks and acknowledgements: tests/bot/test_slack_socket.py.)
    with slack_server() as fake:
        fake.fail("apps.connections.open", "internal_error")
        write_config(fake, "socket")
        check_socket_mode(fake, db_url, caplog)


def check_socket_mode(fake: SlackFake, db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    env = {"CHASER_DATABASE_URL": db_url, "CHASER_SECRET_KEY": "k" * 32, "SLACK_BOT_TOKEN": BOT_TOKEN,
           "SLACK_APP_TOKEN": APP_TOKEN}
    engine = make_engine(db_url)
    runtime = build_runtime(load_config("chaser.toml", env), environ=env, engine=engine)
    assert runtime.slack_mode() == "socket"
    assert [r.path for r in runtime.web_app().routes if getattr(r, "path", "") == "/slack/events"] == []
    stop = threading.Event()
    handler = runtime.start_socket_mode(stop)
    try:
        deadline = time.monotonic() + 10
        while not any("could not connect" in r.getMessage() for r in caplog.records) and time.monotonic() < deadline:
            time.sleep(0.01)
        [opened] = fake.calls("apps.connections.open")
        assert opened.headers["authorization"] == f"Bearer {APP_TOKEN}" and opened.error == "internal_error"
    finally:
        stop.set()
        handler.close()
        runtime.close()
        engine.dispose()
