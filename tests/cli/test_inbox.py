"""Replies by email on the embedded default: a reply dropped into inbox/ is read by
``chaser run --once`` into the tracker, and the file is moved to inbox/done/."""
from __future__ import annotations

import email
import email.policy
import json
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import Chaser
from tests.importers.makers import write_csv


@pytest.fixture
def run(chaser: Chaser, tmp_path: Path) -> Chaser:
    """A plan in which Sam owns one action and Priya two; the outbox folder sends."""
    Path("chaser.toml").write_text('edi_lead = "lead@housing.example"\n[channels.outbox_folder]\nfolder = "out"\n')
    chaser("import", str(write_csv(tmp_path / "plan.csv", [
        ["Ref", "Action", "Owner", "Deadline"],
        ["HW 7", "Survey the temporary accommodation", "Head of Housing", "10/12/2026"],
        ["HW 8", "Publish the allocations data", "Policy Lead", "10/12/2026"],
        ["HW 9", "Train the lettings team", "Policy Lead", "10/12/2026"],
    ])))
    chaser("people", "import", str(write_csv(tmp_path / "people.csv", [
        ["name", "email", "roles"],
        ["Sam Ade", "sam@housing.example", "Head of Housing"],
        ["Priya Shah", "priya@housing.example", "Policy Lead"],
        ["Lee Lead", "lead@housing.example", ""],
    ])))
    return chaser


def reply_to(nudge: Path, body: str, *, headers: dict[str, str] | None = None) -> bytes:
    """A reply as Outlook writes one: the new text above the quoted original, threaded by In-Reply-To."""
    original = email.message_from_bytes(nudge.read_bytes(), policy=email.policy.default)
    quoted = original.get_body(("plain",)).get_content()
    message = EmailMessage()
    message["From"] = str(original["To"])
    message["To"] = str(original["From"])
    message["Subject"] = f"RE: {original['Subject']}"
    message["Date"] = "Wed, 02 Dec 2026 09:30:00 +0000"
    message["Message-ID"] = "<reply-1@mail.housing.example>"
    message["In-Reply-To"] = str(original["Message-ID"])
    message["References"] = str(original["Message-ID"])
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(f"{body}\n\nKind regards\nSam\n\n________________________________\nFrom: {original['From']}\n"
                        f"Sent: 01 December 2026 10:00\nTo: {original['To']}\nSubject: {original['Subject']}\n\n{quoted}")
    return message.as_bytes()


def nudge_to(run: Chaser, person: str) -> tuple[Path, list[str]]:
    """The nudge .eml sent to ``person`` by a run, and the refs it covers."""
    run("run", "--once", "--at", "2026-12-01T10:00")
    box = json.loads(run("outbox", "--format", "json").stdout)
    message = next(m for m in box if m["person"] == person)
    path = next(p for p in Path("out").glob("*.eml") if p.name.split("-")[1] == f"{message['id']:06d}")
    return path, message["refs"]


def test_a_reply_dropped_into_the_inbox_is_read_into_the_tracker(run: Chaser) -> None:  
    nudge, (ref,) = nudge_to(run, "sam@housing.example")
    Path("inbox").mkdir()
    (Path("inbox") / "reply.eml").write_bytes(reply_to(nudge, "Amber \u2014 survey delayed, new date 30/06/2027"))

    out = run("run", "--once", "--at", "2026-12-02T10:00").stdout

    assert "Read 1 reply(ies) from 1 file(s) in the inbox folder: 1 applied" in out
    shown = json.loads(run("show", ref, "--format", "json").stdout)
    (latest,) = shown["history"]
    assert latest["new_status"] == "amber" and latest["channel"] == "email"
    assert latest["note"] == "survey delayed, new date 30/06/2027"
    assert "2027-06-30" in json.dumps(shown)
    (listed,) = json.loads(run("replies", "--format", "json").stdout)
    assert (listed["via"], listed["outcome"], listed["refs"], listed["due"]) == ("email", "applied", [ref], "30/06/2027")
    assert listed["message_id"] is not None
    assert [p.name for p in Path("inbox/done").iterdir()] == ["reply.eml"]
    assert not list(Path("inbox").glob("*.eml"))
    # The same mail dropped in again is recorded once: a duplicate, nothing changes.
    (Path("inbox") / "reply.eml").write_bytes(reply_to(nudge, "Red"))
    assert "1 duplicate" in run("run", "--once", "--at", "2026-12-02T11:00").stdout
    assert sorted(p.name for p in Path("inbox/done").iterdir()) == ["reply-1.eml", "reply.eml"]
    assert len(json.loads(run("show", ref, "--format", "json").stdout)["history"]) == 1


