"""The answer form: a real uvicorn server on loopback, signed links as the nudges carry them."""
from __future__ import annotations

import datetime as dt
import queue
import re
import secrets
import select as io_select
import socket
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

from bot.links import answer_links
from bot.web import (MAX_BODY_BYTES, AnswerPages, FormAnswer, WebServer, WebServerError, create_app, csrf_token,
                     serve_forever, start_web)
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
    web = start_web(create_app(engine, secret=SECRET, clock=lambda: NOW), "127.0.0.1", 0)
    yield web.url
    web.stop()


def links(session: Session, base: str, email: str = "priya@c.example") -> dict[str, str]:
    action = session.scalars(select(Action)).one()
    person = session.scalars(select(Person).where(Person.email == email)).one()
    return {link.label: link.url for link in answer_links(base, SECRET, action_id=action.id, person_id=person.id, outbox_id=1)}


def from_page(url: str, form: dict[str, str]) -> dict[str, str]:
    """``form`` with the hidden fields the page carries (its csrf token, a one-time nonce)."""
    token = urllib.parse.urlsplit(url).path.rsplit("/", 1)[1]
    return {"csrf": csrf_token(SECRET, token), "nonce": secrets.token_urlsafe(16), **form}


def fetch(url: str, form: dict[str, str] | None = None, *, hidden: bool = True) -> tuple[int, str]:
    """GET, or POST ``form`` as the page would send it (``hidden=False``: only the fields given)."""
    if form is not None and hidden:
        form = from_page(url, form)
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
    web = start_web(create_app(engine, secret=SECRET, clock=lambda: NOW), "127.0.0.1", 0, timeout=0.5)
    try:
        with socket.create_connection(("127.0.0.1", web.port), timeout=10) as idle:
            idle.sendall(b"GET /answer/abc HT")  # and then nothing
            status, _ = fetch(links(session, web.url)["Green"])
            assert status == 200  # served while the other client sits there
            assert idle.recv(100) == b""  # and the idle one is dropped after the request timeout
    finally:
        web.stop()


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
        busy = create_app(make_engine(engine.url.render_as_string(hide_password=False)), secret=SECRET,
                          clock=lambda: NOW)
        web = start_web(busy, "127.0.0.1", 0)
        try:
            status, html = fetch(web.url + urllib.parse.urlsplit(url).path, {"status": "red", "note": "Supplier gone"})
        finally:
            web.stop()
    assert status == 503 and "Your update was not recorded: the tracker is busy" in html
    assert "Supplier gone" in html and 'value="red" checked' in html
    assert session.scalars(select(StatusUpdate)).all() == []
    assert fetch(url, {"status": "red", "note": "Supplier gone"})[0] == 200  # pressed again a minute later


def test_owners_answering_together_while_the_database_is_busy_are_all_told_soon(
        server: str, session: Session, engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.db

    path = urllib.parse.urlsplit(links(session, server)["Red"]).path
    session.rollback()
    monkeypatch.setattr(storage.db, "LOCK_WAIT_SECONDS", 0.3)
    with another_process_writing(engine.url.render_as_string(hide_password=False)):
        web = start_web(create_app(make_engine(engine.url.render_as_string(hide_password=False)), secret=SECRET,
                                   clock=lambda: NOW), "127.0.0.1", 0)
        try:
            with ThreadPoolExecutor(4) as pool:
                answers = list(pool.map(lambda n: fetch(web.url + path, {"status": "red", "note": f"answer {n}"}),
                                        range(4)))
        finally:
            web.stop()
    # Each waits its turn and the database's wait, both bounded: told, not left hanging.
    assert [status for status, _ in answers] == [503] * 4
    assert all("Your update was not recorded: the tracker is busy" in html for _, html in answers)
    assert session.scalars(select(StatusUpdate)).all() == []


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


@pytest.mark.parametrize(("answer", "expected"), [
    ({"status": "purple"}, "&#39;purple&#39; is not a status"),
    ({"status": "amber", "due": "x" * 101}, "longer than 100 characters: write just the date"),
])
def test_an_answer_the_form_cannot_take_is_refused_kept_and_listed(server: str, session: Session,
                                                                   answer: dict[str, str], expected: str) -> None:
    from storage.models import Reply

    status, html = fetch(links(session, server)["Amber"], answer)
    assert status == 422 and expected in html
    assert session.scalars(select(StatusUpdate)).all() == []
    assert [r.outcome for r in session.scalars(select(Reply))] == ["unclear"]  # kept for the EDI lead


# --- the form proves it came from our page --------------------------------------------------

def hidden_fields(html: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))


