"""The reminder commands as an EDI lead and a monitoring probe use them."""
from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaser.cli import main
from tests.conftest import LAMBETH, Chaser
from tests.importers.makers import write_csv


@pytest.fixture
def run(chaser: Chaser, tmp_path: Path) -> Chaser:
    Path("chaser.toml").write_text(
        'edi_lead = "lead@lambeth.example"\n[channels.outbox_folder]\nfolder = "out"\n'
    )
    invoke = chaser
    invoke("import", str(LAMBETH))
    people = write_csv(tmp_path / "people.csv", [
        ["name", "email", "roles", "manager", "slack_id"],
        ["Priya Shah", "priya@lambeth.example", "HR Business Partner", "dana@lambeth.example", "U024BE7LH"],
        ["Dana Cole", "dana@lambeth.example", "", "", ""],
        ["Sam Ade", "sam@lambeth.example", "", "", ""],
        ["Lee Lead", "lead@lambeth.example", "", "", ""],
    ])
    invoke("people", "import", str(people))
    return invoke


def test_preview_lists_what_would_be_sent_without_sending(run) -> None:  # type: ignore[no-untyped-def]
    items = json.loads(run("preview", "--at", "2023-04-17T10:00", "--format", "json").stdout)
    cp1 = [i for i in items if i["ref"] == "CP1"]
    key = cp1[0]["key"]
    assert cp1 == [{
        "ref": "CP1", "person": "priya@lambeth.example", "name": "Priya Shah", "channel": "outbox_folder",
        "rule": "before_due", "key": key, "reason": "Due in 9 working days (Sun 30 April 2023).",
        "why": {"rule": "before_due", "due": "2023-04-30", "working_days": 9}, "on_behalf_of": None,
    }]
    # The key is the nudge's identity: rule, action, whose (the owner), occurrence (today's catch-up).
    rule, action_id, whose, occurrence = key.split(":")
    assert (rule, occurrence) == ("before_due", "2023-04-17") and action_id.isdigit() and whose.isdigit()
    assert {i["rule"] for i in items} <= {"before_due", "due", "overdue", "escalation", "stale"}
    assert json.loads(run("outbox", "--format", "json").stdout) == []
    assert not Path("out").exists()
    # What the preview listed is exactly what a run at that time then sends, key for key.
    run("run", "--once", "--at", "2023-04-17T10:00")
    sent = json.loads(run("outbox", "--format", "json").stdout)
    assert sorted(k for m in sent for k in m["keys"]) == sorted(i["key"] for i in items)
    assert key in next(m["keys"] for m in sent if m["person"] == "priya@lambeth.example")


def test_run_once_writes_real_emails_and_a_second_run_sends_nothing(run) -> None:  # type: ignore[no-untyped-def]
    out = run("run", "--once", "--at", "2023-04-17T10:00").stdout
    assert "Sent 3, failed 0, parked 0." in out and "Messages are in" in out
    files = sorted(Path("out").glob("*.eml"))
    # Every message is an email; Priya, who has a Slack id, also gets the chat-shaped .json.
    assert len(files) == 3 and [p.name.split("-", 2)[2] for p in Path("out").glob("*.json")] == ["priya-shah.json"]
    priya = [f for f in files if "priya" in f.name][0]
    message = email.message_from_bytes(priya.read_bytes(), policy=email.policy.default)
    assert message["To"] == "Priya Shah <priya@lambeth.example>"
    assert message.get_body(("plain",)).get_content().startswith("Hello Priya Shah")
    assert message.get_body(("html",)) is not None
    box = json.loads(run("outbox", "--format", "json").stdout)
    assert [m["state"] for m in box] == ["sent"] * 3
    assert all(set(m) >= {"id", "person", "channel", "state", "keys", "refs"} for m in box)
    assert "CP1" in [r for m in box if m["person"] == "priya@lambeth.example" for r in m["refs"]]
    again = run("run", "--once", "--at", "2023-04-17T10:00").stdout
    assert "0 nudge(s) in 0 message(s)" in again


def test_status_is_healthy_after_a_sweep_and_exits_1_when_sweeps_stop(run) -> None:  # type: ignore[no-untyped-def]
    assert run("status", expect=1).stdout.strip().endswith("problem: no sweep has run yet: is 'chaser run' running?")
    run("run", "--once", "--at", "2023-04-17T10:00")
    ok = json.loads(run("status", "--at", "2023-04-17T10:01", "--format", "json").stdout)
    assert ok["healthy"] and ok["last_sweep"]["nudges_planned"] > 0 and ok["outbox"]["sent"] == 3
    late = json.loads(run("status", "--at", "2023-04-17T10:04", "--format", "json", expect=1).stdout)
    assert late["problems"] == ["the last sweep was 240 s ago (more than 3 × 60 s)"]


