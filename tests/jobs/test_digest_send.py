"""Sending a board its digest: queued once per board and month (by the sweep on the board's day,
or ``chaser digest --send``, in any number of processes), and sent as a short email with the
chart inline and the PDF attached."""
from __future__ import annotations

import datetime as dt
import email
import email.policy
import io
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pdfplumber
from sqlalchemy import Engine, select

from chaser.config import Config, parse_config
from jobs.digest import parse_period
from jobs.digest_send import digest_key, queue_digest
from jobs.dispatch import Dispatcher
from jobs.sweep import run_sweep
from storage.db import session_factory
from storage.importers.load import import_plan_file
from storage.models import NudgeKey, Outbox, Person
from storage.tracker import find_action
from storage.updates import record_update
from tests.conftest import LAMBETH
from tests.jobs.crash_helpers import SECRET

BOARD = "Children's Services EDI Board"
RECIPIENTS = ["clerk@lambeth.example", "chair@lambeth.example"]
LEAD = "lead@lambeth.example"
ROOT = Path(__file__).resolve().parents[2]


def london(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)  # winter: London is UTC


def config(folder: Path, **board: Any) -> Config:
    return parse_config({
        "edi_lead": LEAD,
        "channels": {"outbox_folder": {"folder": str(folder)}},
        "boards": [{"name": BOARD, "schedule": "monthly on the last Thursday", "recipients": RECIPIENTS, **board}],
    }, "test")


def digests(engine: Engine) -> list[Outbox]:
    with session_factory(engine)() as session:
        return list(session.scalars(select(Outbox).where(Outbox.kind == "digest").order_by(Outbox.id)))


def test_the_sweep_queues_last_months_report_once_on_the_boards_digest_day(engine: Engine, tmp_path: Path) -> None:
    import_plan_file(engine, LAMBETH)
    settings = config(tmp_path / "out")
    assert run_sweep(engine, settings, london("2026-12-01T07:00")).digests == []  # before the send window
    first = run_sweep(engine, settings, london("2026-12-01T10:00"))  # Tuesday 1 December: the first working day
    again = run_sweep(engine, settings, london("2026-12-01T10:05"))
    later = run_sweep(engine, settings, london("2026-12-09T10:00"))
    rows = digests(engine)
    assert len(first.digests) == 2 and again.digests == [] and later.digests == []
    assert [(r.recipient, r.channel, r.person_id, r.payload) for r in rows] == [
        (email_, "email", None, {"board": BOARD, "period": "2026-11", "items": []}) for email_ in RECIPIENTS]
    with session_factory(engine)() as session:
        key = session.get(NudgeKey, "digest:children-s-services-edi-board:2026-11")
        assert key is not None and key.outbox_id == rows[0].id


def test_a_digest_day_on_a_weekend_waits_for_the_next_working_day(engine: Engine, tmp_path: Path) -> None:
    settings = config(tmp_path / "out", digest_day=5)  # Saturday 5 December 2026
    assert run_sweep(engine, settings, london("2026-12-04T10:00")).digests == []
    assert run_sweep(engine, settings, london("2026-12-05T10:00")).digests == []  # the weekend
    assert len(run_sweep(engine, settings, london("2026-12-07T10:00")).digests) == 2  # Monday
    assert run_sweep(engine, settings, london("2026-12-08T10:00")).digests == []


