"""Reading reply emails: every fixture in tests/bot/fixtures/replies/ gives the outcome a
person reading it would see, and none is misread as a status."""
from __future__ import annotations

import datetime as dt
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

from bot.email_replies import read_answers, read_reply, to_replies

FIXTURES = Path(__file__).parent / "fixtures" / "replies"
RECEIVED = dt.datetime(2026, 12, 2, 10, 15, tzinfo=dt.timezone.utc)

# name: (auto_reply, [(ref, status, note contains, due_text)])
EXPECTED: dict[str, tuple[bool, list[tuple[str | None, str | None, str | None, str | None]]]] = {
    "outlook-desktop-amber": (False, [(None, "amber", "survey delayed", "30/06/2027")]),
    "outlook-web-red-banner": (False, [(None, "red", "gone into administration", None)]),
    "gmail-wrapped-on-wrote": (False, [(None, "green", "working group met", None)]),
    "apple-mail-complete": (False, [(None, "complete", "went to cabinet on 24 November", None)]),
    "iphone-green": (False, [(None, "green", None, None)]),
    "bottom-posted": (False, [(None, "amber", "consultation closes late", "28 February 2027")]),
    "signature-disclaimer": (False, [(None, "amber", "legal sign-off", "end of March 2027")]),
    "html-only-outlook": (False, [(None, "red", "funding bid was rejected", None)]),
    "html-only-gmail-blockquote": (False, [(None, "complete", "signed off at DMT", None)]),
    "base64-body": (False, [(None, "amber", "recruitment to the post has stalled", None)]),
    "quoted-printable-body": (False, [(None, "red", "we\u2019re looking again", "31/05/2027")]),
    "windows-1252": (False, [(None, "green", "caf\u00e9 pilot is running and the \u00a3500", None)]),
    "forwarded-by-pa": (False, [("HW 7", "amber", "on her behalf", "30 June 2027")]),
    "ooo-with-headers": (True, [(None, None, "out of the office", None)]),
    "ooo-subject-only": (True, [(None, None, "annual leave", None)]),
    "ooo-no-headers": (True, [(None, None, "annual leave", None)]),
    "ooo-x-autoreply": (True, [(None, None, "get back to you", None)]),
    "precedence-bulk": (True, [(None, None, "received", None)]),
    "status-only-in-quote": (False, [(None, None, "after the board next week", None)]),
    "status-only-in-gmail-quote": (False, [(None, None, "talk about this on Thursday", None)]),
    "not-complete-yet": (False, [(None, None, "Not complete yet", None)]),
    "multiple-refs": (False, [("HW 7", "green", None, None), ("HW 9", "complete", "signed off on Monday", None)]),
    "multiple-refs-lines": (False, [("HW 7", "amber", "new date", "31/03/2027"), ("HW 9", "complete", None, None),
                                    ("HW 12", "red", "no budget", None)]),
    "letter-alone": (False, [(None, "amber", "survey delayed by the weather", None)]),
    "german-outlook": (False, [(None, None, "alles im Plan", None)]),
    "green-space-note": (False, [(None, None, "green space survey", None)]),
    "interleaved-reply": (False, [(None, "red", "lead officer has left", None)]),
    "ref-in-subject-no-thread": (False, [(None, "amber", "delayed by the elections", None)]),
    "end-of-june": (False, [(None, "amber", "will not arrive", "the end of June 2027")]),
    "done-by-friday": (False, [(None, None, "done by Friday", None)]),
}
QUOTED_WORDS = ("Last status", "Reply with", "Subject:", "wrote:", "Von:", "confidential", "Kind regards",
                "Sent from my", "[EXTERNAL]")


def load(name: str):
    with (FIXTURES / f"{name}.eml").open("rb") as handle:
        return BytesParser(policy=policy.default).parse(handle)


def test_there_are_at_least_25_fixtures_each_with_an_expected_outcome() -> None:
    names = {path.stem for path in FIXTURES.glob("*.eml")}
    assert len(names) >= 25
    assert names == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_fixture_reads_as_a_person_would(name: str) -> None:
    parsed = read_reply(load(name), received_at=RECEIVED)
    auto, answers = EXPECTED[name]
    assert parsed.auto_reply is auto
    if auto:
        return  # nothing else of an out-of-office is recorded
    got = [(a.ref, a.status, a.due_text) for a in parsed.answers]
    assert got == [(ref, status, due) for ref, status, _, due in answers]
    for answer, (_, _, note, _) in zip(parsed.answers, answers):
        if note is None:
            assert answer.note is None
        else:
            assert answer.note is not None and note in answer.note
    for word in QUOTED_WORDS:  # nothing of the quoted original, banner or signature is read
        assert word not in parsed.text


def test_it_reads_the_ids_of_the_message_answered_newest_first() -> None:
    parsed = read_reply(load("outlook-desktop-amber"), received_at=RECEIVED)
    assert parsed.sender == "jo.bloggs@example.gov.uk"
    assert parsed.message_id == "outlook-desktop-amber@mail.example.gov.uk"
    assert parsed.thread_ids == ("nudge-42@chaser.example.gov.uk", "nudge-40@chaser.example.gov.uk")
    assert parsed.subject_refs == ("HW 7",)


