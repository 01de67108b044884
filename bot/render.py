"""Turn an envelope into the texts every channel sends: subject, plain text, HTML, chat.

One Jinja environment serves every template, ``message_templates/<kind>/<channel>.<fmt>.j2``.
Python decides *what* is said (the view below: the due date as the plan wrote it, a status
label); templates say it and lay it out. Why each action is in a message comes as data
(``storage.reasons.Why``) and one template, ``reasons.txt.j2``, phrases it: the sentence of
every body and of ``chaser preview`` (:func:`phrase_reason`) and the subject's few words.
Nothing reads data back out of a sentence. User-supplied strings are escaped for where they
go: HTML by autoescaping (``.html.j2`` only), Slack mrkdwn by the ``mrkdwn`` filter. JSON
(Block Kit) is built here around rendered text, never in a template.
"""
from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from bot.channels.base import Envelope, Item, Link, Recorded
from storage.dates import format_day
from storage.reasons import Why
from storage.statuses import PLAIN_COLOURS, STATUS_COLOURS, STATUS_LABELS

KINDS = ("nudge", "lead_list", "confirmation", "notice", "digest")

# Slack limits: https://api.slack.com/reference/block-kit/blocks
SECTION_TEXT_MAX = 3000
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
BUTTON_URL_MAX = 3000
BLOCKS_MAX = 50

# (background, text colour) for status marks and answer buttons: storage.statuses' one set.
_COLOURS = STATUS_COLOURS
_PLAIN_COLOURS = PLAIN_COLOURS
# A longer subject headline gives way to the rule's: "Update needed: HW 3 due for review".
_HEADLINE_MAX = 60


@dataclass(frozen=True)
class Rendered:
    """Every text of one message.

    ``chat_intro``, ``chat_items`` (one per envelope item, without the line of answer links,
    which Block Kit shows as buttons) and ``chat_outro`` are the pieces of ``chat`` that
    :func:`chat_blocks` puts into sections.
    """

    subject: str
    text: str
    html: str
    chat: str
    chat_intro: str = ""
    chat_items: tuple[str, ...] = ()
    chat_outro: str = ""
    # A digest's list of status moves (its template's ``changes`` macro): a section of its own,
    # so a long list is cut there and the headlines above it stay whole.
    chat_changes: str = ""
    # Per item, its heading line, when the chat template has a ``heading`` macro (Teams': the
    # card shows it in bold; ``chat_items`` are then the lines under it).
    chat_headings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _LinkView:
    label: str
    url: str
    background: str
    colour: str


@dataclass(frozen=True)
class _ItemView:
    ref: str
    title: str
    plan: str
    rule: str
    reason: str
    headline: str
    due: str
    status: str
    status_background: str
    status_colour: str
    owner: str | None
    links: tuple[_LinkView, ...]
    recorded: _RecordedView | None = None


# How each channel's answers are named where a message says what was recorded.
VIA_WORDS = {"web": "answer page", "email": "email", "slack": "Slack", "teams": "Teams", "cli": "the tracker"}


@dataclass(frozen=True)
class _RecordedView:
    """What was recorded for an item since its message went out, ready for a template."""

    status: str | None  # the label: "Amber – at risk"
    note: str | None
    due: str | None
    by: str
    via: str  # words: "email", "answer page"
    day: str


def _recorded_view(recorded: Recorded | None) -> _RecordedView | None:
    if recorded is None:
        return None
    return _RecordedView(status=STATUS_LABELS.get(recorded.status or "") if recorded.status else None,
                         note=recorded.note, due=recorded.due_text, by=recorded.by,
                         via=VIA_WORDS.get(recorded.via, recorded.via), day=format_day(recorded.at.date()))


