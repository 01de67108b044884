"""The page of all my actions (bot.web.mine) on SQLite and PostgreSQL: the link every nudge
carries, what the page lists, and one Save recording every changed row through the inbound path."""
from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
from unittest import mock

import pytest
from itsdangerous import TimestampSigner
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from bot.channels.base import Envelope
from bot.channels.memory import Memory
from bot.links import answer_links, mine_link
from bot.render import render
from bot.web import create_app
from chaser.config import Config, parse_config
from jobs.dispatch import Dispatcher
from jobs.sweep import run_sweep
from storage.db import session_factory
from storage.importers.load import import_plan_file
from storage.models import Action, Person, Reply, StatusUpdate
from storage.people import import_directory
from storage.updates import current_state, record_update
from tests.importers.makers import write_csv

SECRET = "s" * 32
BASE = "http://testserver"


def _sending_now() -> dt.datetime:
    """The real time if reminders may go out now (a working day, after send_at, outside quiet
    hours), else when the send window next opens. Links are signed on the real clock, so the
    app's injected clock stays near it (a few days ahead at most, well inside a link's life),
    and the sweep at NOW sends whatever the hour the tests run at."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    calendar = parse_config({}, "test").cadence_for("", None).calendar
    return now if calendar.in_send_window(now) else calendar.next_send_window(now) + dt.timedelta(minutes=1)


NOW = _sending_now()
PLAN = [
    ["Ref", "Action", "Owner", "Deadline"],
    ["P1", "Publish <b>pay</b> gap report", "HR Business Partner", (NOW + dt.timedelta(days=5)).strftime("%d/%m/%Y")],
    ["P2", "Audit interview panels", "HR Business Partner", "March 2028"],
    ["P3", "Menopause policy", "Policy Lead", "March 2028"],
    ["P4", "Staff survey", "HR Business Partner", "March 2028"],
    ["P5", "Accessible comms guide", "Comms Lead", "June 2028"],
    ["P6", "Equality impact training", "Equality Lead", "June 2028"],
    ["P7", "Review the carers' policy", "Pat Policy Head of Policy", "June 2028"],  # names a person
]
PEOPLE = [
    ["name", "email", "roles", "delegate"],
    ["Priya Shah", "priya@c.example", "HR Business Partner", ""],
    ["Pat Policy", "pat@c.example", "Policy Lead", ""],
    ["Chris Comms", "chris@c.example", "Comms Lead", "priya@c.example"],  # Priya answers for Chris
    ["Lee Lead", "lead@c.example", "Equality Lead", ""],
]


@pytest.fixture
def config() -> Config:
    return parse_config({"edi_lead": "lead@c.example", "channels": {"default": "memory"},
                         "web": {"base_url": BASE}}, "test")


@pytest.fixture
def tracker(engine: Engine, tmp_path: Path) -> Engine:
    """Two plans; P4 is complete; Priya owns P1, P2, P4 and Q1 and is Chris's delegate for P5."""
    write_csv(tmp_path / "plan.csv", PLAN)
    import_plan_file(engine, tmp_path / "plan.csv", plan_name="Workforce plan")
    write_csv(tmp_path / "other.csv", [["Ref", "Action", "Owner", "Deadline"],
                                       ["Q1", "Recruitment outreach", "HR Business Partner", "2029"]])
    import_plan_file(engine, tmp_path / "other.csv", plan_name="Community plan")
    write_csv(tmp_path / "people.csv", PEOPLE)
    with session_factory(engine)() as session, session.begin():
        import_directory(session, tmp_path / "people.csv")
        priya = session.scalars(select(Person).where(Person.email == "priya@c.example")).one()
        p4 = session.scalars(select(Action).where(Action.ref == "P4")).one()
        record_update(session, p4, channel="cli", by=priya, status="complete", at=NOW - dt.timedelta(days=1))
    return engine


@pytest.fixture
def client(tracker: Engine) -> TestClient:
    return TestClient(create_app(tracker, secret=SECRET, edi_leads=["lead@c.example"], clock=lambda: NOW))