def test_a_reply_with_no_thread_names_its_action_by_the_subject_ref() -> None:
    parsed = read_reply(load("ref-in-subject-no-thread"), received_at=RECEIVED)
    assert parsed.thread_ids == ()
    (reply,) = to_replies(parsed, received_at=RECEIVED, outbox_id=None, raw=parsed.text)
    assert reply.refs == ("HW 7",) and reply.status == "amber" and reply.via == "email"


def test_answers_about_several_refs_become_one_reply_each_with_its_own_external_id() -> None:
    parsed = read_reply(load("multiple-refs"), received_at=RECEIVED)
    replies = to_replies(parsed, received_at=RECEIVED, outbox_id=42, raw=None)
    assert [(r.refs, r.status, r.external_id) for r in replies] == [
        (("HW 7",), "green", "multiple-refs@mail.example.gov.uk#HW 7"),
        (("HW 9",), "complete", "multiple-refs@mail.example.gov.uk#HW 9"),
    ]


def test_a_reply_to_our_message_naming_no_ref_leaves_the_action_to_the_message() -> None:
    parsed = read_reply(load("outlook-desktop-amber"), received_at=RECEIVED)
    (reply,) = to_replies(parsed, received_at=RECEIVED, outbox_id=42, raw=None)
    assert reply.refs == () and reply.outbox_id == 42
    assert reply.external_id == "outlook-desktop-amber@mail.example.gov.uk"


def test_only_refs_the_tracker_knows_are_read_as_refs() -> None:
    (answer,) = read_answers("Green, COVID 19 recovery money is in", RECEIVED.date(), is_ref=lambda r: r == "HW 7")
    assert answer.ref is None and answer.status == "green"


@pytest.mark.parametrize("text", [
    "Not complete yet", "It is not complete yet, sorry", "We are nowhere near done", "Isn't on track",
    "The green space survey is delayed", "I will have it done by March", "Reduced budget",
    "Was amber, was red", "Green, or red if the bid fails",
])
def test_words_that_are_not_an_answer_give_no_status(text: str) -> None:
    (answer,) = read_answers(text, RECEIVED.date())
    assert answer.status is None


@pytest.mark.parametrize(("text", "status"), [
    ("On track", "green"), ("on track, thanks", "green"), ("At risk - staff shortage", "amber"),
    ("Off track", "red"), ("Status: amber", "amber"), ("It's now complete", "complete"), ("All done.", "complete"),
    ("R", "red"), ("C", "complete"), ("g", "green"), ("Was amber, now green", "green"),
])
def test_status_words_and_letters_alone_on_a_line(text: str, status: str) -> None:
    (answer,) = read_answers(text, RECEIVED.date())
    assert answer.status == status


@pytest.mark.parametrize(("text", "due"), [
    ("new date 30/06/2027", "30/06/2027"), ("by 30 June 2027", "30 June 2027"), ("by end of June", "end of June 2027"),
    ("revised to 30 June", "30 June 2027"), ("we met on 3/11/2026", None), ("on 24 November it went to cabinet", None),
])
def test_it_reads_a_new_date_in_uk_forms(text: str, due: str | None) -> None:
    (answer,) = read_answers(text, RECEIVED.date())
    assert answer.due_text == due


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_the_fast_compat32_parse_the_inbox_uses_reads_the_same(name: str) -> None:
    data = (FIXTURES / f"{name}.eml").read_bytes()
    fast = read_reply(BytesParser(policy=policy.compat32).parsebytes(data), received_at=RECEIVED)
    modern = read_reply(load(name), received_at=RECEIVED)
    assert (fast.sender, fast.subject, fast.thread_ids, fast.auto_reply, fast.answers) == \
        (modern.sender, modern.subject, modern.thread_ids, modern.auto_reply, modern.answers)


def test_the_status_word_that_leads_the_reply_is_not_repeated_in_the_note() -> None:
    (answer,) = read_answers("Status: amber - survey delayed", RECEIVED.date())
    assert (answer.status, answer.note) == ("amber", "survey delayed")


@pytest.mark.parametrize("body", [
    "On track\n\nOn Tue, 1 Dec 2026 at 09:00, Chaser <chaser@example.gov.uk> wrote:\n> Last status: Red\n",
    "On track.\nOn Tue, 1 Dec 2026 at 09:00, Chaser <chaser@example.gov.uk>\nwrote:\n> Last status: Red\n",
])
def test_a_reply_starting_on_track_is_not_taken_for_the_quote_header(body: str) -> None:
    message = BytesParser(policy=policy.default).parsebytes(
        b"From: jo@example.gov.uk\nSubject: Re: HW 7\nMessage-ID: <x@example.gov.uk>\n\n" + body.encode())
    (answer,) = read_reply(message, received_at=RECEIVED).answers
    assert answer.status == "green"


def test_the_inbox_folder_comes_from_the_email_table_and_a_bad_one_names_the_key() -> None:
    from pathlib import Path

    import pytest

    from bot.inbox import inbox_folder
    from chaser.config import parse_config
    from chaser.errors import ConfigError

    assert inbox_folder(parse_config({}, "test")) == Path("inbox")
    assert inbox_folder(parse_config({"channels": {"email": {"inbox_folder": "replies"}}}, "test")) == Path("replies")
    with pytest.raises(ConfigError, match="'channels.email.inbox_folder' must be a folder name"):
        parse_config({"channels": {"order": ["email"], "email": {"enabled": True, "from": "chaser@c.example",
                                                                  "inbox_folder": 3}}}, "test")
