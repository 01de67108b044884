"""``POST /teams/messages`` beyond the main loop (tests/cli/test_teams_loop.py): who an install
is matched to, removals, other tenants, Action.Submit from older clients, a chat message, a
repeated invoke, snoozing, the signing keys rotating, and cards that keep user text inert."""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from bot.channels.base import Envelope, Item, Recipient
from bot.channels.teams import Teams, teams_settings
from bot.teams_app import TeamsAnswers
from bot.teams_auth import TokenCheck
from bot.teams_cards import nudge_card, read_answer
from bot.web import create_app
from chaser.config import parse_config
from jobs.dispatch import Dispatcher, recorded_since
from jobs.sweep import run_sweep
from storage.db import session_factory
from storage.importers.load import import_plan_file
from storage.models import Action, Outbox, Person, Reply, StatusUpdate
from storage.people import import_directory
from storage.updates import current_state
from tests.bot.cards import button, datas_of, nodes
from tests.bot.teams_server import TeamsFake, activity, teams_server
from tests.importers.makers import write_csv

NOW = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.timezone.utc)  # a Monday morning
PRIYA_AAD = "7c1f0d6e-2b1a-4c3d-9e8f-0a1b2c3d4e5f"
KWAME_AAD = "0b5c2e4a-6d8f-4a1b-9c3d-5e7f9a1b3c5d"
HOSTILE = "**[Pay](https://evil.example)** <at>Everyone</at> <script>alert(1)</script> =HYPERLINK(\"x\")"


@dataclass
class Bot:
    fake: TeamsFake
    client: TestClient
    engine: Engine
    channel: Teams
    config: Any

    def post(self, body: dict[str, Any], token: str | None = None) -> Any:
        token = token if token is not None else self.fake.sign(service_url=body["serviceUrl"], now=NOW)
        return self.client.post("/teams/messages", json=body, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def bot(engine: Engine, ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bot]:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(path))
    write_csv(tmp_path / "plan.csv", [["Ref", "Action", "Owner", "Deadline"],
                                      ["P1", HOSTILE, "HR Business Partner", "06/03/2026"],
                                      ["P2", "Audit interview panels", "HR Business Partner", "March 2028"]])
    import_plan_file(engine, tmp_path / "plan.csv", plan_name="Workforce plan")
    write_csv(tmp_path / "people.csv", [["name", "email", "roles", "teams_id"],
                                        ["Priya Shah", "priya@c.example", "HR Business Partner", PRIYA_AAD],
                                        ["Kwame Mensah", "kwame@c.example", "Policy Lead", ""],
                                        ["Lee Lead", "lead@c.example", "", ""]])
    with session_factory(engine)() as session, session.begin():
        import_directory(session, tmp_path / "people.csv")
    with teams_server(TeamsFake(), ca) as fake:
        table = {"enabled": True, "app_id": fake.app_id, "tenant_id": fake.tenant, "token_url": fake.token_url,
                 "openid_url": fake.openid_url}
        config = parse_config({"edi_lead": "lead@c.example", "channels": {"order": ["teams"], "teams": table},
                               "web": {"base_url": "http://testserver"}}, "test")
        channel = Teams(teams_settings(table), credential=fake.client_secret, limits=None, clock=lambda: NOW)
        dispatcher = Dispatcher(engine, config, clock=lambda: NOW, secret="s" * 32, channels={"teams": channel})

        def refresh(session: Any, message: Outbox) -> Envelope:
            return dispatcher.envelope(session, message, NOW, None, recorded_since(session, message))

        answers = TeamsAnswers(engine, config, clock=lambda: NOW, channel=channel, tenant_id=fake.tenant,
                               check=TokenCheck(fake.app_id, fake.openid_url, clock=lambda: NOW), refresh=refresh)
        app = create_app(engine, secret="s" * 32, clock=lambda: NOW, routes=[answers.route()],
                         updatable=("teams",), channels=("teams",))
        yield Bot(fake, TestClient(app), engine, channel, config)


def person(bot: Bot, email: str) -> Person:
    with session_factory(bot.engine)() as session:
        found = session.scalars(select(Person).where(Person.email == email)).one()
        session.expunge(found)
        return found


def install(bot: Bot, aad: str, chat: str, **sender: Any) -> Any:
    return bot.post(activity(bot.fake, type="installationUpdate", action="add", conversation=chat,
                             **{"from": {"id": f"29:{aad[:6]}", "aadObjectId": aad, "name": "Someone", **sender}}))


