"""The whole Teams loop as an EDI lead runs it: import the Lambeth plan and the directory, the
app is installed for the owner (a signed ``installationUpdate`` reaches ``/teams/messages``),
the engine sends an Adaptive Card to the loopback Bot Connector, a signed **At risk** invoke
comes back, and the tracker, the card and the next sweep all show the answer. Then the ways
an answer or a request is refused."""
from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from chaser.config import load_config
from chaser.runtime import Runtime, build_runtime
from storage.db import make_engine, session_factory
from storage.models import Action, Outbox, Person, StatusUpdate
from storage.updates import current_state
from tests.bot.cards import actions_of, button, inputs_of, texts
from tests.bot.teams_server import TeamsFake, activity, teams_server
from tests.conftest import LAMBETH, Chaser
from tests.importers.makers import write_csv

PRIYA_AAD = "7c1f0d6e-2b1a-4c3d-9e8f-0a1b2c3d4e5f"
DANA_AAD = "9d2e1f7a-3c2b-4d4e-8f9a-1b2c3d4e5f60"
PRIYA_CHAT = "a:1priya-chat"
SENT_AT = "2023-04-17T10:00"
ANSWERED = dt.datetime(2023, 4, 17, 9, 5, tzinfo=dt.timezone.utc)  # 10:05 in London


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def fake(ca: trustme.CA, chaser: Chaser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TeamsFake]:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_file))  # as a council behind its own CA would
    monkeypatch.setenv("CHASER_TEAMS_CLIENT_SECRET", "teams-secret")
    with teams_server(TeamsFake(), ca) as served:
        Path("chaser.toml").write_text(
            'edi_lead = "lead@lambeth.example"\n[channels]\norder = ["teams", "outbox_folder"]\n'
            f'[channels.teams]\nenabled = true\napp_id = "{served.app_id}"\ntenant_id = "{served.tenant}"\n'
            f'token_url = "{served.token_url}"\nopenid_url = "{served.openid_url}"\n'
            '[channels.outbox_folder]\nfolder = "out"\n')
        chaser("import", str(LAMBETH))
        people = write_csv(tmp_path / "people.csv", [
            ["name", "email", "roles", "manager", "teams_id"],
            ["Priya Shah", "priya@lambeth.example", "HR Business Partner", "dana@lambeth.example", PRIYA_AAD],
            ["Dana Cole", "dana@lambeth.example", "", "", DANA_AAD],
            ["Lee Lead", "lead@lambeth.example", "", "", ""],
        ])
        chaser("people", "import", str(people))
        yield served


def runtime(db_url: str, at: dt.datetime = ANSWERED) -> Runtime:
    env = {**{k: v for k, v in os.environ.items() if k.startswith("SLACK_")},  # when a test enables Slack too
           "CHASER_DATABASE_URL": db_url, "CHASER_SECRET_KEY": "k" * 32, "CHASER_TEAMS_CLIENT_SECRET": "teams-secret"}
    return build_runtime(load_config("chaser.toml", env), environ=env, engine=make_engine(db_url), clock=lambda: at)


def post(client: TestClient, fake: TeamsFake, body: dict[str, Any], token: str | None = None,
         at: dt.datetime = ANSWERED) -> Any:
    token = token if token is not None else fake.sign(service_url=body["serviceUrl"], now=at)
    return client.post("/teams/messages", json=body, headers={"Authorization": f"Bearer {token}"})


def install(client: TestClient, fake: TeamsFake, aad: str = PRIYA_AAD, chat: str = PRIYA_CHAT) -> None:
    event = activity(fake, type="installationUpdate", from_id=f"29:{aad[:8]}", aad_object_id=aad,
                     conversation=chat, action="add")
    assert post(client, fake, event).status_code == 200


def execute(fake: TeamsFake, data: dict[str, Any], *, aad: str = PRIYA_AAD, chat: str = PRIYA_CHAT) -> dict[str, Any]:
    """The invoke Teams sends when an Action.Execute of a card is pressed (inputs merged into data)."""
    return activity(fake, type="invoke", name="adaptiveCard/action", from_id=f"29:{aad[:8]}", aad_object_id=aad,
                    conversation=chat, value={"action": {"type": "Action.Execute", "verb": data["chaser"],
                                                         "data": data}, "trigger": "manual"})


def reach(chaser: Chaser) -> dict[str, bool]:
    return {row["email"]: row["reachable"] for row in json.loads(chaser("teams", "status", "--format", "json").stdout)}


def engine_of(db_url: str) -> Engine:
    return make_engine(db_url)


def cp1(db_url: str) -> Action:
    with session_factory(engine_of(db_url))() as session:
        return session.scalars(select(Action).where(Action.ref == "CP1")).one()


