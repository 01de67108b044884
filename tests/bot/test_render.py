"""render(): subjects, bodies, escaping per destination, and Slack Block Kit within limits."""
from __future__ import annotations

import datetime as dt
import json

import pytest

from bot.render import (
    BLOCKS_MAX,
    BUTTON_TEXT_MAX,
    SECTION_TEXT_MAX,
    Rendered,
    chat_blocks,
    environment,
    mrkdwn_escape,
    phrase_reason,
    render,
    truncate_mrkdwn,
)
from bot.channels.base import Link
from storage.reasons import Why
from tests.bot import make_envelope, make_item, make_links


def three_items() -> tuple:
    return (
        make_item("HW 3", action_id=3),
        make_item("HW 7", action_id=7, title="Run race equality training", rule="overdue",
                  why=Why("overdue", due=dt.date(2026, 4, 27), working_days=-3),
                  due=dt.date(2026, 4, 27), due_text="27/04/2026", status=None, links=make_links(7)),
        make_item("R1.A-2", action_id=9, title="Agree the pledge", rule="stale",
                  why=Why("stale", days_since_update=40, recurring=True),
                  due=None, due_text="Q1 26/27", status="green", links=make_links(9)),
    )


def test_single_item_nudge() -> None:
    rendered = render(make_envelope())
    assert rendered.subject == "Update needed: HW 3 due in 2 working days"
    assert rendered.text.startswith("Hello Priya Shah,\n")
    for part in (rendered.text, rendered.html, rendered.chat):
        assert "HW 3" in part
        assert "Publish the gender pay gap report" in part
        assert "Due in 2 working days (Thu 30 April 2026)." in part
        assert "April 2026" in part
        assert "Amber" in part
    for link in make_links():
        assert f"{link.label}: {link.url}" in rendered.text
        assert f'href="{link.url}"' in rendered.html
        assert f"<{link.url}|{link.label}>" in rendered.chat
    assert "with your answer already chosen" in rendered.text
    assert "on behalf of" not in rendered.text


def test_three_item_nudge() -> None:
    rendered = render(make_envelope(*three_items()))
    assert rendered.subject == "3 actions need your update"
    assert rendered.text.startswith("Hello Priya Shah,\n")
    for ref, reason, due_text in (
        ("HW 3", "Due in 2 working days (Thu 30 April 2026).", "Due: April 2026"),
        ("HW 7", "Overdue by 3 working days: it was due Mon 27 April 2026.", "Due: 27/04/2026"),
        ("R1.A-2", "No update for 40 days (recurring action): how is it going?", "Due: Q1 26/27"),
    ):
        assert ref in rendered.text and ref in rendered.html and ref in rendered.chat
        assert reason in rendered.text and reason in rendered.html
        assert due_text in rendered.text
    assert "Status: not reported yet" in rendered.text
    assert rendered.text.count("Green: https://") == 3
    assert len(rendered.chat_items) == 3


MEETING = dt.date(2027, 1, 5)
DUE = dt.date(2026, 12, 18)