def test_an_out_of_office_changes_nothing_and_unreadable_mail_goes_to_failed(run: Chaser) -> None:  
    nudge, (ref,) = nudge_to(run, "sam@housing.example")
    Path("inbox").mkdir()
    (Path("inbox") / "ooo.eml").write_bytes(reply_to(
        nudge, "I am out of the office until 4 January 2027. Green issues: contact the climate team.",
        headers={"Auto-Submitted": "auto-replied"}))
    (Path("inbox") / "junk.eml").write_bytes(b"this is not an email at all\n")

    out = run("run", "--once", "--at", "2026-12-02T10:00")

    assert "1 auto_reply" in out.stdout and "moved to failed/" in out.stderr
    assert json.loads(run("show", ref, "--format", "json").stdout)["history"] == []
    (listed,) = json.loads(run("replies", "--format", "json").stdout)
    assert listed["outcome"] == "auto_reply"
    assert [p.name for p in Path("inbox/done").iterdir()] == ["ooo.eml"]
    assert [p.name for p in Path("inbox/failed").iterdir()] == ["junk.eml"]


def test_one_status_to_a_message_about_several_actions_is_unclear_and_naming_refs_answers_each(run: Chaser) -> None:
    nudge, refs = nudge_to(run, "priya@housing.example")
    assert refs == ["HW 8", "HW 9"]
    Path("inbox").mkdir()
    (Path("inbox") / "1.eml").write_bytes(reply_to(nudge, "Green"))
    out = run("run", "--once", "--at", "2026-12-02T10:00").stdout
    assert "1 unclear" in out
    (unclear,) = json.loads(run("replies", "--format", "json").stdout)
    assert "HW 8, HW 9" in unclear["detail"] and "say which" in unclear["detail"]
    assert [p.name for p in Path("inbox/done").iterdir()] == ["1.eml"]  # kept in replies, for the EDI lead

    second = reply_to(nudge, "HW 8 is green, HW 9 done - trained on Monday").replace(b"reply-1@", b"reply-2@")
    (Path("inbox") / "2.eml").write_bytes(second)
    assert "2 applied" in run("run", "--once", "--at", "2026-12-02T11:00").stdout
    hw8 = json.loads(run("show", "HW 8", "--format", "json").stdout)["history"]
    hw9 = json.loads(run("show", "HW 9", "--format", "json").stdout)["history"]
    assert [(h["new_status"], h["channel"]) for h in hw8] == [("green", "email")]
    assert [(h["new_status"], h["note"]) for h in hw9] == [("complete", "trained on Monday")]


def sent_of_kind(run: Chaser, kind: str) -> list[email.message.EmailMessage]:
    """The messages of ``kind`` the outbox folder wrote, oldest first."""
    box = json.loads(run("outbox", "--format", "json").stdout)
    ids = sorted(m["id"] for m in box if m["kind"] == kind and m["state"] == "sent")
    found = []
    for outbox_id in ids:
        path = next(p for p in Path("out").glob("*.eml") if p.name.split("-")[1] == f"{outbox_id:06d}")
        found.append(email.message_from_bytes(path.read_bytes(), policy=email.policy.default))
    return found


def test_an_applied_reply_is_confirmed_under_the_reply_and_an_out_of_office_is_not(run: Chaser) -> None:
    nudge, (ref,) = nudge_to(run, "sam@housing.example")
    Path("inbox").mkdir()
    (Path("inbox") / "ooo.eml").write_bytes(reply_to(
        nudge, "I am out of the office until 4 January 2027.", headers={"Auto-Submitted": "auto-replied"})
        .replace(b"reply-1@", b"ooo-1@"))
    (Path("inbox") / "reply.eml").write_bytes(reply_to(nudge, "Amber - survey delayed, new date 30/06/2027"))

    run("run", "--once", "--at", "2026-12-02T10:00")

    (confirmation,) = sent_of_kind(run, "confirmation")  # one: the out-of-office gets none
    assert confirmation["To"] == "Sam Ade <sam@housing.example>"
    assert confirmation["In-Reply-To"] == "<reply-1@mail.housing.example>"
    assert confirmation["References"] == "<reply-1@mail.housing.example>"
    assert confirmation["Subject"].startswith("RE: ")
    text = confirmation.get_body(("plain",)).get_content()
    assert "Chaser recorded your reply" in text and f"{ref}: Survey the temporary accommodation" in text
    assert "Status: Amber" in text and "New date: 30/06/2027" in text and "Note: survey delayed" in text
    assert "/answer/" in text  # a link to change it
    html = confirmation.get_body(("html",)).get_content()
    assert "Survey the temporary accommodation" in html and "Amber" in html
    # Nothing answers the confirmation if it comes back: it is from Chaser's own address.
    back = reply_to(nudge, "Green").replace(b"reply-1@", b"reply-9@").replace(
        b"From: Sam Ade <sam@housing.example>", b"From: chaser@localhost")
    (Path("inbox") / "back.eml").write_bytes(back)
    run("run", "--once", "--at", "2026-12-02T11:00")
    assert len(sent_of_kind(run, "confirmation")) == 1


