"""Is Chaser delivering? The rules behind ``chaser status`` (and, to come, ``GET /healthz`` and the
EDI lead's pages).

Pure queries over the outbox, the sweeps and the actions: it lives in ``storage`` so that the
command line, the web app and the digests all judge health by the same rules.

Unhealthy when: no sweep has run, or the last one is older than three sweep intervals; a
message has waited over an hour to be sent; a message is parked (it will not be tried again
until someone runs ``chaser outbox retry``); a message has kept failing for over an hour; or an
action could not be planned (``actions.check_problem``). Each problem is one sentence naming
the message or the action, so a monitoring probe's mail says what to look at.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import Action, Outbox, Plan, Sweep

WAIT_LIMIT = dt.timedelta(hours=1)
LISTED = 20  # problems of one kind listed by name; the rest are counted


@dataclass
class Health:
    now: dt.datetime
    last_sweep: Sweep | None
    sweep_every: int
    outbox: dict[str, int]
    oldest_waiting_seconds: int | None
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        last = self.last_sweep
        return {
            "healthy": self.healthy,
            "problems": self.problems,
            "now": self.now.isoformat(),
            "last_sweep": None if last is None else {
                "at": last.at.isoformat(), "duration_ms": last.duration_ms, "actions_checked": last.actions_checked,
                "nudges_planned": last.nudges_planned, "messages_queued": last.messages_queued,
            },
            "next_sweep": (last.at + dt.timedelta(seconds=self.sweep_every)).isoformat() if last else None,
            "outbox": self.outbox,
            "oldest_waiting_seconds": self.oldest_waiting_seconds,
        }


def _listed(lines: list[str], total: int, what: str) -> list[str]:
    if total > len(lines):
        lines.append(f"and {total - len(lines)} more {what}")
    return lines


def check_health(session: Session, now: dt.datetime, *, sweep_every: int) -> Health:
    last = session.scalars(select(Sweep).order_by(Sweep.at.desc(), Sweep.id.desc()).limit(1)).first()
    counts = {state: n for state, n in session.execute(select(Outbox.state, func.count(Outbox.id)).group_by(Outbox.state))}
    oldest = session.scalar(select(func.min(Outbox.created_at)).where(Outbox.state.in_(("queued", "sending", "failed"))))
    health = Health(
        now=now, last_sweep=last, sweep_every=sweep_every,
        outbox={state: counts.get(state, 0) for state in ("queued", "sending", "sent", "failed", "parked")},
        oldest_waiting_seconds=int((now - oldest).total_seconds()) if oldest else None,
    )
    problems = health.problems
    if last is None:
        problems.append("no sweep has run yet: is 'chaser run' running?")
    elif (now - last.at).total_seconds() > 3 * sweep_every:
        problems.append(f"the last sweep was {int((now - last.at).total_seconds())} s ago (more than 3 × {sweep_every} s)")
    if health.oldest_waiting_seconds is not None and health.oldest_waiting_seconds > WAIT_LIMIT.total_seconds():
        problems.append(f"a message has waited {health.oldest_waiting_seconds // 60} minutes to be sent")

    parked = session.execute(
        select(Outbox.id, Outbox.recipient, Outbox.attempts, Outbox.last_error)
        .where(Outbox.state == "parked").order_by(Outbox.id).limit(LISTED)
    ).all()
    problems += _listed(
        [f"message {r.id} to {r.recipient} is parked after {r.attempts} attempt(s): {r.last_error or 'no error kept'} "
         f"(after fixing the cause: chaser outbox retry {r.id})" for r in parked],
        health.outbox["parked"], "parked message(s): chaser outbox --state parked")
    failing_query = select(Outbox.id, Outbox.recipient, Outbox.attempts, Outbox.last_error, Outbox.created_at).where(
        Outbox.state == "failed", Outbox.created_at < now - WAIT_LIMIT)
    failing = session.execute(failing_query.order_by(Outbox.id).limit(LISTED)).all()
    failing_total = session.scalar(select(func.count()).select_from(failing_query.subquery())) or 0
    problems += _listed(
        [f"message {r.id} to {r.recipient} has been failing for {int((now - r.created_at).total_seconds()) // 60} "
         f"minutes ({r.attempts} attempt(s)): {r.last_error or 'no error kept'}" for r in failing],
        failing_total, "message(s) failing for over an hour: chaser outbox --state failed")
    unplanned_query = (select(Action.ref, Plan.name, Action.check_problem).join(Plan, Plan.id == Action.plan_id)
                       .where(Action.check_problem.is_not(None)))
    unplanned = session.execute(unplanned_query.order_by(Plan.name, Action.position).limit(LISTED)).all()
    unplanned_total = session.scalar(select(func.count()).select_from(unplanned_query.subquery())) or 0
    problems += _listed(
        [f"action {ref} in plan {plan!r} could not be planned, so it gets no nudges: {why}"
         for ref, plan, why in unplanned],
        unplanned_total, "action(s) that could not be planned")
    return health