@pytest.mark.parametrize(("why", "sentence", "subject"), [
    (Why("before_due", due=DUE, working_days=10), "Due in 10 working days (Fri 18 December 2026).",
     "Update needed: HW 3 due in 10 working days"),
    (Why("before_due", due=DUE, working_days=1), "Due in 1 working day (Fri 18 December 2026).",
     "Update needed: HW 3 due in 1 working day"),
    (Why("due", due=DUE, working_days=0), "Due today (Fri 18 December 2026).", "Update needed: HW 3 due today"),
    (Why("due", due=DUE, working_days=-2), "Overdue by 2 working days: it was due Fri 18 December 2026.",
     "Update needed: HW 3 overdue by 2 working days"),
    (Why("overdue", due=DUE, working_days=-1), "Overdue by 1 working day: it was due Fri 18 December 2026.",
     "Update needed: HW 3 overdue by 1 working day"),
    (Why("escalation", due=DUE, working_days=-12),
     "Escalated: 12 working days overdue (due Fri 18 December 2026) and not complete.",
     "Update needed: HW 3 escalated: 12 working days overdue"),
    (Why("stale", days_since_update=43, recurring=True), "No update for 43 days (recurring action): how is it going?",
     "Update needed: HW 3 has had no update for 43 days"),
    (Why("stale", days_since_update=1, never_updated=True),
     "No update for 1 day since it was added (no due date): how is it going?",
     "Update needed: HW 3 has had no update for 1 day"),
    (Why("review_request", board="EDI Board", meeting=MEETING), "EDI Board meets on Tue 5 January 2027: please send an update.",
     "Update needed: HW 3 for EDI Board on Tue 5 January 2027"),
    (Why("review_chase", board="EDI Board", meeting=MEETING),
     "Reminder: EDI Board meets on Tue 5 January 2027 and this action has no update yet.",
     "Update needed: HW 3 for EDI Board on Tue 5 January 2027"),
    (Why("review_missing", board="CSMT", meeting=MEETING, owners=("Priya Shah", "Sam Ade"),
         away=(("Sam Ade", dt.date(2027, 1, 8)),)),
     "No update for CSMT on Tue 5 January 2027 (owners: Priya Shah, Sam Ade). Sam Ade is away until Fri 8 January 2027.",
     "Update needed: HW 3 missing its review for CSMT"),
    (Why("review_missing", board="CSMT", meeting=MEETING), "No update for CSMT on Tue 5 January 2027 (owners: nobody).",
     "Update needed: HW 3 missing its review for CSMT"),
    (Why("due", due=DUE, working_days=0, unowned=True, roles=("CSEDIWG", "Head of HR")),
     "Due today (Fri 18 December 2026). Nobody in the people directory holds: CSEDIWG, Head of HR.",
     "Update needed: HW 3 due today"),
    (Why("before_due", due=DUE, working_days=2, unowned=True),
     "Due in 2 working days (Fri 18 December 2026). The plan names no owner for it.",
     "Update needed: HW 3 due in 2 working days"),
])
def test_every_reason_is_phrased_in_the_body_and_the_subject(why: Why, sentence: str, subject: str) -> None:
    assert phrase_reason(why) == sentence
    rendered = render(make_envelope(make_item(rule=why.rule, why=why)))
    assert rendered.subject == subject
    assert f"Why now: {sentence}" in rendered.text
    assert sentence in rendered.chat
    assert f">{sentence}</p>" in rendered.html


def test_a_reason_is_escaped_for_where_it_goes() -> None:
    why = Why("review_request", board="EDI <Board> & Partners", meeting=MEETING)
    rendered = render(make_envelope(make_item(rule=why.rule, why=why)))
    assert "EDI <Board> & Partners meets on Tue 5 January 2027" in rendered.text
    assert "EDI &lt;Board&gt; &amp; Partners meets on" in rendered.html and "<Board>" not in rendered.html
    assert "EDI &lt;Board&gt; &amp; Partners meets on" in rendered.chat


def test_subject_headline_falls_back_to_the_rule_when_it_would_be_long() -> None:
    why = Why("review_request", board="Children's Services Improvement and Transformation Board", meeting=MEETING)
    assert render(make_envelope(make_item(rule=why.rule, why=why))).subject == "Update needed: HW 3 due for review"


def test_a_message_queued_before_reasons_were_data_shows_its_sentence_as_written() -> None:
    # Outbox rows written by an older sweep carry only the sentence: it is shown unchanged, and
    # the subject names the rule instead of reading words back out of it.
    old = "Overdue by 3 working days: it was due Mon 27 April 2026."
    assert phrase_reason(old) == old
    rendered = render(make_envelope(make_item(rule="overdue", why=old)))
    assert rendered.subject == "Update needed: HW 3 overdue"
    assert f"Why now: {old}" in rendered.text and old in rendered.html and old in rendered.chat


