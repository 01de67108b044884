"""The tracker as every front end reads and changes it: plans, actions, people's leave, the outbox.

The app layer under the command line, the web app (``bot``) and the board digests (``jobs``):
each function takes a session in the caller's transaction and either answers a question with
plain data (frozen dataclasses of strings, numbers, dates and lists, with ``as_json()`` for
scripts) or makes one state change, with the time it happens at passed in. Nothing here knows
about terminals, pages or option names; refusals raise :class:`~chaser.errors.NotFound` or
:class:`~chaser.errors.InvalidValue` with a sentence for the person who asked.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from chaser.errors import InvalidValue, NotFound
from storage.controls import actions_of, recheck, set_paused
from storage.db import id_chunks, id_in
from storage.importers.parse import ref_key
from storage.models import Action, ActionOwner, Outbox, Person, PersonRole, Plan, Reply, StatusUpdate
from storage.people import DirectoryResult, holders, import_directory, owners_of
from storage.updates import CurrentState, current_states, latest_statuses

UNKNOWN = "unknown"  # the status filter for actions nobody has reported on yet
RETRYABLE = ("parked", "failed")
# Outbox ids are 32-bit integers on PostgreSQL; a larger number would overflow the database
# driver (SQLite's at 2**63) rather than simply match nothing.
MAX_OUTBOX_ID = 2**31 - 1


def _plain(value: Any) -> Any:
    """Dates as ISO text, recursively: what ``--format json`` and the web app's JSON give out."""
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _Data:
    def as_json(self) -> dict[str, Any]:
        """The fields in order, nested entries as objects, dates as ISO text."""
        return _plain(dataclasses.asdict(self))  # type: ignore[call-overload]


# --- finding what a person names ---------------------------------------------------------


def find_plan(session: Session, name: str | None) -> Plan | None:
    """The plan called ``name`` (None when no name is given); NotFound lists the plans there are."""
    if name is None:
        return None
    plan = session.scalar(select(Plan).where(Plan.name == name))
    if plan is None:
        names = ", ".join(repr(n) for n in session.scalars(select(Plan.name).order_by(Plan.name))) or "none yet"
        raise NotFound(f"no plan named {name!r} (plans: {names})")
    return plan


def actions_with_ref(session: Session, ref: str, plan: Plan | None = None) -> list[Action]:
    """Every action ``ref`` names (in ``plan`` if given), ignoring case and spaces, by plan."""
    query = select(Action).where(Action.ref_key == ref_key(ref)).options(
        selectinload(Action.owners).selectinload(ActionOwner.role), selectinload(Action.plan)
    )
    if plan is not None:
        query = query.where(Action.plan_id == plan.id)
    return list(session.scalars(query.order_by(Action.plan_id)))


def outbox_for_message_ids(session: Session, message_ids: Iterable[str]) -> int | None:
    """The sent outbox row whose email Message-ID is one of these (with or without angle
    brackets), trying them in the order given (a reply's In-Reply-To first); else None. One
    look-up in the index on ``outbox.message_id``."""
    wanted = [i.strip().strip("<>") for i in message_ids if i and i.strip().strip("<>")]
    if not wanted:
        return None
    found = dict(session.execute(
        select(Outbox.message_id, Outbox.id).where(Outbox.message_id.in_(wanted), Outbox.state == "sent")
    ).all())
    for message_id in wanted:
        if message_id in found:
            return int(found[message_id])
    return None


def find_action(session: Session, ref: str, plan_name: str | None = None) -> Action:
    """The action ``ref`` names, ignoring case and spaces (``hw3`` finds ``HW 3``).

    NotFound when no action has that ref, or when several plans have one and ``plan_name`` does
    not say which.
    """
    plan = find_plan(session, plan_name)
    found = actions_with_ref(session, ref, plan)
    if not found:
        where = f" in plan {plan.name!r}" if plan else ""
        raise NotFound(f"no action with ref {ref!r}{where}")
    if len(found) > 1:
        plans = ", ".join(repr(a.plan.name) for a in found)
        raise NotFound(f"ref {ref!r} is in several plans ({plans}): add --plan NAME")
    return found[0]


# --- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionSummary(_Data):
    """One action as a list shows it: ``due`` is the current due date (a revised date wins)."""

    ref: str
    title: str
    plan: str
    workstream: str | None
    group: str | None
    owners: list[str]  # the owner roles as the plan names them
    people: list[str]  # emails of those who hold the owner roles
    start: dt.date | None
    due: dt.date | None
    due_text: str | None
    due_precision: str | None
    recurring: bool
    recurrence: str | None
    key_dates: list[dict[str, Any]]
    status: str | None  # None: never reported
    note: str | None
    updated_at: dt.datetime | None


