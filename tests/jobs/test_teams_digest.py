"""A board's digest in Teams: one Adaptive Card a month posted to the board's Workflows webhook
(the URL in the variable ``[[boards]] teams_webhook_env`` names), checked against a loopback
fake of the flow's trigger."""
from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from sqlalchemy import Engine, select

from bot.channels.base import Secrets
from chaser.config import Config, parse_config
from chaser.errors import ConfigError
from jobs.digest import parse_period
from jobs.digest_send import queue_digest
from jobs.dispatch import Dispatcher
from jobs.sweep import run_sweep
from storage.db import session_factory
from storage.importers.load import import_plan_file
from storage.models import NudgeKey, Outbox, Person
from storage.tracker import find_action
from storage.updates import record_update
from tests.bot.teams_webhook_server import WorkflowFake, workflow_server
from tests.conftest import LAMBETH
from tests.jobs.crash_helpers import SECRET

BOARD = "Children's Services EDI Board"
RECIPIENTS = ["clerk@lambeth.example", "chair@lambeth.example"]
LEAD = "lead@lambeth.example"
WEBHOOK_ENV = "TEAMS_EDI_BOARD_WEBHOOK"
HOSTILE = ("<script>alert(1)</script>", "<at>Board</at>", "**[x](https://evil.example)**", '=HYPERLINK("https://evil.example","x")')


def london(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)  # winter: London is UTC


def config(folder: Path, **board: Any) -> Config:
    return parse_config({
        "edi_lead": LEAD,
        "channels": {"outbox_folder": {"folder": str(folder)}},
        "boards": [{"name": BOARD, "schedule": "monthly on the last Thursday", "teams_webhook_env": WEBHOOK_ENV,
                    **board}],
    }, "test")


def digests(engine: Engine) -> list[Outbox]:
    with session_factory(engine)() as session:
        return list(session.scalars(select(Outbox).where(Outbox.kind == "digest").order_by(Outbox.id)))


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def flow(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[WorkflowFake]:
    """The flow's trigger over HTTPS, its CA trusted the way an operator would: REQUESTS_CA_BUNDLE."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(path))
    with workflow_server(WorkflowFake(), ca) as served:
        yield served


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


def dispatcher(engine: Engine, settings: Config, clock: Clock, environ: dict[str, str]) -> Dispatcher:
    """No channels handed in: the dispatcher builds teams_workflow on demand, as ``chaser run`` does."""
    return Dispatcher(engine, settings, clock=clock, secret=SECRET, secrets=Secrets(environ))


def queue(engine: Engine, settings: Config, now: dt.datetime) -> tuple[int, ...]:
    with session_factory(engine)() as session, session.begin():
        return queue_digest(session, settings.boards[0], parse_period("2026-11", settings.timezone), now).outbox_ids


def strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in the card with where it is: ``(path, text)``, the path naming element types
    (``body/Container/RichTextBlock/TextRun.text``)."""
    if isinstance(value, dict):
        here = f"{path}/{value['type']}" if isinstance(value.get("type"), str) else path
        for key, item in value.items():
            if key != "type":
                yield from strings(item, f"{here}.{key}" if isinstance(item, str) else here)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item, path)
    elif isinstance(value, str):
        yield path, value


def shown(card: dict[str, Any]) -> str:
    return "\n".join(text for where, text in strings(card["body"]) if where.endswith(("TextRun.text", "TextBlock.text")))


def facts(card: dict[str, Any]) -> dict[str, str]:
    (fact_set,) = [b for b in card["body"] if b["type"] == "FactSet"]
    return {f["title"]: f["value"] for f in fact_set["facts"]}


def test_the_sweep_queues_the_boards_teams_row_once_per_month(engine: Engine, tmp_path: Path) -> None:
    import_plan_file(engine, LAMBETH)
    settings = config(tmp_path / "out", recipients=RECIPIENTS)
    first = run_sweep(engine, settings, london("2026-12-01T10:00"))
    again = run_sweep(engine, settings, london("2026-12-01T10:05"))
    rows = digests(engine)
    assert len(first.digests) == 3 and again.digests == []
    assert [(r.recipient, r.channel, r.payload) for r in rows] == [
        *((e, "email", {"board": BOARD, "period": "2026-11", "items": []}) for e in RECIPIENTS),
        (WEBHOOK_ENV, "teams_workflow", {"board": BOARD, "period": "2026-11", "items": [], "to": "teams_webhook"})]
    with session_factory(engine)() as session:
        assert session.get(NudgeKey, "digest:children-s-services-edi-board:2026-11") is not None
    # A board whose only destination is its Teams channel is queued too, once.
    only = config(tmp_path / "out")
    assert run_sweep(engine, only, london("2027-01-04T10:00")).digests != []
    assert run_sweep(engine, only, london("2027-01-04T10:05")).digests == []
    assert [r.recipient for r in digests(engine)][3:] == [WEBHOOK_ENV]


