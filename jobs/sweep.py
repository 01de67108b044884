"""The sweep: load what is due, ask the planner, write outbox rows — in one transaction.

Only actions whose ``next_check_at`` has come are read, so the cost follows the due items,
not the size of the plan. Each nudge's idempotency key is inserted with ON CONFLICT DO
NOTHING; only keys this sweep actually inserted go into its messages, so a nudge cannot be
planned twice, even by two ``chaser run`` processes sweeping at the same moment. One message
per recipient per sweep covers every action that needs them.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, Select, bindparam, func, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from jobs.digest_send import queue_due_digests
from jobs.planner import PROBLEM_RETRY, ActionView, Nudge, PersonView, Plan, ReviewMilestone, plan
from storage.dates import format_day
from storage.db import id_chunks, id_in, session_factory
from storage.importers.parse import split_owners
from storage.models import (
    Action, ActionOwner, NudgeKey, Outbox, Person, Plan as PlanRow, Role, Sweep, UTCDateTime, Workstream,
)
from storage.people import NameIndex, holders, role_key
from storage.updates import due_standing, fold_history

if TYPE_CHECKING:  # the CLI's config, passed in: nothing in jobs imports chaser.config
    from chaser.config import Config

log = logging.getLogger("chaser.sweep")
UTC_COLUMN = UTCDateTime()  # reads an aggregate of timestamps as aware UTC, like the columns do
# Actions listed in one message; the others it is about are counted ("and N more").
MESSAGE_ITEMS_MAX = 25


@dataclass
class SweepResult:
    at: dt.datetime
    actions_checked: int = 0
    nudges: list[Nudge] = field(default_factory=list)
    messages: int = 0
    superseded: int = 0
    unreachable: list[tuple[int, str]] = field(default_factory=list)
    waiting: dict[int, dt.date] = field(default_factory=dict)
    duration_ms: int = 0
    outbox_ids: list[int] = field(default_factory=list)
    # Actions the planner could not plan: (plan, ref, what went wrong); see jobs.planner.PROBLEM_RETRY.
    problems: list[tuple[str, str, str]] = field(default_factory=list)
    digests: list[int] = field(default_factory=list)  # board digests queued (jobs.digest_send), one row per recipient


class _Loader:
    """Builds planner views from the database for a set of actions."""

    def __init__(self, session: Session, config: Config) -> None:
        self.session = session
        self.config = config
        self.people_rows = list(session.scalars(select(Person)))
        self.people = {
            p.id: PersonView(p.id, p.name, p.email, p.manager_id, p.away_until, p.cover_id) for p in self.people_rows
        }
        self.by_email = {p.email: p.id for p in self.people_rows}
        self.held = holders(session)
        self.roles = {r.key: r.id for r in session.scalars(select(Role))}
        self.names = NameIndex(self.people_rows, self.roles)
        self._sponsors: dict[str, tuple[int, ...]] = {}
        self.history: dict[int, dict[str, Any]] = {}  # folded by views(), reused for the payloads

    @property
    def edi_lead_id(self) -> int | None:
        return self.by_email.get(self.config.edi_lead) if self.config.edi_lead else None

    def sponsors(self, text: str | None) -> tuple[int, ...]:
        if not text:
            return ()
        if text not in self._sponsors:
            found: list[int] = []
            for part in split_owners(text):
                key = role_key(part)
                people = self.held.get(self.roles[key], []) if key in self.roles else []
                if not people:  # a sponsor role nobody owns an action under: the person it names
                    people = self.names.named(key)
                found += [p.id for p in people if p.id not in found]
            self._sponsors[text] = tuple(found)
        return self._sponsors[text]

    def views(self, query: Select[Any]) -> list[ActionView]:
        rows = self.session.execute(query).all()
        ids = [r.id for r in rows]
        owners: dict[int, list[int]] = defaultdict(list)
        for chunk in id_chunks(ids):
            for action_id, role_id in self.session.execute(
                select(ActionOwner.action_id, ActionOwner.role_id).where(id_in(self.session, ActionOwner.action_id, chunk)).order_by(ActionOwner.position)
            ):
                owners[action_id].append(role_id)
        role_names = {rid: name for rid, name in self.session.execute(select(Role.id, Role.name))}
        history = fold_history(self.session, ids)
        self.history.update(history)
        views = []
        for r in rows:
            state = history.get(r.id, {})
            people: list[int] = []
            for role_id in owners.get(r.id, []):
                for person in self.held.get(role_id, []):
                    if person.id not in people:
                        people.append(person.id)
            views.append(ActionView(
                id=r.id, ref=r.ref, plan_id=r.plan_id, workstream_id=r.workstream_id,
                due=due_standing(state, r.due_date)[0],
                recurring=r.recurring, status=state.get("status"), created_at=r.created_at,
                cadence=self.config.cadence_for(r.plan_name, r.workstream_name, r.timezone),
                owner_ids=tuple(people), owner_roles=tuple(role_names[x] for x in owners.get(r.id, [])),
                sponsor_ids=self.sponsors(r.lead_sponsor), last_update_at=state.get("updated_at"),
                snoozed_until=r.snoozed_until, paused=r.paused, plan=r.plan_name,
            ))
        return views


def _action_query() -> Select[Any]:
    return (
        select(
            Action.id, Action.ref, Action.plan_id, Action.workstream_id, Action.due_date, Action.recurring,
            Action.created_at, Action.snoozed_until, PlanRow.paused, PlanRow.name.label("plan_name"),
            PlanRow.timezone, Workstream.name.label("workstream_name"), Workstream.lead_sponsor,
        )
        .join(PlanRow, PlanRow.id == Action.plan_id)
        .outerjoin(Workstream, Workstream.id == Action.workstream_id)
    )


def milestones(config: Config, now: dt.datetime, plan_ids: dict[str, int]) -> list[ReviewMilestone]:
    """Board review steps whose time has come and whose meeting is still ahead."""
    calendar = config.cadence_for("", None).calendar
    today = calendar.today(now)
    found = []
    for board in config.boards:
        scope = frozenset(plan_ids[p] for p in board.plans if p in plan_ids) if board.plans else None
        for meeting in board.schedule.occurrences(today, today + dt.timedelta(days=120)):
            if meeting <= today:
                continue
            requested_at = calendar.send_time(calendar.add_working_days(meeting, -board.request_before))
            for rule, before in (("review_request", board.request_before), ("review_chase", board.chase_before),
                                 ("review_missing", board.missing_before)):
                at = calendar.send_time(calendar.add_working_days(meeting, -before))
                if at <= now:
                    found.append(ReviewMilestone(board.name, meeting, rule, at, requested_at, scope))
    return found


def _last_sent(session: Session, action_ids: Sequence[int]) -> dict[tuple[int, int], dt.datetime]:
    """(action, person) -> when their last nudge for it went (or was queued, if not sent yet).

    Superseded nudges (no message) and parked messages never reached the person: they do not
    count. The planner times repeats from this (jobs.planner._deadline_candidates).
    """
    rows = session.execute(
        select(NudgeKey.action_id, NudgeKey.person_id, func.max(func.coalesce(Outbox.sent_at, Outbox.created_at)))
        .join(Outbox, Outbox.id == NudgeKey.outbox_id)
        .where(id_in(session, NudgeKey.action_id, action_ids), NudgeKey.person_id.is_not(None),
               Outbox.state != "parked")
        .group_by(NudgeKey.action_id, NudgeKey.person_id)
    )
    return {(action_id, person_id): UTC_COLUMN.process_result_value(moment, session.get_bind().dialect)
            for action_id, person_id, moment in rows}


def _marker(m: ReviewMilestone) -> str:
    return f"milestone:{m.rule}:{m.board}:{m.meeting.isoformat()}"


def _insert_keys(session: Session, rows: list[dict[str, Any]]) -> set[str]:
    """Insert keys, ignoring ones that exist; returns the keys this call inserted.

    PostgreSQL gets one INSERT ... SELECT FROM unnest(arrays): a short statement whatever the
    number of keys. SQLite runs one cached statement for many rows ("insertmanyvalues").
    """
    if not rows:
        return set()
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        found = connection.execute(
            text(
                "INSERT INTO nudge_keys (key, action_id, person_id, rule, outbox_id, created_at) "
                "SELECT k, a, p, r, NULL, c FROM unnest("
                "CAST(:keys AS varchar[]), CAST(:actions AS integer[]), CAST(:people AS integer[]), "
                "CAST(:rules AS varchar[]), CAST(:created AS timestamptz[])) AS t(k, a, p, r, c) "
                "ON CONFLICT (key) DO NOTHING RETURNING key"
            ),
            {
                "keys": [r["key"] for r in rows], "actions": [r["action_id"] for r in rows],
                "people": [r["person_id"] for r in rows], "rules": [r["rule"] for r in rows],
                "created": [r["created_at"] for r in rows],
            },
        )
        return set(found.scalars())
    stmt = sqlite.insert(NudgeKey.__table__).on_conflict_do_nothing(index_elements=["key"])
    return set(connection.execute(stmt.returning(NudgeKey.__table__.c.key), rows).scalars())


def run_sweep(engine: Engine, config: Config, now: dt.datetime, *, dry_run: bool = False) -> SweepResult:
    """Plan and queue everything due at ``now``; with ``dry_run`` nothing is written."""
    started = time.perf_counter()
    result = SweepResult(at=now)
    with session_factory(engine)() as session:
        with session.begin():
            loader = _Loader(session, config)
            due = loader.views(_action_query().where(Action.next_check_at <= now))
            result.actions_checked = len(due)
            plan_ids = {name: pid for pid, name in session.execute(select(PlanRow.id, PlanRow.name))}
            steps = milestones(config, now, plan_ids)
            done = set(session.scalars(select(NudgeKey.key).where(NudgeKey.key.in_([_marker(m) for m in steps])))) if steps else set()
            steps = [m for m in steps if _marker(m) not in done]
            calendar = config.cadence_for("", None).calendar
            if not calendar.in_send_window(now):
                steps = []  # review steps wait for the send window, like every nudge
            review_views: list[ActionView] = []
            if steps:
                scope: set[int] | None = set()
                for m in steps:
                    scope = None if scope is None or m.plan_ids is None else scope | m.plan_ids
                query = _action_query()
                if scope is not None:
                    query = query.where(Action.plan_id.in_(scope))
                review_views = [v for v in loader.views(query) if v.open]
            ids = sorted({v.id for v in due} | {v.id for v in review_views})
            sent: set[str] = set()
            last_sent: dict[tuple[int, int], dt.datetime] = {}
            for chunk in id_chunks(ids):
                sent.update(session.scalars(select(NudgeKey.key).where(id_in(session, NudgeKey.action_id, chunk))))
                last_sent.update(_last_sent(session, chunk))
            planned = plan(now, due, loader.people, sent, edi_lead_id=loader.edi_lead_id,
                           reviews=steps, review_actions=review_views, last_sent=last_sent)
            result.unreachable, result.waiting = planned.unreachable, planned.waiting
            result.superseded = len(planned.superseded)
            views = {v.id: v for v in (*due, *review_views)}
            result.problems = [(views[i].plan, views[i].ref, why) for i, why in sorted(planned.problems.items())]
            if dry_run:
                result.nudges = planned.nudges
                session.rollback()
                return result
            _store(session, config, loader, planned, now, result)
            # Markers say a review step was planned; ON CONFLICT DO NOTHING like every key, so
            # two processes sweeping at once cannot fail on each other's marker.
            _insert_keys(session, [{"key": _marker(m), "action_id": None, "person_id": None, "rule": m.rule,
                                    "outbox_id": None, "created_at": now} for m in steps])
            # Each board's monthly digest, on its day, once (the key is per board and period).
            result.digests = queue_due_digests(session, config, now)
            result.duration_ms = int((time.perf_counter() - started) * 1000)
            session.add(Sweep(at=now, started_at=dt.datetime.now(dt.timezone.utc), duration_ms=result.duration_ms,
                              actions_checked=result.actions_checked, nudges_planned=len(result.nudges),
                              messages_queued=result.messages))
    for _, why in result.unreachable:
        log.warning("unreachable: %s", why)
    for plan_name, ref, why in result.problems:
        log.error("could not plan the nudges of %s in plan %r (%s); it is looked at again in %d minutes, every "
                  "other action was planned", ref, plan_name, why, PROBLEM_RETRY.total_seconds() // 60)
    calendar = config.cadence_for("", None).calendar
    if not calendar.in_send_window(now):
        opens = calendar.local(calendar.next_send_window(now))
        log.info("outside the send window: nudges wait until %s", opens.strftime("%a %d %b %Y %H:%M %Z"))
    log.info("swept %s: %d actions checked, %d nudges in %d messages (%d superseded) in %d ms",
             now.isoformat(), result.actions_checked, len(result.nudges), result.messages, result.superseded,
             result.duration_ms)
    return result


def _store(session: Session, config: Config, loader: _Loader, planned: Plan,
           now: dt.datetime, result: SweepResult) -> None:
    key_rows = [
        {"key": n.key, "action_id": n.action_id, "person_id": n.person_id, "rule": n.rule, "outbox_id": None, "created_at": now}
        for n in planned.nudges + planned.superseded
    ]
    won = _insert_keys(session, key_rows)
    nudges = [n for n in planned.nudges if n.key in won]
    result.nudges = nudges
    by_person: dict[int, list[Nudge]] = defaultdict(list)
    for n in nudges:
        by_person[n.person_id].append(n)
    info = _action_info(session, loader, sorted({n.action_id for n in nudges}))
    lead = loader.edi_lead_id
    weekly = _weekly_people(session, [p for p, items in by_person.items()
                                      if not all(n.rule == "review_missing" for n in items)])
    gathered = {p: by_person.pop(p) for p in sorted(weekly)}
    outbox_rows = []
    for person_id, items in sorted(by_person.items()):
        person = loader.people[person_id]
        notes: list[str] = []
        if person_id == lead and planned.waiting:
            for waiting_id, back in sorted(planned.waiting.items()):
                notes.append(f"{loader.people[waiting_id].name} is away; their nudges wait until "
                             f"{format_day(back, year=False)}.")
        kind = "lead_list" if all(n.rule == "review_missing" for n in items) else "nudge"
        listed = _most_urgent(items, info)
        payload = {"items": [_item(loader, info, n) for n in listed], "notes": notes}
        if len(listed) < len(items):
            payload["more"] = len(items) - len(listed)
            payload["to_edi_lead"] = person_id == lead  # who to ask for the full list: not themselves
        outbox_rows.append({
            "kind": kind, "person_id": person_id, "recipient": person.email or person.name,
            # The channel is chosen when it is sent (jobs.dispatch routes), not frozen here.
            "channel": None, "payload": payload, "state": "queued", "attempts": 0,
            "created_at": now, "next_attempt_at": now, "possible_duplicate": False, "route": [],
        })
    connection = session.connection()
    if outbox_rows:
        table = Outbox.__table__
        ids = connection.execute(table.insert().returning(table.c.id, sort_by_parameter_order=True), outbox_rows).scalars().all()
        result.outbox_ids.extend(ids)
        pairs = [(n.key, outbox_id) for outbox_id, (_, items) in zip(ids, sorted(by_person.items())) for n in items]
        if connection.dialect.name == "postgresql":
            connection.execute(
                text("UPDATE nudge_keys SET outbox_id = t.o FROM unnest(CAST(:k AS varchar[]), CAST(:o AS integer[])) "
                     "AS t(k, o) WHERE nudge_keys.key = t.k"),
                {"k": [k for k, _ in pairs], "o": [o for _, o in pairs]},
            )
        else:
            keys = NudgeKey.__table__
            connection.execute(keys.update().where(keys.c.key == bindparam("k")).values(outbox_id=bindparam("o")),
                               [{"k": k, "o": o} for k, o in pairs])
    result.messages = len(by_person)
    for person_id, items in gathered.items():
        result.messages += _gather_weekly(session, config, loader, person_id, items, info, now, result)
    # The next check time, and why planning failed (NULL: it did not), in the same statement.
    problems = planned.problems
    if connection.dialect.name == "postgresql" and planned.next_check:
        ids = list(planned.next_check)
        connection.execute(
            text("UPDATE actions SET next_check_at = t.n, check_problem = t.p FROM unnest(CAST(:i AS integer[]), "
                 "CAST(:n AS timestamptz[]), CAST(:p AS text[])) AS t(i, n, p) WHERE actions.id = t.i"),
            {"i": ids, "n": list(planned.next_check.values()), "p": [problems.get(i) for i in ids]},
        )
        return
    # Many actions share their next check time (09:30 on a given day): one UPDATE per time.
    by_time: dict[tuple[dt.datetime | None, str | None], list[int]] = defaultdict(list)
    for action_id, moment in planned.next_check.items():
        by_time[moment, problems.get(action_id)].append(action_id)
    actions = Action.__table__
    for (moment, problem), action_ids in by_time.items():
        for chunk in id_chunks(action_ids):
            connection.execute(actions.update().where(actions.c.id.in_(chunk))
                               .values(next_check_at=moment, check_problem=problem))


def _item(loader: _Loader, info: dict[int, dict[str, Any]], n: Nudge) -> dict[str, Any]:
    """One nudge as an item of a message's payload."""
    return {**info[n.action_id], "action_id": n.action_id, "rule": n.rule, "why": n.why.to_json(), "key": n.key,
            "owner": _owner_text(loader, n)}


