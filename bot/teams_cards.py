"""A Teams message of Chaser's: an Adaptive Card 1.5 built around ``message_templates/*/teams.txt.j2``.

Shared by both Teams sides (issue 14): the channel posts the card, and the inbound side
answers an ``Action.Execute`` with the same card re-rendered (the invoke response replaces the
card in place), so an answered item shows what was recorded, by whom and how, and has no
buttons left.

Cards are built with ``microsoft-teams-cards`` (Microsoft's typed models of the Adaptive Card
schema: a property set to a value the schema does not allow is refused when the card is
built) and sent as plain JSON. **Every string from a plan, a person or a reply is a
``TextRun``** in a ``RichTextBlock``: a TextRun is shown as typed (no markdown, no links, no
``<at>`` mentions), so a title such as ``**[click](https://x)** <at>Everyone</at>`` is inert.
Only Chaser's own words are ``TextBlock``\\ s.

Per open item (a nudge or the EDI lead's list): its heading in bold, the template's lines, and
an ``ActionSet`` of **On track**, **At risk**, **Off track**, **Done** (``Action.Execute``,
verb ``chaser_status``), **Update** (``Action.ShowCard``: status, progress note, revised date,
then **Record**, verb ``chaser_update``) and **Snooze a week** (verb ``chaser_snooze``). Each
action's ``data`` is ``{"chaser": verb, "o": outbox id, "a": action id, "s": status}``; the
form's inputs are ``status-<a>``, ``note-<a>`` and ``due-<a>``, which Teams merges into the
data it sends back. Every ``Action.Execute`` falls back to an ``Action.Submit`` with the same
data, for clients without Universal Actions (the bot then gets a ``message`` with ``value``).

Teams refuses a message over about 28 KB: items that would take the card past
:data:`CARD_MAX_BYTES` end it as "…and N more", with a button to the page of all the
recipient's open actions when there is one.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import microsoft_teams.cards as ac

from bot.channels.base import Envelope, Item
from bot.render import Rendered, plural, render, truncate_plain

CARD_CONTENT_TYPE = "application/vnd.microsoft.card.adaptive"
VERSION = "1.5"
# Teams answers 413 for an activity over ~28 KB; the card keeps room for the activity around it.
CARD_MAX_BYTES = 24_000
TEXT_MAX = 2_000  # one TextRun: a long note is cut, the card stays readable
STATUS_VERB = "chaser_status"
UPDATE_VERB = "chaser_update"
SNOOZE_VERB = "chaser_snooze"
VERBS = (STATUS_VERB, UPDATE_VERB, SNOOZE_VERB)
# (status, label): the buttons of an open item, in order (the words of the Slack buttons).
STATUS_BUTTONS = (("green", "On track"), ("amber", "At risk"), ("red", "Off track"), ("complete", "Done"))
NO_CHANGE = "none"
NOTE_INPUT_MAX = 3_000
DUE_INPUT_MAX = 100
ANSWERABLE_KINDS = ("nudge", "lead_list")


def text_runs(text: str, *, weight: str | None = None, color: str | None = None, italic: bool = False,
              separator: bool = False, spacing: str | None = None) -> list[ac.RichTextBlock]:
    """``text`` as it is, one RichTextBlock of one TextRun per line (blank lines dropped): no
    markdown, link or mention in it is interpreted."""
    blocks = []
    for index, line in enumerate(line for line in str(text).split("\n") if line.strip()):
        run = ac.TextRun(text=truncate_plain(line.rstrip(), TEXT_MAX), weight=weight, color=color,
                         italic=italic or None)
        blocks.append(ac.RichTextBlock(inlines=[run], separator=(separator and index == 0) or None,
                                       spacing=spacing if index == 0 else None))
    return blocks


def words(text: str, **style: Any) -> ac.TextBlock:
    """Chaser's own words (never user text: a TextBlock reads markdown)."""
    return ac.TextBlock(text=text, wrap=True, **style)


def attachment(card: dict[str, Any]) -> dict[str, Any]:
    """The card as an activity attachment."""
    return {"contentType": CARD_CONTENT_TYPE, "content": card}


def _json(model: Any) -> dict[str, Any]:
    return model.model_dump(exclude_none=True, by_alias=True)


def card_json(body: list[Any], actions: list[Any] | None = None) -> dict[str, Any]:
    """The card's JSON; ``body`` holds elements (models, or their JSON already made)."""
    card = ac.AdaptiveCard(version=VERSION, body=[], actions=actions or None, ms_teams={"width": "Full"})
    data = _json(card)
    data["body"] = [part if isinstance(part, dict) else _json(part) for part in body]
    data["$schema"] = "http://adaptivecards.io/schemas/adaptive-card.json"
    return data


