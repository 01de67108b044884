"""What Chaser does when someone answers in Slack: the listeners the bolt app (bot.slack_app)
registers, and the Block Kit of the modal, the ``/chaser`` list and the Home tab.

Every listener acknowledges first and does its slow work after. The answer itself (a database
transaction of a few milliseconds, through bot.inbound.handle_reply like every channel) is
committed before the acknowledgement is sent (bot.slack_app runs bolt with
``process_before_response``), so a 200 means it is in the tracker and a retry that Slack sends
for a slow answer is a duplicate (``external_id``), recorded once. Calls back to Slack
(``chat.update``, ``chat.postEphemeral``, ``views.open``, ``views.publish``) are the slow work:
they are handed to ``after`` (a thread pool) once the answer is committed.

**The message is updated once.** An answer queues an in-place update of every open message
about its actions for the dispatcher (bot.inbound.queue_refreshes). For the message that was
clicked, the listener does not wait for the dispatcher's next tick: in the same transaction as
the answer it renders the message as the dispatcher would (``refresh``: the runtime hands in
the dispatcher's envelope) and marks that message's queued update as sent, then calls
``chat.update`` right after the commit, so the clicker sees the answer at once and the
dispatcher does not update the same message again. Should that ``chat.update`` fail, the update
is queued again for the dispatcher (which retries it like a send). Other messages about the
same actions (a cover's copy, an EDI lead's list) are left to the dispatcher.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot.channels.base import Envelope
from bot.inbound import (
    MAX_DUE_CHARS,
    after_pool,
    Policy,
    Reply,
    ReplyResult,
    form_errors,
    handle_reply,
    take_refresh,
    update_at_once,
)
from bot.render import BLOCKS_MAX, mrkdwn_escape, truncate_mrkdwn, truncate_plain
from storage.controls import snooze
from storage.dates import format_day
from storage.db import session_factory
from storage.models import Action, Clock, Outbox, Person
from storage.statuses import STATUS_LABELS
from storage.tracker import open_actions
from storage.updates import NOTE_MAX_CHARS, CurrentState, can_change, current_state

log = logging.getLogger("chaser.slack")

STATUS_ACTION = re.compile(r"^chaser_status_(green|amber|red|complete)$")
# The words of the buttons (bot.slack_blocks) and of the modal's choices, by stored status.
STATUS_WORDS = {"green": "On track", "amber": "At risk", "red": "Off track", "complete": "Done"}
NO_CHANGE = "none"
SNOOZE_DAYS = 7
# Slack's limits: a plain_text_input holds at most 3,000 characters (Chaser keeps notes of up to
# NOTE_MAX_CHARS), a modal's title 24, a view's private_metadata 3,000, a Home tab 100 blocks.
INPUT_MAX = 3000
TITLE_MAX = 24
LIST_MAX = BLOCKS_MAX - 3  # a message: the heading, the actions, "and N more"

# Refresh: (session, the sent message) -> the envelope of its in-place update (the dispatcher's).
Refresh = Callable[[Session, Outbox], Envelope]
After = Callable[[Callable[[], None]], None]


def thread_pool(workers: int = 4) -> After:
    """``after`` for a running Chaser: slow work on a small pool, its failures logged."""
    return after_pool("chaser-slack", workers)


@dataclass(frozen=True)
class Clicked:
    """What a button says it answers: ``{"o": outbox id or null, "a": action id, "s": status}``."""

    outbox_id: int | None
    action_id: int

    @classmethod
    def read(cls, value: str | None) -> Clicked | None:
        try:
            data = json.loads(value or "")
            outbox_id = data.get("o")
            return cls(outbox_id=int(outbox_id) if outbox_id is not None else None, action_id=int(data["a"]))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None


class SlackAnswers:
    """The listeners. ``channel`` updates a message in place; ``refresh`` renders a message updated in place (None: leave every update
    to the dispatcher); ``after`` runs work that follows an acknowledgement (default: a thread
    pool; tests pass one that runs it at once)."""

    def __init__(self, engine: Engine, config: Any, *, clock: Clock, channel: Any, refresh: Refresh | None = None,
                 after: After | None = None) -> None:
        self.sessions = session_factory(engine)
        self.channel = channel  # bot.channels.slack.Slack: update(receipt, envelope) is chat.update
        self.policy = Policy.of(config)
        self.clock = clock
        self.refresh = refresh
        self.after = after or thread_pool()

    def register(self, app: Any) -> None:
        app.action(STATUS_ACTION)(self.on_status)
        app.action("chaser_update")(self.on_update_button)
        app.action("chaser_snooze")(self.on_snooze)
        app.view_submission("chaser_update")(self.on_update_submitted)
        app.command("/chaser")(self.on_command)
        app.event("app_home_opened")(self.on_home_opened)

    # -- buttons on a nudge ---------------------------------------------------------------
    def on_status(self, ack: Callable[..., None], body: dict[str, Any], client: Any) -> None:
        ack()
        action = body["actions"][0]
        clicked = Clicked.read(action.get("value"))
        status = STATUS_ACTION.match(action["action_id"])
        user = body["user"]["id"]
        if clicked is None or status is None:
            log.warning("slack: a %s click from %s carries no readable value", action.get("action_id"), user)
            return
        reply = Reply(via="slack", sender=user, received_at=self.clock(), action_ids=(clicked.action_id,),
                      outbox_id=clicked.outbox_id, status=status.group(1),
                      external_id=f"action {action.get('action_ts') or body.get('trigger_id')} {user}")
        result, shown = self.answer(reply, clicked.outbox_id)
        self.tell(client, body, user, result, shown)

    def answer(self, reply: Reply, outbox_id: int | None) -> tuple[ReplyResult, tuple[Outbox, Envelope] | None]:
        """Record ``reply`` (its sender a Slack user id, resolved to a person here) and, when it
        applied, render the message it answers for an update at once; committed on return."""
        with self.sessions.begin() as session:
            person = self.person(session, reply.sender)
            if person is not None:
                reply = replace(reply, sender=person.email, person_id=person.id)
            result = handle_reply(session, reply, self.policy)
            shown = self.take_refresh(session, outbox_id) if result.applied else None
            session.expunge_all()
        return result, shown

    def take_refresh(self, session: Session, outbox_id: int | None) -> tuple[Outbox, Envelope] | None:
        """The clicked message and its updated envelope, its queued update marked as sent (this
        listener sends it): see the module's docstring. None when it is not a sent Slack message."""
        return take_refresh(session, outbox_id, "slack", self.refresh, self.clock())

    def tell(self, client: Any, body: dict[str, Any], user: str, result: ReplyResult,
             shown: tuple[Outbox, Envelope] | None) -> None:
        """After a click: the message updated, or a word to the clicker alone."""
        if result.outcome == "duplicate":
            return  # Slack's retry of a click already answered (or the same click twice)
        if result.applied:
            if shown is not None:
                self.after(lambda: self.update_message(*shown))
            return
        text = self.refusal(result)
        channel = (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get("id")
        if channel is None:
            log.info("slack: %s from %s, with no channel to say so in", result.outcome, user)
            return
        self.after(lambda: client.chat_postEphemeral(channel=channel, user=user, text=text))

    def update_message(self, message: Outbox, envelope: Envelope) -> None:
        """chat.update of the clicked message, through the Slack channel (its blocks, its limits);
        on failure the message's update goes back to the dispatcher, which retries it."""
        update_at_once(self.sessions, self.channel, message, envelope, self.clock)

    @staticmethod
    def refusal(result: ReplyResult) -> str:
        """The ephemeral answer to a click that changed nothing, in words for the clicker (mrkdwn:
        the refs and the detail come from the plan, so they are escaped)."""
        refs = mrkdwn_escape(", ".join(a.ref for a in result.actions) or "this action")
        if result.person is None:
            return ("Your Slack account is not in Chaser's people directory, so nothing was recorded. "
                    "Ask your EDI lead to add your Slack id, or answer by email.")
        if result.outcome == "not_allowed":
            return (f"You are not an owner of {refs}, so nothing was recorded: only its owners, their delegates "
                    "or cover, or the EDI lead may update it.")
        return f"Nothing was recorded: {mrkdwn_escape(result.detail or result.outcome)}."

    @staticmethod
    def person(session: Session, slack_user: str) -> Person | None:
        return session.scalars(select(Person).where(Person.slack_id == slack_user).order_by(Person.id)).first()

    # -- snooze ---------------------------------------------------------------------------
    def on_snooze(self, ack: Callable[..., None], body: dict[str, Any], client: Any) -> None:
        """No nudges about this action for a week (storage.controls.snooze), for those who may
        change it; the clicker alone is told."""
        ack()
        clicked = Clicked.read(body["actions"][0].get("value"))
        user = body["user"]["id"]
        if clicked is None:
            return
        with self.sessions.begin() as session:
            person = self.person(session, user)
            action = session.get(Action, clicked.action_id)
            if person is None or action is None:
                text = ("Your Slack account is not in Chaser's people directory, so nothing was changed."
                        if person is None else "That action is no longer in the tracker.")
            elif not can_change(session, action, person, self.policy.edi_leads):
                text = f"You are not an owner of {action.ref}, so it was not snoozed."
            else:
                until = self.clock().date() + dt.timedelta(days=SNOOZE_DAYS)
                snooze(session, action, until)
                text = f"No reminders about {action.ref} until after {format_day(until)}."
                log.info("slack: %s snoozed %s until %s", person.email, action.ref, until)
        channel = (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get("id")
        if channel is not None:
            self.after(lambda: client.chat_postEphemeral(channel=channel, user=user, text=text))

    # -- the modal ------------------------------------------------------------------------
    def on_update_button(self, ack: Callable[..., None], body: dict[str, Any], client: Any) -> None:
        """Update…: the modal, for this action (from a nudge, the /chaser list or the Home tab)."""
        ack()
        clicked = Clicked.read(body["actions"][0].get("value"))
        if clicked is None:
            return
        with self.sessions() as session:
            action = session.get(Action, clicked.action_id)
            if action is None:
                return
            view = update_modal(action, current_state(session, action), clicked.outbox_id)
        trigger = body["trigger_id"]  # valid for 3 s: views.open right after the acknowledgement
        self.after(lambda: client.views_open(trigger_id=trigger, view=view))

    def on_update_submitted(self, ack: Callable[..., None], body: dict[str, Any], view: dict[str, Any],
                            client: Any) -> None:
        """Record what the modal says; a field that cannot be used is an error beside it (the
        modal stays open) and nothing is recorded."""
        try:
            meta = json.loads(view.get("private_metadata") or "")
            action_id, outbox_id = int(meta["a"]), (int(meta["o"]) if meta.get("o") is not None else None)
        except (ValueError, TypeError, KeyError):
            ack(response_action="errors", errors={"status": "This form could not be read: open it again."})
            return
        values = view.get("state", {}).get("values", {})
        chosen = ((values.get("status", {}).get("value") or {}).get("selected_option") or {}).get("value")
        status = chosen if chosen in STATUS_WORDS else None
        note = ((values.get("note", {}).get("value") or {}).get("value") or "").strip() or None
        due_text = ((values.get("due", {}).get("value") or {}).get("value") or "").strip() or None
        errors = form_errors(status, note, due_text)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        user = body["user"]["id"]
        reply = Reply(via="slack", sender=user, received_at=self.clock(), action_ids=(action_id,),
                      outbox_id=outbox_id, status=status, note=note, due_text=due_text,
                      external_id=f"view {view.get('id')} {user}")
        result, shown = self.answer(reply, outbox_id)
        if result.outcome in ("applied", "duplicate"):
            ack()
            if shown is not None:
                self.after(lambda: self.update_message(*shown))
            return
        block = "due" if result.outcome == "unclear" and due_text and "due" in (result.detail or "") else "status"
        ack(response_action="errors", errors={block: truncate_plain(self.refusal(result), 150)})

    # -- /chaser and the Home tab ---------------------------------------------------------
    def on_command(self, ack: Callable[..., None], body: dict[str, Any]) -> None:
        """``/chaser``: my open actions, each with Update…, seen by me alone."""
        text, blocks = self.my_actions(body["user_id"])
        ack(response_type="ephemeral", text=text, blocks=blocks)

    def on_home_opened(self, event: dict[str, Any], client: Any) -> None:
        if event.get("tab", "home") != "home":
            return
        user = event["user"]
        _, blocks = self.my_actions(user, home=True)
        self.after(lambda: client.views_publish(user_id=user, view={"type": "home", "blocks": blocks}))

    def my_actions(self, slack_user: str, *, home: bool = False) -> tuple[str, list[dict[str, Any]]]:
        with self.sessions() as session:
            person = self.person(session, slack_user)
            if person is None:
                text = ("Your Slack account is not in Chaser's people directory, so Chaser cannot tell which "
                        "actions are yours. Ask your EDI lead to add your Slack id.")
                return text, [_section(text)]
            return action_list(person.name, open_actions(session, person.id), home=home)


def _section(text: str, accessory: dict[str, Any] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": {"type": "mrkdwn", "text": truncate_mrkdwn(text)}}
    if accessory is not None:
        block["accessory"] = accessory
    return block


def update_button(action_id: int, outbox_id: int | None = None) -> dict[str, Any]:
    return {"type": "button", "action_id": "chaser_update", "text": {"type": "plain_text", "text": "Update…"},
            "value": json.dumps({"o": outbox_id, "a": action_id, "s": None}, separators=(",", ":"))}


def _plain(text: str, limit: int = 75) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate_plain(text, limit)}


def update_modal(action: Action, state: CurrentState, outbox_id: int | None) -> dict[str, Any]:
    """The Update… modal: status, progress note and revised due date for one action."""
    choices = [*STATUS_WORDS.items(), (NO_CHANGE, "No change")]
    options = [{"text": _plain(words), "value": value} for value, words in choices]
    facts = [f"Now: {STATUS_LABELS.get(state.status, 'no status yet') if state.status else 'no status yet'}"]
    if state.due:
        facts.append(f"due {format_day(state.due)}")
    return {
        "type": "modal", "callback_id": "chaser_update",
        "private_metadata": json.dumps({"o": outbox_id, "a": action.id}, separators=(",", ":")),
        "title": _plain(f"Update {action.ref}", TITLE_MAX),
        "submit": _plain("Record"), "close": _plain("Cancel"),
        "blocks": [
            _section(f"*{mrkdwn_escape(action.ref)}* {mrkdwn_escape(action.title)}\n{', '.join(facts)}"),
            {"type": "input", "block_id": "status", "label": _plain("Status"),
             "element": {"type": "radio_buttons", "action_id": "value", "options": options,
                         "initial_option": options[-1]}},
            {"type": "input", "block_id": "note", "optional": True, "label": _plain("Progress note"),
             "element": {"type": "plain_text_input", "action_id": "value", "multiline": True,
                         "max_length": min(NOTE_MAX_CHARS, INPUT_MAX)}},
            {"type": "input", "block_id": "due", "optional": True, "label": _plain("Revised due date"),
             "hint": _plain("For example June 2027 or 30/06/2027"),
             "element": {"type": "plain_text_input", "action_id": "value", "max_length": MAX_DUE_CHARS,
                         "placeholder": _plain("June 2027")}},
        ],
    }


def action_list(name: str, actions: list[tuple[Action, CurrentState]], *, home: bool = False) -> tuple[str, list[dict[str, Any]]]:
    """The open actions of one person, each with Update…: the /chaser answer and the Home tab."""
    if not actions:
        text = f"{name}, you have no open actions in Chaser. Nothing to update."
        return text, [_section(text)]
    text = f"Your open actions ({len(actions)}): choose Update… to record progress."
    blocks = [_section(f"*{mrkdwn_escape(text)}*")]
    for action, state in actions[:LIST_MAX]:
        facts = [STATUS_LABELS.get(state.status, "No status yet") if state.status else "No status yet"]
        if state.due:
            facts.append(f"due {format_day(state.due)}")
        line = f"*{mrkdwn_escape(action.ref)}* {mrkdwn_escape(action.title)}\n{mrkdwn_escape(' · '.join(facts))}"
        blocks.append(_section(f"{mrkdwn_escape(action.plan.name)}: {line}", update_button(action.id)))
    if len(actions) > LIST_MAX:
        blocks.append(_section(f"…and {len(actions) - LIST_MAX} more: update these first."))
    if home:
        blocks.insert(0, {"type": "header", "text": _plain("Chaser", 150)})
    return text, blocks


__all__ = ["SlackAnswers", "action_list", "form_errors", "thread_pool", "update_modal"]