def test_installed_a_card_an_at_risk_invoke_the_card_replaced_and_no_second_nudge(
        fake: TeamsFake, chaser: Chaser, db_url: str) -> None:
    run = runtime(db_url)
    client = TestClient(run.web_app())
    # Before the app is installed, the bot cannot reach Priya: chaser teams status says so.
    assert "the app is not installed for them yet" in chaser("teams", "status").stdout
    assert reach(chaser)["priya@lambeth.example"] is False
    install(client, fake)
    with session_factory(run.engine)() as session:
        priya = session.scalars(select(Person).where(Person.email == "priya@lambeth.example")).one()
        assert priya.teams_conversation["conversation_id"] == PRIYA_CHAT
        assert priya.teams_conversation["service_url"] == fake.service_url
    assert reach(chaser)["priya@lambeth.example"] is True

    out = chaser("run", "--once", "--at", SENT_AT).stdout
    assert "failed 0" in out
    [card] = fake.cards(PRIYA_CHAT)
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.5"
    action = cp1(db_url)
    at_risk = button(card, action.id, "At risk")
    assert at_risk["type"] == "Action.Execute" and at_risk["fallback"]["type"] == "Action.Submit"
    assert action.title in texts(card)

    answer = post(client, fake, execute(fake, at_risk["data"]))
    assert answer.status_code == 200
    body = answer.json()
    assert body["statusCode"] == 200 and body["type"] == "application/vnd.microsoft.card.adaptive"
    replaced = body["value"]
    assert "Answered" in texts(replaced) and "Amber" in texts(replaced) and "(Teams)" in texts(replaced)
    assert not [a for a in actions_of(replaced) if a.get("data", {}).get("a") == action.id]  # nobody answers twice

    with session_factory(run.engine)() as session:
        assert current_state(session, session.get(Action, action.id)).status == "amber"
        [update] = session.scalars(select(StatusUpdate).where(StatusUpdate.action_id == action.id,
                                                              StatusUpdate.channel == "teams")).all()
        assert update.new_status == "amber"
        # The card was replaced by the invoke's answer: its queued in-place update is done, not sent again.
        updates = session.scalars(select(Outbox).where(Outbox.kind == "update")).all()
        assert updates and all(u.state == "sent" for u in updates)
    posted = len(fake.calls("POST", r"/activities$"))
    chaser("run", "--once", "--at", "2023-04-17T10:30")
    assert len(fake.calls("POST", r"/activities$")) == posted  # the next sweep does not nudge again
    assert not fake.calls("PUT", r"/activities/")
    run.close()


def test_the_update_form_records_a_note_and_a_date_and_an_unreadable_date_is_said_on_the_card(
        fake: TeamsFake, chaser: Chaser, db_url: str) -> None:
    run = runtime(db_url)
    client = TestClient(run.web_app())
    install(client, fake)
    chaser("run", "--once", "--at", SENT_AT)
    [card] = fake.cards(PRIYA_CHAT)
    action = cp1(db_url)
    record = button(card, action.id, "Record")
    a = action.id

    wrong = post(client, fake, execute(fake, {**record["data"], f"status-{a}": "none", f"note-{a}": "Panel booked",
                                              f"due-{a}": "the twelfth of never"})).json()
    assert wrong["statusCode"] == 200
    shown = texts(wrong["value"])
    assert "could not read this date" in shown
    form = {i["id"]: i.get("value") for i in inputs_of(wrong["value"])}
    assert form[f"note-{a}"] == "Panel booked" and form[f"due-{a}"] == "the twelfth of never"  # nothing typed is lost
    with session_factory(run.engine)() as session:
        assert not session.scalars(select(StatusUpdate).where(StatusUpdate.channel == "teams")).all()

    right = post(client, fake, execute(fake, {**record["data"], f"status-{a}": "green", f"note-{a}": "Panel booked",
                                              f"due-{a}": "September 2023"})).json()
    assert "Panel booked" in texts(right["value"])
    with session_factory(run.engine)() as session:
        state = current_state(session, session.get(Action, a))
        assert state.status == "green" and state.note == "Panel booked"
        assert state.due == dt.date(2023, 9, 30)
    run.close()


def test_tokens_that_do_not_verify_and_a_non_owner_change_nothing(
        fake: TeamsFake, chaser: Chaser, db_url: str) -> None:
    run = runtime(db_url)
    client = TestClient(run.web_app())
    install(client, fake)
    install(client, fake, DANA_AAD, "a:1dana-chat")
    chaser("run", "--once", "--at", SENT_AT)
    [card] = fake.cards(PRIYA_CHAT)
    action = cp1(db_url)
    press = execute(fake, button(card, action.id, "Done")["data"])
    url = press["serviceUrl"]
    refused = {
        "no token": "",
        "wrong audience": fake.sign(audience="22222222-2222-2222-2222-222222222222", service_url=url, now=ANSWERED),
        "wrong issuer": fake.sign(issuer="https://sts.windows.net/evil/", service_url=url, now=ANSWERED),
        "unknown key": fake.sign(key=fake.stranger_key(), kid="made-up-key", service_url=url, now=ANSWERED),
        "expired": fake.sign(service_url=url, now=ANSWERED - dt.timedelta(hours=2), expires_in=3600),
        "another serviceUrl": fake.sign(service_url="https://evil.example/teams/", now=ANSWERED),
    }
    for why, token in refused.items():
        answer = client.post("/teams/messages", json=press,
                             headers={"Authorization": f"Bearer {token}"} if token else {})
        assert answer.status_code in (401, 403), why
    # Dana (Priya's manager, not an owner) presses Priya's Done: refused on the card, nothing recorded.
    dana = execute(fake, button(card, action.id, "Done")["data"], aad=DANA_AAD, chat="a:1dana-chat")
    answer = post(client, fake, dana).json()
    assert "not an owner" in texts(answer["value"])
    with session_factory(run.engine)() as session:
        assert current_state(session, session.get(Action, action.id)).status != "complete"
        assert not session.scalars(select(StatusUpdate).where(StatusUpdate.channel == "teams")).all()
    run.close()