def test_templates_write_days_with_the_day_filter() -> None:
    template = environment().from_string("{{ d|day }} / {{ d|day(weekday=False) }} / {{ d|day(year=False) }}")
    assert template.render(d=dt.date(2026, 4, 3)) == "Fri 3 April 2026 / 3 April 2026 / Fri 3 April"


def test_due_date_without_text_is_written_out() -> None:
    rendered = render(make_envelope(make_item(due_text=None, due=dt.date(2026, 4, 30))))
    assert "Due: Thu 30 April 2026" in rendered.text


def test_html_is_a_document_and_escapes_user_text() -> None:
    item = make_item(title="Fix <script>alert(1)</script> & more", owner="<b>Boss</b>")
    rendered = render(make_envelope(item, recipient_name="Eve <script>x</script>"))
    html = rendered.html
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "<script>" not in html
    assert "Fix &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html
    assert "Hello Eve &lt;script&gt;x&lt;/script&gt;," in html
    assert "&lt;b&gt;Boss&lt;/b&gt;" in html
    # plain text is not HTML: it keeps the characters as written
    assert "Fix <script>alert(1)</script> & more" in rendered.text


def test_mrkdwn_escapes_control_characters() -> None:
    assert mrkdwn_escape("a & <!channel> > b") == "a &amp; &lt;!channel&gt; &gt; b"
    item = make_item(title="Tell <!channel> & <@U123>")
    rendered = render(make_envelope(item, recipient_name="Sam & <!here>"))
    assert "<!channel>" not in rendered.chat and "<!here>" not in rendered.chat
    assert "Tell &lt;!channel&gt; &amp; &lt;@U123&gt;" in rendered.chat
    assert "Hello Sam &amp; &lt;!here&gt;" in rendered.chat
    blocks_text = json.dumps(chat_blocks(make_envelope(item), render(make_envelope(item))))
    assert "<!channel>" not in blocks_text


def test_owner_is_named_on_behalf_of() -> None:
    item = make_item(owner="Priya Shah (HR Business Partner)")
    rendered = render(make_envelope(item, recipient_name="Jo Bloggs"))
    expected = "on behalf of Priya Shah (HR Business Partner)"
    assert expected in rendered.text
    assert expected in rendered.html
    assert "On behalf of Priya Shah (HR Business Partner)" in rendered.chat


def test_lead_list_renders_items_and_notes() -> None:
    notes = ("Sam Ade is away until 3 December; their nudges wait.", "Nobody holds <Head of HR>.")
    items = tuple(make_item(f"HW {n}", owner=f"Owner {n}") for n in range(1, 5))
    rendered = render(make_envelope(*items, kind="lead_list", recipient_name="Dana Lead", notes=notes))
    assert rendered.subject == "EDI lead: 4 actions without an answer"
    assert rendered.text.startswith("Hello Dana Lead,\n")
    for note in notes:
        assert note in rendered.text
    assert "Nobody holds &lt;Head of HR&gt;." in rendered.html
    assert "Nobody holds &lt;Head of HR&gt;." in rendered.chat
    assert "Sam Ade is away until 3 December" in rendered.chat_outro
    assert "Owner: Owner 3" in rendered.text
    assert "on behalf of Owner 3" in rendered.text


def test_lead_list_subject_singular() -> None:
    rendered = render(make_envelope(make_item(), kind="lead_list"))
    assert rendered.subject == "EDI lead: 1 action without an answer"


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="board_digest"):
        render(make_envelope(kind="board_digest"))


def test_block_kit_buttons_carry_links_and_unique_action_ids() -> None:
    envelope = make_envelope(*three_items())
    blocks = chat_blocks(envelope, render(envelope))
    actions = [block for block in blocks if block["type"] == "actions"]
    assert len(actions) == 3
    buttons = [button for block in actions for button in block["elements"]]
    assert len(buttons) == 15
    assert all(button["type"] == "button" for button in buttons)
    assert len({button["action_id"] for button in buttons}) == 15
    assert len({block["block_id"] for block in blocks}) == len(blocks)
    for item, block in zip(envelope.items, actions):
        assert [button["url"] for button in block["elements"]] == [link.url for link in item.links]
        # A click says what it answers: the message, the action and the status.
        assert [json.loads(button["value"]) for button in block["elements"]] == [
            {"o": 42, "a": item.action_id, "s": link.status} for link in item.links]
        assert [button["text"]["text"] for button in block["elements"]] == [link.label for link in item.links]
    assert [item.action_id for item in envelope.items] == [3, 7, 9]
    sections = [block for block in blocks if block["type"] == "section"]
    assert all(section["text"]["type"] == "mrkdwn" for section in sections)
    assert "HW 7" in sections[2]["text"]["text"]
    json.dumps(blocks)  # plain JSON