def _weekly_people(session: Session, person_ids: Sequence[int]) -> set[int]:
    """Of these people, those who chose one weekly summary (``people.cadence``)."""
    found: set[int] = set()
    for chunk in id_chunks(sorted(person_ids)):
        found.update(session.scalars(select(Person.id).where(id_in(session, Person.id, chunk),
                                                             Person.cadence == "weekly")))
    return found


def weekly_slot(config: Config, now: dt.datetime) -> dt.datetime:
    """When a weekly summary planned at ``now`` goes out: the send window's opening on the next
    Monday (local time) after today, or the first working day after it (a bank holiday)."""
    calendar = config.cadence_for("", None).calendar
    today = calendar.local(now).date()
    monday = today + dt.timedelta(days=7 - today.weekday())
    return calendar.next_send_window(calendar.send_time(monday))


def _gather_weekly(session: Session, config: Config, loader: _Loader, person_id: int, items: list[Nudge],
                   info: dict[int, dict[str, Any]], now: dt.datetime, result: SweepResult) -> int:
    """Put a weekly person's nudges into their summary for the coming Monday: a new message
    (returns 1) or the one already waiting (returns 0). The summary is claimed by a key, like
    every nudge, so two sweeps at once still make one; a summary already on its way (claimed by
    the dispatcher) is left alone and these nudges get a summary of their own."""
    slot = weekly_slot(config, now)
    key = f"weekly:{person_id}:{slot.date().isoformat()}"
    connection = session.connection()
    waiting = None
    if not _insert_keys(session, [{"key": key, "action_id": None, "person_id": person_id, "rule": "weekly",
                                   "outbox_id": None, "created_at": now}]):
        found = session.scalar(select(NudgeKey.outbox_id).where(NudgeKey.key == key))
        query = select(Outbox).where(Outbox.id == found, Outbox.state == "queued")
        waiting = session.scalar(query.with_for_update()) if found is not None else None
    fresh = [_item(loader, info, n) for n in items]
    if waiting is not None:
        renewed = {item["action_id"] for item in fresh}
        merged = [item for item in waiting.payload.get("items", ()) if item["action_id"] not in renewed] + fresh
        more = int(waiting.payload.get("more", 0))
        waiting.payload = {**waiting.payload, "items": merged[-MESSAGE_ITEMS_MAX:],
                           "more": more + max(0, len(merged) - MESSAGE_ITEMS_MAX)}
        outbox_id = waiting.id
        added = 0
    else:
        person = loader.people[person_id]
        listed = _most_urgent(items, info)
        payload: dict[str, Any] = {"items": [_item(loader, info, n) for n in listed], "notes": [], "weekly": True}
        if len(listed) < len(items):
            payload["more"] = len(items) - len(listed)
            payload["to_edi_lead"] = person_id == loader.edi_lead_id
        row = Outbox(kind="nudge", person_id=person_id, recipient=person.email or person.name, channel=None,
                     payload=payload, state="queued", attempts=0, created_at=now, next_attempt_at=slot,
                     possible_duplicate=False, route=[])
        session.add(row)
        session.flush()
        outbox_id = row.id
        result.outbox_ids.append(outbox_id)
        connection.execute(NudgeKey.__table__.update().where(NudgeKey.__table__.c.key == key).values(outbox_id=outbox_id))
        added = 1
    keys = NudgeKey.__table__
    connection.execute(keys.update().where(keys.c.key.in_([n.key for n in items])).values(outbox_id=outbox_id))
    return added


