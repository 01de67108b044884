"""The one inbound path: every answer, from any channel, becomes a :class:`Reply` and goes
through :func:`handle_reply`.

Channels only parse (a Slack click, a Teams invoke, an email, the web form, ``chaser update``)
into a ``Reply``; this function decides, in one place, what becomes of it:

1. **De-duplicate** on ``(via, external_id)`` (a Slack retry, a mail delivered twice, a form
   sent twice): the first is claimed by a unique row in ``replies`` before any work is done,
   so two copies arriving at once cannot both apply; the second is kept as ``duplicate``.
2. An automatic reply (out of office) changes nothing: ``auto_reply``.
3. **Who**: the person the channel vouches for (a signed link names them), else the sender's
   address on that channel; ``record_update`` then checks that they may change every action
   answered (an owner, an owner's delegate or cover, or the EDI lead): else ``not_allowed``
   and nothing changes.
4. **What**: the actions named (ids from buttons and links, or refs as written), else the one
   action of the message answered; a status, note or date that cannot be read is ``unclear``
   (kept with the reason, for the EDI lead: ``chaser replies --outcome unclear``).
5. **Record** through ``record_update`` (tied to the message that prompted it:
   ``StatusUpdate.outbox_id``), all of the reply's actions or none, and queue an in-place
   update of every open chat message about those actions (an outbox row of kind ``update``),
   so nobody answers twice.

Nothing is committed here: the caller commits (or rolls back) with its own transaction.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bot.channels import channel_class
from bot.channels.base import Receipt, can_update
from bot.render import truncate_plain
from chaser.errors import InvalidValue, NotAllowed
from storage.dates import parse_when
from storage.models import Action, NudgeKey, Outbox, Person, Plan, Reply as ReplyRow, StatusUpdate
from storage.statuses import STATUSES
from storage.tracker import actions_with_ref
from storage.updates import NOTE_MAX_CHARS, clean_note, record_update

log = logging.getLogger("chaser.inbound")

MAX_DUE_CHARS = 100  # a date, written any way a plan writes one, not a paragraph
MAX_RAW_CHARS = 20_000  # of the text as received, kept for the EDI lead to read
# Chat messages older than this are not edited in place any more (their links have expired too).
REFRESH_WINDOW = dt.timedelta(days=60)
# Which column holds a person's address on each channel; email (and web, cli) use the email.
ADDRESS_COLUMNS = {"slack": Person.slack_id, "teams": Person.teams_id}


@dataclass(frozen=True)
class Reply:
    """An answer as a channel read it. Give ``person_id`` only when the channel vouches for the
    person (a signed link); otherwise ``sender`` (their address on ``via``) says who it is."""

    via: str  # web, cli, email, slack, teams
    sender: str
    received_at: dt.datetime
    person_id: int | None = None
    action_ids: tuple[int, ...] = ()  # the actions answered, from buttons and links
    refs: tuple[str, ...] = ()  # or as a person wrote them ("HW 3"), in ``plan`` if given
    plan: str | None = None
    outbox_id: int | None = None  # the message answered
    status: str | None = None  # green, amber, red, complete, not_started
    note: str | None = None
    due_text: str | None = None
    raw: str | None = None  # the text as received
    external_id: str | None = None  # the channel's id of this event: a repeat of it is a duplicate
    auto_reply: bool = False


@dataclass(frozen=True)
class ReplyResult:
    outcome: str  # applied, not_allowed, unclear, auto_reply, duplicate
    detail: str | None
    reply_id: int
    actions: tuple[Action, ...] = ()
    updates: tuple[StatusUpdate, ...] = ()
    person: Person | None = None
    refreshes: int = 0  # in-place updates of chat messages queued

    @property
    def applied(self) -> bool:
        return self.outcome == "applied"


@dataclass(frozen=True)
class Policy:
    """What the inbound path needs of the configuration: who the EDI leads are (they may answer
    for anyone) and which enabled channels edit their messages in place."""

    edi_leads: tuple[str, ...] = ()
    updatable: tuple[str, ...] = ()

    @classmethod
    def of(cls, config: Any) -> Policy:
        """From a ``chaser.config.Config`` (``edi_lead``, ``channels.order``), or a Policy as it is."""
        if isinstance(config, Policy):
            return config
        return cls(edi_leads=(config.edi_lead,) if config.edi_lead else (), updatable=updatable_channels(config))


def handle_reply(session: Session, reply: Reply, config: Any) -> ReplyResult:
    """Decide, record and store one reply; see the module's docstring. ``config`` is the
    configuration (the EDI lead, the channels in use) or a :class:`Policy` taken from it."""
    policy = Policy.of(config)
    # Kept as received, less control characters (a NUL cannot be stored on PostgreSQL).
    raw = clean_note(reply.raw, limit=False)
    values: dict[str, Any] = {
        "received_at": reply.received_at, "via": reply.via, "external_id": reply.external_id,
        "sender": (clean_note(reply.sender, limit=False) or "?")[:320], "person_id": None,
        "refs": list(reply.refs), "status": reply.status,
        "note": clean_note(reply.note, limit=False), "due_text": clean_note(reply.due_text, limit=False),
        "raw": raw[:MAX_RAW_CHARS] if raw else None, "outcome": "applied", "detail": None, "duplicate_of": None,
    }
    # Read first, write once: who it is, which actions, what it says. The reply row then claims
    # the event in one statement (a copy arriving at the same moment finds the unique
    # (via, external_id) taken and changes nothing) with the outcome it expects; only an answer
    # that record_update refuses is updated afterwards.
    person = actions = status = due = None
    if reply.auto_reply:
        values.update(outcome="auto_reply", detail="an automatic reply (out of office or similar): nothing was changed")
    elif (person := _person(session, reply)) is None:
        values.update(outcome="not_allowed", detail=f"{reply.sender} is not in the people directory")
    else:
        values["person_id"] = person.id
        try:
            actions = _actions(session, reply)
            values["refs"] = [a.ref for a in actions]
            status, due = _values(reply)
        except InvalidValue as exc:
            values.update(outcome="unclear", detail=str(exc))
    claimed = _claim(session, values, reply.outbox_id)
    if claimed is None:
        first = session.scalar(select(ReplyRow.id).where(ReplyRow.via == reply.via,
                                                         ReplyRow.external_id == reply.external_id))
        detail = f"the same {reply.via} event as reply {first}: recorded once"
        copy = _claim(session, {**values, "external_id": None, "outcome": "duplicate", "duplicate_of": first,
                                "detail": detail}, reply.outbox_id)
        assert copy is not None
        return ReplyResult("duplicate", detail, copy[0], person=person)
    reply_id, outbox_id = claimed  # outbox_id: None if that message was deleted since (the answer still counts)
    found: dict[str, Any] = {"person": person, "actions": tuple(actions or ())}
    if values["outcome"] != "applied":
        log.info("reply %d via %s from %s: %s (%s)", reply_id, reply.via, reply.sender, values["outcome"],
                 values["detail"])
        return ReplyResult(values["outcome"], values["detail"], reply_id, **found)
    assert person is not None and actions is not None
    # record_update checks who may change each action (and says so in the same words on every
    # channel); a reply about several actions is recorded for all of them or none.
    several = session.begin_nested() if len(actions) > 1 else contextlib.nullcontext()
    try:
        with several:
            updates = tuple(
                record_update(session, action, channel=reply.via, by=person, status=status, note=reply.note,
                              due=due, at=reply.received_at, edi_leads=policy.edi_leads, outbox_id=outbox_id,
                              reply_id=reply_id)
                for action in actions
            )
    except (InvalidValue, NotAllowed) as exc:
        outcome = "not_allowed" if isinstance(exc, NotAllowed) else "unclear"
        session.execute(update(ReplyRow).where(ReplyRow.id == reply_id).values(outcome=outcome, detail=str(exc)))
        log.info("reply %d via %s from %s: %s (%s)", reply_id, reply.via, reply.sender, outcome, exc)
        return ReplyResult(outcome, str(exc), reply_id, **found)
    refreshes = queue_refreshes(session, [a.id for a in actions], reply.received_at, policy.updatable)
    return ReplyResult("applied", None, reply_id, updates=updates, refreshes=refreshes, **found)


def updatable_channels(config: Any) -> tuple[str, ...]:
    """The enabled channels that can edit a message they sent (Slack's chat.update, Teams)."""
    return tuple(kind for kind in config.channels.order if can_update(channel_class(kind)))


def queue_refreshes(session: Session, action_ids: Sequence[int], now: dt.datetime, channels: Sequence[str]) -> int:
    """Queue an in-place update of every sent chat message about these actions (on a channel that
    can edit messages, sent within REFRESH_WINDOW) that has none waiting yet. The update row is
    claimed, retried and parked like a send; the dispatcher reads what to show when it sends."""
    if not channels or not action_ids:
        return 0
    messages = session.execute(
        select(Outbox.id, Outbox.person_id, Outbox.recipient, Outbox.channel)
        .where(Outbox.id.in_(select(NudgeKey.outbox_id).where(NudgeKey.action_id.in_(action_ids))),
               Outbox.state == "sent", Outbox.kind.in_(("nudge", "lead_list")), Outbox.channel.in_(channels),
               Outbox.created_at >= now - REFRESH_WINDOW)
    ).all()
    waiting = set(session.scalars(select(Outbox.target_id).where(
        Outbox.target_id.in_([m.id for m in messages]), Outbox.state.in_(("queued", "failed")))))
    queued = 0
    for message in messages:
        if message.id in waiting:
            continue  # one waiting update shows every answer: it reads them when it is sent
        session.add(Outbox(kind="update", target_id=message.id, person_id=message.person_id,
                           recipient=message.recipient, channel=message.channel, payload={"items": []},
                           state="queued", attempts=0, created_at=now, next_attempt_at=now, route=[]))
        queued += 1
    session.flush()
    return queued


def _claim(session: Session, values: dict[str, Any], outbox_id: int | None) -> tuple[int, int | None] | None:
    """Insert a reply row: (its id, the message it answers if that message still exists), or None
    when its (via, external_id) is already taken."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    message = select(Outbox.id).where(Outbox.id == outbox_id).scalar_subquery() if outbox_id is not None else None
    statement = insert(ReplyRow).values(**values, outbox_id=message)
    statement = statement.on_conflict_do_nothing(index_elements=["via", "external_id"])
    row = session.execute(statement.returning(ReplyRow.id, ReplyRow.outbox_id)).first()
    return (row[0], row[1]) if row is not None else None


def _person(session: Session, reply: Reply) -> Person | None:
    if reply.person_id is not None:
        return session.get(Person, reply.person_id)
    column = ADDRESS_COLUMNS.get(reply.via)
    if column is not None:
        return session.scalar(select(Person).where(column == reply.sender.strip()))
    return session.scalar(select(Person).where(Person.email == reply.sender.strip().lower()))


def _actions(session: Session, reply: Reply) -> list[Action]:
    """The actions a reply answers; InvalidValue says why they cannot be told."""
    found: list[Action] = []
    for action_id in reply.action_ids:
        action = session.get(Action, action_id)
        if action is None:
            raise InvalidValue(f"action {action_id} is no longer in the tracker")
        found.append(action)
    plan = session.scalar(select(Plan).where(Plan.name == reply.plan)) if reply.plan else None
    if reply.plan and plan is None:
        raise InvalidValue(f"there is no plan {reply.plan!r}")
    for ref in reply.refs:
        matches = actions_with_ref(session, ref, plan)
        if not matches:
            raise InvalidValue(f"there is no action {ref}" + (f" in plan {reply.plan!r}" if reply.plan else ""))
        if len(matches) > 1:
            raise InvalidValue(f"{ref} is in several plans: say which")
        found.append(matches[0])
    if not found and reply.outbox_id is not None:
        message = session.get(Outbox, reply.outbox_id)
        items = message.payload.get("items", []) if message is not None else []
        if len(items) == 1:
            action = session.get(Action, items[0]["action_id"])
            found = [action] if action is not None else []
        elif items:
            refs = ", ".join(item["ref"] for item in items)
            raise InvalidValue(f"the reminder was about {len(items)} actions ({refs}): say which one this is about")
    if not found:
        raise InvalidValue("it does not say which action it is about")
    return list(dict.fromkeys(found))  # once each, in order


def _values(reply: Reply) -> tuple[str | None, Any]:
    status = reply.status
    if status is not None and status not in STATUSES:
        raise InvalidValue(f"{status!r} is not a status: choose on track, at risk, off track or done")
    due = None
    if reply.due_text:
        if len(reply.due_text) > MAX_DUE_CHARS:
            raise InvalidValue(f"the new due date is longer than {MAX_DUE_CHARS} characters: write just the date")
        due = parse_when(reply.due_text)
    if status is None and not (reply.note or "").strip() and due is None:
        raise InvalidValue("nothing to record: give a status, a note or a new date")
    return status, due


def form_errors(status: str | None, note: str | None, due_text: str | None) -> dict[str, str]:
    """What a chat form (Slack's modal, Teams' Update card) refuses, by field (``status``, ``note``,
    ``due``), said beside the field: what the web form refuses too."""
    if note is not None and len(note) > NOTE_MAX_CHARS:
        return {"note": f"Keep the note under {NOTE_MAX_CHARS:,} characters."}
    if due_text is not None:
        if len(due_text) > MAX_DUE_CHARS:
            return {"due": f"Write just the date (at most {MAX_DUE_CHARS} characters)."}
        parsed = parse_when(due_text)
        if parsed.end is None:
            why = parsed.warning or "no date could be read"
            return {"due": truncate_plain(f"Chaser could not read this date ({why}). Write it like "
                                          "June 2027 or 30/06/2027.", 150)}
    if status is None and note is None and due_text is None:
        return {"status": "Choose a status, or write a note or a new due date."}
    return {}


def take_refresh(session: Session, outbox_id: int | None, channel: str, refresh: Any,
                 now: dt.datetime) -> tuple[Outbox, Any] | None:
    """For a chat answer that applied: the message answered (a sent message of ``channel``) and
    ``refresh(session, message)``, its updated envelope, with its queued in-place update marked
    as sent (the channel's listener shows the update at once, so the dispatcher does not update
    the same message again). None when there is nothing to update here."""
    if refresh is None or outbox_id is None:
        return None
    message = session.get(Outbox, outbox_id)
    if message is not None and message.kind == "update" and message.target_id is not None:
        message = session.get(Outbox, message.target_id)  # a button of a message already updated once
    if message is None or message.channel != channel or message.state != "sent" or not message.receipt:
        return None
    if message.created_at < now - REFRESH_WINDOW:
        return None  # too old to edit in place, as for every other message
    envelope = refresh(session, message)
    session.execute(update(Outbox).where(Outbox.kind == "update", Outbox.target_id == message.id,
                                         Outbox.state == "queued")
                    .values(state="sent", sent_at=now, receipt=message.receipt, lease_until=None)
                    .execution_options(synchronize_session=False))
    return message, envelope


def after_pool(name: str, workers: int = 4) -> Callable[[Callable[[], None]], None]:
    """Run work that follows an answer (a chat message updated, a few words back) on a small
    pool of threads named ``name``, its failures logged: the answer is already committed."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)

    def run(work: Callable[[], None]) -> None:
        def logged() -> None:
            try:
                work()
            except Exception:  # noqa: BLE001 - nobody waits for it: log it
                log.exception("%s: work after an answer failed", name)
        pool.submit(logged)

    return run


def update_at_once(sessions: Any, channel: Any, message: Outbox, envelope: Any, now: Callable[[], dt.datetime]) -> None:
    """Replace the answered chat ``message`` with ``envelope`` through its channel right away
    (``channel.update``: its rendering, its limits); when that fails, queue the message's
    in-place update for the dispatcher again, which retries it like any send."""
    try:
        channel.update(Receipt.from_json(message.receipt or {}), envelope)
    except Exception as exc:  # noqa: BLE001 - whatever it was, the dispatcher tries again
        log.warning("%s: updating message %d at once failed (%s): queued for the dispatcher", channel.kind,
                    message.id, exc)
        ids = [item["action_id"] for item in message.payload.get("items", ())]
        with sessions.begin() as session:
            queue_refreshes(session, ids, now(), (channel.kind,))