def mrkdwn_escape(text: str) -> str:
    """Escape the three characters Slack mrkdwn treats as control characters."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mrkdwn_link(url: str, label: str) -> str:
    """A Slack link ``<url|label>`` with both parts escaped; a ``|`` in the URL is encoded."""
    return f"<{mrkdwn_escape(url).replace('|', '%7C')}|{mrkdwn_escape(label)}>"


def plural(count: int, word: str, many: str | None = None) -> str:
    """``1 action``, ``3 actions``, ``1,200 actions``."""
    return f"{count:,} {word if count == 1 else (many or word + 's')}"


_ENV = Environment(
    loader=PackageLoader("message_templates", ""),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False, default=False),
    keep_trailing_newline=True,
    # Templates are read once per process: edits to message_templates/ take effect when
    # chaser restarts (checking every file's mtime on every message was 8 stat calls each).
    auto_reload=False,
)
_ENV.filters["mrkdwn"] = mrkdwn_escape
_ENV.filters["mrkdwn_link"] = mrkdwn_link
_ENV.filters["plural"] = plural
_ENV.filters["day"] = format_day  # {{ due|day }}: "Thu 30 April 2026"; day(weekday=False), day(year=False)


def environment() -> Environment:
    """The one Jinja environment (for other modules that render their own templates)."""
    return _ENV


def _reasons() -> Any:
    """The macros of ``reasons.txt.j2`` (the template module is built once and cached)."""
    return _ENV.get_template("reasons.txt.j2").module


def _words(markup: object) -> str:
    return " ".join(str(markup).split())


@lru_cache(maxsize=4096)
def phrase_reason(why: Why | str) -> str:
    """The sentence saying why an action is in a message: "Due in 2 working days (Thu 30 April 2026)."

    A str is an outbox row's sentence from before reasons were stored as data
    (``storage.reasons.why_of``): it is returned as written. Cached (a Why is frozen, so it is
    its own key): the messages of one sweep share few distinct reasons, and the cache keeps
    the macro call from adding to every render.
    """
    if isinstance(why, str):
        return why
    return _words(_reasons().reason(why))


@lru_cache(maxsize=4096)
def _headline(why: Why | str, rule: str) -> str:
    """After "Update needed: HW 3": "due in 2 working days", from the data, never from the sentence.

    Too long (a long board name), or an outbox row that has only the old sentence: the rule's
    few words ("due for review").
    """
    words = _words(_reasons().headline(why)) if isinstance(why, Why) else ""
    if not words or len(words) > _HEADLINE_MAX:
        return _words(_reasons().rule_headline(rule))
    return words


def _link_view(link: Link) -> _LinkView:
    background, colour = _COLOURS.get(link.label.strip().lower(), _PLAIN_COLOURS)
    return _LinkView(label=link.label, url=link.url, background=background, colour=colour)


def _item_view(item: Item) -> _ItemView:
    if item.due_text and item.due_text.strip():
        due = item.due_text.strip()
    elif item.due is not None:
        due = format_day(item.due)
    else:
        due = "no date set"
    key = (item.status or "").strip().lower()
    if not key:
        status = "not reported yet"
    else:
        status = STATUS_LABELS.get(key, key.replace("_", " ").capitalize())
    background, colour = _COLOURS.get(key, _PLAIN_COLOURS)
    return _ItemView(
        ref=item.ref, title=item.title, plan=item.plan, rule=item.rule, reason=phrase_reason(item.why),
        headline=_headline(item.why, item.rule), due=due, status=status, status_background=background,
        status_colour=colour, owner=item.owner, links=tuple(_link_view(link) for link in item.links),
        recorded=_recorded_view(item.recorded),
    )


def _tidy(text: str) -> str:
    """No trailing spaces, at most one blank line in a row, one final newline."""
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)) + "\n"


def render(envelope: Envelope, *, chat: bool = True, email: bool = True, chat_template: str = "slack.md") -> Rendered:
    """Render the templates of ``envelope.kind``; ``chat=False`` skips the chat text, ``email=False``
    the email's plain and HTML bodies (left empty: a Slack message needs neither, and the HTML
    body was most of a Slack send's rendering). ``chat_template`` picks the chat flavour:
    ``slack.md`` (Slack mrkdwn, user text escaped by ``|mrkdwn``) or ``teams.txt`` (plain text,
    which an Adaptive Card shows as typed: bot.teams_cards puts it in TextRuns)."""
    if envelope.kind not in KINDS:
        raise ValueError(f"no templates for message kind {envelope.kind!r} (known: {', '.join(KINDS)})")
    items = tuple(_item_view(item) for item in envelope.items)
    context: dict[str, Any] = {
        "kind": envelope.kind,
        "recipient_name": " ".join(envelope.recipient_name.split()),
        "items": items,
        "count": len(items) + envelope.more,  # every action the message is about
        "more": envelope.more,  # of which not listed (jobs.sweep.MESSAGE_ITEMS_MAX)
        "to_edi_lead": envelope.to_edi_lead,
        "notes": envelope.notes,
        "has_links": any(item.links for item in items),
        "reply_subject": envelope.reply_subject or "",
        "preferences_url": envelope.preferences_url,
        "weekly": envelope.weekly,
        # The one link to the page of all the recipient's open actions (not only these), if any.
        "mine_url": envelope.mine_url,
        "mine_open": envelope.mine_open,
        # A board digest's headlines (jobs.digest_send.mail_view): plain values, escaped here like any text.
        "digest": envelope.digest,
    }
    folder = envelope.kind
    subject = " ".join(_ENV.get_template(f"{folder}/email-subject.txt.j2").render(context).split())
    context["subject"] = subject
    text = _tidy(_ENV.get_template(f"{folder}/email-body.txt.j2").render(context)) if email else ""
    html = _ENV.get_template(f"{folder}/email-body.html.j2").render(context) if email else ""
    if not chat:  # an email-only recipient: the chat render was a third of the work
        return Rendered(subject=subject, text=text, html=html, chat="", chat_intro="", chat_items=(), chat_outro="")
    chat_module = _ENV.get_template(f"{folder}/{chat_template}.j2").make_module(context)
    return Rendered(
        subject=subject,
        text=text,
        html=html,
        chat=_tidy(str(chat_module)).rstrip("\n"),
        chat_intro=_tidy(chat_module.intro()).rstrip("\n"),
        chat_items=tuple(_tidy(chat_module.item_text(item, False)).rstrip("\n") for item in items),
        chat_outro=_tidy(chat_module.outro()).rstrip("\n"),
        chat_changes=_tidy(chat_module.changes()).strip("\n") if hasattr(chat_module, "changes") else "",
        chat_headings=tuple(" ".join(str(chat_module.heading(item)).split()) for item in items)
        if hasattr(chat_module, "heading") else (),
    )


# ---- Slack Block Kit, built around the rendered mrkdwn ------------------------------------

def _units(text: str) -> int:
    """Length in UTF-16 code units: never less than the character count Slack may use."""
    return len(text.encode("utf-16-le")) // 2


def _cut(text: str, limit: int) -> str:
    """The longest prefix of ``text`` within ``limit`` UTF-16 code units."""
    if _units(text) <= limit:
        return text
    low, high = 0, min(len(text), limit)
    while low < high:
        mid = (low + high + 1) // 2
        if _units(text[:mid]) <= limit:
            low = mid
        else:
            high = mid - 1
    return text[:low]


def truncate_plain(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` with an ellipsis when it is longer."""
    if _units(text) <= limit:
        return text
    return _cut(text, limit - 1).rstrip() + "…"


