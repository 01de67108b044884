"""One person reachable on Slack, Teams and email: each sweep's message goes to the one channel
their settings prefer, and an answer on any channel updates the open messages on the others."""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
import pytest
import trustme
from sqlalchemy import select, update
from starlette.testclient import TestClient

from storage.db import session_factory
from storage.models import Action, Outbox, Person
from tests.bot.slack_server import BOT_TOKEN, SlackFake, slack_server
from tests.bot.teams_server import TeamsFake, teams_server
from tests.bot.cards import button, texts
from tests.cli.test_teams_loop import PRIYA_AAD, PRIYA_CHAT, execute, install, post, runtime
from tests.conftest import LAMBETH, Chaser
from tests.importers.makers import write_csv

PRIYA_SLACK = "U024BE7LH"
ANSWERED_LATER = dt.datetime(2023, 4, 24, 9, 2, tzinfo=dt.timezone.utc)  # 10:02 in London


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def fakes(ca: trustme.CA, chaser: Chaser, tmp_path: Path,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[TeamsFake, SlackFake]]:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))
    monkeypatch.setenv("CHASER_TEAMS_CLIENT_SECRET", "teams-secret")
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "e3b0c44298fc1c149afbf4c8996fb924")
    with teams_server(TeamsFake(), ca) as teams, slack_server() as slack:
        slack.add_user(PRIYA_SLACK, "priya@lambeth.example", "Priya Shah")
        Path("chaser.toml").write_text(
            'edi_lead = "lead@lambeth.example"\n[channels]\norder = ["slack", "teams", "outbox_folder"]\n'
            f'[channels.slack]\nenabled = true\nmode = "http"\napi_url = "{slack.url}"\n'
            f'[channels.teams]\nenabled = true\napp_id = "{teams.app_id}"\ntenant_id = "{teams.tenant}"\n'
            f'token_url = "{teams.token_url}"\nopenid_url = "{teams.openid_url}"\n'
            '[channels.outbox_folder]\nfolder = "out"\n')
        chaser("import", str(LAMBETH))
        people = write_csv(tmp_path / "people.csv", [
            ["name", "email", "roles", "manager", "slack_id", "teams_id", "channel"],
            ["Priya Shah", "priya@lambeth.example", "HR Business Partner", "", PRIYA_SLACK, PRIYA_AAD, "teams"],
            ["Lee Lead", "lead@lambeth.example", "", "", "", "", ""],
        ])
        chaser("people", "import", str(people))
        yield teams, slack


def priya_messages(db_url: str) -> list[Outbox]:
    run = runtime(db_url)
    with session_factory(run.engine)() as session:
        priya = session.scalars(select(Person).where(Person.email == "priya@lambeth.example")).one()
        rows = list(session.scalars(select(Outbox).where(Outbox.person_id == priya.id, Outbox.kind == "nudge")
                                    .order_by(Outbox.id)))
        session.expunge_all()
    run.close()
    return rows


def test_one_message_per_sweep_on_the_preferred_channel_and_an_answer_anywhere_updates_the_rest(
        fakes: tuple[TeamsFake, SlackFake], chaser: Chaser, db_url: str) -> None:
    teams, slack = fakes
    run = runtime(db_url)
    client = TestClient(run.web_app())
    install(client, teams)

    # Priya prefers Teams: this sweep's message is one card there, and nothing on Slack or by email.
    chaser("run", "--once", "--at", "2023-04-17T10:00")
    [card] = teams.cards(PRIYA_CHAT)
    assert slack.dms(PRIYA_SLACK) == [] and not list(Path("out").glob("*priya*"))
    [first] = priya_messages(db_url)
    assert first.channel == "teams"

    # She changes her mind to Slack; a later message about the same overdue action (a week on,
    # still without an answer) goes there alone. Her Teams card is still open.
    with session_factory(run.engine)() as session, session.begin():
        session.execute(update(Person).where(Person.email == "priya@lambeth.example").values(channel="slack"))
        # HW 10 is overdue: it is in both messages (CP1, due later, only in the first).
        hw10 = session.scalars(select(Action).where(Action.ref == "HW 10")).one()
        session.expunge(hw10)
    chaser("run", "--once", "--at", "2023-04-24T10:00")
    later = [m for m in priya_messages(db_url) if m.id != first.id]
    assert later and {m.channel for m in later} == {"slack"}
    assert len(teams.cards(PRIYA_CHAT)) == 1 and len(slack.dms(PRIYA_SLACK)) == len(later)
    [dm] = [m for m in slack.dms(PRIYA_SLACK)
            if any(b.get("block_id") == f"item-{hw10.id}" for b in m["blocks"])]

    # She answers on the Teams card: the card is replaced at once, and the Slack message about
    # the same action is updated by the dispatcher (chat.update), so neither asks again.
    answering = runtime(db_url, at=ANSWERED_LATER)
    answer = post(TestClient(answering.web_app()), teams, execute(teams, button(card, hw10.id, "Done")["data"]),
                  at=ANSWERED_LATER)
    assert "Answered" in texts(answer.json()["value"])
    chaser("run", "--once", "--at", "2023-04-24T10:05")
    [edit] = [c for c in slack.calls("chat.update") if c.args["ts"] == dm["ts"]]
    blocks = edit.args["blocks"] if isinstance(edit.args["blocks"], list) else json.loads(edit.args["blocks"])
    assert not [b for b in blocks if b.get("block_id") == f"item-{hw10.id}"]  # no buttons left for HW 10
    assert "Answered" in json.dumps(blocks)
    run.close()
    answering.close()