def nudge(engine: Engine, config: Config) -> Envelope:
    """This morning's sweep and dispatch; Priya's message (about P1 alone: only it is due soon)."""
    memory = Memory()
    run_sweep(engine, config, NOW)
    Dispatcher(engine, config, clock=lambda: NOW, secret=SECRET, channels={"memory": memory}).run_once()
    (priya,) = [e for e in memory.sent if e.recipient.email == "priya@c.example"]
    return priya


def person_id(session: Session, email: str) -> int:
    return session.scalars(select(Person.id).where(Person.email == email)).one()


def action_ids(session: Session) -> dict[str, int]:
    return {a.ref: a.id for a in session.scalars(select(Action))}


def link_for(session: Session, email: str = "priya@c.example", outbox_id: int = 1) -> str:
    return mine_link(BASE, SECRET, person_id=person_id(session, email), outbox_id=outbox_id)


def form_of(html: str, **rows: dict[str, str]) -> dict[str, str]:
    """What a browser sends from the page: the hidden fields, every row at "No change" with an
    empty note and date, and the rows given (by action id, as ``a<id>``) as typed."""
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', html))
    for action_id in dict.fromkeys(re.findall(r'name="status-(\d+)"', html)):
        fields.update({f"status-{action_id}": "", f"note-{action_id}": "", f"due-{action_id}": ""})
    for key, typed in rows.items():
        fields.update({f"{name}-{key[1:]}": value for name, value in typed.items()})
    return fields


def answers(session: Session) -> list[StatusUpdate]:
    session.expire_all()
    return list(session.scalars(select(StatusUpdate).where(StatusUpdate.channel == "web").order_by(StatusUpdate.id)))


def row_html(html: str, action_id: int) -> str:
    """The part of the page that is one action's row."""
    start = html.index(f'<fieldset id="action-{action_id}"')
    ends = [i for i in (html.find('<fieldset id="action-', start + 1), html.find("</form>", start)) if i != -1]
    return html[start:min(ends)]


def refs_listed(html: str) -> list[str]:
    return re.findall(r"<legend[^>]*>(\w+): ", html)


def test_every_nudge_links_to_all_the_persons_open_actions_and_opening_it_records_nothing(
        tracker: Engine, config: Config, client: TestClient, session: Session) -> None:
    envelope = nudge(tracker, config)
    assert [item.ref for item in envelope.items] == ["P1"]
    assert envelope.mine_open == 4 and envelope.mine_url and envelope.mine_url.startswith(f"{BASE}/mine/")
    rendered = render(envelope)
    assert f"See and update all your actions (4 open): {envelope.mine_url}" in rendered.text
    assert f'<a href="{envelope.mine_url}"' in rendered.html and "See and update all your actions (4 open)" in rendered.html
    assert f"<{envelope.mine_url}|See and update all your actions (4 open)>" in rendered.chat

    response = client.get(envelope.mine_url)
    assert response.status_code == 200
    html = response.text
    # P1 from the message, and P2, Q1 and (as Chris's delegate) P5 that it does not list; not
    # P4 (complete) nor P3 (Pat's); grouped by plan, each plan in its own section.
    assert refs_listed(html) == ["Q1", "P1", "P2", "P5"]
    assert re.findall(r"<h2[^>]*>([^<]+)</h2>", html) == ["Community plan", "Workforce plan"]
    assert "Publish &lt;b&gt;pay&lt;/b&gt; gap report" in html  # escaped, not markup
    assert html.count("Save my updates</button>") == 1 and html.count("<form") == 1
    for action_id in action_ids(session).values():  # every input has its label
        if f'name="note-{action_id}"' in html:
            assert f'<label for="note-{action_id}"' in html and f'<label for="due-{action_id}"' in html
    assert re.findall(r'name="status-\d+" value="(\w*)" checked', html) == [""] * 4  # "No change"
    assert "Status now: <strong>not reported yet</strong>" in html
    assert answers(session) == [] and session.scalars(select(Reply)).all() == []


