"""``record_update``: the one way any channel changes an action, and the state derived from history.

Nothing here overwrites: every change is a new ``StatusUpdate`` row. An action's current status,
latest note and due date are read back from that history by ``current_states``.
"""
from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from chaser.errors import InvalidValue, NotAllowed
from storage.db import id_chunks, id_in
from storage.dates import ParsedDate
from storage.models import CHECK_NOW, STATUSES, Action, ActionOwner, Person, PersonRole, StatusUpdate, utcnow
from storage.people import holders, owners_of

SYSTEM_CHANNELS = ("import",)
# A progress note is a few sentences; the answer form states this limit and every channel keeps it.
NOTE_MAX_CHARS = 5000
# Control characters (NUL, escape, C1 codes...) are invisible to the person who typed or pasted
# them and break PostgreSQL (NUL) or terminals; tabs and line breaks are kept.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def clean_note(note: str | None, *, limit: bool = True) -> str | None:
    """The note as it is stored: control characters removed, line breaks as ``\\n``, trimmed;
    InvalidValue when ``limit`` and it is longer than NOTE_MAX_CHARS (a plan file's own progress
    cell is kept whole: the import must not fail on a long cell)."""
    if not note:
        return None
    note = _CONTROL.sub("", note.replace("\r\n", "\n").replace("\r", "\n")).strip()
    if limit and len(note) > NOTE_MAX_CHARS:
        raise InvalidValue(f"the note is {len(note):,} characters long; at most {NOTE_MAX_CHARS:,} are kept, "
                           "so shorten it")
    return note or None


@dataclass(frozen=True)
class CurrentState:
    status: str | None
    note: str | None
    due: dt.date | None
    due_precision: str | None
    due_text: str | None
    updated_at: dt.datetime | None
    updated_by: str | None


def fold_history(session: Session, ids: Sequence[int], until: dt.datetime | None = None) -> dict[int, dict[str, Any]]:
    """Per action id with any history: the latest ``status``, ``note``, revised ``due`` (with
    ``due_precision`` and ``due_text``; the key is absent when the plan's date stands) and
    the last personal update (``updated_at``, ``updated_by``; imports do not count).

    One Core query per 5,000 actions: the reminder sweep folds thousands at a time. ``until``:
    only what was recorded by then (the plan as it stood at that moment). "Latest" is by the
    time an update was made (``created_at``), which ``chaser update --at`` can set in the past.
    """
    out: dict[int, dict[str, Any]] = {}
    columns = (StatusUpdate.action_id, StatusUpdate.new_status, StatusUpdate.note, StatusUpdate.revised_due,
               StatusUpdate.revised_due_precision, StatusUpdate.revised_due_text, StatusUpdate.channel,
               StatusUpdate.created_at, StatusUpdate.by_text)
    for chunk in id_chunks(list(ids)):
        query = select(*columns).where(id_in(session, StatusUpdate.action_id, chunk))
        if until is not None:
            query = query.where(StatusUpdate.created_at <= until)
        # In the order the updates were made: one loaded later with ``chaser update --at`` (last
        # year's highlight reports) takes its place in time, not after everything recorded since.
        rows = session.execute(query.order_by(StatusUpdate.action_id, StatusUpdate.created_at, StatusUpdate.id))
        for action_id, status, note, revised, precision, revised_text, channel, created, by_text in rows:
            state = out.setdefault(action_id, {})
            if status is not None:
                state["status"] = status
            if note:
                state["note"] = note
            if revised_text is not None:
                state["due"], state["due_precision"], state["due_text"] = revised, precision, revised_text
            if channel not in SYSTEM_CHANNELS:
                state["updated_at"], state["updated_by"] = created, by_text
    return out


def latest_statuses(session: Session, ids: Sequence[int]) -> dict[int, str]:
    """Per action id with a status in its history: the latest (``fold_history``'s ``status``),
    from two columns only. The count of someone's open actions on every card refreshed after a
    click needs no more: folding their whole history (notes, dates) was most of that click's time."""
    out: dict[int, str] = {}
    for chunk in id_chunks(list(ids)):
        rows = session.execute(
            select(StatusUpdate.action_id, StatusUpdate.new_status)
            .where(id_in(session, StatusUpdate.action_id, chunk), StatusUpdate.new_status.is_not(None))
            .order_by(StatusUpdate.action_id, StatusUpdate.created_at, StatusUpdate.id))
        for action_id, status in rows:
            out[action_id] = status  # in order: the last row of each action wins
    return out