@dataclass(frozen=True)
class HistoryEntry(_Data):
    at: dt.datetime
    by: str
    channel: str
    old_status: str | None
    new_status: str | None
    note: str | None
    revised_due: dt.date | None
    revised_due_text: str | None
    owners_change: str | None


@dataclass(frozen=True)
class ActionDetail(ActionSummary):
    """Everything about one action: where the plan put it, what it says, and its history."""

    description: str | None
    owners_text: str | None
    dependencies: str | None
    resources: str | None
    success_measures: str | None
    next_steps: str | None
    start_text: str | None
    plan_due: dt.date | None  # the plan's own due date, before any revision
    plan_due_text: str | None
    lead_sponsor: str | None
    objective: str | None
    group_title: str | None
    source: Any  # where in the file the action was read
    history: list[HistoryEntry]


def _summary_fields(action: Action, state: CurrentState, people: list[str]) -> dict[str, Any]:
    return {
        "ref": action.ref,
        "title": action.title,
        "plan": action.plan.name,
        "workstream": action.workstream.name if action.workstream else None,
        "group": action.group.ref if action.group else None,
        "owners": [o.role.name for o in action.owners],
        "people": people,
        "start": action.start_date,
        "due": state.due,
        "due_text": state.due_text,
        "due_precision": state.due_precision,
        "recurring": action.recurring,
        "recurrence": action.recurrence,
        "key_dates": action.key_dates,
        "status": state.status,
        "note": state.note,
        "updated_at": state.updated_at,
    }


def list_actions(session: Session, plan: Plan | None = None, status: str | None = None) -> list[ActionSummary]:
    """Actions in plan order (every plan's, or ``plan``'s), with their current state and the people
    who own them; ``status`` keeps only those with that current status (:data:`UNKNOWN`: none yet)."""
    query = (
        select(Action)
        .options(
            selectinload(Action.owners).selectinload(ActionOwner.role),
            selectinload(Action.workstream),
            selectinload(Action.group),
            selectinload(Action.plan),
        )
        .order_by(Action.plan_id, Action.position)
    )
    if plan is not None:
        query = query.where(Action.plan_id == plan.id)
    actions = list(session.scalars(query))
    states = current_states(session, actions)
    if status is not None:
        wanted = None if status == UNKNOWN else status
        actions = [a for a in actions if states[a.id].status == wanted]
    held = holders(session)
    return [
        ActionSummary(**_summary_fields(a, states[a.id], [p.email for p in owners_of(session, a, held)]))
        for a in actions
    ]


def actions_held(session: Session, person_ids: Iterable[int]) -> dict[int, list[int]]:
    """person id -> the ids of the actions they answer for as themselves: those whose owner role
    they hold (by the directory, or named in the owner text), or hold as an owner's delegate or
    cover. storage.updates.can_change's rule less the EDI lead's right to answer for anyone: the
    EDI lead's own actions are theirs, the whole plan is not.

    The dispatcher asks for every batch it sends, so the roles held through the directory are
    read for these people alone; the whole directory is read (storage.people.holders, whose
    name matching needs everyone) only when some action's owner role nobody holds."""
    wanted = set(person_ids)
    if not wanted:
        return {}
    ids = sorted(wanted)
    answering: dict[int, set[int]] = {}  # role id -> which of the wanted answer for it
    rows = session.execute(
        select(PersonRole.role_id, Person.id, Person.delegate_id, Person.cover_id)
        .join(Person, Person.id == PersonRole.person_id)
        .where(id_in(session, Person.id, ids) | id_in(session, Person.delegate_id, ids)
               | id_in(session, Person.cover_id, ids)))
    for role_id, *people in rows:
        answering.setdefault(role_id, set()).update(pid for pid in people if pid in wanted)
    unheld = list(session.scalars(select(ActionOwner.role_id).distinct()
                                  .where(ActionOwner.role_id.not_in(select(PersonRole.role_id)))))
    if unheld:
        held = holders(session)
        for role_id in unheld:
            who = {pid for p in held.get(role_id, ()) for pid in (p.id, p.delegate_id, p.cover_id) if pid in wanted}
            if who:
                answering[role_id] = who
    found: dict[int, dict[int, None]] = {pid: {} for pid in wanted}  # ordered sets
    for chunk in id_chunks(list(answering)):
        owned = session.execute(select(ActionOwner.action_id, ActionOwner.role_id)
                                .where(id_in(session, ActionOwner.role_id, chunk)).order_by(ActionOwner.action_id))
        for action_id, role_id in owned:
            for pid in answering[role_id]:
                found[pid][action_id] = None
    return {pid: list(ids) for pid, ids in found.items()}


