"""A Slack message of Chaser's: Block Kit built around the mrkdwn of ``message_templates/*/slack.md.j2``.

Shared by both Slack sides (the contract in issue 12): the sending channel posts it, and the
inbound side re-renders it after an answer (``chat.update``), so an answered item shows what
was recorded, by whom and how, and has no buttons left.

Per item a section (the template's text, every user-supplied string already escaped for
mrkdwn by the ``mrkdwn`` filter, so ``<!channel>`` or ``<http://x|y>`` in a title is shown as
typed) and, for an open item, an actions block ``item-{action_id}`` with six buttons: **On
track**, **At risk**, **Off track**, **Done** (``chaser_status_<status>``), **Update…**
(``chaser_update``: the modal) and **Snooze a week** (``chaser_snooze``). A button carries no
URL: its ``value`` is ``{"o": outbox_id, "a": action_id, "s": status or null}``, all the
inbound handler needs. The outbox id also rides in the message's ``metadata``, which is how a
resend finds an earlier post in ``conversations.history``.

Slack's limits hold whatever the list: at most 50 blocks and 3,000 characters a section; the
items that do not fit end the message as "…and N more", with the link to the page of all the
recipient's open actions when there is one (``envelope.mine_url``).
"""
from __future__ import annotations

import json
from typing import Any

from bot.channels.base import Envelope, Item
from bot.render import BLOCKS_MAX, Rendered, mrkdwn_link, plural, render, truncate_mrkdwn

EVENT_TYPE = "chaser_nudge"
# (action_id, label, status): the buttons of an open item, in the order they are shown.
STATUS_BUTTONS = (
    ("chaser_status_green", "On track", "green"),
    ("chaser_status_amber", "At risk", "amber"),
    ("chaser_status_red", "Off track", "red"),
    ("chaser_status_complete", "Done", "complete"),
)
UPDATE_ACTION = "chaser_update"
SNOOZE_ACTION = "chaser_snooze"
BUTTONS = (*STATUS_BUTTONS, (UPDATE_ACTION, "Update…", None), (SNOOZE_ACTION, "Snooze a week", None))
ACTION_IDS = tuple(action_id for action_id, _, _ in BUTTONS)
# Kinds whose open items can be answered from the message (a lead answers on an owner's behalf);
# a confirmation or notice only tells.
ANSWERABLE_KINDS = ("nudge", "lead_list")
# The outro's first line when the items have buttons: the template's says to click a link and
# press Send on the page that opens, which is the email's way.
BUTTONS_HINT = "Press the button that says where each action stands; *Update…* adds a note or a new date."
# The fallback ``text`` (notifications, screen readers): Slack shows about 4,000 characters.
FALLBACK_MAX = 3000


def metadata(envelope: Envelope) -> dict[str, Any]:
    """The message metadata that names its outbox row (``conversations.history`` returns it)."""
    return {"event_type": EVENT_TYPE, "event_payload": {"outbox_id": envelope.outbox_id}}


def button_value(outbox_id: int, action_id: int, status: str | None) -> str:
    return json.dumps({"o": outbox_id, "a": action_id, "s": status}, separators=(",", ":"))


def parse_button_value(value: str) -> tuple[int, int, str | None]:
    """``(outbox_id, action_id, status)`` from a button's value; ValueError when it is not one of ours."""
    try:
        data = json.loads(value)
        outbox_id, action_id, status = data["o"], data["a"], data.get("s")
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"not a Chaser button value: {value[:100]!r}") from exc
    if not isinstance(outbox_id, int) or not isinstance(action_id, int) or isinstance(outbox_id, bool) \
            or isinstance(action_id, bool) or not (status is None or isinstance(status, str)):
        raise ValueError(f"not a Chaser button value: {value[:100]!r}")
    return outbox_id, action_id, status


def _section(text: str, block_id: str) -> dict[str, Any]:
    return {"type": "section", "block_id": block_id,
            "text": {"type": "mrkdwn", "text": truncate_mrkdwn(text.strip() or " ")}}