def test_the_form_sent_as_the_page_made_it_records_the_answer(server: str, session: Session) -> None:
    url = links(session, server)["Green"]
    status, html = fetch(url)
    fields = hidden_fields(html)
    assert set(fields) == {"csrf", "nonce"}
    status, html = fetch(url, {**fields, "status": "green"}, hidden=False)
    assert status == 200 and "Thank you, Priya Shah" in html
    assert [u.new_status for u in session.scalars(select(StatusUpdate))] == ["green"]


def test_a_post_without_the_csrf_token_changes_nothing(server: str, session: Session) -> None:
    url = links(session, server)["Complete"]
    nonce = secrets.token_urlsafe(16)
    other_link = answer_links(server, SECRET, action_id=1, person_id=1, outbox_id=2)[0].url  # another message's
    for form in ({"status": "complete", "nonce": nonce},
                 {"status": "complete", "nonce": nonce, "csrf": ""},
                 {"status": "complete", "nonce": nonce, "csrf": from_page(other_link, {})["csrf"]},
                 {"status": "complete", "csrf": from_page(url, {})["csrf"]}):  # and without its nonce
        status, html = fetch(url, form, hidden=False)
        assert status == 403 and "open the link in the reminder again" in html
        assert "<form" not in html
    assert session.scalars(select(StatusUpdate)).all() == []


def test_each_showing_of_the_form_has_its_own_nonce_and_the_same_csrf_token(server: str, session: Session) -> None:
    url = links(session, server)["Amber"]
    first, second = hidden_fields(fetch(url)[1]), hidden_fields(fetch(url)[1])
    assert first["csrf"] == second["csrf"] and first["nonce"] != second["nonce"]
    status, html = fetch(url, {**first, "status": "amber", "due": "sometime"}, hidden=False)
    assert status == 422 and hidden_fields(html)["nonce"] != first["nonce"]  # the corrected form is a new answer


# --- the app without a socket (Starlette's TestClient) --------------------------------------

@pytest.fixture
def plan(engine: Engine, session: Session, tmp_path: Path) -> None:
    write_csv(tmp_path / "plan.csv", [["Ref", "Action", "Owner", "Deadline"],
                                      ["P1", "Publish pay gap report", "HR Business Partner", "March 2027"]])
    import_plan_file(engine, tmp_path / "plan.csv", plan_name="Plan")
    write_csv(tmp_path / "people.csv", [["name", "email", "roles"], ["Priya Shah", "priya@c.example", "HR Business Partner"]])
    with session.begin():
        import_directory(session, tmp_path / "people.csv")


def client(engine: Engine, **kwargs: Any) -> TestClient:
    return TestClient(create_app(engine, secret=SECRET, clock=lambda: NOW, **kwargs), base_url="http://chaser.test")