def test_block_kit_truncates_long_text_within_slack_limits() -> None:
    long_title = "Very long <title> & " * 400   # 8000 characters, escapes grow it further
    long_label = "Tell us more about this action " * 5
    item = make_item(title=long_title, links=(Link(long_label, "https://chaser.example/answer/x"),))
    envelope = make_envelope(item)
    blocks = chat_blocks(envelope, render(envelope))
    for block in blocks:
        if block["type"] == "section":
            text = block["text"]["text"]
            assert 0 < len(text) <= SECTION_TEXT_MAX
    section = blocks[1]["text"]["text"]
    assert section.endswith("…")
    assert section.startswith("*HW 3: Very long &lt;title&gt; &amp;")
    button = blocks[2]["elements"][0]
    assert len(button["text"]["text"]) <= BUTTON_TEXT_MAX
    assert button["text"]["text"].endswith("…")
    assert button["url"] == "https://chaser.example/answer/x"


def test_truncate_never_cuts_an_entity_or_a_link() -> None:
    text = "x" * 2995 + "&amp;yyyy"
    assert truncate_mrkdwn(text, 3000) == "x" * 2995 + "…"
    text = "x" * 2990 + "<https://example.org/abc|Green>"
    assert truncate_mrkdwn(text, 3000) == "x" * 2990 + "…"


def test_block_kit_stays_within_fifty_blocks() -> None:
    items = tuple(make_item(f"A{n}") for n in range(40))
    envelope = make_envelope(*items, kind="lead_list", notes=("One note.",))
    blocks = chat_blocks(envelope, render(envelope))
    assert len(blocks) <= BLOCKS_MAX
    texts = [block["text"]["text"] for block in blocks if block["type"] == "section"]
    assert any("more actions" in text for text in texts)
    assert "One note." in texts[-1]


def test_chat_blocks_needs_a_matching_render() -> None:
    with pytest.raises(ValueError):
        chat_blocks(make_envelope(), Rendered(subject="s", text="t", html="h", chat="c"))


def test_a_cut_list_says_where_the_rest_is_and_never_sends_the_lead_to_themselves() -> None:
    from dataclasses import replace

    owner = render(replace(make_envelope(), more=44))
    assert owner.subject == "45 actions need your update"
    assert "…and 44 more actions need your update" in owner.text and "ask the EDI lead for the full list" in owner.text
    lead = render(replace(make_envelope(), more=44, to_edi_lead=True))
    assert "chaser actions lists every action with its status" in lead.text
    assert "<code>chaser actions</code> lists every action" in lead.html and "ask the EDI lead" not in lead.text


def test_a_message_updated_in_place_says_what_was_recorded_by_whom_escaped() -> None:
    from bot.channels.base import Recorded

    answered = Recorded(status="amber", note="Survey <!channel> delayed", due_text="30/06/2027", by="Priya <@U1>",
                        via="email", at=dt.datetime(2026, 12, 3, 11, 0, tzinfo=dt.timezone.utc))
    envelope = make_envelope(make_item(recorded=answered), make_item("HW 4"))
    text = render(envelope, chat=True).chat
    assert ("*Answered Thu 3 December 2026* by Priya &lt;@U1&gt; (email): Amber, new date 30/06/2027 "
            "— “Survey &lt;!channel&gt; delayed”") in text
    assert text.count("Answered") == 1  # HW 4 was not answered
