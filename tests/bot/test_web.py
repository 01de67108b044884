"""The answer form: a real HTTP server on loopback, signed links as the nudges carry them."""
from __future__ import annotations

import datetime as dt
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.links import answer_links
from bot.web import AnswerForm, start_server
from storage.importers.load import import_plan_file
from storage.models import Action, Person, StatusUpdate
from storage.people import import_directory
from storage.updates import current_state
from tests.importers.makers import write_csv

SECRET = "s" * 32
NOW = dt.datetime(2026, 12, 4, 10, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def server(engine: Engine, session: Session, tmp_path: Path) -> Iterator[str]:
    write_csv(tmp_path / "plan.csv", [["Ref", "Action", "Owner", "Deadline"],
                                      ["P1", "Publish <b>pay</b> gap report", "HR Business Partner", "March 2027"]])
    import_plan_file(engine, tmp_path / "plan.csv", plan_name="Plan")
    write_csv(tmp_path / "people.csv", [["name", "email", "roles"],
                                        ["Priya Shah", "priya@c.example", "HR Business Partner"],
                                        ["Other Person", "other@c.example", ""]])
    with session.begin():
        import_directory(session, tmp_path / "people.csv")
    httpd, _ = start_server(AnswerForm(engine, secret=SECRET, clock=lambda: NOW), "127.0.0.1", 0)
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def links(session: Session, base: str, email: str = "priya@c.example") -> dict[str, str]:
    action = session.scalars(select(Action)).one()
    person = session.scalars(select(Person).where(Person.email == email)).one()
    return {link.label: link.url for link in answer_links(base, SECRET, action_id=action.id, person_id=person.id, outbox_id=1)}


def fetch(url: str, form: dict[str, str] | None = None) -> tuple[int, str]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    try:
        with urllib.request.urlopen(url, data=data, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_opening_a_link_shows_the_form_with_the_status_chosen_and_records_nothing(server: str, session: Session) -> None:
    status, html = fetch(links(session, server)["Amber"])
    assert status == 200
    assert '<input type="radio" name="status" value="amber" checked>' in html
    assert "Publish &lt;b&gt;pay&lt;/b&gt; gap report" in html  # escaped, not markup
    assert session.scalars(select(StatusUpdate)).all() == []


def test_sending_the_form_records_the_update_as_the_owner(server: str, session: Session) -> None:
    status, html = fetch(links(session, server)["Amber"], {"status": "amber", "note": "Data arrives late", "due": "May 2027"})
    assert status == 200 and "Thank you, Priya Shah" in html
    (update,) = session.scalars(select(StatusUpdate)).all()
    assert (update.channel, update.by_text, update.new_status, update.note, update.created_at) == (
        "web", "priya@c.example", "amber", "Data arrives late", NOW)
    state = current_state(session, session.scalars(select(Action)).one())
    assert (state.status, state.due) == ("amber", dt.date(2027, 5, 31))


def test_a_bad_date_shows_the_form_again_with_the_reason(server: str, session: Session) -> None:
    status, html = fetch(links(session, server)["Red"], {"status": "red", "due": "sometime"})
    assert status == 422 and "could not read a date from &#39;sometime&#39;" in html
    assert 'value="red" checked' in html
    assert session.scalars(select(StatusUpdate)).all() == []


def test_a_tampered_link_is_refused(server: str, session: Session) -> None:
    address, _, query = links(session, server)["Green"].partition("?")
    status, html = fetch(address[:-3] + "xyz?" + query)
    assert status == 400 and "was changed or cut short" in html


def test_the_status_in_a_link_only_chooses_what_the_form_shows(server: str, session: Session) -> None:
    address = links(session, server)["Add a note"]
    for url in (address, address + "?s=purple"):                 # none, or not a status
        status, html = fetch(url)
        assert status == 200 and re.findall(r'value="(\w*)" checked', html) == [""]   # "No change"
    status, html = fetch(address + "?s=complete")                # chosen, not recorded
    assert status == 200 and re.findall(r'value="(\w*)" checked', html) == ["complete"]
    assert session.scalars(select(StatusUpdate)).all() == []


def test_someone_who_no_longer_owns_the_action_cannot_answer(server: str, session: Session) -> None:
    status, html = fetch(links(session, server, "other@c.example")["Complete"], {"status": "complete"})
    assert status == 403 and "other@c.example may not update P1" in html
    assert session.scalars(select(StatusUpdate)).all() == []


def test_other_addresses_are_not_found(server: str) -> None:
    assert fetch(server + "/")[0] == 404