def test_two_processes_sending_at_once_queue_it_once(db_url: str, engine: Engine, tmp_path: Path) -> None:
    import_plan_file(engine, LAMBETH)
    path = tmp_path / "chaser.toml"
    path.write_text(f'edi_lead = "{LEAD}"\n[channels.outbox_folder]\nfolder = "out"\n'
                    f'[[boards]]\nname = "{BOARD}"\nschedule = "monthly on the last Thursday"\n'
                    f"recipients = {json.dumps(RECIPIENTS)}\n", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHASER_")}
    env.update(CHASER_DATABASE_URL=db_url, CHASER_CONFIG=str(path), CHASER_SECRET_KEY=SECRET,
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p))
    command = [sys.executable, "-m", "chaser", "digest", "--board", BOARD, "--period", "2026-11", "--send"]
    procs = [subprocess.Popen(command, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    said = [" ".join(out.decode().split()) for out, _ in outputs]
    assert sorted("Queued the November 2026 report for 2 recipient(s)" in s for s in said) == [False, True]
    assert sorted("already queued for Children's Services EDI Board; nothing queued" in s for s in said) == [False, True]
    assert [r.recipient for r in digests(engine)] == RECIPIENTS


def dispatch(engine: Engine, settings: Config, now: dt.datetime) -> Dispatcher:
    sent = Dispatcher(engine, settings, clock=lambda: now, secret=SECRET)
    sent.run_once()
    return sent


def test_the_email_has_the_headlines_the_chart_inline_and_the_pdf_attached(engine: Engine, tmp_path: Path) -> None:
    import_plan_file(engine, LAMBETH)
    with session_factory(engine)() as session:
        session.add(Person(name="Lee Lead", email=LEAD))
        session.commit()
        lead = session.scalar(select(Person).where(Person.email == LEAD))
        for ref, status, day in (("CP1", "red", "2026-11-03"), ("CP2", "complete", "2026-11-10")):
            record_update(session, find_action(session, ref), channel="cli", by=lead, status=status,
                          note='<script>alert("x")</script>', at=london(f"{day}T10:00"), edi_leads=[LEAD])
        session.commit()
    settings = config(tmp_path / "out")
    with session_factory(engine)() as session, session.begin():
        board = settings.boards[0]
        queued = queue_digest(session, board, parse_period("2026-11", settings.timezone), london("2026-12-01T10:00"))
    dispatch(engine, settings, london("2026-12-01T10:01"))
    rows = digests(engine)
    assert [r.state for r in rows] == ["sent", "sent"] and [r.id for r in rows] == list(queued.outbox_ids)
    files = sorted((tmp_path / "out").glob("*.eml"))
    assert len(files) == 2  # one per recipient, on the embedded default's outbox folder
    message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert message["Subject"] == f"{BOARD}: highlight report, November 2026"
    (to,) = message["To"].addresses
    assert (to.display_name, to.addr_spec in RECIPIENTS) == (BOARD, True)
    assert message.get_content_type() == "multipart/mixed"
    html = message.get_body(preferencelist=("html",)).get_content()
    text = message.get_body(preferencelist=("plain",)).get_content()
    assert "Red: 1" in text and "Complete: 1" in text and "No update: 28" in text
    assert "2 status changes this month" in text and "CP1" in text
    assert ">1</strong>Red<" in html.replace("\n", "")
    image = next(p for p in message.walk() if p.get_content_type() == "image/png")
    cid = image["Content-ID"].strip("<>")
    assert f'src="cid:{cid}"' in html and image.get_content().startswith(b"\x89PNG")
    assert 'alt="Actions by status for each workstream. Career Progression: Complete 1, Red 1, No update 2' in html
    (pdf_part,) = list(message.iter_attachments())
    assert pdf_part.get_filename() == "children-s-services-edi-board-2026-11.pdf"
    with pdfplumber.open(io.BytesIO(pdf_part.get_content())) as pdf:
        pdf_text = "\n".join(page.extract_text() or "" for page in pdf.pages)
    assert "Career Progression" in pdf_text and "CP1" in pdf_text and "No update" in pdf_text
    assert '<script>alert("x")</script>' not in html and "&lt;script&gt;" not in html  # notes are not in the email


def test_a_digest_whose_board_was_removed_is_parked_saying_so(engine: Engine, tmp_path: Path) -> None:
    settings = config(tmp_path / "out")
    with session_factory(engine)() as session, session.begin():
        queue_digest(session, settings.boards[0], parse_period("2026-11", settings.timezone),
                     london("2026-12-01T10:00"))
        assert session.get(NudgeKey, digest_key(settings.boards[0], parse_period("2026-11", "Europe/London")))
    renamed = parse_config({"channels": {"outbox_folder": {"folder": str(tmp_path / "out")}}}, "test")
    dispatch(engine, renamed, london("2026-12-01T10:01"))
    rows = digests(engine)
    assert [r.state for r in rows] == ["parked", "parked"]
    assert "no board of that name" in (rows[0].last_error or "")
    assert not list((tmp_path / "out").glob("*.eml"))


def test_a_board_with_a_slack_channel_gets_one_summary_posted_there(engine: Engine, tmp_path: Path) -> None:
    from bot.channels.slack import Slack
    from tests.bot.slack_server import BOT_TOKEN, SlackFake, slack_server

    import_plan_file(engine, LAMBETH)
    with session_factory(engine)() as session:
        session.add(Person(name="Lee Lead", email=LEAD))
        session.commit()
        lead = session.scalar(select(Person).where(Person.email == LEAD))
        action = find_action(session, "CP1")
        action.title = "Ping <!channel> about <http://x.example|this>"
        record_update(session, action, channel="cli", by=lead, status="red", at=london("2026-11-03T10:00"),
                      edi_leads=[LEAD])
        session.commit()
    settings = parse_config({
        "edi_lead": LEAD,
        "channels": {"order": ["outbox_folder"], "outbox_folder": {"folder": str(tmp_path / "out")}},
        "boards": [{"name": BOARD, "schedule": "monthly on the last Thursday", "recipients": RECIPIENTS,
                    "slack_channel": "C0BOARD01"}],
    }, "test")
    settings = replace(settings, channels=replace(settings.channels, order=("slack", "outbox_folder")))
    now = london("2026-12-01T10:00")
    with session_factory(engine)() as session, session.begin():
        queued = queue_digest(session, settings.boards[0], parse_period("2026-11", settings.timezone), now)
        again = queue_digest(session, settings.boards[0], parse_period("2026-11", settings.timezone), now)
    assert len(queued.outbox_ids) == 3 and again.already
    with slack_server(SlackFake(clock=lambda: now.timestamp())) as fake:
        fake.add_channel("C0BOARD01")
        slack = Slack(token=BOT_TOKEN, api_url=fake.url, limits=None)
        run = Dispatcher(engine, settings, clock=lambda: now, secret=SECRET, channels={"slack": slack})
        run.run_once()
        posts = fake.calls("chat.postMessage")
    rows = digests(engine)
    assert [(r.recipient, r.channel, r.state) for r in rows] == [
        *((e, "outbox_folder", "sent") for e in RECIPIENTS), ("C0BOARD01", "slack", "sent")]
    assert len(posts) == 1 and posts[0].args["channel"] == "C0BOARD01"
    (message,) = fake.messages("C0BOARD01")
    shown = "\n".join(b["text"]["text"] for b in message["blocks"])
    assert f"*Highlight report for November 2026: {BOARD}*" in shown
    assert "Red: 1" in shown and "No update: 29" in shown and "1 status change this month" in shown
    assert "Ping &lt;!channel&gt; about &lt;http://x.example|this&gt;" in shown and "<!channel>" not in shown
    assert "went to the board's recipients by email" in shown
    assert len(message["blocks"]) <= 50 and all(len(b["text"]["text"]) <= 3000 for b in message["blocks"])
    assert len(list((tmp_path / "out").glob("*.eml"))) == 2  # the email rows as before


def test_a_board_with_only_a_slack_channel_is_queued_and_the_post_names_no_email(engine: Engine,
                                                                                  tmp_path: Path) -> None:
    from bot.channels.base import Envelope, Recipient
    from bot.slack_blocks import digest_blocks
    from jobs.dispatch import Dispatcher as _Dispatcher

    settings = config(tmp_path / "out", recipients=[], slack_channel="#edi-board")
    first = run_sweep(engine, settings, london("2026-12-01T10:00"))
    (row,) = digests(engine)
    assert first.digests == [row.id] and (row.recipient, row.channel) == ("#edi-board", "slack")
    with session_factory(engine)() as session:
        view = _Dispatcher(engine, settings, clock=lambda: london("2026-12-01T10:01"),
                           secret=SECRET).digests.summary(session, row.payload)
    _, blocks = digest_blocks(Envelope(row.id, "digest", Recipient(BOARD, {"slack": "#edi-board"}), (),
                                       london("2026-12-01T10:01"), digest=view))
    shown = "\n".join(b["text"]["text"] for b in blocks)
    assert "Highlight report for November 2026" in shown and "by email" not in shown
