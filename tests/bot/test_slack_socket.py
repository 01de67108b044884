"""Slack answers in Socket Mode, the default: the runtime asks the loopback fake's
``apps.connections.open`` with the app-level token, connects to its real websocket endpoint,
and answers the envelopes pushed to it as Slack pushes clicks, acknowledging each by its
``envelope_id``; the tracker, the message and the acknowledgements are checked after each."""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from bot.slack_app import socket_mode
from chaser.config import load_config
from chaser.runtime import Runtime, build_runtime
from storage.db import make_engine, session_factory
from storage.models import Action, StatusUpdate
from storage.models import Reply as ReplyRow
from storage.updates import current_state
from tests.bot.slack_server import APP_TOKEN, BOT_TOKEN, TEAM, SlackFake, slack_server
from tests.conftest import LAMBETH, Chaser
from tests.importers.makers import write_csv

PRIYA, DANA = "U024BE7LH", "U0DANA"
CLICKED_AT = dt.datetime(2023, 4, 17, 9, 1, tzinfo=dt.timezone.utc)


@dataclass
class Socket:
    fake: SlackFake
    runtime: Runtime
    engine: Engine
    dm: dict[str, Any]  # Priya's nudge as Slack holds it

    def click(self, user: str, action_id: int, kind: str, action_ts: str) -> dict[str, Any]:
        """The block_actions payload Slack pushes when ``user`` presses ``kind`` on Priya's nudge."""
        [block] = [b for b in self.dm["blocks"] if b.get("block_id") == f"item-{action_id}"]
        button = next(e for e in block["elements"] if e["action_id"] == kind)
        channel = self.fake.dm_channel(PRIYA)
        return {"type": "block_actions", "api_app_id": "ACHASER", "user": {"id": user, "team_id": TEAM},
                "team": {"id": TEAM}, "trigger_id": f"{action_ts}.trigger",
                "container": {"type": "message", "channel_id": channel, "message_ts": self.dm["ts"]},
                "channel": {"id": channel}, "message": self.dm,
                "actions": [{**button, "block_id": block["block_id"], "action_ts": action_ts}]}

    def actions(self) -> list[int]:
        """The ids of the actions Priya's nudge has buttons for, in order."""
        return [int(b["block_id"].split("-")[1]) for b in self.dm["blocks"]
                if str(b.get("block_id", "")).startswith("item-")]

    def state(self, action_id: int) -> Any:
        with session_factory(self.engine)() as session:
            return current_state(session, session.get(Action, action_id))

    def via_slack(self, action_id: int) -> int:
        """How many status updates Slack brought for the action."""
        with session_factory(self.engine)() as session:
            return session.scalar(select(func.count()).select_from(StatusUpdate).where(
                StatusUpdate.action_id == action_id, StatusUpdate.channel == "slack")) or 0

    def outcomes(self) -> list[str]:
        with session_factory(self.engine)() as session:
            return sorted(session.scalars(select(ReplyRow.outcome)))


