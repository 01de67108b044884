"""Replies read from an IMAP mailbox (a real dovecot on loopback) by ``chaser run --once``: the
reply lands in the tracker and the mail in "Chaser done", never deleted."""
from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bot.imap_server import PASSWORD, USER, Dovecot
from tests.bot.smtp_server import Recorder, smtp_server
from tests.cli.test_inbox import nudge_to, reply_to, run  # noqa: F401 - run is the fixture
from tests.conftest import Chaser


@pytest.fixture
def smtp() -> Iterator[Recorder]:
    """A real SMTP server on loopback: where the confirmation of a reply by email goes."""
    recorder = Recorder()
    with smtp_server(recorder) as server:
        recorder.port = server.port  # type: ignore[attr-defined]
        yield recorder


@pytest.fixture
def imap_run(run: Chaser, mailbox: Dovecot, smtp: Recorder, monkeypatch: pytest.MonkeyPatch) -> Chaser:  # noqa: F811
    """The plan of tests/cli/test_inbox.py, nudges still sent into the outbox folder, replies read
    from the dovecot INBOX over STARTTLS with the login from the environment; the confirmation
    of a reply by email goes by email (SMTP on loopback)."""
    smtp_port = smtp.port  # type: ignore[attr-defined]
    Path("chaser.toml").write_text(f"""\
edi_lead = "lead@housing.example"
[channels]
order = ["outbox_folder", "email"]
[channels.outbox_folder]
folder = "out"
[channels.email]
enabled = true
from = "Chaser <chaser@housing.example>"
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
smtp_security = "none"
inbox = "imap"
imap_host = "127.0.0.1"
imap_port = {mailbox.port}
imap_security = "starttls"
imap_ca_file = "{mailbox.ca_file}"
""")
    monkeypatch.setenv("CHASER_IMAP_USER", USER)
    monkeypatch.setenv("CHASER_IMAP_PASSWORD", PASSWORD)
    return run


def test_a_reply_in_the_imap_inbox_is_read_into_the_tracker_and_moved_to_done(imap_run: Chaser, mailbox: Dovecot,
                                                                               smtp: Recorder) -> None:
    nudge, (ref,) = nudge_to(imap_run, "sam@housing.example")
    mailbox.deliver(reply_to(nudge, "Amber \u2014 survey delayed, new date 30/06/2027"))
    mailbox.deliver(b"this is not an email at all\r\n")

    out = imap_run("run", "--once", "--at", "2026-12-02T10:00")

    assert f"Read 1 reply(ies) from 2 mail(s) in IMAP 127.0.0.1:{mailbox.port} INBOX: 1 applied" in out.stdout
    assert "1 mail(s) could not be read as mail: moved to the failed folder." in out.stderr
    shown = json.loads(imap_run("show", ref, "--format", "json").stdout)
    (latest,) = shown["history"]
    assert (latest["new_status"], latest["channel"]) == ("amber", "email")
    assert latest["note"] == "survey delayed, new date 30/06/2027"
    assert "2027-06-30" in json.dumps(shown)
    (listed,) = json.loads(imap_run("replies", "--format", "json").stdout)
    assert (listed["via"], listed["outcome"], listed["refs"]) == ("email", "applied", [ref])
    assert mailbox.messages() == []
    ((done, flags),) = mailbox.messages("Chaser done")
    assert b"survey delayed" in done and "\\Seen" in flags
    ((failed, _),) = mailbox.messages("Chaser failed")
    assert failed.startswith(b"this is not an email")
    # Nothing left to read: the next run reads no mail and records nothing twice.
    assert "Read " not in imap_run("run", "--once", "--at", "2026-12-02T11:00").stdout
    assert len(json.loads(imap_run("show", ref, "--format", "json").stdout)["history"]) == 1
    # The owner was told by email what was recorded, under their reply.
    (told,) = smtp.received
    assert told.recipients == ["sam@housing.example"]
    confirmation = email.message_from_bytes(told.data, policy=email.policy.default)
    assert confirmation["In-Reply-To"] == "<reply-1@mail.housing.example>"
    assert "Status: Amber" in confirmation.get_body(("plain",)).get_content()


def test_a_refused_login_is_reported_and_the_run_still_sweeps_and_sends(imap_run: Chaser, mailbox: Dovecot,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHASER_IMAP_PASSWORD", "not-the-password")

    out = imap_run("run", "--once", "--at", "2026-12-01T10:00", expect=1)

    assert (f"Replies could not be read: the IMAP server 127.0.0.1:{mailbox.port} refused the login of {USER}"
            in out.stderr)
    assert "not-the-password" not in out.output + out.stderr
    assert "Sent 2" in out.stdout  # the nudges went out all the same
    assert list(Path("out").glob("*.eml"))