def test_a_message_waiting_over_an_hour_makes_status_fail(run) -> None:  # type: ignore[no-untyped-def]
    Path("out").write_text("a file where the folder should be")  # the channel cannot write: it retries
    result = run("run", "--once", "--at", "2023-04-17T10:00", expect=1)
    assert "failed 3" in result.stdout
    assert "3 message(s) could not be sent" in result.stderr  # cron sees a failed run
    run("run", "--once", "--at", "2023-04-17T11:04", expect=1)
    late = json.loads(run("status", "--at", "2023-04-17T11:05", "--format", "json", expect=1).stdout)
    assert late["problems"][0] == "a message has waited 65 minutes to be sent"
    assert late["problems"][1].startswith("message 1 to ") and "has been failing for 65 minutes (2 attempt(s)): " \
        "outbox_folder: [Errno 20] Not a directory" in late["problems"][1]
    assert len(late["problems"]) == 4 and late["outbox"]["failed"] == 3


def test_parked_messages_make_status_fail_and_are_listed(run) -> None:  # type: ignore[no-untyped-def]
    Path("chaser.toml").write_text(
        'edi_lead = "lead@lambeth.example"\n[scheduler]\nmax_attempts = 1\n[channels.outbox_folder]\nfolder = "out"\n')
    Path("out").write_text("a file where the folder should be")
    assert "parked 3" in run("run", "--once", "--at", "2023-04-17T10:00", expect=1).stdout
    Path("out").unlink()
    # A fresh sweep five minutes later: the loop is alive, and yet nothing was delivered.
    run("run", "--once", "--at", "2023-04-17T10:05")
    status = run("status", "--at", "2023-04-17T10:06", expect=1).stdout
    assert status.startswith("Status at 2023-04-17 10:06 BST: PROBLEM")
    parked = [line for line in status.splitlines() if "is parked" in line]
    assert len(parked) == 3
    assert parked[0].startswith("  problem: message 1 to ") and parked[0].endswith(
        "is parked after 1 attempt(s): outbox_folder: [Errno 20] Not a directory: 'out/.tmp' (after fixing the cause: "
        "chaser outbox retry 1)")
    for outbox_id in (1, 2, 3):
        run("outbox", "retry", str(outbox_id))
    run("run", "--once", "--at", "2023-04-17T10:07")
    assert "OK" in run("status", "--at", "2023-04-17T10:08").stdout


def test_snooze_pause_and_resume_say_what_they_did(run) -> None:  # type: ignore[no-untyped-def]
    assert run("snooze", "CP1", "--until", "2023-05-31").stdout == "CP1 snoozed until 2023-05-31.\n"
    refs = {i["ref"] for i in json.loads(run("preview", "--at", "2023-04-17T10:00", "--format", "json").stdout)}
    assert "CP1" not in refs and "HW 10" in refs
    plan = "Children's Services EDI Strategy and Action Plan 2022–25"
    assert "get no nudges" in run("pause", plan).stdout
    assert json.loads(run("preview", "--at", "2023-04-17T10:00", "--format", "json").stdout) == []
    assert "checked at the next sweep" in run("resume", plan).stdout
    assert json.loads(run("preview", "--at", "2023-04-17T10:00", "--format", "json").stdout)
    assert run("pause", "No such plan", expect=2).stderr.startswith("chaser: no plan named 'No such plan'")


def test_people_away_sends_nudges_to_the_cover(run) -> None:  # type: ignore[no-untyped-def]
    out = run("people", "away", "priya@lambeth.example", "--until", "2023-04-30", "--cover", "sam@lambeth.example").stdout
    assert out.startswith("Priya Shah is away until 2023-04-30: nudges for their")
    items = json.loads(run("preview", "--at", "2023-04-17T10:00", "--format", "json").stdout)
    cp1 = [i for i in items if i["ref"] == "CP1"]
    assert [(i["person"], i["on_behalf_of"]) for i in cp1] == [("sam@lambeth.example", "priya@lambeth.example")]
    assert "back" in run("people", "away", "priya@lambeth.example", "--until", "back").stdout


def test_a_parked_message_can_be_retried_and_the_next_run_sends_it(run) -> None:  # type: ignore[no-untyped-def]
    Path("chaser.toml").write_text(
        'edi_lead = "lead@lambeth.example"\n[scheduler]\nmax_attempts = 1\n[channels.outbox_folder]\nfolder = "out"\n')
    Path("out").write_text("a file where the folder should be")  # every send fails, and one attempt parks it
    assert "parked 3" in run("run", "--once", "--at", "2023-04-17T10:00", expect=1).stdout
    parked = json.loads(run("outbox", "--state", "parked", "--format", "json").stdout)
    priya = next(m for m in parked if m["person"] == "priya@lambeth.example")
    assert (priya["attempts"], priya["sent_at"]) == (1, None) and "Not a directory" in priya["last_error"]
    Path("out").unlink()  # the cause is fixed; a parked message still waits for someone to retry it
    assert "Sent 0," in run("run", "--once", "--at", "2023-04-17T10:05").stdout

    # --at is when the retry happens: the message is due again from then, with fresh attempts.
    assert run("outbox", "retry", str(priya["id"]), "--at", "2023-04-17T10:10").stdout == (
        f"Queued outbox message {priya['id']} again.\n")
    (queued,) = json.loads(run("outbox", "--state", "queued", "--format", "json").stdout)
    assert (queued["id"], queued["attempts"], queued["last_error"]) == (priya["id"], 0, None)
    assert queued["next_attempt_at"] == "2023-04-17T09:10:00+00:00"  # 10:10 BST
    assert "Sent 0," in run("run", "--once", "--at", "2023-04-17T10:09").stdout  # not due yet
    assert "Sent 1, failed 0, parked 0." in run("run", "--once", "--at", "2023-04-17T10:10").stdout
    (sent,) = json.loads(run("outbox", "--state", "sent", "--format", "json").stdout)
    assert (sent["id"], sent["attempts"], sent["sent_at"]) == (priya["id"], 1, "2023-04-17T09:10:00+00:00")
    (eml,) = Path("out").glob("*.eml")  # the one message retried is the one written
    assert "priya" in eml.name
    assert len(json.loads(run("outbox", "--state", "parked", "--format", "json").stdout)) == 2