def _buttons(envelope: Envelope, item: Item) -> dict[str, Any]:
    assert item.action_id is not None
    elements = []
    for action_id, label, status in BUTTONS:
        button: dict[str, Any] = {"type": "button", "action_id": action_id,
                                  "text": {"type": "plain_text", "text": label, "emoji": True},
                                  "value": button_value(envelope.outbox_id, item.action_id, status)}
        style = {"green": "primary", "red": "danger"}.get(status or "")
        if style:
            button["style"] = style
        elements.append(button)
    return {"type": "actions", "block_id": f"item-{item.action_id}", "elements": elements}


def has_buttons(envelope: Envelope, item: Item) -> bool:
    """An item gets buttons when it is an action that can still be answered from this message."""
    return envelope.kind in ANSWERABLE_KINDS and item.action_id is not None and item.recorded is None


def _more_text(envelope: Envelope, count: int) -> str:
    if envelope.kind == "lead_list":
        return (f"…and {plural(count, 'more action')} without an answer, not listed here to keep this message "
                "short: `chaser actions` lists every action with its status.")
    needs = "needs" if count == 1 else "need"
    if envelope.mine_url:
        return (f"…and {plural(count, 'more action')} {needs} your update: "
                f"{mrkdwn_link(envelope.mine_url, 'see and update all your actions')}.")
    return f"…and {plural(count, 'more action')} {needs} your update, not listed here to keep this message short."


def nudge_blocks(envelope: Envelope, rendered: Rendered | None = None) -> tuple[str, list[dict[str, Any]]]:
    """``(text, blocks)`` of the Slack message for ``envelope`` (any kind: nudge, lead_list,
    confirmation, notice). ``text`` is the whole message as mrkdwn, cut to fit, for
    notifications and as Slack's fallback; ``rendered`` saves a render the caller already has."""
    rendered = rendered or render(envelope, email=False)
    if len(rendered.chat_items) != len(envelope.items):
        raise ValueError("rendered.chat_items does not match envelope.items; render this envelope first")
    answerable, seen = [], set()
    for item in envelope.items:  # block ids are unique in a message: one set of buttons per action
        answerable.append(has_buttons(envelope, item) and item.action_id not in seen)
        seen.add(item.action_id)
    outro = rendered.chat_outro
    if envelope.kind == "nudge" and any(answerable) and outro:
        # The template's first line is the email's "click a link, then press Send on the page";
        # the rest (the link to all my actions) stays as the template wrote it.
        outro = "\n".join([BUTTONS_HINT, *outro.split("\n")[1:]])
    blocks: list[dict[str, Any]] = [_section(rendered.chat_intro or rendered.chat, "intro")]
    budget = BLOCKS_MAX - len(blocks) - (1 if outro else 0) - 1  # one kept for "…and N more"
    shown = 0
    for index, (item, text, buttons) in enumerate(zip(envelope.items, rendered.chat_items, answerable)):
        needed = 2 if buttons else 1
        if needed > budget:
            break
        blocks.append(_section(text, f"text-{index}"))
        if buttons:
            blocks.append(_buttons(envelope, item))
        budget -= needed
        shown += 1
    hidden = len(envelope.items) - shown + envelope.more
    if hidden:
        blocks.append(_section(_more_text(envelope, hidden), "more"))
    if outro:
        blocks.append(_section(outro, "outro"))
    # The fallback: what the blocks say, without the email's answer links (the buttons are the way here).
    fallback = "\n\n".join(part for part in (rendered.chat_intro, *rendered.chat_items, rendered.chat_outro) if part)
    text = truncate_mrkdwn(fallback or rendered.chat, FALLBACK_MAX)
    return text, blocks


def digest_blocks(envelope: Envelope, rendered: Rendered | None = None) -> tuple[str, list[dict[str, Any]]]:
    """``(text, blocks)`` of a board digest's summary (``envelope.digest``, jobs.digest_send's view)
    posted to the board's ``slack_channel``: the headlines, the status moves (at most
    jobs.digest_send.CHANGES_LISTED, so never near 50 blocks) and the spotlight, a section each
    cut to Slack's 3,000 characters. No buttons: a board reads it, nobody answers it."""
    rendered = rendered or render(envelope, email=False)
    parts = [(rendered.chat_intro, "intro"), (rendered.chat_changes, "changes"), (rendered.chat_outro, "outro")]
    blocks = [_section(text, block_id) for text, block_id in parts if text.strip()]
    return truncate_mrkdwn(rendered.chat_intro or rendered.chat, FALLBACK_MAX), blocks