def wait_for(condition: Any, what: str, timeout: float = 5) -> None:
    """The message is updated on the listener's thread pool, after the acknowledgement: the fake
    is a real server, so wait for it with a deadline."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s")
        time.sleep(0.01)


@pytest.fixture
def socket(chaser: Chaser, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Socket]:
    with slack_server() as fake:
        fake.add_user(PRIYA, "priya@lambeth.example", "Priya Shah")
        fake.add_user(DANA, "dana@lambeth.example", "Dana Cole")
        monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
        monkeypatch.setenv("SLACK_APP_TOKEN", APP_TOKEN)
        Path("chaser.toml").write_text(
            'edi_lead = "lead@lambeth.example"\n[channels]\norder = ["slack", "outbox_folder"]\n'
            f'[channels.slack]\nenabled = true\napi_url = "{fake.url}"\n'  # mode: socket, the default
            '[channels.outbox_folder]\nfolder = "out"\n')
        chaser("import", str(LAMBETH))
        chaser("people", "import", str(write_csv(tmp_path / "people.csv", [
            ["name", "email", "roles", "manager", "slack_id"],
            ["Priya Shah", "priya@lambeth.example", "HR Business Partner", "dana@lambeth.example", PRIYA],
            ["Dana Cole", "dana@lambeth.example", "", "", DANA],
            ["Lee Lead", "lead@lambeth.example", "", "", ""]])))
        assert "failed 0" in chaser("run", "--once", "--at", "2023-04-17T10:00").stdout
        [dm] = json.loads(json.dumps(fake.dms(PRIYA)))  # as first posted: the fake updates its own in place
        env = {"CHASER_DATABASE_URL": db_url, "CHASER_SECRET_KEY": "k" * 32, "SLACK_BOT_TOKEN": BOT_TOKEN,
               "SLACK_APP_TOKEN": APP_TOKEN}
        engine = make_engine(db_url)
        runtime = build_runtime(load_config("chaser.toml", env), environ=env, engine=engine, clock=lambda: CLICKED_AT)
        try:
            yield Socket(fake, runtime, engine, dm)
        finally:
            runtime.close()
            engine.dispose()


def test_socket_mode_click_is_recorded_acknowledged_and_survives_slack_refreshing_the_connection(
        socket: Socket) -> None:
    fake, runtime = socket.fake, socket.runtime
    assert runtime.slack_mode() == "socket"
    stop = threading.Event()
    handler = runtime.start_socket_mode(stop)  # what Runtime.serve starts beside the web app
    try:
        fake.wait_connected(1)
        [opened] = fake.calls("apps.connections.open", ok=True)
        assert opened.headers["authorization"] == f"Bearer {APP_TOKEN}"
        first, second = socket.actions()[:2]
        before = socket.state(first)

        # Dana is Priya's manager, not an owner: the click is acknowledged, she is told alone,
        # and nothing changes.
        envelope = fake.push("interactive", socket.click(DANA, first, "chaser_status_complete", "1681722000.000100"))
        assert fake.wait_ack(envelope).payload is None
        wait_for(lambda: fake.calls("chat.postEphemeral"), "Dana told she is not an owner")
        [told] = fake.calls("chat.postEphemeral", ok=True)
        assert told.args["user"] == DANA and "You are not an owner of" in told.args["text"]
        assert socket.state(first) == before and socket.outcomes() == ["not_allowed"]

        # Priya's At risk: recorded via Slack before the acknowledgement, the message updated after.
        envelope = fake.push("interactive", socket.click(PRIYA, first, "chaser_status_amber", "1681722000.000200"))
        ack = fake.wait_ack(envelope)
        assert (ack.envelope_id, ack.payload, ack.connection) == (envelope, None, 1)
        now = socket.state(first)
        assert (now.status, now.updated_by) == ("amber", "priya@lambeth.example")
        assert before.status != "amber" and socket.via_slack(first) == 1
        wait_for(lambda: fake.calls("chat.update", ok=True), "the clicked message updated")
        [updated] = fake.calls("chat.update", ok=True)
        assert (updated.args["channel"], updated.args["ts"]) == (fake.dm_channel(PRIYA), socket.dm["ts"])
        shown = fake.dms(PRIYA)[0]
        assert not [b for b in shown["blocks"] if b.get("block_id") == f"item-{first}"]  # answered: no buttons
        assert "Priya Shah" in json.dumps(shown["blocks"])

        # Slack refreshes the connection (disconnect, refresh_requested): the app opens a new one
        # with a new URL, and Slack sends again the At risk it missed the acknowledgement of.
        fake.refresh()
        fake.wait_connected(2)
        assert len(fake.calls("apps.connections.open", ok=True)) == 2
        assert fake.push("interactive", {}, envelope_id=envelope) == envelope
        on_track = fake.push("interactive", socket.click(PRIYA, second, "chaser_status_green", "1681722000.000300"))
        assert fake.wait_ack(on_track).connection == 2
        wait_for(lambda: len([a for a in fake.acks if a.envelope_id == envelope]) == 2, "the retry acknowledged")
        assert socket.via_slack(first) == 1 and socket.state(first).status == "amber"  # not recorded twice
        assert socket.state(second).status == "green"
        assert socket.outcomes() == ["applied", "applied", "duplicate", "not_allowed"]
        assert not fake.unacked()
    finally:
        stop.set()
        fake.drop()  # else closing waits out slack_sdk's 3 s read of a connection still open
        handler.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_dropped_connection_loses_no_click_and_doubles_none_and_commands_and_events_come_too(
        socket: Socket) -> None:
    fake = socket.fake
    # The handler from bot.slack_app, checking its connection every 0.1 s instead of every 10.
    handler = socket_mode(socket.runtime.slack_app(), APP_TOKEN, ping_interval=0.1)
    handler.connect()
    try:
        fake.wait_connected(1)
        first = socket.actions()[0]
        # The click is answered, and its acknowledgement is lost as the connection drops without
        # a word from Slack; Slack sends the envelope again on the connection the app opens next.
        fake.lose_acks = 1
        envelope = fake.push("interactive", socket.click(PRIYA, first, "chaser_status_red", "1681722000.000400"))
        fake.wait_lost(envelope)
        assert socket.state(first).status == "red"
        fake.drop()
        fake.wait_connected(2)
        ack = fake.wait_ack(envelope)
        assert ack.connection == 2 and fake.envelopes[envelope].sent_on == [1, 2]
        assert socket.via_slack(first) == 1
        assert socket.outcomes() == ["applied", "duplicate"]
        # A click after the reconnection is answered as any other.
        done = fake.push("interactive", socket.click(PRIYA, first, "chaser_status_complete", "1681722000.000500"))
        assert fake.wait_ack(done).connection == 2
        assert socket.state(first).status == "complete" and socket.via_slack(first) == 2

        # /chaser comes as slash_commands and its list goes back in the acknowledgement's payload;
        # opening the Home tab comes as events_api and is acknowledged with nothing.
        command = fake.push("slash_commands", {
            "token": "x", "team_id": TEAM, "user_id": PRIYA, "command": "/chaser", "text": "",
            "trigger_id": "1.2.cmd", "channel_id": fake.dm_channel(PRIYA),
            "response_url": "https://hooks.slack.invalid/commands/1"})
        listed = fake.wait_ack(command).payload
        assert fake.envelopes[command].accepts_response_payload and listed is not None
        assert listed["response_type"] == "ephemeral"
        refs = [b["text"]["text"].split("*")[1] for b in listed["blocks"] if "accessory" in b]
        assert refs and all(json.loads(b["accessory"]["value"])["a"] != first
                            for b in listed["blocks"] if "accessory" in b)  # done: no longer listed
        home = fake.push("events_api", {
            "type": "event_callback", "team_id": TEAM, "api_app_id": "ACHASER", "event_id": "Ev0HOME1",
            "event_time": 1681722000, "event": {"type": "app_home_opened", "user": PRIYA, "tab": "home",
                                                "channel": fake.dm_channel(PRIYA), "event_ts": "1681722000.000600"}})
        assert fake.wait_ack(home).payload is None
        wait_for(lambda: fake.calls("views.publish", ok=True), "the Home tab published")
        assert fake.calls("views.publish", ok=True)[0].args["user_id"] == PRIYA
    finally:
        fake.drop()  # else closing waits out slack_sdk's 3 s read of a connection still open
        handler.close()