def test_only_parked_or_failed_messages_can_be_retried(run) -> None:  # type: ignore[no-untyped-def]
    assert run("outbox", "retry", "99", expect=2).stderr == "chaser: no outbox message 99\n"
    run("run", "--once", "--at", "2023-04-17T10:00")
    sent_id = json.loads(run("outbox", "--format", "json").stdout)[0]["id"]
    refused = run("outbox", "retry", str(sent_id), expect=2).stderr
    assert refused == f"chaser: outbox message {sent_id} is sent; only parked or failed messages can be retried\n"
    assert json.loads(run("outbox", "--format", "json").stdout)[0]["state"] == "sent"


def test_at_without_an_offset_is_local_time(run) -> None:  # type: ignore[no-untyped-def]
    summer = run("run", "--once", "--at", "2023-04-17T10:00").stdout
    assert "2023-04-17 10:00 BST" in summer


def test_a_far_placeholder_date_imports_as_open_ended_and_nothing_stops(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    plan = write_csv(tmp_path / "s.csv", [["Ref", "Action", "Owner", "Deadline"],
                                           ["S1", "Open-ended", "HR Business Partner", "31/12/9999"]])
    report = json.loads(run("import", str(plan), "--plan", "S", "--format", "json").stdout)
    assert report["warnings"] == [{"where": "row 2 (Due date)", "message": "'31/12/9999' is not a deadline (dates must "
                                   "fall between 1990 and 2100); read as no due date"}]
    (s1,) = [a for a in json.loads(run("actions", "--plan", "S", "--format", "json").stdout)]
    assert (s1["due"], s1["due_text"], s1["recurring"]) == (None, "31/12/9999", False)
    assert "Sent" in run("run", "--once", "--at", "2026-12-01T09:30").stdout
    run("preview", "--at", "2026-12-01T09:30")
    # Open-ended: with no due date it gets the stale update request once it has been quiet 30 days.
    later = json.loads(run("preview", "--at", "2031-01-06T09:30", "--format", "json").stdout)
    assert [i["rule"] for i in later if i["ref"] == "S1"] == ["stale"]


def test_an_update_to_a_date_outside_1990_to_2100_is_refused(run) -> None:  # type: ignore[no-untyped-def]
    refused = run("update", "CP1", "--due", "December 9999", "--by", "priya@lambeth.example", expect=2)
    assert refused.stderr == ("chaser: due date: 'December 9999' is not a deadline (dates must fall between 1990 "
                              "and 2100); read as no due date\n")
    assert json.loads(run("show", "CP1", "--format", "json").stdout)["history"] == []


@pytest.fixture
def short_lock_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    import storage.db

    monkeypatch.setattr(storage.db, "LOCK_WAIT_SECONDS", 0.3)  # the bounded wait, shortened for the test


def test_a_database_locked_by_another_process_is_one_line_after_a_bounded_wait(
        run, db_url: str, short_lock_wait: None) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import another_process_writing

    with another_process_writing(db_url, "status_updates, actions, outbox, nudge_keys"):
        for args in (("update", "CP1", "--status", "G", "--by", "priya@lambeth.example"),
                     ("run", "--once", "--at", "2023-04-17T10:00")):
            result = run(*args, expect=2)
            assert result.stderr == ("chaser: the database is busy: another process has held a lock for over 0.3 s; "
                                     "nothing was changed, try again in a minute\n")
    assert json.loads(run("show", "CP1", "--format", "json").stdout)["history"] == []


def test_a_read_only_database_is_one_line(run, db_url: str) -> None:  # type: ignore[no-untyped-def]
    if not db_url.startswith("sqlite"):
        pytest.skip("a read-only SQLite file; PostgreSQL's read-only transactions give the same line")
    read_only = "sqlite:///file:" + db_url.removeprefix("sqlite:///") + "?mode=ro&uri=true"
    result = CliRunner().invoke(main, ["update", "CP1", "--status", "G", "--by", "priya@lambeth.example"],
                                env={"CHASER_DATABASE_URL": read_only, "CHASER_SECRET_KEY": "k" * 32})
    assert result.exit_code == 2
    assert result.stderr == ("chaser: the database cannot be written (attempt to write a readonly database): check the "
                             "permissions of the database file and its folder, or the server's settings; nothing was "
                             "changed\n")