def test_the_card_posted_to_the_flow_has_the_counts_the_moves_and_no_live_user_text(
        engine: Engine, tmp_path: Path, flow: WorkflowFake) -> None:
    import_plan_file(engine, LAMBETH)
    with session_factory(engine)() as session:
        session.add(Person(name="Lee Lead", email=LEAD))
        session.commit()
        lead = session.scalar(select(Person).where(Person.email == LEAD))
        action = find_action(session, "CP1")
        action.title = " ".join(HOSTILE)
        record_update(session, action, channel="cli", by=lead, status="red", at=london("2026-11-03T10:00"),
                      edi_leads=[LEAD])
        record_update(session, find_action(session, "CP2"), channel="cli", by=lead, status="complete",
                      at=london("2026-11-10T10:00"), edi_leads=[LEAD])
        session.commit()
    settings = config(tmp_path / "out")
    now = Clock(london("2026-12-01T10:00"))
    (row_id,) = queue(engine, settings, now.now)
    dispatcher(engine, settings, now, {WEBHOOK_ENV: flow.url}).run_once()
    (row,) = digests(engine)
    assert (row.id, row.state, row.channel, row.recipient) == (row_id, "sent", "teams_workflow", WEBHOOK_ENV)
    assert row.receipt["ref"]["webhook_env"] == WEBHOOK_ENV and row.receipt["ref"]["run"].startswith("08584")
    assert flow.signature not in json.dumps(row.receipt) and flow.base not in json.dumps(row.receipt)
    (card,) = flow.cards
    assert card["version"] == "1.5"
    counts = facts(card)
    assert list(counts) == ["Complete", "Green", "Amber", "Red", "Not started", "No update"]
    assert (counts["Red"], counts["Complete"], counts["No update"]) == ("1", "1", "28")
    text = shown(card)
    assert f"Highlight report for November 2026: {BOARD}" in text
    assert "2 status changes this month" in text and "What changed" in text
    assert f"• CP1, No update to Red: {' '.join(HOSTILE)}" in text
    assert "by email" not in text  # this board has no recipients: the card says nothing of an email
    for hostile in HOSTILE:  # typed text, shown as typed: only ever inside a TextRun
        places = {where for where, value in strings(card) if hostile in value}
        assert places and all(where.endswith("RichTextBlock/TextRun.text") for where in places), places
    assert "msteams" not in json.dumps(card["body"]) and "mention" not in json.dumps(card)


def test_throttled_then_accepted_is_posted_exactly_once(engine: Engine, tmp_path: Path, flow: WorkflowFake) -> None:
    settings = config(tmp_path / "out")
    now = Clock(london("2026-12-01T10:00"))
    queue(engine, settings, now.now)
    flow.fail(429, retry_after="120")
    run = dispatcher(engine, settings, now, {WEBHOOK_ENV: flow.url})
    first = run.run_once()
    (row,) = digests(engine)
    assert (first.failed, row.state, row.attempts) == (1, "failed", 0)  # a throttle is not an attempt
    assert row.next_attempt_at.replace(tzinfo=dt.timezone.utc) == now.now + dt.timedelta(seconds=120)
    assert "throttled" in (row.last_error or "") and WEBHOOK_ENV in (row.last_error or "")
    now.now += dt.timedelta(seconds=60)
    assert run.run_once().sent == 0  # not before Retry-After
    now.now += dt.timedelta(seconds=61)
    assert run.run_once().sent == 1
    assert run.run_once().sent == 0
    assert [r.status for r in flow.requests] == [429, 202] and len(flow.cards) == 1
    assert digests(engine)[0].state == "sent"


def test_a_server_error_is_retried_with_backoff(engine: Engine, tmp_path: Path, flow: WorkflowFake) -> None:
    settings = config(tmp_path / "out")
    now = Clock(london("2026-12-01T10:00"))
    queue(engine, settings, now.now)
    flow.fail(502)
    run = dispatcher(engine, settings, now, {WEBHOOK_ENV: flow.url})
    assert run.run_once().failed == 1
    now.now += dt.timedelta(seconds=settings.scheduler.retry_base_seconds)
    assert run.run_once().sent == 1
    (row,) = digests(engine)
    assert (row.state, row.attempts) == ("sent", 2) and [r.status for r in flow.requests] == [502, 202]


