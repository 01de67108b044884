"""The board digest: one board's highlight report for one month, as data.

:func:`build_report` is a pure function of the tracker (plans, workstreams, actions), the update
history, the outbox's nudges and the period: it writes nothing, and it reads the history only up
to the end of the period, so October's report built in December is October's report. Every
format (``jobs.digest_render``: HTML, CSV, XLSX; later PDF, chat summaries, the email) renders
the same :class:`Report`, so they cannot disagree on a number.

What the report counts, decided here once:

- **Actions covered**: those of the board's plans (``[[boards]] plans``, default every plan)
  and workstreams (``workstreams``, default all) whose start date, when the plan gives one, is
  not after the period. When an action was imported plays no part: a plan imported today with
  last year's updates loaded by ``chaser update --at`` gives last year's reports.
- **Status** of an action: the latest status recorded (by a person or the plan file) by the
  end of the period; ``no_update`` when none was.
- **changes**: every status move recorded within the period, in time order, ``from`` the
  status the action had just before (``None``: no status yet) ``to`` the new one. A completion
  is a move ``to`` ``complete``; an update that repeats the status it had is not a move. Revised
  due dates (``revised_dates``) and actions that started within the period (``new_actions``) are
  listed apart from the moves: the HTML shows them under "What changed"; the JSON keeps the
  fields the issue names (:meth:`Report.as_json`).
- **overdue**: due on or before the period's last day (the due date standing then, a revised
  date winning) and not complete. **due_next**: due within the next calendar month, not complete.
- **not_answered**: people who were sent nudges (outbox messages) within the period about
  actions they answer for (owners, their delegates and cover; the EDI lead for any) that then
  got no update from anyone in the period; ``chased`` counts those messages. A manager sent an
  escalation copy is told, not asked, and is not listed.
- **spotlight**: the pinned workstream, else the next of the rotation (``spotlight``, default
  the board's workstreams in plan order) by month: consecutive months show consecutive entries.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Text, select, type_coerce
from sqlalchemy.orm import Session, aliased

from chaser.errors import InvalidValue, NotFound
from storage.db import id_chunks, id_in
from storage.models import Action, ActionOwner, NudgeKey, Outbox, Person, Plan, Role, StatusUpdate, Workstream
from storage.statuses import STATUS_LABELS
from storage.tracker import actions_held
from storage.updates import SYSTEM_CHANNELS, current_states

if TYPE_CHECKING:  # config imports jobs, never the reverse
    from chaser.config import BoardConfig

NO_UPDATE = "no_update"
# The report's order of statuses, and how each is written for people.
COUNTED = ("complete", "green", "amber", "red", "not_started", NO_UPDATE)
COUNT_LABELS = {**STATUS_LABELS, NO_UPDATE: "No update"}
# Project metrics as boards report them, in their usual order; a metric the plan does not give is "TBC".
METRICS = ("schedule", "scope", "budget", "impact")


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Period:
    """A calendar month, ``2026-11``: its first and last days, and the moments (UTC) they span
    in the board's time zone."""

    start: dt.date
    end: dt.date
    starts_at: dt.datetime
    ends_at: dt.datetime  # the last moment of the last day

    @property
    def name(self) -> str:
        return f"{self.start:%Y-%m}"

    @property
    def next_start(self) -> dt.date:
        return self.end + dt.timedelta(days=1)