def test_a_save_records_every_changed_row_once_tied_to_the_message(
        tracker: Engine, config: Config, client: TestClient, session: Session) -> None:
    envelope = nudge(tracker, config)
    ids = action_ids(session)
    page = client.get(envelope.mine_url).text
    form = form_of(page, **{f"a{ids['P1']}": {"status": "amber", "note": "Data arrives late"},
                            f"a{ids['P5']}": {"due": "30/06/2028"}})
    response = client.post(envelope.mine_url, data=form)
    assert response.status_code == 200 and "Thank you, Priya Shah" in response.text
    assert "2 updates recorded" in response.text and "Recorded just now" in response.text
    got = answers(session)
    assert [(u.action_id, u.new_status, u.note, u.revised_due, u.outbox_id, u.created_at, u.by_text) for u in got] == [
        (ids["P1"], "amber", "Data arrives late", None, envelope.outbox_id, NOW, "priya@c.example"),
        (ids["P5"], None, None, dt.date(2028, 6, 30), envelope.outbox_id, NOW, "priya@c.example")]
    assert current_state(session, session.get(Action, ids["P1"])).status == "amber"
    # The same page sent again (a double click, the back button) records nothing more.
    again = client.post(envelope.mine_url, data=form)
    assert again.status_code == 200 and len(answers(session)) == 2
    outcomes = sorted(r.outcome for r in session.scalars(select(Reply)))
    assert outcomes == ["applied", "applied", "duplicate", "duplicate"]
    assert {r.via for r in session.scalars(select(Reply))} == {"web"}


def test_an_unreadable_date_is_refused_in_its_row_while_the_other_rows_are_recorded(
        client: TestClient, session: Session) -> None:
    url = link_for(session)
    ids = action_ids(session)
    page = client.get(url).text
    response = client.post(url, data=form_of(page, **{f"a{ids['P1']}": {"status": "red", "due": "sometime soon"},
                                                      f"a{ids['P2']}": {"status": "green"}}))
    assert response.status_code == 422
    html = response.text
    assert "1 update recorded" in html and "1 update was not recorded" in html
    row = row_html(html, ids["P1"])
    assert "could not read a date from &#39;sometime soon&#39;" in row  # the reason, next to its row
    assert f'name="status-{ids["P1"]}" value="red" checked' in row and 'value="sometime soon"' in row  # kept
    assert [(u.action_id, u.new_status) for u in answers(session)] == [(ids["P2"], "green")]
    # Corrected and sent from the page as it came back: a new answer, recorded.
    fixed = client.post(url, data=form_of(html, **{f"a{ids['P1']}": {"status": "red", "due": "30/06/2027"}}))
    assert fixed.status_code == 200 and "1 update recorded" in fixed.text
    assert [(u.action_id, u.new_status) for u in answers(session)] == [(ids["P2"], "green"), (ids["P1"], "red")]


def test_someone_who_is_no_longer_an_owner_cannot_record(
        tracker: Engine, client: TestClient, session: Session, tmp_path: Path) -> None:
    url = link_for(session)
    ids = action_ids(session)
    page = client.get(url).text
    # While the page was open, the directory gave the HR Business Partner role to someone else.
    write_csv(tmp_path / "people.csv", [PEOPLE[0], ["Priya Shah", "priya@c.example", "", ""],
                                        *PEOPLE[2:], ["Hana New", "hana@c.example", "HR Business Partner", ""]])
    with session_factory(tracker)() as other, other.begin():
        import_directory(other, tmp_path / "people.csv")
    response = client.post(url, data=form_of(page, **{f"a{ids['P1']}": {"status": "complete"},
                                                      f"a{ids['P5']}": {"note": "Draft out for comment"}}))
    assert response.status_code == 422
    assert "priya@c.example may not update P1: only its owners" in response.text
    assert f'name="status-{ids["P1"]}" value="complete" checked' in response.text  # shown again, as typed
    assert [(u.action_id, u.note) for u in answers(session)] == [(ids["P5"], "Draft out for comment")]  # still a delegate
    assert refs_listed(client.get(url).text) == ["P5"]  # and the page lists only what she answers for now


def test_an_edi_leads_page_lists_their_own_actions_not_the_whole_plan(client: TestClient, session: Session) -> None:
    html = client.get(link_for(session, "lead@c.example")).text
    assert refs_listed(html) == ["P6"] and "One open action you answer for" in html


