"""The board digest's Teams card on its own: what it shows, that text from the plan or the
configuration stays inert, and that it stays within what a Workflows flow takes."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

from bot.channels.base import Envelope, Recipient
from bot.teams_digest import digest_card, message
from tests.bot.teams_webhook_server import MAX_BYTES, check
from tests.jobs.test_teams_digest import facts, shown, strings

NOW = dt.datetime(2026, 12, 1, 10, 0, tzinfo=dt.timezone.utc)
WORDS = ("Complete", "Green", "Amber", "Red", "Not started", "No update")


def view(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "board": "EDI Board", "month": "November 2026", "period_end": "30 November 2026", "plans": ["EDI Plan"],
        "total": 31, "counts": [{"word": w, "count": n} for w, n in zip(WORDS, (1, 2, 3, 1, 0, 24))],
        "changes": [{"ref": "CP1", "title": "Mentoring scheme", "from": "Green", "to": "Amber"}],
        "changes_count": 1, "overdue": 3, "due_next": 2, "not_answered": 1, "spotlight": "Career Progression",
        "emailed": True,
    }
    return {**base, **changes}


def card_of(digest: dict[str, Any]) -> dict[str, Any]:
    return digest_card(Envelope(7, "digest", Recipient(digest["board"], {"teams_workflow": "X"}), (), NOW,
                                digest=digest))


def test_the_card_reads_like_a_summary() -> None:
    card = card_of(view())
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.5" and "actions" not in card
    assert card["body"][0]["inlines"][0] == {"type": "TextRun", "text": "Highlight report for November 2026: EDI Board",
                                             "size": "Large", "weight": "Bolder"}
    assert facts(card) == dict(zip(WORDS, ("1", "2", "3", "1", "0", "24")))
    text = shown(card)
    assert "31 actions, as they stood at the end of 30 November 2026." in text
    assert "1 status change this month, 3 overdue, 2 due next month, 1 owner did not answer." in text
    assert "• CP1, Green to Amber: Mentoring scheme" in text
    assert "Spotlight this month: Career Progression" in text
    assert "The full report (PDF) went to the board's recipients by email." in text
    quiet = shown(card_of(view(changes=[], changes_count=0, spotlight=None, emailed=False)))
    assert "What changed" not in quiet and "Spotlight" not in quiet and "email" not in quiet


def test_names_from_the_configuration_are_inert_text_runs() -> None:
    hostile = "EDI <at>Board</at> **[x](https://evil.example)** <script>x</script>"
    card = card_of(view(board=hostile, spotlight='=HYPERLINK("https://evil.example")'))
    for needle in ("<at>Board</at>", "**[x](https://evil.example)**", "<script>", "=HYPERLINK("):
        places = {where for where, value in strings(card) if needle in value}
        assert places and all(w.endswith("RichTextBlock/TextRun.text") for w in places), (needle, places)


def test_long_titles_are_cut_and_the_card_stays_under_the_limit() -> None:
    moves = [{"ref": f"HW {n}", "title": "😀" * 5000, "from": "Green", "to": "Red"} for n in range(8)]
    card = card_of(view(board="Б" * 5000, changes=moves, changes_count=40))
    body = json.dumps(message(card), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert len(body) < 24_500 < MAX_BYTES and check("application/json", body) is None
    text = shown(card)
    listed = text.count("• HW ")
    assert 0 < listed <= 8 and f"…and {40 - listed} more in the full report." in text
    assert all(len(line) <= 400 for line in text.split("\n") if line.startswith("• "))
    few = shown(card_of(view(changes=moves[:1], changes_count=3, emailed=False)))
    assert "…and 2 more, not listed here to keep this message short." in few
