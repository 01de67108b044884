"""A board digest's summary as an Adaptive Card, for the board's Teams Workflows webhook.

Built around ``message_templates/digest/teams.txt.j2`` (plain text) like the nudge cards of
:mod:`bot.teams_cards`, with the same rule: **every string from a plan or the configuration is
a ``TextRun``** (the board's name, action titles, the spotlight), so markdown, links and
``<at>`` mentions in them are shown as typed. Chaser's own words (the "What changed" heading,
"…and N more") are ``TextBlock``\\ s; the counts by status are a ``FactSet`` of the six fixed
status words and their numbers.

The card, top to bottom: the template's title line (large, bold) and the line under it, the
counts by status, the rest of the intro (how many moved, are overdue, fall due next month, did
not answer), "What changed" with one line per status move (at most
``jobs.digest_send.CHANGES_LISTED``, each cut to :data:`CHANGE_MAX` characters), then the
spotlight and, when the board has email recipients, that the full report went by email. No
buttons: a board reads it, nobody answers it.

Teams refuses a message over about 28 KB; the card stays under
:data:`bot.teams_cards.CARD_MAX_BYTES` by listing fewer moves ("…and N more in the full
report") — the headlines are always whole.
"""
from __future__ import annotations

from typing import Any

import microsoft_teams.cards as ac

from bot.channels.base import Envelope
from bot.render import Rendered, plural, render, truncate_plain
from bot.teams_cards import CARD_CONTENT_TYPE, CARD_MAX_BYTES, card_json, size, text_runs, words

CHANGE_MAX = 400  # one status move's line: a long title is cut, the list stays readable
TITLE_MAX = 300
BULLET = "• "


def message(card: dict[str, Any]) -> dict[str, Any]:
    """What the Workflows trigger "When a Teams webhook request is received" takes: a message
    activity with the card as its one attachment (the flow posts ``attachments[0].content``)."""
    return {"type": "message",
            "attachments": [{"contentType": CARD_CONTENT_TYPE, "contentUrl": None, "content": card}]}


def _title(text: str) -> ac.RichTextBlock:
    return ac.RichTextBlock(inlines=[ac.TextRun(text=truncate_plain(text, TITLE_MAX), weight="Bolder",
                                                size="Large")])


def _counts(digest: dict[str, Any]) -> ac.FactSet:
    """The six status words (jobs.digest.COUNT_LABELS: fixed, never user text) and their counts."""
    return ac.FactSet(facts=[ac.Fact(title=str(c["word"]), value=f"{int(c['count']):,}") for c in digest["counts"]],
                      spacing="Small")


def _change_lines(text: str) -> list[str]:
    """One line per status move of the template's ``changes``: a line that does not start a
    move (a title with a line break in it) is joined onto the move it belongs to."""
    lines: list[str] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        if line.startswith(BULLET) or not lines:
            lines.append(" ".join(line.split()))
        else:
            lines[-1] += " " + " ".join(line.split())
    return [truncate_plain(line, CHANGE_MAX) for line in lines]


def _more(count: int, emailed: bool) -> str:
    if emailed:
        return f"…and {plural(count, 'more', 'more')} in the full report."
    return f"…and {plural(count, 'more', 'more')}, not listed here to keep this message short."


def digest_card(envelope: Envelope, rendered: Rendered | None = None) -> dict[str, Any]:
    """The Adaptive Card 1.5 of ``envelope``'s digest (``envelope.digest``: the view of
    ``jobs.digest_send.mail_view`` plus ``emailed``), under ``CARD_MAX_BYTES`` whatever it holds."""
    digest = envelope.digest
    if digest is None:
        raise ValueError("digest_card needs a digest envelope (envelope.digest is empty)")
    rendered = rendered or render(envelope, email=False, chat_template="teams.txt")
    intro = [line for line in rendered.chat_intro.split("\n") if line.strip()]
    head: list[Any] = []
    if intro:
        head.append(_title(intro[0]))
    head += text_runs("\n".join(intro[1:2]), spacing="Small")
    head.append(_counts(digest))
    head += text_runs("\n".join(intro[2:]), spacing="Medium")
    tail = text_runs(rendered.chat_outro, separator=True, spacing="Medium")

    changes = _change_lines(rendered.chat_changes)
    total = max(int(digest.get("changes_count", 0)), len(changes))
    emailed = bool(digest.get("emailed"))
    # Room for the heading, "…and N more" and the container around them, kept back first.
    budget = CARD_MAX_BYTES - size(card_json([*head, *tail])) - 600
    shown: list[Any] = []
    for line in changes:
        (block,) = text_runs(line)
        cost = size(block.model_dump(exclude_none=True, by_alias=True)) + 1
        if cost > budget:
            break
        shown.append(block)
        budget -= cost
    body = list(head)
    if changes:
        section: list[Any] = [words("What changed", weight="Bolder"), *shown]
        if total > len(shown):
            section.append(words(_more(total - len(shown), emailed), is_subtle=True, spacing="Small"))
        body.append(ac.Container(items=section, separator=True, spacing="Medium"))
    body += tail
    return card_json(body)


__all__ = ["digest_card", "message"]