def size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def action_data(verb: str, outbox_id: int, action_id: int, status: str | None = None) -> dict[str, Any]:
    return {"chaser": verb, "o": outbox_id, "a": action_id, "s": status}


def _execute(title: str, data: dict[str, Any], *, style: str | None = None, inputs: str = "none") -> ac.ExecuteAction:
    """``Action.Execute`` with an ``Action.Submit`` of the same data for older clients."""
    return ac.ExecuteAction(title=title, verb=data["chaser"], data=data, style=style, associated_inputs=inputs,
                            fallback=ac.SubmitAction(title=title, data=data, associated_inputs=inputs))


@dataclass(frozen=True)
class Kept:
    """What someone typed into an item's Update form, shown again beside an error."""

    status: str | None = None
    note: str | None = None
    due: str | None = None


def _update_form(outbox_id: int, a: int, kept: Kept | None) -> ac.ShowCardAction:
    choices = [ac.Choice(title=label, value=status) for status, label in STATUS_BUTTONS]
    choices.append(ac.Choice(title="No change", value=NO_CHANGE))
    form = ac.AdaptiveCard(version=VERSION, body=[
        ac.ChoiceSetInput(id=f"status-{a}", label="Status", choices=choices, style="expanded",
                          value=(kept.status if kept and kept.status else NO_CHANGE)),
        ac.TextInput(id=f"note-{a}", label="Progress note", is_multiline=True, max_length=NOTE_INPUT_MAX,
                     value=kept.note if kept and kept.note else None),
        ac.TextInput(id=f"due-{a}", label="Revised due date", placeholder="For example June 2027 or 30/06/2027",
                     max_length=DUE_INPUT_MAX, value=kept.due if kept and kept.due else None),
    ], actions=[_execute("Record", action_data(UPDATE_VERB, outbox_id, a), style="positive", inputs="auto")])
    return ac.ShowCardAction(title="Update", card=form)


def _button_set(outbox_id: int, action_id: int, kept: Kept | None) -> ac.ActionSet:
    actions: list[Any] = [
        _execute(label, action_data(STATUS_VERB, outbox_id, action_id, status),
                 style="positive" if status == "green" else ("destructive" if status == "red" else None))
        for status, label in STATUS_BUTTONS
    ]
    actions.append(_update_form(outbox_id, action_id, kept))
    actions.append(_execute("Snooze a week", action_data(SNOOZE_VERB, outbox_id, action_id)))
    return ac.ActionSet(actions=actions)


# The buttons of an item with an empty form are the same but for the two ids: they are built
# from the models once, with these marks for the ids, and copied with the ids put in (24
# models an item otherwise, about 0.4 ms of a Teams send's CPU: bench/README.md).
_OUTBOX_MARK, _ACTION_MARK = -918273645, -546372819
_BLANK_BUTTONS = json.dumps(_json(_button_set(_OUTBOX_MARK, _ACTION_MARK, None)), ensure_ascii=False)


def _buttons(envelope: Envelope, item: Item, kept: Kept | None) -> dict[str, Any]:
    """The item's ActionSet as JSON."""
    assert item.action_id is not None
    if (kept is not None and (kept.status or kept.note or kept.due)) or not isinstance(envelope.outbox_id, int):
        return _json(_button_set(envelope.outbox_id, item.action_id, kept))
    return json.loads(_BLANK_BUTTONS.replace(str(_OUTBOX_MARK), str(int(envelope.outbox_id)))
                      .replace(str(_ACTION_MARK), str(int(item.action_id))))


def has_buttons(envelope: Envelope, item: Item) -> bool:
    return envelope.kind in ANSWERABLE_KINDS and item.action_id is not None and item.recorded is None


def _more_words(envelope: Envelope, count: int) -> str:
    if envelope.kind == "lead_list":
        return (f"…and {plural(count, 'more action')} without an answer, not listed here to keep this message "
                "short: chaser actions lists every action with its status.")
    needs = "needs" if count == 1 else "need"
    return f"…and {plural(count, 'more action')} {needs} your update, not listed here to keep this message short."