def due_standing(state: dict[str, Any], due: dt.date | None, precision: str | None = None,
                 text: str | None = None) -> tuple[dt.date | None, str | None, str | None]:
    """The revised-due rule, in one place: the latest revised date recorded in the action's
    history (``fold_history``'s ``state``) stands over the plan's ``due``/``precision``/``text``,
    even a revision to "no date" (``On-going``)."""
    if "due" in state:
        return state["due"], state["due_precision"], state["due_text"]
    return due, precision, text


def current_states(session: Session, actions: Iterable[Action], until: dt.datetime | None = None) -> dict[int, CurrentState]:
    """action id -> state folded from its history (one query for any number of actions), as it
    stood at ``until`` when given."""
    actions = list(actions)
    folded = fold_history(session, [a.id for a in actions], until)
    states = {}
    for a in actions:
        state = folded.get(a.id, {})
        due, precision, text = due_standing(state, a.due_date, a.due_precision, a.due_text)
        states[a.id] = CurrentState(
            status=state.get("status"), note=state.get("note"), due=due, due_precision=precision, due_text=text,
            updated_at=state.get("updated_at"), updated_by=state.get("updated_by"),
        )
    return states


def note_cell(state: dict[str, Any]) -> str | None:
    """The latest note as a plan's progress cell shows it: with the date and who said it.

    ``state`` is one action's ``fold_history`` entry. ``chaser export`` writes this, and a
    re-import of the exported plan recognises it as the note already recorded.
    """
    note = state.get("note")
    if not note:
        return None
    if state.get("updated_at") is None:
        return note
    return f"{note} ({state['updated_at']:%d/%m/%Y}, {state.get('updated_by')})"


def current_state(session: Session, action: Action) -> CurrentState:
    return current_states(session, [action])[action.id]


def can_change(session: Session, action: Action, person: Person, edi_leads: Iterable[str]) -> bool:
    """Only an action's owner, an owner's delegate or cover, or an EDI lead may change it."""
    if person.email.lower() in {e.lower() for e in edi_leads}:
        return True
    # Usually every owner role is held in the directory: then its holders are read for this
    # action alone, in one query (every answer asks; holders() reads the whole directory).
    rows = session.execute(
        select(Person.id, Person.delegate_id, Person.cover_id)
        .select_from(ActionOwner)
        .outerjoin(PersonRole, PersonRole.role_id == ActionOwner.role_id)
        .outerjoin(Person, Person.id == PersonRole.person_id)
        .where(ActionOwner.action_id == action.id)
    ).all()
    if all(row.id is not None for row in rows):
        return any(person.id in row for row in rows)
    # A role nobody holds: the owner text may name a person (holders' name matching).
    owners = owners_of(session, action, holders(session))
    return any(person.id in (o.id, o.delegate_id, o.cover_id) for o in owners)


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
    outbox_id: int | None = None,
    reply_id: int | None = None,
) -> StatusUpdate:
    """Append one update to the action's history after checking who may make it.

    ``channel`` names where it came from (cli, slack, teams, email, web, import); ``outbox_id``
    the message that prompted it and ``reply_id`` the reply it came in (bot.inbound). Only the
    ``import`` channel may act without a person: it is the plan file itself speaking. A bulk
    caller that already folded the history passes ``previous_status`` to save a query per action.
    """
    if status is not None and status not in STATUSES:
        raise InvalidValue(f"status {status!r} is not one of {', '.join(STATUSES)}")
    if due is not None and due.warning is not None and due.end is None and channel not in SYSTEM_CHANNELS:
        raise InvalidValue(f"due date: {due.warning}")
    note = clean_note(note, limit=channel not in SYSTEM_CHANNELS)
    if status is None and not note and due is None:
        raise InvalidValue("nothing to record: give a status, a note or a due date")
    if channel in SYSTEM_CHANNELS:
        actor = by_text or channel
    else:
        if by is None:
            raise NotAllowed(f"{channel} updates must say who made them")
        if not can_change(session, action, by, edi_leads):
            raise NotAllowed(
                f"{by.email} may not update {action.ref}: only its owners, their delegates or cover, "
                "or the EDI lead may"
            )
        actor = by.email
    if previous_status is not ...:
        previous = previous_status
    elif at is not None:  # as it stood then: an update loaded with ``chaser update --at`` moves from that
        previous = current_states(session, [action], until=at)[action.id].status
    else:
        previous = current_state(session, action).status
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
        outbox_id=outbox_id,
        reply_id=reply_id,
    )
    session.add(update)
    # A status, note or date changes what is due: the reminder sweep looks at it again.
    action.next_check_at = CHECK_NOW
    session.flush()
    return update
