"""The preferences page behind List-Unsubscribe: quieter, never silent, and the EDI lead is told."""
from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from bot.links import preferences_url
from bot.web import create_app
from storage.models import Outbox, Person
from storage.people import import_directory
from tests.importers.makers import write_csv

SECRET = "p" * 32
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)  # tokens are signed on the real clock
LEAD = "lead@c.example"


@pytest.fixture
def client(engine: Engine, session: Session, tmp_path: Path) -> TestClient:
    write_csv(tmp_path / "people.csv", [["name", "email", "roles", "slack_id"],
                                        ["Priya Shah", "priya@c.example", "HR Business Partner", "U123"],
                                        ["Lee Lead", LEAD, "", ""]])
    with session.begin():
        import_directory(session, tmp_path / "people.csv")
    app = create_app(engine, secret=SECRET, edi_leads=[LEAD], clock=lambda: NOW, channels=("slack", "email"))
    return TestClient(app, base_url="https://chaser.c.example")


def priya(session: Session) -> Person:
    session.expire_all()
    return session.scalars(select(Person).where(Person.email == "priya@c.example")).one()


def page_url(session: Session) -> str:
    return preferences_url("https://chaser.c.example", SECRET, person_id=priya(session).id)


def notices(session: Session) -> list[str]:
    session.expire_all()
    return [note for row in session.scalars(select(Outbox).where(Outbox.kind == "notice"))
            for note in row.payload["notes"]]


def hidden(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]+)">', html))


def test_the_page_shows_the_choices_and_opening_it_changes_nothing(client: TestClient, session: Session) -> None:
    shown = client.get(page_url(session))
    assert shown.status_code == 200
    assert "How Chaser contacts you, Priya Shah" in shown.text
    assert "Every reminder, as each action falls due" in shown.text and "One summary a week" in shown.text
    assert "By Slack" in shown.text and "By email" in shown.text
    assert priya(session).cadence == "each" and notices(session) == []


def test_saving_the_form_changes_how_and_how_often_and_tells_the_lead(client: TestClient, session: Session) -> None:
    url = page_url(session)
    fields = hidden(client.get(url).text)
    saved = client.post(url, data={**fields, "cadence": "weekly", "channel": "email"})
    assert saved.status_code == 200 and "one summary a week" in saved.text
    assert (priya(session).cadence, priya(session).channel) == ("weekly", "email")
    (note,) = notices(session)
    assert note.startswith("Priya Shah (priya@c.example) changed how Chaser reaches them: from every reminder")
    assert "to one summary a week" in note and "channel from the council's usual order to email" in note
    assert "(on the preferences page)" in note


def test_a_post_without_the_form_token_or_with_a_forged_link_changes_nothing(client: TestClient,
                                                                               session: Session) -> None:
    url = page_url(session)
    refused = client.post(url, data={"cadence": "weekly"})
    assert refused.status_code == 403 and "Nothing was changed" in refused.text
    forged = client.post(url[:-3] + "abc", data={**hidden(client.get(url).text), "cadence": "weekly"})
    assert forged.status_code == 400
    assert priya(session).cadence == "each" and notices(session) == []


@pytest.mark.parametrize("multipart", [False, True])
def test_one_click_unsubscribe_makes_it_weekly_and_tells_the_lead_once(client: TestClient, session: Session,
                                                                      multipart: bool) -> None:
    url = page_url(session)
    for _ in range(2):  # mail programs may send it twice
        if multipart:  # RFC 8058 allows either encoding
            answer = client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
        else:
            answer = client.post(url, data={"List-Unsubscribe": "One-Click"})
        assert answer.status_code == 200 and "one summary a week" in answer.text
    assert priya(session).cadence == "weekly"
    (note,) = notices(session)
    assert "(by one-click unsubscribe)" in note