def test_the_answer_path_gets_the_message_the_nonce_and_the_time(
        plan: None, engine: Engine, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the one inbound path will need: the outbox row the link came from, the nonce as
    the request's external id, the clock's time, and who answered what."""
    received: list[FormAnswer] = []
    record = AnswerPages.record
    monkeypatch.setattr(AnswerPages, "record", lambda self, s, answer: received.append(answer) or record(self, s, answer))
    action = session.scalars(select(Action)).one()
    url = answer_links("http://chaser.test", SECRET, action_id=action.id, person_id=action.id, outbox_id=42)[0].url
    with client(engine) as web:
        fields = hidden_fields(web.get(url).text)
        response = web.post(url, data={**fields, "status": "green", "note": "On track", "due": "May 2027"})
    assert response.status_code == 200
    (answer,) = received
    assert (answer.action.ref, answer.person.email, answer.status, answer.note, answer.due_text) == (
        "P1", "priya@c.example", "green", "On track", "May 2027")
    assert (answer.outbox_id, answer.external_id, answer.at) == (42, fields["nonce"], NOW)


def test_healthz_answers_200_when_healthy_and_503_when_not(plan: None, engine: Engine) -> None:
    verdict: list[tuple[bool, dict[str, Any]]] = [(True, {"healthy": True, "problems": []})]
    with client(engine, health=lambda: verdict[0]) as web:
        response = web.get("/healthz")
        assert (response.status_code, response.json()) == (200, {"healthy": True, "problems": []})
        assert response.headers["content-type"] == "application/json"
        verdict[0] = (False, {"healthy": False, "problems": ["the last sweep was 240 s ago"]})
        response = web.get("/healthz")
        assert (response.status_code, response.json()["problems"]) == (503, ["the last sweep was 240 s ago"])


def test_healthz_is_503_when_the_database_fails_while_checking(plan: None, engine: Engine) -> None:
    def health() -> tuple[bool, dict[str, Any]]:
        raise OperationalError("SELECT 1", {}, Exception("database is locked"))

    with client(engine, health=health) as web:
        response = web.get("/healthz")
    assert response.status_code == 503
    assert response.json()["healthy"] is False and "the database is busy" in response.json()["problems"][0]


def test_without_a_health_check_there_is_no_healthz(plan: None, engine: Engine) -> None:
    with client(engine) as web:
        assert web.get("/healthz").status_code == 404


def test_routes_the_runtime_mounts_are_served_with_the_same_headers_and_error_pages(plan: None, engine: Engine) -> None:
    async def events(request: Request) -> Response:
        return PlainTextResponse(f"{len(await request.body())} bytes")

    def broken(request: Request) -> Response:
        raise RuntimeError("a bug")

    routes = [Route("/slack/events", events, methods=["POST"]), Route("/broken", broken)]
    with client(engine, routes=routes) as web:
        ok = web.post("/slack/events", content=b"{}")
        failed = web.get("/broken")
        huge = web.post("/slack/events", content=b"x" * (MAX_BODY_BYTES + 1))
        chunked = web.post("/slack/events", content=iter([b"x" * MAX_BODY_BYTES, b"x"]))  # no length declared
    assert (ok.status_code, ok.text) == (200, "2 bytes")
    assert ok.headers["content-security-policy"] == CSP
    assert failed.status_code == 500 and "Something went wrong" in failed.text  # a page, not a bare 500
    assert failed.headers["content-security-policy"] == CSP
    assert huge.status_code == 413 and huge.headers["content-security-policy"] == CSP
    assert chunked.status_code == 413 and "larger than 1,000 KB" in chunked.text


CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
SECURITY = {"content-security-policy": CSP, "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
            "cache-control": "no-store"}


def test_every_page_sets_the_security_headers(plan: None, engine: Engine, session: Session) -> None:
    action = session.scalars(select(Action)).one()
    url = answer_links("http://chaser.test", SECRET, action_id=action.id, person_id=action.id, outbox_id=1)[0].url
    with client(engine, health=lambda: (True, {})) as web:
        fields = hidden_fields(web.get(url).text)
        responses = {
            "form": web.get(url),
            "thanks": web.post(url, data={**fields, "status": "green"}),
            "refused": web.post(url, data={"status": "green"}),
            "too large": web.post(url, content=b"x" * 30_000, headers={"content-type": "application/x-www-form-urlencoded"}),
            "bad link": web.get(url.replace("/answer/", "/answer/x")),
            "not found": web.get("/"),
            "wrong method": web.put(url),
            "healthz": web.get("/healthz"),
        }
    assert {name: r.status_code for name, r in responses.items()} == {
        "form": 200, "thanks": 200, "refused": 403, "too large": 413, "bad link": 400, "not found": 404,
        "wrong method": 405, "healthz": 200}
    for name, response in responses.items():
        assert {key: response.headers.get(key) for key in SECURITY} == SECURITY, name


def test_a_request_the_server_cannot_parse_gets_a_page_with_the_headers(server: str) -> None:
    status, html = raw_request(server, b"GET /answer/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1e3\r\n\r\n",
                               close_write=True)
    assert status == 400 and "This request could not be read" in html


# --- slow, idle and too many clients --------------------------------------------------------

@pytest.fixture
def quick(engine: Engine, server: str) -> Iterator[WebServer]:
    """A second server over the same plan whose request deadline is half a second."""
    web = start_web(create_app(engine, secret=SECRET, clock=lambda: NOW), "127.0.0.1", 0, timeout=0.5)
    yield web
    web.stop()


def trickle(conn: socket.socket, data: bytes) -> bytes:
    """Send ``data`` a byte at a time, each after waiting up to 0.1 s for the server to answer;
    what the server answered, once it did (or once everything was sent)."""
    for byte in data:
        if io_select.select([conn], [], [], 0.1)[0]:
            break
        conn.sendall(bytes([byte]))
    response = b""
    while chunk := conn.recv(65536):
        response += chunk
    return response


def test_a_body_that_trickles_in_is_cut_short_at_the_deadline_and_others_are_served(
        quick: WebServer, session: Session) -> None:
    url = links(session, quick.url)["Amber"]
    body = urllib.parse.urlencode(from_page(url, {"status": "amber", "note": "n" * 200})).encode()
    with socket.create_connection(("127.0.0.1", quick.port), timeout=10) as slow:
        slow.sendall(post(url, b"", str(len(body))))
        assert fetch(links(session, quick.url)["Green"])[0] == 200  # while the slow one is sending
        response = trickle(slow, body)
    assert response.startswith(b"HTTP/1.1 400 ") and b"cut short" in response
    assert session.scalars(select(StatusUpdate)).all() == []


def test_headers_that_trickle_in_do_not_hold_the_connection(quick: WebServer, session: Session) -> None:
    path = urllib.parse.urlsplit(links(session, quick.url)["Amber"]).path
    with socket.create_connection(("127.0.0.1", quick.port), timeout=10) as slow:
        assert trickle(slow, f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + b"X-Pad: " + b"p" * 100) == b""


def test_past_the_connection_limit_a_client_is_told_at_once(engine: Engine, server: str, session: Session) -> None:
    web = start_web(create_app(engine, secret=SECRET, clock=lambda: NOW), "127.0.0.1", 0, timeout=0.5,
                    max_connections=3)
    try:
        idle = [socket.create_connection(("127.0.0.1", web.port), timeout=10) for _ in range(2)]
        for conn in idle:
            conn.sendall(b"GET / HT")
        assert fetch(links(session, web.url)["Green"])[0] == 503  # uvicorn's refusal, not a wait
        for conn in idle:
            assert conn.recv(100) == b""  # the idle ones are dropped at the deadline...
            conn.close()
        assert fetch(links(session, web.url)["Green"])[0] == 200  # ...and the next client is served
    finally:
        web.stop()


def test_a_chunked_body_is_refused_for_its_missing_length(server: str, session: Session) -> None:
    url = links(session, server)["Amber"]
    head = post(url, b"", None).removesuffix(b"\r\n") + b"Transfer-Encoding: chunked\r\n\r\n"
    status, html = raw_request(server, head + b"c\r\nstatus=amber\r\n0\r\n\r\n", close_write=True)
    assert status == 411 and "with its length" in html
    assert session.scalars(select(StatusUpdate)).all() == []


def test_a_client_waiting_to_send_a_huge_form_is_refused_before_it_sends(server: str, session: Session) -> None:
    url = links(session, server)["Amber"]
    head = post(url, b"", "5000000").removesuffix(b"\r\n") + b"Expect: 100-continue\r\n\r\n"
    status, html = raw_request(server, head)  # no body follows, and no "100 Continue" invites it
    assert status == 413 and "at most 5,000 characters" in html


# --- starting and stopping ------------------------------------------------------------------

def test_a_port_in_use_is_an_error_naming_it(engine: Engine) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        with pytest.raises(WebServerError, match=rf"cannot serve the web pages on 127\.0\.0\.1:{port} \(Address already in use\)"):
            start_web(create_app(engine, secret=SECRET), "127.0.0.1", port)


def test_stop_closes_the_port(engine: Engine) -> None:
    web = start_web(create_app(engine, secret=SECRET), "127.0.0.1", 0)
    assert fetch(web.url + "/")[0] == 404
    web.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", web.port), timeout=10).close()


def test_serve_forever_serves_until_told_to_stop(engine: Engine) -> None:
    stop, serving = threading.Event(), queue.Queue[WebServer]()
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]  # a free port; serve_forever binds it again below
    thread = threading.Thread(target=serve_forever, args=(create_app(engine, secret=SECRET), "127.0.0.1", port),
                              kwargs={"stop": stop, "on_serving": serving.put})
    thread.start()
    try:
        web = serving.get(timeout=10)
        assert fetch(web.url + "/")[0] == 404
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
