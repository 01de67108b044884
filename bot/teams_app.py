"""What Chaser does with what Teams sends to ``POST /teams/messages`` (issue 14).

Every request is checked first (bot.teams_auth: the Bot Connector's signed token, for this
bot, for this activity's service URL; the activity's tenant is ``[channels.teams] tenant_id``):
anything else is answered 401/403 and changes nothing. Then, by activity:

- ``installationUpdate`` (``add``) and ``conversationUpdate`` adding the bot, and any
  ``message`` in a personal chat: the **conversation reference** (service URL, conversation
  id, tenant, Teams user id) is stored on the person (``people.teams_conversation``), who is
  found by the sender's ``aadObjectId`` (the directory's ``teams_id``), else by their user
  principal name or email (asked of the Bot Connector) matched to the directory email, which
  then also fills in their ``teams_id``. From then on the Teams channel can reach them.
  ``installationUpdate`` ``remove`` (and a conversationUpdate removing the bot) marks them
  unreachable (``people.teams_blocked_at``), as a 403 on sending does.
- ``invoke`` ``adaptiveCard/action`` (a card's ``Action.Execute``): the answer goes through
  bot.inbound.handle_reply with ``via="teams"`` (who may change the action is decided there),
  in one transaction, and the invoke response **is the updated card** (``statusCode`` 200,
  ``application/vnd.microsoft.card.adaptive``): Teams replaces the card in place at once, and
  the message's queued in-place update is marked as sent (bot.inbound.take_refresh), so the
  dispatcher does not update it again. A form that cannot be used (an unreadable date, nothing
  to record) and an answer that is refused come back as the same card with the reason under
  the item, and the form still filled in.
- a ``message`` with a ``value`` (``Action.Submit``, from clients without Universal Actions):
  the same answer; the card is then updated with a PUT of the activity (after the commit, on
  a worker thread; if that fails the dispatcher's queued update does it).
- other text in a personal chat: a short answer with how many open actions the person has
  (or that they are not in the directory).

The activity's ``id`` is the reply's ``external_id``: a retry of the same invoke is recorded
once. Handlers are sync (Starlette runs them in its thread pool), like the rest of the web app.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.channels.base import Envelope
from bot.inbound import Policy, Reply, ReplyResult, form_errors, handle_reply, take_refresh, update_at_once
from bot.teams_auth import Refused, TokenCheck
from bot.teams_cards import (
    CARD_CONTENT_TYPE,
    SNOOZE_VERB,
    UPDATE_VERB,
    Answer,
    note_card,
    nudge_card,
    read_answer,
)
from storage.controls import snooze
from storage.dates import format_day
from storage.db import session_factory
from storage.models import Action, Clock, Outbox, Person
from storage.tracker import open_actions
from storage.updates import can_change

log = logging.getLogger("chaser.teams")

ROUTE = "/teams/messages"
SNOOZE_DAYS = 7
CARD_ACTION = "adaptiveCard/action"

Refresh = Callable[[Session, Outbox], Envelope]
After = Callable[[Callable[[], None]], None]


def _run_now(work: Callable[[], None]) -> None:
    work()


class TeamsAnswers:
    """The ``/teams/messages`` endpoint. ``channel`` is the Teams channel (bot.channels.teams:
    its ``update`` replaces a card, ``member`` looks a user up, ``reply`` answers a chat);
    ``refresh`` renders a message updated in place (the dispatcher's envelope); ``after`` runs
    work that follows the answer (default: at once, in the request's thread)."""

    def __init__(self, engine: Engine, config: Any, *, clock: Clock, channel: Any, check: TokenCheck,
                 tenant_id: str, refresh: Refresh | None = None, after: After | None = None) -> None:
        self.sessions = session_factory(engine)
        self.policy = Policy.of(config)
        self.clock = clock
        self.channel = channel
        self.check = check
        self.tenant_id = tenant_id.lower()
        self.refresh = refresh
        self.after = after or _run_now

    def route(self) -> Route:
        return Route(ROUTE, self.endpoint, methods=["POST"], name="teams_messages")

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        status, answer = await run_in_threadpool(self.handle, request.headers.get("authorization"), body)
        return JSONResponse(answer, status_code=status)

    # -- one request ----------------------------------------------------------------------
    def handle(self, authorization: str | None, body: bytes) -> tuple[int, dict[str, Any]]:
        """``(HTTP status, JSON body)`` for one request from the Bot Connector."""
        try:
            activity = json.loads(body or b"")
        except ValueError:
            activity = None
        if not isinstance(activity, dict):
            return 400, {"error": "the body is not a Bot Framework activity (a JSON object)"}
        try:
            self.check.verify(authorization, activity)
        except Refused as exc:
            log.warning("teams: refused a request (%s): %s", exc.status, exc.reason)
            return exc.status, {"error": "unauthorized" if exc.status == 401 else "forbidden"}
        tenant = _tenant(activity)
        if tenant != self.tenant_id:
            log.warning("teams: refused an activity from tenant %r (this bot serves %s)", tenant, self.tenant_id)
            return 403, {"error": "forbidden"}
        kind = activity.get("type")
        if kind == "invoke":
            return self.on_invoke(activity)
        if kind == "message":
            return self.on_message(activity)
        if kind in ("installationUpdate", "conversationUpdate"):
            return self.on_installation(activity)
        return 200, {}

    # -- installs and chats ---------------------------------------------------------------
    def on_installation(self, activity: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        bot = (activity.get("recipient") or {}).get("id")
        if activity.get("type") == "installationUpdate":
            added = str(activity.get("action") or "").startswith("add")
            removed = str(activity.get("action") or "").startswith("remove")
        else:
            added = any((m or {}).get("id") == bot for m in activity.get("membersAdded") or ())
            removed = any((m or {}).get("id") == bot for m in activity.get("membersRemoved") or ())
        if not _personal(activity):
            return 200, {}  # installed in a team or a group chat: no one person to remember
        if added:
            self.remember(activity)
        elif removed:
            with self.sessions.begin() as session:
                person = self._person(session, activity)
                if person is not None:
                    person.teams_blocked_at = self.clock()
                    log.info("teams: %s removed the Chaser app: marked unreachable", person.email)
        return 200, {}

    def remember(self, activity: dict[str, Any]) -> Person | None:
        """Store the sender's conversation reference on their person (module docstring)."""
        sender = activity.get("from") or {}
        aad = sender.get("aadObjectId")
        service_url = str(activity.get("serviceUrl") or "")
        conversation = str((activity.get("conversation") or {}).get("id") or "")
        if not conversation or not service_url:
            return None
        with self.sessions.begin() as session:
            person = self._person(session, activity)
            if person is None:
                email = self._email(service_url, conversation, sender)
                if email:
                    person = session.scalars(select(Person).where(Person.email == email.lower())).first()
                if person is None:
                    log.info("teams: %s (%s) is not in the people directory: their chat is not stored",
                             sender.get("name") or "someone", aad or sender.get("id"))
                    return None
                if aad:
                    person.teams_id = aad
            reference = {"service_url": service_url, "conversation_id": conversation, "tenant_id": _tenant(activity),
                         "user_id": str(sender.get("id") or ""), "stored_at": self.clock().isoformat()}
            if person.teams_conversation != reference or person.teams_blocked_at is not None:
                if (person.teams_conversation or {}).get("conversation_id") != conversation \
                        or person.teams_blocked_at is not None:
                    log.info("teams: stored the chat with %s", person.email)
                person.teams_conversation = reference
                person.teams_blocked_at = None
            session.flush()
            session.expunge(person)
            return person

    def _email(self, service_url: str, conversation: str, sender: Mapping[str, Any]) -> str | None:
        """The sender's user principal name (or email), asked of the Bot Connector."""
        user = sender.get("id")
        if not user:
            return None
        try:
            member = self.channel.member(service_url, conversation, str(user))
        except Exception as exc:  # noqa: BLE001 - the install is kept for the next message
            log.warning("teams: could not look up %s in their chat (%s)", user, exc)
            return None
        value = member.get("userPrincipalName") or member.get("email")
        return str(value) if value else None

    def on_message(self, activity: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if _personal(activity):
            person = self.remember(activity)
        else:
            person = None
        value = activity.get("value")
        if value is not None:
            answer = read_answer(value)
            if answer is None:
                return 200, {}
            card, message, envelope = self.answer(activity, answer)
            if message is not None and envelope is not None:
                self.after(lambda: self.update_message(message, envelope))
            return 200, {}
        if _personal(activity):
            text = self.greeting(person)
            service_url = str(activity.get("serviceUrl"))
            conversation = str((activity.get("conversation") or {}).get("id"))
            self.after(lambda: self.channel.reply(service_url, conversation, text, reply_to=activity.get("id")))
        return 200, {}

    def greeting(self, person: Person | None) -> str:
        if person is None:
            return ("Your Teams account is not in Chaser's people directory, so Chaser cannot tell which actions "
                    "are yours. Ask your EDI lead to add you (your work email, or your Teams id).")
        with self.sessions() as session:
            count = len(open_actions(session, person.id))
        return (f"Hello {person.name}: Chaser will send your reminders here. You have {count} open "
                f"action{'s' if count != 1 else ''}; answer each reminder with its buttons.")

    # -- answers --------------------------------------------------------------------------
    def on_invoke(self, activity: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if activity.get("name") != CARD_ACTION:
            return 200, {}
        action = (activity.get("value") or {}).get("action") or {}
        answer = read_answer(action.get("data"))
        if answer is None:
            return 200, {"statusCode": 400, "type": "application/vnd.microsoft.error",
                         "value": {"code": "BadRequest", "message": "This card is not one of Chaser's."}}
        card, _, _ = self.answer(activity, answer)
        return 200, {"statusCode": 200, "type": CARD_CONTENT_TYPE, "value": card}

    def answer(self, activity: dict[str, Any], answer: Answer) -> tuple[dict[str, Any], Outbox | None,
                                                                         Envelope | None]:
        """Record one answer; ``(the card to show, the message updated, its envelope)`` — the
        last two None when there was nothing to update in place."""
        now = self.clock()
        a = answer.action_id
        if answer.verb == SNOOZE_VERB:
            return self.snooze(activity, answer), None, None
        if answer.verb == UPDATE_VERB:
            errors = form_errors(answer.status, answer.note, answer.due_text)
            if errors:
                with self.sessions() as session:
                    return self.card_of(session, answer, errors={a: next(iter(errors.values()))}), None, None
        sender = (activity.get("from") or {})
        reply = Reply(via="teams", sender=str(sender.get("aadObjectId") or sender.get("id") or "?"), received_at=now,
                      action_ids=(a,), outbox_id=answer.outbox_id, status=answer.status, note=answer.note,
                      due_text=answer.due_text, raw=json.dumps(activity.get("value"))[:2000],
                      external_id=f"activity {activity.get('id')}")
        with self.sessions.begin() as session:
            person = self._person(session, activity)
            if person is not None:
                reply = replace(reply, sender=person.email, person_id=person.id)
            result = handle_reply(session, reply, self.policy)
            if result.outcome == "duplicate" or result.applied:
                shown = take_refresh(session, answer.outbox_id, "teams", self.refresh, now) if result.applied else None
                if shown is None:
                    return self.card_of(session, answer), None, None
                message, envelope = shown
                original = _original(envelope, message)
                session.expunge_all()
            else:
                return self.card_of(session, answer, errors={a: refusal(result)}), None, None
        # The card is built after the commit: on SQLite the write lock is not held while it is.
        return nudge_card(original), message, envelope

    def card_of(self, session: Session, answer: Answer, *, errors: Mapping[int, str] | None = None,
                told: Mapping[int, str] | None = None) -> dict[str, Any]:
        """The card of the message answered as it stands now, with ``errors``/``told`` under the
        item (and the form as it was filled in); a card of the words alone when that message is
        not a Teams message Chaser can show."""
        message = session.get(Outbox, answer.outbox_id) if answer.outbox_id is not None else None
        if message is not None and message.kind == "update" and message.target_id is not None:
            message = session.get(Outbox, message.target_id)
        if message is not None and message.channel == "teams" and self.refresh is not None:
            envelope = _original(self.refresh(session, message), message)
            return nudge_card(envelope, errors=errors, told=told, kept={answer.action_id: answer.kept})
        action = session.get(Action, answer.action_id)
        words = [*(errors or {}).values(), *(told or {}).values()] or \
            [f"Recorded for {action.ref if action is not None else 'this action'}. Thank you."]
        return note_card("\n".join(words))

    def snooze(self, activity: dict[str, Any], answer: Answer) -> dict[str, Any]:
        with self.sessions.begin() as session:
            person = self._person(session, activity)
            action = session.get(Action, answer.action_id)
            if person is None or action is None:
                text = ("Your Teams account is not in Chaser's people directory, so nothing was changed."
                        if person is None else "That action is no longer in the tracker.")
                return self.card_of(session, answer, errors={answer.action_id: text})
            if not can_change(session, action, person, self.policy.edi_leads):
                return self.card_of(session, answer,
                                    errors={answer.action_id: f"You are not an owner of {action.ref}, so it was "
                                                              "not snoozed."})
            until = self.clock().date() + dt.timedelta(days=SNOOZE_DAYS)
            snooze(session, action, until)
            log.info("teams: %s snoozed %s until %s", person.email, action.ref, until)
            return self.card_of(session, answer, told={answer.action_id: f"No reminders about {action.ref} until "
                                                                         f"after {format_day(until)}."})

    def update_message(self, message: Outbox, envelope: Envelope) -> None:
        """PUT the answered card (an Action.Submit's); on failure the dispatcher's queued update does it."""
        update_at_once(self.sessions, self.channel, message, envelope, self.clock)

    @staticmethod
    def _person(session: Session, activity: Mapping[str, Any]) -> Person | None:
        aad = (activity.get("from") or {}).get("aadObjectId")
        if not aad:
            return None
        return session.scalars(select(Person).where(Person.teams_id == str(aad)).order_by(Person.id)).first()


def refusal(result: ReplyResult) -> str:
    """Why an answer changed nothing, in words for the person who pressed the button (plain
    text: it goes into a TextRun)."""
    refs = ", ".join(a.ref for a in result.actions) or "this action"
    if result.person is None:
        return ("Your Teams account is not in Chaser's people directory, so nothing was recorded. Ask your EDI "
                "lead to add your Teams id, or answer by email.")
    if result.outcome == "not_allowed":
        return (f"You are not an owner of {refs}, so nothing was recorded: only its owners, their delegates or "
                "cover, or the EDI lead may update it.")
    return f"Nothing was recorded: {result.detail or result.outcome}."


def _original(envelope: Envelope, message: Outbox) -> Envelope:
    """The buttons of an updated card go on naming the message they are in."""
    return replace(envelope, outbox_id=message.id)


def _tenant(activity: Mapping[str, Any]) -> str:
    tenant = (activity.get("conversation") or {}).get("tenantId") or \
        ((activity.get("channelData") or {}).get("tenant") or {}).get("id") or ""
    return str(tenant).lower()


def _personal(activity: Mapping[str, Any]) -> bool:
    return (activity.get("conversation") or {}).get("conversationType", "personal") == "personal"


__all__ = ["ROUTE", "TeamsAnswers", "refusal"]