def test_an_unclear_reply_tells_the_owner_which_refs_to_name(run: Chaser) -> None:
    nudge, refs = nudge_to(run, "priya@housing.example")
    Path("inbox").mkdir()
    (Path("inbox") / "1.eml").write_bytes(reply_to(nudge, "Green"))

    run("run", "--once", "--at", "2026-12-02T10:00")

    (told,) = sent_of_kind(run, "confirmation")
    text = told.get_body(("plain",)).get_content()
    assert "nothing was recorded" in text and "say which one this is about" in text
    assert 'Reply again naming each action, for example "HW 8 amber' in text
    assert "HW 8: Publish the allocations data" in text and "HW 9: Train the lettings team" in text
    assert text.count("/answer/") >= 2  # each action can be answered in one click


def test_an_unsubscribe_email_makes_reminders_one_weekly_summary_and_tells_the_lead(run: Chaser) -> None:
    nudge, (ref,) = nudge_to(run, "sam@housing.example")
    Path("inbox").mkdir()
    unsubscribe = EmailMessage()
    unsubscribe["From"], unsubscribe["To"], unsubscribe["Subject"] = "sam@housing.example", "chaser@localhost", "unsubscribe"
    unsubscribe["Message-ID"] = "<unsub-1@mail.housing.example>"
    unsubscribe.set_content("")
    (Path("inbox") / "unsubscribe.eml").write_bytes(unsubscribe.as_bytes())

    assert "1 unsubscribe" in run("run", "--once", "--at", "2026-12-02T10:00").stdout

    box = json.loads(run("outbox", "--format", "json").stdout)
    (notice,) = [m for m in box if m["kind"] == "notice"]
    assert notice["person"] == "lead@housing.example" and notice["state"] == "sent"
    # The next reminder for Sam waits for Monday's summary instead of going out at once.
    run("run", "--once", "--at", "2026-12-08T10:00")
    box = json.loads(run("outbox", "--format", "json").stdout)
    waiting = [m for m in box if m["person"] == "sam@housing.example" and m["state"] == "queued"]
    assert [m["refs"] for m in waiting] == [[ref]]
    assert waiting[0]["next_attempt_at"].startswith("2026-12-14T09:30")
    # The due-day reminder two days later joins the same summary instead of a second message.
    run("run", "--once", "--at", "2026-12-10T10:00")
    box = json.loads(run("outbox", "--format", "json").stdout)
    assert [m["id"] for m in box if m["person"] == "sam@housing.example" and m["state"] == "queued"] == [waiting[0]["id"]]
    summary = next(m for m in box if m["id"] == waiting[0]["id"])
    assert summary["refs"] == [ref] and summary["keys"] != waiting[0]["keys"]  # HW 7 once, with its newest reason
    run("run", "--once", "--at", "2026-12-14T10:00")
    box = json.loads(run("outbox", "--format", "json").stdout)
    assert next(m for m in box if m["id"] == waiting[0]["id"])["state"] == "sent"


def test_a_reply_that_cannot_be_applied_also_goes_to_the_edi_lead(run: Chaser) -> None:
    nudge, _ = nudge_to(run, "priya@housing.example")
    Path("inbox").mkdir()
    (Path("inbox") / "1.eml").write_bytes(reply_to(nudge, "Green"))

    run("run", "--once", "--at", "2026-12-02T10:00")

    (notice,) = sent_of_kind(run, "notice")
    assert notice["To"] == "Lee Lead <lead@housing.example>"
    assert notice["Subject"].startswith("Chaser: A reply by email from priya@housing.example could not be recorded")
    text = notice.get_body(("plain",)).get_content()
    assert "say which one this is about" in text and "chaser replies --outcome unclear" in text