def send_card(bot: Bot) -> tuple[dict[str, Any], int]:
    """Priya installs the app, the sweep and dispatcher send her card; (the card, P1's id)."""
    install(bot, PRIYA_AAD, "a:priya")
    run_sweep(bot.engine, bot.config, NOW)
    Dispatcher(bot.engine, bot.config, clock=lambda: NOW, secret="s" * 32, channels={"teams": bot.channel}).run_once()
    [card] = bot.fake.cards("a:priya")
    with session_factory(bot.engine)() as session:
        p1 = session.scalars(select(Action).where(Action.ref == "P1")).one().id
    return card, p1


def data_of(card: dict[str, Any], action_id: int, title: str) -> dict[str, Any]:
    return button(card, action_id, title)["data"]


def invoke(bot: Bot, data: dict[str, Any], *, aad: str = PRIYA_AAD, **extra: Any) -> dict[str, Any]:
    return activity(bot.fake, type="invoke", name="adaptiveCard/action", conversation="a:priya",
                    value={"action": {"type": "Action.Execute", "verb": data["chaser"], "data": data}},
                    **{"from": {"id": "29:priya", "aadObjectId": aad}}, **extra)


def test_an_install_by_someone_without_a_teams_id_is_matched_by_their_user_principal_name(bot: Bot) -> None:
    bot.fake.members["29:0b5c2e"] = {"id": "29:0b5c2e", "aadObjectId": KWAME_AAD, "name": "Kwame Mensah",
                                     "userPrincipalName": "Kwame@C.example", "email": "kwame@c.example"}
    assert install(bot, KWAME_AAD, "a:kwame").status_code == 200
    kwame = person(bot, "kwame@c.example")
    assert kwame.teams_id == KWAME_AAD  # found by UPN, and known by the object id from now on
    assert kwame.teams_conversation["conversation_id"] == "a:kwame"
    # Someone the directory does not know: 200 (Teams retries otherwise), nothing stored.
    assert install(bot, "ffffffff-0000-0000-0000-000000000000", "a:stranger").status_code == 200
    with session_factory(bot.engine)() as session:
        stored = [p.teams_conversation["conversation_id"] for p in session.scalars(select(Person))
                  if p.teams_conversation]
    assert sorted(stored) == ["a:kwame"]


def test_removing_the_app_marks_them_unreachable_until_it_is_installed_again(bot: Bot) -> None:
    install(bot, PRIYA_AAD, "a:priya")
    removed = activity(bot.fake, type="installationUpdate", action="remove", conversation="a:priya",
                       **{"from": {"id": "29:priya", "aadObjectId": PRIYA_AAD}})
    assert bot.post(removed).status_code == 200
    assert person(bot, "priya@c.example").teams_blocked_at == NOW
    install(bot, PRIYA_AAD, "a:priya")
    assert person(bot, "priya@c.example").teams_blocked_at is None


def test_an_activity_from_another_tenant_is_refused(bot: Bot) -> None:
    other = activity(bot.fake, type="installationUpdate", action="add", conversation="a:priya",
                     tenant="99999999-9999-9999-9999-999999999999",
                     **{"from": {"id": "29:priya", "aadObjectId": PRIYA_AAD}})
    assert bot.post(other).status_code == 403
    assert person(bot, "priya@c.example").teams_conversation is None


def test_an_action_submit_from_an_older_client_is_recorded_and_the_card_updated(bot: Bot) -> None:
    card, p1 = send_card(bot)
    data = data_of(card, p1, "At risk")
    submitted = activity(bot.fake, type="message", value=data, conversation="a:priya",
                         reply_to=bot.fake.activities("a:priya")[0]["id"],
                         **{"from": {"id": "29:priya", "aadObjectId": PRIYA_AAD}})
    assert bot.post(submitted).status_code == 200
    with session_factory(bot.engine)() as session:
        assert current_state(session, session.get(Action, p1)).status == "amber"
    [put] = bot.fake.calls("PUT", r"/activities/")
    [shown] = bot.fake.cards("a:priya")
    assert "Answered" in json.dumps(shown) and not [d for d in datas_of(shown) if d.get("a") == p1]
    assert put.path.endswith(bot.fake.activities("a:priya")[0]["id"])


