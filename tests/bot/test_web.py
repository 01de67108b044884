"""The answer form: a real HTTP server on loopback, signed links as the nudges carry them."""
from __future__ import annotations

import datetime as dt
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.links import answer_links
from bot.web import AnswerForm, start_server
from storage.db import make_engine
from tests.conftest import another_process_writing
from storage.importers.load import import_plan_file
from storage.models import Action, Person, StatusUpdate
from storage.people import import_directory
from storage.updates import current_state
from tests.importers.makers import write_csv

SECRET = "s" * 32
# Tokens are signed on the real clock, so the form's injected clock starts there too.
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


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


# --- a hostile but honest tester ------------------------------------------------------------

def raw_request(server: str, data: bytes, *, close_write: bool = False) -> tuple[int, str]:
    """Send bytes as they are (no client library fixing them up); the status and the page."""
    parts = urllib.parse.urlsplit(server)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as conn:
        conn.sendall(data)
        if close_write:
            try:
                conn.shutdown(socket.SHUT_WR)
            except OSError:  # the server has answered and closed already
                pass
        response = b""
        while chunk := conn.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body.decode()


def post(url: str, body: bytes, length: str | None) -> bytes:
    path = urllib.parse.urlsplit(url).path
    headers = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    if length is not None:
        headers += f"Content-Length: {length}\r\n"
    return headers.encode() + b"\r\n" + body


def test_a_body_without_a_trustworthy_length_is_refused_and_nothing_is_recorded(server: str, session: Session) -> None:
    url = links(session, server)["Amber"]
    form = b"status=amber&note=" + b"x" * 30_000
    assert raw_request(server, post(url, form, "-1"), close_write=True)[0] == 400      # read(-1) read it all
    assert raw_request(server, post(url, b"status=amber", None), close_write=True)[0] == 411
    status, html = raw_request(server, post(url, form, str(len(form))), close_write=True)
    assert status == 413 and "at most 5,000 characters" in html
    # Declared whole but cut short: never recorded as far as it got (a status without its date).
    status, html = raw_request(server, post(url, b"status=amber&due=May", "40"), close_write=True)
    assert status == 400 and "cut short" in html
    assert session.scalars(select(StatusUpdate)).all() == []


def test_a_note_has_a_stated_limit_and_control_characters_are_removed(server: str, session: Session) -> None:
    url = links(session, server)["Amber"]
    assert "up to 5,000 characters" in fetch(url)[1] and 'maxlength="5000"' in fetch(url)[1]
    status, html = fetch(url, {"status": "amber", "note": "y" * 5001})
    assert status == 422 and "the note is 5,001 characters long; at most 5,000 are kept" in html
    assert "y" * 5001 in html  # what they wrote is still there to shorten
    status, _ = fetch(url, {"status": "amber", "note": "Survey\x00 late\x1b[31m\r\nsee notes"})
    assert status == 200  # a NUL used to be a bare 500 on PostgreSQL
    (update,) = session.scalars(select(StatusUpdate)).all()
    assert update.note == "Survey late[31m\nsee notes"


def test_a_half_sent_request_never_blocks_other_clients(engine: Engine, session: Session, server: str) -> None:
    httpd, _ = start_server(AnswerForm(engine, secret=SECRET, clock=lambda: NOW), "127.0.0.1", 0, timeout=0.5)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        with socket.create_connection(("127.0.0.1", httpd.server_address[1]), timeout=10) as idle:
            idle.sendall(b"GET /answer/abc HT")  # and then nothing
            status, _ = fetch(links(session, base)["Green"])
            assert status == 200  # served while the other client sits there
            assert idle.recv(100) == b""  # and the idle one is dropped after the request timeout
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_many_owners_answering_at_once_all_get_their_page(server: str, session: Session) -> None:
    url = links(session, server)["Amber"]
    with ThreadPoolExecutor(60) as pool:
        results = list(pool.map(lambda n: fetch(url, {"status": "amber", "note": f"answer {n}"})[0], range(60)))
    assert results == [200] * 60
    assert len(session.scalars(select(StatusUpdate)).all()) == 60


def test_a_busy_database_says_the_answer_was_not_recorded_and_keeps_it(
        server: str, session: Session, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.db

    url = links(session, server)["Red"]
    session.rollback()
    monkeypatch.setattr(storage.db, "LOCK_WAIT_SECONDS", 0.3)
    with another_process_writing(engine.url.render_as_string(hide_password=False)):
        # A fresh form for the new lock wait: the server's connections were opened before it changed.
        busy = AnswerForm(make_engine(engine.url.render_as_string(hide_password=False)), secret=SECRET,
                          clock=lambda: NOW)
        httpd, _ = start_server(busy, "127.0.0.1", 0)
        try:
            status, html = fetch(f"http://127.0.0.1:{httpd.server_address[1]}" + urllib.parse.urlsplit(url).path,
                                 {"status": "red", "note": "Supplier gone"})
        finally:
            httpd.shutdown()
            httpd.server_close()
    assert status == 503 and "Your update was not recorded: the tracker is busy" in html
    assert "Supplier gone" in html and 'value="red" checked' in html
    assert session.scalars(select(StatusUpdate)).all() == []
    assert fetch(url, {"status": "red", "note": "Supplier gone"})[0] == 200  # pressed again a minute later


def test_someone_who_no_longer_owns_the_action_is_told_so_when_opening_the_link(server: str, session: Session) -> None:
    status, html = fetch(links(session, server, "other@c.example")["Green"])
    assert status == 403 and "You are no longer an owner of this action" in html
    assert "<form" not in html


def test_a_link_dated_in_the_future_is_not_valid(server: str, session: Session) -> None:
    from unittest import mock

    from itsdangerous import TimestampSigner

    with mock.patch.object(TimestampSigner, "get_timestamp", return_value=int(NOW.timestamp()) + 86400):
        url = links(session, server)["Green"]
    status, html = fetch(url)
    assert status == 400 and "not valid: it is dated in the future" in html and "expired" not in html


def test_a_due_date_no_deadline_can_have_is_refused_on_the_form(server: str, session: Session) -> None:
    status, html = fetch(links(session, server)["Amber"], {"status": "amber", "due": "December 9999"})
    assert status == 422 and "is not a deadline (dates must fall between 1990 and 2100)" in html
    assert session.scalars(select(StatusUpdate)).all() == []