def test_a_deleted_flow_parks_the_post_naming_the_variable_not_the_url(engine: Engine, tmp_path: Path,
                                                                        flow: WorkflowFake,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    settings = config(tmp_path / "out")
    now = Clock(london("2026-12-01T10:00"))
    queue(engine, settings, now.now)
    flow.fail(404, times=5)
    caplog.set_level("DEBUG")
    result = dispatcher(engine, settings, now, {WEBHOOK_ENV: flow.url}).run_once()
    (row,) = digests(engine)
    assert (result.parked, row.state, row.channel, row.attempts) == (1, "parked", "teams_workflow", 1)
    error = row.last_error or ""
    assert "404" in error and WEBHOOK_ENV in error and BOARD in error and "deleted or turned off" in error
    logged = caplog.text + json.dumps(row.route)
    for secret in (flow.signature, flow.path, flow.url):
        assert secret not in error and secret not in logged
    assert len(flow.requests) == 1  # parked at once: a deleted flow does not come back on a retry
    with session_factory(engine)() as session:  # nobody else is told or sent it: the board has no other address
        assert session.scalar(select(Outbox).where(Outbox.kind != "digest")) is None


def test_a_missing_variable_is_a_clear_error_naming_it(engine: Engine, tmp_path: Path, flow: WorkflowFake) -> None:
    settings = config(tmp_path / "out")
    now = Clock(london("2026-12-01T10:00"))
    (row_id,) = queue(engine, settings, now.now)
    dispatcher(engine, settings, now, {}).run_once()
    (row,) = digests(engine)
    assert row.state == "parked" and not flow.requests
    assert (f"the environment variable {WEBHOOK_ENV} (named by teams_webhook_env) is not set, nor {WEBHOOK_ENV}_FILE"
            in (row.last_error or ""))
    assert f"chaser outbox retry {row_id}" in (row.last_error or "")


def test_a_value_that_is_not_an_https_url_is_refused_without_showing_it(engine: Engine, tmp_path: Path) -> None:
    settings = config(tmp_path / "out")
    now = Clock(london("2026-12-01T10:00"))
    queue(engine, settings, now.now)
    dispatcher(engine, settings, now, {WEBHOOK_ENV: "http://example.invalid/hook?sig=s3cr3t"}).run_once()
    (row,) = digests(engine)
    assert row.state == "parked" and "does not hold an https:// URL" in (row.last_error or "")
    assert "s3cr3t" not in (row.last_error or "")


def test_teams_workflow_is_not_a_routing_channel_and_needs_no_table(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="'teams_workflow' is not a channel messages are routed to"):
        parse_config({"channels": {"order": ["teams_workflow", "outbox_folder"]}}, "test")
    assert parse_config({"channels": {"teams_workflow": {"timeout": 10}}}, "test").channels.table("teams_workflow")
    with pytest.raises(ConfigError, match="unknown key 'channels.teams_workflow.url'"):
        parse_config({"channels": {"teams_workflow": {"url": "https://x.example"}}}, "test")


def test_an_untrusted_certificate_or_a_dead_address_is_retried_and_names_no_url(
        engine: Engine, tmp_path: Path, flow: WorkflowFake, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = config(tmp_path / "out")
    now = Clock(london("2026-12-01T10:00"))
    queue(engine, settings, now.now)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE")  # the test CA is trusted only through this variable
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    assert dispatcher(engine, settings, now, {WEBHOOK_ENV: flow.url}).run_once().failed == 1
    (row,) = digests(engine)
    assert "certificate is not trusted" in (row.last_error or "") and "REQUESTS_CA_BUNDLE" in (row.last_error or "")
    assert not flow.cards
    now.now += dt.timedelta(hours=1)
    dead = "https://127.0.0.1:9/workflows/abc/triggers/manual/paths/invoke?sig=d3adb33f"
    dispatcher(engine, settings, now, {WEBHOOK_ENV: dead}).run_once()
    (row,) = digests(engine)
    assert row.state == "failed" and "could not connect" in (row.last_error or "")
    assert "d3adb33f" not in (row.last_error or "") and "/workflows/" not in (row.last_error or "")