def _most_urgent(items: list[Nudge], info: dict[int, dict[str, Any]]) -> list[Nudge]:
    """The nudges one message lists: all of them, or the MESSAGE_ITEMS_MAX most urgent (the
    soonest due first among equals), in their usual order. The rest are counted ("and N more"):
    one manager of a 280,000-action plan once got a single 434 MB email."""
    if len(items) <= MESSAGE_ITEMS_MAX:
        return items
    ranked = sorted(items, key=lambda n: (-n.urgency, info[n.action_id]["due"] or "9999", n.action_id))
    chosen = {id(n) for n in ranked[:MESSAGE_ITEMS_MAX]}
    return [n for n in items if id(n) in chosen]


def _owner_text(loader: _Loader, nudge: Nudge) -> str | None:
    if nudge.owner_id is not None and nudge.owner_id != nudge.person_id:
        return loader.people[nudge.owner_id].name
    return None


def _action_info(session: Session, loader: _Loader, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    info: dict[int, dict[str, Any]] = {}
    history = loader.history  # every nudged action was folded when its view was built
    for chunk in id_chunks(ids):
        rows = session.execute(
            select(Action.id, Action.ref, Action.title, Action.due_date, Action.due_text, PlanRow.name)
            .join(PlanRow, PlanRow.id == Action.plan_id).where(id_in(session, Action.id, chunk))
        )
        for action_id, ref, title, due, due_text, plan_name in rows:
            state = history.get(action_id, {})
            due, _, due_text = due_standing(state, due, None, due_text)
            info[action_id] = {
                "ref": ref, "title": title, "plan": plan_name, "due": due.isoformat() if due else None,
                "due_text": due_text, "status": state.get("status"),
            }
    return info