def truncate_mrkdwn(text: str, limit: int = SECTION_TEXT_MAX) -> str:
    """Like ``truncate_plain``, but never ends inside ``&amp;``-style entities or ``<links>``."""
    if _units(text) <= limit:
        return text
    cut = _cut(text, limit - 1)
    start = cut.rfind("<")
    if start != -1 and ">" not in cut[start:]:
        cut = cut[:start]
    start = cut.rfind("&")
    if start != -1 and ";" not in cut[start:]:
        cut = cut[:start]
    return cut.rstrip() + "…"


def _section(text: str, block_id: str) -> dict[str, Any]:
    text = truncate_mrkdwn(text.strip() or " ")
    return {"type": "section", "block_id": block_id, "text": {"type": "mrkdwn", "text": text}}


def _button(link: Link, action_id: str, value: dict[str, Any]) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": truncate_plain(link.label, BUTTON_TEXT_MAX), "emoji": True},
        "url": link.url,
        "action_id": action_id,
        # What a click answers, so the inbound handler needs nothing else: the message ("o"), the
        # action ("a") and the status ("s", null for a note). A few dozen characters, far under
        # BUTTON_VALUE_MAX; not a secret (the click is verified by the platform's signature).
        "value": json.dumps(value, separators=(",", ":")),
    }
    style = {"green": "primary", "red": "danger"}.get(link.label.strip().lower())
    if style:
        button["style"] = style
    return button


def chat_blocks(envelope: Envelope, rendered: Rendered) -> list[dict[str, Any]]:
    """Block Kit: the intro, then per item a section and its answer buttons, then the outro.

    Stays within Slack's limits: 50 blocks (items that do not fit are counted in a last
    section), 3000 characters a section, 75 a button label. A link longer than Slack accepts
    (3000) gets no button; it is still in ``rendered.chat``, the message's fallback text.
    """
    if len(rendered.chat_items) != len(envelope.items):
        raise ValueError("rendered.chat_items does not match envelope.items; render this envelope first")
    blocks: list[dict[str, Any]] = [_section(rendered.chat_intro or rendered.chat, "intro")]
    budget = BLOCKS_MAX - len(blocks) - (1 if rendered.chat_outro else 0) - 1  # keep one for "more"
    shown = 0
    for index, (item, text) in enumerate(zip(envelope.items, rendered.chat_items)):
        buttons = [
            _button(link, f"answer-{index}-{number}-{slug(link.label)}",
                    {"o": envelope.outbox_id, "a": item.action_id, "s": link.status})
            for number, link in enumerate(item.links[:25])
            if link.url and _units(link.url) <= BUTTON_URL_MAX
        ]
        needed = 1 + (1 if buttons else 0)
        if needed > budget:
            break
        blocks.append(_section(text, f"item-{index}"))
        if buttons:
            blocks.append({"type": "actions", "block_id": f"answer-{index}", "elements": buttons})
        budget -= needed
        shown += 1
    hidden = len(envelope.items) - shown
    if hidden or envelope.more:
        where = "the email has the full list" if not envelope.more else "not listed here to keep this message short"
        more = f"…and {plural(hidden + envelope.more, 'more action')}; {where}."
        blocks.append(_section(more, "more"))
    if rendered.chat_outro:
        blocks.append(_section(rendered.chat_outro, "outro"))
    return blocks


def slug(text: str, limit: int = 40, empty: str = "link") -> str:
    """``Priya Shah`` -> ``priya-shah``: ASCII letters and digits joined by hyphens (for file
    names and Block Kit ids); ``empty`` when nothing is left."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")[:limit].strip("-") or empty