def test_an_action_whose_owner_cell_names_the_person_is_on_their_page(client: TestClient, session: Session) -> None:
    assert refs_listed(client.get(link_for(session, "pat@c.example")).text) == ["P3", "P7"]


def test_a_save_with_nothing_changed_records_nothing(client: TestClient, session: Session) -> None:
    url = link_for(session)
    response = client.post(url, data=form_of(client.get(url).text))
    assert response.status_code == 422 and "Nothing was recorded" in response.text
    assert answers(session) == [] and session.scalars(select(Reply)).all() == []


def test_a_post_without_the_pages_csrf_token_records_nothing(client: TestClient, session: Session) -> None:
    url = link_for(session)
    ids = action_ids(session)
    form = form_of(client.get(url).text, **{f"a{ids['P1']}": {"status": "green"}})
    for forged in ({k: v for k, v in form.items() if k != "csrf"}, {**form, "csrf": "0" * 64},
                   {**form, "csrf": form_of(client.get(link_for(session, outbox_id=2)).text)["csrf"]}):  # another link's
        response = client.post(url, data=forged)
        assert response.status_code == 403 and "did not come from the page your link opens" in response.text
    assert answers(session) == [] and session.scalars(select(Reply)).all() == []


def test_a_forged_expired_future_dated_or_tampered_link_is_refused(client: TestClient, session: Session) -> None:
    ids = action_ids(session)
    pid = person_id(session, "priya@c.example")
    good = link_for(session)
    token = good.rsplit("/", 1)[1]
    answer_token = answer_links(BASE, SECRET, action_id=ids["P1"], person_id=pid, outbox_id=1)[0].url
    answer_token = answer_token.split("/answer/")[1].split("?")[0]
    signed = int(time.time())
    with mock.patch.object(TimestampSigner, "get_timestamp", return_value=signed - 61 * 86400):
        expired = link_for(session)
    with mock.patch.object(TimestampSigner, "get_timestamp", return_value=signed + 86400):
        future = link_for(session)
    other = mine_link(BASE, SECRET, person_id=pid + 1, outbox_id=1).rsplit("/", 1)[1]
    cases = {
        f"{BASE}/mine/{answer_token}": "is not valid: it was changed or cut short",  # an answer link's token
        mine_link(BASE, "another-secret-" * 3, person_id=pid, outbox_id=1): "is not valid",
        expired: "has expired (links work for 60 days)",
        future: "is not valid: it is dated in the future",
        f"{BASE}/mine/{other.split('.')[0]}.{token.split('.', 1)[1]}": "is not valid",  # someone else's payload
        good[:-3] + "xyz": "is not valid",
    }
    form = form_of(client.get(good).text, **{f"a{ids['P1']}": {"status": "green"}})
    for url, expected in cases.items():
        for response in (client.get(url), client.post(url, data=form)):
            assert response.status_code == 400 and expected in response.text, url
            assert "This link does not work" in response.text and "<form" not in response.text
    assert answers(session) == [] and session.scalars(select(Reply)).all() == []


def test_the_page_and_its_form_are_bounded(client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch) -> None:
    import bot.web.mine

    url = link_for(session)
    form = form_of(client.get(url).text)
    too_many = {**form, **{f"note-{900000 + n}": "x" for n in range(bot.web.mine.MAX_FIELDS)}}
    response = client.post(url, data=too_many)
    assert response.status_code == 400 and "could not be read, so nothing was recorded" in response.text
    long_notes = {**form, **{f"note-{900000 + n}": "é" * 5000 for n in range(15)}}  # 30 KB each, sent
    response = client.post(url, data=long_notes)
    assert response.status_code == 413 and "larger than 400 KB" in response.text
    assert answers(session) == [] and session.scalars(select(Reply)).all() == []
    monkeypatch.setattr(bot.web.mine, "MAX_ROWS", 2)
    html = client.get(url).text
    assert len(refs_listed(html)) == 2 and "…and 2 more open actions, not shown" in html
