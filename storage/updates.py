"""``record_update``: the one way any channel changes an action, and the state derived from history.

Nothing here overwrites: every change is a new ``StatusUpdate`` row. An action's current status,
latest note and due date are read back from that history by ``current_states``.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from chaser.errors import InvalidValue, NotAllowed
from storage.dates import ParsedDate
from storage.models import CHECK_NOW, STATUSES, Action, Person, StatusUpdate, utcnow
from storage.people import holders, owners_of

SYSTEM_CHANNELS = ("import",)


@dataclass(frozen=True)
class CurrentState:
    status: str | None
    note: str | None
    due: dt.date | None
    due_precision: str | None
    due_text: str | None
    updated_at: dt.datetime | None
    updated_by: str | None


def current_states(session: Session, actions: Iterable[Action]) -> dict[int, CurrentState]:
    """action id -> state folded from its history (one query for any number of actions)."""
    actions = list(actions)
    folded: dict[int, dict[str, object]] = {
        a.id: {
            "status": None, "note": None, "due": a.due_date, "due_precision": a.due_precision,
            "due_text": a.due_text, "updated_at": None, "updated_by": None,
        }
        for a in actions
    }
    ids = list(folded)
    for start in range(0, len(ids), 5000):  # stay under the database's parameter limits
        chunk = ids[start:start + 5000]
        rows = session.scalars(
            select(StatusUpdate).where(StatusUpdate.action_id.in_(chunk)).order_by(StatusUpdate.action_id, StatusUpdate.id)
        )
        for update in rows:
            state = folded[update.action_id]
            if update.new_status is not None:
                state["status"] = update.new_status
            if update.note:
                state["note"] = update.note
            if update.revised_due_text is not None:
                state["due"] = update.revised_due
                state["due_precision"] = update.revised_due_precision
                state["due_text"] = update.revised_due_text
            if update.channel not in SYSTEM_CHANNELS:
                state["updated_at"] = update.created_at
                state["updated_by"] = update.by_text
    return {k: CurrentState(**v) for k, v in folded.items()}  # type: ignore[arg-type]


def current_state(session: Session, action: Action) -> CurrentState:
    return current_states(session, [action])[action.id]


def can_change(session: Session, action: Action, person: Person, edi_leads: Iterable[str]) -> bool:
    """Only an action's owner, an owner's delegate, or an EDI lead may change it."""
    if person.email.lower() in {e.lower() for e in edi_leads}:
        return True
    owners = owners_of(session, action, holders(session))
    return any(person.id == o.id or (o.delegate_id is not None and o.delegate_id == person.id) for o in owners)


def record_update(
    session: Session,
    action: Action,
    *,
    channel: str,
    by: Person | None = None,
    by_text: str | None = None,
    status: str | None = None,
    note: str | None = None,
    due: ParsedDate | None = None,
    at: dt.datetime | None = None,
    edi_leads: Iterable[str] = (),
    previous_status: str | None | object = ...,
) -> StatusUpdate:
    """Append one update to the action's history after checking who may make it.

    ``channel`` names where it came from (cli, slack, teams, email, web, import). Only the
    ``import`` channel may act without a person: it is the plan file itself speaking. A bulk
    caller that already folded the history passes ``previous_status`` to save a query per action.
    """
    if status is not None and status not in STATUSES:
        raise InvalidValue(f"status {status!r} is not one of {', '.join(STATUSES)}")
    if due is not None and due.warning is not None and due.end is None and channel not in SYSTEM_CHANNELS:
        raise InvalidValue(f"due date: {due.warning}")
    note = note.strip() if note else None
    if status is None and not note and due is None:
        raise InvalidValue("nothing to record: give a status, a note or a due date")
    if channel in SYSTEM_CHANNELS:
        actor = by_text or channel
    else:
        if by is None:
            raise NotAllowed(f"{channel} updates must say who made them")
        if not can_change(session, action, by, edi_leads):
            raise NotAllowed(
                f"{by.email} may not update {action.ref}: only its owners, their delegates or the EDI lead may"
            )
        actor = by.email
    previous = current_state(session, action).status if previous_status is ... else previous_status
    update = StatusUpdate(
        action_id=action.id,
        created_at=at or utcnow(),
        channel=channel,
        by_person_id=by.id if by is not None else None,
        by_text=actor,
        old_status=previous,  # type: ignore[arg-type]
        new_status=status,
        note=note,
        revised_due=due.end if due is not None else None,
        revised_due_precision=due.precision if due is not None else None,
        revised_due_text=due.raw if due is not None else None,
    )
    session.add(update)
    # A status, note or date changes what is due: the reminder sweep looks at it again.
    action.next_check_at = CHECK_NOW
    session.flush()
    return update