def open_actions(session: Session, person_id: int) -> list[tuple[Action, CurrentState]]:
    """The actions ``person_id`` answers for (actions_held) that are not complete, with their
    current state, in plan order: what the page of all their actions lists."""
    ids = actions_held(session, [person_id])[person_id]
    actions = []
    for chunk in id_chunks(ids):
        actions += session.scalars(select(Action).options(selectinload(Action.plan))
                                   .where(id_in(session, Action.id, chunk)))
    states = current_states(session, actions)
    actions.sort(key=lambda a: (a.plan.name.casefold(), a.plan_id, a.position, a.id))
    return [(a, states[a.id]) for a in actions if states[a.id].status != "complete"]


def open_counts(session: Session, person_ids: Iterable[int]) -> dict[int, int]:
    """person id -> how many open (not complete) actions they answer for: the number a nudge's
    link to the page of all their actions shows. One fold of the history for everyone asked."""
    held = actions_held(session, person_ids)
    statuses = latest_statuses(session, sorted({a for ids in held.values() for a in ids}))
    return {pid: sum(1 for a in ids if statuses.get(a) != "complete") for pid, ids in held.items()}


def action_detail(session: Session, action: Action) -> ActionDetail:
    """What ``chaser show`` shows: the action in full, its owners and their people, its dates, its history."""
    state = current_states(session, [action])[action.id]
    people = [p.email for p in owners_of(session, action)]
    updates = session.scalars(
        select(StatusUpdate).where(StatusUpdate.action_id == action.id).order_by(StatusUpdate.id)
    )
    workstream, group = action.workstream, action.group
    return ActionDetail(
        **_summary_fields(action, state, people),
        description=action.description,
        owners_text=action.owners_text,
        dependencies=action.dependencies,
        resources=action.resources,
        success_measures=action.success_measures,
        next_steps=action.next_steps,
        start_text=action.start_text,
        plan_due=action.due_date,
        plan_due_text=action.due_text,
        lead_sponsor=workstream.lead_sponsor if workstream else None,
        objective=workstream.objective if workstream else None,
        group_title=group.title if group else None,
        source=action.source,
        history=[
            HistoryEntry(
                at=u.created_at, by=u.by_text, channel=u.channel, old_status=u.old_status, new_status=u.new_status,
                note=u.note, revised_due=u.revised_due, revised_due_text=u.revised_due_text,
                owners_change=u.owners_change,
            )
            for u in updates
        ],
    )


def set_plan_paused(session: Session, plan_name: str, paused: bool) -> int:
    """Pause or resume every nudge of the plan named; returns how many actions it has."""
    plan = find_plan(session, plan_name)
    assert plan is not None  # a name was given
    return set_paused(session, plan, paused)


# --- people ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PersonName:
    """Who someone is and where they can be reached (what routing needs: bot.routing.recipient_of)."""

    id: int
    email: str
    name: str
    slack_id: str | None
    teams_id: str | None
    channel: str | None


def people_by_id(session: Session, ids: Iterable[int]) -> dict[int, PersonName]:
    """Who the ids are, for naming the recipients of planned nudges (ids not in the directory are left out)."""
    wanted = sorted(set(ids))
    found: dict[int, PersonName] = {}
    columns = (Person.id, Person.email, Person.name, Person.slack_id, Person.teams_id, Person.channel)
    for chunk in id_chunks(wanted):
        query = select(*columns).where(id_in(session, Person.id, chunk))
        found.update({row.id: PersonName(*row) for row in session.execute(query)})
    return found


def find_people(session: Session, emails: Iterable[str]) -> list[PersonName]:
    """The directory's entries for ``emails``, in the order given; NotFound names every address
    nobody in the directory has."""
    wanted = [e.strip().lower() for e in emails]
    rows = {row.email: row for row in session.execute(
        select(Person.id, Person.email, Person.name, Person.slack_id, Person.teams_id, Person.channel)
        .where(Person.email.in_(wanted)))} if wanted else {}
    missing = [e for e in wanted if e not in rows]
    if missing:
        raise NotFound(f"{', '.join(missing)}: nobody with {'that email' if len(missing) == 1 else 'those emails'} "
                       "in the people directory (see 'chaser people import')")
    return [PersonName(*rows[e]) for e in dict.fromkeys(wanted)]