def nudge_card(envelope: Envelope, rendered: Rendered | None = None, *, errors: Mapping[int, str] | None = None,
               kept: Mapping[int, Kept] | None = None, told: Mapping[int, str] | None = None) -> dict[str, Any]:
    """The Adaptive Card for ``envelope`` (any kind but digest). ``errors`` (by action id) are
    shown under their item in the attention colour, with the form filled with ``kept``; ``told``
    (by action id) in the good colour ("No reminders about HW 3 until …")."""
    rendered = rendered or render(envelope, email=False, chat_template="teams.txt")
    errors, kept, told = errors or {}, kept or {}, told or {}
    # Each part is turned into JSON once, for its size against the budget, and the card is put
    # together from those parts: dumping the whole card's models again would cost a quarter of
    # building it (bench/README.md, Teams delivery).
    body = card_json(text_runs(rendered.chat_intro or rendered.chat, weight="Bolder"))["body"]
    budget = CARD_MAX_BYTES - size(card_json(body)) - 1_500  # room for "…and N more", the outro, the link
    shown, seen = 0, set()
    headings = rendered.chat_headings or ("",) * len(envelope.items)
    for item, heading, text in zip(envelope.items, headings, rendered.chat_items):
        parts: list[Any] = []
        if heading:
            parts += text_runs(heading, weight="Bolder")
        parts += text_runs(text)
        if item.action_id is not None and item.action_id in errors:
            parts += text_runs(errors[item.action_id], color="Attention", weight="Bolder")
        if item.action_id is not None and item.action_id in told:
            parts += text_runs(told[item.action_id], color="Good", weight="Bolder")
        container = _json(ac.Container(items=parts, separator=True, spacing="Medium"))
        if has_buttons(envelope, item) and item.action_id not in seen:
            container["items"].append(_buttons(envelope, item, kept.get(item.action_id)))
            seen.add(item.action_id)
        cost = size(container)
        if cost > budget:
            break
        body.append(container)
        budget -= cost
        shown += 1
    hidden = len(envelope.items) - shown + envelope.more
    tail: list[Any] = []
    actions: list[Any] = []
    if hidden:
        tail.append(words(_more_words(envelope, hidden), is_subtle=True, separator=True))
    if envelope.mine_url and envelope.kind == "nudge":
        actions.append(ac.OpenUrlAction(title=f"See and update all your actions ({envelope.mine_open} open)",
                                        url=envelope.mine_url))
    outro = rendered.chat_outro
    if outro and not (envelope.kind == "nudge" and not seen):
        tail += text_runs(outro, spacing="Medium")
    card = card_json(tail, actions)
    card["body"] = body + card["body"]
    return card


def note_card(text: str) -> dict[str, Any]:
    """A card of a few lines (plain text: it may quote the plan), when there is no message to show."""
    return card_json(text_runs(text))


def summary(envelope: Envelope, rendered: Rendered | None = None) -> str:
    """The activity's ``summary``: what a notification or the chat list shows (plain text)."""
    rendered = rendered or render(envelope, email=False, chat_template="teams.txt")
    return truncate_plain(" ".join((rendered.chat_intro or rendered.chat).split()), 200)


@dataclass(frozen=True)
class Answer:
    """What a card's button or form sent back: its verb, the message and action it names, and
    the form's values (None: not given)."""

    verb: str
    outbox_id: int | None
    action_id: int
    status: str | None = None
    note: str | None = None
    due_text: str | None = None

    @property
    def kept(self) -> Kept:
        return Kept(status=self.status, note=self.note, due=self.due_text)


def read_answer(data: Any) -> Answer | None:
    """An :class:`Answer` from an ``Action.Execute``'s ``data`` or an ``Action.Submit``'s ``value``;
    None when it is not one of Chaser's (a hand-made payload, another app's card)."""
    if not isinstance(data, Mapping) or data.get("chaser") not in VERBS:
        return None
    try:
        outbox_id = data.get("o")
        action_id = data["a"]
        if isinstance(action_id, bool) or not isinstance(action_id, int):
            return None
        if outbox_id is not None and (isinstance(outbox_id, bool) or not isinstance(outbox_id, int)):
            return None
    except KeyError:
        return None
    verb = str(data["chaser"])

    def field(name: str) -> str | None:
        value = data.get(f"{name}-{action_id}")
        return value.strip() or None if isinstance(value, str) else None

    status = data.get("s") if verb == STATUS_VERB else field("status")
    if status == NO_CHANGE or not isinstance(status, str):
        status = None
    note = field("note") if verb == UPDATE_VERB else None
    due = field("due") if verb == UPDATE_VERB else None
    return Answer(verb=verb, outbox_id=outbox_id, action_id=action_id, status=status, note=note, due_text=due)


__all__ = ["Answer", "CARD_CONTENT_TYPE", "Kept", "attachment", "nudge_card", "read_answer", "summary", "text_runs"]