def test_a_chat_message_stores_the_chat_and_is_answered(bot: Bot) -> None:
    hello = activity(bot.fake, type="message", text="hello", conversation="a:priya",
                     **{"from": {"id": "29:priya", "aadObjectId": PRIYA_AAD}})
    assert bot.post(hello).status_code == 200
    assert person(bot, "priya@c.example").teams_conversation["conversation_id"] == "a:priya"
    [answer] = bot.fake.activities("a:priya")
    assert answer["text"].startswith("Hello Priya Shah: Chaser will send your reminders here. You have 2 open")
    assert answer["textFormat"] == "plain" and answer["replyToId"] == hello["id"]


def test_the_same_invoke_twice_is_recorded_once(bot: Bot) -> None:
    card, p1 = send_card(bot)
    press = invoke(bot, data_of(card, p1, "Off track"))
    first, second = bot.post(press).json(), bot.post(press).json()
    assert first["statusCode"] == second["statusCode"] == 200
    with session_factory(bot.engine)() as session:
        assert len(session.scalars(select(StatusUpdate).where(StatusUpdate.channel == "teams")).all()) == 1
        assert [r.outcome for r in session.scalars(select(Reply).order_by(Reply.id))] == ["applied", "duplicate"]


def test_snooze_says_until_when_on_the_card(bot: Bot) -> None:
    card, p1 = send_card(bot)
    answer = bot.post(invoke(bot, data_of(card, p1, "Snooze a week"))).json()
    assert "No reminders about P1 until after Mon 9 March 2026" in json.dumps(answer["value"])
    with session_factory(bot.engine)() as session:
        assert session.get(Action, p1).snoozed_until == dt.date(2026, 3, 9)


def test_a_token_signed_with_a_rotated_key_verifies_after_the_keys_are_fetched_again(bot: Bot) -> None:
    hello = activity(bot.fake, type="conversationUpdate", conversation="a:priya",
                     membersAdded=[{"id": f"28:{bot.fake.app_id}"}],
                     **{"from": {"id": "29:priya", "aadObjectId": PRIYA_AAD}})
    old = bot.fake.sign(service_url=hello["serviceUrl"], now=NOW)
    assert bot.post(hello, old).status_code == 200
    fetched = bot.fake.keys_fetches
    bot.fake.rotate()
    assert bot.post(hello).status_code == 200  # a new key id: Chaser fetches the keys again
    assert bot.fake.keys_fetches == fetched + 1
    assert bot.post(hello, old).status_code == 401  # the retired key no longer verifies


def test_every_user_string_in_a_card_is_a_text_run() -> None:
    item = Item(ref="P1", title=HOSTILE, plan=HOSTILE, rule="due", why="It is due today.", due=dt.date(2026, 3, 6),
                due_text=HOSTILE, status="amber", owner=HOSTILE, action_id=1)
    card = nudge_card(Envelope(7, "nudge", Recipient(HOSTILE, {}), (item,), NOW))
    blocks = nodes(card, lambda n: n.get("type") in ("TextBlock", "TextRun"))
    assert any(HOSTILE in b["text"] for b in blocks)
    assert all(b["type"] == "TextRun" for b in blocks if "evil.example" in b["text"] or "<at>" in b["text"])
    assert "msteams" not in json.dumps(card).replace('"msteams": {"width": "Full"}', "")  # no mention entities
    assert read_answer({"chaser": "chaser_status", "o": 7, "a": True}) is None  # a bool is not an id


def test_every_button_of_every_item_names_its_own_message_and_action() -> None:
    """The buttons are copied from one built with marks for the ids (bot.teams_cards): each
    item's must carry its own action id, and the form its own input ids, as if built afresh."""
    items = tuple(Item(ref=f"P{a}", title=f"Action {a}", plan="Plan", rule="due", why="It is due today.",
                       due=dt.date(2026, 3, 6), due_text="March 2026", status=None, action_id=a)
                  for a in (3, 918273645, 12))
    card = nudge_card(Envelope(546372819, "nudge", Recipient("Priya", {}), items, NOW))
    for a in (3, 918273645, 12):
        datas = [d for d in datas_of(card) if d.get("a") == a]
        assert {d["chaser"] for d in datas} == {"chaser_status", "chaser_update", "chaser_snooze"}
        assert {d["o"] for d in datas} == {546372819}
        assert {d.get("s") for d in datas if d["chaser"] == "chaser_status"} == {"green", "amber", "red", "complete"}
        assert {n["id"] for n in nodes(card, lambda n: str(n.get("id", "")).endswith(f"-{a}"))} == {
            f"status-{a}", f"note-{a}", f"due-{a}"}
    assert len(datas_of(card)) == 3 * 2 * 6  # six actions an item, each an Execute with a Submit fallback