def import_people(session: Session, path: str | Path, channels: Collection[str] | None = None) -> DirectoryResult:
    """Import the people directory (``channels``: the channel names a person may choose); the
    actions of everyone whose roles or addresses changed are looked at again at the next sweep."""
    result = import_directory(session, path, channels)
    for person in result.changed_people:
        recheck(session, actions_of(session, person))
    return result


# --- the outbox ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxEntry(_Data):
    """One message as ``chaser outbox`` lists it, with the nudges (keys) and actions (refs) it carries."""

    id: int
    person: str  # the recipient's email, or the address it was planned for if they left the directory
    channel: str | None  # None until the dispatcher routes it
    state: str
    kind: str
    keys: list[str]
    refs: list[str]
    more: int  # further actions the message is about but does not list
    attempts: int
    created_at: dt.datetime
    next_attempt_at: dt.datetime
    sent_at: dt.datetime | None
    receipt: Any  # bot.channels.base.Receipt as JSON: {"channel", "ref", "possible_duplicate"}
    last_error: str | None
    possible_duplicate: bool
    route: list[dict[str, Any]]  # the channels it left, and why
    target: int | None  # an in-place update: the message it edits


def _entry(row: Outbox, email: str | None) -> OutboxEntry:
    items = row.payload["items"]
    return OutboxEntry(
        id=row.id, person=email or row.recipient, channel=row.channel, state=row.state, kind=row.kind,
        keys=[i["key"] for i in items if i.get("key")], refs=[i["ref"] for i in items], more=row.payload.get("more", 0),
        attempts=row.attempts, created_at=row.created_at, next_attempt_at=row.next_attempt_at, sent_at=row.sent_at,
        receipt=row.receipt, last_error=row.last_error, possible_duplicate=row.possible_duplicate,
        route=list(row.route or []), target=row.target_id,
    )


def list_outbox(session: Session, state: str | None = None) -> list[OutboxEntry]:
    """Every message (or those in ``state``), oldest first."""
    query = select(Outbox, Person.email).outerjoin(Person, Person.id == Outbox.person_id).order_by(Outbox.id)
    if state is not None:
        query = query.where(Outbox.state == state)
    return [_entry(row, email) for row, email in session.execute(query)]


def retry_message(session: Session, outbox_id: int, now: dt.datetime) -> OutboxEntry:
    """Queue a parked or failed message again at ``now``, with a fresh set of attempts.

    NotFound for an id no message has; InvalidValue for a message in any other state (queued and
    sending messages are already on their way, a sent one is done).
    """
    row = session.get(Outbox, outbox_id) if 1 <= outbox_id <= MAX_OUTBOX_ID else None
    if row is None:
        raise NotFound(f"no outbox message {outbox_id}")
    if row.state not in RETRYABLE:
        raise InvalidValue(f"outbox message {outbox_id} is {row.state}; only parked or failed messages can be retried")
    # Every channel is tried afresh: whoever retries it has fixed the cause (an address, a token).
    row.state, row.attempts, row.last_error, row.route = "queued", 0, None, []
    row.next_attempt_at = now
    session.flush()
    email = session.scalar(select(Person.email).where(Person.id == row.person_id)) if row.person_id else None
    return _entry(row, email)


# --- replies ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyEntry(_Data):
    """One answer that came in, as ``chaser replies`` lists it (field names are a contract)."""

    id: int
    received_at: dt.datetime
    via: str
    sender: str  # shown as "from"
    outcome: str  # applied, not_allowed, unclear, auto_reply, duplicate
    refs: list[str]
    status: str | None
    note: str | None
    due: str | None  # the new date as written
    message_id: int | None  # the outbox message it answers
    detail: str | None  # why it was not applied

    def as_json(self) -> dict[str, Any]:
        data = super().as_json()
        return {("from" if key == "sender" else key): value for key, value in data.items()}


def list_replies(session: Session, outcome: str | None = None) -> list[ReplyEntry]:
    """Every reply, oldest first (or those with ``outcome``)."""
    query = select(Reply).order_by(Reply.id)
    if outcome is not None:
        query = query.where(Reply.outcome == outcome)
    return [ReplyEntry(id=r.id, received_at=r.received_at, via=r.via, sender=r.sender, outcome=r.outcome,
                       refs=list(r.refs or []), status=r.status, note=r.note, due=r.due_text,
                       message_id=r.outbox_id, detail=r.detail)
            for r in session.scalars(query)]
