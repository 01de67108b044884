"""The short email that answers a reply: what was recorded, or why nothing was.

After a reply by email is read (bot.inbox), its sender gets one ``confirmation`` message
through the outbox, threaded under their reply (``In-Reply-To``, ``References``, ``Re:``
subject):

- per action recorded: the status, note and date as recorded, with the answer links to change it;
- for a reply that could not be applied (``unclear``: one status for a message about several
  actions, a date that cannot be read; ``not_allowed``: not an owner of that action): what was
  wrong, in the words the replies table keeps for the EDI lead, and the actions the message was
  about with their answer links, so answering again takes one click or one reply naming refs.

Never for an automatic reply (out of office, a robot: its reply is ``auto_reply``), for a
duplicate of a reply already answered, for a sender not in the people directory (no answer to
spam or to a forged From), or for mail from Chaser's own address: two robots must not answer
each other. The confirmation itself says ``Auto-Submitted: auto-replied`` (RFC 3834), so a
well-behaved robot does not answer it either.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.inbound import ReplyResult
from storage.models import Action, Outbox, Person, Plan
from storage.updates import current_states

KIND = "confirmation"
ANSWERED = ("applied", "unclear", "not_allowed")  # outcomes a person is told about
MAX_SUBJECT_CHARS = 200


def queue_confirmation(session: Session, results: Sequence[ReplyResult], *, outbox_id: int | None,
                       message_id: str | None, subject: str, sender: str, own_addresses: Iterable[str],
                       now: dt.datetime) -> int | None:
    """Queue the confirmation of one reply mail (its ``results``, one per action it answered);
    the id of the outbox row, or None when nobody is to be told (see the module docstring)."""
    told = [r for r in results if r.outcome in ANSWERED and r.person is not None]
    if not told or sender.lower() in {a.lower() for a in own_addresses}:
        return None
    person: Person = told[0].person  # type: ignore[assignment]
    recorded = [(r, u) for r in told if r.applied for u in r.updates]
    refused = [r for r in told if not r.applied]
    items: list[dict[str, Any]] = []
    shown: set[int] = set()
    ids = [u.action_id for _, u in recorded]
    if refused:  # the message's actions, to answer again
        ids += [a.id for r in refused for a in r.actions] or _message_actions(session, outbox_id)
    actions = {a.id: a for a in session.scalars(select(Action).where(Action.id.in_(ids)))} if ids else {}
    states = current_states(session, actions.values())
    plans = dict(session.execute(select(Plan.id, Plan.name).where(Plan.id.in_({a.plan_id for a in actions.values()}))
                                 ).all()) if actions else {}
    by_update = {u.action_id: u for _, u in recorded}
    for action_id in ids:
        action = actions.get(action_id)
        if action is None or action_id in shown:
            continue
        shown.add(action_id)
        state = states[action_id]
        item: dict[str, Any] = {
            "action_id": action_id, "ref": action.ref, "title": action.title, "plan": plans.get(action.plan_id, ""),
            "rule": "reply", "due": state.due.isoformat() if state.due else None, "due_text": state.due_text,
            "status": state.status,
        }
        update = by_update.get(action_id)
        if update is not None:
            item["recorded"] = {"status": update.new_status, "note": update.note, "due_text": update.revised_due_text,
                                "by": person.name, "via": update.channel, "at": update.created_at.isoformat()}
        items.append(item)
    notes = [f"{', '.join(a.ref for a in r.actions) + ': ' if r.actions else ''}{r.detail}" for r in refused
             if r.detail]
    payload = {"items": items, "notes": notes, "in_reply_to": message_id,
               "reply_subject": _re(subject), "outcome": "applied" if not refused else refused[0].outcome}
    row = Outbox(kind=KIND, person_id=person.id, recipient=person.email, channel="email", payload=payload,
                 state="queued", attempts=0, created_at=now, next_attempt_at=now, route=[])
    session.add(row)
    session.flush()
    return row.id


def _message_actions(session: Session, outbox_id: int | None) -> list[int]:
    if outbox_id is None:
        return []
    payload = session.scalar(select(Outbox.payload).where(Outbox.id == outbox_id)) or {}
    return [int(item["action_id"]) for item in payload.get("items", ()) if item.get("action_id")]


def _re(subject: str) -> str:
    """``Re: <their subject>`` (not ``Re: Re:``), one line, bounded."""
    subject = " ".join(subject.split())
    if not subject:
        return ""
    if subject[:3].lower() != "re:":
        subject = f"Re: {subject}"
    return subject[:MAX_SUBJECT_CHARS]
