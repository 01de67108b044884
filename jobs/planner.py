"""The reminder planner: a pure function of (now, actions, people, reviews, what was sent).

It answers one question — which nudges are due now — and when each action must be looked at
again. No clock, no database, no network: the sweep (``jobs.sweep``) loads the views, calls
``plan`` and stores the result in one transaction.

Rules, per action and per person (the owner, their cover, an escalation target, the EDI lead):

- ``before_due``: N working days before the due date, for each N in ``cadence.before_due``;
- ``due``: on the due date (the last working day on or before it);
- ``overdue``: every ``overdue_every`` working days after the due date while not complete;
- ``escalation``: once, ``escalate_after`` working days overdue, to each owner's manager, else
  the workstream's lead sponsor, else the EDI lead;
- ``stale``: recurring actions and actions with no due date, when nobody has updated them for
  ``stale_after_days`` days (and again every such period while silence lasts);
- ``review_request``/``review_chase``/``review_missing``: before a board meeting, see
  ``ReviewMilestone``.

Only the *latest* occurrence of each stream whose time has come counts: after downtime an
action gets one catch-up, never one per missed occurrence. When several rules are due for the
same action and person, the most urgent is sent and the others are recorded as superseded, so
they do not follow a minute later. Nothing is sent outside the send window (working days, from
``send_at``, never in quiet hours); complete, snoozed and paused actions get nothing.

Each nudge says why as data (``storage.reasons.Why``: the rule, the due date, working days to
it, the board and its meeting...); the words are the templates' (``bot.render.phrase_reason``).
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence, Set
from dataclasses import dataclass, field, replace
from functools import partial

from jobs.calendar import WorkCalendar
from storage.reasons import Why

# Higher is more urgent: what goes out when several rules are due for one action and person.
URGENCY = {
    "review_request": 1, "stale": 2, "before_due": 3, "review_chase": 4, "due": 5, "overdue": 6,
    "review_missing": 7, "escalation": 8,
}
LEAD = "lead"  # key part for nudges addressed to the EDI lead because no owner can be reached


@dataclass(frozen=True)
class Cadence:
    """How often and when: every value can be overridden per plan and per workstream."""

    before_due: tuple[int, ...] = (10, 2)
    on_due: bool = True
    overdue_every: int = 5  # working days; 0 turns overdue nudges off
    escalate_after: int = 10  # working days overdue; 0 turns escalation off
    stale_after_days: int = 30  # calendar days without an update; 0 turns it off
    calendar: WorkCalendar = field(default_factory=WorkCalendar)


@dataclass(frozen=True)
class PersonView:
    id: int
    name: str
    email: str | None = None
    manager_id: int | None = None
    away_until: dt.date | None = None
    cover_id: int | None = None

    def away_on(self, day: dt.date) -> bool:
        return self.away_until is not None and day <= self.away_until


@dataclass(frozen=True)
class ActionView:
    id: int
    ref: str
    plan_id: int
    due: dt.date | None
    recurring: bool
    status: str | None
    created_at: dt.datetime
    cadence: Cadence
    owner_ids: tuple[int, ...] = ()
    owner_roles: tuple[str, ...] = ()
    sponsor_ids: tuple[int, ...] = ()  # people holding the workstream's lead sponsor role
    last_update_at: dt.datetime | None = None  # the latest update by a person (not an import)
    snoozed_until: dt.date | None = None
    paused: bool = False
    workstream_id: int | None = None
    plan: str = ""  # the plan's name, for messages about this action

    @property
    def open(self) -> bool:
        return self.status != "complete" and not self.paused


@dataclass(frozen=True)
class ReviewMilestone:
    """One step before a board meeting, to plan for every open action in scope.

    ``review_request``: every owner is asked for an update; ``review_chase``: owners whose
    action has had no update since ``requested_at`` are chased; ``review_missing``: the EDI
    lead gets the list of actions still without an answer.
    """

    board: str
    meeting: dt.date
    rule: str
    at: dt.datetime
    requested_at: dt.datetime
    plan_ids: frozenset[int] | None = None  # None: every plan

    def covers(self, action: ActionView) -> bool:
        return self.plan_ids is None or action.plan_id in self.plan_ids


@dataclass(frozen=True)
class Nudge:
    action_id: int
    ref: str
    person_id: int
    rule: str
    occurrence: dt.date
    key: str
    why: Why  # what is due and why, as data: templates phrase it (bot.render.phrase_reason)
    owner_id: int | None = None  # whose action, when the person is a cover, manager or the EDI lead

    @property
    def urgency(self) -> int:
        return URGENCY[self.rule]


@dataclass
class Plan:
    nudges: list[Nudge] = field(default_factory=list)
    superseded: list[Nudge] = field(default_factory=list)
    next_check: dict[int, dt.datetime | None] = field(default_factory=dict)
    # Actions with a nudge due but nobody to send it to (no owner, no EDI lead configured).
    unreachable: list[tuple[int, str]] = field(default_factory=list)
    # People whose nudges wait because they are away with no cover: person id -> back on.
    waiting: dict[int, dt.date] = field(default_factory=dict)
    # Actions that could not be planned: action id -> what went wrong. Their next check is
    # PROBLEM_RETRY from now; every other action is planned as usual.
    problems: dict[int, str] = field(default_factory=dict)


# An action whose planning failed is looked at again after this, not at every sweep.
PROBLEM_RETRY = dt.timedelta(hours=1)


@dataclass(frozen=True)
class _Addressee:
    """One recipient of an owner-bound nudge: ``whose`` goes into the key (the owner, or LEAD)."""

    whose: int | str
    recipient: int | None
    on_behalf_of: int | None  # the owner, when the recipient is their cover
    unowned: bool = False  # the EDI lead, because nobody holds the owner roles: the why says so

    def why(self, why: Why, action: ActionView) -> Why:
        return replace(why, unowned=True, roles=action.owner_roles) if self.unowned else why


@dataclass(frozen=True)
class _Candidate:
    rule: str
    occurrence: dt.date
    why: Why
    to: str  # "owners" or "escalation"


def _deadline_candidates(action: ActionView, now: dt.datetime,
                         last_sent: dt.datetime | None) -> tuple[list[_Candidate], dt.datetime | None]:
    """The current deadline occurrence for one recipient, and when their next one falls.

    ``before_due`` and ``due`` fall on fixed days. ``overdue`` repeats count from the last nudge
    that went to this person for this action (``last_sent``): "every 5 working days" means 5
    working days after the last one they got, so a catch-up after downtime, or a nudge held back
    by a bank holiday, quiet hours or leave, is never followed by another the next day. With no
    nudge yet, the latest day of the series since the due date is the catch-up.
    """
    cad, cal, due = action.cadence, action.cadence.calendar, action.due
    assert due is not None
    today = cal.today(now)
    # (send time, rule, day): the why is worked out only for the occurrence that is chosen.
    occurrences: list[tuple[dt.datetime, str, dt.date]] = []
    for n in sorted(set(cad.before_due), reverse=True):
        if n > 0:
            day = cal.add_working_days(due, -n)
            occurrences.append((cal.send_time(day), "before_due", day))
    if cad.on_due:
        day = cal.working_day_on_or_before(due)
        occurrences.append((cal.send_time(day), "due", day))
    late = cal.working_days_between(due, today)
    if cad.overdue_every > 0:
        first = cal.add_working_days(due, cad.overdue_every)
        if last_sent is None:
            steps = max(1, late // cad.overdue_every)
            day = cal.add_working_days(due, cad.overdue_every * steps)
        else:
            day = max(first, cal.add_working_days(cal.today(last_sent), cad.overdue_every))
        occurrences.append((cal.send_time(day), "overdue", day))
        if cal.send_time(day) <= now:
            # If it goes now, the one after is a full interval from today.
            after = cal.add_working_days(today, cad.overdue_every)
            occurrences.append((cal.send_time(after), "overdue", after))
    # What fell before the person's last nudge for this action is behind them: that nudge (or a
    # later, more urgent one) already went, whatever the occurrence it was for.
    current = [o for o in occurrences if o[0] <= now and (last_sent is None or o[0] > last_sent)]
    upcoming = [o[0] for o in occurrences if o[0] > now]
    found: list[_Candidate] = []
    if current:
        _, rule, day = max(current, key=lambda o: (o[0], URGENCY[o[1]]))
        # The why says how things stand today, which after downtime is not the occurrence's own
        # count. An overdue nudge is always at least a day late; a before_due nudge never says
        # overdue (only a catch-up with no on-due or overdue nudges could find it late); a due
        # nudge on the working day before a weekend due date says "due today", as it always has.
        if rule == "overdue":
            working_days = -max(late, 1)
        elif rule == "before_due":
            working_days = max(cal.working_days_between(today, due), 0)
        else:
            working_days = -late if late > 0 else 0
        found.append(_Candidate(rule, day, Why(rule, due=due, working_days=working_days), "owners"))
    return found, min(upcoming) if upcoming else None


def _escalation_candidate(action: ActionView, now: dt.datetime) -> tuple[_Candidate | None, dt.datetime | None]:
    """The one escalation, ``escalate_after`` working days overdue; or when it will fall."""
    cad, cal, due = action.cadence, action.cadence.calendar, action.due
    if cad.escalate_after <= 0 or due is None:
        return None, None
    day = cal.add_working_days(due, cad.escalate_after)
    moment = cal.send_time(day)
    if moment > now:
        return None, moment
    late = cal.working_days_between(due, cal.today(now))
    why = Why("escalation", due=due, working_days=-max(late, cad.escalate_after))
    return _Candidate("escalation", day, why, "escalation"), None


def _stale_candidate(action: ActionView, now: dt.datetime,
                     last_sent: dt.datetime | None) -> tuple[_Candidate | None, dt.datetime | None]:
    """An update request after ``stale_after_days`` of silence, and when the next one is due.

    Silence counts from the last update (or the action's creation), or from the last nudge this
    person got for the action if that was later: a request is never followed by another sooner
    than ``stale_after_days`` after it.
    """
    cad, cal = action.cadence, action.cadence.calendar
    if cad.stale_after_days <= 0:
        return None, None
    updated = action.last_update_at or action.created_at
    base = max(updated, last_sent) if last_sent is not None else updated
    period = dt.timedelta(days=cad.stale_after_days)
    due_at = cal.next_send_window(base + period)  # the first moment it may go out
    if due_at > now:
        return None, due_at
    why = Why("stale", days_since_update=(now - updated).days, never_updated=action.last_update_at is None,
              recurring=action.recurring)
    return _Candidate("stale", cal.today(due_at), why, "owners"), cal.next_send_window(now + period)


def _key(rule: str, action_id: int, whose: int | str, occurrence: dt.date, board: str = "") -> str:
    prefix = f"{rule}:{board}:" if board else f"{rule}:"
    return f"{prefix}{action_id}:{whose}:{occurrence.isoformat()}"


class _Planner:
    def __init__(self, now: dt.datetime, people: Mapping[int, PersonView], sent: Set[str], edi_lead_id: int | None,
                 last_sent: Mapping[tuple[int, int], dt.datetime]) -> None:
        self.now = now
        self.people = people
        self.sent = sent
        self.edi_lead_id = edi_lead_id
        self.last_sent = last_sent
        self.result = Plan()
        # (action id, recipient) -> candidate nudges, of which the most urgent is sent.
        self.pending: dict[tuple[int, int], list[Nudge]] = {}

    def add(self, action: ActionView, rule: str, occurrence: dt.date, why: Why, whose: int | str,
            recipient: int | None, owner_id: int | None, board: str = "") -> None:
        key = _key(rule, action.id, whose, occurrence, board)
        if key in self.sent:
            return
        if recipient is None:
            self.result.unreachable.append((action.id, f"{rule} for {action.ref}: nobody can be reached"))
            return
        nudge = Nudge(action.id, action.ref, recipient, rule, occurrence, key, why, owner_id)
        self.pending.setdefault((action.id, recipient), []).append(nudge)

    def addressees(self, action: ActionView) -> tuple[list[_Addressee], dict[int, dt.date]]:
        """Who an owner-bound nudge of the action goes to (owner, their cover, else the EDI lead
        naming the roles nobody holds), and the owners away without cover: owner -> day back."""
        today = action.cadence.calendar.today(self.now)
        if not action.owner_ids:
            return [_Addressee(LEAD, self.edi_lead_id, None, unowned=True)], {}
        found: list[_Addressee] = []
        away: dict[int, dt.date] = {}
        for owner_id in action.owner_ids:
            person = self.people.get(owner_id)
            if person is not None and person.away_on(today):
                if person.cover_id is not None and person.cover_id in self.people:
                    found.append(_Addressee(owner_id, person.cover_id, owner_id))
                else:
                    assert person.away_until is not None
                    away[owner_id] = action.cadence.calendar.working_day_on_or_after(
                        person.away_until + dt.timedelta(days=1))
                continue
            found.append(_Addressee(owner_id, owner_id, None))
        return found, away

    def to_owners(self, action: ActionView, rule: str, occurrence: dt.date, why: Why, board: str = "") -> None:
        """Address one nudge to every owner (or their cover); owners away without cover wait."""
        addressees, away = self.addressees(action)
        for a in addressees:
            self.add(action, rule, occurrence, a.why(why, action), a.whose, a.recipient, a.on_behalf_of, board)
        self.result.waiting.update(away)

    def escalate(self, action: ActionView, occurrence: dt.date, why: Why) -> None:
        targets: list[tuple[int | None, int | None]] = []  # (recipient, whose action)
        for owner_id in action.owner_ids:
            person = self.people.get(owner_id)
            if person is not None and person.manager_id is not None and person.manager_id in self.people:
                targets.append((person.manager_id, owner_id))
        if not targets:
            targets = [(sponsor, None) for sponsor in action.sponsor_ids if sponsor in self.people]
        if not targets:
            targets = [(self.edi_lead_id, None)]
        for recipient, owner_id in dict.fromkeys(targets):
            self.add(action, "escalation", occurrence, why, recipient if recipient is not None else LEAD,
                     recipient, owner_id)

    def candidates(self, action: ActionView, recipient: int | None) -> tuple[list[_Candidate], list[dt.datetime]]:
        """The owner-bound nudges due now for one recipient, and when to look again for them."""
        last = self.last_sent.get((action.id, recipient)) if recipient is not None else None
        found: list[_Candidate] = []
        next_times: list[dt.datetime] = []
        if action.due is not None:
            current, upcoming = _deadline_candidates(action, self.now, last)
            found += current
            if upcoming is not None:
                next_times.append(upcoming)
        if action.due is None or action.recurring:
            stale, upcoming = _stale_candidate(action, self.now, last)
            if stale is not None:
                found.append(stale)
            if upcoming is not None:
                next_times.append(upcoming)
        return found, next_times

    def action(self, action: ActionView) -> None:
        cal = action.cadence.calendar
        today = cal.today(self.now)
        if not action.open:
            self.result.next_check[action.id] = None
            return
        if action.snoozed_until is not None and today <= action.snoozed_until:
            self.result.next_check[action.id] = cal.send_time(
                cal.working_day_on_or_after(action.snoozed_until + dt.timedelta(days=1))
            )
            return
        in_window = cal.in_send_window(self.now)
        next_times: list[dt.datetime] = []
        due_now = False
        addressees, away = self.addressees(action)
        for a in addressees:
            found, later = self.candidates(action, a.recipient)
            next_times += later
            due_now = due_now or bool(found)
            if in_window:
                for candidate in found:
                    self.add(action, candidate.rule, candidate.occurrence, a.why(candidate.why, action), a.whose,
                             a.recipient, a.on_behalf_of)
        for owner_id, back in away.items():
            found, later = self.candidates(action, owner_id)
            next_times += later
            if found:  # it waits for them: look again on their first day back
                self.result.waiting[owner_id] = back
                next_times.append(cal.send_time(back))
        escalation, upcoming = _escalation_candidate(action, self.now)
        if upcoming is not None:
            next_times.append(upcoming)
        if escalation is not None:
            due_now = True
            if in_window:
                self.escalate(action, escalation.occurrence, escalation.why)
        if due_now and not in_window:
            next_times.append(cal.next_send_window(self.now))
        self.result.next_check[action.id] = min(next_times) if next_times else None

    def review(self, milestone: ReviewMilestone, action: ActionView) -> None:
        cal = action.cadence.calendar
        today = cal.today(self.now)
        if not action.open or (action.snoozed_until is not None and today <= action.snoozed_until):
            return
        if not (milestone.at <= self.now and today < milestone.meeting) or not cal.in_send_window(self.now):
            return
        answered = action.last_update_at is not None and action.last_update_at >= milestone.requested_at
        why = Why(milestone.rule, board=milestone.board, meeting=milestone.meeting)
        if milestone.rule == "review_request" or (milestone.rule == "review_chase" and not answered):
            self.to_owners(action, milestone.rule, milestone.meeting, why, milestone.board)
        elif milestone.rule == "review_missing" and not answered:
            owners = [self.people[o] for o in action.owner_ids if o in self.people]
            why = replace(why, owners=tuple(p.name for p in owners),
                          away=tuple((p.name, p.away_until) for p in owners if p.away_until and p.away_on(today)))
            self.add(action, "review_missing", milestone.meeting, why, LEAD, self.edi_lead_id, None, milestone.board)

    def isolated(self, action: ActionView, step: Callable[[], None]) -> None:
        """Run one action's planning step; an error stays with that action (STYLE.md item 5).

        Whatever the step had started for the action is dropped, its next check is pushed
        PROBLEM_RETRY forward and the error is kept in ``problems``, so one bad row (a date no
        calendar can reach, a bug) never stops the nudges of every other action.
        """
        try:
            step()
        except Exception as exc:  # noqa: BLE001 - any failure is this action's, not the sweep's
            for pair in [pair for pair in self.pending if pair[0] == action.id]:
                del self.pending[pair]
            self.result.unreachable = [u for u in self.result.unreachable if u[0] != action.id]
            self.result.next_check[action.id] = self.now + PROBLEM_RETRY
            self.result.problems[action.id] = f"{type(exc).__name__}: {exc}"

    def finish(self) -> Plan:
        for nudges in self.pending.values():
            nudges.sort(key=lambda n: (n.urgency, n.occurrence), reverse=True)
            self.result.nudges.append(nudges[0])
            self.result.superseded.extend(n for n in nudges[1:] if n.key != nudges[0].key)
        self.result.nudges.sort(key=lambda n: (n.person_id, n.action_id))
        return self.result


def plan(
    now: dt.datetime,
    actions: Iterable[ActionView],
    people: Mapping[int, PersonView],
    sent: Set[str],
    *,
    edi_lead_id: int | None = None,
    reviews: Sequence[ReviewMilestone] = (),
    review_actions: Iterable[ActionView] = (),
    last_sent: Mapping[tuple[int, int], dt.datetime] | None = None,
) -> Plan:
    """Nudges due at ``now`` (aware), superseded ones, and each action's next check time.

    ``actions`` are the actions whose check time has come; ``review_actions`` the open
    actions in scope of the ``reviews`` milestones being planned. ``sent`` holds every key
    already planned for these actions; ``last_sent`` when the last nudge for an action went to a
    person, ``(action id, person id) -> moment``: repeats count from it.
    """
    if now.tzinfo is None:
        raise ValueError("plan() needs an aware datetime")
    planner = _Planner(now, people, sent, edi_lead_id, last_sent or {})
    for action in actions:
        planner.isolated(action, partial(planner.action, action))
    review_actions = list(review_actions)
    for milestone in reviews:
        for action in review_actions:
            if milestone.covers(action) and action.id not in planner.result.problems:
                planner.isolated(action, partial(planner.review, milestone, action))
    return planner.finish()