def month_period(year: int, month: int, timezone: str) -> Period:
    zone = ZoneInfo(timezone)
    start = dt.date(year, month, 1)
    after = dt.date(year + month // 12, month % 12 + 1, 1)
    starts_at = dt.datetime.combine(start, dt.time(), zone).astimezone(dt.UTC)
    ends_at = dt.datetime.combine(after, dt.time(), zone).astimezone(dt.UTC) - dt.timedelta(microseconds=1)
    return Period(start=start, end=after - dt.timedelta(days=1), starts_at=starts_at, ends_at=ends_at)


def parse_period(text: str, timezone: str) -> Period:
    """``2026-11`` (``--period``): InvalidValue naming the option for anything else."""
    try:
        year, month = (int(part) for part in text.strip().split("-"))
        if not (1 <= month <= 12 and 1900 <= year <= 9998) or len(text.strip()) != 7:
            raise ValueError
    except ValueError:
        raise InvalidValue(f"--period {text!r} is not a month written YYYY-MM, such as 2026-11") from None
    return month_period(year, month, timezone)


def last_complete_month(now: dt.datetime, timezone: str) -> Period:
    """The month before the one ``now`` falls in (in the board's time zone): the default period."""
    today = now.astimezone(ZoneInfo(timezone)).date()
    year, month = (today.year, today.month - 1) if today.month > 1 else (today.year - 1, 12)
    return month_period(year, month, timezone)


# --- the report ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """A status move: ``from`` → ``to`` (``from_`` in Python), made ``at`` by ``by``."""

    ref: str
    from_: str | None
    to: str
    at: dt.datetime
    by: str

    def as_json(self) -> dict[str, Any]:
        return {"ref": self.ref, "from": self.from_, "to": self.to, "at": self.at.isoformat(), "by": self.by}


@dataclass(frozen=True)
class DateRevision:
    ref: str
    due: dt.date | None
    due_text: str
    at: dt.datetime
    by: str


@dataclass(frozen=True)
class NotAnswered:
    person: str  # their email
    name: str
    refs: tuple[str, ...]
    chased: int  # nudges (outbox messages) sent about these actions in the period

    def as_json(self) -> dict[str, Any]:
        return {"person": self.person, "refs": list(self.refs), "chased": self.chased}


@dataclass(frozen=True)
class ActionRow:
    """One action as the report's tables (and the CSV/XLSX) show it, at the end of the period."""

    ref: str
    title: str
    workstream: str
    owners: tuple[str, ...]
    status: str  # one of COUNTED
    note: str | None
    start: dt.date | None
    due: dt.date | None
    due_text: str | None
    key_dates: tuple[tuple[str, str], ...]  # (ISO date, as written)
    updated_at: dt.datetime | None
    updated_by: str | None

    @property
    def status_label(self) -> str:
        return COUNT_LABELS[self.status]


@dataclass(frozen=True)
class WorkstreamReport:
    """One workstream's page: what it is for, who leads it, its metrics, and its live actions."""

    title: str  # the name, with the objective's label when two workstreams share a name
    label: str | None
    objective: str | None
    lead_sponsor: str | None
    metrics: tuple[tuple[str, str], ...]  # (Schedule, G) ... "TBC" when the plan gives none
    risks_issues: str | None
    counts: dict[str, int]
    live: tuple[ActionRow, ...]  # not complete, in plan order
    completed: tuple[str, ...]  # refs


@dataclass(frozen=True)
class Report:
    board: str
    plans: tuple[str, ...]
    period: Period
    counts: dict[str, int]
    by_workstream: dict[str, dict[str, int]]
    changes: tuple[Change, ...]
    revised_dates: tuple[DateRevision, ...]
    new_actions: tuple[str, ...]
    overdue: tuple[str, ...]
    due_next: tuple[str, ...]
    not_answered: tuple[NotAnswered, ...]
    spotlight: str | None
    workstreams: tuple[WorkstreamReport, ...]
    actions: tuple[ActionRow, ...]

    @property
    def total(self) -> int:
        return len(self.actions)

    @property
    def spotlight_detail(self) -> WorkstreamReport | None:
        return next((w for w in self.workstreams if w.title == self.spotlight), None)

    def as_json(self) -> dict[str, Any]:
        """The fields of ``chaser digest --format json`` (issue 13: the names are a contract)."""
        return {
            "board": self.board,
            "period": {"start": self.period.start.isoformat(), "end": self.period.end.isoformat()},
            "counts": dict(self.counts),
            "by_workstream": {name: dict(counts) for name, counts in self.by_workstream.items()},
            "changes": [c.as_json() for c in self.changes],
            "overdue": list(self.overdue),
            "due_next": list(self.due_next),
            "not_answered": [n.as_json() for n in self.not_answered],
            "spotlight": self.spotlight,
        }

    def as_data(self) -> dict[str, Any]:
        """Everything, as plain JSON values (comparing two builds, debugging a renderer)."""
        return _plain(dataclasses.asdict(self))


def _zero() -> dict[str, int]:
    return dict.fromkeys(COUNTED, 0)


def _titles(workstreams: Sequence[Workstream], plans: dict[int, str]) -> dict[int, str]:
    """Workstream id -> the name the report uses: its own, unless two share it (Lambeth has two
    "Healing and Resilience" objectives), then with its label ("Objective 4") or plan."""
    seen: dict[str, int] = {}
    for w in workstreams:
        seen[w.name.casefold()] = seen.get(w.name.casefold(), 0) + 1
    titles: dict[int, str] = {}
    for w in workstreams:
        titles[w.id] = w.name if seen[w.name.casefold()] == 1 else f"{w.name} ({w.label or plans[w.plan_id]})"
    return titles


def _matches(wanted: str, workstream: Workstream, title: str) -> bool:
    key = wanted.casefold().strip()
    return key in (workstream.name.casefold(), title.casefold())


def _key_dates(value: Any) -> tuple[tuple[str, str], ...]:
    """Milestones as (ISO date, as written). Read as text: most actions have none (``[]``), and
    decoding 10,000 empty JSON lists through the column type was a fifth of a report's time."""
    if value is None or value == "[]":
        return ()
    items = json.loads(value) if isinstance(value, str) else value  # psycopg decodes json itself
    return tuple((k.get("date", ""), k.get("text", "")) for k in items or ())


def pick_spotlight(board: BoardConfig, titles: Sequence[str], period: Period) -> str | None:
    """The pin, else the rotation's entry for this month (consecutive months, consecutive entries)."""
    by_key = {t.casefold(): t for t in titles}
    unknown = [n for n in (board.spotlight_pin, *board.spotlight) if n and n.casefold() not in by_key]
    if unknown:
        raise NotFound(f"board {board.name!r}: the spotlight names {', '.join(repr(u) for u in unknown)}, not one "
                       f"of its workstreams ({', '.join(titles)}); check [[boards]] spotlight")
    if board.spotlight_pin:
        return by_key.get(board.spotlight_pin.casefold(), board.spotlight_pin)
    order = [by_key.get(name.casefold(), name) for name in board.spotlight] or list(titles)
    if not order:
        return None
    return order[(period.start.year * 12 + period.start.month - 1) % len(order)]


def build_report(session: Session, board: BoardConfig, period: Period, edi_leads: Collection[str] = ()) -> Report:
    """One board's report for ``period``: see the module docstring for what each part counts
    (``edi_leads``: who may answer for any action, as ``edi_lead`` in the configuration)."""
    plans_query = select(Plan).order_by(Plan.name)
    if board.plans:
        plans_query = plans_query.where(Plan.name.in_(board.plans))
    plans = list(session.scalars(plans_query))
    missing = sorted(set(board.plans) - {p.name for p in plans})
    if missing:
        raise NotFound(f"board {board.name!r}: no plan named {', '.join(repr(m) for m in missing)} is imported "
                       "(check [[boards]] plans)")
    plan_names = {p.id: p.name for p in plans}
    plan_ids = list(plan_names)
    all_workstreams = list(session.scalars(
        select(Workstream).where(Workstream.plan_id.in_(plan_ids)).order_by(Workstream.plan_id, Workstream.position)
    )) if plan_ids else []
    titles = _titles(all_workstreams, plan_names)
    workstreams = all_workstreams
    if board.workstreams:
        workstreams = [w for w in all_workstreams if any(_matches(n, w, titles[w.id]) for n in board.workstreams)]
        unknown = [n for n in board.workstreams if not any(_matches(n, w, titles[w.id]) for w in all_workstreams)]
        if unknown:
            raise NotFound(f"board {board.name!r}: no workstream named {', '.join(repr(u) for u in unknown)} in its "
                           "plans (check [[boards]] workstreams)")
    in_scope = {w.id for w in workstreams}

    # Plain rows, not ORM objects: a board's plans can hold 10,000 actions (bench/digest_bench.py).
    actions: list[Any] = []
    owners: dict[int, list[str]] = {}
    if plan_ids:
        query = (select(Action.id, Action.plan_id, Action.workstream_id, Action.ref, Action.title, Action.start_date,
                        Action.due_date, Action.due_precision, Action.due_text,
                        type_coerce(Action.key_dates, Text).label("key_dates"))
                 .where(Action.plan_id.in_(plan_ids)).order_by(Action.plan_id, Action.position, Action.id))
        actions = [a for a in session.execute(query)
                   if (a.start_date is None or a.start_date <= period.end)
                   and (a.workstream_id in in_scope if board.workstreams else True)]
        named = (select(ActionOwner.action_id, Role.name).join(Role, Role.id == ActionOwner.role_id)
                 .join(Action, Action.id == ActionOwner.action_id).where(Action.plan_id.in_(plan_ids))
                 .order_by(ActionOwner.action_id, ActionOwner.position))
        for action_id, role in session.execute(named):
            owners.setdefault(action_id, []).append(role)
    # current_states reads an action's id and plan dates only: the rows carry them.
    states = current_states(session, actions, until=period.ends_at)
    ids = [a.id for a in actions]
    by_id = {a.id: a.ref for a in actions}

    changes, revisions, answered = _history(session, plan_ids, by_id, period)

    rows: list[ActionRow] = []
    for a in actions:
        state = states[a.id]
        rows.append(ActionRow(
            ref=a.ref, title=a.title,
            workstream=titles[a.workstream_id] if a.workstream_id in titles else plan_names[a.plan_id],
            owners=tuple(owners.get(a.id, ())), status=state.status or NO_UPDATE, note=state.note,
            start=a.start_date, due=state.due, due_text=state.due_text,
            key_dates=_key_dates(a.key_dates),
            updated_at=state.updated_at, updated_by=state.updated_by,
        ))

    counts = _zero()
    by_workstream: dict[str, dict[str, int]] = {}
    for w in workstreams:
        by_workstream[titles[w.id]] = _zero()
    for row in rows:
        counts[row.status] += 1
        if row.workstream not in by_workstream:
            by_workstream[row.workstream] = _zero()
        by_workstream[row.workstream][row.status] += 1

    following = period.next_start
    next_end = dt.date(following.year + following.month // 12, following.month % 12 + 1, 1) - dt.timedelta(days=1)
    open_rows = [r for r in rows if r.status != "complete" and r.due is not None]
    overdue = tuple(r.ref for r in open_rows if r.due <= period.end)  # type: ignore[operator]
    due_next = tuple(r.ref for r in open_rows if period.next_start <= r.due <= next_end)  # type: ignore[operator]
    new_actions = tuple(a.ref for a in actions if a.start_date is not None and period.start <= a.start_date)

    details = []
    for w in workstreams:
        mine = [r for r in rows if r.workstream == titles[w.id]]
        metrics = {k.lower(): v for k, v in (w.metrics or {}).items()}
        details.append(WorkstreamReport(
            title=titles[w.id], label=w.label, objective=w.objective, lead_sponsor=w.lead_sponsor,
            metrics=tuple((name.capitalize(), str(metrics.get(name) or "TBC")) for name in METRICS),
            risks_issues=w.risks_issues, counts=by_workstream[titles[w.id]],
            live=tuple(r for r in mine if r.status != "complete"),
            completed=tuple(r.ref for r in mine if r.status == "complete"),
        ))

    return Report(
        board=board.name, plans=tuple(p.name for p in plans), period=period, counts=counts,
        by_workstream=by_workstream, changes=tuple(changes), revised_dates=tuple(revisions),
        new_actions=new_actions, overdue=overdue, due_next=due_next,
        not_answered=_not_answered(session, plan_ids, ids, by_id, answered, period, edi_leads),
        spotlight=pick_spotlight(board, [titles[w.id] for w in workstreams], period),
        workstreams=tuple(details), actions=tuple(rows),
    )


def _history(session: Session, plan_ids: list[int], by_id: dict[int, str], period: Period
             ) -> tuple[list[Change], list[DateRevision], set[int]]:
    """The period's status moves and revised dates, and the actions someone updated in it.

    Only the period's updates are read, in time order (the order ``fold_history`` folds in),
    and for the actions whose status they set, the status each had just before the period: so
    each move's ``from`` is the status before it, even for an update loaded later with
    ``chaser update --at``, without reading every action's whole history again."""
    columns = (StatusUpdate.action_id, StatusUpdate.created_at, StatusUpdate.new_status, StatusUpdate.revised_due,
               StatusUpdate.revised_due_text, StatusUpdate.channel, StatusUpdate.by_text)
    # By plan, not by a list of ids: the board's actions are most of its plans' (no 10,000-id IN).
    query = (select(*columns).join(Action, Action.id == StatusUpdate.action_id)
             .where(Action.plan_id.in_(plan_ids), StatusUpdate.created_at >= period.starts_at,
                    StatusUpdate.created_at <= period.ends_at)
             .order_by(StatusUpdate.action_id, StatusUpdate.created_at, StatusUpdate.id))
    rows = [r for r in session.execute(query) if r.action_id in by_id]
    current = _status_before(session, sorted({r.action_id for r in rows if r.new_status is not None}),
                             period.starts_at)
    changes: list[Change] = []
    revisions: list[DateRevision] = []
    answered: set[int] = set()
    for action_id, at, status, revised, revised_text, channel, by in rows:
        if channel not in SYSTEM_CHANNELS:
            answered.add(action_id)
        if status is not None:
            if status != current.get(action_id):
                changes.append(Change(ref=by_id[action_id], from_=current.get(action_id), to=status, at=at, by=by))
            current[action_id] = status
        if revised_text is not None:
            revisions.append(DateRevision(ref=by_id[action_id], due=revised, due_text=revised_text, at=at, by=by))
    changes.sort(key=lambda c: c.at)
    revisions.sort(key=lambda r: r.at)
    return changes, revisions, answered


def _status_before(session: Session, ids: list[int], moment: dt.datetime) -> dict[int, str]:
    """action id -> the latest status recorded before ``moment`` (by time, then id), for those with one."""
    later = aliased(StatusUpdate)
    found: dict[int, str] = {}
    for chunk in id_chunks(ids):
        newer = (select(later.id).where(later.action_id == StatusUpdate.action_id, later.new_status.is_not(None),
                                        later.created_at < moment,
                                        (later.created_at > StatusUpdate.created_at)
                                        | ((later.created_at == StatusUpdate.created_at) & (later.id > StatusUpdate.id)))
                 .exists())
        query = (select(StatusUpdate.action_id, StatusUpdate.new_status)
                 .where(id_in(session, StatusUpdate.action_id, chunk), StatusUpdate.new_status.is_not(None),
                        StatusUpdate.created_at < moment, ~newer))
        found.update({action_id: status for action_id, status in session.execute(query)})
    return found


def _not_answered(session: Session, plan_ids: list[int], ids: list[int], by_id: dict[int, str], answered: set[int],
                  period: Period, edi_leads: Collection[str]) -> tuple[NotAnswered, ...]:
    """Who was nudged in the period about covered actions they answer for and nobody then
    updated, and how often. A manager sent an escalation copy is told, not asked: only those
    who may answer (storage.tracker.actions_held: owners, their delegates and cover; the EDI
    lead for any action) are listed."""
    asked: dict[int, dict[int, set[int]]] = {}  # person id -> action id -> outbox ids
    query = (select(NudgeKey.person_id, NudgeKey.action_id, NudgeKey.outbox_id)
             .join(Outbox, Outbox.id == NudgeKey.outbox_id).join(Action, Action.id == NudgeKey.action_id)
             .where(Action.plan_id.in_(plan_ids), NudgeKey.person_id.is_not(None),
                    Outbox.created_at >= period.starts_at, Outbox.created_at <= period.ends_at))
    for person_id, action_id, outbox_id in session.execute(query):
        if action_id in by_id and action_id not in answered:
            asked.setdefault(person_id, {}).setdefault(action_id, set()).add(outbox_id)
    if not asked:
        return ()
    people = {p.id: p for p in session.scalars(select(Person).where(Person.id.in_(list(asked))))}
    held = actions_held(session, list(asked))
    leads = {e.casefold() for e in edi_leads}
    for person_id in list(asked):
        if people[person_id].email.casefold() not in leads:
            mine = set(held.get(person_id, ()))
            asked[person_id] = {a: o for a, o in asked[person_id].items() if a in mine}
            if not asked[person_id]:
                del asked[person_id]
    position = {action_id: n for n, action_id in enumerate(ids)}
    out = []
    for person_id, actions in asked.items():
        person = people[person_id]
        refs = tuple(by_id[a] for a in sorted(actions, key=position.__getitem__))
        chased = len({o for outboxes in actions.values() for o in outboxes})
        out.append(NotAnswered(person=person.email, name=person.name, refs=refs, chased=chased))
    out.sort(key=lambda n: (-n.chased, n.person))
    return tuple(out)


def find_board(boards: Sequence[BoardConfig], name: str) -> BoardConfig:
    """The ``[[boards]]`` entry called ``name`` (ignoring case); NotFound lists the boards there are."""
    for board in boards:
        if board.name.casefold() == name.casefold():
            return board
    known = ", ".join(repr(b.name) for b in boards) or "none: add a [[boards]] table to chaser.toml"
    raise NotFound(f"--board {name!r}: no board of that name in the configuration (boards: {known})")
